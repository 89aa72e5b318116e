"""The assumption set of an audit: one spec's parameters, projection onto it.

The stated bounds assume ``||A||_2 <= R``, ``||x||_2 <= R``, ``||y||_2 <= R``
and ``R >= 1``; every parameter of the audited spec obeys its rule (a
probability vector lies on the simplex, a positive one is at least
:data:`W_FLOOR`) with entries at most ``w_max`` in size. A :class:`Space`
says which spec is audited and which scalars are searched (the trade-off
scalar, in ``[0, gamma_max]``, unless ``--param`` fixes it) or held fixed
(``--param``, the spec's default, or a chosen value). :func:`project` maps
arbitrary arrays onto the set, so every instance the auditor evaluates
satisfies the assumptions by construction.

The instances are :class:`creality_sym.instance.Instance` objects.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from creality_sym.instance import (
    DEFAULT_SPEC,
    PACKAGE,
    Instance,
    load_model,
    resolve_scalars,
    spec_names,
)

__all__ = [
    "DEFAULT_MODEL",
    "EXP_LOGIT_LIMIT",
    "W_FLOOR",
    "Instance",
    "Space",
    "default_model",
    "resolve_model",
    "project",
    "project_simplex",
    "project_ball",
    "project_vector",
    "spectral_norm",
    "min_eig",
    "max_eig",
    "violates_assumptions",
]

#: the model module used when none is given
DEFAULT_MODEL = f"{PACKAGE}.{DEFAULT_SPEC}"

#: entries of positive vectors are kept at or above this
W_FLOOR = 1e-6
#: the smallest value of a searched positive scalar
SCALAR_FLOOR = 1e-6
#: largest logit of a spec using the unnormalized exp(z) (USES_EXP): beyond it, outside its domain
EXP_LOGIT_LIMIT = 354.0


def default_model() -> ModuleType:
    """Import the generated model for the default spec (lazily)."""
    return load_model(None)


def resolve_model(model: ModuleType | str | None) -> ModuleType:
    """A model module from a module, a spec name, a module name, or ``None`` (the default).

    A name that is not an installed spec is imported as a module.
    """
    if isinstance(model, str) and model not in spec_names():
        try:
            return importlib.import_module(model)
        except ImportError as exc:
            raise ValueError(f"cannot import {model!r} ({exc})") from exc
    return load_model(model)


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
class Space:
    """The audited spec and its scalars: ``fixed`` values and ``searched`` names.

    ``notes`` say which fixed values were chosen because the spec gives no
    default. Build one with :meth:`make`.
    """

    model: ModuleType
    fixed: Mapping[str, float]
    searched: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @classmethod
    def make(
        cls, model: ModuleType | str | None = None, params: Mapping[str, float] | None = None
    ) -> Space:
        """The space of ``model`` (a module, spec or dotted name; None: the default spec).

        ``params`` fixes scalars by name; the trade-off scalar is searched
        unless fixed there. ``ValueError`` (one line, naming the parameter)
        for an unknown name, a vector, a value breaking its rule, or values
        where the spec is singular.
        """
        mod = resolve_model(model)
        given = dict(params or {})
        trade = getattr(mod, "TRADEOFF", None)
        values, notes = resolve_scalars(mod, given, tradeoff=0.5)
        searched = (trade,) if trade and trade not in given else ()
        fixed = {k: v for k, v in values.items() if k not in searched}
        return cls(mod, fixed, searched, tuple(notes))

    @property
    def spec(self) -> str:
        """The spec's name."""
        return str(getattr(self.model, "SPEC_NAME", getattr(self.model, "__name__", "")))

    @property
    def terms(self) -> tuple[str, ...]:
        return tuple(self.model.TERMS)

    def parameters(self) -> tuple[Any, ...]:
        """The model's ``PARAMETERS`` records."""
        return tuple(self.model.PARAMETERS)

    def vectors(self, shape: str | None = None) -> list[Any]:
        """Vector parameters (of ``shape`` ``"n"`` or ``"d"`` when given)."""
        return [
            p
            for p in self.parameters()
            if p.kind == "vector" and (shape is None or p.shape == shape)
        ]

    def scalar_range(self, name: str, gamma_max: float) -> tuple[float, float]:
        """``[lo, hi]`` of a searched scalar by its rule."""
        rule = next(p.rule for p in self.parameters() if p.name == name)
        if rule == "positive":
            return SCALAR_FLOOR, max(gamma_max, SCALAR_FLOOR)
        if rule == "nonnegative":
            return 0.0, gamma_max
        return -gamma_max, gamma_max

    def outside(self, inst: Instance) -> bool:
        """Whether ``inst`` lies outside the model's domain (logits beyond
        :data:`EXP_LOGIT_LIMIT` for a spec using the unnormalized ``exp(z)``)."""
        if not getattr(self.model, "USES_EXP", False):
            return False
        top = float(np.max(inst.A @ inst.x))
        if inst.y is not None:
            top = max(top, float(np.max(inst.A @ inst.y)))
        return not top <= EXP_LOGIT_LIMIT

    def describe(self, gamma_max: float) -> str:
        """The scalars in words: ``"gamma 0-4, q = 2"``."""
        parts = []
        for name in self.searched:
            lo, hi = self.scalar_range(name, gamma_max)
            parts.append(f"{name} {lo:g}" if lo == hi else f"{name} {lo:g}-{hi:g}")
        parts += [f"{name} = {value:g}" for name, value in self.fixed.items()]
        return ", ".join(parts)


