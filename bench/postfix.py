"""Postfix's test tools: `smtp-sink` as the mail server, `smtp-source` as the reference client."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from types import TracebackType

from bench import BenchError
from campaigns.embedded.services import free_port, port_open

SINK = Path("/usr/sbin/smtp-sink")
SOURCE = Path("/usr/sbin/smtp-source")
INSTALL = "apt-get install postfix (only its smtp-sink and smtp-source are used; no daemon)"
_COUNTER = re.compile(rb"mesg=(\d+)")


def require_tools() -> None:
    """Raise BenchError naming the package when smtp-sink or smtp-source is missing."""
    missing = [str(tool) for tool in (SINK, SOURCE) if not os.access(tool, os.X_OK)]
    if missing:
        raise BenchError(f"{' and '.join(missing)} not found: {INSTALL}")


class PostfixSink:
    """`smtp-sink` on a free loopback port, throwing letters away and counting them."""

    def __init__(self, directory: Path) -> None:
        require_tools()
        self.port = free_port()
        self._counters = directory / "smtp-sink.out"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PostfixSink:
        # -c: running counters on stdout; -u: as root it must drop privileges to somebody.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        command = [str(SINK), "-c", *user, f"127.0.0.1:{self.port}", "1000"]
        with self._counters.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise BenchError(f"smtp-sink did not start: {self._tail()}")
            time.sleep(0.05)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    @property
    def url(self) -> str:
        """Return the sink's address as an SMTP URL."""
        return f"smtp://127.0.0.1:{self.port}"

    def received(self) -> int:
        """Return how many letters the sink has received since it started."""
        found = _COUNTER.findall(self._counters.read_bytes()[-200:])
        return int(found[-1]) if found else 0

    def expect(self, count: int, *, timeout: float = 5.0) -> None:
        """Wait until the sink has counted `count` letters in all; raise BenchError if not."""
        deadline = time.monotonic() + timeout
        while (received := self.received()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        if received != count:
            raise BenchError(f"smtp-sink counted {received} letters, expected {count}")

    def _tail(self) -> str:
        return self._counters.read_text(errors="replace")[-500:].strip() or "no output"


def source_rate(sink: PostfixSink, letters: int, *, sessions: int = 10, size: int = 10240) -> float:
    """Send `letters` letters of `size` bytes with smtp-source over `sessions` parallel
    connections (each kept open); return letters per second."""
    before = sink.received()
    command = [str(SOURCE), "-s", str(sessions), "-d", "-l", str(size), "-m", str(letters),
               "-f", "from@example.com", "-t", "to@example.com",
               f"127.0.0.1:{sink.port}"]  # fmt: skip
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, timeout=60 + letters / 500)
    except subprocess.TimeoutExpired:
        raise BenchError(f"smtp-source did not finish {letters} letters in time") from None
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        message = (done.stderr or done.stdout).decode(errors="replace").strip()
        raise BenchError(f"smtp-source failed ({done.returncode}): {message[-500:]}")
    sink.expect(before + letters)
    return letters / elapsed
