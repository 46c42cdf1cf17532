# One entry point for people and CI. `make test` is what .ci/run runs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# Builds of deltalake + datafusion are heavy: keep them outside the clone so every checkout
# (and CI's fresh clone) reuses one warm target directory.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/events-lake/target
VENV ?= $(HOME)/.cache/events-lake/venv
PY := $(VENV)/bin/python
REQ_STAMP := $(VENV)/.req-$(shell sha1sum requirements-dev.txt | cut -c1-12)
CHECKOV_VENV ?= $(HOME)/.cache/events-lake/venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.req-$(shell sha1sum requirements-checkov.txt | cut -c1-12)

export WRITER_BIN := $(CARGO_TARGET_DIR)/debug/writer
export LOADGEN_BIN := $(CARGO_TARGET_DIR)/debug/loadgen
export COMPACTOR_BIN := $(CARGO_TARGET_DIR)/debug/compactor

.PHONY: all build demo test lint unit integration terraform-check venv bench profile bench-kinesis bench-soak bench-soak-s3 bench-multiwriter bench-keyscale bench-cold-start sim-scaling clean-lake deploy profile-service

all: build

venv: $(REQ_STAMP)
$(REQ_STAMP): requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(CHECKOV_STAMP): requirements-checkov.txt
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --disable-pip-version-check -r requirements-checkov.txt
	touch $@

build:
	cargo build --workspace --bins

## The main job on the embedded default: ingest the shipped sample into ./lake (no AWS).
demo: build
	$(WRITER_BIN) ingest --input samples/events.ndjson --table ./lake/events --rejected-table ./lake/events_rejected

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

unit:
	cargo test --workspace

integration: venv build
	cd integration-tests && PATH="$(VENV)/bin:$$PATH" $(PY) -m pytest -q -ra $(PYTEST_ARGS)

terraform-check: $(CHECKOV_STAMP)
	VENV=$(CHECKOV_VENV) bash terraform/check.sh

test: venv lint unit integration terraform-check

bench: venv
	cargo build --release --bins
	PATH="$(VENV)/bin:$$PATH" $(PY) bench/run.py $(BENCH_ARGS)

# Profile `writer ingest` on 1M generated events (issue 16): the `profiling` build (release
# with symbols, its own folder), `perf record` with DWARF call graphs, the top frames printed.
PROFILE_DIR ?= $(HOME)/.cache/events-lake/profile
profile:
	cargo build --profile profiling --workspace --bins
	mkdir -p $(PROFILE_DIR) && rm -rf $(PROFILE_DIR)/lake
	$(CARGO_TARGET_DIR)/profiling/loadgen generate --count 1000000 --seed 1 --output $(PROFILE_DIR)/events.ndjson --duplicate-ratio 0.05 --large-ratio 0.0005 --end-time 1764000000
	perf record -F 499 --call-graph dwarf,16384 -o $(PROFILE_DIR)/perf.data -- $(CARGO_TARGET_DIR)/profiling/writer ingest --input $(PROFILE_DIR)/events.ndjson --table $(PROFILE_DIR)/lake/events --rejected-table $(PROFILE_DIR)/lake/rejected --max-batch-events 200000 --min-created-at 946684800 --max-future 36500d
	perf report -i $(PROFILE_DIR)/perf.data --no-children --sort symbol --stdio -g none --percent-limit 0.8 | grep '%'

# Profile `writer run` at the deployed settings (issue 16): 10 minutes at 1,000 events/s, 30 s
# flush, 1 s poll, under `perf record -g`, then the CPU attributed to the pipeline's parts.
profile-service: venv
	cargo build --profile profiling --workspace --bins
	mkdir -p $(PROFILE_DIR)
	BENCH_WRITER=$(CARGO_TARGET_DIR)/profiling/writer BENCH_LOADGEN=$(CARGO_TARGET_DIR)/profiling/loadgen PATH="$(VENV)/bin:$$PATH" $(PY) bench/kinesis_load.py --events 600000 --rate 1000 --flush-interval 30s --store s3 --poll-interval 1s --perf-data $(PROFILE_DIR)/service.perf --out $(PROFILE_DIR)/service.json
	perf script -i $(PROFILE_DIR)/service.perf -F comm,tid,ip,sym --no-inline 2>/dev/null | gzip -1 > $(PROFILE_DIR)/service.script.gz
	$(PY) bench/perf_attribution.py $(PROFILE_DIR)/service.script.gz

# Kinesis load test (issue 4): kinesalite (npm, in memory, loopback) for Kinesis, moto for S3
# and DynamoDB. KINESIS_ARGS e.g. `--events 1000000 --rate 1000 --out bench/results/x.json`.
NODE_DIR ?= $(HOME)/.cache/events-lake/node
$(NODE_DIR)/node_modules/kinesalite/package.json:
	npm install --silent --no-audit --no-fund --prefix $(NODE_DIR) kinesalite@3.3.3

bench-kinesis: venv $(NODE_DIR)/node_modules/kinesalite/package.json
	cargo build --release --bins
	KINESALITE_DIR=$(NODE_DIR) PATH="$(VENV)/bin:$$PATH" $(PY) bench/kinesis_load.py $(KINESIS_ARGS)

