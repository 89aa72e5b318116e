"""Run the auditor: verdicts for a list of bounds, counterexample files, replay.

``budget`` is the *total* search time in seconds for the whole list; with
one worker each bound gets an equal share of what is left when it starts
(time a quick bound does not use goes to the next ones); with ``K`` workers
each bound gets ``budget / ceil(len(bounds) / K)``. Shrinking a
counterexample adds at most ``shrink_seconds`` per violated bound.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from creality_sym.audit.bounds import Bound, default_bounds, load_bounds, tightness
from creality_sym.audit.experiments import wilson
from creality_sym.audit.instance import Instance, resolve_model
from creality_sym.audit.search import search
from creality_sym.audit.shrink import shrink

__all__ = ["Verdict", "audit", "run_bound", "save_counterexample", "DEFAULT_BUDGET"]

#: default total search budget in seconds
DEFAULT_BUDGET = 30.0


@dataclass
class Verdict:
    """The outcome for one bound.

    ``verdict`` is ``"holds"``, ``"violated"`` or ``"error"`` (nothing could be
    evaluated). ``tightness`` is the worst ``lhs/rhs`` (or ``lhs - rhs``)
    found; for statistical bounds it is the failure frequency, with
    ``ci`` its 95% Wilson interval, compared with ``delta``.
    """

    id: str
    statement: str
    expect: str
    kind: str
    verdict: str
    instances: int
    tightness: float
    compare: str = "ratio"
    seconds: float = 0.0
    lhs: float = math.nan
    rhs: float = math.nan
    worst: Instance | None = None
    counterexample: Instance | None = None
    path: str | None = None
    failures: int = 0
    ci: tuple[float, float] | None = None
    delta: float | None = None
    errors: int = 0
    message: str = ""
    source: str = ""

    @property
    def ok(self) -> bool:
        """Whether the verdict matches the bound's ``expect``."""
        return self.verdict == self.expect

    def tightness_text(self) -> str:
        if self.kind == "statistical":
            lo, hi = self.ci or (0.0, 1.0)
            return f"p={self.tightness:.3f} [{lo:.3f}, {hi:.3f}] vs delta={self.delta:g}"
        if self.compare == "difference":
            return f"{self.tightness:+.4g} (lhs-rhs)"
        return f"{self.tightness:.6g}"


