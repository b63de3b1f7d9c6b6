"""A real S3-protocol server on loopback for the tests: moto's server in its own process, behind a
small proxy that can answer 500s for a while or stop answering (the faults S3 clients must survive).

Spark, Dagster and any subprocess reach it through AWS_ENDPOINT_URL, as they would reach S3.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

S3_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MotoServer:
    """`moto_server` as a separate process on 127.0.0.1; stop() kills its process group."""

    def __init__(self, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "MotoServer":
        executable = Path(sys.executable).parent / "moto_server"
        with open(self.log, "wb") as output:
            self.process = subprocess.Popen(
                [str(executable), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).read()
                return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto_server did not answer within {timeout:.0f}s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


class FaultyProxy:
    """Forwards S3 requests to `upstream`; `fail_next` answers 500s, `stop_when` stops serving.

    Rules see each request as (method, path) and the proxy counts what it served.
    """

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.lock = threading.Lock()
        self.failures_left = 0
        self.fail_trigger: Callable[[str, str], bool] | None = None
        self.stop_trigger: Callable[[str, str], bool] | None = None
        self.burst = 0
        self.served_500 = 0
        self.requests: list[tuple[str, str]] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet test output
                pass

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", ""):
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self):
                body = self._body()
                verdict = proxy.decide(self.command, self.path)
                if verdict == "stop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if verdict == "fail":
                    self.send_response(500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(S3_ERROR)))
                    self.end_headers()
                    self.wfile.write(S3_ERROR)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                upstream.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.stopped = False

    def decide(self, method: str, path: str) -> str:
        with self.lock:
            self.requests.append((method, path))
            if self.stopped or (self.stop_trigger and self.stop_trigger(method, path)):
                self.stopped = True
                return "stop"
            if self.fail_trigger and self.fail_trigger(method, path):
                self.fail_trigger = None
                self.failures_left = self.burst
            if self.failures_left > 0:
                self.failures_left -= 1
                self.served_500 += 1
                return "fail"
            return "forward"

    def fail_next(self, count: int, when: Callable[[str, str], bool] | None = None) -> None:
        """Answer 500 to `count` requests in a row, from the first one `when` matches (or now)."""
        with self.lock:
            self.burst = count
            if when is None:
                self.failures_left = count
            else:
                self.fail_trigger = when

    def stop_when(self, when: Callable[[str, str], bool]) -> None:
        """From the first request `when` matches on, drop every connection (a server gone away)."""
        with self.lock:
            self.stop_trigger = when

    def reset(self) -> None:
        with self.lock:
            self.failures_left, self.fail_trigger, self.stop_trigger, self.stopped = 0, None, None, False
            self.served_500 = 0
            self.requests.clear()

    def __enter__(self) -> "FaultyProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
