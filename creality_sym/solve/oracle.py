"""One model on fixed data, evaluated so that ``A @ x`` is computed once per point.

Every z-space quantity of a generated module depends on ``(x, A)`` only
through the logits ``z = A x``, and ``model.z_pieces(z, ...)`` returns the
loss, the gradient vector ``g`` and the z-Hessian pieces at ``z`` from one
softmax: O(n) work, no pass over ``A``. The x-space terms come from
``model.x_pieces(x, ...)`` (O(d)). The oracle checks this path against a
direct ``model.z_gradient(x0, A)`` once, at construction, and falls back to
direct calls of the public functions (``loss``, ``z_gradient``,
``z_hessian``, ``x_gradient``, ``x_hessian_diag`` on ``(x, A)``) when they
disagree or when the model has no ``z_pieces``.

The z-Hessian is ``B = diag(delta) - p f^T - f p^T + c f f^T + U C U^T``
(``U`` the low-rank ``columns``, ``C`` the symmetric ``core``; none for most
specs). ``ones = (B - U C U^T) 1`` and the dominant logit ``k`` let products
shift by the dominant row, as the generated code does.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ..codegen.static import _runtime as static_runtime
from .inputs import real_array, real_scalar


@dataclass(frozen=True)
class ParameterInfo:
    """Name, kind (``"vector"``/``"scalar"``), shape (``"n"``, ``"d"``, ``"scalar"``), required."""

    name: str
    kind: str
    shape: str
    required: bool


def parameters(model: ModuleType) -> tuple[ParameterInfo, ...]:
    """The data parameters of ``model`` after ``x, A``.

    Reads ``model.PARAMETERS`` as ``Parameter`` records (``name, kind, rule,
    shape, default``) or, for older modules, as names with ``RULES`` and the
    signature of ``model.loss``.
    """
    signature = inspect.signature(model.loss).parameters
    rules = getattr(model, "RULES", {})
    out = []
    for p in model.PARAMETERS:
        if isinstance(p, str):
            kind = rules.get(p, ("vector",))[0]
            shape = "n" if kind == "vector" else "scalar"
            default = signature[p].default if p in signature else inspect.Parameter.empty
            out.append(ParameterInfo(p, kind, shape, default is inspect.Parameter.empty))
        else:
            out.append(ParameterInfo(p.name, p.kind, p.shape, p.default is None))
    return tuple(out)


def parameter_names(model: ModuleType) -> tuple[str, ...]:
    """Names of the data parameters of ``model`` (``PARAMETERS`` as names)."""
    return tuple(p if isinstance(p, str) else p.name for p in model.PARAMETERS)


def dominant_total(v: np.ndarray, k: int, total: float) -> np.ndarray:
    """``v (n,)`` with entry ``k`` set so that ``sum(v) = total`` (a copy)."""
    out = np.array(v, dtype=float)
    out[k] = 0.0
    out[k] = total - float(out.sum())
    return out


@dataclass
class Pieces:
    """The z-space pieces at one point: loss, ``g (n,)`` and the z-Hessian pieces.

    ``g``, ``columns`` have their dominant entries set from their exactly known
    sums (as in the generated code); ``core (K, K)``; ``None`` means not
    computed (lower ``order``).
    """

    loss: float
    k: int
    f: np.ndarray
    g: np.ndarray | None = None
    delta: np.ndarray | None = None
    p: np.ndarray | None = None
    c: float = 0.0
    ones: np.ndarray | None = None
    ones_total: float = 0.0
    columns: tuple[np.ndarray, ...] = ()
    core: np.ndarray | None = None
    #: the runtime's own pieces object (order 2 through ``z_pieces``), for its ``hessian_from``
    raw: Any = None


class Oracle:
    """Loss, gradient and Hessian pieces of ``model`` on data ``A`` and ``params``.

    ``A`` is ``(n, d)``; ``params`` maps parameter names to their values
    (vectors, scalars). Methods take the point ``x (d,)`` and its logits
    ``z = A x (n,)``.
    """

    def __init__(self, model: ModuleType, A: np.ndarray, params: dict[str, Any], x0: np.ndarray):
        self.model = model
        self.A = A
        self.params = params
        self._runtime = runtime_of(model)
        info = {p.name: p for p in parameters(model)}
        self._z_params = {k: v for k, v in params.items() if info[k].shape != "d"}
        self._x_params = {k: v for k, v in params.items() if info[k].shape != "n"}
        # Validate once, with the model's own rules; the loop runs with validate=False.
        #: the logits ``A @ x0`` of the start
        self.z0 = self._validated_logits(x0)
        #: the pieces of the last point asked for: ``(x bytes, z, order, pieces)``
        self._kept: tuple[bytes, np.ndarray, int, Pieces] | None = None
        self.via_pieces = hasattr(model, "z_pieces")
        self.via_pieces = self.via_pieces and self._pieces_agree(x0, self.z0)
        self.has_x_terms = self._detect_x_terms(x0)

    # -- construction checks -------------------------------------------------

    def _validated_logits(self, x0: np.ndarray) -> np.ndarray:
        """``A @ x0`` (one pass over ``A``) after the model's own checks of every argument.

        The model's validating ``x_gradient`` checks them in O(n + d), without
        the logits; a non-finite ``A`` shows in the logits, and then the
        model's validating ``loss`` names it. A spec that refuses large
        logits (``USES_EXP``), or a module without ``x_gradient``, is checked
        by its validating ``loss`` first, as a whole.
        """
        model, A, params = self.model, self.A, self.params
        check = getattr(model, "x_gradient", None)
        if check is None or getattr(model, "USES_EXP", True):
            self.diagnose(x0)
            return self.matvec(x0)
        check(x0, A, **params, validate=True)
        z0 = self.matvec(x0)
        if not np.all(np.isfinite(z0)):
            self.diagnose(x0)
        return z0

    def workers(self) -> AbstractContextManager[bool]:
        """Hold the runtime's worker threads for passes over ``A`` (see its ``hold_workers``).

        Yields whether they are held: not for a small ``A``, nor without a
        runtime that has them. While held, BLAS runs at one thread, so no
        idle BLAS thread spins beside the blocked passes.
        """
        hold = getattr(self._runtime, "hold_workers", None)
        return hold(self.A) if hold is not None else nullcontext(False)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """``A @ v`` (n,) for ``v (d,)``: on the runtime's workers for a large ``A``.

        One pass either way; on the workers BLAS stays at one thread, so no
        idle BLAS thread is left spinning beside the next blocked pass (the
        Hessian's, a product's) when ``OPENBLAS_THREAD_TIMEOUT`` is not set.
        """
        matvec = getattr(self._runtime, "matvec", None)
        if matvec is None:
            return self.A @ v
        with self.workers():
            return np.asarray(matvec(self.A, v))

    def diagnose(self, x: np.ndarray) -> None:
        """Raise the model's own ``ValueError`` for the data at ``x``, if it finds one.

        The model's validating ``loss``: it names a non-finite argument, logits
        beyond its range, or a parameter at a singular value of the loss.
        """
        float(self.model.loss(x, self.A, **self.params, validate=True))

    def _pieces_agree(self, x0: np.ndarray, z0: np.ndarray) -> bool:
        """Whether ``z_pieces`` gives the model's own ``z_gradient`` (checked on a few rows).

        Both are functions of the data, so their agreement does not depend on
        which rows: the first ``min(n, 256)`` rows (and the matching entries of
        the ``(n,)`` parameters) keep the check cheap.
        """
        m = min(self.A.shape[0], 256)
        info = {p.name: p for p in parameters(self.model)}
        sub = {k: v[:m] if info[k].shape == "n" else v for k, v in self.params.items()}
        A = self.A[:m]
        try:
            zp = self.model.z_pieces(
                z0[:m],
                **{k: v for k, v in sub.items() if info[k].shape != "d"},
                order=1,
                validate=False,
            )
            short = dominant_total(zp.g, int(zp.softmax.k), float(zp.g_total))
        except (AttributeError, TypeError):
            return False
        direct = np.asarray(self.model.z_gradient(x0, A, **sub, validate=False), dtype=float)
        scale = float(np.max(np.abs(direct), initial=0.0)) + np.finfo(float).tiny
        return bool(
            np.all(np.isfinite(short))
            and np.max(np.abs(direct - short), initial=0.0) <= 1e-10 * scale
        )

    def _detect_x_terms(self, x0: np.ndarray) -> bool:
        """True when the x-space part of the loss is not constant (checked at a random point)."""
        if getattr(self.model, "HAS_X_TERMS", True) is False:
            return False
        probe = x0 + np.random.default_rng(0).standard_normal(x0.shape)
        _, gx, hx = self._x_pieces(probe, 2)
        return bool(np.any(gx != 0.0) or np.any(hx != 0.0))

    # -- evaluations -----------------------------------------------------------

    @property
    def _direct(self) -> bool:
        return not self.via_pieces

    def pieces(self, x: np.ndarray, z: np.ndarray, order: int) -> Pieces:
        """z-space pieces at ``x`` (logits ``z``): loss (order 0), ``g`` (1), Hessian (2).

        The pieces of the last call are kept: asked again for the same ``x``
        (equal values) and the same ``z`` object, at most that order, they
        are returned without recomputing the softmax.
        """
        key = x.tobytes()
        if self._kept is not None:
            kept_key, kept_z, kept_order, kept = self._kept
            if kept_z is z and kept_order >= order and kept_key == key:
                return kept
        out = self._evaluate(x, z, order)
        self._kept = (key, z, order, out)
        return out

    def _evaluate(self, x: np.ndarray, z: np.ndarray, order: int) -> Pieces:
        if self._direct:
            return self._direct_pieces(x, z, order)
        zp = self.model.z_pieces(z, **self._z_params, order=order, validate=False)
        k = int(zp.softmax.k)
        out = Pieces(float(0.0 if zp.loss is None else zp.loss), k, np.asarray(zp.f))
        if order >= 1:
            g = np.zeros_like(out.f) if zp.g is None else zp.g
            out.g = dominant_total(g, k, float(zp.g_total))
        if order >= 2:
            zeros = np.zeros_like(out.f)
            out.delta = zeros if zp.delta is None else np.asarray(zp.delta, dtype=float)
            out.p = zeros if zp.p is None else np.asarray(zp.p, dtype=float)
            out.c = float(zp.c)
            out.ones = zeros if zp.ones is None else np.asarray(zp.ones, dtype=float)
            out.ones_total = float(zp.ones_total)
            out.columns = tuple(
                dominant_total(u, k, float(t)) for u, t in zip(zp.columns, zp.totals, strict=True)
            )
            out.core = np.array(zp.core, dtype=float).reshape(len(out.columns), len(out.columns))
            out.raw = zp
        return out

    def _direct_pieces(self, x: np.ndarray, z: np.ndarray, order: int) -> Pieces:
        """Pieces from the public functions on ``(x, A)`` (the loss includes x-space terms)."""
        kw = {**self.params, "validate": False}
        model, A = self.model, self.A
        out = Pieces(np.nan, int(np.argmax(z)), np.empty(0))
        if order == 0:
            out.loss = float(model.loss(x, A, **kw))
            return out
        out.g = np.asarray(model.z_gradient(x, A, **kw), dtype=float)
        if order >= 2:
            B = model.z_hessian(x, A, **kw)
            out.f = np.asarray(B.f, dtype=float)
            out.delta = np.asarray(B.delta, dtype=float)
            out.p = np.asarray(B.p, dtype=float)
            out.c = float(B.c)
            out.columns = tuple(np.asarray(u, dtype=float) for u in getattr(B, "columns", ()))
            core = getattr(B, "core", ())
            out.core = np.array(core, dtype=float).reshape(len(out.columns), len(out.columns))
            ones = np.ones(A.shape[0])
            out.ones = np.asarray(B.matvec(ones), dtype=float) - _low_rank_times(out, ones)
            out.ones_total = float(np.sum(out.ones))
        return out

    def _x_pieces(self, x: np.ndarray, order: int) -> tuple[float, np.ndarray, np.ndarray]:
        """``(loss, gradient (d,), Hessian diagonal (d,))`` of the x-space terms."""
        d = x.shape[0]
        zero = np.zeros(d)
        if hasattr(self.model, "x_pieces") and not self._direct:
            xp = self.model.x_pieces(x, **self._x_params, order=order)
            loss = 0.0 if xp.loss is None else float(xp.loss)
            grad = zero if xp.gradient is None else np.asarray(xp.gradient, dtype=float)
            hess = zero if xp.hessian_diag is None else np.asarray(xp.hessian_diag, dtype=float)
            return loss, grad, hess
        kw = {**self.params, "validate": False}
        grad = np.asarray(self.model.x_gradient(x, self.A, **kw), dtype=float) if order else zero
        hess = (
            np.asarray(self.model.x_hessian_diag(x, self.A, **kw), dtype=float)
            if order >= 2
            else zero
        )
        return 0.0, grad, hess

    def loss(self, x: np.ndarray, z: np.ndarray, order: int = 0) -> float:
        """L(x), a float; ``order`` 1 or 2 also prepares the pieces of that order at ``z``
        (for the step from this point, if it is accepted)."""
        if self._direct:
            return float(self.model.loss(x, self.A, **self.params, validate=False))
        value = self.pieces(x, z, order).loss
        if self.has_x_terms:
            value += self._x_pieces(x, 0)[0]
        return value

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

    def hessian(self, x: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        """The model's structured ``(d, d)`` Hessian at ``x``.

        With the logits ``z`` (and a runtime with ``hessian_from`` and
        ``hold_workers``, as every current generated package has), from
        the pieces at ``(x, z)``, usually kept from the line search: the
        model's own computation without its second ``A @ x`` and softmax.
        Otherwise a direct ``model.hessian`` call.
        """
        runtime = self._runtime
        if z is None or not self.via_pieces or not hasattr(runtime, "hold_workers"):
            return np.asarray(self.model.hessian(x, self.A, **self.params, validate=False), float)
        pieces = self.pieces(x, z, 2)
        with runtime.quiet(), self.workers():
            H = np.array(runtime.hessian_from(np, self.A, pieces.raw), dtype=float)
        if self.has_x_terms:
            H[np.diag_indices_from(H)] += self.x_hessian_diag(x)
        return H

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """The model's own ``(d,)`` gradient (a direct call, used to certify the result)."""
        return np.asarray(self.model.gradient(x, self.A, **self.params, validate=False), float)


