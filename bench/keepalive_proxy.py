#!/usr/bin/env python3
"""A keep-alive front for moto (issue 16): measure the writer without a TCP connection per request.

moto's server (werkzeug) answers every request with `Connection: close`, so every S3 and
DynamoDB request the writer makes opens a new connection: a connect, a slow-start and the
client pool's bookkeeping per request, which real AWS endpoints (keep-alive, HTTP/1.1) do
not cost. Patching werkzeug to keep connections hung on the second request, so this sits in
front instead: clients keep one connection to the proxy for as many requests as they like;
the proxy forwards each request to moto on a fresh connection (its own CPU, not the
writer's), reads the whole answer and sends it back with an exact `Content-Length`.

Only what the writer and boto3 send is handled: requests with `Content-Length` or chunked
bodies, `Expect: 100-continue`, and answers delimited by length, chunks or end of stream.

Usage: python3 bench/keepalive_proxy.py --listen-port P --upstream-port Q
"""

import argparse
import asyncio
import json
import signal

STATS = {"connections": 0, "requests": 0}
HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"expect", b"proxy-connection"}


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers


def header(headers, name):
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


async def read_chunked(reader):
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            # Trailers, up to the empty line.
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def read_body(reader, headers, until_eof):
    if (header(headers, b"transfer-encoding") or b"").lower().endswith(b"chunked"):
        return await read_chunked(reader)
    length = header(headers, b"content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    return await reader.read() if until_eof else b""


def head_bytes(first, headers, extra):
    out = [first]
    out += [k + b": " + v for k, v in headers if k.lower() not in HOP]
    out += extra
    return b"\r\n".join(out) + b"\r\n\r\n"


async def forward(upstream, first, headers, body):
    reader, writer = await asyncio.open_connection("127.0.0.1", upstream)
    try:
        writer.write(head_bytes(first, headers, [b"Content-Length: %d" % len(body), b"Connection: close"]) + body)
        await writer.drain()
        status, rheaders = await read_head(reader)
        code = int(status.split()[1])
        method = first.split()[0]
        bodiless = method == b"HEAD" or code in (204, 304) or code < 200
        rbody = b"" if bodiless else await read_body(reader, rheaders, until_eof=True)
        if bodiless:
            # The length of what a GET would return: pass it on as moto gave it.
            length = header(rheaders, b"content-length")
            extra = [b"Content-Length: " + length] if length is not None else []
        else:
            extra = [b"Content-Length: %d" % len(rbody)]
        return head_bytes(status, rheaders, extra + [b"Connection: keep-alive"]) + rbody
    finally:
        writer.close()


async def serve(client_reader, client_writer, upstream):
    STATS["connections"] += 1
    try:
        while True:
            try:
                first, headers = await read_head(client_reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if (header(headers, b"expect") or b"").lower() == b"100-continue":
                client_writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await client_writer.drain()
            body = await read_body(client_reader, headers, until_eof=False)
            answer = await forward(upstream, first, headers, body)
            STATS["requests"] += 1
            client_writer.write(answer)
            await client_writer.drain()
            if (header(headers, b"connection") or b"").lower() == b"close":
                return
    except (asyncio.IncompleteReadError, ConnectionError):
        return
    finally:
        client_writer.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen-port", type=int, required=True)
    ap.add_argument("--upstream-port", type=int, required=True)
    ap.add_argument("--stats", help="on SIGTERM, write connections accepted and requests served here (JSON)")
    args = ap.parse_args()
    server = await asyncio.start_server(lambda r, w: serve(r, w, args.upstream_port), "127.0.0.1", args.listen_port)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    if args.stats:
        with open(args.stats, "w") as f:
            json.dump(STATS, f)


if __name__ == "__main__":
    asyncio.run(main())
