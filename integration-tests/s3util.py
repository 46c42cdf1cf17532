"""Helpers for tests against moto: buckets, readers over S3, a fault-injecting proxy."""
import http.client
import http.server
import json
import random
import socketserver
import threading
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


class FaultProxy:
    """HTTP proxy to moto that fails a share of requests: S3 gets 503 SlowDown, DynamoDB
    gets throttling errors. Failures are injected *before* forwarding (the request never
    reaches moto), except `after_ratio` of DynamoDB ones which are forwarded first and then
    answered with a 500 (the ambiguous case: it happened, the client thinks it failed)."""

    def __init__(self, upstream_port, ratio=0.2, after_ratio=0.05, seed=1):
        self.upstream_port = upstream_port
        self.ratio = ratio
        self.after_ratio = after_ratio
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.injected = 0
        self.forwarded = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self._read_chunked()
                is_ddb = "DynamoDB" in (self.headers.get("X-Amz-Target") or "")
                with proxy.lock:
                    roll = proxy.rng.random()
                if roll < proxy.ratio:
                    with proxy.lock:
                        proxy.injected += 1
                    return self._fail(is_ddb)
                status, headers, data = proxy.forward(self.command, self.path, self.headers, body)
                if is_ddb and roll < proxy.ratio + proxy.after_ratio:
                    with proxy.lock:
                        proxy.injected += 1
                    return self._fail(is_ddb, status=500)
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _read_chunked(self):
                out = b""
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()

            def _fail(self, is_ddb, status=None):
                if is_ddb:
                    body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                                       "message": "injected throttling"}).encode()
                    self.send_response(status or 400)
                    self.send_header("Content-Type", "application/x-amz-json-1.0")
                else:
                    body = b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>"
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def forward(self, method, path, headers, body):
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        hdrs = {k: v for k, v in headers.items() if k.lower() not in ("transfer-encoding", "content-length")}
        hdrs["Content-Length"] = str(len(body))
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        with self.lock:
            self.forwarded += 1
        out = (r.status, r.getheaders(), data)
        conn.close()
        return out

    def close(self):
        self.server.shutdown()
