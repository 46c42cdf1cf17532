"""What the Terraform end-to-end tests share: where terraform and its offline provider mirror
are, a CLI config that installs providers from the mirror only, a runner that shows what
terraform was doing when it failed or hung, and a wait for a moto server to answer."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TF_SRC = REPO / "terraform"
TERRAFORM = shutil.which("terraform")
PLUGIN_DIR = Path(os.environ.get("TF_PLUGIN_DIR", "/opt/tf-plugins"))
REGION = "us-east-1"

# Use as a module's `pytestmark`: skipped, not failed, where terraform or the mirror is absent.
REQUIRES_TERRAFORM = [
    pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed"),
    pytest.mark.skipif(not PLUGIN_DIR.is_dir(), reason=f"no terraform provider mirror at {PLUGIN_DIR}"),
]


def terraform_env(work: Path) -> dict[str, str]:
    """Environment for terraform in `work`: providers from the filesystem mirror only, no
    ambient AWS credentials or TF_VAR_s leaking in from the caller."""
    rc = work / "terraformrc"
    rc.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path = "{PLUGIN_DIR}"\n    include = ["registry.terraform.io/*/*"]\n  }}\n'
        "}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_VAR_"))}
    env.update(
        TF_CLI_CONFIG_FILE=str(rc),
        TF_DATA_DIR=str(work / "tfdata"),
        TF_IN_AUTOMATION="1",
        CHECKPOINT_DISABLE="1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def tf(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> str:
    """Run terraform; on failure or timeout, raise with the tail of what it printed."""
    try:
        res = subprocess.run([TERRAFORM, *args, "-no-color"], cwd=cwd, env=env, capture_output=True,
                             text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        # Show what terraform was waiting on; the bare timeout says nothing.
        # (TimeoutExpired carries bytes even with text=True.)
        out = ((e.stdout or b"") + (e.stderr or b"")).decode(errors="replace")
        raise AssertionError(f"terraform {' '.join(args)} timed out after {timeout}s:\n{out[-4000:]}") from e
    if res.returncode != 0:
        raise AssertionError(f"terraform {' '.join(args)} failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res.stdout


def wait_for_moto(url: str, proc: subprocess.Popen, log_path: Path | None = None, timeout: float = 30) -> None:
    """Wait until the moto server at `url` answers; fail early if its process died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text()[-2000:] if log_path else ""
                raise RuntimeError(f"moto server did not start on {url}: {tail}")
            time.sleep(0.2)
