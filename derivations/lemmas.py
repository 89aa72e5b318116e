"""The paper-style bounds of DESIGN section 2.4, as data for ``creality audit``.

Each :class:`Bound` states ``lhs(inst) <= rhs(inst)`` over instances with
``||A||_2 <= R``, ``||x||_2, ||y||_2 <= R``, ``b`` a probability vector,
``w > 0``, ``gamma >= 0``, ``1 <= R <= R_max``. Any module with a
``BOUNDS`` list can be audited the same way (``creality audit --bounds FILE``).
This file defines no loss spec.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from creality_sym.audit import Bound, Instance, min_eig, spectral_norm
from creality_sym.audit.experiments import newton_rate, sampling_spectral


def _gap(inst: Instance) -> float:
    return float(np.linalg.norm(inst.x - inst.y))


def _simplex_lhs(inst: Instance) -> float:
    f = inst.f(inst.x)
    if np.any(f <= 0) or abs(float(np.sum(f)) - 1.0) > 1e-12:
        return math.inf
    return float(np.linalg.norm(f))


def _alpha_lhs(inst: Instance) -> float:
    # max(n e^{-R^2} / alpha, alpha / (n e^{R^2})), in logs: alpha may be large
    z = inst.z(inst.x)
    zmax = float(np.max(z))
    log_alpha = zmax + math.log(float(np.sum(np.exp(z - zmax))))
    log_n, r2 = math.log(inst.n), inst.R**2
    return math.exp(max(log_n - r2 - log_alpha, log_alpha - log_n - r2))


def _sigma_min(A: np.ndarray) -> float:
    return float(np.linalg.svd(A, compute_uv=False)[-1]) if A.shape[0] >= A.shape[1] else 0.0


def _pd_floor(inst: Instance) -> float:
    """``10 + gamma (2 + 6 R^2)``: the premise's bound on ``-B_real - gamma B_cre``."""
    return 10.0 + inst.gamma * (2.0 + 6.0 * inst.R**2)


def _pd_assume(inst: Instance) -> Instance | None:
    """Premise of hessian-pd: ``sigma_min(A) >= 1e-3`` (so ``l / sigma_min^2`` is finite,
    which needs ``n >= d``) and ``min w^2 >= floor`` (``w`` raised to meet it)."""
    if _sigma_min(inst.A) < 1e-3:
        return None
    w_min = math.sqrt(_pd_floor(inst)) * (1.0 + 1e-12)
    if np.all(inst.w >= w_min):
        return inst
    return replace(inst, w=np.maximum(inst.w, w_min))


def _pd_lhs(inst: Instance) -> float:
    """``sigma_min(A)^2 min w^2 - lambda_min(hess L)``: what ``A^T B A`` takes off."""
    s2 = _sigma_min(inst.A) ** 2
    return s2 * float(np.min(inst.w)) ** 2 - min_eig(inst.hessian(inst.x))


def _pd_rhs(inst: Instance) -> float:
    """``sigma_min(A)^2 (10 + gamma (2 + 6 R^2))``: what the premise allows it to take off."""
    return _sigma_min(inst.A) ** 2 * _pd_floor(inst)


def _hess_lip_lhs(inst: Instance) -> float:
    return spectral_norm(inst.hessian(inst.x) - inst.hessian(inst.y))


def _hess_lip_rhs(inst: Instance) -> float:
    M = inst.n**1.5 * math.exp(20.0 * inst.R**2) * (1.0 + inst.gamma)
    return M * _gap(inst)


