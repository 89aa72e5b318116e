"""Audit instances: one point of the assumption set, and projection onto it.

The assumption set of the stated bounds is ``||A||_2 <= R``, ``||x||_2 <= R``,
``||y||_2 <= R``, ``b`` a probability vector, ``w > 0``, ``gamma >= 0`` and
``R >= 1``. :func:`project` maps arbitrary arrays onto it, so every instance
the auditor evaluates satisfies the assumptions by construction.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_MODEL",
    "Instance",
    "default_model",
    "project",
    "project_simplex",
    "spectral_norm",
    "min_eig",
    "max_eig",
]

#: the model module used when none is given
DEFAULT_MODEL = "creality_generated.creativity_reality"

#: entries of ``w`` are kept at or above this (``w > 0``)
W_FLOOR = 1e-6


def default_model() -> ModuleType:
    """Import the generated model for the default spec (lazily)."""
    return importlib.import_module(DEFAULT_MODEL)


def resolve_model(model: ModuleType | str | None) -> ModuleType:
    """A model module from a module, a dotted name, or ``None`` (the default)."""
    name = DEFAULT_MODEL if model is None else model
    if isinstance(name, str):
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(f"model: cannot import {name!r} ({exc})") from exc
    return name


def spectral_norm(M: np.ndarray) -> float:
    """``||M||_2`` of a small dense matrix (largest singular value)."""
    M = np.asarray(M, dtype=np.float64)
    if M.size == 0:
        return 0.0
    if M.shape[0] == M.shape[1] and np.array_equal(M, M.T):
        lam = np.linalg.eigvalsh(M)
        return float(max(-lam[0], lam[-1]))
    return float(np.linalg.svd(M, compute_uv=False)[0])


def min_eig(M: np.ndarray) -> float:
    """Smallest eigenvalue of a small symmetric matrix ``(k, k)``."""
    M = np.asarray(M, dtype=np.float64)
    return float(np.linalg.eigvalsh(0.5 * (M + M.T))[0])


def max_eig(M: np.ndarray) -> float:
    """Largest eigenvalue of a small symmetric matrix ``(k, k)``."""
    M = np.asarray(M, dtype=np.float64)
    return float(np.linalg.eigvalsh(0.5 * (M + M.T))[-1])


@dataclass(frozen=True, eq=False)
class Instance:
    """A point of the assumption set.

    ``A (n, d)``, ``x, y (d,)``, ``b, w (n,)``, scalars ``gamma`` and ``R``.
    The methods evaluate the model at a point (``x`` or ``y``) of this
    instance; matrices are dense ``(n, n)`` (audit instances are small).
    """

    A: np.ndarray
    x: np.ndarray
    y: np.ndarray
    b: np.ndarray
    w: np.ndarray
    gamma: float
    R: float
    model: Any = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return int(self.A.shape[0])

    @property
    def d(self) -> int:
        return int(self.A.shape[1])

    @property
    def _m(self) -> ModuleType:
        if self.model is None:
            object.__setattr__(self, "model", default_model())
        return self.model

    def _args(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        return self.A, self.b, self.w, self.gamma

    def z(self, x: np.ndarray) -> np.ndarray:
        """Logits ``A x`` ``(n,)``."""
        return self.A @ x

    def f(self, x: np.ndarray) -> np.ndarray:
        """Softmax probabilities ``(n,)``."""
        return np.asarray(self._m.probabilities(x, *self._args(), validate=False))

    def u(self, x: np.ndarray) -> np.ndarray:
        """``exp(A x)`` ``(n,)`` (no shift)."""
        return np.exp(self.A @ x)

    def alpha(self, x: np.ndarray) -> float:
        """``<u(x), 1>``."""
        return float(np.sum(self.u(x)))

    def loss(self, x: np.ndarray) -> float:
        """The total loss ``L(x)``."""
        return float(self._m.loss(x, *self._args(), validate=False))

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """``grad L (d,)``."""
        return np.asarray(self._m.gradient(x, *self._args(), validate=False))

    def hessian(self, x: np.ndarray) -> np.ndarray:
        """``hess L (d, d)``."""
        return np.asarray(self._m.hessian(x, *self._args(), validate=False))

    def z_hessian(self, x: np.ndarray, term: str | None = None) -> np.ndarray:
        """Dense z-Hessian ``(n, n)`` of one unweighted term (``None``: total)."""
        zh = self._m.z_hessian(x, *self._args(), term=term, validate=False)
        return np.asarray(zh.dense())

    def B_real(self, x: np.ndarray) -> np.ndarray:
        """The paper's ``B_real`` ``(n, n)``."""
        return self.z_hessian(x, "reality")

    def B_cre(self, x: np.ndarray) -> np.ndarray:
        """The paper's ``B_cre`` ``(n, n)``."""
        return self.z_hessian(x, "creativity")

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        """Softmax Jacobian ``J = diag(f) - f f^T`` ``(n, n)``."""
        f = self.f(x)
        return np.diag(f) - np.outer(f, f)

    def with_model(self, model: Any) -> Instance:
        return replace(self, model=model)

    def arrays(self) -> dict[str, np.ndarray]:
        """All fields as arrays (for ``.npz``), ``n`` and ``d`` included."""
        return {
            "A": self.A,
            "x": self.x,
            "y": self.y,
            "b": self.b,
            "w": self.w,
            "gamma": np.float64(self.gamma),
            "R": np.float64(self.R),
            "n": np.int64(self.n),
            "d": np.int64(self.d),
        }

    def describe(self, digits: int = 6) -> str:
        """A readable multi-line rendering of every field."""
        with np.printoptions(precision=digits, suppress=False, linewidth=100):
            rows = [
                f"n={self.n} d={self.d} R={self.R!r} gamma={self.gamma!r}",
                f"A=\n{self.A}",
                f"x={self.x}",
                f"y={self.y}",
                f"b={self.b}",
                f"w={self.w}",
            ]
        return "\n".join(rows)


