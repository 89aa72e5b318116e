"""A row-sampled preconditioner for Newton-CG: ``M = A_S^T D~ A_S + (low-rank part, exact)``.

The Hessian is ``H = A^T diag(delta) A - P F^T - F P^T + c F F^T (+ diag(h))``.
:class:`SketchPreconditioner` keeps a Poisson row sample ``S`` (row ``i`` kept
with probability ``pi_i``, weighted ``1 / pi_i``) and builds

    M = sum_{i in S} (delta_i / pi_i) a_i a_i^T - P F^T - F P^T + c F F^T (+ diag(h))

at every Newton iterate from the *current* ``delta``: the sample (and the
rows ``A_S``, copied once) is reused across iterations, and only the
``|S| d^2`` Gram product is redone. Its Cholesky factor preconditions CG on
exact Hessian-vector products, so the step is the exact Newton step to the
CG tolerance; the sample only decides how fast CG gets there.

Sample size from the measured error. Rows kept surely (``pi_i = 1``) carry
no sampling error and form ``G_0``; every other kept row is given to one of
two halves at random, and each half with weights ``2 / pi_i`` is an
independent estimate ``G_1, G_2`` of the rest: ``G = G_0 + (G_1 + G_2) / 2``. Then

    error = ||L^-1 (G_1 - G_2) L^-T||_2 / 2,   M = L L^T,

estimates the spectral error ``||M^-1/2 (M - H) M^-1/2||`` at no extra pass
over ``A`` (power iteration, O(d^2) a step). The first build draws a pilot
of ``pilot_rows(n, d)`` rows by ``|delta|`` (a share :data:`UNIFORM_SHARE`
uniform), measures its error and, if the rows look coherent (error well
above that of incoherent rows) or ``M`` is not positive definite, estimates
leverage scores of ``|D|^1/2 A`` against the pilot's factor (one
``(n, d) x (d, k)`` product, :func:`creality_sym.solve.sampling.leverage_estimates`),
then samples by an even mix of leverage and ``|delta|``. The sample size is
chosen from the measured error (``error^2 s`` is about constant) to minimize
a cost model: CG products (one pass over ``A`` each, but ``A v`` and
``A^T y``: about two mat-vecs of time, memory bound) against
the Gram product (compute bound), capped at ``n / 8`` rows. A later build
whose measured error exceeds :data:`REFRESH_ERROR`, whose ``M`` needs damping
before any leverage scores exist, or that follows a slow CG solve recomputes
the leverage scores and redraws the sample. A damped ``M`` still
preconditions the undamped Newton system; only CG decides whether ``H``
itself needs damping (:mod:`creality_sym.solve.steps`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..codegen.static import _runtime as static_runtime
from . import sampling
from .linalg import Factor, damped_cholesky

#: measured error above which the sample is redrawn (with fresh leverage scores)
REFRESH_ERROR = 0.6
#: a mat-vec flop costs about this many Gram (syrk) flops: memory- against compute-bound
COST_RATIO = 32.0
#: CG's typical residual reduction per Newton step, for the cost model
TYPICAL_REDUCTION = 1e-4
#: most rows kept, as a fraction of n (memory: the kept rows are a copy)
MAX_ROW_FRACTION = 1.0 / 8.0
#: share of the sampling distribution spread uniformly over the rows
UNIFORM_SHARE = 0.1
#: pilot error above this multiple of sqrt(d log d / s) (incoherent rows) triggers leverage scores
COHERENCE_FACTOR = 1.5


def _incoherent_error(d: int, rows: int) -> float:
    """Spectral error ``sqrt(d log d / rows)`` expected from ``rows`` incoherent rows."""
    return math.sqrt(d * math.log(max(d, 2)) / max(rows, 1))


def pilot_rows(n: int, d: int) -> int:
    """Pilot sample size ``2 d log(10 d)`` (at least ``2 d``, at most ``n``)."""
    return min(n, max(2 * d, math.ceil(2 * d * math.log(10 * d))))


def cg_steps(error: float, reduction: float = TYPICAL_REDUCTION) -> float:
    """CG products to reduce the residual by ``reduction`` for ``M^-1 H`` with spectrum 1 +- error.

    Uses the bound ``((sqrt(k) - 1) / (sqrt(k) + 1))^m`` with ``k = (1 + error) / (1 - error)``;
    ``inf`` for ``error >= 1``.
    """
    if not error < 1.0:
        return math.inf
    if error <= 0.0:
        return 1.0
    root = math.sqrt((1.0 + error) / (1.0 - error))
    rate = (root - 1.0) / (root + 1.0)
    if not 0.0 < rate < 1.0 or not 0.0 < reduction < 1.0:
        return 1.0
    return max(1.0, math.log(reduction) / math.log(rate))


def plan_rows(n: int, d: int, rows: int, error: float, *, max_rows: int) -> int:
    """Sample size minimizing modeled cost, from the error ``error`` measured with ``rows`` rows.

    The error scales as ``error * sqrt(rows / s)``. Cost per Newton step:
    ``cg_steps(error(s)) * 4 n d * COST_RATIO`` (CG products) plus
    ``s d^2 + s d * COST_RATIO`` (Gram product and row scaling). Returns a size
    in ``[min(rows, max_rows), max_rows]``.
    """
    low = max(1, min(rows, max_rows))
    if not math.isfinite(error) or error <= 0.0:
        return low
    c = error * error * rows
    best, best_cost = low, math.inf
    for s in np.unique(np.geomspace(low, max(low, max_rows), 32).astype(int)):
        steps = cg_steps(math.sqrt(c / s))
        cost = steps * 4.0 * n * d * COST_RATIO + s * d * (d + COST_RATIO)
        if cost < best_cost:
            best, best_cost = int(s), cost
    return best


def _spectral_norm(inverse: np.ndarray, X: np.ndarray, rng: np.random.Generator) -> float:
    """``||inverse X inverse^T||_2`` for symmetric ``X (d, d)`` by power iteration (O(d^2) a step).

    Forty steps from a random start; the estimate is a lower bound that is
    within a few percent for the spread-out spectra sampling errors have.
    """
    v = rng.standard_normal(X.shape[0])
    value = 0.0
    for _ in range(40):
        norm = float(np.linalg.norm(v))
        if not norm > 0.0 or not math.isfinite(norm):
            return value if math.isfinite(norm) else math.inf
        v /= norm
        w = inverse @ (X @ (inverse.T @ v))
        value = abs(float(v @ w))
        v = w
    return value


def keep_probabilities(q: np.ndarray, s: int) -> np.ndarray:
    """``pi = min(1, t q)`` with ``t`` such that ``sum(pi) = s``: about ``s`` rows kept.

    ``q (n,)`` is a probability vector. Rows whose ``t q_i`` reaches 1 are kept
    surely and the rest of the budget is spread over the others (a few O(n)
    passes); ``min(1, s q)`` alone keeps far fewer than ``s`` rows when ``q``
    is concentrated.
    """
    n = q.shape[0]
    if s >= n:
        return np.ones(n)
    t = float(s)
    for _ in range(20):
        capped = t * q >= 1.0
        k = int(np.count_nonzero(capped))
        free = float(q[~capped].sum())
        if free <= 0.0 or k >= s:
            break
        t_next = (s - k) / free
        if t_next <= t * (1.0 + 1e-12):
            t = max(t, t_next)
            break
        t = t_next
    return np.minimum(1.0, t * q)


def _gather(
    A: np.ndarray, index: np.ndarray, sure: int, dtype: type
) -> tuple[np.ndarray, np.ndarray]:
    """``(A[index[:sure]] (float64), A[index[sure:]] (dtype))``, copied in blocks."""
    head = np.take(A, index[:sure], axis=0)
    rest = index[sure:]
    if dtype == np.float64:
        return head, np.take(A, rest, axis=0)
    out = np.empty((rest.size, A.shape[1]), dtype=dtype)
    step = max(1, (1 << 22) // (8 * A.shape[1]))
    block = np.empty((min(step, rest.size), A.shape[1]))
    for i in range(0, rest.size, step):
        j = min(i + step, rest.size)
        np.take(A, rest[i:j], axis=0, out=block[: j - i])
        out[i:j] = block[: j - i]
    return head, out


@dataclass(frozen=True)
class Built:
    """A preconditioner: its ``factor`` (of ``M + mu I``), measured ``error``, ``rows`` kept.

    ``note`` says what was (re)drawn; ``gram (d, d)`` is ``M`` without damping.
    """

    factor: Factor
    error: float
    rows: int
    note: str


class SketchPreconditioner:
    """Row sample of ``A (n, d)`` kept across Newton iterations; builds ``M`` from current pieces.

    Parameters
    ----------
    A : (n, d) float64 array
    rng : numpy.random.Generator
        All sampling randomness (same seed, same samples).
    runtime : module, optional
        The generated runtime whose worker threads the caller holds while it
        builds (its ``on_workers``; default the package's own copy): the
        sample's Grams are then computed on them, one part each.
    """

    def __init__(self, A: np.ndarray, rng: np.random.Generator, runtime: Any = None) -> None:
        self.A = A
        self.rng = rng
        self._on_workers = getattr(runtime, "on_workers", None) or static_runtime.on_workers
        n, d = A.shape
        self.max_rows = max(1, int(MAX_ROW_FRACTION * n))
        self.leverage: np.ndarray | None = None
        self.index: np.ndarray | None = None
        self.inv_prob = np.empty(0)
        self.bounds = (0, 0)  # rows [0, b0) kept surely, [b0, b1) half 1, [b1, end) half 2
        self.rows: tuple[np.ndarray, np.ndarray] = (np.empty((0, d)), np.empty((0, d)))
        #: dtype of the randomly kept rows: float32 until a CG solve is slow, then float64
        self.dtype: type = np.float32
        self.planned = 0
        self.stale = False
        self.exact = pilot_rows(n, d) > self.max_rows  # too few rows to sample: keep all

    # -- sampling -------------------------------------------------------------

    def _draw(self, delta: np.ndarray, s: int) -> None:
        """Poisson-sample about ``s`` rows by ``|delta|`` (mixed with leverage when known).

        A share :data:`UNIFORM_SHARE` of the distribution is uniform, so rows
        whose ``|delta|`` is small but whose direction only they carry are
        still drawn now and then.
        """
        n = delta.shape[0]
        weight = np.abs(delta)
        total = float(weight.sum())
        q = weight / total if np.isfinite(total) and total > 0.0 else np.full(n, 1.0 / n)
        if self.leverage is not None:
            lev = weight * self.leverage
            lev_total = float(lev.sum())
            if np.isfinite(lev_total) and lev_total > 0.0:
                q = 0.5 * q + 0.5 * (lev / lev_total)
        q = (1.0 - UNIFORM_SHARE) * q + UNIFORM_SHARE / n  # defensive: every row may be drawn
        pi = keep_probabilities(q, s)
        kept = np.flatnonzero(self.rng.random(n) < pi)
        sure = pi[kept] >= 1.0
        group = np.where(sure, 0, np.where(self.rng.random(kept.size) < 0.5, 1, 2))
        order = np.argsort(group, kind="stable")  # contiguous groups: sure, half 1, half 2
        self.index = kept[order]
        self.inv_prob = 1.0 / pi[self.index]
        counts = np.bincount(group, minlength=3)
        self.bounds = (int(counts[0]), int(counts[0] + counts[1]))
        self.rows = _gather(self.A, self.index, self.bounds[0], self.dtype)
        self.planned = s

    def _all_rows(self) -> None:
        n = self.A.shape[0]
        self.index = np.arange(n)
        self.inv_prob = np.ones(n)
        self.bounds = (n, n)
        self.rows = (self.A, self.A[:0])
        self.planned = n

    def _refresh_leverage(self, factor: Factor) -> None:
        """Leverage estimates ``a_i^T M^-1 a_i`` (n,) against the factor ``M = L L^T``."""
        if factor.L is None:
            return
        n = self.A.shape[0]
        k = sampling.jl_columns(n)
        self.leverage = sampling.leverage_estimates(
            self.A, np.ones(n), factor.L.T, k, self.rng, self._on_workers
        )

    # -- building ---------------------------------------------------------------

    def _grams(self, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``(G, G_1 - G_2)`` (float64) from the kept rows weighted by the current ``delta``.

        The surely kept rows are float64; the halves may be float32 (their
        sampling error, not the rounding, limits the preconditioner).
        """
        w = delta[self.index] * self.inv_prob
        if self.exact:
            return sampling.scaled_gram(self.A, np.sqrt(np.abs(w)), w < 0.0), None
        sure, random = self.rows
        b0, b1 = self.bounds
        scale = np.sqrt(np.abs(w))
        scale[b0:] *= math.sqrt(2.0)  # each half alone estimates the randomly kept part
        negative = w < 0.0
        halves = ((0, b1 - b0), (b1 - b0, random.shape[0]))

        def gram(part: int) -> np.ndarray:
            """The Gram of the sure rows (part 0) or of one half (parts 1, 2), float64."""
            if part == 0:
                return sampling.scaled_gram(sure, scale[:b0], negative[:b0])
            lo, hi = halves[part - 1]
            return sampling.scaled_gram(
                random[lo:hi], scale[b0 + lo : b0 + hi], negative[b0 + lo : b0 + hi]
            )

        G1, G2, G0 = self._on_workers(gram, [1, 2, 0])  # the halves first: one per worker
        return G0 + 0.5 * (G1 + G2), G1 - G2

    def _assemble(self, delta: np.ndarray, rest: np.ndarray) -> tuple[Factor, float]:
        """Factor of ``M = G + rest`` (damped if needed) and its measured error."""
        G, difference = self._grams(delta)
        M = G + rest
        factor = damped_cholesky(M)
        if difference is None:
            return factor, 0.0
        if factor.L is None:
            return factor, math.inf
        return factor, 0.5 * _spectral_norm(factor.inverse(), difference, self.rng)

    def build(self, delta: np.ndarray, rest: np.ndarray) -> Built:
        """The preconditioner at the current iterate.

        Parameters
        ----------
        delta : (n,) array
            Diagonal of the z-Hessian at the iterate (any sign).
        rest : (d, d) array
            The exact part (:func:`creality_sym.solve.steps.exact_part`).

        Returns
        -------
        Built
        """
        n, d = self.A.shape
        if self.exact:
            if self.index is None:
                self._all_rows()
            factor, _ = self._assemble(delta, rest)
            return Built(factor, 0.0, n, "all rows (n too small to sample)")
        if self.index is None:
            return self._first(delta, rest)
        note = "sample reused"
        factor, error = self._assemble(delta, rest)
        indefinite = factor.mu > 0.0 and self.leverage is None
        if self.stale or error > REFRESH_ERROR or indefinite:
            why = "slow CG" if self.stale else "not PD" if indefinite else "error"
            if self.stale:
                self.dtype = np.float64  # rule out float32 rounding as the cause
            self._refresh_leverage(factor)
            s = plan_rows(n, d, max(self.planned, 1), error, max_rows=self.max_rows)
            s = max(s, min(self.max_rows, 2 * self.planned)) if self.stale else s
            self._draw(delta, s)
            factor, error = self._assemble(delta, rest)
            note = f"redrawn {s} rows by leverage ({why})"
            self.stale = False
        return Built(factor, error, int(self.index.size), note)

    def _first(self, delta: np.ndarray, rest: np.ndarray) -> Built:
        """The first build: a size predicted for incoherent rows, checked by its measured error.

        The prediction takes ``error^2 s = d log d``; the sample is redrawn
        (with leverage scores) when its measured error says the rows are
        coherent or ``M`` is not positive definite, and redrawn at the size the
        measurement plans when that is more than twice the prediction.
        """
        n, d = self.A.shape
        pilot = pilot_rows(n, d)
        guess = plan_rows(n, d, pilot, _incoherent_error(d, pilot), max_rows=self.max_rows)
        self._draw(delta, guess)
        assert self.index is not None
        factor, error = self._assemble(delta, rest)
        coherent = factor.mu > 0.0 or not error <= COHERENCE_FACTOR * _incoherent_error(d, guess)
        s = plan_rows(n, d, guess, error, max_rows=self.max_rows)
        note = f"drew {guess} rows (error {error:.2f})"
        if coherent or s > 2 * guess:
            if coherent:
                self._refresh_leverage(factor)
            self._draw(delta, s)
            factor, error = self._assemble(delta, rest)
            note += f"; redrew {s}" + (" by leverage" if coherent else "")
        return Built(factor, error, int(self.index.size), note)

    def report(self, products: int, error: float, reduction: float) -> None:
        """Record a CG solve: ``products`` used for a residual ``reduction`` at measured ``error``.

        Marks the sample stale (redrawn at the next build) when CG needed more
        than twice the products the measured error predicts, plus two.
        """
        if self.exact or not 0.0 < reduction < 1.0:
            return
        expected = cg_steps(min(error, 0.99), reduction)
        if products > 2.0 * expected + 2.0:
            self.stale = True