BOUNDS = [
    Bound(
        "softmax-simplex",
        "f > 0, <f, 1> = 1 and ||f||_2 <= 1  [lhs = ||f||_2, +inf if f <= 0 or sum != 1]",
        lhs=_simplex_lhs,
        rhs=lambda i: 1.0,
    ),
    Bound(
        "softmax-floor",
        "f_j >= exp(-2 R^2) / n  [lhs = exp(-2R^2)/n, rhs = min_j f_j]",
        lhs=lambda i: math.exp(-2.0 * i.R**2) / i.n,
        rhs=lambda i: float(np.min(i.f(i.x))),
    ),
    Bound(
        "alpha-range",
        "n exp(-R^2) <= alpha(x) <= n exp(R^2)  [lhs = max(n e^{-R^2}/alpha, alpha/(n e^{R^2}))]",
        lhs=_alpha_lhs,
        rhs=lambda i: 1.0,
    ),
    Bound(
        "u-lipschitz",
        "||u(x) - u(y)||_2 <= sqrt(n) R exp(R^2) ||x - y||_2",
        lhs=lambda i: float(np.linalg.norm(i.u(i.x) - i.u(i.y))),
        rhs=lambda i: math.sqrt(i.n) * i.R * math.exp(i.R**2) * _gap(i),
        rtol=1e-7,
    ),
    Bound(
        "f-lipschitz",
        "||f(x) - f(y)||_2 <= (R/2) ||x - y||_2  (since ||J||_2 <= 1/2)",
        lhs=lambda i: float(np.linalg.norm(i.f(i.x) - i.f(i.y))),
        rhs=lambda i: 0.5 * i.R * _gap(i),
        rtol=1e-7,
    ),
    Bound(
        "breal-norm",
        "||B_real(x)||_2 <= 10",
        lhs=lambda i: spectral_norm(i.B_real(i.x)),
        rhs=lambda i: 10.0,
    ),
    Bound(
        "bcre-norm",
        "||B_cre(x)||_2 <= 2 + 6 R^2",
        lhs=lambda i: spectral_norm(i.B_cre(i.x)),
        rhs=lambda i: 2.0 + 6.0 * i.R**2,
    ),
    Bound(
        "hessian-pd",
        "if min w^2 >= 10 + gamma (2 + 6R^2) + l / sigma_min(A)^2 then hess L(x) >= l I; "
        "at the largest such l this reads [lhs = sigma_min^2 min w^2 - lambda_min(hess L) "
        "<= rhs = sigma_min^2 (10 + gamma (2 + 6R^2))]",
        lhs=_pd_lhs,
        rhs=_pd_rhs,
        assume=_pd_assume,
        atol=1e-9,
        rtol=1e-9,
        n=(1, 8),
        d=(1, 4),
        w_max=40.0,
    ),
    Bound(
        "hessian-lipschitz",
        "||hess L(x) - hess L(y)||_2 <= M ||x - y||_2, M = n^1.5 exp(20 R^2) (1 + gamma)",
        lhs=_hess_lip_lhs,
        rhs=_hess_lip_rhs,
        rtol=1e-7,
        R_max=4.0,  # exp(20 R^2) overflows float64 beyond R = 5.9
    ),
    Bound(
        "bcre-psd",
        "B_cre(x) >= 0 (creativity alone convex in z)  [lhs = 0, rhs = lambda_min(B_cre)]",
        lhs=lambda i: 0.0,
        rhs=lambda i: min_eig(i.B_cre(i.x)),
        expect="violated",
        compare="difference",
        atol=1e-10,
    ),
    Bound(
        "newton-rate",
        "sampled-Hessian Newton (eps=0.25, s = eps^-2 d log(d/delta) rows) from "
        "M ||x0 - x*|| <= 0.1 l gives ||x_k - x*|| <= 0.4^k ||x0 - x*||, k <= 3, "
        "w.p. >= 1 - delta",
        kind="statistical",
        trial=newton_rate(eps=0.25, delta=0.1, C=1.0),
        delta=0.1,
    ),
    Bound(
        "sampling-spectral",
        "leverage-score sampling of s = eps^-2 d log(d/delta) rows (eps=0.5) gives "
        "(1-eps) A^T D A <= A^T D~ A <= (1+eps) A^T D A w.p. >= 1 - delta",
        kind="statistical",
        trial=sampling_spectral(eps=0.5, delta=0.1, C=1.0),
        delta=0.1,
    ),
]
