"""A fault-injecting HTTP proxy between a client (the writer) and moto.

    proxy = FaultProxy(moto["port"])                      # 127.0.0.1, free port
    rule = proxy.add(Rule("error", "kinesis", "GetRecords", status=500, duration=16))
    env = {**moto["env"], **proxy.endpoints("kinesis")}   # or proxy.endpoints() for all

Operations are named per service: Kinesis and DynamoDB by the `X-Amz-Target` action
(`GetRecords`, `PutItem`, ...; DynamoDB rules may also name the `TableName` of the body),
S3 by method and shape: `PUT`, `COPY` (PUT with `x-amz-copy-source`), `GET`, `LIST` (GET
with `list-type`), `HEAD`, `DELETE`, `POST`. A rule's `service`, `op` and `table` may each be
None (any), a string or a tuple of strings.

Actions: `error` (status 500 or 503), `throttle`, `deny` (non-retryable), each answered with
the service's own error shape; `delay` (sleep `delay` s, then forward); `drop` (close the
connection without an answer). With `after=True` the request is forwarded first and the
action replaces moto's answer: the request took effect, the client never hears it.

Schedule: the rule is armed `start_after` s after it is added, for `duration` s (None:
forever), fires with `probability`, at most `max_count` times. Rules can be added and
removed while the proxy runs. `proxy.requests` counts requests per (service, op);
`rule.count`, `rule.first`, `rule.last` tell what a rule injected and when.
"""
import collections
import http.client
import http.server
import json
import random
import threading
import time
import urllib.parse

# Error (status, code) per service and kind; `error` picks by status.
ERRORS = {
    "kinesis": {500: "InternalFailure", 503: "ServiceUnavailable",
                "throttle": (400, "ProvisionedThroughputExceededException"), "deny": (400, "AccessDeniedException")},
    "dynamodb": {500: "InternalServerError", 503: "ServiceUnavailable",
                 "throttle": (400, "ProvisionedThroughputExceededException"), "deny": (400, "AccessDeniedException")},
    "s3": {500: "InternalError", 503: "ServiceUnavailable",
           "throttle": (503, "SlowDown"), "deny": (403, "AccessDenied")},
}
JSON_TYPES = {"kinesis": "application/x-amz-json-1.1", "dynamodb": "application/x-amz-json-1.0"}


def classify(method, path, headers, body):
    """(service, op, table) of a request; table only for DynamoDB."""
    target = headers.get("X-Amz-Target") or ""
    if "." in target:
        prefix, op = target.split(".", 1)
        service = "kinesis" if prefix.startswith("Kinesis") else "dynamodb" if prefix.startswith("DynamoDB") else prefix
        table = None
        if service == "dynamodb":
            try:
                table = json.loads(body or b"{}").get("TableName")
            except ValueError:
                pass
        return service, op, table
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query, keep_blank_values=True)
    if method == "PUT" and headers.get("x-amz-copy-source"):
        return "s3", "COPY", None
    if method == "GET" and "list-type" in query:
        return "s3", "LIST", None
    return "s3", method, None


def _matches(want, value):
    return want is None or value == want or (isinstance(want, tuple) and value in want)


