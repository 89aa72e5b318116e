"""The solver's oracle with ``A`` on a Dask cluster: every pass over ``A`` runs on the workers.

The z-space pieces come from :class:`~creality_sym.distributed.pieces.ChunkPieces`
(the generated piece functions per row chunk, with their global sums as
reductions); the ``(n,)`` pieces stay on the workers. The ``O(nd)`` work is
one task per row chunk of ``A``, tree-reduced: ``A^T g``, ``A^T [p, f, U]``,
and the Hessian as in the generated runtime's ``hessian_from``,
``A~^T diag(delta) A~`` over the rows shifted by the dominant row ``a_k``
(``A~ = A - 1 a_k^T``) plus ``A~^T [p, f, ones]``, assembled on the client
from ``d``-sized results.

:class:`ClusterOracle` offers what :func:`creality_sym.solve.newton._iterate`
and the step strategies use of :class:`creality_sym.solve.oracle.Oracle`
(``A``, ``loss``, ``pieces``, ``hessian``, ``gradient``, ``x_gradient``,
``x_hessian_diag``, and ``model.hvp`` for the rounding-floor probe).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from creality_sym.codegen.static._runtime import signed_gram
from creality_sym.solve.oracle import Pieces, parameters

from .pieces import ChunkPieces
from .rows import RowMatrix, RowVector

__all__ = ["ClusterHessianOperator", "ClusterOracle"]


# ----------------------------------------------------------------------------- chunk kernels


def _hessian_chunk(
    a: np.ndarray, delta: np.ndarray, p: np.ndarray, f: np.ndarray, ones: np.ndarray, a_k: Any
) -> tuple[np.ndarray, np.ndarray]:
    """``(S^T diag(delta) S (d, d), [p, f, ones] @ S (3, d))`` for the shifted ``S = a - a_k``.

    The dominant row itself shifts to zero, so ``V @ S`` is the runtime's
    ``V @ A~`` with the rows of ``V`` summing to zero. One scaled copy of the
    rows and one symmetric rank update per sign (the runtime's ``signed_gram``).
    """
    V = np.stack([p, f, ones])
    VS = V @ a - np.outer(V.sum(axis=1), a_k)
    S = a - a_k
    S *= np.sqrt(np.abs(delta))[:, None]
    return signed_gram(np, S, delta < 0.0), VS


def _hvp_sums(
    a: np.ndarray, f: np.ndarray, p: np.ndarray, ones: np.ndarray, v: np.ndarray, u_k: float
) -> np.ndarray:
    """``[f . s, p . s, ones . s]`` over the chunk, ``s = a v - u_k`` (the shifted ``A v``)."""
    s = a @ v - u_k
    return np.array([f @ s, p @ s, ones @ s])


def _hvp_rows(
    a: np.ndarray,
    delta: np.ndarray,
    p: np.ndarray,
    f: np.ndarray,
    ones: np.ndarray,
    v: np.ndarray,
    u_k: float,
    c: float,
    sums: np.ndarray,
    k_local: int,
) -> np.ndarray:
    """``[sum_j a_j y_j, sum_j y_j]`` (``d + 1``) over the chunk's rows but the dominant one.

    ``y = B (u - u_k) + u_k B 1`` restricted to the chunk (the runtime's
    ``hvp_from``); the dominant entry is set from its exactly known total by
    the caller.
    """
    s = a @ v - u_k
    fu, pu = float(sums[0]), float(sums[1])
    y = delta * s - p * fu + f * (c * fu - pu) + u_k * ones
    if k_local >= 0:
        y[k_local] = 0.0
    return np.concatenate([y @ a, [y.sum()]])


def _low_rank_chunk(a: np.ndarray, *columns: np.ndarray) -> np.ndarray:
    """``a^T U`` (d, K) of the chunk's low-rank columns."""
    return a.T @ np.stack(columns, axis=1)


# ----------------------------------------------------------------------------- pieces


class _ModelView:
    """The model for the rounding-floor probe of the Newton loop: ``hvp`` on the cluster."""

    def __init__(self, model: ModuleType, oracle: ClusterOracle) -> None:
        self._model = model
        self._oracle = oracle

    def hvp(self, x: np.ndarray, v: np.ndarray, A: Any, **_: Any) -> np.ndarray:
        return self._oracle.hvp(x, v)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


class ClusterOracle:
    """Loss, gradient and Hessian of ``model`` on a :class:`RowMatrix` ``A``.

    Parameters
    ----------
    model : module
        A generated model with ``z_pieces`` (every shipped spec has it).
    A : RowMatrix
    params : dict
        Parameter name -> value: ``(n,)`` vectors as :class:`RowVector`,
        ``(d,)`` vectors as numpy arrays, scalars as floats.
    x0 : (d,) array
        The start; its logits ``A @ x0`` become :attr:`z0`.

    Raises
    ------
    ValueError
        When ``model`` has no generated piece functions (``z_pieces``, ``_MODEL``).
    """

    def __init__(
        self, model: ModuleType, A: RowMatrix, params: dict[str, Any], x0: np.ndarray
    ) -> None:
        if not hasattr(model, "z_pieces"):
            raise ValueError(
                f"{model.__name__} has no z_pieces: regenerate it to solve on a cluster"
            )
        self.module = model
        self.model = _ModelView(model, self)
        self.A = A
        #: passed to ``model.hvp`` by the rounding-floor probe; the cluster view ignores them
        self.params: dict[str, Any] = {}
        self.via_pieces = True
        info = {p.name: p for p in parameters(model)}
        vectors = {k: v for k, v in params.items() if info[k].shape == "n"}
        scalars = {k: v for k, v in params.items() if info[k].kind == "scalar"}
        self._x_params = {k: v for k, v in params.items() if info[k].shape != "n"}
        self.chunk_pieces = ChunkPieces(model, A, vectors, scalars)
        self._a_rows: dict[int, np.ndarray] = {}
        self._cache: tuple[bytes, RowVector, int, Pieces] | None = None
        #: the logits ``A @ x0`` of the start
        self.z0 = A @ x0
        self.has_x_terms = self._detect_x_terms(x0)

    def _detect_x_terms(self, x0: np.ndarray) -> bool:
        if getattr(self.module, "HAS_X_TERMS", True) is False:
            return False
        probe = x0 + np.random.default_rng(0).standard_normal(x0.shape)
        _, gx, hx = self._x_pieces(probe, 2)
        return bool(np.any(gx != 0.0) or np.any(hx != 0.0))

    def row(self, k: int) -> np.ndarray:
        """Row ``k`` of ``A`` (cached: the dominant row changes rarely)."""
        if k not in self._a_rows:
            if len(self._a_rows) > 64:
                self._a_rows.clear()
            self._a_rows[k] = self.A.row(k)
        return self._a_rows[k]

    # -- pieces ------------------------------------------------------------------

    def pieces(self, x: np.ndarray, z: RowVector, order: int) -> Pieces:
        """z-space pieces at ``x`` (logits ``z``): loss (order 0), ``g`` (1), Hessian (2).

        The ``(n,)`` pieces are :class:`RowVector` s on the workers; ``g`` and
        the low-rank columns have their dominant entries set from their sums.
        """
        key = np.asarray(x, dtype=float).tobytes()
        if self._cache is not None:
            ckey, cz, corder, cached = self._cache
            if ckey == key and cz is z and corder >= order:
                return cached
        out = self.chunk_pieces.evaluate(z, order)
        self._cache = (key, z, order, out)
        return out

    def _x_pieces(self, x: np.ndarray, order: int) -> tuple[float, np.ndarray, np.ndarray]:
        """``(loss, gradient (d,), Hessian diagonal (d,))`` of the x-space terms."""
        zero = np.zeros(x.shape[0])
        if not hasattr(self.module, "x_pieces"):
            return 0.0, zero, zero
        xp = self.module.x_pieces(x, **self._x_params, order=order)
        loss = 0.0 if xp.loss is None else float(xp.loss)
        grad = zero if xp.gradient is None else np.asarray(xp.gradient, dtype=float)
        hess = zero if xp.hessian_diag is None else np.asarray(xp.hessian_diag, dtype=float)
        return loss, grad, hess

    # -- what the Newton loop asks -------------------------------------------------

    def loss(self, x: np.ndarray, z: RowVector, order: int = 0) -> float:
        """L(x), a float (``nan`` when the pieces are not finite); ``order`` 1 or 2 also
        prepares the pieces of that order at ``z`` (kept for the step from this point)."""
        value = self.pieces(x, z, order).loss
        if self.has_x_terms:
            value += self._x_pieces(x, 0)[0]
        return float(value) if math.isfinite(value) else math.nan

    def x_gradient(self, x: np.ndarray) -> np.ndarray:
        """``(d,)`` gradient of the x-space terms (zeros when there are none)."""
        if not self.has_x_terms:
            return np.zeros(x.shape[0])
        return self._x_pieces(x, 1)[1]

    def x_hessian_diag(self, x: np.ndarray) -> np.ndarray:
        """``(d,)`` Hessian diagonal of the x-space terms (zeros when there are none)."""
        if not self.has_x_terms:
            return np.zeros(x.shape[0])
        return self._x_pieces(x, 2)[2]

    def _logits(self, x: np.ndarray) -> RowVector:
        """``A @ x``, reusing the logits of the last pieces when ``x`` is that point."""
        if self._cache is not None and self._cache[0] == np.asarray(x, dtype=float).tobytes():
            return self._cache[1]
        return self.A @ x

    def matvec(self, v: np.ndarray) -> RowVector:
        """``A @ v`` for ``v (d,)``, as a row vector on the workers (the line search's ``A dx``)."""
        return self.A @ v

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """``(d,)`` gradient ``A^T g + x_gradient`` at ``x`` (recomputing ``A x``)."""
        z = self.A @ x
        g = self.pieces(x, z, 1).g
        assert g is not None
        return self.A.products([g])[0] + self.x_gradient(x)

    def low_rank(self, pieces: Pieces) -> np.ndarray:
        """``A^T U`` (d, K) of the pieces' low-rank columns (``K = 0``: none)."""
        if not pieces.columns:
            return np.zeros((self.A.shape[1], 0))
        return np.asarray(self.A.reduce(_low_rank_chunk, pieces.columns))

    def hessian(self, x: np.ndarray, z: RowVector | None = None) -> np.ndarray:
        """The ``(d, d)`` Hessian at ``x`` (the runtime's ``hessian_from``), one pass over A.

        ``z``: the logits at ``x`` when known (then the kept pieces serve).
        """
        P = self.pieces(x, self._logits(x) if z is None else z, 2)
        assert P.delta is not None and P.p is not None and P.ones is not None
        a_k = self.row(P.k)
        gram, PFM = self.A.reduce(_hessian_chunk, [P.delta, P.p, P.f, P.ones], args=(a_k,))
        Pv, F, M = PFM[0], PFM[1], PFM[2]
        U = np.stack([0.5 * P.c * F - Pv, M + 0.5 * P.ones_total * a_k], axis=1)
        L = U @ np.stack([F, a_k])
        H = gram + (L + L.T)
        if P.columns:
            AU = self.low_rank(P)
            W = AU @ P.core
            H = H + 0.5 * (W @ AU.T + AU @ W.T)
        if self.has_x_terms:
            H = H + np.diag(self.x_hessian_diag(x))
        return H

    def hvp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``H v`` (d,) at ``x``: two passes over ``A``."""
        P = self.pieces(x, self._logits(x), 2)
        operator = ClusterHessianOperator(self, P, self.low_rank(P), self.x_hessian_diag(x))
        return operator(np.asarray(v, dtype=float))[0]


class ClusterHessianOperator:
    """``v -> (H v, 0)`` at a fixed point, as :class:`creality_sym.solve.oracle.HessianOperator`.

    ``H = A^T B A + (A^T U) C (A^T U)^T + diag(h)``; ``A v`` is shifted by its
    dominant entry and the dominant entry of ``B (A v)`` is set from its known
    sum, as the runtime's ``hvp_from`` does. One graph per product (two passes
    over ``A``: the sums ``f . u``, ``p . u``, ``ones . u``, then ``A^T y``).
    The second result is a length-1 zero: ``A dx`` is not accumulated (the line
    search computes it, one more pass over ``A``).
    """

    def __init__(self, oracle: ClusterOracle, pieces: Pieces, AU: np.ndarray, h: np.ndarray):
        self.A = oracle.A
        self.pieces = pieces
        self.a_k = oracle.row(pieces.k)
        self.AU = AU
        self.AUC = AU @ pieces.core if AU.shape[1] else AU
        self.h = h
        self.has_h = bool(np.any(h != 0.0))
        self.k_local = self.A.local_index(pieces.k)
        self.products = 0

    def __call__(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(H v (d,), zeros(1))`` for ``v (d,)``."""
        self.products += 1
        P = self.pieces
        u_k = float(self.a_k @ v)
        first = self.A.partial(_hvp_sums, [P.f, P.p, P.ones], args=(v, u_k))
        second = self.A.partial(
            _hvp_rows,
            [P.delta, P.p, P.f, P.ones],
            args=(v, u_k, float(P.c), first),
            chunk_args=[(k,) for k in self.k_local],
        )
        sums, rows = self.A.client.gather([first, second])
        d = v.shape[0]
        total = float(sums[2]) + u_k * float(P.ones_total)
        Hv = rows[:d] + self.a_k * (total - float(rows[d]))
        if self.AU.shape[1]:
            Hv = Hv + self.AUC @ (self.AU.T @ v)
        if self.has_h:
            Hv = Hv + self.h * v
        return Hv, np.zeros(1)
