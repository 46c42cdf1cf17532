"""The binaries under the IAM that Terraform writes, on an emulator that enforces IAM.

Issue 13: every other test runs against a permissive moto, so a policy missing a permission
(or a program needing one it must not have, like `dynamodb:CreateTable` at every start) only
shows up on a real account. Here:

1. moto is started with IAM enforcement (`INITIAL_NO_AUTH_ACTION_COUNT`): the first 3 calls
   create an admin user with an access key; every later request must be signed by a known
   key and allowed by that principal's policies.
2. `terraform/e2e` (KMS, Kinesis, lake bucket, DynamoDB lock + lease tables, Glue, Athena and
   `modules/iam`: the writer and compactor task roles and the producer policy, exactly as the
   stack deploys them) is applied as the admin.
3. The programs run with temporary credentials from STS AssumeRole of those roles: a producer
   (`loadgen generate --kinesis-stream`, PutRecords) under the producer policy; `writer run`
   (with tables that exist and no `dynamodb:CreateTable`: issue 13, defect 1) and
   `writer ingest` under the writer role; `compactor run` on BOTH tables under the compactor
   role. Everything must work.
4. Negative checks: what the roles must not do is denied.

What moto 5.2 enforces, found by trying (see the README of terraform/, "Emulator notes"):

* Signatures and access keys everywhere; identity policies (inline and attached) of users and
  assumed roles; explicit Deny; STS AssumeRole against the role's trust policy (AWS principals
  only: a `Service` principal makes moto fail, so the test replaces the ECS trust policy,
  which it cannot exercise anyway, by one naming the test's admin user).
* `Resource` is evaluated for S3 (bucket and object ARNs), IAM, STS and SQS only. For every
  other service moto checks the action against Resource "*", so statements naming a table or
  stream never match and every call is denied. This test's moto launcher (`serve()` below)
  therefore derives the ARN for DynamoDB (TableName) and Kinesis (StreamName / StreamARN /
  the shard iterator) before moto's own check - the policies themselves are untouched.
* S3 DeleteObjects (the multi-object delete object_store uses) is checked by moto as one
  s3:DeleteObject on the *bucket* ARN, where AWS checks each key; the launcher checks each key.
* S3 bucket policies are evaluated: the lake bucket's TLS-only Deny refuses everything over
  moto's plain HTTP, so the test deletes that bucket policy after the apply.
* NOT enforced: `Condition` blocks of identity policies (moto has no request context, so
  `s3:prefix`, `kms:ViaService` and `cloudwatch:namespace` conditions always pass), KMS key
  policies and the KMS permissions SSE needs (moto's S3, Kinesis and DynamoDB never call KMS
  as the caller), permission boundaries and SCPs.

Run: make venv && ~/.cache/events-lake/venv/bin/python -m pytest integration-tests/test_terraform_iam.py -v
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

ADMIN_USER = "e2e-admin"
# CreateUser, PutUserPolicy, CreateAccessKey: the only unauthenticated calls moto accepts.
NO_AUTH_CALLS = 3


def serve(port: int) -> None:
    """moto server whose DynamoDB and Kinesis calls are checked against the resource's ARN."""
    from moto.dynamodb.responses import DynamoHandler
    from moto.kinesis.responses import KinesisResponse
    from moto.kinesis.utils import decompose_shard_iterator
    from moto.s3.responses import S3Response
    from moto.server import main
    import xmltodict

    def param(self, name):
        try:
            value = self._get_param(name)
        except Exception:
            value = None
        if value is None:
            try:
                body = self.body if isinstance(self.body, dict) else json.loads(self.body or "{}")
                value = body.get(name)
            except Exception:
                value = None
        return value

    def dynamodb_resource(self) -> str:
        table = param(self, "TableName")
        if not table:
            return "*"
        if table.startswith("arn:"):
            return table
        return f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/{table}"

    def kinesis_resource(self) -> str:
        arn = param(self, "StreamARN")
        if arn:
            return arn
        name = param(self, "StreamName")
        if not name:
            iterator = param(self, "ShardIterator")
            if iterator:
                name = decompose_shard_iterator(iterator)[0]
        if not name:
            return "*"
        return f"arn:aws:kinesis:{self.region}:{self.current_account}:stream/{name}"

    # S3 DeleteObjects: AWS authorizes s3:DeleteObject for each key; moto checks it once against
    # the bucket ARN, so a role allowed to delete under a prefix could delete nothing. Checked
    # per key here (all or nothing: any denied key denies the whole request).
    original_s3_auth = S3Response._authenticate_and_authorize_s3_action

    def s3_auth(self, bucket_name=None, key_name=None):
        if key_name is None and bucket_name and self.data.get("Action") == "DeleteObject" and self.is_delete_keys():
            objects = xmltodict.parse(self.body)["Delete"].get("Object", [])
            for obj in objects if isinstance(objects, list) else [objects]:
                original_s3_auth(self, bucket_name=bucket_name, key_name=obj["Key"])
            return
        original_s3_auth(self, bucket_name=bucket_name, key_name=key_name)

    DynamoHandler._determine_resource = dynamodb_resource
    KinesisResponse._determine_resource = kinesis_resource
    S3Response._authenticate_and_authorize_s3_action = s3_auth
    main(["-H", "127.0.0.1", "-p", str(port)])


