"""Nested wall-clock limits that interrupt pure-Python work (SymPy) with ``SIGALRM``.

``with time_limit(60, "symbolic check") as lim:`` raises :class:`TimeLimitExceeded`
inside the body once 60 s have passed; limits nest (a per-check limit inside a
per-spec limit), and the exception names the limit that expired (``exc.limit``),
the outermost first when several have. The timer re-fires every
:data:`REFIRE` seconds until the body is left, so code that swallows the first
exception is interrupted again. The exception derives from ``BaseException``:
SymPy's own ``except Exception`` clauses do not catch it.

Where alarms are impossible (not the main thread, no ``setitimer``, or another
interval timer is pending), the body runs without a limit.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import FrameType

__all__ = ["Limit", "TimeLimitExceeded", "time_limit"]

#: seconds between repeated alarms once a limit has expired.
REFIRE = 0.25


@dataclass(eq=False)
class Limit:
    """One active limit: ``label`` (for messages), ``seconds`` and its monotonic deadline."""

    label: str
    seconds: float
    deadline: float = field(default=math.inf)

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.deadline


class TimeLimitExceeded(BaseException):
    """A :func:`time_limit` expired; ``limit`` is the one that did."""

    def __init__(self, limit: Limit) -> None:
        super().__init__(f"{limit.label}: exceeded the time limit of {limit.seconds:g} s")
        self.limit = limit


_stack: list[Limit] = []
_previous_handler: object = None


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _fire(signum: int, frame: FrameType | None) -> None:
    now = time.monotonic()
    for limit in _stack:  # outermost first
        if now >= limit.deadline:
            raise TimeLimitExceeded(limit)
    _arm()  # early wake-up: wait for the nearest deadline


def _arm() -> None:
    if not _stack:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return
    wait = min(limit.deadline for limit in _stack) - time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, max(wait, 1e-3), REFIRE)


@contextlib.contextmanager
def _masked() -> Iterator[None]:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})


@contextlib.contextmanager
def time_limit(seconds: float | None, label: str) -> Iterator[Limit]:
    """Limit the body to ``seconds`` (None or inf: no limit); yields the :class:`Limit`.

    Catch the expiry with ``except TimeLimitExceeded as exc: if exc.limit is lim``;
    an outer limit's expiry passes through.
    """
    limit = Limit(label, math.inf if seconds is None else float(seconds))
    if not math.isfinite(limit.seconds) or not _can_alarm():
        yield limit
        return
    global _previous_handler
    with _masked():
        if not _stack:
            pending, _ = signal.getitimer(signal.ITIMER_REAL)
            if pending > 0:  # someone else's timer: leave it alone
                armed = False
            else:
                _previous_handler = signal.signal(signal.SIGALRM, _fire)
                armed = True
        else:
            armed = True
        if armed:
            limit.deadline = time.monotonic() + limit.seconds
            _stack.append(limit)
            _arm()
    try:
        yield limit
    finally:
        if armed:
            with _masked():
                _stack.remove(limit)
                _arm()
                if not _stack:
                    if signal.SIGALRM in signal.sigpending():  # consume a late alarm
                        signal.sigwait({signal.SIGALRM})
                    signal.signal(signal.SIGALRM, _previous_handler or signal.SIG_DFL)
