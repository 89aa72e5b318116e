"""The Newton step of each variant: exact Hessian, the paper's sampled Hessian, sketch-PCG.

Every variant offers ``pieces_order`` (the order of the z-space pieces its
``gradient`` and ``step`` ask for, so the line search can prepare them at the
accepted point), ``gradient(x, z) -> (grad, rows)`` (the gradient at
``x``, logits ``z``; a variant may prepare its Hessian in the same pass over
``A``), ``forget()`` (drop what it prepared: the driver took the gradient
elsewhere) and ``step(x, z, grad, target) -> Step``:

- ``"exact"``: the model's structured Hessian (built from the kept pieces,
  :meth:`creality_sym.solve.oracle.Oracle.hessian`), damped Cholesky solve;
- ``"paper"``: the paper's sampled Hessian (``A^T diag(delta) A`` from
  ``s = C eps^-2 d log(d/delta)`` rows drawn by sketched leverage scores,
  recomputed at every iterate; low-rank part exact), damped Cholesky solve;
- ``"sketch-pcg"``: CG on exact Hessian-vector products, preconditioned by
  the Cholesky factor of a row-sampled Hessian whose sample is reused across
  iterates and sized from its measured spectral error
  (:mod:`creality_sym.solve.sketch`); CG stops at the residual ``target``
  set by the driver (inexact Newton).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import sampling
from .linalg import Factor, damped_cholesky, damped_cholesky_solve
from .oracle import (
    HessianOperator,
    Oracle,
    Pieces,
    row_pass,
    runtime_of,
    shifted_rows,
    stacked_products,
)
from .pcg import pcg
from .sketch import SketchPreconditioner

VARIANTS = ("exact", "paper", "sketch-pcg")
#: most Hessian-vector products per CG solve
MAX_CG_PRODUCTS = 50
#: most damping increases after CG meets negative curvature at its first direction
MAX_DAMPING_RETRIES = 8


@dataclass
class Step:
    """A search direction ``dx (d,)`` with ``u = A dx (n,)`` when known (else ``None``).

    ``damping`` is the ``mu`` added to the Hessian (``inf``: a gradient-type
    step), ``products`` the Hessian-vector products used, ``error`` the
    measured spectral error of the preconditioner (NaN when none), ``note``
    what happened.
    """

    dx: np.ndarray
    u: np.ndarray | None = None
    damping: float = 0.0
    products: int = 0
    error: float = math.nan
    note: str = ""
    rows: int | None = None


class ExactSteps:
    """Newton steps with the model's structured Hessian."""

    variant = "exact"
    pieces_order = 2

    def __init__(self, oracle: Oracle) -> None:
        self.oracle = oracle

    def gradient(self, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, int]:
        """``(grad (d,), rows)``: ``A^T g + x_gradient`` over all ``n`` rows.

        Asks for the pieces of order 2: the step's Hessian uses the same ones
        (one softmax per point, also where the line search backtracked).
        """
        g = self.oracle.pieces(x, z, self.pieces_order).g
        return g @ self.oracle.A + self.oracle.x_gradient(x), self.oracle.A.shape[0]

    def forget(self) -> None:
        """Nothing is prepared ahead of the step."""

    def step(self, x: np.ndarray, z: np.ndarray, grad: np.ndarray, target: float) -> Step:
        """Damped Cholesky solve with the model's Hessian at ``(x, z)`` (:meth:`Oracle.hessian`)."""
        dx, mu = damped_cholesky_solve(self.oracle.hessian(x, z), -grad)
        return Step(dx, damping=mu)


