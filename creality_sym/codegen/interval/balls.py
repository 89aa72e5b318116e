"""Strict balls: rigorous enclosures of real numbers that refuse to be rounded silently.

Two backends hold the same interface:

* ``flint`` (the default): :class:`ArbBall`, a subclass of ``flint.arb`` (python-flint's
  midpoint-radius balls with rigorous error bounds), so arrays of them are numpy
  object arrays of ``flint.arb`` balls;
* ``mpmath`` (the fallback when python-flint is missing, or forced with
  ``CREALITY_INTERVAL_BACKEND=mpmath``): :class:`IvBall`, a wrapper of
  ``mpmath.iv`` intervals.

Arithmetic with Python or numpy numbers is exact in the inputs (every float64 is
a ball of radius zero). What would silently lose rigour raises :class:`Undecided`
instead: a comparison of overlapping balls (``<``, ``<=``, ``==``, ...: certain
answers only), ``float()``/``int()``/``bool()`` of a ball that is not one exact
number. So code written for floats either runs rigorously on balls or stops.
"""

from __future__ import annotations

import contextlib
import decimal
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from creality_sym.codegen.interval.core import (
    NUMPY_ALIASES,
    UNARY,
    Undecided,
    check_number,
    plain,
)

__all__ = [
    "Undecided",
    "Ball",
    "backend",
    "set_backend",
    "use_backend",
    "precision",
    "ball",
    "interval",
    "is_ball",
    "lower",
    "upper",
    "describe",
    "BACKENDS",
]


try:  # pragma: no branch - exercised in both configurations by the tests
    import flint as _flint
except ImportError:  # pragma: no cover - python-flint is a dependency
    _flint = None


if _flint is not None:
    _arb = _flint.arb

    class ArbBall(_arb):
        """A ``flint.arb`` ball whose comparisons and conversions are strict."""

        __slots__ = ()
        backend = "flint"

        # --- construction
        @classmethod
        def exact(cls, value: Any) -> ArbBall:
            value = plain(value)
            if isinstance(value, ArbBall):
                return value
            if isinstance(value, _arb):
                return cls(value)
            check_number(value)
            return cls(value)

        @classmethod
        def between(cls, lo: float, hi: float) -> ArbBall:
            """A ball containing ``[lo, hi]`` (two float64 endpoints)."""
            if lo == hi:
                return cls(float(lo))
            return cls(_arb(float(lo)).union(_arb(float(hi))))

        @classmethod
        def rational(cls, p: int, q: int) -> ArbBall:
            return cls(_arb(p) / q)

        @classmethod
        def pi(cls) -> ArbBall:
            return cls(_arb.pi())

        @classmethod
        def e(cls) -> ArbBall:
            return cls(_arb.const_e())

        # --- queries
        def flo(self) -> float:
            """A float64 at or below every point of the ball (-inf when unbounded)."""
            return _float_bound(self, _arb.lower, -math.inf)

        def fhi(self) -> float:
            """A float64 at or above every point of the ball (+inf when unbounded)."""
            return _float_bound(self, _arb.upper, math.inf)

        def finite(self) -> bool:
            return bool(_arb.is_finite(self))

        def exact_value(self) -> float | None:
            if not (_arb.is_exact(self) and _arb.is_finite(self)):
                return None
            f = _arb.__float__(self)
            return f if _arb.__eq__(_arb(f), self) else None

        # --- lattice operations (rigorous)
        def hull(self, other: Any) -> ArbBall:
            return ArbBall(_arb.union(self, _arb(ball(other))))

        def bmax(self, other: Any) -> ArbBall:
            return ArbBall(_arb.max(self, _arb(ball(other))))

        def bmin(self, other: Any) -> ArbBall:
            return ArbBall(_arb.min(self, _arb(ball(other))))

        def nonneg(self) -> ArbBall:
            """The ball meet ``[0, inf)`` (for quantities known to be >= 0)."""
            return ArbBall(_arb.nonnegative_part(self))

        def text(self, digits: int = 6) -> str:
            if not self.finite():
                return "[unbounded]"
            return _arb.str(self, digits, radius=True)

    def _float_bound(x: Any, end: Callable[[Any], Any], fallback: float) -> float:
        if not _arb.is_finite(x):
            return fallback
        e = end(x)
        v = float(_arb.__float__(_arb.mid(e)))
        below = fallback < 0
        for _ in range(8):  # the endpoint's own rounding and the float conversion
            if (_arb.__le__ if below else _arb.__ge__)(_arb(v), e):
                return v
            v = math.nextafter(v, fallback)
        return fallback

    def _arb_binary(name: str) -> Callable[[Any, Any], Any]:
        base = getattr(_arb, name)

        def op(self: Any, other: Any) -> Any:
            if isinstance(other, (np.ndarray, IvBall)):
                return NotImplemented
            result = base(self, plain(other))
            return result if result is NotImplemented else ArbBall(result)

        op.__name__ = name
        return op

    for _name in ("add", "sub", "mul", "truediv"):
        for _dunder in (f"__{_name}__", f"__r{_name}__"):
            setattr(ArbBall, _dunder, _arb_binary(_dunder))

    def _arb_unary(name: str) -> Callable[[Any], Any]:
        base = getattr(_arb, name)

        def op(self: Any) -> Any:
            return ArbBall(base(self))

        op.__name__ = name
        return op

    for _name in UNARY:
        setattr(ArbBall, _name, _arb_unary(_name))
    ArbBall.__neg__ = _arb_unary("__neg__")  # type: ignore[method-assign]
    ArbBall.__pos__ = _arb_unary("__pos__")  # type: ignore[method-assign]
    ArbBall.__abs__ = lambda self: ArbBall(_arb.__abs__(self)).nonneg()  # type: ignore[method-assign]

    def _arb_real_power(base: Any, exponent: Any) -> Any:
        return ArbBall(_arb.__pow__(base, exponent))

    def _arb_compare(a: Any, b: Any) -> tuple[bool, bool, bool]:
        """(certainly a < b, certainly a > b, certainly a == b)."""
        x, y = _arb(a), _arb(b)
        return _arb.__lt__(x, y), _arb.__gt__(x, y), _arb.__eq__(x, y)

    _BALL_TYPES: tuple[type, ...] = (_arb,)
