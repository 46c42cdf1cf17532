"""Helpers for tests against moto: buckets, readers over S3 (the fault-injecting proxy is in
`faults.py`)."""
import urllib.parse

import boto3

from conftest import duckdb_delta_extension


def client(moto, service):
    return boto3.client(service, endpoint_url=moto["url"], region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def make_bucket(moto, name):
    client(moto, "s3").create_bucket(Bucket=name)
    return name


def duck_s3(moto):
    """DuckDB with the delta extension reading from moto's S3."""
    import duckdb
    import duckdb_extension_httpfs

    import pathlib
    httpfs = sorted(pathlib.Path(duckdb_extension_httpfs.__file__).parent.rglob("httpfs.duckdb_extension"))[0]
    con = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false",
                                 "autoload_known_extensions": "false"})
    con.execute(f"LOAD '{httpfs}'")
    con.execute(f"LOAD '{duckdb_delta_extension()}'")
    host = urllib.parse.urlparse(moto["url"]).netloc
    con.execute(f"""CREATE SECRET moto (TYPE S3, KEY_ID 'test', SECRET 'test', REGION 'us-east-1',
                    ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false)""")
    return con


def polars_s3_options(moto):
    return {"aws_endpoint_url": moto["url"], "aws_access_key_id": "test", "aws_secret_access_key": "test",
            "aws_region": "us-east-1", "aws_allow_http": "true", "aws_virtual_hosted_style_request": "false"}


def log_versions(moto, bucket, prefix):
    s3 = client(moto, "s3")
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/_delta_log/"):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return sorted(int(k.rsplit("/", 1)[1].split(".")[0]) for k in keys
                  if k.endswith(".json") and "/.tmp/" not in k and k.rsplit("/", 1)[1][:20].isdigit())


def staged_commit_files(moto, bucket, prefix):
    """delta-rs' staged commit files (`_delta_log/_commit_<uuid>.json.tmp`) left in a table:
    the DynamoDB log store deletes each once its commit is made."""
    s3 = client(moto, "s3")
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/_delta_log/_commit_"):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def temp_commit_files(moto, bucket, prefix):
    """The DynamoDB log store's temp commit files (`_delta_log/.tmp/N.json.<uuid>`) left in a
    table: each is deleted once its entry is published and marked complete."""
    s3 = client(moto, "s3")
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/_delta_log/.tmp/"):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys
