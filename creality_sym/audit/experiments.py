"""Statistical claims as repeatable trials: leverage-score sampling and sampled Newton.

Each factory returns ``trial(space, rng) -> failed`` for a statistical
:class:`~creality_sym.audit.bounds.Bound` (``takes_space = True``: it gets
the audit's :class:`~creality_sym.audit.instance.Space`, or a bare model).
A trial draws a fresh instance of the audited spec (``A (n, d)`` with
heterogeneous row norms and ``||A||_2 = R``, vector parameters by their
rules, the fixed scalars, the searched one uniform in ``[0, 1]``), so the
failure frequency is averaged over instances and sampling randomness.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg

from creality_sym.audit.instance import Space, space_of
from creality_sym.instance import Instance, draw_vector

__all__ = [
    "sample_size",
    "leverage_scores",
    "leverage_sample",
    "diagonal_part",
    "sampling_spectral",
    "newton_rate",
    "wilson",
]


def wilson(failures: int, trials: int, *, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (default 95%)."""
    if trials <= 0:
        return 0.0, 1.0
    p = failures / trials
    den = 1.0 + z * z / trials
    mid = (p + z * z / (2 * trials)) / den
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / den
    lo = 0.0 if failures == 0 else max(0.0, mid - half)
    hi = 1.0 if failures == trials else min(1.0, mid + half)
    return lo, hi


def sample_size(d: int, *, eps: float, delta: float, C: float) -> int:
    """``s = ceil(C eps^-2 d log(d / delta))`` rows (at least ``d``)."""
    return max(d, math.ceil(C * d * math.log(max(d / delta, math.e)) / eps**2))


def leverage_scores(M: np.ndarray) -> np.ndarray:
    """Leverage scores ``(n,)`` of the rows of ``M (n, d)`` (sum = rank)."""
    Q, _ = np.linalg.qr(M)
    return np.einsum("ij,ij->i", Q, Q)