@functools.lru_cache(maxsize=16)
def _default_space(name: str) -> Space:
    return Space.make(name)


def space_of(model: Any = None) -> Space:
    """The default :class:`Space` of a model (a :class:`Space` is returned as it is)."""
    if isinstance(model, Space):
        return model
    if model is None or isinstance(model, str):
        return _default_space(model or DEFAULT_SPEC)
    return Space.make(model)


def project_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of ``v (n,)`` onto the probability simplex."""
    v = np.asarray(v, dtype=np.float64)
    if v.size == 0:
        raise ValueError("a probability vector must have at least one entry")
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


def project_vector(rule: str, v: np.ndarray, w_max: float) -> np.ndarray:
    """``v`` mapped onto its rule: the simplex, ``[W_FLOOR, w_max]``, ``[0, w_max]`` or
    ``[-w_max, w_max]`` (real)."""
    if rule == "probability":
        return project_simplex(v)
    if rule == "positive":
        return np.clip(np.abs(v), W_FLOOR, max(w_max, W_FLOOR))
    if rule == "nonnegative":
        return np.clip(np.abs(v), 0.0, w_max)
    return np.clip(v, -w_max, w_max)


def project(
    A: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    params: Mapping[str, Any],
    R: float,
    *,
    space: Space | ModuleType | str | None = None,
    R_max: float = np.inf,
    gamma_max: float = np.inf,
    w_max: float = np.inf,
) -> Instance:
    """Map arrays onto the assumption set and return the :class:`Instance`.

    ``R`` is clipped to ``[1, R_max]``, ``A`` scaled into ``||A||_2 <= R``,
    ``x, y (d,)`` into the ball of radius ``R``, every vector parameter of
    ``params`` onto its rule (:func:`project_vector`), fixed scalars set to
    their values and searched ones clipped to their range
    (:meth:`Space.scalar_range`). ``space``: the :class:`Space` (or a model;
    None: the default spec).
    """
    space = space_of(space)
    A = np.array(A, dtype=np.float64, ndmin=2)
    n, d = A.shape
    if n < 1 or d < 1:
        raise ValueError(f"A must be (n, d) with n, d >= 1; got shape {A.shape}")
    x = np.array(x, dtype=np.float64).reshape(-1)
    y = np.array(y, dtype=np.float64).reshape(-1)
    if x.shape != (d,) or y.shape != (d,):
        raise ValueError(f"x and y must have shape ({d},); got {x.shape} and {y.shape}")
    for name, arr in (("A", A), ("x", x), ("y", y)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite")
    out: dict[str, Any] = {}
    for p in space.parameters():
        if p.kind == "scalar":
            if p.name in space.fixed:
                out[p.name] = float(space.fixed[p.name])
                continue
            lo, hi = space.scalar_range(p.name, gamma_max)
            value = float(params.get(p.name, lo))
            out[p.name] = float(min(max(value, lo), hi)) if np.isfinite(value) else lo
            continue
        if p.name not in params:
            raise ValueError(f"{p.name} is missing (a vector of spec {space.spec})")
        size = n if p.shape == "n" else d
        v = np.array(params[p.name], dtype=np.float64).reshape(-1)
        if v.shape != (size,):
            raise ValueError(f"{p.name} must have shape ({size},); got {v.shape}")
        if p.rule != "probability" and not np.all(np.isfinite(v)):
            raise ValueError(f"{p.name} must be finite")
        out[p.name] = project_vector(p.rule, v, w_max)
    R = float(min(max(float(R), 1.0), R_max)) if np.isfinite(R) else 1.0
    norm_A = spectral_norm(A)
    if norm_A > R:
        A = A * (R / norm_A)
    return Instance(
        A=A,
        x=project_ball(x, R),
        y=project_ball(y, R),
        params=out,
        model=space.model,
        R=R,
    )


def violates_assumptions(
    inst: Instance, space: Space | None = None, *, rtol: float = 1e-9
) -> list[str]:
    """The assumptions ``inst`` breaks (empty when it is admissible)."""
    space = space_of(inst.model if space is None else space)
    bad = []
    tol = 1.0 + rtol
    if not inst.R >= 1.0:
        bad.append(f"R >= 1 (R={inst.R})")
    if spectral_norm(inst.A) > inst.R * tol:
        bad.append("||A||_2 <= R")
    if np.linalg.norm(inst.x) > inst.R * tol:
        bad.append("||x||_2 <= R")
    if inst.y is not None and np.linalg.norm(inst.y) > inst.R * tol:
        bad.append("||y||_2 <= R")
    for p in space.parameters():
        value = inst.params.get(p.name)
        if value is None:
            bad.append(f"{p.name} given")
            continue
        if p.kind == "scalar":
            if p.name in space.fixed and float(value) != float(space.fixed[p.name]):
                bad.append(f"{p.name} = {space.fixed[p.name]:g}")
            elif p.rule == "nonnegative" and not float(value) >= 0:
                bad.append(f"{p.name} >= 0")
            elif p.rule == "positive" and not float(value) > 0:
                bad.append(f"{p.name} > 0")
            continue
        v = np.asarray(value)
        if p.rule == "probability" and (np.any(v < 0) or abs(float(np.sum(v)) - 1.0) > 1e-9):
            bad.append(f"{p.name} a probability vector")
        elif p.rule == "positive" and not np.all(v > 0):
            bad.append(f"{p.name} > 0")
        elif p.rule == "nonnegative" and not np.all(v >= 0):
            bad.append(f"{p.name} >= 0")
    return bad