def save_counterexample(
    out: str | Path, bound: Bound, inst: Instance, lhs: float, rhs: float, *, seed: int, model: str
) -> Path:
    """Write ``<out>/<bound id>.npz`` (all instance fields, id, source, lhs, rhs)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{bound.id}.npz"
    np.savez(
        path,
        **inst.arrays(),
        bound_id=np.str_(bound.id),
        source=np.str_(bound.source),
        statement=np.str_(bound.statement),
        expect=np.str_(bound.expect),
        verdict=np.str_("violated"),
        lhs=np.float64(lhs),
        rhs=np.float64(rhs),
        seed=np.int64(seed),
        model=np.str_(model),
    )
    return path


def _statistical(bound: Bound, model: ModuleType, seed: int, seconds: float) -> Verdict:
    assert bound.trial is not None
    rng = np.random.default_rng(bound.seed_for(seed))
    start = time.monotonic()
    trials = failures = errors = 0
    message = ""
    while trials < bound.max_trials and (trials < 10 or time.monotonic() - start < seconds):
        try:
            failed = bound.trial(model, rng)
        except Exception as exc:  # a failing trial is reported, not fatal
            errors += 1
            message = message or f"{type(exc).__name__}: {exc}"
            if errors > 10 and errors > trials:
                break
            continue
        trials += 1
        failures += bool(failed)
    lo, hi = wilson(failures, trials)
    verdict = "error" if trials == 0 else ("violated" if lo > bound.delta else "holds")
    return Verdict(
        id=bound.id,
        statement=bound.statement,
        expect=bound.expect,
        kind=bound.kind,
        verdict=verdict,
        instances=trials,
        tightness=failures / max(trials, 1),
        seconds=time.monotonic() - start,
        failures=failures,
        ci=(lo, hi),
        delta=bound.delta,
        errors=errors,
        message=message,
        source=bound.source,
    )


def run_bound(
    bound: Bound,
    model: ModuleType,
    *,
    seed: int = 0,
    seconds: float = 2.5,
    out: str | Path | None = None,
    shrink_seconds: float = 2.0,
) -> Verdict:
    """Audit one bound for ``seconds`` of search."""
    if bound.kind == "statistical":
        return _statistical(bound, model, seed, seconds)
    start = time.monotonic()
    tracker = search(bound, model=model, seed_value=bound.seed_for(seed), seconds=seconds)
    best = tracker.best
    common = dict(
        id=bound.id,
        statement=bound.statement,
        expect=bound.expect,
        kind=bound.kind,
        compare=bound.compare,
        errors=tracker.errors,
        message=tracker.first_error,
        source=bound.source,
    )
    if best is None:
        return Verdict(
            **common,
            verdict="error",
            instances=0,
            tightness=math.nan,
            seconds=time.monotonic() - start,
        )
    worst_t = tightness(bound, best.lhs, best.rhs)
    if tracker.violation is None:
        return Verdict(
            **common,
            verdict="holds",
            instances=tracker.count,
            tightness=worst_t,
            lhs=best.lhs,
            rhs=best.rhs,
            worst=best.inst,
            seconds=time.monotonic() - start,
        )
    small = shrink(
        tracker, tracker.violation, seconds=shrink_seconds, seed_value=bound.seed_for(seed)
    )
    path = None
    if out is not None:
        name = getattr(model, "__name__", str(model))
        path = str(
            save_counterexample(out, bound, small.inst, small.lhs, small.rhs, seed=seed, model=name)
        )
    worst_t = max(worst_t, tightness(bound, small.lhs, small.rhs))
    return Verdict(
        **common,
        verdict="violated",
        instances=tracker.count,
        tightness=worst_t,
        lhs=small.lhs,
        rhs=small.rhs,
        worst=best.inst,
        counterexample=small.inst,
        path=path,
        seconds=time.monotonic() - start,
    )


_JOBS: dict[str, Any] = {}


def _job(i: int) -> Verdict:
    v = run_bound(
        _JOBS["bounds"][i],
        _JOBS["model"],
        seed=_JOBS["seed"],
        seconds=_JOBS["seconds"],
        out=_JOBS["out"],
        shrink_seconds=_JOBS["shrink_seconds"],
    )
    for name in ("worst", "counterexample"):  # modules do not pickle
        inst = getattr(v, name)
        if inst is not None:
            setattr(v, name, inst.with_model(None))
    return v


def _as_bounds(bounds: Sequence[Bound] | str | Path | None) -> list[Bound]:
    if bounds is None:
        return default_bounds()
    if isinstance(bounds, (str, Path)):
        return load_bounds(bounds)
    out = list(bounds)
    for i, b in enumerate(out):
        if not isinstance(b, Bound):
            raise ValueError(f"bounds[{i}] must be a Bound; got {type(b).__name__}")
    return out


def audit(
    bounds: Sequence[Bound] | str | Path | None = None,
    *,
    model: ModuleType | str | None = None,
    seed: int = 0,
    budget: float = DEFAULT_BUDGET,
    workers: int = 1,
    out: str | Path | None = None,
    shrink_seconds: float = 2.0,
) -> list[Verdict]:
    """Attack every bound; one :class:`Verdict` each, in order.

    ``bounds``: a list of :class:`Bound`, a bounds file, or ``None`` (the
    default registry). ``model``: a model module or its dotted name
    (default: the generated ``creativity_reality``). ``budget``: total search
    seconds (see the module docstring). ``out``: folder for counterexample
    ``.npz`` files (none written when ``None``).
    """
    blist = _as_bounds(bounds)
    if not budget > 0:
        raise ValueError(f"budget must be > 0 seconds; got {budget}")
    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers must be an integer >= 1; got {workers!r}")
    if shrink_seconds < 0:
        raise ValueError(f"shrink_seconds must be >= 0; got {shrink_seconds}")
    mod = resolve_model(model)
    if not blist:
        return []
    k = min(workers, len(blist))
    if k > 1 and "fork" in multiprocessing.get_all_start_methods():
        seconds = budget / math.ceil(len(blist) / k)
        _JOBS.update(
            bounds=blist,
            model=mod,
            seed=seed,
            seconds=seconds,
            out=out,
            shrink_seconds=shrink_seconds,
        )
        try:
            with ProcessPoolExecutor(k, mp_context=multiprocessing.get_context("fork")) as pool:
                verdicts = list(pool.map(_job, range(len(blist))))
        finally:
            _JOBS.clear()
        for v in verdicts:
            for name in ("worst", "counterexample"):
                inst = getattr(v, name)
                if inst is not None:
                    setattr(v, name, inst.with_model(mod))
        return verdicts
    verdicts = []
    used = 0.0
    for i, bound in enumerate(blist):
        share = max(budget - used, 0.0) / (len(blist) - i)
        t0 = time.monotonic()
        v = run_bound(bound, mod, seed=seed, seconds=share, out=out, shrink_seconds=shrink_seconds)
        spent = time.monotonic() - t0
        if v.verdict == "violated":
            spent = min(spent, share)  # shrinking is not charged to the budget
        used += spent
        verdicts.append(v)
    return verdicts
