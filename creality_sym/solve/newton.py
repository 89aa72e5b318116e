"""Newton's method on a generated model: exact or sampled Hessian (DESIGN section 2.5).

Each iteration computes ``g = z_gradient`` at the shared logits ``z = A x``,
``grad L = A^T g + x_gradient``, a Hessian (model or sampled), a step
``dx = -H^-1 grad L`` by Cholesky, and a backtracking Armijo line search along
``dx`` that moves the logits as ``z + t A dx`` (one pass over ``A``).

A Hessian that is not positive definite (Cholesky fails) is damped: ``H + mu I``
with ``mu`` increased tenfold until the factorization succeeds; the damping is
recorded in the history and said in ``reason``. If no ``mu`` works the step is
a scaled gradient step. Iterates are never NaN: a non-finite trial is rejected
by the line search.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from . import sampling
from .oracle import Oracle, split_data

METHODS = ("exact", "sampled")
ARMIJO = 1e-4
BACKTRACK = 0.5
MAX_BACKTRACKS = 60
#: the loss is trusted to resolve changes of this many ulps of max(1, |L|)
LOSS_RESOLUTION_ULPS = 1e3


@dataclass
class Iteration:
    """One row of the history: the iterate ``x_k`` and the step taken from it.

    ``step`` is the line-search factor ``t``, ``step_norm`` is ``||x_{k+1} - x_k||``,
    ``seconds`` the wall time of the iteration, ``damping`` the ``mu`` added to
    the Hessian (0 when it was positive definite), ``rows`` the distinct rows
    kept by the sampled Hessian (``n`` in exact mode).
    """

    iteration: int
    loss: float
    grad_norm: float
    step: float = 0.0
    step_norm: float = 0.0
    seconds: float = 0.0
    damping: float = 0.0
    rows: int = 0
    note: str = ""


@dataclass
class NewtonResult:
    """Result of :func:`newton`: ``x (d,)``, status and per-iteration ``history``.

    ``grad_norm`` is ``||model.gradient(x)||`` recomputed at the returned ``x``
    by a direct call to the model.
    """

    x: np.ndarray
    converged: bool
    iterations: int
    reason: str
    method: str
    loss: float
    grad_norm: float
    history: list[Iteration] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Total wall time of the iterations."""
        return float(sum(row.seconds for row in self.history))

    def history_table(self) -> dict[str, np.ndarray]:
        """The history as columns, one array per :class:`Iteration` field except ``note``."""
        names = [name for name in Iteration.__dataclass_fields__ if name != "note"]
        return {name: np.array([getattr(row, name) for row in self.history]) for name in names}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (``x`` as a list)."""
        return {
            "method": self.method,
            "converged": self.converged,
            "iterations": self.iterations,
            "reason": self.reason,
            "loss": self.loss,
            "grad_norm": self.grad_norm,
            "seconds": self.seconds,
            "x": self.x.tolist(),
            "history": [asdict(row) for row in self.history],
        }


def damped_cholesky_solve(H: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, float]:
    """Solve ``(H + mu I) dx = rhs`` with the smallest tried ``mu >= 0`` that is PD.

    Uses numpy's LAPACK only (no second BLAS thread pool next to numpy's).

    ``H (d, d)`` symmetric, ``rhs (d,)``. Tries ``mu = 0``, then
    ``mu = 1e-8 s, 1e-7 s, ...`` with ``s = max |diag H|``, plus a shift past
    ``-min diag H``. Returns ``(dx, mu)``; ``mu = inf`` means no factorization
    succeeded and ``dx = rhs / s`` is a scaled gradient step.
    """
    H = 0.5 * (H + H.T)
    scale = float(np.max(np.abs(np.diag(H)), initial=0.0))
    if not np.isfinite(scale) or scale == 0.0:
        scale = 1.0
    shift = max(0.0, -float(np.min(np.diag(H))))
    mus = [0.0] + [shift + scale * 10.0**e for e in range(-8, 9)]
    eye = np.eye(H.shape[0])
    for mu in mus:
        shifted = H + mu * eye if mu else H
        try:
            np.linalg.cholesky(shifted)  # the positive-definiteness test
        except np.linalg.LinAlgError:
            continue
        dx = np.linalg.solve(shifted, rhs)
        if np.all(np.isfinite(dx)):
            return dx, mu
    return rhs / scale, float("inf")


def _sampled_hessian(
    oracle: Oracle,
    x: np.ndarray,
    z: np.ndarray,
    g: np.ndarray,
    *,
    s: int,
    A_low: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Gradient ``(d,)``, sampled Hessian ``(d, d)`` and kept-row count at ``x``.

    ``A^T diag(delta) A`` is sampled; ``- P F^T - F P^T + c F F^T + diag(x_hessian_diag)``
    is exact, with ``[grad, P, F] = A^T [g, p, f]`` from the same pass over ``A``
    as the CountSketch. ``A_low`` is the float32 copy of ``A`` for the leverage scores.
    """
    A = oracle.A
    n, d = A.shape
    B = oracle.z_hessian(x, z)
    delta = np.asarray(B.delta, dtype=float)
    if s >= n:
        Y = A.T @ np.column_stack([g, B.p, B.f])
        gram = sampling.exact_gram(A, delta)
    else:
        weights = np.abs(delta)
        Y, SA = sampling.products_and_sketch(
            A,
            np.column_stack([g, B.p, B.f]),
            np.sqrt(weights),
            sampling.sketch_rows(n, d),
            rng,
        )
        k = sampling.jl_columns(n)
        scores = sampling.leverage_estimates(A_low, weights, SA, k, rng)
        if not np.all(np.isfinite(scores)):  # float32 overflow: redo in float64
            scores = sampling.leverage_estimates(A, weights, SA, k, rng)
        gram = sampling.sampled_gram(A, delta, scores, s, rng)
    grad, P, F = Y[:, 0] + oracle.x_gradient(x), Y[:, 1], Y[:, 2]
    H = gram.matrix - np.outer(P, F) - np.outer(F, P) + float(B.c) * np.outer(F, F)
    H[np.diag_indices(d)] += oracle.x_hessian_diag(x)
    return grad, H, gram.rows


