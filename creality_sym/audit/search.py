"""Adversarial search: maximise ``lhs/rhs`` over the assumption set.

Three stages share one :class:`Tracker` (instances tried, worst found, first
violation) and one :class:`~creality_sym.audit.limits.Limit` (a time budget,
or an evaluation count for a repeatable search):

1. Hypothesis, steered by ``target()`` toward large ``lhs/rhs``
   (:func:`hypothesis_phase`);
2. structured and random starts (:func:`random_start`);
3. local ascent from the best starts and fresh restarts: random-direction
   hill climbing with an adaptive step, projecting back onto the constraints
   after every move (:func:`ascend`).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings, target

from creality_sym.audit.bounds import Bound, EvaluationError, evaluate, is_violation, objective
from creality_sym.audit.instance import Instance, Space, project, project_ball, spectral_norm
from creality_sym.audit.limits import EvaluationTimeout, Limit
from creality_sym.audit.structure import (
    MATRIX_KINDS,
    POINT_KINDS,
    PROB_KINDS,
    SECOND_KINDS,
    VECTOR_KINDS,
    build_matrix,
    build_point,
    build_prob,
    build_second,
    build_vector,
)

__all__ = [
    "Tracker",
    "search",
    "random_start",
    "random_params",
    "mutate",
    "ascend",
    "hypothesis_phase",
]


@dataclass
class Point:
    """An evaluated instance."""

    inst: Instance
    lhs: float
    rhs: float
    score: float


#: relative size of the perturbations that must not undo a violation
JITTER = 1e-9


def reproject(bound: Bound, space: Space, inst: Instance, **changes: Any) -> Instance:
    """``inst`` with ``changes`` (fields or parameters), projected onto the assumption set."""
    params = {**inst.params, **{k: v for k, v in changes.items() if k in inst.params}}
    return project(
        changes.get("A", inst.A),
        changes.get("x", inst.x),
        changes.get("y", inst.y),
        params,
        changes.get("R", inst.R),
        space=space,
        **_space(bound),
    )


def jitter(bound: Bound, space: Space, inst: Instance, rng: np.random.Generator) -> Instance:
    """``inst`` with every entry scaled by ``1 + 1e-9 N(0, 1)`` (zeros stay zero), re-projected."""

    def j(v: Any) -> Any:
        return v * (1.0 + JITTER * rng.standard_normal(np.shape(v)))

    params = {k: j(np.asarray(v, dtype=np.float64)) for k, v in inst.params.items()}
    return project(j(inst.A), j(inst.x), j(inst.y), params, inst.R, space=space, **_space(bound))


@dataclass
class Tracker:
    """Evaluates instances of one bound and remembers the worst and the first violation.

    A point counts as a violation, or as a new worst ratio above 0.99, only
    after three jittered copies (:func:`jitter`) agree; otherwise the lowest
    scoring copy stands in for it. Ratios of two rounding errors
    (``u(x) - u(y)`` for ``x, y`` a few ulps apart) are thereby not reported.

    ``attempts`` counts every instance tried (premise rejections, instances
    outside the model's domain and errors included); ``count`` the ones
    evaluated to two finite numbers; ``outside`` the ones skipped because
    they lie outside the model's domain (:meth:`Space.outside`). ``limit``
    ends the current stage; ``eval_timeout`` bounds one evaluation.
    """

    bound: Bound
    space: Space
    limit: Limit
    eval_timeout: float | None = None
    attempts: int = 0
    count: int = 0
    errors: int = 0
    timeouts: int = 0
    rejected: int = 0
    outside: int = 0
    first_error: str = ""
    best: Point | None = None
    violation: Point | None = None
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    #: stop a bound after this many evaluations ran past the time limit ...
    MAX_TIMEOUTS = 3

    @property
    def model(self) -> Any:
        return self.space.model

    def gave_up(self) -> bool:
        """... when they outnumber the successful ones."""
        return self.timeouts >= self.MAX_TIMEOUTS and self.timeouts > self.count

    def expired(self) -> bool:
        return self.gave_up() or self.limit.expired(self.attempts)

    def _error(self, text: str) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = text

    def _raw(self, inst: Instance) -> Point | None:
        self.attempts += 1
        try:
            if self.bound.assume is not None:
                inst = self.bound.assume(inst)
                if inst is None:
                    self.rejected += 1
                    return None
            if self.space.outside(inst):
                self.outside += 1
                return None
            lhs, rhs = evaluate(self.bound, inst, timeout=self.eval_timeout)
        except EvaluationTimeout:
            self.timeouts += 1
            self._error(f"evaluation took longer than the {self.eval_timeout:g} s limit")
            return None
        except EvaluationError as exc:
            self._error(str(exc))
            return None
        except Exception as exc:  # a user's bound may fail anywhere
            self._error(f"{type(exc).__name__}: {exc}")
            return None
        self.count += 1
        return Point(inst, lhs, rhs, objective(self.bound, lhs, rhs))

    def robust(self, p: Point, copies: int = 3) -> tuple[Point, bool]:
        """The worst of ``p`` and its jittered copies, and whether every copy violates."""
        worst, agree = p, True
        for _ in range(copies):
            q = self._raw(jitter(self.bound, self.space, p.inst, self.rng))
            if q is None:
                return replace(p, score=-math.inf), False
            if q.score < worst.score:
                worst = q
            agree = agree and is_violation(self.bound, q.lhs, q.rhs)
        return worst, agree

    def evaluate(self, inst: Instance) -> Point | None:
        """Apply the bound's premises, evaluate, record; ``None`` when rejected."""
        p = self._raw(inst)
        if p is None:
            return None
        violated = is_violation(self.bound, p.lhs, p.rhs)
        new_best = self.best is None or p.score > self.best.score
        if violated or (new_best and self.bound.compare == "ratio" and p.score > -1e-2):
            worst, agree = self.robust(p)
            violated = violated and agree
            p = replace(p, score=worst.score) if violated else worst
            new_best = self.best is None or p.score > self.best.score
        if new_best:
            self.best = p
        if violated and self.violation is None:
            self.violation = p
        return p


def _space(bound: Bound) -> dict[str, float]:
    return {"R_max": bound.R_max, "gamma_max": bound.gamma_max, "w_max": bound.w_max}


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def random_params(
    bound: Bound, space: Space, rng: np.random.Generator, n: int, d: int
) -> dict[str, Any]:
    """Structured random values of every vector and searched scalar of ``space``."""
    out: dict[str, Any] = {}
    for p in space.vectors():
        size = n if p.shape == "n" else d
        if p.rule == "probability":
            kind = _pick(rng, PROB_KINDS)
            out[p.name] = build_prob(kind, rng.standard_normal(size), int(rng.integers(size)))
        else:
            kind = _pick(rng, VECTOR_KINDS)
            out[p.name] = build_vector(p.rule, kind, rng.uniform(-1, 1, size), bound.w_max)
    for name in space.searched:
        lo, hi = space.scalar_range(name, bound.gamma_max)
        out[name] = _pick(rng, (lo, hi, float(rng.uniform(lo, hi))))
    return out


def random_start(
    bound: Bound, rng: np.random.Generator, space: Space, shape: tuple[int, int] | None = None
) -> Instance:
    """A structured random instance (the numpy twin of ``strategies.instances``)."""
    if shape is None:
        lo, hi = bound.n
        n = _pick(
            rng, (lo, min(lo + 1, hi), min(max(lo, 2), hi), hi, int(rng.integers(lo, hi + 1)))
        )
        lo, hi = bound.d
        d = _pick(rng, (lo, min(lo + 1, hi), hi, int(rng.integers(lo, hi + 1))))
    else:
        n, d = shape
    R = _pick(rng, (1.0, bound.R_max, float(rng.uniform(1.0, bound.R_max))))
    scale = 1.0 if rng.random() < 0.7 else rng.random()
    G = rng.standard_normal((n, d))
    kind = _pick(rng, MATRIX_KINDS)
    A = build_matrix(kind, G, rng.standard_normal(n), rng.standard_normal(d), R, scale)
    scale = 1.0 if rng.random() < 0.7 else rng.random()
    x = build_point(_pick(rng, POINT_KINDS), rng.standard_normal(d), A, R, scale)
    h = 10 ** rng.uniform(-4, 0)
    y = build_second(_pick(rng, SECOND_KINDS), rng.standard_normal(d), x, A, R, h)
    params = random_params(bound, space, rng, n, d)
    return project(A, x, y, params, R, space=space, **_space(bound))


def _move_parameter(
    bound: Bound, space: Space, inst: Instance, rng: np.random.Generator, sigma: float
) -> Instance:
    """Perturb one vector parameter or a searched scalar (multiplicatively when positive)."""
    names = [p.name for p in space.vectors()] + list(space.searched)
    if not names:
        return inst
    name = _pick(rng, names)
    value = np.asarray(inst.params[name], dtype=np.float64)
    rule = next(p.rule for p in space.parameters() if p.name == name)
    if name in space.searched:
        lo, hi = space.scalar_range(name, bound.gamma_max)
        moved = float(value) + sigma * max(hi - lo, 1e-3) * rng.standard_normal()
        return inst.replace(**{name: min(max(moved, lo), hi)})
    if rule in ("positive", "nonnegative"):
        moved = value * np.exp(sigma * rng.standard_normal(value.shape))
    else:
        scale = 1.0 if rule == "probability" else max(bound.w_max, 1e-3)
        moved = value + sigma * scale * rng.standard_normal(value.shape)
    return reproject(bound, space, inst, **{name: moved})


def mutate(
    bound: Bound, space: Space, inst: Instance, rng: np.random.Generator, sigma: float
) -> Instance:
    """A random move of relative size ``sigma``, projected back onto the constraints."""
    A, x, y, R = inst.A, inst.x, inst.y, inst.R
    n, d = A.shape
    move = int(rng.integers(12))
    if move <= 3:  # all of A, or one entry
        if move == 3:
            A = A.copy()
            A[rng.integers(n), rng.integers(d)] += sigma * R * rng.standard_normal()
        else:
            A = A + sigma * R * rng.standard_normal((n, d)) / math.sqrt(d)
        norm = spectral_norm(A)
        return inst.replace(A=A * (R / norm) if norm > R else A)
    if move <= 6:
        if move == 4:
            x = project_ball(x + sigma * R * rng.standard_normal(d) / math.sqrt(d), R)
        elif move == 5:
            y = project_ball(y + sigma * R * rng.standard_normal(d) / math.sqrt(d), R)
        else:  # shrink or grow y - x
            y = project_ball(x + (y - x) * math.exp(sigma * rng.standard_normal()), R)
        return inst.replace(x=x, y=y)
    if move <= 8:
        return _move_parameter(bound, space, inst, rng, sigma)
    if move == 9:  # R, with A, x, y scaled along
        R_new = min(max(R * math.exp(sigma * rng.standard_normal()), 1.0), bound.R_max)
        t = R_new / R
        return inst.replace(A=A * t, x=x * t, y=y * t, R=R_new)
    if move == 10:  # onto the boundary
        which = int(rng.integers(3))
        if which == 0:
            norm = spectral_norm(A)
            return inst.replace(A=A * (R / norm)) if norm > 0 else inst
        v = x if which == 1 else y
        nv = float(np.linalg.norm(v))
        if nv == 0:
            return inst
        return inst.replace(x=x * (R / nv)) if which == 1 else inst.replace(y=y * (R / nv))
    s = 0.3 * sigma  # everything a little
    changes: dict[str, Any] = {
        "A": A + s * R * rng.standard_normal((n, d)) / math.sqrt(d),
        "x": x + s * R * rng.standard_normal(d) / math.sqrt(d),
        "y": y + s * R * rng.standard_normal(d) / math.sqrt(d),
    }
    for p in space.vectors():
        if p.rule == "probability":
            value = np.asarray(inst.params[p.name])
            changes[p.name] = value + s * rng.standard_normal(value.shape)
    return reproject(bound, space, inst, **changes)


def ascend(
    tracker: Tracker,
    start: Point,
    rng: np.random.Generator,
    *,
    steps: int,
    sigma: float = 0.3,
    stop_on_violation: bool = True,
) -> Point:
    """Hill-climb from ``start`` for at most ``steps`` moves; the last accepted point."""
    cur = start
    for _ in range(steps):
        if tracker.expired() or sigma < 1e-4:
            break
        if stop_on_violation and tracker.violation is not None:
            break
        cand = tracker.evaluate(mutate(tracker.bound, tracker.space, cur.inst, rng, sigma))
        if cand is not None and cand.score >= cur.score:
            if cand.score > cur.score:
                sigma = min(sigma * 1.6, 1.0)
            cur = cand
        else:
            sigma *= 0.92
    return cur


#: Hypothesis examples per second this stage assumes when sizing ``max_examples``
HYPOTHESIS_RATE = 60.0


class _Stop(BaseException):
    """Ends the Hypothesis stage (deadline or violation) at once.

    A ``BaseException``, like ``KeyboardInterrupt``: Hypothesis would treat an
    ``Exception`` as a failing example and keep working on it.
    """


_CONSTANTS_LOCK = threading.Lock()
_CONSTANTS_USERS = 0
_CONSTANTS_SAVED: Any = None


def _no_local_constants() -> Any:
    from hypothesis.internal.conjecture.providers import Constants

    return Constants()


@contextlib.contextmanager
def module_independent_draws() -> Iterator[None]:
    """Hypothesis draws that depend on the seed alone, not on which modules are loaded.

    Hypothesis mixes into its draws literal constants it collects from the
    *local* modules in ``sys.modules`` (files outside site-packages): the
    same seed then gave a different search, and so a different tightness,
    after ``import creality_sym.solve``, in an editable install against a
    regular one, or beside a user's own modules. Inside this block the pool
    of local constants is empty (Hypothesis' built-in constants stay), so an
    audit's counted search repeats exactly in any process. Re-entrant and
    shared by concurrent searches (threads of one process). The switch is
    process-wide: a Hypothesis test running in another thread while a search
    is inside the block draws without local constants too; once no search is
    inside, Hypothesis is as it was.
    """
    global _CONSTANTS_USERS, _CONSTANTS_SAVED
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:  # pragma: no cover - an older Hypothesis (no local constants either)
        yield
        return
    if not callable(getattr(providers, "_get_local_constants", None)):
        yield  # pragma: no cover - a Hypothesis that collects no local constants
        return
    with _CONSTANTS_LOCK:
        if _CONSTANTS_USERS == 0:
            _CONSTANTS_SAVED = providers._get_local_constants
            providers._get_local_constants = _no_local_constants
            _clear_constants_cache(providers)
        _CONSTANTS_USERS += 1
    try:
        yield
    finally:
        with _CONSTANTS_LOCK:
            _CONSTANTS_USERS -= 1
            if _CONSTANTS_USERS == 0:
                providers._get_local_constants = _CONSTANTS_SAVED
                _CONSTANTS_SAVED = None
                _clear_constants_cache(providers)


def _clear_constants_cache(providers: Any) -> None:
    """Forget the per-constraint constant pools Hypothesis computed from the other pool."""
    cache = getattr(getattr(providers, "CONSTANTS_CACHE", None), "cache", None)
    if cache is not None:
        cache.clear()


def hypothesis_phase(tracker: Tracker, *, seed_value: int, max_examples: int = 100) -> list[Point]:
    """Hypothesis generation + ``target()``; returns the best points it met.

    Hypothesis starts optimising the ``target()`` score after half of
    ``max_examples``, so that number is sized to the time available.
    """
    from creality_sym.strategies import instances  # imports this package

    bound = tracker.bound
    found: list[Point] = []
    strategy = instances(
        bound.n,
        bound.d,
        R_max=bound.R_max,
        gamma_max=bound.gamma_max,
        w_max=bound.w_max,
        space=tracker.space,
    )

    @seed(seed_value % (2**32))
    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.target],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
    )
    @given(strategy)
    def probe(inst: Instance) -> None:
        if tracker.expired() or tracker.violation is not None:
            raise _Stop
        p = tracker.evaluate(inst)
        if p is None:
            return
        found.append(p)
        if len(found) > 64:
            found.sort(key=lambda q: q.score, reverse=True)
            del found[16:]
        if math.isfinite(p.score):
            target(p.score)

    try:
        with module_independent_draws():
            probe()
    except _Stop:
        pass
    except Exception as exc:  # Hypothesis itself gave up; the numpy stages go on
        if not tracker.first_error:
            tracker.first_error = f"hypothesis stage: {type(exc).__name__}: {exc}"
    found.sort(key=lambda q: q.score, reverse=True)
    return found[:16]


