"""Statistical claims: repeated trials, a failure rate and its confidence interval.

A claim "trials fail with probability at most ``delta``" *holds* when the
upper end of the 95% Wilson interval of the failure rate is at most
``delta``, is *violated* when the lower end exceeds ``delta``, and is
*undecided* when the interval still contains ``delta`` (too few trials).
"""

from __future__ import annotations

import time
from types import ModuleType

import numpy as np

from creality_sym.audit.bounds import Bound
from creality_sym.audit.experiments import wilson
from creality_sym.audit.limits import EvaluationTimeout, Limit, alarm_scope, time_limit

__all__ = ["min_trials", "decide", "run_statistical", "Outcome"]

#: stop after this many trials ran past the time limit (when they outnumber the good ones)
MAX_TIMEOUTS = 3


def min_trials(delta: float) -> int:
    """Fewest trials whose interval can fall below ``delta`` (with no failure at all)."""
    n = 1
    while wilson(0, n)[1] > delta and n < 10**7:
        n += 1
    return n


def decide(failures: int, trials: int, delta: float) -> tuple[str, tuple[float, float]]:
    """``("holds" | "violated" | "undecided" | "error", interval)`` for a claim with ``delta``."""
    lo, hi = wilson(failures, trials)
    if trials == 0:
        return "error", (lo, hi)
    if lo > delta:
        return "violated", (lo, hi)
    if hi <= delta:
        return "holds", (lo, hi)
    return "undecided", (lo, hi)


class Outcome:
    """Counts of one statistical run (filled in by :func:`run_statistical`)."""

    def __init__(self) -> None:
        self.trials = 0
        self.failures = 0
        self.errors = 0
        self.timeouts = 0
        self.first_error = ""
        self.seconds = 0.0
        self.capped = False

    def error(self, text: str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = text


def run_statistical(
    bound: Bound,
    model: ModuleType,
    *,
    seed: int,
    limit: Limit,
    eval_timeout: float | None,
    space: object = None,
) -> Outcome:
    """Run ``bound.trial`` until ``limit`` or ``bound.max_trials`` (at least :func:`min_trials`
    trials in timed mode, within the limit's grace).

    A trial with ``takes_space = True`` gets ``space`` (the audit's
    :class:`~creality_sym.audit.instance.Space`) in place of ``model``.
    """
    assert bound.trial is not None
    if space is not None and getattr(bound.trial, "takes_space", False):
        model = space  # type: ignore[assignment]
    if not limit.counted:
        floor = min(min_trials(bound.delta), bound.max_trials)
        limit = Limit(limit.deadline, limit.max_attempts, floor, limit.hard_deadline)
    rng = np.random.default_rng(bound.seed_for(seed))
    out = Outcome()
    start = time.monotonic()
    attempts = 0
    with alarm_scope():
        while out.trials < bound.max_trials and not limit.expired(attempts):
            attempts += 1
            try:
                with time_limit(eval_timeout):
                    failed = bound.trial(model, rng)
            except EvaluationTimeout:
                out.timeouts += 1
                out.error(f"a trial took longer than the {eval_timeout:g} s limit")
                if out.timeouts >= MAX_TIMEOUTS and out.timeouts > out.trials:
                    break
                continue
            except Exception as exc:  # a failing trial is reported, not fatal
                out.error(f"{type(exc).__name__}: {exc}")
                if out.errors > 10 and out.errors > out.trials:
                    break
                continue
            if not isinstance(failed, (bool, np.bool_)):
                out.error(f"trial returned {type(failed).__name__} {failed!r:.40}, not a bool")
                if out.errors > 10 and out.errors > out.trials:
                    break
                continue
            out.trials += 1
            out.failures += bool(failed)
    out.capped = limit.capped() and attempts < limit.max_attempts and out.trials < bound.max_trials
    out.seconds = time.monotonic() - start
    return out
