"""One model on fixed data, evaluated so that ``A @ x`` is computed once per point.

Every z-space function of a generated module depends on ``(x, A)`` only through
the logits ``z = A x`` (DESIGN section 2.3: the loss is ``sum_j phi(f_j, z_j, ...)``).
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
        model.loss(x0, A, **params, validate=True)
        z0 = A @ x0
        self.via_logits = self._logits_shortcut_agrees(x0, z0)
        self.has_x_terms = self._detect_x_terms(x0)
        self._loss_offset = 0.0
        if self.via_logits and not self.has_x_terms:
            self._loss_offset = float(model.loss(x0, A, **params, validate=False)) - float(
                model.loss(_ONE, z0[:, None], **params, validate=False)
            )

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


def split_data(model: ModuleType, data: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """Split ``data`` into ``A`` and the model's parameters, naming any bad key.

    Required parameters are those of ``model.loss`` without a default.
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
    A = np.asarray(data["A"], dtype=float)
    params = {
        name: np.asarray(data[name], dtype=float) if np.ndim(data[name]) else data[name]
        for name in names
        if name in data
    }
    return A, params