def project_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of ``v (n,)`` onto the probability simplex."""
    v = np.asarray(v, dtype=np.float64)
    if v.size == 0:
        raise ValueError("b must have at least one entry")
    if v.min() >= 0.0 and abs(v.sum() - 1.0) <= 1e-15:
        return v
    if not np.all(np.isfinite(v)):
        v = np.where(np.isfinite(v), v, 0.0)
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    k = np.arange(1, v.size + 1)
    rho = int(np.nonzero(u - css / k > 0)[0][-1])
    p = np.maximum(v - css[rho] / (rho + 1), 0.0)
    return p / p.sum()


def project_ball(v: np.ndarray, radius: float) -> np.ndarray:
    """``v`` scaled into the ball of radius ``radius``."""
    nv = float(np.linalg.norm(v))
    return v * (radius / nv) if nv > radius else v


def project(
    A: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    b: np.ndarray,
    w: np.ndarray,
    gamma: float,
    R: float,
    *,
    R_max: float = np.inf,
    gamma_max: float = np.inf,
    w_max: float = np.inf,
    model: Any = None,
) -> Instance:
    """Map arrays onto the assumption set and return the :class:`Instance`.

    ``R`` is clipped to ``[1, R_max]``, ``A`` scaled into ``||A||_2 <= R``,
    ``x, y`` into the ball of radius ``R``, ``b`` projected on the simplex,
    ``w`` clipped to ``[1e-6, w_max]`` and ``gamma`` to ``[0, gamma_max]``.
    """
    A = np.array(A, dtype=np.float64, ndmin=2)
    n, d = A.shape
    if n < 1 or d < 1:
        raise ValueError(f"A must be (n, d) with n, d >= 1; got shape {A.shape}")
    x = np.array(x, dtype=np.float64).reshape(-1)
    y = np.array(y, dtype=np.float64).reshape(-1)
    if x.shape != (d,) or y.shape != (d,):
        raise ValueError(f"x and y must have shape ({d},); got {x.shape} and {y.shape}")
    b = np.array(b, dtype=np.float64).reshape(-1)
    w = np.array(w, dtype=np.float64).reshape(-1)
    if b.shape != (n,) or w.shape != (n,):
        raise ValueError(f"b and w must have shape ({n},); got {b.shape} and {w.shape}")
    for name, arr in (("A", A), ("x", x), ("y", y), ("w", w)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite")
    R = float(min(max(float(R), 1.0), R_max)) if np.isfinite(R) else 1.0
    gamma = float(min(max(float(gamma), 0.0), gamma_max)) if np.isfinite(gamma) else 0.0
    norm_A = spectral_norm(A)
    if norm_A > R:
        A = A * (R / norm_A)
    return Instance(
        A=A,
        x=project_ball(x, R),
        y=project_ball(y, R),
        b=project_simplex(b),
        w=np.clip(np.abs(w), W_FLOOR, w_max),
        gamma=gamma,
        R=R,
        model=model,
    )


def violates_assumptions(inst: Instance, *, rtol: float = 1e-9) -> list[str]:
    """The assumptions ``inst`` breaks (empty when it is admissible)."""
    bad = []
    tol = 1.0 + rtol
    if not inst.R >= 1.0:
        bad.append(f"R >= 1 (R={inst.R})")
    if spectral_norm(inst.A) > inst.R * tol:
        bad.append("||A||_2 <= R")
    if np.linalg.norm(inst.x) > inst.R * tol:
        bad.append("||x||_2 <= R")
    if np.linalg.norm(inst.y) > inst.R * tol:
        bad.append("||y||_2 <= R")
    if np.any(inst.b < 0) or abs(float(np.sum(inst.b)) - 1.0) > 1e-9:
        bad.append("b a probability vector")
    if not np.all(inst.w > 0):
        bad.append("w > 0")
    if not inst.gamma >= 0:
        bad.append("gamma >= 0")
    return bad
