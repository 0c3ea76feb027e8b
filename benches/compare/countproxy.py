#!/usr/bin/env python3
"""A counting HTTP/1.1 proxy for S3 traffic (stdlib only).

Sits between a client and one upstream server (Garage), passes bytes
through unchanged in both directions, and counts what the client sends:
every request's method and path, and its body bytes. Optionally it limits
the rate at which request bodies go upstream, which makes it easy to stop a
client at a chosen point of an upload.

Only the client-to-server direction is parsed (request line, headers, and a
body framed by Content-Length or chunked encoding); responses are copied as
raw bytes, so interim `100 Continue` responses, keep-alive and HEAD
responses need no special handling.

Used as a module by run.py (`Proxy`), or on its own:

    countproxy.py --upstream 127.0.0.1:3900 [--listen 127.0.0.1:0]
                  [--log requests.log] [--rate-mib 100]

prints `listening on HOST:PORT`, logs one line per request
(`METHOD PATH BODY_BYTES`), and prints a JSON summary on Ctrl-C / SIGTERM.
"""

import argparse
import asyncio
import collections
import json
import signal
import sys
import threading
import time

WRITE_METHODS = ("PUT", "POST", "DELETE")
READ_CHUNK = 256 * 1024


class Counters:
    """What the proxy has seen since the last reset()."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.requests = 0
        self.by_method = collections.Counter()
        # (method, kind): kind is a coarse S3 operation name, see classify().
        self.by_op = collections.Counter()
        self.body_bytes = 0  # request bodies forwarded upstream
        self.header_bytes = 0  # request lines + headers
        self.response_bytes = 0  # everything sent back to clients
        self.connections = 0

    def snapshot(self):
        return {
            "requests": self.requests,
            "writes": sum(n for m, n in self.by_method.items() if m in WRITE_METHODS),
            "by_method": dict(self.by_method),
            "by_op": {f"{m} {k}": n for (m, k), n in sorted(self.by_op.items())},
            "request_body_bytes": self.body_bytes,
            "request_header_bytes": self.header_bytes,
            "response_bytes": self.response_bytes,
            "connections": self.connections,
        }


def classify(method, target):
    """A coarse S3 operation name from the method and the request target."""
    path, _, query = target.partition("?")
    params = {p.split("=", 1)[0] for p in query.split("&") if p}
    # Path style: /bucket or /bucket/key...
    has_key = "/" in path.lstrip("/")
    if method == "GET":
        if not has_key:
            if "uploads" in params:
                return "ListMultipartUploads"
            if "location" in params:
                return "GetBucketLocation"
            return "ListObjects"
        if "uploadId" in params:
            return "ListParts"
        return "GetObject"
    if method == "HEAD":
        return "HeadObject" if has_key else "HeadBucket"
    if method == "PUT":
        if "partNumber" in params:
            return "UploadPart"
        return "PutObject" if has_key else "CreateBucket"
    if method == "POST":
        if "uploads" in params:
            return "CreateMultipartUpload"
        if "uploadId" in params:
            return "CompleteMultipartUpload"
        if "delete" in params:
            return "DeleteObjects"
        return "Post"
    if method == "DELETE":
        if "uploadId" in params:
            return "AbortMultipartUpload"
        return "DeleteObject"
    return method


class RateLimiter:
    """A token bucket shared by all connections (bytes per second)."""

    def __init__(self, rate):
        self.rate = rate
        self.tokens = 0.0
        self.last = time.monotonic()
        self.burst = max(rate / 20, READ_CHUNK)

    async def take(self, n):
        if not self.rate:
            return
        while True:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= n or self.tokens >= self.burst:
                self.tokens -= n
                return
            await asyncio.sleep((min(n, self.burst) - self.tokens) / self.rate)


class ProtocolError(Exception):
    pass


class Proxy:
    """The proxy, run on its own event loop in a background thread."""

    def __init__(self, upstream_host, upstream_port, listen_host="127.0.0.1",
                 listen_port=0, log_path=None, rate_bytes=0):
        self.upstream = (upstream_host, upstream_port)
        self.listen = (listen_host, listen_port)
        self.counters = Counters()
        self.limiter = RateLimiter(rate_bytes)
        self.log_file = open(log_path, "a", buffering=1 << 20) if log_path else None
        self.loop = None
        self.server = None
        self.port = None
        self._thread = None
        self._ready = threading.Event()

    # -- control, from any thread --------------------------------------
    def start(self):
        self._thread = threading.Thread(target=self._run, name="countproxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self.port is None:
            raise RuntimeError("proxy did not start")
        return self

    def stop(self):
        if self.loop and self.server:
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
            try:
                fut.result(5)
            except Exception:
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self._thread:
            self._thread.join(5)
        if self.log_file:
            self.log_file.close()
            self.log_file = None

    def set_rate(self, rate_bytes):
        self.limiter.rate = rate_bytes
        self.limiter.burst = max(rate_bytes / 20, READ_CHUNK)

    def reset(self):
        self.counters.reset()

    def mark(self, text):
        """Write a marker line into the request log."""
        if self.log_file:
            self.loop.call_soon_threadsafe(self.log_file.write, f"# {text}\n")

    @property
    def url(self):
        return f"http://{self.listen[0]}:{self.port}"

    # -- the event loop --------------------------------------------------
    async def _shutdown(self):
        self.server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self):
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, self.listen[0], self.listen[1],
                                 backlog=1024, limit=1 << 20))
        self.port = self.server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    async def _handle(self, creader, cwriter):
        self.counters.connections += 1
        try:
            ureader, uwriter = await asyncio.open_connection(*self.upstream, limit=1 << 20)
        except OSError:
            cwriter.close()
            return
        up = asyncio.ensure_future(self._requests(creader, uwriter))
        down = asyncio.ensure_future(self._responses(ureader, cwriter))
        # Clients close a connection only when no response is due, so
        # whichever side ends first ends both.
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for t in (up, down):
            t.cancel()
        for w in (uwriter, cwriter):
            try:
                w.close()
            except Exception:
                pass

    async def _responses(self, ureader, cwriter):
        try:
            while True:
                data = await ureader.read(READ_CHUNK)
                if not data:
                    break
                self.counters.response_bytes += len(data)
                cwriter.write(data)
                await cwriter.drain()
        except (ConnectionError, OSError):
            pass

    async def _requests(self, creader, uwriter):
        try:
            while True:
                try:
                    head = await creader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return  # client closed between requests
                await self._one_request(head, creader, uwriter)
        except (ConnectionError, OSError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, ProtocolError):
            return

    async def _one_request(self, head, creader, uwriter):
        lines = head.split(b"\r\n")
        parts = lines[0].decode("latin-1").split(" ")
        if len(parts) != 3:
            raise ProtocolError(lines[0])
        method, target = parts[0], parts[1]
        length = 0
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        c = self.counters
        c.requests += 1
        c.by_method[method] += 1
        c.by_op[(method, classify(method, target))] += 1
        c.header_bytes += len(head)
        uwriter.write(head)
        if chunked:
            body = await self._chunked(creader, uwriter)
        else:
            body = await self._fixed(creader, uwriter, length)
        if self.log_file:
            self.log_file.write(f"{method} {target} {body}\n")
        await uwriter.drain()

    async def _forward(self, data, uwriter):
        await self.limiter.take(len(data))
        self.counters.body_bytes += len(data)
        uwriter.write(data)
        await uwriter.drain()

    async def _fixed(self, creader, uwriter, length):
        left = length
        while left > 0:
            data = await creader.read(min(left, READ_CHUNK))
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(data)
            await self._forward(data, uwriter)
        return length

    async def _chunked(self, creader, uwriter):
        total = 0
        while True:
            size_line = await creader.readuntil(b"\r\n")
            uwriter.write(size_line)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                # Trailers, then an empty line.
                while True:
                    line = await creader.readuntil(b"\r\n")
                    uwriter.write(line)
                    if line == b"\r\n":
                        return total
            left = size
            while left > 0:
                data = await creader.read(min(left, READ_CHUNK))
                if not data:
                    raise asyncio.IncompleteReadError(b"", left)
                left -= len(data)
                total += len(data)
                await self._forward(data, uwriter)
            uwriter.write(await creader.readexactly(2))  # CRLF after the data


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, help="HOST:PORT of the server")
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any)")
    ap.add_argument("--log", help="append one line per request here")
    ap.add_argument("--rate-mib", type=float, default=0,
                    help="limit request bodies to this many MiB/s (0: no limit)")
    args = ap.parse_args()
    uh, up = args.upstream.rsplit(":", 1)
    lh, lp = args.listen.rsplit(":", 1)
    proxy = Proxy(uh, int(up), lh, int(lp), args.log, int(args.rate_mib * 1024 * 1024)).start()
    print(f"listening on {lh}:{proxy.port}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    proxy.stop()
    json.dump(proxy.counters.snapshot(), sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
