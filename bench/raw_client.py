"""A minimal SMTP client on a plain socket: the physical limit a real mailer is compared to."""

from __future__ import annotations

import re
import socket

from bench import BenchError

_LEADING_DOT = re.compile(rb"(?m)^\.")


def wire_payload(message_bytes: bytes) -> bytes:
    """Return the DATA section for CRLF message bytes: dot-stuffed, ending in CRLF.CRLF."""
    stuffed = _LEADING_DOT.sub(b"..", message_bytes)
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


class RawSMTPClient:
    """Hands over prebuilt payloads over one connection, one command and reply at a time.

    No PIPELINING: the sink does not offer it and the product cannot use it either, so both
    sides make the same four round trips per letter and differ only in client-side work.
    """

    def __init__(self, host: str, port: int, *, timeout: float = 30.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._buf = bytearray()
        self._chunk = memoryview(bytearray(4096))  # reused: replies are a few bytes each
        self._expect(220)
        self._command(b"EHLO bench.invalid\r\n", 250)

    def send(self, sender: str, recipient: str, payload: bytes) -> None:
        """Send one letter whose `payload` comes from `wire_payload`."""
        self._command(f"MAIL FROM:<{sender}>\r\n".encode(), 250)
        self._command(f"RCPT TO:<{recipient}>\r\n".encode(), 250)
        self._command(b"DATA\r\n", 354)
        self._command(payload, 250)

    def close(self) -> None:
        """Say QUIT and close the connection."""
        try:
            self._command(b"QUIT\r\n", 221)
        finally:
            self._sock.close()

    def _command(self, data: bytes, code: int) -> None:
        self._sock.sendall(data)
        self._expect(code)

    def _expect(self, code: int) -> None:
        while True:
            eol = self._buf.find(b"\r\n")
            while eol < 0:
                n = self._sock.recv_into(self._chunk)
                if not n:
                    raise BenchError("the SMTP sink closed the connection")
                self._buf += self._chunk[:n]
                eol = self._buf.find(b"\r\n")
            line = bytes(self._buf[:eol])
            del self._buf[: eol + 2]
            if line[3:4] != b"-":
                break
        if int(line[:3]) != code:
            raise BenchError(f"expected {code} from the SMTP sink, got {line!r}")