# Steady-state soak (issue 14): a compressed week of 1x traffic through the writer's commit
# path, the scheduled `compactor run` every simulated hour, reader probes (DuckDB, polars)
# every 6 simulated hours; curves in $(SOAK_OUT) (commits.jsonl, samples.jsonl, soak.png,
# summary.md). SOAK_ARGS e.g. `--sim-days 1 --compression 168` for a shorter run.
# MALLOC_ARENA_MAX=2 as the container image sets it (Dockerfile), so RSS is what production sees.
SOAK_OUT ?= bench/results/soak
SOAK_DIR ?= $(HOME)/.cache/events-lake/soak
SOAK_ARGS ?= --sim-days 7 --compression 168
bench-soak: venv
	cargo build --release --bins
	rm -rf $(SOAK_DIR) && mkdir -p $(SOAK_DIR) $(SOAK_OUT)
	MALLOC_ARENA_MAX=2 $(CARGO_TARGET_DIR)/release/soak --table $(SOAK_DIR)/events --rejected-table $(SOAK_DIR)/events_rejected \
	  --out $(SOAK_OUT) --commit-interval 30s --events-per-commit 300 --event-types 100 \
	  --late-fraction 0.02 --compact-every 1h --probe-every 6h \
	  --compactor-bin $(CARGO_TARGET_DIR)/release/compactor \
	  --probe-cmd "$(PY) bench/soak_probe.py" --seed 1 $(SOAK_ARGS)
	$(PY) bench/soak_plot.py --results $(SOAK_OUT)

# The same soak on S3 + the DynamoDB commit lock (moto server on a loopback port).
SOAK_S3_OUT ?= bench/results/soak-s3
SOAK_S3_ARGS ?= --sim-days 1 --compression 168
bench-soak-s3: venv
	cargo build --release --bins
	PATH="$(VENV)/bin:$$PATH" $(PY) bench/soak_s3.py --bin-dir $(CARGO_TARGET_DIR)/release --out $(SOAK_S3_OUT) -- $(SOAK_S3_ARGS)
	$(PY) bench/soak_plot.py --results $(SOAK_S3_OUT)

# Commit ceiling into one table (issue 15): 1, 2, 4, 8 concurrent `writer run` on moto S3 +
# DynamoDB lock and on local disk; results in bench/results/multiwriter-<store>.json.
MULTIWRITER_ARGS ?= --store s3,local --writers 1,2,4,8 --seconds 60 --rate 1000
bench-multiwriter: venv
	cargo build --release --bins
	PATH="$(VENV)/bin:$$PATH" $(PY) bench/multiwriter.py $(MULTIWRITER_ARGS)

# Dedupe cost and memory as one partition grows from 1M to 200M keys (issue 15): shard 0's
# writer measured at each size with `--dedupe-keys own-shards` and `all`, plus a compacted copy
# at 10M. Local disk; ~12 GB under /tmp/keyscale at 200M, about 35 minutes. Writes
# bench/results/keyscale-$(KEYSCALE_TAG).{jsonl,md}.
KEYSCALE_TAG ?= local
KEYSCALE_ARGS ?= --sizes 1M,10M,50M,200M --compact-at 10M
bench-keyscale: venv
	cargo build --release --bins
	PATH="$(VENV)/bin:$$PATH" $(PY) bench/keyscale.py $(KEYSCALE_ARGS) --tag $(KEYSCALE_TAG)

# The whole-system simulation (issue 15, bench/sim, stdlib only, seeded): validate against the
# measured multi-writer runs, then every scale from 1/1000x to 1000x.
sim-scaling:
	python3 bench/sim/validate.py --smooth
	python3 bench/sim/scales.py --mode rebase --flush-schedule jitter

## Plan + apply one environment (terraform/envs/$(ENV)) with its backend (backend.hcl, made
## from backend.hcl.example). The image $(IMAGE_TAG) must already be in the environment's ECR
## repository (runbook: terraform/README.md). Shows the plan and asks before applying, unless
## AUTO_APPROVE=1.
ENV ?= dev
IMAGE_TAG ?= $(shell git rev-parse --short HEAD)
TF_ENV_DIR := terraform/envs/$(ENV)
deploy:
	@test -d $(TF_ENV_DIR) || { echo "no environment $(ENV) (terraform/envs/: dev, staging, prod, lowvolume)" >&2; exit 1; }
	@test -f $(TF_ENV_DIR)/backend.hcl || { echo "$(TF_ENV_DIR)/backend.hcl missing: copy backend.hcl.example and fill in the state bucket" >&2; exit 1; }
	cd $(TF_ENV_DIR) && terraform init -input=false -backend-config=backend.hcl
	cd $(TF_ENV_DIR) && terraform plan -input=false -var image_tag=$(IMAGE_TAG) -out=deploy.tfplan
	@if [ "$(AUTO_APPROVE)" != 1 ]; then read -r -p "Apply this plan to $(ENV)? [y/N] " a && [ "$$a" = y ]; fi
	cd $(TF_ENV_DIR) && terraform apply -input=false deploy.tfplan && rm -f deploy.tfplan

clean-lake:
	rm -rf ./lake

# Cold start (issue 16): `writer run` on a table of 10,000 data files over 100 partitions in moto
# S3 (DynamoDB commit lock), events put into kinesalite before it starts; spawn -> first commit
# (goal 5 s), the first append's phases and the S3 requests behind them. Writes
# bench/results/cold-start.json. COLD_START_ARGS e.g. `--runs 1 --scenarios one --full-check`.
bench-cold-start: venv $(NODE_DIR)/node_modules/kinesalite/package.json
	cargo build --release --bins
	KINESALITE_DIR=$(NODE_DIR) PATH="$(VENV)/bin:$$PATH" $(PY) bench/cold_start.py $(COLD_START_ARGS)
