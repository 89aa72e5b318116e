"""Run a bound's own callables on balls: the same code, rigorous helpers.

:func:`rigorous` returns a copy of a plain Python callable (a bound's ``lhs``,
``rhs`` or ``assume``) whose global names are rebound, recursively through
the helper functions it calls:

* ``np`` / ``numpy`` -> :data:`NUMPY`: numpy itself, except the functions that
  would compare or round balls (``min``, ``max``, ``minimum``, ``maximum``,
  ``clip``, ``exp``/``log``/``sqrt``/... of floats, ``linalg.norm``,
  ``linalg.svd(compute_uv=False)``, ``linalg.eigvalsh``), which become
  enclosures; ``np.pi`` and ``np.e`` are balls;
* ``math`` -> :data:`MATH` (enclosures of ``exp``, ``log``, ``sqrt``, ...);
* ``float`` -> keeps a ball a ball; ``min`` / ``max`` of balls -> enclosures;
* the audit helpers ``spectral_norm``, ``min_eig``, ``max_eig`` -> the rigorous
  ones of :mod:`creality_sym.audit.enclose`.

The instance's own methods (``f``, ``B_cre``, ``hessian``, ...) already return
balls (:mod:`creality_sym.audit.interval`). Whatever is left over either works
on object arrays of balls or fails loudly: a ball compared or converted to
float when the answer is not certain raises
:class:`~creality_sym.codegen.interval.balls.Undecided`.
"""

from __future__ import annotations

import builtins
import functools
import math
import sys
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from creality_sym.audit import enclose, instance
from creality_sym.codegen.interval import runtime
from creality_sym.codegen.interval.balls import Undecided, ball, is_ball

__all__ = ["rigorous", "NUMPY", "MATH", "as_value"]


def _has_balls(value: Any) -> bool:
    return enclose.contains_balls(value)