def _low_rank_times(pieces: Pieces, u: np.ndarray) -> np.ndarray:
    """``U C U^T u`` (n,) of the pieces' low-rank part (zeros without one)."""
    if not pieces.columns:
        return np.zeros_like(u)
    coeff = pieces.core @ np.array([float(col @ u) for col in pieces.columns])
    out = np.zeros_like(u)
    for col, a in zip(pieces.columns, coeff, strict=True):
        out += a * col
    return out


def runtime_of(model: ModuleType) -> ModuleType | None:
    """The generated runtime module (``<package>._runtime``) of ``model``; None without one."""
    package = model.__name__.rpartition(".")[0]
    return sys.modules.get(f"{package}._runtime") if package else None


def row_pass(model: ModuleType) -> Any:
    """The generated runtime's one-pass ``shifted_row_pass`` for ``model`` (None without one)."""
    return getattr(runtime_of(model), "shifted_row_pass", None)


def shifted_rows(pieces: Pieces) -> list[np.ndarray]:
    """``[p, f, ones]`` with their dominant entries set so each sums to 0.

    Then ``rows @ A = rows @ (A - 1 a_k^T)``: the shifted thin products the
    one-pass Hessian-vector product needs, accurate when ``f`` is one-hot.
    """
    assert pieces.p is not None and pieces.ones is not None
    return [dominant_total(v, pieces.k, 0.0) for v in (pieces.p, pieces.f, pieces.ones)]


