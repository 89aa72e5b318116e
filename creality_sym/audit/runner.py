"""Run the auditor: verdicts for a list of bounds, counterexample files, replay.

Timed mode (the default): ``budget`` is the *total* search time in seconds
for the whole list; with one worker each bound gets an equal share of what
is left when it starts (time a quick bound does not use goes to the next
ones); with ``K`` workers each bound gets ``budget / ceil(len(bounds) / K)``.
Every deterministic bound is evaluated at least :data:`MIN_EVALS` times and
every statistical claim tried often enough that its interval can decide
(:func:`~creality_sym.audit.statistical.min_trials`), even past its share
(by at most :data:`GRACE` seconds). Shrinking a counterexample adds at most
``shrink_seconds`` per violated bound.

Counted mode (``max_evals=N``): each bound gets exactly ``N`` evaluations
(trials for statistical claims) and shrinking :data:`SHRINK_EVALS`, so the
same seed gives the same verdicts, counts and counterexamples; ``budget``
(default :data:`DEFAULT_CAP`) is then only a time cap, and a bound stopped by
it is flagged ``capped``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from creality_sym.audit.bounds import Bound, default_bounds, load_bounds, safe_name, tightness
from creality_sym.audit.instance import EXP_LOGIT_LIMIT, Instance, Space
from creality_sym.audit.limits import DEFAULT_EVAL_TIMEOUT, Limit, alarm_scope
from creality_sym.audit.search import search
from creality_sym.audit.shrink import shrink
from creality_sym.audit.statistical import decide, run_statistical

__all__ = [
    "Verdict",
    "audit",
    "run_bound",
    "save_counterexample",
    "DEFAULT_BUDGET",
    "DEFAULT_CAP",
    "MIN_EVALS",
]

#: default total search budget in seconds (timed mode)
DEFAULT_BUDGET = 30.0

#: default time cap in seconds for the whole list in counted mode (``max_evals``)
DEFAULT_CAP = 600.0

#: evaluations every deterministic bound gets in timed mode, however small the budget
MIN_EVALS = 100

#: seconds a bound may run past its share to reach those floors
GRACE = 5.0

#: evaluations shrinking may use in counted mode
SHRINK_EVALS = 6000

#: every verdict a bound can get
VERDICTS = ("holds", "violated", "undecided", "error", "skipped")


@dataclass
class Verdict:
    """The outcome for one bound.

    ``verdict`` is ``"holds"``, ``"violated"``, ``"undecided"`` (a statistical
    claim whose interval still contains ``delta``), ``"error"`` (no valid
    evaluation at all) or ``"skipped"`` (the bound is about terms or specs
    other than the audited one; never a mismatch). ``tightness`` is the worst ``lhs/rhs`` (or
    ``lhs - rhs``) found; for statistical bounds it is the failure frequency,
    with ``ci`` its 95% Wilson interval, compared with ``delta``. ``domain``
    is the searched space in words; ``capped``: the time cap, not the
    evaluation count, ended a counted run; ``outside``: instances skipped as
    outside the model's domain; ``spec``: the audited spec; ``notes``: what
    the reader should know (errors, timeouts, why undecided or skipped).
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
    domain: str = ""
    timeouts: int = 0
    capped: bool = False
    outside: int = 0
    spec: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the verdict matches the bound's ``expect`` (a skipped bound is never a
        mismatch)."""
        return self.verdict in (self.expect, "skipped")

    def tightness_text(self) -> str:
        if self.verdict == "skipped":
            return "-"
        if self.kind == "statistical":
            lo, hi = self.ci or (0.0, 1.0)
            return f"p={self.tightness:.3f} [{lo:.3f}, {hi:.3f}] vs delta={self.delta:g}"
        if not math.isfinite(self.tightness) and self.verdict == "error":
            return "-"
        if self.compare == "difference":
            return f"{self.tightness:+.4g} (lhs-rhs)"
        return f"{self.tightness:.6g}"


def counterexample_path(out: str | Path, bound: Bound) -> Path:
    """``<out>/<safe name of the id>.npz``: always directly inside ``out``."""
    return Path(out) / f"{safe_name(bound.id)}.npz"


def save_counterexample(
    out: str | Path, bound: Bound, inst: Instance, lhs: float, rhs: float, *, seed: int, model: str
) -> Path:
    """Write the counterexample file (every instance field and parameter, the spec, id,
    source, lhs, rhs).

    The file name comes from :func:`~creality_sym.audit.bounds.safe_name`, so
    an id such as ``../x`` cannot write outside ``out``.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = counterexample_path(folder, bound)
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