def _ballify(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        value = np.asarray(value, dtype=object)
    return runtime.asballs(value)


def _unary(name: str, fallback: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def fn(value: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:  # out=, where=, ...: not for balls
            if _has_balls(value):
                raise Undecided(f"{name}(...) with extra arguments has no enclosure here")
            return fallback(value, *args, **kwargs)
        return runtime.elementwise(lambda v: getattr(v, name)(), _ballify(value))

    fn.__name__ = name
    return fn


def _reduce(pick: Callable[[Any], Any], fallback: Callable[..., Any]) -> Callable[..., Any]:
    def fn(a: Any, axis: Any = None, **kwargs: Any) -> Any:
        if not _has_balls(a):
            return fallback(a, axis=axis, **kwargs)
        if kwargs:
            raise Undecided("min/max with extra arguments has no enclosure here")
        arr = np.asarray(a, dtype=object)
        if axis is None:
            return pick(arr.flat)
        moved = np.moveaxis(arr, axis, -1)
        out = np.empty(moved.shape[:-1], dtype=object)
        for index in np.ndindex(out.shape):
            out[index] = pick(moved[index])
        return out

    return fn


def _binary(pick: str, fallback: Callable[..., Any]) -> Callable[..., Any]:
    def fn(a: Any, b: Any, *args: Any, **kwargs: Any) -> Any:
        if not (_has_balls(a) or _has_balls(b)):
            return fallback(a, b, *args, **kwargs)
        if args or kwargs:
            raise Undecided("maximum/minimum with extra arguments has no enclosure here")
        pairs = np.broadcast(np.asarray(a, dtype=object), np.asarray(b, dtype=object))
        out = np.array([getattr(ball(x), pick)(y) for x, y in pairs], dtype=object)
        out = out.reshape(pairs.shape)
        return out if out.shape else out[()]

    return fn


def _clip(a: Any, lo: Any, hi: Any, **kwargs: Any) -> Any:
    if not (_has_balls(a) or _has_balls(lo) or _has_balls(hi)):
        return np.clip(a, lo, hi, **kwargs)
    out = _binary("bmax", np.maximum)(a, lo) if lo is not None else a
    return _binary("bmin", np.minimum)(out, hi) if hi is not None else out


def _square(value: Any) -> Any:
    if not _has_balls(value):
        return np.square(value)
    return runtime.elementwise(lambda v: v**2, value)


def _isfinite(value: Any) -> Any:
    if not _has_balls(value):
        return np.isfinite(value)
    out = runtime.elementwise(lambda v: v.finite(), value)
    return out.astype(bool) if isinstance(out, np.ndarray) else out


def _norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A002
    if not _has_balls(x):
        return np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)
    if axis is not None or keepdims:
        raise Undecided("linalg.norm with axis= or keepdims= has no enclosure here")
    a = np.asarray(x, dtype=object)
    if a.ndim == 1:
        if ord in (None, 2):
            return enclose.vector_norm(a)
        if ord == 1:
            return enclose.ball_sum(abs(v) for v in a)
        if ord in (np.inf, math.inf):
            return enclose.ball_max(abs(v) for v in a)
    elif a.ndim == 2:
        if ord in (None, "fro"):
            return enclose.frobenius(a)
        if ord == 2:
            return enclose.spectral_norm(a)
        if ord == -2:
            return enclose.singular_values(a)[-1]
        if ord == 1:
            return enclose.ball_max(enclose.ball_sum(abs(v) for v in col) for col in a.T)
        if ord in (np.inf, math.inf):
            return enclose.ball_max(enclose.ball_sum(abs(v) for v in row) for row in a)
    raise Undecided(f"linalg.norm(ord={ord!r}) of a {a.ndim}-d array has no enclosure here")


def _svd(a: Any, full_matrices: bool = True, compute_uv: bool = True, **kwargs: Any) -> Any:
    if not _has_balls(a):
        return np.linalg.svd(a, full_matrices=full_matrices, compute_uv=compute_uv, **kwargs)
    if compute_uv:
        raise Undecided("singular vectors have no enclosure here (use compute_uv=False)")
    return np.array(enclose.singular_values(a), dtype=object)


def _eigvalsh(a: Any, UPLO: str = "L") -> Any:  # noqa: N803 - numpy's name
    if not _has_balls(a):
        return np.linalg.eigvalsh(a, UPLO=UPLO)
    return np.array(enclose.sym_eigenvalues(a), dtype=object)


class _Namespace(types.ModuleType):
    """A module that answers from ``overrides`` first, then from ``base``."""

    def __init__(self, name: str, base: Any, overrides: dict[str, Any]) -> None:
        super().__init__(name)
        self.__dict__.update(overrides)
        self._base = base

    def __getattr__(self, name: str) -> Any:
        if name in _CONSTANTS:  # made at the current precision and backend
            return _CONSTANTS[name]()
        return getattr(self._base, name)


_CONSTANTS: dict[str, Callable[[], Any]] = {
    "pi": lambda: type(ball(0)).pi(),
    "e": lambda: type(ball(0)).e(),
}


_UNARY_NAMES = ("exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "sinh", "cosh")
_UNARY_NAMES += ("tanh",)
_NUMPY_UNARY = {"arctan": "atan", "arcsin": "asin", "arccos": "acos", "arcsinh": "asinh"}

LINALG = _Namespace(
    "numpy.linalg (balls)", np.linalg, {"norm": _norm, "svd": _svd, "eigvalsh": _eigvalsh}
)
_numpy_overrides: dict[str, Any] = {
    "min": _reduce(enclose.ball_min, np.min),
    "amin": _reduce(enclose.ball_min, np.min),
    "max": _reduce(enclose.ball_max, np.max),
    "amax": _reduce(enclose.ball_max, np.max),
    "minimum": _binary("bmin", np.minimum),
    "maximum": _binary("bmax", np.maximum),
    "fmin": _binary("bmin", np.fmin),
    "fmax": _binary("bmax", np.fmax),
    "clip": _clip,
    "square": _square,
    "isfinite": _isfinite,
    "linalg": LINALG,
}
for _name in _UNARY_NAMES:
    _numpy_overrides[_name] = _unary(_name, getattr(np, _name))
for _name, _method in _NUMPY_UNARY.items():
    _numpy_overrides[_name] = _unary(_method, getattr(np, _name))
#: numpy with enclosures where a ball would otherwise be compared or rounded
NUMPY = _Namespace("numpy (balls)", np, _numpy_overrides)


def _math_unary(name: str) -> Callable[[Any], Any]:
    def fn(value: Any) -> Any:
        return getattr(ball(value), name)()

    fn.__name__ = name
    return fn


def _math_log(value: Any, base: Any = None) -> Any:
    out = ball(value).log()
    return out if base is None else out / ball(base).log()


_math_overrides: dict[str, Any] = {
    name: _math_unary(name)
    for name in ("exp", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "atan", "asin")
    + ("acos", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh")
}
_math_overrides |= {
    "log": _math_log,
    "log2": lambda v: ball(v).log() / ball(2).log(),
    "log10": lambda v: ball(v).log() / ball(10).log(),
    "pow": lambda a, b: ball(a) ** b,
    "fabs": lambda v: abs(ball(v)),
    "hypot": lambda *vs: enclose.vector_norm(np.array([ball(v) for v in vs], dtype=object)),
    "isfinite": lambda v: ball(v).finite() if is_ball(v) else math.isfinite(v),
}
#: math with enclosures
MATH = _Namespace("math (balls)", math, _math_overrides)


class _FloatType(type):
    """``isinstance(v, float)`` keeps its meaning under the rebound name."""

    def __instancecheck__(cls, value: Any) -> bool:
        return isinstance(value, builtins.float)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, builtins.float)


class _Float(float, metaclass=_FloatType):
    """``float`` that leaves balls (and 0-d arrays of them) as they are."""

    def __new__(cls, value: Any = 0.0) -> Any:  # type: ignore[misc]
        if is_ball(value):
            return value
        if isinstance(value, np.ndarray) and value.shape == () and is_ball(value[()]):
            return value[()]
        return float(value)


def _extremum(pick: Callable[[Any], Any], plain: Callable[..., Any]) -> Callable[..., Any]:
    def fn(*args: Any, **kwargs: Any) -> Any:
        items = list(args[0]) if len(args) == 1 else list(args)
        if kwargs or not any(is_ball(v) for v in items):
            return plain(*args, **kwargs)
        return pick(items)

    return fn


BUILTINS: dict[str, Any] = {
    "float": _Float,
    "min": _extremum(enclose.ball_min, builtins.min),
    "max": _extremum(enclose.ball_max, builtins.max),
}

#: objects replaced wherever a rebound function refers to them
REPLACE: dict[int, Any] = {
    id(np): NUMPY,
    id(np.linalg): LINALG,
    id(math): MATH,
    id(instance.spectral_norm): enclose.spectral_norm,
    id(instance.min_eig): enclose.min_eig,
    id(instance.max_eig): enclose.max_eig,
}
for _name, _value in _numpy_overrides.items():
    if hasattr(np, _name) and callable(getattr(np, _name)):
        REPLACE.setdefault(id(getattr(np, _name)), _value)
for _name in ("norm", "svd", "eigvalsh"):
    REPLACE[id(getattr(np.linalg, _name))] = getattr(LINALG, _name)
for _name, _value in _math_overrides.items():
    if callable(getattr(math, _name, None)):
        REPLACE[id(getattr(math, _name))] = _value

#: packages whose functions are never rebound (their own code is not the bound's)
_LIBRARIES = {"numpy", "scipy", "sympy", "flint", "mpmath", "hypothesis", "creality_sym"}


def _is_library(fn: types.FunctionType) -> bool:
    root = (fn.__module__ or "").split(".")[0]
    return root in _LIBRARIES or root in sys.stdlib_module_names


def _names(code: types.CodeType) -> set[str]:
    out = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out |= _names(const)
    return out


def _translate(value: Any, memo: dict[int, Any]) -> Any:
    if isinstance(
        value, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, np.ufunc)
    ):
        replaced = REPLACE.get(id(value))
        if replaced is not None:
            return replaced
    if isinstance(value, types.FunctionType):
        return _rebind(value, memo)
    if isinstance(value, functools.partial):
        func = _translate(value.func, memo)
        return functools.partial(func, *value.args, **value.keywords)
    return value


def _rebind(fn: types.FunctionType, memo: dict[int, Any]) -> Any:
    if id(fn) in memo:
        return memo[id(fn)]
    if _is_library(fn):
        return fn
    scope = dict(fn.__globals__)
    closure = None
    if fn.__closure__:
        closure = tuple(types.CellType() for _ in fn.__closure__)
    new = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, closure)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__qualname__ = fn.__qualname__
    memo[id(fn)] = new
    for name in _names(fn.__code__):
        if name in scope:
            scope[name] = _translate(scope[name], memo)
        elif name in BUILTINS:
            scope[name] = BUILTINS[name]
    if fn.__closure__ and closure is not None:
        for cell, old in zip(closure, fn.__closure__, strict=True):
            try:
                cell.cell_contents = _translate(old.cell_contents, memo)
            except ValueError:  # an empty cell (a name assigned later)
                pass
    return new


def rigorous(fn: Callable[..., Any] | None) -> Callable[..., Any] | None:
    """``fn`` with its globals (and its helpers' globals) rebound for balls."""
    if fn is None:
        return None
    return _translate(fn, {})


def as_value(value: Any, what: str) -> Any:
    """A callable's result as one ball: balls, ints, floats (exact), 0-d arrays."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if is_ball(value):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise TypeError(f"{what} returned {type(value).__name__} {shown}, not a real number")
    if isinstance(value, complex) or np.iscomplexobj(value):
        raise TypeError(f"{what} returned a complex number")
    return ball(value)