def newton(
    model: ModuleType,
    x0: np.ndarray,
    *,
    method: str = "exact",
    tol: float = 1e-10,
    max_iter: int = 100,
    seed: int | None = None,
    epsilon: float = 0.3,
    delta: float = 0.1,
    sample_constant: float = sampling.SAMPLE_CONSTANT,
    **data: Any,
) -> NewtonResult:
    """Minimize ``model.loss`` by Newton's method from ``x0 (d,)``.

    ``data`` holds the model's arguments: ``A (n, d)`` and the names in
    ``model.PARAMETERS`` (e.g. ``b (n,), w (n,), gamma``). ``method="exact"``
    uses ``model.hessian``; ``"sampled"`` the paper's sampled Hessian with
    ``s = ceil(sample_constant * epsilon**-2 * d * log(d / delta))`` rows
    (see :mod:`creality_sym.solve.sampling`), drawn from
    ``numpy.random.default_rng(seed)`` (same seed, same iterates); when
    ``s >= n`` the sampled part is computed in full. Stops when
    ``||grad L|| <= tol`` (2-norm), after ``max_iter`` steps, or when the line
    search finds no decrease.

    The data are validated once by the model (``validate=True``); the loop
    calls it with ``validate=False``. A Hessian (exact or sampled) that is not
    positive definite is damped, and ``reason`` says at how many iterates.
    Returns a :class:`NewtonResult`; its ``grad_norm`` is recomputed with
    ``model.gradient`` at the returned ``x``. Raises ``ValueError`` naming a bad
    argument.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if not tol > 0.0:
        raise ValueError(f"tol must be positive; got {tol!r}")
    if int(max_iter) != max_iter or max_iter < 0:
        raise ValueError(f"max_iter must be a nonnegative integer; got {max_iter!r}")
    A, params = split_data(model, data)
    if A.ndim != 2:
        raise ValueError(f"A must be a 2-D array (n, d); got shape {A.shape}")
    x = np.array(x0, dtype=float)
    if x.shape != (A.shape[1],):
        raise ValueError(f"x0 must have shape (d,) = ({A.shape[1]},); got {x.shape}")
    oracle = Oracle(model, A, params, x)
    n, d = A.shape
    s = sampling.sample_size(n, d, epsilon=epsilon, delta=delta, constant=sample_constant)
    rng = np.random.default_rng(seed)
    A_low = A.astype(np.float32) if method == "sampled" and s < n else A

    z = A @ x
    loss = oracle.loss(x, z)
    history: list[Iteration] = []
    converged, reason, damped = False, "", 0
    for k in range(max_iter + 1):
        start = time.perf_counter()
        g = oracle.z_gradient(x, z)
        if method == "exact":
            grad = A.T @ g + oracle.x_gradient(x)
            H, rows = None, n
        else:
            grad, H, rows = _sampled_hessian(oracle, x, z, g, s=s, A_low=A_low, rng=rng)
        row = Iteration(k, loss, float(np.linalg.norm(grad)), rows=rows)
        history.append(row)
        if not np.all(np.isfinite(grad)):
            reason = "non-finite gradient"
            break
        if row.grad_norm <= tol:
            converged, reason = True, f"||grad L|| <= tol = {tol:g}"
            break
        if k == max_iter:
            reason = f"max_iter = {max_iter} reached"
            break
        if H is None:
            H = oracle.hessian(x)
        dx, row.damping = damped_cholesky_solve(H, -grad)
        if row.damping:
            damped += 1
            row.note = "Hessian not PD: damped" if np.isfinite(row.damping) else "gradient step"
        t, new_loss, u = _line_search(oracle, x, z, loss, grad, dx)
        if t == 0.0:
            row.seconds = time.perf_counter() - start
            reason = f"line search found no decrease at ||grad L|| = {row.grad_norm:.3g}"
            break
        x = x + t * dx
        z = z + t * u
        loss = new_loss
        row.step, row.step_norm = t, t * float(np.linalg.norm(dx))
        row.seconds = time.perf_counter() - start
    if damped:
        reason += f"; Hessian not positive definite at {damped} iterate(s), damped"
    final_grad = oracle.gradient(x)
    return NewtonResult(
        x=x,
        converged=converged,
        iterations=len(history) - 1,
        reason=reason,
        method=method,
        loss=float(oracle.loss(x, z)),
        grad_norm=float(np.linalg.norm(final_grad)),
        history=history,
    )


def _line_search(
    oracle: Oracle,
    x: np.ndarray,
    z: np.ndarray,
    loss: float,
    grad: np.ndarray,
    dx: np.ndarray,
) -> tuple[float, float, np.ndarray]:
    """Backtracking Armijo search along ``dx``; returns ``(t, loss(x + t dx), A dx)``.

    When the predicted decrease ``-grad . dx`` is below the loss's resolution,
    the loss cannot arbitrate and the full step is taken. ``t = 0`` means no
    acceptable step.
    """
    u = oracle.A @ dx
    slope = float(grad @ dx)
    resolution = LOSS_RESOLUTION_ULPS * np.finfo(float).eps * max(1.0, abs(loss))
    if 0.0 > slope >= -resolution:
        trial = oracle.loss(x + dx, z + u)
        if np.isfinite(trial):
            return 1.0, trial, u
    t = 1.0
    for _ in range(MAX_BACKTRACKS):
        trial = oracle.loss(x + t * dx, z + t * u)
        if np.isfinite(trial) and trial <= loss + ARMIJO * t * slope:
            return t, trial, u
        t *= BACKTRACK
    return 0.0, loss, u
