"""The paper-style bounds of the creativity/reality model, as data for ``creality audit``.

Each :class:`Bound` states ``lhs(inst) <= rhs(inst)`` over instances with
``||A||_2 <= R``, ``||x||_2, ||y||_2 <= R``, ``1 <= R <= R_max`` and every
parameter of the audited spec obeying its rule (``b`` a probability vector,
``w > 0``, ``gamma >= 0``...). ``f`` is the spec's softmax, of ``s A x`` with
``s`` its logit scale (1 unless the spec says otherwise), ``u = exp(A x)``.

Most claims are about the softmax, the total Hessian or the sampled Newton
method and hold for every spec. Those about the z-Hessian of one term
(``B_real`` of ``reality``, ``B_cre`` of ``creativity``) name it in
``terms`` and are skipped on a spec without it; ``specs`` names the specs
whose term is the one the constant was derived for (1/2 ||f - b||^2 and the
negative entropy <f, log f>). Any module with a ``BOUNDS`` list can be
audited the same way (``creality audit --bounds FILE``); its bounds can use
any term through ``inst.z_hessian(x, term)`` and ``inst.hessian(x)``.
This file defines no loss spec.
"""

from __future__ import annotations

import math

import numpy as np

from creality_sym.audit import Bound, Instance, min_eig, spectral_norm
from creality_sym.audit.experiments import newton_rate, sampling_spectral

#: specs whose ``reality`` term is 1/2 ||f - b||^2 with f = softmax(A x)
SQUARED_REALITY = ("creativity_reality", "renyi", "tsallis", "ridge_prior")
#: specs whose ``creativity`` term is <f, log f> with f = softmax(A x)
ENTROPY_CREATIVITY = ("creativity_reality", "cross_entropy", "cosine", "ridge_prior")


def _gap(inst: Instance) -> float:
    return float(np.linalg.norm(inst.x - inst.y))


def _scale(inst: Instance) -> float:
    """``|s|``, the logit scale of the spec (``f = softmax(s A x)``)."""
    s = inst.logit_scale
    if s is None:
        raise ValueError(f"the logit scale {inst.model.LOGIT_SCALE!r} is not plain arithmetic")
    return abs(s)


def _simplex_lhs(inst: Instance) -> float:
    """``||f||_2``, plus 2 when ``f`` is not a positive vector summing to 1."""
    f = inst.f(inst.x)
    broken = bool(np.any(f <= 0)) or abs(float(np.sum(f)) - 1.0) > 1e-12
    return float(np.linalg.norm(f)) + (2.0 if broken else 0.0)


def _alpha_lhs(inst: Instance) -> float:
    # max(n e^{-R^2} / alpha, alpha / (n e^{R^2})), in logs: alpha may be large
    z = inst.z(inst.x)
    zmax = float(np.max(z))
    log_alpha = zmax + math.log(float(np.sum(np.exp(z - zmax))))
    log_n, r2 = math.log(inst.n), inst.R**2
    return math.exp(max(log_n - r2 - log_alpha, log_alpha - log_n - r2))


def _pieces_size(zh: object) -> float:
    """A bound on the entries the z-Hessian is assembled from: its rounding scale."""
    size = float(np.max(np.abs(zh.delta))) + 2.0 * float(np.max(np.abs(zh.p))) + abs(zh.c)
    tops = [float(np.max(np.abs(u))) for u in zh.columns]
    for i, row in enumerate(zh.core):
        size += sum(abs(c) * tops[i] * tops[j] for j, c in enumerate(row))
    return size


