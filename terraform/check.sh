#!/usr/bin/env bash
# Static checks of the terraform/ folder, fully offline:
#   0. consistency checks (backend vs required_version, docs vs code)
#   1. terraform fmt -check -recursive
#   2. init (filesystem provider mirror, no backend) + validate of every module, env and root
#   3. terraform test (mock provider) where tests/ exist
#   4. checkov on terraform/ (and on the repository's Dockerfile)
# Usage: terraform/check.sh            (from any directory)
# Env:   VENV        python venv holding checkov (default <repo>/.venv; falls back to <repo>/.venv-checkov)
#        TF_PLUGIN_DIR provider mirror (default /opt/tf-plugins)
#        SKIP_CHECKOV=1  skip step 4
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cd "$here"

VENV="${VENV:-$repo/.venv}"
TF_PLUGIN_DIR="${TF_PLUGIN_DIR:-/opt/tf-plugins}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Never download: providers come from the filesystem mirror only.
cat >"$work/terraformrc" <<RC
provider_installation {
  filesystem_mirror {
    path    = "$TF_PLUGIN_DIR"
    include = ["registry.terraform.io/*/*"]
  }
}
RC
export TF_CLI_CONFIG_FILE="$work/terraformrc"
export TF_IN_AUTOMATION=1
export CHECKPOINT_DISABLE=1

# Work on a copy so no .terraform/ or lock file lands in the repository.
mkdir -p "$work/src"
tar -C "$here" --exclude=.terraform --exclude='*.tfstate*' --exclude=.terraform.lock.hcl -cf - . | tar -C "$work/src" -xf -

echo "== terraform fmt -check -recursive"
terraform fmt -check -recursive -diff .

# Facts terraform test cannot see (issue 13, defect 6): a backend using use_lockfile needs
# Terraform >= 1.10; every `docker build` in the docs names the Fargate platform; the docs
# state the tables' actual log retention (schemas/src/table.rs), not Delta's 30-day default.
echo "== consistency checks"
fail=0
for ex in envs/*/backend.hcl.example; do
  d="$(dirname "$ex")"
  if grep -q '^[[:space:]]*use_lockfile[[:space:]]*=[[:space:]]*true' "$ex" &&
    ! grep -Eq 'required_version[[:space:]]*=[[:space:]]*">=[[:space:]]*1\.(1[0-9]|[2-9][0-9])' "$d/versions.tf"; then
    echo "$d: backend uses use_lockfile but versions.tf does not require terraform >= 1.10" >&2
    fail=1
  fi
done
if grep -rn 'docker build' "$repo/README.md" "$here/README.md" | grep -v -- '--platform' >&2; then
  echo "every 'docker build' in the docs must pass --platform (the tasks are linux/amd64 or linux/arm64)" >&2
  fail=1
fi
table_log_retention="$(grep -o '"delta.logRetentionDuration", "interval [0-9]* days"' "$repo/schemas/src/table.rs" | grep -o '[0-9]* days')"
if grep -nE 'logRetentionDuration`? \([0-9]+ days' "$here/README.md" | grep -v "($table_log_retention" >&2; then
  echo "terraform/README.md must state the tables' delta.logRetentionDuration ($table_log_retention, schemas/src/table.rs)" >&2
  fail=1
fi
[ "$fail" = 0 ] || exit 1

# Every environment under envs/ (a new one is checked without editing this list).
dirs=(modules/kms modules/data_plane modules/iam modules/network modules/compute modules/monitoring modules/stack)
for e in envs/*/; do dirs+=("${e%/}"); done
dirs+=(e2e)
for d in "${dirs[@]}"; do
  echo "== $d: init + validate"
  export TF_DATA_DIR="$work/data/${d//\//_}"
  (
    cd "$work/src/$d"
    terraform init -backend=false -input=false -no-color >"$work/init.log" 2>&1 || { cat "$work/init.log"; exit 1; }
    terraform validate -no-color
    if [ -d tests ]; then
      echo "== $d: terraform test"
      terraform test -no-color
    fi
  )
done
unset TF_DATA_DIR

if [ "${SKIP_CHECKOV:-0}" = 1 ]; then
  echo "== checkov skipped (SKIP_CHECKOV=1)"
  exit 0
fi

checkov="$VENV/bin/checkov"
if [ ! -x "$checkov" ] && [ -x "$repo/.venv-checkov/bin/checkov" ]; then
  checkov="$repo/.venv-checkov/bin/checkov"
fi
if [ ! -x "$checkov" ]; then
  echo "checkov not found in $VENV (install: python3 -m venv $repo/.venv-checkov && $repo/.venv-checkov/bin/pip install checkov)" >&2
  exit 1
fi

echo "== checkov (terraform)"
"$checkov" -d "$work/src" --framework terraform --quiet --compact --skip-download
if [ -f "$repo/Dockerfile" ]; then
  echo "== checkov (Dockerfile)"
  "$checkov" -f "$repo/Dockerfile" --framework dockerfile --quiet --compact --skip-download
fi
echo "== all terraform checks passed"