def exact_part(pieces: Pieces, Y: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The Hessian but ``A^T diag(delta) A``: ``-P F^T - F P^T + c F F^T + AU C AU^T + diag(h)``.

    ``Y (2 + K, d)`` holds ``P = A^T p``, ``F = A^T f`` and the rows of ``(A^T U)^T``.
    """
    P, F, AU = Y[0], Y[1], Y[2:].T
    rest = pieces.c * np.outer(F, F) - np.outer(P, F) - np.outer(F, P)
    if AU.shape[1]:
        W = AU @ pieces.core
        rest += 0.5 * (W @ AU.T + AU @ W.T)
    rest[np.diag_indices_from(rest)] += h
    return rest


def _hessian_columns(pieces: Pieces) -> list[np.ndarray]:
    """``[p, f, U...]``: the z-vectors whose products with ``A`` the exact part needs."""
    assert pieces.p is not None
    return [pieces.p, pieces.f, *pieces.columns]


def _operator_rows(pieces: Pieces) -> list[np.ndarray]:
    """``[p~, f~, ones~, U...]``: the z-vectors whose products with ``A`` a sketch-PCG step needs.

    ``p~, f~, ones~`` (:func:`shifted_rows`) give ``A~^T p`` etc. for the
    one-pass Hessian-vector product; ``A^T p`` and ``A^T f`` follow from them.
    """
    return [*shifted_rows(pieces), *pieces.columns]


class PaperSteps:
    """The paper's sampled-Hessian Newton step (sketch recomputed at every iterate)."""

    variant = "paper"
    pieces_order = 2

    def __init__(self, oracle: Oracle, rng: np.random.Generator, s: int) -> None:
        self.oracle = oracle
        self.rng = rng
        self.s = s
        n = oracle.A.shape[0]
        self.A_low = oracle.A.astype(np.float32) if s < n else oracle.A
        self.H: np.ndarray | None = None
        self.rows = 0

    def gradient(self, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, int]:
        """``(grad (d,), rows kept)``; the sampled Hessian is built in the same pass over ``A``."""
        grad, self.H, self.rows = sampled_hessian(
            self.oracle, x, z, s=self.s, A_low=self.A_low, rng=self.rng
        )
        return grad, self.rows

    def forget(self) -> None:
        """Drop the sampled Hessian (the next step samples anew)."""
        self.H = None

    def step(self, x: np.ndarray, z: np.ndarray, grad: np.ndarray, target: float) -> Step:
        """Damped Cholesky solve with the sampled Hessian."""
        if self.H is None:
            self.gradient(x, z)
        assert self.H is not None
        dx, mu = damped_cholesky_solve(self.H, -grad)
        return Step(dx, damping=mu, rows=self.rows)


def sampled_hessian(
    oracle: Oracle,
    x: np.ndarray,
    z: np.ndarray,
    *,
    s: int,
    A_low: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Gradient ``(d,)``, the paper's sampled Hessian ``(d, d)`` and kept-row count at ``x``.

    ``A^T diag(delta) A`` is sampled; the rest (:func:`exact_part`) is exact,
    with ``[grad, P, F, A^T U] = A^T [g, p, f, U]`` from the same pass over
    ``A`` as the CountSketch. ``A_low`` is the float32 copy of ``A`` for the
    leverage scores.
    """
    A = oracle.A
    n, d = A.shape
    pieces = oracle.pieces(x, z, 2)
    assert pieces.g is not None and pieces.delta is not None
    delta = pieces.delta
    columns = np.column_stack([pieces.g, *_hessian_columns(pieces)])
    if s >= n:
        Y = (columns.T @ A).T
        gram = sampling.exact_gram(A, delta)
    else:
        weights = np.abs(delta)
        Y, SA = sampling.products_and_sketch(
            A, columns, np.sqrt(weights), sampling.sketch_rows(n, d), rng
        )
        k = sampling.jl_columns(n)
        scores = sampling.leverage_estimates(A_low, weights, SA, k, rng)
        if not np.all(np.isfinite(scores)):  # float32 overflow: redo in float64
            scores = sampling.leverage_estimates(A, weights, SA, k, rng)
        gram = sampling.sampled_gram(A, delta, scores, s, rng)
    grad = Y[:, 0] + oracle.x_gradient(x)
    H = gram.matrix + exact_part(pieces, Y[:, 1:].T, oracle.x_hessian_diag(x))
    return grad, H, gram.rows


class SketchPCGSteps:
    """Inexact Newton steps: CG on exact Hessian-vector products, sketch preconditioner."""

    variant = "sketch-pcg"
    pieces_order = 2

    def __init__(self, oracle: Oracle, rng: np.random.Generator) -> None:
        self.oracle = oracle
        self.preconditioner = SketchPreconditioner(oracle.A, rng, runtime_of(oracle.model))
        self._pieces: Pieces | None = None
        self._Y: np.ndarray | None = None

    def gradient(self, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, int]:
        """``(grad (d,), rows)``; ``A^T [p, f, U]`` come from the same pass over ``A``."""
        pieces = self.oracle.pieces(x, z, 2)
        assert pieces.g is not None
        Y = stacked_products([pieces.g, *_operator_rows(pieces)], self.oracle.A, self.oracle.model)
        self._pieces, self._Y = pieces, Y[1:]
        return Y[0] + self.oracle.x_gradient(x), 0

    def forget(self) -> None:
        """Drop the pieces prepared for the step (the step recomputes them)."""
        self._pieces, self._Y = None, None

    def step(self, x: np.ndarray, z: np.ndarray, grad: np.ndarray, target: float) -> Step:
        """PCG to ``||H dx + grad|| <= target``, damped where ``H`` is not positive definite.

        The whole step runs with the runtime's workers held (for a large
        ``A``): the passes over ``A`` and the sample's Grams use them, and
        every other BLAS call (the O(d^2) work between products) runs on one
        thread, so no idle BLAS thread spins beside the workers, whatever
        ``OPENBLAS_THREAD_TIMEOUT`` says.
        """
        with self.oracle.workers():
            return self._step(x, z, grad, target)

    def _step(self, x: np.ndarray, z: np.ndarray, grad: np.ndarray, target: float) -> Step:
        if self._pieces is None or self._Y is None:
            self._pieces = self.oracle.pieces(x, z, 2)
            self._Y = stacked_products(
                _operator_rows(self._pieces), self.oracle.A, self.oracle.model
            )
        pieces, shifted = self._pieces, self._Y[:3]
        assert pieces.delta is not None and pieces.p is not None
        a_k = self.oracle.A[pieces.k]
        # A^T p = A~^T p + a_k sum(p) (the shifted rows differ from p, f at entry k only)
        P = shifted[0] + float(np.sum(pieces.p)) * a_k
        F = shifted[1] + float(np.sum(pieces.f)) * a_k
        Y = np.vstack([P, F, self._Y[3:]])
        h = self.oracle.x_hessian_diag(x)
        built = self.preconditioner.build(pieces.delta, exact_part(pieces, Y, h))
        operator = HessianOperator(
            self.oracle.A, pieces, Y[2:].T, h, shifted, row_pass(self.oracle.model)
        )
        note = built.note
        if built.factor.mu > 0.0:
            note = _join(note, f"preconditioner damped by {built.factor.mu:.1e}")
        factor = built.factor
        mu = 0.0  # damping of the Newton system itself: only where CG meets negative curvature
        truncated: Step | None = None
        for _ in range(MAX_DAMPING_RETRIES):
            if factor.L is None:
                break
            result = pcg(
                operator,
                factor.solve,
                -grad,
                z.shape[0],
                target=target,
                max_iter=MAX_CG_PRODUCTS,
                mu=mu,
            )
            if not result.negative_curvature:
                if result.products:
                    reduction = target / float(np.linalg.norm(grad))
                    self.preconditioner.report(result.products, built.error, reduction)
                if not result.converged:
                    note = _join(note, f"CG stopped at {result.products} products")
                return Step(
                    result.dx, result.u, mu, operator.products, built.error, note, built.rows
                )
            if np.any(result.dx != 0.0):  # Steihaug's truncated step: a descent direction
                truncated = Step(result.dx, result.u, mu, 0, built.error, "", built.rows)
            # H + mu I is not positive definite: damp past the curvature CG met (a Rayleigh
            # quotient of H), trusting the preconditioner's damping (its estimate of
            # -lambda_min, noisy where delta < 0) up to ten times that
            bump = max(2.0 * max(0.0, -result.curvature), 1e-8 * factor.scale)
            if mu == 0.0:
                mu = max(bump, min(built.factor.mu, 10.0 * bump))
            else:
                mu = max(10.0 * mu, bump)
            if mu > factor.mu:
                matrix = _preconditioner_matrix(factor) + (mu - factor.mu) * np.eye(grad.shape[0])
                extra = damped_cholesky(matrix)
                factor = Factor(extra.L, mu + extra.mu, factor.scale)
        if truncated is not None:
            truncated.products = operator.products
            truncated.note = _join(note, "CG stopped at negative curvature")
            return truncated
        step = -factor.solve(grad)
        return Step(step, None, math.inf, operator.products, built.error, note, built.rows)


def _preconditioner_matrix(factor: Factor) -> np.ndarray:
    """``L L^T`` of a factor (the damped preconditioner matrix it came from)."""
    assert factor.L is not None
    return factor.L @ factor.L.T


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b


def make_steps(
    variant: str, oracle: Oracle, rng: np.random.Generator, s: int
) -> ExactSteps | PaperSteps | SketchPCGSteps:
    """The step strategy named ``variant`` (one of :data:`VARIANTS`)."""
    if variant == "exact":
        return ExactSteps(oracle)
    if variant == "paper":
        return PaperSteps(oracle, rng, s)
    if variant == "sketch-pcg":
        return SketchPCGSteps(oracle, rng)
    raise ValueError(f"variant must be one of {VARIANTS}; got {variant!r}")
