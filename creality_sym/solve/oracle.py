"""One model on fixed data, evaluated so that ``A @ x`` is computed once per point.

Every z-space function of a generated module depends on ``(x, A)`` only through
the logits ``z = A x`` (the loss is ``sum_j phi(f_j, z_j, ...)``).
The oracle therefore evaluates them on the ``(n, 1)`` matrix ``z[:, None]`` with
``x = [1.0]``: O(n) work instead of an O(n d) pass over ``A`` per call. This
shortcut is checked against a direct call once, at construction, and dropped
(direct calls throughout) if the two disagree.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

import numpy as np

from .inputs import real_array, real_scalar

_ONE = np.ones(1)


class Oracle:
    """Loss, gradient and Hessian pieces of ``model`` on data ``A`` and ``params``.

    ``A`` is ``(n, d)``; ``params`` maps the names in ``model.PARAMETERS`` to
    their values (vectors ``(n,)``, scalars). Methods take the point ``x (d,)``
    and its logits ``z = A x (n,)``.
    """

    def __init__(self, model: ModuleType, A: np.ndarray, params: dict[str, Any], x0: np.ndarray):
        self.model = model
        self.A = A
        self.params = params
        # Validate once, with the model's own rules; the loop runs with validate=False.
        loss0 = float(model.loss(x0, A, **params, validate=True))
        #: the logits ``A @ x0`` of the start
        self.z0 = A @ x0
        self.via_logits = self._logits_shortcut_agrees(x0, self.z0)
        self.has_x_terms = self._detect_x_terms(x0)
        self._loss_offset = 0.0
        if self.via_logits and not self.has_x_terms:
            short = float(model.loss(_ONE, self.z0[:, None], **params, validate=False))
            self._loss_offset = loss0 - short

    # -- construction checks -------------------------------------------------

    def _logits_shortcut_agrees(self, x0: np.ndarray, z0: np.ndarray) -> bool:
        direct = self.model.z_gradient(x0, self.A, **self.params, validate=False)
        short = self.model.z_gradient(_ONE, z0[:, None], **self.params, validate=False)
        scale = float(np.max(np.abs(direct), initial=0.0)) + np.finfo(float).tiny
        return bool(np.all(np.isfinite(short)) and np.max(np.abs(direct - short)) <= 1e-10 * scale)

    def _detect_x_terms(self, x0: np.ndarray) -> bool:
        """True when the x-space part of the loss is not constant (checked at a random point)."""
        probe = x0 + np.random.default_rng(0).standard_normal(x0.shape)
        gx = self.model.x_gradient(probe, self.A, **self.params, validate=False)
        hx = self.model.x_hessian_diag(probe, self.A, **self.params, validate=False)
        return bool(np.any(gx != 0.0) or np.any(hx != 0.0))

    # -- evaluations -----------------------------------------------------------

    def _z_call(self, name: str, x: np.ndarray, z: np.ndarray) -> Any:
        fn = getattr(self.model, name)
        if self.via_logits:
            return fn(_ONE, z[:, None], **self.params, validate=False)
        return fn(x, self.A, **self.params, validate=False)

    def loss(self, x: np.ndarray, z: np.ndarray) -> float:
        """L(x), a float."""
        if self.via_logits and not self.has_x_terms:
            return float(self._z_call("loss", x, z)) + self._loss_offset
        return float(self.model.loss(x, self.A, **self.params, validate=False))

    def z_gradient(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``g (n,)`` with ``grad L = A^T g + x_gradient``."""
        return np.asarray(self._z_call("z_gradient", x, z), dtype=float)

    def z_hessian(self, x: np.ndarray, z: np.ndarray) -> Any:
        """The z-Hessian pieces ``(delta, p, f, c)`` of the model."""
        return self._z_call("z_hessian", x, z)

    def x_gradient(self, x: np.ndarray) -> np.ndarray:
        """``(d,)`` gradient of the x-space terms (zeros when there are none)."""
        if not self.has_x_terms:
            return np.zeros(x.shape[0])
        return np.asarray(self.model.x_gradient(x, self.A, **self.params, validate=False), float)

    def x_hessian_diag(self, x: np.ndarray) -> np.ndarray:
        """``(d,)`` Hessian diagonal of the x-space terms (zeros when there are none)."""
        if not self.has_x_terms:
            return np.zeros(x.shape[0])
        hx = self.model.x_hessian_diag(x, self.A, **self.params, validate=False)
        return np.asarray(hx, dtype=float)

    def hessian(self, x: np.ndarray) -> np.ndarray:
        """The model's structured ``(d, d)`` Hessian."""
        return np.asarray(self.model.hessian(x, self.A, **self.params, validate=False), float)

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """The model's own ``(d,)`` gradient (a direct call, used to certify the result)."""
        return np.asarray(self.model.gradient(x, self.A, **self.params, validate=False), float)


