"""Preconditioned conjugate gradients for the Newton system ``(H + mu I) dx = -grad``.

``H`` is only applied (``apply(v) -> (H v, A v)``, O(n d) per call), the
preconditioner ``M ~ H`` only solved with (``precondition(r) = M^-1 r``,
O(d^2) from its Cholesky factor). The logits' change ``A dx`` is accumulated
from the ``A v`` that every product computes anyway, so the line search
needs no extra pass over ``A``.

CG stops when ``||r|| <= target``, after ``max_iter`` products, or at a
direction of non-positive curvature ``v^T (H + mu I) v <= 0`` (``H`` not
positive definite there): then the iterate so far is returned (a descent
direction when at least one step was taken, as in Steihaug's truncated CG)
with ``negative_curvature`` set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PCGResult:
    """``dx (d,)``, ``u = A dx (n,)``, ``products`` (calls of ``apply``) and the stop.

    ``residual`` is ``||rhs - (H + mu I) dx||`` as CG's recurrence tracks it,
    ``converged`` whether it reached the target, ``negative_curvature``
    whether a direction with ``v^T (H + mu I) v <= 0`` stopped it (``curvature``
    then holds the Rayleigh quotient ``v^T H v / v^T v`` met, else NaN).
    """

    dx: np.ndarray
    u: np.ndarray
    products: int
    residual: float
    converged: bool
    negative_curvature: bool
    curvature: float


def pcg(
    apply: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    precondition: Callable[[np.ndarray], np.ndarray],
    rhs: np.ndarray,
    n: int,
    *,
    target: float,
    max_iter: int,
    mu: float = 0.0,
) -> PCGResult:
    """Solve ``(H + mu I) dx = rhs`` by preconditioned CG from ``dx = 0``.

    Parameters
    ----------
    apply : callable
        ``apply(v) -> (H v (d,), A v (n,))``.
    precondition : callable
        ``precondition(r) -> M^-1 r (d,)`` for a symmetric positive definite ``M``.
    rhs : (d,) array
    n : int
        Length of ``A v`` (rows of ``A``).
    target : float
        Stop when the residual norm is at most this.
    max_iter : int
        Most products ``apply`` (at least 1).
    mu : float
        Damping added to ``H``.

    Returns
    -------
    PCGResult
    """
    d = rhs.shape[0]
    dx = np.zeros(d)
    u = np.zeros(n)
    r = rhs.astype(float, copy=True)
    norm = float(np.linalg.norm(r))
    if not math.isfinite(norm):
        return PCGResult(dx, u, 0, norm, False, False, math.nan)
    if norm <= target:
        return PCGResult(dx, u, 0, norm, True, False, math.nan)
    s = precondition(r)
    p = s.copy()
    rs = float(r @ s)
    products = 0
    for _ in range(max(1, int(max_iter))):
        Hp, Ap = apply(p)
        products += 1
        pp = float(p @ p)
        curvature = float(p @ Hp) + mu * pp
        if not (math.isfinite(curvature) and curvature > 0.0 and math.isfinite(rs) and rs > 0.0):
            quotient = (curvature - mu * pp) / pp if pp > 0.0 else math.nan
            return PCGResult(dx, u, products, norm, False, True, quotient)
        alpha = rs / curvature
        dx += alpha * p
        u += alpha * Ap
        r -= alpha * (Hp + mu * p) if mu else alpha * Hp
        norm = float(np.linalg.norm(r))
        if norm <= target:
            return PCGResult(dx, u, products, norm, True, False, math.nan)
        s = precondition(r)
        rs_next = float(r @ s)
        p = s + (rs_next / rs) * p
        rs = rs_next
    return PCGResult(dx, u, products, norm, False, False, math.nan)