class HessianOperator:
    """``v -> (H v, A v)`` at a fixed point, from the z-Hessian pieces: O(n d) per product.

    ``H = A^T B A + diag(h)``. As in the generated ``hvp``, ``u = A v`` is
    shifted by its entry at the dominant logit ``k`` (``B u = B (u - u_k 1) +
    u_k B 1``) and the dominant entry of ``B u`` is set from its known sum,
    which keeps the product accurate when ``f`` is nearly one-hot. The
    low-rank part is applied as ``(A^T U) C (A^T U)^T v`` with ``A^T U``
    given. With the runtime's ``shifted_row_pass`` and the shifted thin
    products ``A~^T [p, f, ones]`` (A~ = A - 1 a_k^T) a product is one pass
    over ``A`` (``A~^T (delta * s)`` while each block of ``A v`` is in
    cache), otherwise two; the softmax is never recomputed (the model's
    ``hvp`` redoes ``A x`` and the pieces on every call).

    Parameters
    ----------
    A : (n, d) array
    pieces : Pieces
        Order-2 pieces at the point.
    AU : (d, K) array
        ``A^T U`` of the low-rank columns (``K = 0`` when there are none).
    h : (d,) array
        Diagonal Hessian of the x-space terms.
    shifted : (3, d) array, optional
        ``shifted_rows(pieces) @ A``; needed for the one-pass product.
    one_pass : callable, optional
        The runtime's ``shifted_row_pass``.
    """

    def __init__(
        self,
        A: np.ndarray,
        pieces: Pieces,
        AU: np.ndarray,
        h: np.ndarray,
        shifted: np.ndarray | None = None,
        one_pass: Any = None,
    ) -> None:
        self.A = A
        self.pieces = pieces
        self.AU = AU
        self.AUC = AU @ pieces.core if AU.shape[1] else AU
        self.h = h
        self.has_h = bool(np.any(h != 0.0))
        self.shifted = shifted
        self.one_pass = one_pass if shifted is not None else None
        if self.one_pass is None:  # buffers of the two-pass product
            n = A.shape[0]
            self._shifted, self._y, self._tmp = np.empty(n), np.empty(n), np.empty(n)
        self.products = 0

    def _b_times(self, u: np.ndarray) -> np.ndarray:
        """``(B - U C U^T) u`` into the operator's buffer (overwritten by the next call)."""
        P = self.pieces
        fu = float(P.f @ u)
        pu = float(P.p @ u)
        y = np.multiply(P.delta, u, out=self._y)
        y -= np.multiply(fu, P.p, out=self._tmp)
        y += np.multiply(P.c * fu - pu, P.f, out=self._tmp)
        return y

    def _one_pass(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``A^T B A v = A~^T (delta s) - (f.s) A~^T p + (c f.s - p.s) A~^T f + u_k A~^T 1_B
        + a_k total`` with ``s = A v - u_k``, from one pass over ``A``."""
        P = self.pieces
        assert self.shifted is not None and P.p is not None and P.ones is not None
        s, u_k, Hv = self.one_pass(self.A, v, P.k, P.delta)
        fu = float(P.f @ s)
        pu = float(P.p @ s)
        total = float(P.ones @ s) + u_k * P.ones_total
        shifted_p, shifted_f, shifted_ones = self.shifted
        Hv -= fu * shifted_p
        Hv += (P.c * fu - pu) * shifted_f
        Hv += u_k * shifted_ones
        Hv += total * self.A[P.k]
        s += u_k
        return Hv, s

    def __call__(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(H v (d,), A v (n,))`` for ``v (d,)``."""
        self.products += 1
        P = self.pieces
        if self.one_pass is not None:
            Hv, u = self._one_pass(v)
        else:
            u = self.A @ v
            u_k = float(u[P.k])
            shifted = np.subtract(u, u_k, out=self._shifted)
            y = self._b_times(shifted)
            if u_k:
                y += np.multiply(u_k, P.ones, out=self._tmp)
            total = float(P.ones @ shifted) + u_k * P.ones_total
            y[P.k] = 0.0
            y[P.k] = total - float(y.sum())
            Hv = y @ self.A
        if self.AU.shape[1]:
            Hv += self.AUC @ (self.AU.T @ v)
        if self.has_h:
            Hv += self.h * v
        return Hv, u


def stacked_products(rows: Sequence[np.ndarray], A: np.ndarray, model: Any = None) -> np.ndarray:
    """``V @ A`` (m, d) for a few vectors ``rows`` (each (n,)) stacked as ``V``, and ``A (n, d)``.

    One pass over ``A``: the runtime's ``row_products`` (``model``'s runtime
    where it has one, so its worker threads serve every pass of a solve; else
    the package's own copy).
    """
    products = getattr(runtime_of(model), "row_products", None) if model is not None else None
    return (products or static_runtime.row_products)(rows, A)


def check_data_names(model: ModuleType, data: dict[str, Any]) -> tuple[ParameterInfo, ...]:
    """The model's parameters, after checking that ``data`` names ``A`` and exactly those.

    Raises ``ValueError`` naming unknown or missing arguments.
    """
    info = parameters(model)
    names = [p.name for p in info]
    unknown = sorted(set(data) - {"A", *names})
    if unknown:
        raise ValueError(
            f"unknown data argument(s) {unknown}; {model.__name__} takes A and {names}"
        )
    if "A" not in data:
        raise ValueError("missing data argument 'A' (the (n, d) matrix)")
    missing = [p.name for p in info if p.name not in data and p.required]
    if missing:
        raise ValueError(f"missing data argument(s) {missing} for {model.__name__}")
    return info


def split_data(model: ModuleType, data: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """Split ``data`` into ``A`` and the model's parameters, naming any bad key.

    Required parameters are those without a default. Arrays become float64
    and scalars floats; complex, string or non-numeric values are a
    ``ValueError`` naming the argument (never silently converted).
    """
    info = check_data_names(model, data)
    A = real_array("A", data["A"], ndim=2)
    params: dict[str, Any] = {}
    for p in info:
        if p.name not in data:
            continue
        if p.kind == "scalar":
            params[p.name] = real_scalar(p.name, data[p.name])
        else:
            params[p.name] = real_array(p.name, data[p.name])
    return A, params