else:  # pragma: no cover
    ArbBall = None  # type: ignore[assignment,misc]
    _BALL_TYPES = ()

from mpmath import iv as _iv  # noqa: E402 - the fallback is always importable

from creality_sym.codegen.interval.ivballs import IvBall, iv_compare, iv_real_power  # noqa: E402

# ------------------------------------------------------------------ shared strict behaviour


def _power(self: Any, exponent: Any) -> Any:
    """Integer powers by squaring (``x**2 >= 0`` even when ``x`` straddles 0); real ones
    through the backend (a base that may be negative gives an unbounded ball)."""
    exponent = plain(exponent)
    if isinstance(exponent, int) and not isinstance(exponent, bool):
        if exponent < 0:
            return 1 / _power(self, -exponent)
        result: Any = type(self).exact(1)
        base = self
        k = exponent
        while k:
            if k & 1:
                result = result * base
            k >>= 1
            if k:
                base = (base * base).nonneg()
        return result.nonneg() if exponent % 2 == 0 else result
    if isinstance(exponent, np.ndarray):
        return NotImplemented
    if type(self) is IvBall:
        return iv_real_power(self, exponent)
    return _arb_real_power(self, exponent)


def _rpower(self: Any, base: Any) -> Any:
    return (
        _power(type(self).exact(base), self) if not isinstance(base, np.ndarray) else NotImplemented
    )


def _comparison(symbol: str) -> Callable[[Any, Any], Any]:
    def op(self: Any, other: Any) -> Any:
        if isinstance(other, np.ndarray):
            return NotImplemented
        other = plain(other)
        if not is_ball(other) and not isinstance(other, (int, float)):
            return NotImplemented
        compare = iv_compare if type(self) is IvBall else _arb_compare
        lt, gt, eq = compare(self, other)
        answers = {
            "<": (lt, gt or eq),
            "<=": (lt or eq, gt),
            ">": (gt, lt or eq),
            ">=": (gt or eq, lt),
            "==": (eq, lt or gt),
            "!=": (lt or gt, eq),
        }
        yes, no = answers[symbol]
        if yes:
            return True
        if no:
            return False
        raise Undecided(f"cannot decide {describe(self, 10)} {symbol} {describe(other, 10)}")

    return op


def _to_float(self: Any) -> float:
    value = self.exact_value()
    if value is None:
        raise Undecided(f"float() of the ball {describe(self, 10)} would round it")
    return value