def _pd_parts(inst: Instance) -> tuple[float, float, float]:
    """``(l, lambda_min(hess L), scale)`` of hessian-pd at ``x``; ``scale`` is the size of
    what the Hessian is assembled from (its pieces times ``||A||^2``), where rounding lives."""
    zh = inst.z_hessian_pieces(inst.x)
    h = inst.x_hessian_diag(inst.x)
    lam_B = min_eig(zh.dense())
    sv = np.linalg.svd(inst.A, compute_uv=False)
    sigma_min2 = float(sv[-1]) ** 2 if inst.n >= inst.d else 0.0
    norm2 = float(sv[0]) ** 2
    l_bound = (sigma_min2 if lam_B >= 0 else norm2) * lam_B + float(np.min(h))
    scale = 1.0 + norm2 * _pieces_size(zh) + float(np.max(np.abs(h)))
    return l_bound, min_eig(inst.hessian(inst.x)), scale


def _hess_lip_rhs(inst: Instance) -> float:
    r = max(1.0, _scale(inst)) * inst.R
    M = inst.n**1.5 * math.exp(20.0 * r**2) * (1.0 + abs(inst.tradeoff))
    return M * _gap(inst)


BOUNDS = [
    Bound(
        "softmax-simplex",
        "f > 0, <f, 1> = 1 and ||f||_2 <= 1  [lhs = ||f||_2, plus 2 if some f_j <= 0 or "
        "|<f, 1> - 1| > 1e-12]",
        lhs=_simplex_lhs,
        rhs=lambda i: 1.0,
    ),
    Bound(
        "softmax-floor",
        "f_j >= exp(-2 s R^2) / n  [lhs = exp(-2 s R^2)/n, rhs = min_j f_j; s the logit scale]",
        lhs=lambda i: math.exp(-2.0 * _scale(i) * i.R**2) / i.n,
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
        "||f(x) - f(y)||_2 <= (s R/2) ||x - y||_2  (since ||J||_2 <= 1/2; s the logit scale)",
        lhs=lambda i: float(np.linalg.norm(i.f(i.x) - i.f(i.y))),
        rhs=lambda i: 0.5 * _scale(i) * i.R * _gap(i),
        rtol=1e-7,
    ),
    Bound(
        "breal-norm",
        "||B_real(x)||_2 <= 10  (B_real: z-Hessian of reality = 1/2 ||f - b||^2)",
        lhs=lambda i: spectral_norm(i.B_real(i.x)),
        rhs=lambda i: 10.0,
        terms=("reality",),
        specs=SQUARED_REALITY,
    ),
    Bound(
        "bcre-norm",
        "||B_cre(x)||_2 <= 2 + 6 R^2  (B_cre: z-Hessian of creativity = <f, log f>)",
        lhs=lambda i: spectral_norm(i.B_cre(i.x)),
        rhs=lambda i: 2.0 + 6.0 * i.R**2,
        terms=("creativity",),
        specs=ENTROPY_CREATIVITY,
    ),
    Bound(
        "hessian-pd",
        "hess L(x) >= l I with l = k lambda_min(B(x)) + min_i h_i(x), k = sigma_min(A)^2 "
        "(0 if n < d) when lambda_min(B) >= 0, else ||A||_2^2; B the total z-Hessian, h the "
        "x-space Hessian diagonal  [lhs = l, rhs = lambda_min(hess L), both divided by "
        "1 + ||A||^2 (size of B's pieces) + max |h|, the scale of their rounding]",
        lhs=lambda i: (lambda p: p[0] / p[2])(_pd_parts(i)),
        rhs=lambda i: (lambda p: p[1] / p[2])(_pd_parts(i)),
        compare="difference",
        atol=1e-11,
        n=(1, 8),
        d=(1, 4),
    ),
    Bound(
        "hessian-lipschitz",
        "||hess L(x) - hess L(y)||_2 <= M ||x - y||_2, M = n^1.5 exp(20 r^2) (1 + |gamma|), "
        "r = max(1, s) R, gamma the spec's trade-off weight (0 if none)",
        lhs=lambda i: spectral_norm(i.hessian(i.x) - i.hessian(i.y)),
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
        terms=("creativity",),
        specs=ENTROPY_CREATIVITY,
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
