"""A minimal, fast SMTP sink that counts the letters and data bytes it receives."""

from __future__ import annotations

import multiprocessing
import socket
import threading
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from types import TracebackType

from bench import BenchError

_END_OF_DATA = b"\r\n.\r\n"
_REPLIES = {
    b"EHLO": b"250 sink\r\n",
    b"HELO": b"250 sink\r\n",
    b"MAIL": b"250 OK\r\n",
    b"RCPT": b"250 OK\r\n",
    b"RSET": b"250 OK\r\n",
    b"NOOP": b"250 OK\r\n",
    b"DATA": b"354 End data with <CR><LF>.<CR><LF>\r\n",
    b"QUIT": b"221 Bye\r\n",
}


class Sink:
    """An SMTP server on 127.0.0.1 in its own process, started and stopped as a context manager.

    It runs in a separate process so that it does not share the GIL with the client being
    measured: on a machine with two cores or more it is then never the bottleneck.
    """

    def __init__(self) -> None:
        # spawn, not fork: the parent may hold threads or sockets the child must not inherit.
        ctx = multiprocessing.get_context("spawn")
        self._messages: Synchronized[int] = ctx.Value("q", 0)
        self._data_bytes: Synchronized[int] = ctx.Value("q", 0)
        self._stop = ctx.Event()
        self._port_reader, port_writer = ctx.Pipe(duplex=False)
        self._process = ctx.Process(
            target=_serve,
            args=(port_writer, self._stop, self._messages, self._data_bytes),
            name="bench-smtp-sink",
            daemon=True,
        )
        self.port = 0

    def __enter__(self) -> Sink:
        self._process.start()
        try:
            if not self._port_reader.poll(30):
                raise BenchError("the SMTP sink did not start within 30 s")
            try:
                self.port = self._port_reader.recv()
            except EOFError:
                raise BenchError("the SMTP sink died while starting; see above") from None
        except BaseException:
            self._process.terminate()
            self._process.join()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()

    @property
    def url(self) -> str:
        """Return the sink's address as an SMTP URL."""
        return f"smtp://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Set the counters back to zero; call it while no client is connected."""
        with self._messages.get_lock():
            self._messages.value = 0
        with self._data_bytes.get_lock():
            self._data_bytes.value = 0

    def received(self) -> tuple[int, int]:
        """Return (letters, data bytes) received since the last reset.

        Data bytes are counted as on the wire (dot-stuffed), without the final ".\\r\\n".
        """
        return self._messages.value, self._data_bytes.value


def _serve(
    port_writer: Connection,
    stop: Event,
    messages: Synchronized[int],
    data_bytes: Synchronized[int],
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        # A short accept timeout lets the loop notice the stop event.
        listener.settimeout(0.1)
        port_writer.send(listener.getsockname()[1])
        port_writer.close()
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            threading.Thread(
                target=_session, args=(conn, messages, data_bytes), daemon=True
            ).start()


def _session(
    conn: socket.socket, messages: Synchronized[int], data_bytes: Synchronized[int]
) -> None:
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sendall(b"220 sink ESMTP\r\n")
        # Receive into one reused buffer: recv(n) allocates n bytes per call, and above glibc's
        # 128 KiB mmap threshold that costs an mmap/munmap pair each time.
        chunk = memoryview(bytearray(65536))
        buf = bytearray()
        in_data = False
        data_len = 0
        while True:
            try:
                n = conn.recv_into(chunk)
            except OSError:
                return
            if not n:
                return
            buf += chunk[:n]
            replies: list[bytes] = []
            quit_ = False
            while True:
                if in_data:
                    end = buf.find(_END_OF_DATA)
                    if end < 0:
                        # Keep the tail: the terminator may straddle two reads.
                        if len(buf) > len(_END_OF_DATA):
                            cut = len(buf) - len(_END_OF_DATA)
                            data_len += cut
                            del buf[:cut]
                        break
                    data_len += end + 2
                    del buf[: end + len(_END_OF_DATA)]
                    in_data = False
                    # Count before replying, so a client that saw 250 sees the count too.
                    with messages.get_lock():
                        messages.value += 1
                    with data_bytes.get_lock():
                        data_bytes.value += data_len
                    replies.append(b"250 OK queued\r\n")
                    continue
                eol = buf.find(b"\r\n")
                if eol < 0:
                    break
                verb = bytes(buf[:4]).upper()
                del buf[: eol + 2]
                replies.append(_REPLIES.get(verb, b"502 Command not implemented\r\n"))
                if verb == b"DATA":
                    in_data = True
                    # Put back the CRLF that ended the DATA line so that a body which is
                    # empty (".\r\n" at once) also matches "\r\n.\r\n"; it is not counted.
                    buf[:0] = b"\r\n"
                    data_len = -2
                elif verb == b"QUIT":
                    quit_ = True
                    break
            if replies:
                try:
                    conn.sendall(b"".join(replies))
                except OSError:
                    return
            if quit_:
                return