def _common(bound: Bound, space: Space) -> dict[str, Any]:
    # statistical trials draw the searched scalar uniformly in [0, 1]
    scalars = space.describe(1.0 if bound.kind == "statistical" else bound.gamma_max)
    return dict(
        id=bound.id,
        statement=bound.statement,
        expect=bound.expect,
        kind=bound.kind,
        compare=bound.compare,
        source=bound.source,
        domain=bound.domain(scalars),
        spec=space.spec,
    )


def _error_notes(errors: int, timeouts: int, first: str) -> list[str]:
    if not errors:
        return []
    text = f"{errors} evaluation error(s)"
    if timeouts:
        text += f", {timeouts} of them past the time limit"
    return [f"{text}; first: {first}"]


def _statistical(
    bound: Bound, space: Space, seed: int, limit: Limit, eval_timeout: float | None
) -> Verdict:
    out = run_statistical(
        bound, space.model, seed=seed, limit=limit, eval_timeout=eval_timeout, space=space
    )
    verdict, ci = decide(out.failures, out.trials, bound.delta)
    notes = _error_notes(out.errors, out.timeouts, out.first_error)
    if verdict == "undecided":
        notes.append(
            f"{out.trials} trials cannot decide: the 95% interval [{ci[0]:.3f}, {ci[1]:.3f}] "
            f"contains delta={bound.delta:g}; raise --budget or --max-evals"
        )
    if verdict == "error":
        notes.append("no trial completed")
    if out.capped:
        notes.append("stopped by the time cap before its evaluation count")
    return Verdict(
        **_common(bound, space),
        verdict=verdict,
        instances=out.trials,
        tightness=out.failures / max(out.trials, 1),
        seconds=out.seconds,
        failures=out.failures,
        ci=ci,
        delta=bound.delta,
        errors=out.errors,
        message=out.first_error,
        timeouts=out.timeouts,
        capped=out.capped,
        notes=notes,
    )


def _limits(
    seconds: float, max_evals: int | None, shrink_seconds: float
) -> tuple[Limit, Callable[[], Limit]]:
    """The search limit and a factory for the shrink limit (made when shrinking starts)."""
    if max_evals is None:
        return (
            Limit.timed(seconds, min_attempts=MIN_EVALS, grace=GRACE),
            lambda: Limit.timed(shrink_seconds),
        )
    search_limit = Limit.count(max_evals, cap=seconds)
    return search_limit, lambda: Limit.count(
        SHRINK_EVALS, cap=max(search_limit.deadline - time.monotonic(), 0.0) + shrink_seconds
    )


def run_bound(
    bound: Bound,
    model: ModuleType | Space,
    *,
    seed: int = 0,
    seconds: float = 2.5,
    out: str | Path | None = None,
    shrink_seconds: float = 2.0,
    max_evals: int | None = None,
    eval_timeout: float | None = DEFAULT_EVAL_TIMEOUT,
) -> Verdict:
    """Audit one bound for ``seconds`` of search, or ``max_evals`` evaluations within them.

    ``model``: a :class:`Space` or a model (its default space).
    """
    space = model if isinstance(model, Space) else Space.make(model)
    reason = bound.skip_reason(space.spec, space.terms)
    if reason:
        return Verdict(
            **_common(bound, space),
            verdict="skipped",
            instances=0,
            tightness=math.nan,
            notes=[f"skipped: {reason}"],
        )
    search_limit, shrink_limit = _limits(seconds, max_evals, shrink_seconds)
    with alarm_scope():
        if bound.kind == "statistical":
            return _statistical(bound, space, seed, search_limit, eval_timeout)
        return _deterministic(bound, space, seed, search_limit, shrink_limit, out, eval_timeout)


def _deterministic(
    bound: Bound,
    space: Space,
    seed: int,
    limit: Limit,
    shrink_limit: Callable[[], Limit],
    out: str | Path | None,
    eval_timeout: float | None,
) -> Verdict:
    start = time.monotonic()
    tracker = search(
        bound, space=space, seed_value=bound.seed_for(seed), limit=limit, eval_timeout=eval_timeout
    )
    capped = limit.capped() and tracker.attempts < limit.max_attempts and not tracker.gave_up()
    notes = _error_notes(tracker.errors, tracker.timeouts, tracker.first_error)
    if tracker.gave_up():
        notes.append(f"stopped after {tracker.timeouts} evaluations ran past the time limit")
    if capped:
        notes.append(
            f"stopped by the time cap after {tracker.attempts} of {limit.max_attempts:.0f} "
            "evaluations"
        )
    if tracker.outside:
        notes.append(
            f"{tracker.outside} instance(s) outside the model's domain (logits above "
            f"{EXP_LOGIT_LIMIT:g} for the unnormalized exp(z)) skipped"
        )
    common = dict(
        **_common(bound, space),
        outside=tracker.outside,
        errors=tracker.errors,
        message=tracker.first_error,
        timeouts=tracker.timeouts,
        capped=capped,
        notes=notes,
    )
    best = tracker.best
    if best is None:
        if tracker.rejected and not tracker.errors:
            notes.append(f"the premise (assume) rejected all {tracker.rejected} instances")
        elif tracker.outside and not tracker.errors:
            notes.append("every instance lay outside the model's domain")
        elif not tracker.attempts:
            notes.append("no instance was evaluated")
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
    instances = tracker.count
    small = shrink(
        tracker, tracker.violation, limit=shrink_limit(), seed_value=bound.seed_for(seed)
    )
    path = None
    if out is not None:
        name = getattr(space.model, "__name__", str(space.model))
        path = str(
            save_counterexample(out, bound, small.inst, small.lhs, small.rhs, seed=seed, model=name)
        )
    worst_t = max(worst_t, tightness(bound, small.lhs, small.rhs))
    return Verdict(
        **common,
        verdict="violated",
        instances=instances,
        tightness=worst_t,
        lhs=small.lhs,
        rhs=small.rhs,
        worst=best.inst,
        counterexample=small.inst,
        path=path,
        seconds=time.monotonic() - start,
    )


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


