"""How long the search may go on: evaluation counts, time caps, per-evaluation limits.

A :class:`Limit` ends a stage of the search. In *timed* mode (the default)
the clock decides, with a floor of ``min_attempts`` evaluations so that a
small budget still evaluates something; in *counted* mode (``--max-evals``)
the number of evaluations decides and the clock is only a cap, so that the
same seed gives the same search.

:func:`time_limit` bounds one call of a bound's ``lhs``/``rhs`` (or a
statistical trial): past ``seconds`` it raises :class:`EvaluationTimeout`
inside the call (``SIGALRM``; main thread on POSIX), elsewhere after the
call returns.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import FrameType

__all__ = ["Limit", "EvaluationTimeout", "alarm_scope", "time_limit", "DEFAULT_EVAL_TIMEOUT"]

#: seconds one evaluation of ``lhs``/``rhs`` (or one trial) may take by default
DEFAULT_EVAL_TIMEOUT = 2.0


@dataclass(frozen=True)
class Limit:
    """When a stage stops, given how many evaluations (``attempts``) were made.

    ``deadline`` and ``hard_deadline`` are ``time.monotonic()`` values. A stage
    stops at ``max_attempts``, at ``hard_deadline``, or at ``deadline`` once
    ``min_attempts`` are done.
    """

    deadline: float = math.inf
    max_attempts: float = math.inf
    min_attempts: float = 0
    hard_deadline: float = math.inf
    counted: bool = False

    def expired(self, attempts: int) -> bool:
        """Whether the stage is over after ``attempts`` evaluations."""
        if attempts >= self.max_attempts:
            return True
        now = time.monotonic()
        if now >= self.hard_deadline:
            return True
        return now >= self.deadline and attempts >= self.min_attempts

    def capped(self) -> bool:
        """Whether the clock (not the evaluation count) ended a counted stage."""
        return self.counted and time.monotonic() >= min(self.deadline, self.hard_deadline)

    def sub(self, attempts_now: int, *, seconds: float, attempts: int | None = None) -> Limit:
        """A sub-stage, never beyond this limit: ``attempts`` more evaluations
        (counted mode), or ``seconds`` more and at most ``attempts`` more (timed)."""
        top = (
            self.max_attempts
            if attempts is None
            else min(self.max_attempts, attempts_now + attempts)
        )
        if self.counted:
            return replace(self, max_attempts=top, min_attempts=0)
        deadline = min(self.deadline, time.monotonic() + seconds)
        return replace(self, deadline=deadline, max_attempts=top, min_attempts=0)

    @classmethod
    def timed(cls, seconds: float, *, min_attempts: int = 0, grace: float = 5.0) -> Limit:
        """``seconds`` from now, but at least ``min_attempts`` (within ``grace`` more seconds)."""
        now = time.monotonic()
        return cls(
            deadline=now + seconds,
            min_attempts=min_attempts,
            hard_deadline=now + seconds + grace,
        )

    @classmethod
    def count(cls, attempts: int, *, cap: float) -> Limit:
        """Exactly ``attempts`` evaluations unless ``cap`` seconds pass first."""
        now = time.monotonic()
        return cls(deadline=now + cap, max_attempts=attempts, hard_deadline=now + cap, counted=True)


class EvaluationTimeout(BaseException):
    """One evaluation ran past its time limit.

    A ``BaseException``, so that a bound's own ``except Exception`` does not
    swallow it.
    """


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


_installed = 0  # depth of alarm_scope() calls holding our SIGALRM handler


def _fire(signum: int, frame: FrameType | None) -> None:
    raise EvaluationTimeout("ran past its time limit")


@contextlib.contextmanager
def alarm_scope() -> Iterator[None]:
    """Keep the ``SIGALRM`` handler of :func:`time_limit` installed for the body.

    Installing a handler costs about 10 microseconds; a search wraps its
    thousands of evaluations in one scope. No-op where alarms are impossible.
    """
    global _installed
    if _installed:  # nested: the outer scope holds the handler
        _installed += 1
        try:
            yield
        finally:
            _installed -= 1
        return
    if not _can_alarm():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _fire)
    _installed = 1
    try:
        yield
    finally:
        _installed = 0
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`EvaluationTimeout` when the body runs past ``seconds`` (None: no limit).

    The body is interrupted by ``SIGALRM`` where that is possible (POSIX,
    main thread, no other interval timer pending); otherwise the timeout is
    raised once the body returns.
    """
    if seconds is None or not math.isfinite(seconds):
        yield
        return
    with contextlib.ExitStack() as stack:
        if not _installed:
            stack.enter_context(alarm_scope())
        start = time.monotonic()
        armed = False
        if _installed and _can_alarm():
            pending, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
            if pending > 0:  # someone else's timer: leave it alone, check afterwards
                signal.setitimer(signal.ITIMER_REAL, pending)
            else:
                armed = True
        try:
            yield
        except EvaluationTimeout:
            raise EvaluationTimeout(f"took longer than {seconds:g} s") from None
        finally:
            if armed:
                signal.setitimer(signal.ITIMER_REAL, 0)
        if time.monotonic() - start > seconds:
            raise EvaluationTimeout(f"took longer than {seconds:g} s")
