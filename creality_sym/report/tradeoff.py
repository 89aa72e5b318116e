"""The trade-off curve of a spec, sampled adaptively in its arc length.

``x*(gamma)`` is solved by exact Newton for values of the spec's trade-off
weight ``gamma`` (``model.TRADEOFF``) from 0 upward; each point of the curve
is ``(||f(x*) - b||, H(f(x*)))`` (reality distance, entropy), or, for a spec
without a probability vector ``b``, the unweighted loss of the other terms
and of the weighted ones.

Where the points go: a coarse log grid first, then repeatedly the segment
with the longest chord (both axes scaled to ``[0, 1]`` over the curve) is
split at its geometric middle in ``gamma``, so that points follow the arc
length of the curve instead of piling up where nothing changes. Every new
point is solved from both neighbours' solutions (and every point again from
its right neighbour's at the end), and the lowest loss wins; a different
converged minimum at the same ``gamma`` is kept as an *alternative*. A
segment still long when its two ends are at most :data:`MIN_RATIO` apart in
``gamma`` is a *jump* (a discontinuity of ``x*(gamma)``): plots do not join it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from creality_sym.instance import Instance

Update = Callable[[str], None]

#: segments whose ends are closer than this ratio in gamma are not split further
MIN_RATIO = 1.005
#: stop refining when no segment is longer than this (scaled chord)
MIN_CHORD = 0.02
#: a segment longer than this with ends within MIN_RATIO is a jump (a slope no smooth
#: stretch of the curve reaches: 0.05 of the scaled axes within 0.5% of gamma)
JUMP_CHORD = 0.05
#: a splittable segment longer than this when the budget ran out is unresolved
UNRESOLVED_CHORD = 0.15
#: two minima are distinct when their probabilities differ by more than this (2-norm)
DISTINCT = 1e-4


@dataclass
class Point:
    """``x*(gamma)`` and what the curve needs of it.

    ``start`` says which warm start found it (``"first"``, ``"left"``, ``"right"``).
    """

    gamma: float
    x: np.ndarray = field(repr=False)
    distance: float
    entropy: float
    loss: float
    iterations: int
    converged: bool
    seconds: float
    reason: str
    start: str


@dataclass
class Curve:
    """The sampled trade-off curve, sorted by ``gamma``.

    ``alternatives``: other converged local minima met at the same ``gamma``
    values; ``jumps``: indices ``i`` where the curve jumps between points
    ``i`` and ``i + 1``; ``unresolved``: long segments left when the budget
    ran out; ``axes``: the names of the two coordinates.
    """

    points: list[Point]
    alternatives: list[Point]
    jumps: list[int]
    unresolved: list[int]
    axes: tuple[str, str]
    solves: int

    @property
    def gammas(self) -> np.ndarray:
        return np.array([p.gamma for p in self.points])

    @property
    def distance(self) -> np.ndarray:
        return np.array([p.distance for p in self.points])

    @property
    def entropy(self) -> np.ndarray:
        return np.array([p.entropy for p in self.points])

    def chords(self) -> np.ndarray:
        """Length of each segment with both axes scaled to [0, 1] over the curve ``(m - 1,)``."""
        return _chords(self.distance, self.entropy)


def _chords(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    su, sv = float(np.ptp(u)) or 1.0, float(np.ptp(v)) or 1.0
    return np.hypot(np.diff(u) / su, np.diff(v) / sv)


def coordinates(inst: Instance) -> Callable[[np.ndarray], tuple[float, float]]:
    """``x -> (reality coordinate, creativity coordinate)`` of the curve, and their names."""
    model = inst.model
    prob = [p.name for p in model.PARAMETERS if p.rule == "probability" and p.shape == "n"]
    if prob:
        b = np.asarray(inst.params[prob[0]])

        def of(x: np.ndarray) -> tuple[float, float]:
            logf = inst.logf(x)
            f = np.exp(logf)
            return float(np.linalg.norm(f - b)), float(-np.sum(f * logf))

        return of
    trade = model.TRADEOFF
    weighted = [t for t, w in model.WEIGHTS.items() if trade in w]
    rest = [t for t in model.TERMS if t not in weighted]

    def of_terms(x: np.ndarray) -> tuple[float, float]:
        return sum(inst.loss(x, t) for t in rest), -sum(inst.loss(x, t) for t in weighted)

    return of_terms


def axes_names(inst: Instance) -> tuple[str, str]:
    """Names of the two coordinates of :func:`coordinates`."""
    model = inst.model
    prob = [p.name for p in model.PARAMETERS if p.rule == "probability" and p.shape == "n"]
    if prob:
        return f"||f - {prob[0]}||", "entropy H(f)"
    return "loss of the other terms", f"minus the {model.TRADEOFF}-weighted terms"


class Sampler:
    """Solves ``x*(gamma)`` on one instance; counts the solves."""

    def __init__(self, inst: Instance, solve: Callable[..., Any], *, max_iter: int = 200):
        self.inst, self.solve, self.max_iter = inst, solve, max_iter
        self.trade = inst.model.TRADEOFF
        self.of = coordinates(inst)
        self.solves = 0

    def point(self, gamma: float, x0: np.ndarray, start: str) -> Point:
        data = {**self.inst.params, self.trade: float(gamma)}
        r = self.solve(
            self.inst.model, x0, A=self.inst.A, method="exact", max_iter=self.max_iter, **data
        )
        self.solves += 1
        distance, entropy = self.of(r.x) if np.all(np.isfinite(r.x)) else (math.nan, math.nan)
        return Point(
            gamma=float(gamma),
            x=np.asarray(r.x, dtype=np.float64),
            distance=distance,
            entropy=entropy,
            loss=float(r.loss),
            iterations=int(r.iterations),
            converged=bool(r.converged),
            seconds=float(r.seconds),
            reason=str(r.reason),
            start=start,
        )

    def f(self, p: Point) -> np.ndarray:
        return self.inst.replace(**{self.trade: p.gamma}).f(p.x)

    def best(self, gamma: float, starts: list[tuple[str, np.ndarray]]) -> list[Point]:
        """The minima found from ``starts``: the lowest loss first, then distinct others."""
        found = [self.point(gamma, x0, label) for label, x0 in starts]
        found.sort(key=lambda p: (not p.converged, p.loss if math.isfinite(p.loss) else math.inf))
        out = [found[0]]
        for p in found[1:]:
            if p.converged and all(np.linalg.norm(self.f(p) - self.f(q)) > DISTINCT for q in out):
                out.append(p)
        return out


def sweep(
    inst: Instance,
    solve: Callable[..., Any],
    *,
    gamma_max: float,
    points: int,
    first: int,
    gamma_min: float | None = None,
    update: Update = lambda text: None,
) -> Curve:
    """Sample the trade-off curve of ``inst``'s spec with ``points`` values of gamma.

    ``first``: the size of the coarse grid (0, then a log grid from
    ``gamma_min`` (default ``gamma_max * 5e-5``) to ``gamma_max``); the rest
    are placed by arc length (module docstring). ``solve`` is
    :func:`creality_sym.solve.newton`; ``inst.x`` is the start of the first solve.
    """
    if not inst.model.TRADEOFF:
        raise ValueError(f"spec {inst.spec} has no trade-off weight (TRADEOFF is None)")
    sampler = Sampler(inst, solve)
    lo = gamma_max * 5e-5 if gamma_min is None else gamma_min
    grid = np.concatenate([[0.0], np.geomspace(lo, gamma_max, max(first - 1, 1))])
    curve: list[Point] = []
    alternatives: list[Point] = []
    x = inst.x
    for i, gamma in enumerate(grid):
        update(f"coarse grid: gamma = {gamma:.3g} ({i + 1}/{len(grid)})")
        p = sampler.point(gamma, x, "first" if i == 0 else "left")
        curve.append(p)
        x = p.x
    alternatives += _from_the_right(sampler, curve, update)
    while len(curve) < points:
        chords = _chords(
            np.array([p.distance for p in curve]), np.array([p.entropy for p in curve])
        )
        order = np.argsort(-np.nan_to_num(chords, nan=np.inf))
        pick = next((int(i) for i in order if _splittable(curve[i], curve[i + 1])), None)
        if pick is None or chords[pick] < MIN_CHORD:
            break
        left, right = curve[pick], curve[pick + 1]
        gamma = _middle(left.gamma, right.gamma)
        update(f"arc length: gamma = {gamma:.3g} ({len(curve) + 1}/{points})")
        found = sampler.best(gamma, [("left", left.x), ("right", right.x)])
        curve.insert(pick + 1, found[0])
        alternatives += found[1:]
    alternatives += _from_the_right(sampler, curve, update)
    chords = _chords(np.array([p.distance for p in curve]), np.array([p.entropy for p in curve]))
    jumps, unresolved = [], []
    for i, chord in enumerate(chords):
        if chord > JUMP_CHORD and not _splittable(curve[i], curve[i + 1]):
            jumps.append(i)
        elif chord > UNRESOLVED_CHORD:
            unresolved.append(i)
    alternatives = _unique(sampler, alternatives, curve)
    return Curve(curve, alternatives, jumps, unresolved, axes_names(inst), sampler.solves)


def _from_the_right(sampler: Sampler, curve: list[Point], update: Update) -> list[Point]:
    """Solve every point again from its right neighbour's solution (right to left, so a
    better branch spreads leftward); keep the lower loss; return the other distinct minima."""
    update("every point again from its right neighbour")
    others = []
    for i in range(len(curve) - 2, -1, -1):
        again = sampler.point(curve[i].gamma, curve[i + 1].x, "right")
        found = sorted([curve[i], again], key=lambda p: (not p.converged, p.loss))
        if again.converged and np.linalg.norm(sampler.f(again) - sampler.f(curve[i])) > DISTINCT:
            others.append(found[1])
        curve[i] = found[0]
    return others


def _splittable(left: Point, right: Point) -> bool:
    if left.gamma == 0.0:
        return right.gamma > 1e-12
    return right.gamma / left.gamma > MIN_RATIO


def _middle(lo: float, hi: float) -> float:
    """The geometric middle (a tenth of ``hi`` when ``lo`` is 0)."""
    return hi / 10.0 if lo == 0.0 else math.sqrt(lo * hi)


def _unique(sampler: Sampler, alternatives: list[Point], curve: list[Point]) -> list[Point]:
    """Alternatives that differ from the curve point at their gamma and from each other."""
    by_gamma = {p.gamma: p for p in curve}
    out: list[Point] = []
    for p in sorted(alternatives, key=lambda q: q.gamma):
        ref = [by_gamma.get(p.gamma), *[q for q in out if q.gamma == p.gamma]]
        if all(r is None or np.linalg.norm(sampler.f(p) - sampler.f(r)) > DISTINCT for r in ref):
            out.append(replace(p))
    return out


def transition(curve: Curve, low: float = 0.05, high: float = 0.95) -> tuple[float, float]:
    """The gammas between which the curve covers ``low`` to ``high`` of its arc length."""
    chords = curve.chords()
    total = float(np.sum(chords)) or 1.0
    arc = np.concatenate([[0.0], np.cumsum(chords)]) / total
    g = curve.gammas
    return float(g[np.searchsorted(arc, low)]), float(
        g[min(np.searchsorted(arc, high), len(g) - 1)]
    )
