"""A webhook receiver on 127.0.0.1 for tests: records what it gets and answers as told.

``mode`` chooses the answer: ``ok`` (204), ``status:500``, ``hang`` (never answers until the
test ends), ``trickle`` (a header byte every 0.5 s, forever), ``redirect:<url>`` (302 to it),
``huge`` (200 with a 50 MB body, streamed). Every request is kept in ``received``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    mode: str = "ok"
    received: list[Received] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    huge_sent: int = 0

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.received)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            receiver.received.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            mode = receiver.mode
            if mode == "hang":
                receiver.stop.wait(60)
                return
            if mode == "trickle":
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                while not receiver.stop.is_set():
                    self.wfile.write(b"X")
                    self.wfile.flush()
                    receiver.stop.wait(0.5)
                return
            if mode.startswith("redirect:"):
                self.send_response(302)
                self.send_header("Location", mode.split(":", 1)[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if mode == "huge":
                self.send_response(200)
                self.send_header("Content-Length", str(50_000_000))
                self.end_headers()
                chunk = b"A" * 65536
                try:
                    while receiver.huge_sent < 50_000_000 and not receiver.stop.is_set():
                        self.wfile.write(chunk)
                        receiver.huge_sent += len(chunk)
                except OSError:
                    return
                return
            status = int(mode.split(":", 1)[1]) if mode.startswith("status:") else 204
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@contextmanager
def receiver(mode: str = "ok") -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    rec = Receiver(server, mode)
    server.RequestHandlerClass = _handler(rec)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield rec
    finally:
        rec.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
