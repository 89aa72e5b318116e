"""Row sampling of a weighted Gram matrix ``A^T diag(delta) A`` by approximate leverage scores.

The paper's sampled Hessian replaces ``A^T D A`` by
``A^T D~ A`` built from ``s = ceil(C eps^-2 d log(d/delta))`` rows drawn by the
leverage scores of ``D^{1/2} A``. Computing those scores exactly needs a QR of
the ``(n, d)`` matrix; here they are estimated in O(n d k) with

1. a CountSketch ``S`` (``m = O(d)`` rows, one random signed entry per column)
   of ``|D|^{1/2} A``, computed in the same pass over ``A`` as the products
   ``A^T [g, p, f]`` the Newton step needs anyway (one sparse-times-dense product);
2. ``R`` from a QR of ``S |D|^{1/2} A`` (plus a tiny ridge, so ``R`` is invertible);
3. ``l_i ~ |delta_i| * ||a_i R^-1 G||^2`` with a Gaussian ``G`` of ``k = O(log n)``
   columns (Johnson-Lindenstrauss). This ``(n, d) x (d, k)`` product runs on a
   float32 copy of ``A`` made once per solve: the scores only set sampling
   probabilities (a constant-factor approximation suffices, and any
   probabilities give an unbiased estimate), while the sampled rows and all
   weights stay float64.

Rows are then kept independently (Poisson sampling): row ``i`` with probability
``pi_i = min(1, s p_i)``, ``p_i = l_i / sum(l)``, and weighted by ``1 / pi_i``
(``= 1 / (s p_i)`` unless the row is kept surely). The estimate is unbiased.

Defaults: ``C = 1``, ``eps = 0.3``, ``delta = 0.1`` (``s = 7676`` rows at
``d = 100``), ``m = 4 d``, ``k = ceil(log n)``. On the random instances of
:mod:`creality_sym.solve.instance` (``n = 200000, d = 100``) the measured spectral
error ``||K^-1/2 (A^T D~ A - A^T D A) K^-1/2||`` with ``K = A^T |D| A`` is about
0.22-0.28 (exact leverage scores: 0.20-0.22; ``k = 4`` JL columns: 0.4-0.5).

Negative weights. ``delta_i`` can be negative (the creativity term is not
convex in ``z``). Such rows are sampled with the same scheme applied to
``|delta|`` and enter with their sign: ``A^T D~ A`` stays unbiased for
``A^T D A``, and its error is controlled relative to ``A^T |D| A`` instead of
``A^T D A``. Near a minimizer the negative part is small or absent; where it is
not, the Newton solver's Cholesky test catches a non-PD estimate and damps it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse

from ..codegen.static._runtime import signed_gram

#: default constant C in s = ceil(C eps^-2 d log(d/delta))
SAMPLE_CONSTANT = 1.0


def sample_size(n: int, d: int, *, epsilon: float, delta: float, constant: float) -> int:
    """``s = ceil(C * epsilon**-2 * d * log(d / delta))``, capped at ``n``."""
    if not 0.0 < epsilon < 1.0:
        raise ValueError(f"epsilon must lie in (0, 1); got {epsilon!r}")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must lie in (0, 1); got {delta!r}")
    if not constant > 0.0:
        raise ValueError(f"sample constant must be positive; got {constant!r}")
    s = math.ceil(constant * d * math.log(d / delta) / epsilon**2)
    return min(n, s)


def sketch_rows(n: int, d: int) -> int:
    """CountSketch size ``m = 4 d`` (at most ``n``)."""
    return min(n, 4 * d)


def jl_columns(n: int) -> int:
    """Johnson-Lindenstrauss width ``k = ceil(log n)`` (at least 4)."""
    return max(4, math.ceil(math.log(max(n, 2))))


def products_and_sketch(
    A: np.ndarray,
    columns: np.ndarray,
    sketch_weights: np.ndarray,
    m: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """``A^T columns`` and a CountSketch of ``diag(sketch_weights) A``, in one pass over ``A``.

    ``A (n, d)``, ``columns (n, k)``, ``sketch_weights (n,)``. Returns ``(Y (d, k),
    SA (m, d))``. Both come from one sparse ``(k + m, n)`` times dense ``(n, d)``
    product whose column ``i`` holds ``columns[i]`` and one signed sketch entry.
    """
    n, k = columns.shape
    index = np.int32 if (k + 1) * n < 2**31 - 1 else np.int64
    rows = np.empty((n, k + 1), dtype=index)
    rows[:, :k] = np.arange(k)
    rows[:, k] = rng.integers(k, k + m, size=n)
    values = np.empty((n, k + 1))
    values[:, :k] = columns
    values[:, k] = np.where(rng.random(n) < 0.5, -sketch_weights, sketch_weights)
    pointers = np.arange(0, (k + 1) * n + 1, k + 1, dtype=index)
    T = scipy.sparse.csc_matrix((values.ravel(), rows.ravel(), pointers), shape=(k + m, n))
    out = np.asarray(T @ A)
    return out[:k].T.copy(), out[k:]


#: rows of ``A`` per block of the leverage product (about 4 MB of float64 ``A``)
LEVERAGE_BLOCK_BYTES = 4 << 20
#: blocks per run dealt to one worker thread
LEVERAGE_RUN_BLOCKS = 8


def leverage_estimates(
    A_low: np.ndarray,
    weights: np.ndarray,
    SA: np.ndarray,
    k: int,
    rng: np.random.Generator,
    on_workers: Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]] | None = None,
) -> np.ndarray:
    """Approximate leverage scores ``(n,)`` of ``diag(weights)^{1/2} A`` from its sketch ``SA``.

    ``A_low (n, d)`` is ``A`` (float32 copy allowed), ``weights (n,) >= 0``,
    ``SA (m, d)`` a sketch of ``diag(weights)^{1/2} A``. Computes
    ``weights_i * ||a_i R^-1 G||^2`` with ``R`` from a QR of ``SA`` (ridge
    ``1e-10 ||SA||_F`` keeps it invertible) and ``G`` Gaussian ``(d, k)``,
    by blocks of rows (each block's ``(rows, k)`` product stays in cache).
    ``on_workers`` (the runtime's, where the caller holds its workers) deals
    runs of :data:`LEVERAGE_RUN_BLOCKS` blocks to the worker threads; the
    blocks are the same either way (so are the scores, bit for bit, with BLAS
    at one thread).
    """
    n, d = A_low.shape
    ridge = 1e-10 * float(np.linalg.norm(SA)) + np.finfo(float).tiny
    R = np.linalg.qr(np.vstack([SA, ridge * np.eye(d)]), mode="r")
    G = rng.standard_normal((d, k)) / math.sqrt(k)
    M = np.linalg.solve(R, G).astype(A_low.dtype)  # numpy's LAPACK: one BLAS thread pool
    out = np.empty(n)
    step = max(64, LEVERAGE_BLOCK_BYTES // (8 * d))

    def scores(run: tuple[int, int]) -> None:
        for i in range(run[0], run[1], step):
            j = min(i + step, run[1])
            E = A_low[i:j] @ M
            np.einsum("ij,ij->i", E, E, out=out[i:j], casting="unsafe")

    per = LEVERAGE_RUN_BLOCKS * step
    runs = [(lo, min(lo + per, n)) for lo in range(0, n, per)]
    if on_workers is not None and len(runs) > 1:
        on_workers(scores, runs)
    else:
        scores((0, n))
    out *= weights
    return out


#: bytes of rows scaled at a time for their Gram (about one core's share of the cache)
GRAM_CHUNK_BYTES = 2 << 20


def scaled_gram(rows: np.ndarray, scale: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """``sum_i sign_i scale_i^2 r_i r_i^T`` (d, d) in float64, for ``rows (m, d)``.

    ``scale (m,)`` is nonnegative and ``sign_i = -1`` where ``negative (m,)``.
    The rows are scaled a chunk of :data:`GRAM_CHUNK_BYTES` at a time into
    a small buffer of their dtype (float32 rows stay float32; no scaled copy
    of all of them) and each chunk's signed Gram
    (:func:`~creality_sym.codegen.static._runtime.signed_gram`) is added in
    float64. Every signed Gram of a row set in the solver is formed here.
    """
    m, d = rows.shape
    G = np.zeros((d, d))
    if m == 0:
        return G
    step = max(16, GRAM_CHUNK_BYTES // (rows.itemsize * d))
    buffer = np.empty((min(step, m), d), dtype=rows.dtype)
    root = scale.astype(rows.dtype)[:, None]
    for i in range(0, m, step):
        j = min(i + step, m)
        S = np.multiply(rows[i:j], root[i:j], out=buffer[: j - i])
        G += signed_gram(np, S, negative[i:j])
    return G


@dataclass(frozen=True)
class SampledGram:
    """``matrix (d, d)`` estimating ``A^T diag(delta) A`` from ``rows`` distinct kept rows."""

    matrix: np.ndarray
    rows: int
    negative_rows: int


def sampled_gram(
    A: np.ndarray,
    delta: np.ndarray,
    scores: np.ndarray,
    s: int,
    rng: np.random.Generator,
) -> SampledGram:
    """Poisson-sample about ``s`` rows by ``scores`` and return the reweighted Gram matrix.

    ``A (n, d)``, ``delta (n,)`` (any sign), ``scores (n,) >= 0`` sampling
    scores (approximate leverage of ``|D|^{1/2} A``). Row ``i`` is kept with
    probability ``pi_i = min(1, s * scores_i / sum(scores))`` and weighted
    ``delta_i / pi_i``.
    """
    total = float(scores.sum())
    if not np.isfinite(total) or total <= 0.0:
        d = A.shape[1]
        return SampledGram(np.zeros((d, d)), 0, 0)
    pi = np.minimum(1.0, (s / total) * scores)
    kept = np.flatnonzero(rng.random(scores.shape[0]) < pi)
    weight = delta[kept] / pi[kept]
    negative = weight < 0.0
    K = scaled_gram(A[kept], np.sqrt(np.abs(weight)), negative)
    return SampledGram(K, int(kept.size), int(np.count_nonzero(negative)))


def exact_gram(A: np.ndarray, delta: np.ndarray) -> SampledGram:
    """``A^T diag(delta) A`` computed in full (used when the sample size reaches ``n``)."""
    negative = delta < 0.0
    K = scaled_gram(A, np.sqrt(np.abs(delta)), negative)
    return SampledGram(K, A.shape[0], int(np.count_nonzero(negative)))