class Rule:
    """(operation matcher, action, schedule); see the module docstring."""

    def __init__(self, action, service=None, op=None, table=None, *, status=500, code=None, delay=0.0,
                 after=False, start_after=0.0, duration=None, probability=1.0, max_count=None):
        assert action in ("error", "throttle", "deny", "delay", "drop"), action
        self.action, self.service, self.op, self.table = action, service, op, table
        self.status, self.code, self.delay, self.after = status, code, delay, after
        self.start_after, self.duration = start_after, duration
        self.probability, self.max_count = probability, max_count
        self.count, self.first, self.last, self.added = 0, None, None, None

    @property
    def starts_at(self):
        return self.added + self.start_after

    @property
    def ends_at(self):
        """When the window closes (None: never)."""
        return None if self.duration is None else self.starts_at + self.duration

    def fires(self, service, op, table, now, rng):
        if not (_matches(self.service, service) and _matches(self.op, op) and _matches(self.table, table)):
            return False
        if now < self.starts_at or (self.ends_at is not None and now >= self.ends_at):
            return False
        if self.max_count is not None and self.count >= self.max_count:
            return False
        return self.probability >= 1.0 or rng.random() < self.probability

    def error(self, service):
        """(status, code) this rule answers with (for error/throttle/deny)."""
        table = ERRORS.get(service, ERRORS["s3"])
        status, code = (self.status, table[self.status]) if self.action == "error" else table[self.action]
        return status, self.code or code

    def __repr__(self):
        what = "/".join(str(x) for x in (self.service, self.op, self.table) if x)
        return f"Rule({self.action}{' after' if self.after else ''} {what or '*'}: {self.count} injected)"


class FaultProxy:
    """The proxy: a ThreadingHTTPServer on 127.0.0.1 forwarding to moto on `upstream_port`."""

    def __init__(self, upstream_port, seed=1):
        self.upstream_port = upstream_port
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.rules = []
        self.requests = collections.Counter()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: every answer carries Content-Length

            def log_message(self, *a):
                pass

            def _handle(self):
                body = self._read_body()
                service, op, table = classify(self.command, self.path, self.headers, body)
                rule = proxy._pick(service, op, table)
                if rule and rule.action == "delay":
                    time.sleep(rule.delay)
                    rule = None
                if rule and not rule.after:
                    return self._inject(rule, service)
                try:
                    answer = proxy.forward(self.command, self.path, self.headers, body)
                except OSError:
                    self.close_connection = True  # moto unreachable: the client sees a reset
                    return
                if rule:
                    return self._inject(rule, service)
                self._answer(*answer)

            def _read_body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        out.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(out)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _inject(self, rule, service):
                if rule.action == "drop":
                    self.close_connection = True  # closed without a byte of answer
                    return
                status, code = rule.error(service)
                if service in JSON_TYPES:
                    body = json.dumps({"__type": code, "message": f"injected {code}"}).encode()
                    headers = [("Content-Type", JSON_TYPES[service]), ("x-amzn-ErrorType", code)]
                else:
                    body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>"
                            f"<Message>injected {code}</Message><RequestId>fault</RequestId></Error>").encode()
                    headers = [("Content-Type", "application/xml")]
                self._answer(status, headers, body)

            def _answer(self, status, headers, data):
                self.send_response(status)
                length = len(data)
                for k, v in headers:
                    if k.lower() == "content-length" and self.command == "HEAD":
                        length = v  # a HEAD answer's length is the object's, with no body
                    elif k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def endpoints(self, *services):
        """Environment pointing the AWS SDKs at the proxy: for `services` ("kinesis",
        "dynamodb", "s3") only, or for all when none are named."""
        if not services:
            return {"AWS_ENDPOINT_URL": self.url}
        return {f"AWS_ENDPOINT_URL_{s.upper()}": self.url for s in services}

    def add(self, rule):
        """Arm a rule (its schedule starts now); returns it."""
        with self.lock:
            rule.added = time.time()
            self.rules.append(rule)
        return rule

    def remove(self, rule):
        with self.lock:
            self.rules.remove(rule)

    @property
    def injected(self):
        return sum(r.count for r in self.rules)

    def _pick(self, service, op, table):
        now = time.time()
        with self.lock:
            self.requests[(service, op)] += 1
            for rule in self.rules:
                if rule.fires(service, op, table, now, self.rng):
                    rule.count += 1
                    rule.first = rule.first or now
                    rule.last = now
                    return rule
        return None

    def forward(self, method, path, headers, body):
        """Send the request to moto; (status, headers, body) of its answer."""
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        try:
            hdrs = {k: v for k, v in headers.items() if k.lower() not in ("transfer-encoding", "content-length", "expect")}
            hdrs["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            return r.status, r.getheaders(), r.read()
        finally:
            conn.close()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