def leverage_sample(M: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    """Row reweighting ``(n,)``: ``count_i / (s p_i)`` with ``p`` the leverage distribution.

    ``sum_i r_i m_i m_i^T`` is then an unbiased estimate of ``M^T M``.
    """
    tau = leverage_scores(M)
    p = tau / tau.sum()
    counts = np.bincount(rng.choice(p.size, size=s, p=p), minlength=p.size)
    out = np.zeros(p.size)
    np.divide(counts, s * p, out=out, where=counts > 0)
    return out


def diagonal_part(inst: Instance, x: np.ndarray | None = None) -> np.ndarray:
    """Diagonal ``delta (n,)`` of the total z-Hessian (``ZHessian.delta``) at ``x``."""
    zh = inst.z_hessian_pieces(x)
    delta = getattr(zh, "delta", None)
    if delta is None:  # a model whose z-Hessian exposes only dense()
        delta = np.diag(zh.dense())
    return np.asarray(delta, dtype=np.float64)


def _domain(n: int, d: tuple[int, int]) -> str:
    """What a trial draws, for the verdict table (``R`` is uniform in [1, 2])."""
    dd = f"d {d[0]}" if d[0] == d[1] else f"d {d[0]}-{d[1]}"
    return f"n {n}, {dd}, R 1-2, random"


def _draw(
    space: Space,
    rng: np.random.Generator,
    n: int,
    d_range: tuple[int, int],
    R_range: tuple[float, float],
    w_range: tuple[float, float],
) -> Instance:
    """A random instance with heterogeneous rows, ``||A||_2 = R``, ``||x|| <= R``.

    Positive vectors are uniform in ``w_range``, others drawn by their rule;
    the searched scalar is uniform in ``[0, 1]``, the others fixed.
    """
    d = int(rng.integers(d_range[0], d_range[1] + 1))
    R = float(rng.uniform(*R_range))
    A = rng.standard_normal((n, d)) * np.exp(rng.standard_normal(n))[:, None]
    A *= R / np.linalg.norm(A, 2)
    x = rng.standard_normal(d)
    x *= R * rng.uniform() / np.linalg.norm(x)
    params: dict[str, Any] = {}
    for p in space.parameters():
        if p.kind == "scalar":
            fixed = space.fixed.get(p.name)
            params[p.name] = float(rng.uniform(0.0, 1.0)) if fixed is None else fixed
        elif p.rule == "positive":
            params[p.name] = rng.uniform(*w_range, size=n if p.shape == "n" else d)
        else:
            params[p.name] = draw_vector(p.rule, n if p.shape == "n" else d, rng)
    return Instance(A=A, x=x, params=params, model=space.model, R=R)


def sampling_spectral(
    *,
    eps: float = 0.5,
    delta: float = 0.1,
    C: float = 1.0,
    n: int = 400,
    d: tuple[int, int] = (2, 6),
) -> Callable[[Any, np.random.Generator], bool]:
    """Trial: sample ``s = C eps^-2 d log(d/delta)`` rows by leverage of ``D^1/2 A``.

    Fails when a generalized eigenvalue of ``(A^T D~ A, A^T D A)`` leaves
    ``[1 - eps, 1 + eps]``; ``D`` is the clipped diagonal of the z-Hessian.
    """
    if not 0 < eps < 1:
        raise ValueError(f"eps must lie in (0, 1); got {eps}")
    if not (0 < delta < 1 and C > 0):
        raise ValueError(f"delta must lie in (0, 1) and C > 0; got delta={delta}, C={C}")

    def trial(space: Any, rng: np.random.Generator) -> bool:
        inst = _draw(space_of(space), rng, n, d, (1.0, 2.0), (0.5, 2.0))
        A = inst.A
        D = np.maximum(diagonal_part(inst), 0.0)
        s = sample_size(A.shape[1], eps=eps, delta=delta, C=C)
        r = leverage_sample(np.sqrt(D)[:, None] * A, s, rng)
        M = A.T @ (D[:, None] * A)
        Mt = A.T @ ((D * r)[:, None] * A)
        lam = scipy.linalg.eigh(Mt, M, eigvals_only=True)
        return bool(lam[0] < 1 - eps or lam[-1] > 1 + eps)

    trial.domain = _domain(n, d)  # type: ignore[attr-defined]
    trial.takes_space = True  # type: ignore[attr-defined]
    return trial


def _newton(inst: Instance, x: np.ndarray, iters: int = 50) -> np.ndarray:
    for _ in range(iters):
        g = inst.gradient(x)
        H = inst.hessian(x)
        step = np.linalg.solve(H, g)
        x = x - step
        if np.linalg.norm(step) <= 1e-15 * (1.0 + np.linalg.norm(x)):
            break
    return x


def newton_rate(
    *,
    eps: float = 0.25,
    delta: float = 0.1,
    C: float = 1.0,
    steps: int = 3,
    rate: float = 0.4,
    n: int = 400,
    d: tuple[int, int] = (2, 5),
) -> Callable[[Any, np.random.Generator], bool]:
    """Trial: sampled-Hessian Newton from ``M ||x0 - x*|| = 0.1 l``.

    ``x*`` comes from exact Newton, ``l = lambda_min(hess L(x*))`` and ``M``
    is the largest Hessian difference quotient seen on six probes around
    ``x*``. Each step replaces ``A^T D A`` by ``A^T D~ A`` (``s`` rows sampled
    as in :func:`sampling_spectral`) and keeps the rest of the Hessian exact.
    Fails when ``||x_k - x*|| > rate^k ||x0 - x*||`` for some ``k <= steps``.
    """
    if not (0 < eps < 1 and 0 < rate < 1 and steps >= 1):
        raise ValueError(f"eps and rate must lie in (0, 1), steps >= 1; got {eps}, {rate}, {steps}")

    def trial(space: Any, rng: np.random.Generator) -> bool:
        inst = _draw(space_of(space), rng, n, d, (1.0, 2.0), (0.8, 1.5))
        A, R = inst.A, inst.R
        xs = _newton(inst, np.zeros(A.shape[1]))
        H0 = inst.hessian(xs)
        lam = float(np.linalg.eigvalsh(H0)[0])
        if lam <= 0:
            raise ValueError(
                "lambda_min(hessian) <= 0 at the optimum: instance not strongly convex"
            )
        M = 0.0
        for _ in range(6):
            u = rng.standard_normal(xs.size)
            u *= 0.1 * R / np.linalg.norm(u)
            Hu = inst.hessian(xs + u)
            M = max(M, float(np.linalg.norm(Hu - H0, 2)) / float(np.linalg.norm(u)))
        radius = 0.1 * lam / max(M, 1e-300)
        v = rng.standard_normal(xs.size)
        xk = xs + radius * v / np.linalg.norm(v)
        s = sample_size(A.shape[1], eps=eps, delta=delta, C=C)
        floor = 1e-13 * (1.0 + float(np.linalg.norm(xs)))
        for k in range(1, steps + 1):
            D = diagonal_part(inst, xk)
            Dp = np.maximum(D, 0.0)
            H = inst.hessian(xk)
            r = leverage_sample(np.sqrt(Dp)[:, None] * A, s, rng)
            Ht = H + A.T @ ((Dp * (r - 1.0))[:, None] * A)
            xk = xk - np.linalg.solve(Ht, inst.gradient(xk))
            if np.linalg.norm(xk - xs) > rate**k * radius + floor:
                return True
        return False

    trial.domain = _domain(n, d)  # type: ignore[attr-defined]
    trial.takes_space = True  # type: ignore[attr-defined]
    return trial
