"""Stop a block of pure-Python work that runs past its deadline, from one watchdog thread."""

from __future__ import annotations

import ctypes
import itertools
import math
import os
import threading
import time
from types import TracebackType


class Expired(BaseException):
    """The deadline of the running block passed; raised inside the thread running it.

    A BaseException, so that an `except Exception` in the code being stopped cannot
    swallow it and carry on.
    """


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> int:
    # CPython delivers the exception at the thread's next check between bytecodes (every
    # loop iteration has one), so even `for … in range(…): pass` stops; None clears it.
    return int(
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
        )
    )


class _Watchdog:
    """One daemon thread that fires deadlines; arming and disarming cost a lock and a dict.

    The lock is a bare `threading.Lock` taken with `with`: its C-level `__enter__` leaves no
    gap in which an exception delivered to the thread could skip the release (a Condition's
    Python-level `__enter__` does, and a leaked lock stops every later render).
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every deadline and the thread (after a fork the child has no watchdog)."""
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._armed: dict[int, tuple[float, int]] = {}  # token → (deadline, thread id)
        self._tokens = itertools.count()
        self._wake_at = math.inf
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float) -> int:
        deadline = time.monotonic() + seconds
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self._thread.start()
            token = next(self._tokens)
            self._armed[token] = (deadline, threading.get_ident())
            if deadline < self._wake_at:
                self._wakeup.notify()
        return token

    def disarm(self, token: int) -> None:
        with self._lock:
            if self._armed.pop(token, None) is None:
                # Fired already: the exception may still be pending (not yet delivered)
                # and must not surface later in unrelated code.
                _raise_in(threading.get_ident(), None)

    def _run(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                for token, (deadline, thread_id) in list(self._armed.items()):
                    if deadline <= now:
                        del self._armed[token]
                        _raise_in(thread_id, Expired)
                self._wake_at = min((d for d, _ in self._armed.values()), default=math.inf)
                self._wakeup.wait(None if self._wake_at == math.inf else self._wake_at - now)


_watchdog = _Watchdog()
# A forked child (a Dramatiq worker process) inherits the state but not the thread.
os.register_at_fork(after_in_child=_watchdog.reset)


class Deadline:
    """Raise Expired in this thread if the `with` block is still running after `seconds`.

    Catch Expired around the `with`, not inside it: it may arrive as the block ends. Once
    the block is left, no Expired of it arrives later. Code blocked in one long C call (a
    huge `str.replace`) is only stopped when that call returns, so pair this with size
    limits; and keep it away from code that must not stop half-way (shared state updated
    in steps, locks taken without `with`).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._token: int | None = None

    def __enter__(self) -> Deadline:
        self._token = _watchdog.arm(self.seconds)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # If Expired arrives before this runs, the watchdog has dropped the token already.
        if self._token is not None:
            _watchdog.disarm(self._token)
