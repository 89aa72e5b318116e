"""Structured points of the assumption set: the builders behind starts and strategies.

Plain numpy functions that turn raw draws into structured worst-case
candidates (rank-one and repeated rows, tied logits, ``x`` along the top
singular vector, one-hot probability vectors, weights at their
extremes...). :mod:`creality_sym.strategies` feeds them Hypothesis draws;
the auditor's local search feeds them a numpy generator.
"""

from __future__ import annotations

import numpy as np

from creality_sym.audit.instance import project_simplex, spectral_norm

__all__ = [
    "MATRIX_KINDS",
    "POINT_KINDS",
    "SECOND_KINDS",
    "PROB_KINDS",
    "build_matrix",
    "build_point",
    "build_second",
    "build_prob",
    "VECTOR_KINDS",
    "build_vector",
]

MATRIX_KINDS = ("dense", "rank1", "antisym_rank1", "repeated_rows", "tied_pair", "one_row")
POINT_KINDS = ("random", "top", "orth_top", "row", "zero")
SECOND_KINDS = ("near", "random", "neg", "zero", "top")
PROB_KINDS = ("spread", "one_hot", "uniform", "two_point")
#: kinds of the other vectors (rules positive, nonnegative, real)
VECTOR_KINDS = ("spread", "log", "constant", "extremes")


def _normal_range(M: np.ndarray) -> np.ndarray:
    """``M`` divided by its largest entry when that is tiny: subnormal draws would
    otherwise scale to ``inf`` or lose their norm (``1 / 5e-324`` overflows)."""
    top = float(np.max(np.abs(M))) if M.size else 0.0
    return M / top if 0.0 < top < 1e-150 else M


def _unit(v: np.ndarray) -> np.ndarray:
    v = _normal_range(v)
    nv = float(np.linalg.norm(v))
    if nv == 0.0:
        e = np.zeros_like(v)
        e[0] = 1.0
        return e
    return v / nv


def _top_right(A: np.ndarray) -> np.ndarray:
    """Top right singular vector of ``A (n, d)`` as a ``(d,)`` unit vector."""
    if not np.any(A):
        e = np.zeros(A.shape[1])
        e[0] = 1.0
        return e
    return np.linalg.svd(A)[2][0]


def build_matrix(kind: str, G: np.ndarray, u: np.ndarray, v: np.ndarray, R: float, scale: float):
    """A structured ``(n, d)`` matrix with ``||A||_2 = scale * R``.

    ``G (n, d)``, ``u (n,)``, ``v (d,)`` are raw draws; ``kind`` is one of
    :data:`MATRIX_KINDS`.
    """
    n, d = G.shape
    vv = _unit(v)
    if kind == "dense":
        A = G.copy()
    elif kind == "rank1":
        A = np.outer(_unit(u), vv)
    elif kind == "antisym_rank1":
        s = np.zeros(n)
        s[0] = 1.0
        if n > 1:
            s[1] = -1.0
        A = np.outer(s + 0.05 * u, vv)
    elif kind == "repeated_rows":
        A = np.outer(np.ones(n), vv) + 0.05 * G
    elif kind == "tied_pair":
        A = 0.3 * G
        A[0] = vv
        if n > 1:
            A[1] = vv + 0.01 * G[1]
    elif kind == "one_row":
        A = 0.02 * G
        A[0] = vv
    else:
        raise ValueError(f"kind must be one of {MATRIX_KINDS}; got {kind!r}")
    A = _normal_range(A)
    norm = spectral_norm(A)
    if norm == 0.0:
        return A
    return A * (scale * R / norm)


def build_point(kind: str, g: np.ndarray, A: np.ndarray, R: float, scale: float) -> np.ndarray:
    """A ``(d,)`` point of norm ``scale * R`` placed relative to ``A``.

    ``kind`` (:data:`POINT_KINDS`): ``"top"`` along ``A``'s top right singular
    vector (sign from ``g[0]``), ``"orth_top"`` orthogonal to it, ``"row"``
    along the first row, ``"random"`` along ``g``, ``"zero"``.
    """
    if kind == "zero":
        return np.zeros_like(g)
    if kind == "random":
        p = _unit(g)
    elif kind == "top":
        p = _top_right(A) * (1.0 if g[0] >= 0 else -1.0)
    elif kind == "orth_top":
        t = _top_right(A)
        p = _unit(g - (g @ t) * t) if g.size > 1 else np.zeros_like(g)
    elif kind == "row":
        p = _unit(A[0] if np.any(A[0]) else g)
    else:
        raise ValueError(f"kind must be one of {POINT_KINDS}; got {kind!r}")
    return p * (scale * R)


def build_second(
    kind: str, g: np.ndarray, x: np.ndarray, A: np.ndarray, R: float, h: float
) -> np.ndarray:
    """A second point ``y (d,)``: ``"near"`` is ``x + h R g/|g|`` (``h`` small)."""
    if kind == "near":
        return x + h * R * _unit(g)
    if kind == "random":
        return _unit(g) * R * min(1.0, abs(h) * 10 + 0.1)
    if kind == "neg":
        return -x
    if kind == "zero":
        return np.zeros_like(x)
    if kind == "top":
        return x + h * R * _top_right(A)
    raise ValueError(f"kind must be one of {SECOND_KINDS}; got {kind!r}")


def build_prob(kind: str, g: np.ndarray, k: int) -> np.ndarray:
    """A probability vector ``(n,)`` of kind :data:`PROB_KINDS` (``k`` picks an entry)."""
    n = g.size
    k = k % n
    if kind == "spread":
        return project_simplex(np.abs(g) + 1e-3)
    if kind == "one_hot":
        b = np.zeros(n)
        b[k] = 1.0
        return b
    if kind == "uniform":
        return np.full(n, 1.0 / n)
    if kind == "two_point":
        b = np.zeros(n)
        t = float(np.clip(abs(g[0]), 0.0, 1.0))
        b[k] = t
        b[(k + 1) % n] += 1.0 - t
        return b
    raise ValueError(f"kind must be one of {PROB_KINDS}; got {kind!r}")


def build_vector(rule: str, kind: str, g: np.ndarray, w_max: float) -> np.ndarray:
    """A vector parameter obeying ``rule`` (not ``"probability"``: see :func:`build_prob`).

    ``g`` holds raw draws in ``[-1, 1]``; entries stay within ``w_max`` in size.
    ``kind`` (:data:`VECTOR_KINDS`): ``"spread"`` (linear in ``g``), ``"log"``
    (log-uniform from ``1e-2``), ``"constant"`` (``g[0]`` everywhere) or
    ``"extremes"`` (each entry at an end of its range).
    """
    g = np.clip(np.nan_to_num(np.asarray(g, dtype=np.float64)), -1.0, 1.0)
    if kind == "constant":
        g = np.full(g.shape, g[0] if g.size else 0.0)
    elif kind == "extremes":
        g = np.where(g >= 0, 1.0, -1.0)
    elif kind not in ("spread", "log"):
        raise ValueError(f"kind must be one of {VECTOR_KINDS}; got {kind!r}")
    if rule == "real":
        return g * w_max
    lo = 0.0 if rule == "nonnegative" else min(1e-2, w_max)
    t = np.abs(g) if kind != "extremes" else (g + 1.0) / 2.0
    if kind == "log" and lo > 0 and w_max > lo:
        return np.exp(np.log(lo) + t * (np.log(w_max) - np.log(lo)))
    return lo + t * (w_max - lo)
