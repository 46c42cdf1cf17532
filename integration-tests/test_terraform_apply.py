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
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import free_port
from tfutil import REGION, REQUIRES_TERRAFORM, TF_SRC, terraform_env, tf, wait_for_moto

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto.server")

pytestmark = REQUIRES_TERRAFORM


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_moto(url, proc, log_path)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _empty_versioned_bucket(s3, bucket: str) -> None:
    """Delete every object version and delete marker while versioning is still enabled.

    `terraform destroy` suspends versioning before it force-destroys the bucket, and moto 5.2.5
    answers a DeleteObjects that removes a delete marker from a version-suspended bucket with a
    500 (`'FakeDeleteMarker' object has no attribute 'dispose'`), which the provider retries until
    the test times out. Real S3 has no such problem; the writer and compactor leave delete markers
    (deleted staged commit files, vacuumed data files), so the bucket is emptied here first.
    """
    # List everything first: deleting while paging would move the markers under the paginator.
    doomed = [
        {"Key": v["Key"], "VersionId": v["VersionId"]}
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
    ]
    for i in range(0, len(doomed), 1000):
        res = s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed[i : i + 1000], "Quiet": True})
        assert not res.get("Errors"), res["Errors"][:3]


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
    env = terraform_env(work)
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    tf_vars = [
        "-var", f"aws_endpoint_url={moto_endpoint}",
        "-var", f"name_prefix={prefix}",
        "-var", f"aws_region={REGION}",
        # moto 5.2 cannot delete named queries (DeleteNamedQuery not implemented).
        "-var", "enable_athena_named_queries=false",
    ]  # fmt: skip

    tf(["init", "-backend=false", "-input=false"], root, env, timeout=120)
    applied = False
    outputs = {}
    try:
        tf(["apply", "-auto-approve", "-input=false", *tf_vars], root, env)
        applied = True
        outputs = {k: v["value"] for k, v in json.loads(tf(["output", "-json"], root, env)).items()}
        yield {"endpoint_url": moto_endpoint, "region": REGION, "name_prefix": prefix, "outputs": outputs}
    finally:
        if "lake_bucket_name" in outputs:
            s3 = _client("s3", {"endpoint_url": moto_endpoint, "region": REGION})
            _empty_versioned_bucket(s3, outputs["lake_bucket_name"])
        # Destroy even after a partial apply; a failing destroy fails the test run.
        tf(["destroy", "-auto-approve", "-input=false", "-refresh=false", *tf_vars], root, env)
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


def test_writer_and_compactor_run_on_what_terraform_created(data_plane, tmp_path):
    """The whole path on the emulated account: load generator -> the Terraform stream ->
    `writer run` (leases + DynamoDB lock from Terraform) -> Delta table in the Terraform bucket
    -> compactor -> read back with DuckDB and polars-deltalake."""
    import urllib.parse

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import _bin, duckdb_delta_extension, run  # noqa: E402
    from expected import expected_from_lines  # noqa: E402

    writer, compactor, loadgen = _bin("writer"), _bin("compactor"), _bin("loadgen")
    out = data_plane["outputs"]
    env = {
        "AWS_ENDPOINT_URL": data_plane["endpoint_url"], "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": data_plane["region"], "AWS_ALLOW_HTTP": "true", "AWS_EC2_METADATA_DISABLED": "true",
    }
    # The emulator speaks plain HTTP, which the bucket's TLS-only policy (verified by
    # test_lake_bucket_encrypted_private_tls_only above) rightly denies: lift it for this run.
    _client("s3", data_plane).delete_bucket_policy(Bucket=out["lake_bucket_name"])
    end_time = 1_764_000_000
    gen = ["--count", "1500", "--seed", "77", "--end-time", str(end_time), "--duplicate-ratio", "0.1", "--malformed-ratio", "0.02"]
    run([loadgen, "generate", *gen, "--kinesis-stream", out["stream_name"]], env=env)
    summary, _ = run([writer, "run", "--stream", out["stream_name"], "--table", out["events_table_uri"],
                      "--rejected-table", out["rejected_table_uri"], "--lease-table", out["lease_table_name"],
                      "--commit-lock", "dynamodb", "--lock-table", out["lock_table_name"], "--lease-duration", "3s",
                      "--flush-interval", "1s", "--poll-interval", "200ms", "--metrics-port", "0",
                      "--exit-when-idle", "5s", "--max-future", "36500d"], env=env)
    compacted, _ = run([compactor, "run", "--table", out["events_table_uri"], "--commit-lock", "dynamodb",
                        "--lock-table", out["lock_table_name"], "--target-size", "1MiB"], env=env)
    assert compacted["command"] == "run"

    lines_file = tmp_path / "lines.ndjson"
    run([loadgen, "generate", *gen, "--output", str(lines_file)])
    expected, rejects, _ = expected_from_lines(lines_file.read_bytes().split(b"\n")[:-1], end_time)
    assert summary["written"] == len(expected) and summary["rejected"] == len(rejects)

    import duckdb
    import duckdb_extension_httpfs
    import polars_deltalake

    httpfs = sorted(Path(duckdb_extension_httpfs.__file__).parent.rglob("httpfs.duckdb_extension"))[0]
    con = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false",
                                 "autoload_known_extensions": "false"})
    con.execute(f"LOAD '{httpfs}'")
    con.execute(f"LOAD '{duckdb_delta_extension()}'")
    host = urllib.parse.urlparse(data_plane["endpoint_url"]).netloc
    con.execute(f"""CREATE SECRET moto (TYPE S3, KEY_ID 'test', SECRET 'test', REGION '{data_plane["region"]}',
                    ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false)""")
    rows = con.execute(f"SELECT event_uuid, event_type, created_date FROM delta_scan('{out['events_table_uri']}')").fetchall()
    assert len(rows) == len(set(rows)) == len(expected)
    assert set(rows) == set(expected)
    df = polars_deltalake.read_delta(out["events_table_uri"], storage_options={
        "aws_endpoint_url": data_plane["endpoint_url"], "aws_access_key_id": "test", "aws_secret_access_key": "test",
        "aws_region": data_plane["region"], "aws_allow_http": "true"})
    assert df.height == len(expected)