def search(
    bound: Bound,
    *,
    space: Space,
    seed_value: int,
    limit: Limit,
    eval_timeout: float | None = None,
    hypothesis_share: float = 0.2,
) -> Tracker:
    """Attack a deterministic bound until ``limit``; the tracker holds the outcome.

    The first ``hypothesis_share`` of the time (timed limits) or of the
    evaluations (counted limits) goes to the Hypothesis stage.
    """
    seconds = max(limit.deadline - time.monotonic(), 0.0)
    if limit.counted:
        share = max(int(hypothesis_share * limit.max_attempts), 1)
        examples = min(share, 2000)
        stage = limit.sub(0, seconds=0.0, attempts=share)
    else:
        examples = min(max(int(hypothesis_share * seconds * HYPOTHESIS_RATE), 10), 2000)
        stage = limit.sub(0, seconds=hypothesis_share * seconds)
    tracker = Tracker(bound, space, stage, eval_timeout=eval_timeout)
    pool = hypothesis_phase(tracker, seed_value=seed_value, max_examples=examples)
    tracker.limit = limit
    rng = np.random.default_rng(seed_value)
    for _ in range(200):
        if tracker.violation is not None or tracker.expired():
            break
        p = tracker.evaluate(random_start(bound, rng, space))
        if p is not None:
            pool.append(p)
    pool.sort(key=lambda q: q.score, reverse=True)
    elites = pool[:6]
    for p in elites:
        ascend(tracker, p, rng, steps=400)
    round_no = 0
    while tracker.violation is None and not tracker.expired():
        round_no += 1
        if round_no % 3 == 0 and tracker.best is not None:
            ascend(tracker, tracker.best, rng, steps=400, sigma=0.05)
            continue
        best_start = None
        shape = (
            int(rng.integers(bound.n[0], bound.n[1] + 1)),
            int(rng.integers(bound.d[0], bound.d[1] + 1)),
        )
        for _ in range(20):
            if tracker.expired():
                break
            p = tracker.evaluate(random_start(bound, rng, space, shape if round_no % 2 else None))
            if p is not None and (best_start is None or p.score > best_start.score):
                best_start = p
        if best_start is not None:
            ascend(tracker, best_start, rng, steps=300)
    return tracker


def reoptimize(
    tracker: Tracker, inst: Instance, rng: np.random.Generator, steps: int
) -> Point | None:
    """Short ascent from ``inst`` at its shape; the violating point if one is reached."""
    saved, tracker.violation = tracker.violation, None
    p = tracker.evaluate(inst)
    if p is not None and tracker.violation is None:
        ascend(tracker, p, rng, steps=steps, sigma=0.1)
    found, tracker.violation = tracker.violation, saved
    return found