if __name__ == "__main__":
    serve(int(sys.argv[1]))
    sys.exit(0)


import pytest  # noqa: E402

boto3 = pytest.importorskip("boto3")
botocore_exceptions = pytest.importorskip("botocore.exceptions")
pytest.importorskip("moto.server")

sys.path.insert(0, str(Path(__file__).parent))
from conftest import _bin, free_port, run  # noqa: E402
from tfutil import REGION, REQUIRES_TERRAFORM, TF_SRC, terraform_env, tf, wait_for_moto  # noqa: E402

pytestmark = REQUIRES_TERRAFORM


def _client(service: str, endpoint: str, creds: dict[str, str]):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=creds.get("AWS_SESSION_TOKEN"),
    )


def _denied(call, *args, **kwargs) -> str:
    """Run a boto3 call that must be refused for lack of permission; return the error code."""
    with pytest.raises(botocore_exceptions.ClientError) as e:
        call(*args, **kwargs)
    return _assert_error(e.value, "AccessDenied")


def _assert_error(error, code: str) -> str:
    # moto answers IAM failures of JSON-protocol services (DynamoDB, Kinesis) with the XML body
    # of IAM errors, which botocore cannot parse: then the code is only in the message.
    err = error.response["Error"]
    assert err["Code"].startswith(code) or (err["Code"] == "403" and f"<Code>{code}" in err.get("Message", "")), error.response
    return code