def _to_int(self: Any) -> int:
    value = self.exact_value()
    if value is None or not float(value).is_integer():
        raise Undecided(f"int() of the ball {describe(self)} is not one exact integer")
    return int(value)


def _to_bool(self: Any) -> bool:
    if self == 0:
        return False
    return True


_SHARED: dict[str, Any] = {
    "__pow__": _power,
    "__rpow__": _rpower,
    "__float__": _to_float,
    "__int__": _to_int,
    "__index__": _to_int,
    "__bool__": _to_bool,
    "__hash__": None,
    "__lt__": _comparison("<"),
    "__le__": _comparison("<="),
    "__gt__": _comparison(">"),
    "__ge__": _comparison(">="),
    "__eq__": _comparison("=="),
    "__ne__": _comparison("!="),
}
_CLASSES = [c for c in (ArbBall, IvBall) if c is not None]
for _cls in _CLASSES:
    for _key, _value in _SHARED.items():
        setattr(_cls, _key, _value)
    for _alias, _target in NUMPY_ALIASES.items():
        setattr(_cls, _alias, getattr(_cls, _target))

#: the available backends by name
BACKENDS: dict[str, type] = {c.backend: c for c in _CLASSES}
_STATE = {"ball": BACKENDS.get(os.environ.get("CREALITY_INTERVAL_BACKEND", ""), _CLASSES[0])}

#: the ball class of the current backend (a type alias for annotations)
Ball = Any


def backend() -> str:
    """``"flint"`` or ``"mpmath"``: the backend new balls are made with."""
    return str(_STATE["ball"].backend)


def set_backend(name: str) -> None:
    """Make new balls with backend ``name`` (``"flint"`` or ``"mpmath"``)."""
    if name not in BACKENDS:
        raise ValueError(f"interval backend {name!r} is not available; have {sorted(BACKENDS)}")
    _STATE["ball"] = BACKENDS[name]


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Temporarily make new balls with backend ``name``."""
    saved = _STATE["ball"]
    set_backend(name)
    try:
        yield
    finally:
        _STATE["ball"] = saved


@contextlib.contextmanager
def precision(bits: int) -> Iterator[None]:
    """Work at ``bits`` of precision (both backends), restoring the previous setting."""
    saved_iv = _iv.prec
    saved_flint = _flint.ctx.prec if _flint is not None else None
    _iv.prec = bits
    if _flint is not None:
        _flint.ctx.prec = bits
    try:
        yield
    finally:
        _iv.prec = saved_iv
        if _flint is not None:
            _flint.ctx.prec = saved_flint


def is_ball(value: Any) -> bool:
    return isinstance(value, IvBall) or bool(_BALL_TYPES and isinstance(value, _BALL_TYPES))


def ball(value: Any) -> Any:
    """``value`` (a ball, or a Python/numpy int or float, exactly) as a ball."""
    cls = _STATE["ball"]
    if isinstance(value, cls):
        return value
    if is_ball(value):
        if cls is IvBall or isinstance(value, IvBall):
            raise TypeError("balls of two interval backends do not mix")
        return cls(value)
    return cls.exact(value)


def interval(lo: float, hi: float) -> Any:
    """A ball containing the float interval ``[lo, hi]``."""
    return _STATE["ball"].between(lo, hi)


def lower(value: Any) -> float:
    """A float64 at or below ``value`` (a ball or a number)."""
    return ball(value).flo()


def upper(value: Any) -> float:
    """A float64 at or above ``value`` (a ball or a number)."""
    return ball(value).fhi()


def describe(value: Any, digits: int = 6) -> str:
    """A ball as ``[lo, hi]`` with ``digits`` significant digits, rounded outward (still an
    enclosure); other values by ``repr``."""
    if not is_ball(value):
        return repr(value)
    lo, hi = value.flo(), value.fhi()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "[unbounded]" if math.isnan(lo) or math.isnan(hi) else f"[{lo}, {hi}]"
    if lo == hi:
        return repr(lo)
    lo_text = _decimal(lo, digits, decimal.ROUND_FLOOR)
    return f"[{lo_text}, {_decimal(hi, digits, decimal.ROUND_CEILING)}]"


def _decimal(value: float, digits: int, rounding: str) -> str:
    if value == 0:
        return "0"
    context = decimal.Context(prec=digits, rounding=rounding)
    return format(context.plus(decimal.Decimal(value)), "g")