class HessianOperator:
    """``v -> (H v, A v)`` at a fixed point, from the z-Hessian pieces: O(n d) per product.

    ``H = A^T B A + diag(h)`` with ``B = diag(delta) - p f^T - f p^T + c f f^T``.
    As in the generated ``hvp``, ``u = A v`` is shifted by its entry at the
    dominant logit ``k`` (``B u = B (u - u_k 1) + u_k B 1``), which keeps the
    product accurate when ``f`` is nearly one-hot. Two passes over ``A`` per
    product and no recomputation of the softmax (the model's ``hvp`` redoes
    ``A x`` and the pieces on every call).

    Parameters
    ----------
    A : (n, d) array
    pieces : object with ``delta, p, f (n,)`` and ``c``
        The z-Hessian at the point (``model.z_hessian``).
    k : int
        Index of the largest logit.
    h : (d,) array
        Diagonal Hessian of the x-space terms.
    """

    def __init__(self, A: np.ndarray, pieces: Any, k: int, h: np.ndarray) -> None:
        self.A = A
        self.delta = np.asarray(pieces.delta, dtype=float)
        self.p = np.asarray(pieces.p, dtype=float)
        self.f = np.asarray(pieces.f, dtype=float)
        self.c = float(pieces.c)
        self.k = int(k)
        self.h = h
        self.has_h = bool(np.any(h != 0.0))
        n = A.shape[0]
        self._shifted = np.empty(n)
        self._y = np.empty(n)
        self._tmp = np.empty(n)
        self.ones = self._b_times(np.ones(n)).copy()
        self.products = 0

    def _b_times(self, u: np.ndarray) -> np.ndarray:
        """``B u`` into the operator's buffer (overwritten by the next call)."""
        fu = float(self.f @ u)
        pu = float(self.p @ u)
        y = np.multiply(self.delta, u, out=self._y)
        y -= np.multiply(fu, self.p, out=self._tmp)
        y += np.multiply(self.c * fu - pu, self.f, out=self._tmp)
        return y

    def __call__(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(H v (d,), A v (n,))`` for ``v (d,)``."""
        self.products += 1
        u = self.A @ v
        u_k = float(u[self.k])
        y = self._b_times(np.subtract(u, u_k, out=self._shifted))
        if u_k:
            y += np.multiply(u_k, self.ones, out=self._tmp)
        Hv = y @ self.A
        if self.has_h:
            Hv += self.h * v
        return Hv, u


#: rows per block of :func:`stacked_products` (about 32 MB of float64 rows)
_BLOCK_BYTES = 1 << 25


def stacked_products(V: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``V @ A`` for a few rows ``V (m, n)`` and ``A (n, d)``, in row blocks of ``A``.

    One pass over ``A``; BLAS's one-call product packs all of ``A`` first and
    is slower for ``m`` this small.
    """
    n, d = A.shape
    step = max(1, _BLOCK_BYTES // (8 * d))
    if n <= step:
        return V @ A
    out = V[:, :step] @ A[:step]
    for i in range(step, n, step):
        out += V[:, i : i + step] @ A[i : i + step]
    return out


def split_data(model: ModuleType, data: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """Split ``data`` into ``A`` and the model's parameters, naming any bad key.

    Required parameters are those of ``model.loss`` without a default. Arrays
    become float64 and scalars floats; complex, string or non-numeric values
    are a ``ValueError`` naming the argument (never silently converted).
    """
    names = tuple(model.PARAMETERS)
    unknown = sorted(set(data) - {"A", *names})
    if unknown:
        raise ValueError(
            f"unknown data argument(s) {unknown}; {model.__name__} takes A and {list(names)}"
        )
    if "A" not in data:
        raise ValueError("missing data argument 'A' (the (n, d) matrix)")
    signature = inspect.signature(model.loss).parameters
    missing = [
        name
        for name in names
        if name not in data
        and (name not in signature or signature[name].default is inspect.Parameter.empty)
    ]
    if missing:
        raise ValueError(f"missing data argument(s) {missing} for {model.__name__}")
    A = real_array("A", data["A"], ndim=2)
    rules = getattr(model, "RULES", {})
    params: dict[str, Any] = {}
    for name in names:
        if name not in data:
            continue
        kind = rules.get(name, ("vector" if np.ndim(data[name]) else "scalar",))[0]
        if kind == "scalar":
            params[name] = real_scalar(name, data[name])
        else:
            params[name] = real_array(name, data[name])
    return A, params
