"""Shared fixtures: the built binaries, independent Delta readers, and a moto server.

Nothing here shares code with delta-rs: tables are read back with DuckDB's delta extension
(delta-kernel-rs under DuckDB) and polars-deltalake, and the expected rows are computed by
`expected.py`, an independent Python implementation of the rules.
"""
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def _bin(name):
    path = pathlib.Path(os.environ.get(f"{name.upper()}_BIN", TARGET / "debug" / name))
    if not path.exists():
        pytest.fail(f"{path} not built; run `make build` (or set {name.upper()}_BIN)")
    return str(path)


@pytest.fixture(scope="session")
def writer_bin():
    return _bin("writer")


@pytest.fixture(scope="session")
def compactor_bin():
    return _bin("compactor")


@pytest.fixture(scope="session")
def loadgen_bin():
    """The load generator (`loadgen generate`), a separate binary so it is not in the image."""
    return _bin("loadgen")


def run(cmd, *, env=None, input=None, check=True, timeout=600):
    """Run a CLI; return (last stdout line parsed as JSON or None, completed process)."""
    full_env = dict(os.environ)
    full_env.setdefault("RUST_LOG", "warn")
    if env:
        full_env.update(env)
    p = subprocess.run(cmd, env=full_env, input=input, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(
            f"{cmd} exited {p.returncode}\nstdout:\n{p.stdout.decode(errors='replace')[-4000:]}"
            f"\nstderr:\n{p.stderr.decode(errors='replace')[-8000:]}"
        )
    lines = [l for l in p.stdout.decode(errors="replace").splitlines() if l.strip()]
    summary = None
    if lines:
        try:
            summary = json.loads(lines[-1])
        except json.JSONDecodeError:
            summary = None
    return summary, p


def duckdb_delta_extension():
    import duckdb_extension_delta

    base = pathlib.Path(duckdb_extension_delta.__file__).parent
    found = sorted(base.rglob("delta.duckdb_extension"))
    if not found:
        pytest.fail(f"delta.duckdb_extension not found under {base}")
    return str(found[0])


@pytest.fixture()
def duck():
    import duckdb

    con = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false"})
    con.execute(f"LOAD '{duckdb_delta_extension()}'")
    yield con
    con.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto():
    """A moto server on a free loopback port, with AWS env pointing at it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("moto server did not start")
    env = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    yield {"url": url, "port": port, "env": env}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture()
def tmp_lake(tmp_path):
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)
