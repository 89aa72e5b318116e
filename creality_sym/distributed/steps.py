"""The sampled Newton steps with ``A`` on a Dask cluster: sketch-PCG and the paper's variant.

The exact step is :class:`creality_sym.solve.steps.ExactSteps` on
:class:`~creality_sym.distributed.oracle.ClusterOracle` (its gradient pass
also prepares the Hessian pieces). The sampled steps follow :mod:`creality_sym.solve.steps` and
:mod:`creality_sym.solve.sketch` with every pass over ``A`` on the workers:

- the row sample of the sketch preconditioner is drawn per row chunk
  (Poisson sampling needs no coordination: each chunk draws its own rows with
  a seed from the solver's generator) and kept on the worker that holds the
  chunk, with its rows copied once; each build sums the chunks' weighted
  Gram matrices of the kept rows (``d x d`` each), in chunk order;
- leverage scores ``||a_i M||^2`` (``M = R^-1 G``, ``d x k``, from the client)
  are a per-chunk product, kept on the workers;
- the paper's CountSketch of ``|D|^1/2 A`` is a per-chunk sparse product
  (``m x d`` each), summed like the products ``A^T [g, p, f, U]`` it shares
  the pass with.

With the same seed the samples are the same on any cluster of the same
chunking; they differ from the in-memory solver's (which draws all ``n``
rows from one stream), so the sampled iterates differ while the solution
(at ``tol``) is the same.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse

from creality_sym.codegen.static._runtime import signed_gram
from creality_sym.solve import sampling, sketch
from creality_sym.solve.linalg import Factor, damped_cholesky
from creality_sym.solve.pcg import pcg
from creality_sym.solve.sketch import SketchPreconditioner
from creality_sym.solve.steps import (
    MAX_CG_PRODUCTS,
    MAX_DAMPING_RETRIES,
    ExactSteps,
    PaperSteps,
    SketchPCGSteps,
    Step,
    _hessian_columns,
    _join,
    _preconditioner_matrix,
    exact_part,
)

from .oracle import ClusterHessianOperator, ClusterOracle
from .rows import RowMatrix, RowVector

__all__ = [
    "ClusterExactSteps",
    "ClusterPaperSteps",
    "ClusterSketchPCGSteps",
    "ClusterSketchPreconditioner",
]


def _seeds(rng: np.random.Generator, count: int) -> list[tuple[int]]:
    """One seed per chunk from the solver's generator."""
    return [(int(s),) for s in rng.integers(0, 2**62, size=count)]


