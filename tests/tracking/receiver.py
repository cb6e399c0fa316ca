"""A real HTTP server on loopback that takes webhooks as a subscriber would."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from werkzeug.serving import make_server


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records every request; answers `fail` times with 500 (or always, with fail=-1), then
    200; or redirects everything to `redirect` when set."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    fail: int = 0
    redirect: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}  # fmt: skip
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        with self._lock:
            self.requests.append(Request(environ["PATH_INFO"], headers, body))
            failing = self.fail != 0
            if self.fail > 0:
                self.fail -= 1
        if self.redirect:
            start_response("302 Found", [("Location", self.redirect)])
            return [b""]
        if failing:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"database is down"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    def bodies(self) -> list[bytes]:
        with self._lock:
            return [r.body for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A subscriber's endpoint at `receiver.url` (http://127.0.0.1:PORT/hooks)."""
    answer = Receiver()
    server = make_server("127.0.0.1", 0, answer, threaded=True)
    answer.url = f"http://127.0.0.1:{server.server_port}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield answer
    server.shutdown()
    thread.join(timeout=5)
