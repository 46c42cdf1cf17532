"""Apply the data-plane terraform root (terraform/e2e) against the moto AWS emulator.

Starts `python -m moto.server` on a free 127.0.0.1 port, runs `terraform init/apply` of
terraform/e2e (KMS key, Kinesis stream, lake + Athena buckets, DynamoDB lock/lease tables, Glue,
Athena workgroup) with a unique name prefix, checks the resources with boto3, then
`terraform destroy`. Offline: providers come from the filesystem mirror TF_PLUGIN_DIR
(default /opt/tf-plugins). Skipped when terraform or the mirror is missing.

The `data_plane` fixture yields the outputs and the emulator endpoint so further tests (e.g.
running the writer against these resources) can reuse one applied data plane.

Run: .venv/bin/python -m pytest integration-tests/test_terraform_apply.py -v
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")

REPO = Path(__file__).resolve().parents[1]
TF_SRC = REPO / "terraform"
TERRAFORM = shutil.which("terraform")
PLUGIN_DIR = Path(os.environ.get("TF_PLUGIN_DIR", "/opt/tf-plugins"))
REGION = "us-east-1"

pytestmark = [
    pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed"),
    pytest.mark.skipif(not PLUGIN_DIR.is_dir(), reason=f"no terraform provider mirror at {PLUGIN_DIR}"),
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory):
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on {url}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _terraform_env(work: Path) -> dict[str, str]:
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


def _tf(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> str:
    res = subprocess.run(
        [TERRAFORM, *args, "-no-color"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if res.returncode != 0:
        raise AssertionError(f"terraform {' '.join(args)} failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res.stdout


@pytest.fixture(scope="module")
def data_plane(moto_endpoint, tmp_path_factory):
    work = tmp_path_factory.mktemp("tf")
    # Work on a copy: no state, lock file or .terraform/ in the repository, and parallel runs are independent.
    shutil.copytree(
        TF_SRC,
        work / "terraform",
        ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"),
    )
    root = work / "terraform" / "e2e"
    env = _terraform_env(work)
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    tf_vars = [
        "-var", f"aws_endpoint_url={moto_endpoint}",
        "-var", f"name_prefix={prefix}",
        "-var", f"aws_region={REGION}",
        # moto 5.2 cannot delete named queries (DeleteNamedQuery not implemented).
        "-var", "enable_athena_named_queries=false",
    ]  # fmt: skip

    _tf(["init", "-backend=false", "-input=false"], root, env, timeout=120)
    applied = False
    try:
        _tf(["apply", "-auto-approve", "-input=false", *tf_vars], root, env)
        applied = True
        outputs = {k: v["value"] for k, v in json.loads(_tf(["output", "-json"], root, env)).items()}
        yield {"endpoint_url": moto_endpoint, "region": REGION, "name_prefix": prefix, "outputs": outputs}
    finally:
        # Destroy even after a partial apply; a failing destroy fails the test run.
        _tf(["destroy", "-auto-approve", "-input=false", "-refresh=false", *tf_vars], root, env)
    assert applied


def _client(service: str, data_plane):
    return boto3.client(
        service,
        endpoint_url=data_plane["endpoint_url"],
        region_name=data_plane["region"],
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def test_outputs_follow_naming(data_plane):
    out = data_plane["outputs"]
    prefix = data_plane["name_prefix"]
    assert out["stream_name"] == f"{prefix}-events"
    assert out["events_table_uri"] == f"s3://{out['lake_bucket_name']}/lake/events"
    assert out["rejected_table_uri"] == f"s3://{out['lake_bucket_name']}/lake/events_rejected"
    assert out["writer_environment"]["WRITER_COMMIT_LOCK"] == "dynamodb"
    assert out["writer_environment"]["WRITER_LOCK_TABLE"] == out["lock_table_name"]


def test_stream_exists_and_is_kms_encrypted(data_plane):
    out = data_plane["outputs"]
    summary = _client("kinesis", data_plane).describe_stream_summary(StreamName=out["stream_name"])[
        "StreamDescriptionSummary"
    ]
    assert summary["StreamStatus"] == "ACTIVE"
    assert summary["StreamARN"] == out["stream_arn"]
    assert summary["EncryptionType"] == "KMS"
    assert summary["KeyId"] == out["kms_key_arn"]


def test_lake_bucket_encrypted_private_tls_only(data_plane):
    s3 = _client("s3", data_plane)
    bucket = data_plane["outputs"]["lake_bucket_name"]

    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == data_plane["outputs"]["kms_key_arn"]

    pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert pab == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }

    policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert any(
        st["Effect"] == "Deny" and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for st in policy["Statement"]
    )

    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    prefixes = {r.get("Filter", {}).get("Prefix") for r in s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert {"lake/events/_delta_log/.tmp/", "lake/events_rejected/_delta_log/.tmp/"} <= prefixes


def test_lock_table_has_delta_s3dynamodb_schema(data_plane):
    ddb = _client("dynamodb", data_plane)
    name = data_plane["outputs"]["lock_table_name"]
    table = ddb.describe_table(TableName=name)["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": "tablePath", "KeyType": "HASH"},
        {"AttributeName": "fileName", "KeyType": "RANGE"},
    ]
    assert sorted((a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]) == [
        ("fileName", "S"),
        ("tablePath", "S"),
    ]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expireTime"
    assert ttl["TimeToLiveStatus"] == "ENABLED"


def test_lease_table_exists(data_plane):
    table = _client("dynamodb", data_plane).describe_table(TableName=data_plane["outputs"]["lease_table_name"])["Table"]
    assert table["KeySchema"] == [{"AttributeName": "leaseKey", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_glue_delta_table_and_athena_workgroup(data_plane):
    out = data_plane["outputs"]
    table = _client("glue", data_plane).get_table(DatabaseName=out["glue_database_name"], Name=out["glue_events_table_name"])[
        "Table"
    ]
    assert table["Parameters"]["table_type"] == "DELTA"
    assert table["StorageDescriptor"]["Location"] == out["events_table_uri"]
    assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [("event_type", "string"), ("created_date", "date")]

    wg = _client("athena", data_plane).get_work_group(WorkGroup=out["athena_workgroup_name"])["WorkGroup"]
    assert wg["State"] == "ENABLED"