def check_options(
    budget: float,
    workers: int,
    shrink_seconds: float,
    max_evals: int | None,
    eval_timeout: float | None,
) -> None:
    """``ValueError`` naming the first bad option of :func:`audit`."""
    if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
        raise ValueError(f"budget must be a finite number of seconds > 0; got {budget}")
    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers must be an integer >= 1; got {workers!r}")
    if not (math.isfinite(shrink_seconds) and shrink_seconds >= 0):
        raise ValueError(f"shrink_seconds must be >= 0; got {shrink_seconds}")
    if max_evals is not None and not (isinstance(max_evals, int) and max_evals >= 1):
        raise ValueError(f"max_evals must be an integer >= 1; got {max_evals!r}")
    if eval_timeout is not None and not (math.isfinite(eval_timeout) and eval_timeout > 0):
        raise ValueError(f"eval_timeout must be a number of seconds > 0; got {eval_timeout}")


def audit(
    bounds: Sequence[Bound] | str | Path | None = None,
    *,
    model: ModuleType | str | Space | None = None,
    params: dict[str, float] | None = None,
    seed: int = 0,
    budget: float | None = None,
    workers: int = 1,
    out: str | Path | None = None,
    shrink_seconds: float = 2.0,
    max_evals: int | None = None,
    eval_timeout: float | None = DEFAULT_EVAL_TIMEOUT,
    scheduler: Any = None,
) -> list[Verdict]:
    """Attack every bound; one :class:`Verdict` each, in order.

    ``bounds``: a list of :class:`Bound`, a bounds file, or ``None`` (the
    default registry). ``model``: a model module, a spec name, a dotted
    module name or a :class:`Space` (default: the default spec).
    ``params``: scalars to fix by name (``--param``); the trade-off scalar
    is searched unless fixed, the others take the spec's defaults. ``budget``: total search
    seconds, default :data:`DEFAULT_BUDGET`; with ``max_evals`` (evaluations
    per bound) a time cap only, default :data:`DEFAULT_CAP` (see the module
    docstring). ``out``: folder for counterexample ``.npz`` files (none
    written when ``None``). ``eval_timeout``: seconds one evaluation may take
    (None: no limit); a longer one is an evaluation error. ``scheduler``:
    run the bounds as Dask tasks there (``local:K``, an address or a
    ``distributed.Client``; :mod:`creality_sym.distributed.audit`);
    ``workers=K > 1`` without it is ``scheduler="local:K"``.
    """
    blist = _as_bounds(bounds)
    if budget is None:
        budget = DEFAULT_BUDGET if max_evals is None else DEFAULT_CAP
    check_options(budget, workers, shrink_seconds, max_evals, eval_timeout)
    space = model if isinstance(model, Space) else Space.make(model, params)
    if not blist:
        return []
    options: dict[str, Any] = dict(
        seed=seed,
        out=out,
        shrink_seconds=shrink_seconds,
        max_evals=max_evals,
        eval_timeout=eval_timeout,
    )
    k = min(workers, len(blist))
    if scheduler is not None or k > 1:  # Dask tasks, one per bound; --workers K: local:K
        from creality_sym.distributed.audit import audit_on_cluster

        return audit_on_cluster(
            blist, space, scheduler or f"local:{k}", budget=budget, options=options
        )
    verdicts = []
    used = 0.0
    for i, bound in enumerate(blist):
        share = max(budget - used, 0.0) / (len(blist) - i)
        t0 = time.monotonic()
        v = run_bound(bound, space, seconds=share, **options)
        spent = time.monotonic() - t0
        if v.verdict == "violated":
            spent = min(spent, share)  # shrinking is not charged to the budget
        used += spent
        verdicts.append(v)
    return verdicts