@pytest.fixture(scope="module")
def moto_iam(tmp_path_factory):
    """moto with IAM enforcement, and the keys of the admin user made by the 3 free calls."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto-iam") / "moto.log"
    log = log_path.open("w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(NO_AUTH_CALLS)
    proc = subprocess.Popen(
        [sys.executable, __file__, str(port)], stdout=log, stderr=subprocess.STDOUT, env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_moto(url, proc, log_path)
        anon = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
        iam = _client("iam", url, anon)
        iam.create_user(UserName=ADMIN_USER)
        iam.put_user_policy(
            UserName=ADMIN_USER,
            PolicyName="admin",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            ),
        )
        key = iam.create_access_key(UserName=ADMIN_USER)["AccessKey"]
        admin = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        yield {"endpoint_url": url, "admin": admin, "log": log_path}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def deployed(moto_iam, tmp_path_factory):
    """terraform/e2e applied as the admin; the roles' credentials from STS AssumeRole.

    No destroy: the emulator is thrown away with the fixture (test_terraform_apply.py covers
    destroy), which keeps this test well under 3 minutes.
    """
    work = tmp_path_factory.mktemp("tf-iam")
    shutil.copytree(TF_SRC, work / "terraform", ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"))
    root = work / "terraform" / "e2e"
    env = terraform_env(work)
    prefix = f"iam-{uuid.uuid4().hex[:8]}"
    endpoint, admin = moto_iam["endpoint_url"], moto_iam["admin"]
    tf_vars = [
        "-var", f"aws_endpoint_url={endpoint}",
        "-var", f"name_prefix={prefix}",
        "-var", f"aws_region={REGION}",
        "-var", f"emulator_access_key={admin['AWS_ACCESS_KEY_ID']}",
        "-var", f"emulator_secret_key={admin['AWS_SECRET_ACCESS_KEY']}",
        "-var", "enable_athena_named_queries=false",
    ]  # fmt: skip
    tf(["init", "-backend=false", "-input=false"], root, env, timeout=120)
    tf(["apply", "-auto-approve", "-input=false", "-parallelism=20", *tf_vars], root, env)
    out = {k: v["value"] for k, v in json.loads(tf(["output", "-json"], root, env)).items()}

    # moto evaluates the bucket policy, and its TLS-only Deny refuses every request to the
    # plain-HTTP emulator (test_terraform_apply.py checks the statement): lifted here.
    _client("s3", endpoint, admin).delete_bucket_policy(Bucket=out["lake_bucket_name"])

    iam = _client("iam", endpoint, admin)
    sts = _client("sts", endpoint, admin)
    admin_arn = sts.get_caller_identity()["Arn"]
    trust = json.dumps(
        {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "sts:AssumeRole"}]}
    )  # fmt: skip

    # The task roles, with their Terraform permissions; only the trust is swapped (ECS cannot
    # assume them here, and moto cannot evaluate a Service principal).
    def assume(role_arn: str, session: str) -> dict[str, str]:
        iam.update_assume_role_policy(RoleName=role_arn.rsplit("/", 1)[1], PolicyDocument=trust)
        c = sts.assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]
        return {"AWS_ACCESS_KEY_ID": c["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": c["SecretAccessKey"],
                "AWS_SESSION_TOKEN": c["SessionToken"]}  # fmt: skip

    producer_role = iam.create_role(RoleName=f"{prefix}-producer-test", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    iam.attach_role_policy(RoleName=f"{prefix}-producer-test", PolicyArn=out["producer_policy_arn"])

    yield {
        "endpoint_url": endpoint,
        "outputs": out,
        "admin": admin,
        "writer": assume(out["writer_role_arn"], "writer"),
        "compactor": assume(out["compactor_role_arn"], "compactor"),
        "producer": assume(producer_role, "producer"),
    }


def _env(deployed, who: str) -> dict[str, str]:
    env = {
        "AWS_ENDPOINT_URL": deployed["endpoint_url"], "AWS_REGION": REGION, "AWS_ALLOW_HTTP": "true",
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_SESSION_TOKEN": "", "RUST_LOG": "warn",
    }  # fmt: skip
    env.update(deployed[who])
    return env


def test_enforcement_is_on(moto_iam, deployed):
    """Unknown keys are refused, and a known principal is limited to its policies."""
    with pytest.raises(botocore_exceptions.ClientError) as e:
        _client("dynamodb", moto_iam["endpoint_url"], {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}).list_tables()
    _assert_error(e.value, "InvalidClientTokenId")
    # The writer role may describe its tables, but not list every table of the account.
    ddb = _client("dynamodb", deployed["endpoint_url"], deployed["writer"])
    ddb.describe_table(TableName=deployed["outputs"]["lock_table_name"])
    _denied(ddb.list_tables)


def test_binaries_work_under_the_terraform_roles(deployed, tmp_path):
    """Producer -> stream -> `writer run` -> both tables; `writer ingest`; `compactor run` on
    both tables: each under its own role, nothing else."""
    out = deployed["outputs"]
    writer, compactor, loadgen = _bin("writer"), _bin("compactor"), _bin("loadgen")
    end_time = 1_764_000_000
    gen = ["--count", "600", "--seed", "13", "--end-time", str(end_time), "--duplicate-ratio", "0.1", "--malformed-ratio", "0.05"]
    run([loadgen, "generate", *gen, "--kinesis-stream", out["stream_name"]], env=_env(deployed, "producer"))

    # Defect 1: the writer role has no dynamodb:CreateTable; the tables exist, so it starts.
    ddb = _client("dynamodb", deployed["endpoint_url"], deployed["writer"])
    _denied(ddb.create_table, TableName=out["lease_table_name"], BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}])  # fmt: skip
    lock = ["--commit-lock", "dynamodb", "--lock-table", out["lock_table_name"]]
    summary, _ = run([writer, "run", "--stream", out["stream_name"], "--table", out["events_table_uri"],
                      "--rejected-table", out["rejected_table_uri"], "--lease-table", out["lease_table_name"],
                      *lock, "--lease-duration", "3s", "--flush-interval", "1s", "--poll-interval", "200ms",
                      "--metrics-port", "0", "--exit-when-idle", "3s", "--max-future", "36500d"],
                     env=_env(deployed, "writer"), timeout=180)  # fmt: skip
    assert summary["written"] > 0 and summary["rejected"] > 0, summary

    lines = tmp_path / "more.ndjson"
    run([loadgen, "generate", "--count", "300", "--seed", "14", "--end-time", str(end_time), "--malformed-ratio", "0.05",
         "--output", str(lines)])  # fmt: skip
    ingested, _ = run([writer, "ingest", "--input", str(lines), "--table", out["events_table_uri"],
                       "--rejected-table", out["rejected_table_uri"], *lock, "--max-future", "36500d"],
                      env=_env(deployed, "writer"))  # fmt: skip
    assert ingested["written"] > 0 and ingested["rejected"] > 0, ingested

    # Defect 5: both tables are maintained, under the compactor role.
    for table in (out["events_table_uri"], out["rejected_table_uri"]):
        compacted, _ = run([compactor, "run", "--table", table, *lock, "--target-size", "1MiB"],
                           env=_env(deployed, "compactor"))  # fmt: skip
        assert compacted["command"] == "run", compacted

    s3 = _client("s3", deployed["endpoint_url"], deployed["admin"])
    for prefix in ("lake/events/_delta_log/", "lake/events_rejected/_delta_log/"):
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=out["lake_bucket_name"], Prefix=prefix).get("Contents", [])]
        assert any(k.endswith(".checkpoint.parquet") for k in keys), (prefix, keys)


def test_what_the_roles_must_not_do(deployed):
    out = deployed["outputs"]
    endpoint, bucket = deployed["endpoint_url"], out["lake_bucket_name"]
    admin_s3 = _client("s3", endpoint, deployed["admin"])
    admin_s3.put_object(Bucket=bucket, Key="other/secret.json", Body=b"{}")
    other_stream = f"{out['stream_name']}-other"
    _client("kinesis", endpoint, deployed["admin"]).create_stream(StreamName=other_stream, ShardCount=1)

    # Writer: no table deletion or creation, nothing outside the two table prefixes, no producing.
    w_ddb = _client("dynamodb", endpoint, deployed["writer"])
    _denied(w_ddb.delete_table, TableName=out["lock_table_name"])
    _denied(w_ddb.delete_table, TableName=out["lease_table_name"])
    w_s3 = _client("s3", endpoint, deployed["writer"])
    _denied(w_s3.get_object, Bucket=bucket, Key="other/secret.json")
    _denied(w_s3.put_object, Bucket=bucket, Key="other/x.json", Body=b"{}")
    _denied(w_s3.delete_bucket, Bucket=bucket)
    w_kin = _client("kinesis", endpoint, deployed["writer"])
    _denied(w_kin.put_records, StreamName=out["stream_name"], Records=[{"Data": b"{}", "PartitionKey": "k"}])
    _denied(w_kin.list_shards, StreamName=other_stream)

    # Compactor: the tables and the lock only - no stream, no lease table, no other prefix.
    c_ddb = _client("dynamodb", endpoint, deployed["compactor"])
    _denied(c_ddb.get_item, TableName=out["lease_table_name"], Key={"leaseKey": {"S": "x"}})
    _denied(c_ddb.delete_table, TableName=out["lock_table_name"])
    _denied(_client("kinesis", endpoint, deployed["compactor"]).list_shards, StreamName=out["stream_name"])
    _denied(_client("s3", endpoint, deployed["compactor"]).get_object, Bucket=bucket, Key="other/secret.json")

    # Producer: put to its stream only; no reading, no other stream, no lake.
    p_kin = _client("kinesis", endpoint, deployed["producer"])
    p_kin.put_records(StreamName=out["stream_name"], Records=[{"Data": b"{}", "PartitionKey": "k"}])
    _denied(p_kin.put_records, StreamName=other_stream, Records=[{"Data": b"{}", "PartitionKey": "k"}])
    shard = p_kin.list_shards(StreamName=out["stream_name"])["Shards"][0]["ShardId"]
    _denied(p_kin.get_shard_iterator, StreamName=out["stream_name"], ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    _denied(_client("s3", endpoint, deployed["producer"]).list_objects_v2, Bucket=bucket, Prefix="lake/events/")


def test_missing_table_names_the_missing_permission(deployed):
    """Defect 1, the other half: when a table really is missing, the writer (which may not
    create it) fails saying which permission it lacks. Runs last: it deletes the lease table."""
    out = deployed["outputs"]
    _client("dynamodb", deployed["endpoint_url"], deployed["admin"]).delete_table(TableName=out["lease_table_name"])
    _, p = run([_bin("writer"), "run", "--stream", out["stream_name"], "--table", out["events_table_uri"],
                "--rejected-table", out["rejected_table_uri"], "--lease-table", out["lease_table_name"],
                "--commit-lock", "dynamodb", "--lock-table", out["lock_table_name"], "--metrics-port", "0",
                "--exit-when-idle", "3s"], env=_env(deployed, "writer"), check=False, timeout=120)  # fmt: skip
    err = p.stderr.decode(errors="replace")
    assert p.returncode != 0, err[-3000:]
    assert "dynamodb:CreateTable" in err and out["lease_table_name"] in err, err[-3000:]