def jl_matrix(SA: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``M = R^-1 G`` (d, k) as in :func:`creality_sym.solve.sampling.leverage_estimates`.

    ``R`` from a QR of the sketch ``SA (m, d)`` with a ridge of
    ``1e-10 ||SA||_F``; ``G`` Gaussian ``(d, k) / sqrt(k)`` from ``rng``.
    """
    d = SA.shape[1]
    ridge = 1e-10 * float(np.linalg.norm(SA)) + np.finfo(float).tiny
    R = np.linalg.qr(np.vstack([SA, ridge * np.eye(d)]), mode="r")
    G = rng.standard_normal((d, k)) / math.sqrt(k)
    return np.linalg.solve(R, G)


# ----------------------------------------------------------------------------- chunk kernels


def _abs_sums(a: np.ndarray, delta: np.ndarray, *leverage: np.ndarray) -> np.ndarray:
    """``[sum |delta|, sum |delta| * leverage]`` over the chunk."""
    weight = np.abs(delta)
    lev = float(np.sum(weight * leverage[0])) if leverage else 0.0
    return np.array([float(np.sum(weight)), lev])


def _draw_chunk(
    a: np.ndarray,
    delta: np.ndarray,
    *leverage_and_args: object,
) -> dict[str, np.ndarray]:
    """The chunk's Poisson sample (as :meth:`SketchPreconditioner._draw`, on its rows)."""
    *leverage, s, total, lev_total, n, uniform, seed = leverage_and_args
    weight = np.abs(delta)
    m = weight.shape[0]
    ok = np.isfinite(total) and total > 0.0
    q = weight / total if ok else np.full(m, 1.0 / n)
    if leverage and np.isfinite(lev_total) and lev_total > 0.0:
        q = 0.5 * q + 0.5 * (weight * leverage[0] / lev_total)
    q = (1.0 - uniform) * q + uniform / n
    pi = np.minimum(1.0, s * q)
    rng = np.random.default_rng(seed)
    kept = np.flatnonzero(rng.random(m) < pi)
    sure = pi[kept] >= 1.0
    group = np.where(sure, 0, np.where(rng.random(kept.size) < 0.5, 1, 2))
    order = np.argsort(group, kind="stable")
    index = kept[order]
    return {
        "index": index,
        "inv_prob": 1.0 / pi[index],
        "counts": np.bincount(group, minlength=3),
        "rows": np.take(a, index, axis=0),
    }


def _sample_grams(a: np.ndarray, delta: np.ndarray, sample: dict) -> np.ndarray:
    """``[G_0, G_1, G_2]`` (3, d, d) of the chunk's kept rows (as ``_grams`` in-memory)."""
    rows = sample["rows"]
    w = delta[sample["index"]] * sample["inv_prob"]
    c0, c1, _ = (int(c) for c in sample["counts"])
    scale = np.abs(w)
    scale[c0:] *= 2.0
    S = rows * np.sqrt(scale)[:, None]
    negative = w < 0.0
    bounds = ((0, c0), (c0, c0 + c1), (c0 + c1, S.shape[0]))
    return np.stack([signed_gram(np, S[lo:hi], negative[lo:hi]) for lo, hi in bounds])


def _counts(sample: dict) -> np.ndarray:
    return np.asarray(sample["counts"], dtype=np.int64)


def _weighted_gram(a: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``a^T diag(delta) a`` of the chunk."""
    return signed_gram(np, a * np.sqrt(np.abs(delta))[:, None], delta < 0.0)


def _leverage_chunk(a: np.ndarray, M: np.ndarray) -> np.ndarray:
    E = a @ M
    return np.einsum("ij,ij->i", E, E)


def _products_and_sketch(
    a: np.ndarray, delta: np.ndarray, *vectors_and_args: object
) -> tuple[np.ndarray, np.ndarray]:
    """``(V @ a (K, d), S |D|^1/2 a (m, d))``: the products and the chunk's CountSketch."""
    *vectors, m, seed = vectors_and_args
    rng = np.random.default_rng(seed)
    c = a.shape[0]
    buckets = rng.integers(0, m, size=c)
    root = np.sqrt(np.abs(delta))
    signs = np.where(rng.random(c) < 0.5, -root, root)
    S = scipy.sparse.csc_matrix((signs, buckets, np.arange(c + 1)), shape=(m, c))
    return np.stack(vectors) @ a, np.asarray(S @ a)


def _scores_sum(a: np.ndarray, delta: np.ndarray, M: np.ndarray) -> np.ndarray:
    """``sum_i |delta_i| ||a_i M||^2`` over the chunk (the leverage scores' total)."""
    E = a @ M
    return np.array([float(np.sum(np.abs(delta) * np.einsum("ij,ij->i", E, E)))])


def _sampled_chunk(
    a: np.ndarray, delta: np.ndarray, M: np.ndarray, s: float, total: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(sum_kept (delta_i / pi_i) a_i a_i^T, [kept, negative])`` of the chunk (paper)."""
    E = a @ M
    scores = np.abs(delta) * np.einsum("ij,ij->i", E, E)
    t = float(total[0])
    d = a.shape[1]
    if not np.isfinite(t) or t <= 0.0:
        return np.zeros((d, d)), np.zeros(2)
    pi = np.minimum(1.0, (s / t) * scores)
    kept = np.flatnonzero(np.random.default_rng(seed).random(a.shape[0]) < pi)
    rows = a[kept]  # a copy, scaled in place
    weight = delta[kept] / pi[kept]
    rows *= np.sqrt(np.abs(weight))[:, None]
    gram = signed_gram(np, rows, weight < 0.0)
    return gram, np.array([kept.size, np.sum(weight < 0.0)])


# ----------------------------------------------------------------------------- preconditioner


class _Kept:
    """The kept sample's size, as ``SketchPreconditioner.index.size`` is read."""

    def __init__(self, size: int) -> None:
        self.size = int(size)


class ClusterSketchPreconditioner(SketchPreconditioner):
    """:class:`SketchPreconditioner` with the sample kept per row chunk on the workers."""

    def __init__(self, A: RowMatrix, rng: np.random.Generator) -> None:
        super().__init__(A, rng)  # type: ignore[arg-type]  # reads A.shape only
        self.A: RowMatrix = A
        self.leverage: RowVector | None = None  # type: ignore[assignment]
        self.samples: list[object] = []

    def _draw(self, delta: RowVector, s: int) -> None:  # type: ignore[override]
        A = self.A
        n = A.shape[0]
        vectors = [delta] if self.leverage is None else [delta, self.leverage]
        total, lev_total = (float(v) for v in A.reduce(_abs_sums, vectors))
        uniform = float(getattr(sketch, "UNIFORM_SHARE", 0.0))
        self.samples = A.map(
            _draw_chunk,
            vectors,
            args=(float(s), total, lev_total, n, uniform),
            chunk_args=_seeds(self.rng, A.nchunks),
        )
        counts = np.sum(A.client.gather([A.client.submit(_counts, x) for x in self.samples]), 0)
        self.index = _Kept(int(np.sum(counts)))  # type: ignore[assignment]
        self.bounds = (int(counts[0]), int(counts[0] + counts[1]))
        self.planned = s

    def _all_rows(self) -> None:
        n = self.A.shape[0]
        self.index = _Kept(n)  # type: ignore[assignment]
        self.bounds = (n, n)
        self.planned = n

    def _refresh_leverage(self, factor: Factor) -> None:
        if factor.L is None:
            return
        M = jl_matrix(factor.L.T, sampling.jl_columns(self.A.shape[0]), self.rng)
        self.leverage = RowVector(self.A, self.A.map(_leverage_chunk, args=(M,)))

    def _grams(self, delta: RowVector) -> tuple[np.ndarray, np.ndarray | None]:  # type: ignore[override]
        if self.exact:
            return np.asarray(self.A.reduce(_weighted_gram, [delta])), None
        G = self.A.reduce(_sample_grams, [delta], chunk_args=[(x,) for x in self.samples])
        return G[0] + 0.5 * (G[1] + G[2]), G[1] - G[2]


# ----------------------------------------------------------------------------- steps


class ClusterExactSteps(ExactSteps):
    """:class:`ExactSteps` on a cluster oracle: the gradient's product runs on the workers.

    As in memory, the gradient asks for the order-2 pieces, which the step's
    Hessian then reuses (the oracle keeps the pieces of the current point).
    """

    def gradient(self, x: np.ndarray, z: RowVector) -> tuple[np.ndarray, int]:  # type: ignore[override]
        oracle: ClusterOracle = self.oracle  # type: ignore[assignment]
        g = oracle.pieces(x, z, self.pieces_order).g
        assert g is not None
        return oracle.A.products([g])[0] + oracle.x_gradient(x), oracle.A.shape[0]


class ClusterSketchPCGSteps(SketchPCGSteps):
    """:class:`SketchPCGSteps` on a cluster oracle (the same step logic, cluster products)."""

    def __init__(self, oracle: ClusterOracle, rng: np.random.Generator) -> None:
        self.oracle = oracle  # type: ignore[assignment]
        self.preconditioner = ClusterSketchPreconditioner(oracle.A, rng)
        self._pieces = None
        self._Y = None

    def gradient(self, x: np.ndarray, z: RowVector) -> tuple[np.ndarray, int]:  # type: ignore[override]
        """``(grad (d,), rows)``; ``A^T [p, f, U]`` come from the same pass over ``A``."""
        oracle = self.oracle
        pieces = oracle.pieces(x, z, 2)
        assert pieces.g is not None
        Y = oracle.A.products([pieces.g, *_hessian_columns(pieces)])
        self._pieces, self._Y = pieces, Y[1:]
        return Y[0] + oracle.x_gradient(x), 0

    def step(self, x: np.ndarray, z: RowVector, grad: np.ndarray, target: float) -> Step:  # type: ignore[override]
        """PCG to ``||H dx + grad|| <= target`` (as :meth:`SketchPCGSteps.step`).

        ``A dx`` is left to the line search (one more pass over ``A``).
        """
        oracle: ClusterOracle = self.oracle  # type: ignore[assignment]
        if self._pieces is None or self._Y is None:
            self._pieces = oracle.pieces(x, z, 2)
            self._Y = oracle.A.products(_hessian_columns(self._pieces))
        pieces, Y = self._pieces, self._Y
        assert pieces.delta is not None
        h = oracle.x_hessian_diag(x)
        built = self.preconditioner.build(pieces.delta, exact_part(pieces, Y, h))
        operator = ClusterHessianOperator(oracle, pieces, Y[2:].T, h)
        note = built.note
        if built.factor.mu > 0.0:
            note = _join(note, f"preconditioner damped by {built.factor.mu:.1e}")
        factor = built.factor
        mu = 0.0
        norm = float(np.linalg.norm(grad))
        for _ in range(MAX_DAMPING_RETRIES):
            if factor.L is None:
                break
            result = pcg(
                operator, factor.solve, -grad, 1, target=target, max_iter=MAX_CG_PRODUCTS, mu=mu
            )
            if result.products and not result.negative_curvature:
                self.preconditioner.report(result.products, built.error, target / norm)
            moved = bool(np.any(result.dx != 0.0))
            if not result.negative_curvature or moved:
                if result.negative_curvature:
                    note = _join(note, "CG stopped at negative curvature")
                if not result.converged and not result.negative_curvature:
                    note = _join(note, f"CG stopped at {result.products} products")
                return Step(result.dx, None, mu, operator.products, built.error, note, built.rows)
            mu = max(10.0 * mu, 2.0 * max(0.0, -result.curvature), 1e-8 * factor.scale)
            if mu > factor.mu:
                matrix = _preconditioner_matrix(factor) + (mu - factor.mu) * np.eye(grad.shape[0])
                extra = damped_cholesky(matrix)
                factor = Factor(extra.L, mu + extra.mu, factor.scale)
        step = -factor.solve(grad)
        return Step(step, None, math.inf, operator.products, built.error, note, built.rows)


class ClusterPaperSteps(PaperSteps):
    """The paper's sampled-Hessian step on a cluster oracle (sketch redrawn every iterate)."""

    def __init__(self, oracle: ClusterOracle, rng: np.random.Generator, s: int) -> None:
        self.oracle = oracle  # type: ignore[assignment]
        self.rng = rng
        self.s = s
        self.H = None
        self.rows = 0

    def gradient(self, x: np.ndarray, z: RowVector) -> tuple[np.ndarray, int]:  # type: ignore[override]
        """``(grad (d,), rows kept)``; the sampled Hessian is built in the same passes."""
        oracle: ClusterOracle = self.oracle  # type: ignore[assignment]
        A = oracle.A
        n, d = A.shape
        pieces = oracle.pieces(x, z, 2)
        assert pieces.g is not None and pieces.delta is not None
        vectors = [pieces.g, *_hessian_columns(pieces)]
        if self.s >= n:
            Y = A.products(vectors)
            K = np.asarray(A.reduce(_weighted_gram, [pieces.delta]))
            rows = n
        else:
            m = sampling.sketch_rows(n, d)
            seeds = _seeds(self.rng, A.nchunks)
            Y, SA = A.reduce(_products_and_sketch, [pieces.delta, *vectors], (m,), seeds)
            M = jl_matrix(SA, sampling.jl_columns(n), self.rng)
            total = A.partial(_scores_sum, [pieces.delta], args=(M,))
            K, counts = A.reduce(
                _sampled_chunk,
                [pieces.delta],
                args=(M, float(self.s), total),
                chunk_args=_seeds(self.rng, A.nchunks),
            )
            rows = int(counts[0])
        grad = Y[0] + oracle.x_gradient(x)
        self.H = 0.5 * (K + K.T) + exact_part(pieces, Y[1:], oracle.x_hessian_diag(x))
        self.rows = rows
        return grad, rows
