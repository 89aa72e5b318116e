"""Rigorous enclosures for the small matrices the bounds use: eigenvalues, norms.

Matrices are numpy object arrays of balls (:mod:`creality_sym.codegen.interval.balls`),
or float arrays (taken exactly). Every function returns balls that contain the
exact value for *every* matrix in the ball matrix, so the same code serves
points (a counterexample) and boxes (a branch-and-bound proof).

Eigenvalues of a symmetric ``S`` (``(M + M^T)/2`` for the ``M`` given, as
:func:`~creality_sym.audit.instance.min_eig` does in floats): with ``Q`` the
float eigenvectors of the midpoint matrix, ``T = Q^T S Q`` is congruent to
``S``; Ostrowski's theorem gives ``lambda_k(T) = theta_k lambda_k(S)`` with
``theta_k`` in ``[1 - phi, 1 + phi]``, ``phi = ||Q^T Q - I||_F``, and Weyl's
gives ``|lambda_k(T) - d_k| <= ||T - diag(d)||_F`` for the sorted midpoints
``d`` of ``T``'s diagonal. Both norms are computed in ball arithmetic, so each
sorted eigenvalue gets its own enclosure whether or not eigenvalues cluster.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from creality_sym.codegen.interval.balls import Undecided, ball, interval, is_ball
from creality_sym.codegen.interval.runtime import asballs

__all__ = [
    "as_ball_matrix",
    "midpoints",
    "frobenius",
    "vector_norm",
    "sym_eigenvalues",
    "singular_values",
    "spectral_norm",
    "min_eig",
    "max_eig",
    "ball_sum",
    "ball_min",
    "ball_max",
]


def as_ball_matrix(M: Any) -> np.ndarray:
    """``M`` as a 2-d object array of balls (float entries exactly)."""
    A = np.asarray(M, dtype=object) if not isinstance(M, np.ndarray) else M
    if A.ndim != 2:
        raise ValueError(f"expected a matrix; got shape {A.shape}")
    return asballs(A)


def midpoints(M: np.ndarray) -> np.ndarray:
    """Float midpoints of a ball matrix (``Undecided`` for an unbounded entry)."""
    out = np.empty(M.shape, dtype=np.float64)
    for index, v in np.ndenumerate(M):
        lo, hi = v.flo(), v.fhi()
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise Undecided("a matrix entry is unbounded (nan or infinite enclosure)")
        out[index] = 0.5 * (lo + hi)
    return out


def ball_sum(values: Any) -> Any:
    total = ball(0)
    for v in values:
        total = total + v
    return total


def ball_max(values: Any) -> Any:
    items = list(values)
    if not items:
        raise ValueError("max of an empty sequence")
    out = ball(items[0])
    for v in items[1:]:
        out = out.bmax(v)
    return out


def ball_min(values: Any) -> Any:
    items = list(values)
    if not items:
        raise ValueError("min of an empty sequence")
    out = ball(items[0])
    for v in items[1:]:
        out = out.bmin(v)
    return out


def frobenius(M: Any) -> Any:
    """``||M||_F`` (also the 2-norm of a vector)."""
    A = asballs(np.asarray(M, dtype=object))
    return ball_sum((v**2).nonneg() for v in A.flat).nonneg().sqrt()


vector_norm = frobenius


def _symmetric(M: Any) -> np.ndarray:
    A = as_ball_matrix(M)
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"expected a square matrix; got shape {A.shape}")
    k = A.shape[0]
    S = np.empty((k, k), dtype=object)
    for i in range(k):
        S[i, i] = A[i, i]
        for j in range(i + 1, k):
            S[i, j] = S[j, i] = (A[i, j] + A[j, i]) / 2
    return S


def sym_eigenvalues(M: Any) -> list[Any]:
    """Enclosures of the sorted (ascending) eigenvalues of ``(M + M^T) / 2``."""
    S = _symmetric(M)
    k = S.shape[0]
    if k == 0:
        return []
    if k == 1:
        return [S[0, 0]]
    if k == 2:  # closed form: (a + c)/2 -/+ sqrt(((a - c)/2)^2 + b^2)
        a, b, c = S[0, 0], S[0, 1], S[1, 1]
        centre = (a + c) / 2
        radius = (((a - c) / 2) ** 2 + b**2).nonneg().sqrt()
        return [centre - radius, centre + radius]
    mid = midpoints(S)
    _, Q = np.linalg.eigh(0.5 * (mid + mid.T))
    Qb = asballs(Q)
    T = Qb.T @ S @ Qb
    d = np.array([0.5 * (T[i, i].flo() + T[i, i].fhi()) for i in range(k)])
    if not np.all(np.isfinite(d)):
        raise Undecided("the eigenvalue enclosure is unbounded")
    G = np.empty((k, k), dtype=object)
    for i in range(k):
        G[i, i] = T[i, i] - d[i]
        for j in range(i + 1, k):
            G[i, j] = G[j, i] = (T[i, j] + T[j, i]) / 2  # T is symmetric for symmetric S
    eps = frobenius(G).fhi()
    F = Qb.T @ Qb - np.eye(k, dtype=np.int64)
    phi = frobenius(F).fhi()
    if not phi < 1.0:
        raise Undecided("the float eigenvectors are too far from orthogonal")
    theta = interval(1.0 - phi, 1.0 + phi) if phi > 0 else ball(1)
    spread = interval(-eps, eps) if eps > 0 else ball(0)
    return [(ball(float(v)) + spread) / theta for v in np.sort(d)]


def singular_values(M: Any) -> list[Any]:
    """Enclosures of the singular values of ``M``, descending (``min(m, k)`` of them)."""
    A = as_ball_matrix(M)
    m, k = A.shape
    if m == 0 or k == 0:
        return []
    G = A.T @ A if k <= m else A @ A.T
    lam = sym_eigenvalues(G)
    return [v.nonneg().sqrt() for v in reversed(lam)]


def spectral_norm(M: Any) -> Any:
    """``||M||_2`` (largest singular value), never above the Frobenius norm's enclosure."""
    A = as_ball_matrix(M)
    if A.size == 0:
        return ball(0)
    top = singular_values(A)[0]
    return top.bmin(frobenius(A))


def min_eig(M: Any) -> Any:
    """Smallest eigenvalue of ``(M + M^T) / 2``."""
    return sym_eigenvalues(M)[0]


def max_eig(M: Any) -> Any:
    """Largest eigenvalue of ``(M + M^T) / 2``."""
    return sym_eigenvalues(M)[-1]


def contains_balls(value: Any) -> bool:
    """Whether ``value`` is a ball or an array holding one."""
    if is_ball(value):
        return True
    return (
        isinstance(value, np.ndarray)
        and value.dtype == object
        and any(is_ball(v) for v in value.flat)
    )
