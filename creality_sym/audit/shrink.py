"""Shrink a violating instance to a small, readable counterexample.

Steps, each kept only while the bound stays violated: drop rows (``n``) and
columns (``d``), re-optimising briefly at the smaller shape when a plain drop
loses the violation; then simplify (the searched scalar to 0 or 1, positive
vectors to ones, ``y -> x``, probability vectors one-hot...) and round every
entry to as few decimals as possible.
Rounded instances are checked against the assumptions, never re-projected,
so the saved numbers are exactly the ones that violate the bound.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from creality_sym.audit.bounds import is_violation
from creality_sym.audit.instance import (
    Instance,
    Space,
    project,
    spectral_norm,
    violates_assumptions,
)
from creality_sym.audit.limits import Limit
from creality_sym.audit.search import Point, Tracker, ascend, reoptimize

__all__ = ["shrink"]


def _check(tracker: Tracker, inst: Instance, floor: float = -math.inf) -> Point | None:
    """The point if ``inst`` is admissible and robustly violates with score >= ``floor``."""
    if violates_assumptions(inst, tracker.space, rtol=1e-12):
        return None
    p = tracker._raw(inst)
    if p is None or not is_violation(tracker.bound, p.lhs, p.rhs):
        return None
    worst, agree = tracker.robust(p)
    if agree and worst.score >= floor:
        return replace(p, score=worst.score)
    return None


def _drop(space: Space, inst: Instance, axis: int, k: int) -> Instance:
    """``inst`` without row ``k`` (``axis`` 0) or column ``k`` (1), parameters cut along."""
    shape = "n" if axis == 0 else "d"
    keep = np.arange(inst.A.shape[axis]) != k
    changes: dict[str, object] = {}
    for p in space.vectors(shape):
        v = np.asarray(inst.params[p.name])[keep]
        if p.rule == "probability":
            v = v / v.sum() if v.sum() > 0 else np.full(v.size, 1.0 / v.size)
        changes[p.name] = v
    if axis == 0:
        return inst.replace(A=inst.A[keep], **changes)
    return inst.replace(A=inst.A[:, keep], x=inst.x[keep], y=inst.y[keep], **changes)


def _span_reductions(space: Space, inst: Instance) -> list[Instance]:
    """Instances with ``d`` cut to ``span{x, y}`` (or ``span{x}``), keeping ``A x`` and ``A y``.

    None when the spec has parameters of shape ``d`` (they do not rotate along).
    """
    if space.vectors("d"):
        return []
    out = []
    for cols in ([inst.x, inst.y], [inst.x]):
        M = np.stack(cols, axis=1)
        if not np.any(M):
            continue
        U, s, _ = np.linalg.svd(M, full_matrices=False)
        Q = U[:, s > 1e-12 * s[0]]
        if Q.shape[1] < inst.d:
            out.append(inst.replace(A=inst.A @ Q, x=Q.T @ inst.x, y=Q.T @ inst.y))
    return out


def _reduce(tracker: Tracker, cur: Point, rng: np.random.Generator) -> Point:
    bound = tracker.bound
    for cand in _span_reductions(tracker.space, cur.inst):
        if cand.d >= bound.d[0]:
            p = _check(tracker, cand)
            if p is not None:
                cur = p
    changed = True
    while changed and not tracker.expired():
        changed = False
        for axis, lo in ((0, bound.n[0]), (1, bound.d[0])):
            size = cur.inst.A.shape[axis]
            if size <= lo:
                continue
            for k in range(size):
                if tracker.expired():
                    break
                cand = _drop(tracker.space, cur.inst, axis, k)
                p = _check(tracker, cand)
                if p is None:
                    saved = tracker.limit
                    tracker.limit = saved.sub(tracker.attempts, seconds=0.25, attempts=1500)
                    p = reoptimize(tracker, cand, rng, steps=300)
                    tracker.limit = saved
                if p is not None:
                    cur, changed = p, True
                    break
            if changed:
                break
    return cur


def _round_prob(b: np.ndarray, k: int) -> np.ndarray | None:
    """A probability vector rounded to ``k`` decimals, its largest entry fixing the sum."""
    b = np.round(b, k)
    if np.any(b < 0) or b.sum() == 0:
        return None
    j = int(np.argmax(b))
    b[j] = 0.0
    b[j] = 1.0 - b.sum()
    return None if b[j] < 0 else b


def _round_to(space: Space, inst: Instance, k: int) -> Instance | None:
    """Every entry rounded to ``k`` decimals (``R`` rounded up if needed); ``None`` if unusable."""
    A, x, y = (np.round(v, k) for v in (inst.A, inst.x, inst.y))
    changes: dict[str, object] = {}
    for p in space.vectors():
        v = np.asarray(inst.params[p.name])
        if p.rule == "probability":
            rounded = _round_prob(v, k)
            if rounded is None:
                return None
            changes[p.name] = rounded
            continue
        rounded = np.round(v, k)
        if (p.rule == "positive" and np.any(rounded <= 0)) or (
            p.rule == "nonnegative" and np.any(rounded < 0)
        ):
            return None
        changes[p.name] = rounded
    for name in space.searched:
        lo, _ = space.scalar_range(name, np.inf)
        changes[name] = max(round(float(inst.params[name]), k), lo)
    need = max(1.0, spectral_norm(A), float(np.linalg.norm(x)), float(np.linalg.norm(y)))
    R = round(inst.R, k)
    if R < need:
        R = math.ceil(need * 10**k) / 10**k
    return inst.replace(A=A, x=x, y=y, R=R, **changes)


def _deepen(tracker: Tracker, cur: Point, rng: np.random.Generator) -> Point:
    """Push a violation deeper at fixed shape, so that rounding can keep it."""
    saved = tracker.limit
    tracker.limit = saved.sub(tracker.attempts, seconds=0.3, attempts=5000)
    best = cur
    for _ in range(3):
        p = ascend(tracker, best, rng, steps=400, sigma=0.05, stop_on_violation=False)
        if p.score > best.score and _check(tracker, p.inst) is not None:
            best = p
    tracker.limit = saved
    return best


def _simplifications(space: Space, inst: Instance) -> list[list]:
    """Groups of alternative edits, in order of preference (the first that still violates)."""

    def smallest_R(i: Instance) -> Instance:
        need = max(1.0, spectral_norm(i.A), float(np.linalg.norm(i.x)), float(np.linalg.norm(i.y)))
        return i.replace(R=math.ceil(need * 1e6) / 1e6)

    groups: list[list] = []
    for name in space.searched:
        lo, _ = space.scalar_range(name, np.inf)
        groups.append([lambda i, k=name, v=v: i.replace(**{k: v}) for v in (max(lo, 0.0), 1.0)])
    for p in space.vectors():
        size = inst.n if p.shape == "n" else inst.d
        if p.rule == "probability":
            groups.append(
                [lambda i, k=p.name, e=e: i.replace(**{k: e}) for e in np.eye(size)]
                + [lambda i, k=p.name, m=size: i.replace(**{k: np.full(m, 1.0 / m)})]
            )
        else:
            groups.append([lambda i, k=p.name, m=size: i.replace(**{k: np.ones(m)})])
    groups.append([lambda i: i.replace(y=i.x.copy()), lambda i: i.replace(y=np.zeros(i.d))])
    groups.append([lambda i: i.replace(R=1.0), smallest_R])
    return groups


def _simplify(tracker: Tracker, cur: Point, keep: float = 0.5) -> Point:
    """Simpler values, then the coarsest rounding that keeps ``keep`` of the margin."""
    floor = keep * cur.score
    for group in _simplifications(tracker.space, cur.inst):
        for edit in group:
            if tracker.expired():
                break
            p = _check(tracker, edit(cur.inst), floor)
            if p is not None:
                cur = p
                break
    for k in range(0, 13):
        if tracker.expired():
            break
        rounded = _round_to(tracker.space, cur.inst, k)
        p = None if rounded is None else _check(tracker, rounded, floor)
        if p is not None:
            return p
    return cur


def shrink(tracker: Tracker, found: Point, *, limit: Limit, seed_value: int) -> Point:
    """A small violating point derived from ``found`` within ``limit``.

    The tracker's limit is ``limit`` while shrinking and restored afterwards.
    """
    saved, tracker.limit = tracker.limit, limit
    try:
        return _shrink(tracker, found, seed_value)
    finally:
        tracker.limit = saved


def _shrink(tracker: Tracker, found: Point, seed_value: int) -> Point:
    rng = np.random.default_rng(seed_value + 1)
    cur = found
    p = _check(tracker, cur.inst)
    if p is None:  # re-projected exactly so that it replays
        inst = cur.inst
        again = project(inst.A, inst.x, inst.y, inst.params, inst.R, space=tracker.space)
        p = _check(tracker, again)
        if p is None:
            return cur
    cur = _reduce(tracker, p, rng)
    cur = _deepen(tracker, cur, rng)
    return _simplify(tracker, cur)
