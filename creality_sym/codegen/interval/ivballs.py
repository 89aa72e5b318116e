"""The fallback ball backend: ``mpmath.iv`` intervals with strict comparisons.

Used when python-flint is missing, or with ``CREALITY_INTERVAL_BACKEND=mpmath``;
the strict comparisons, powers and conversions are attached by
:mod:`creality_sym.codegen.interval.balls`, the same as for the flint backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from mpmath import iv as _iv
from mpmath import mp as _mp

from creality_sym.codegen.interval.core import UNARY, Undecided, check_number, plain

__all__ = ["IvBall", "iv_compare", "iv_real_power"]


def _lift(value: Any) -> IvBall:
    return value if isinstance(value, IvBall) else IvBall.exact(value)


class IvBall:
    """An ``mpmath.iv`` interval with strict comparisons (the fallback backend)."""

    __slots__ = ("v",)
    backend = "mpmath"

    def __init__(self, value: Any) -> None:
        self.v = value.v if isinstance(value, IvBall) else _iv.mpf(value)

    @classmethod
    def exact(cls, value: Any) -> IvBall:
        value = plain(value)
        if isinstance(value, IvBall):
            return value
        check_number(value)
        return cls(value)

    @classmethod
    def between(cls, lo: float, hi: float) -> IvBall:
        return cls([float(lo), float(hi)])

    @classmethod
    def rational(cls, p: int, q: int) -> IvBall:
        return cls(_iv.mpf(p) / q)

    @classmethod
    def pi(cls) -> IvBall:
        return cls(_iv.pi)

    @classmethod
    def e(cls) -> IvBall:
        return cls(_iv.e)

    def _ends(self) -> tuple[Any, Any]:
        lo, hi = self.v._mpi_
        return _mp.make_mpf(lo), _mp.make_mpf(hi)

    def flo(self) -> float:
        lo = self._ends()[0]
        if not _mp.isfinite(lo):
            return -math.inf
        v = float(lo)
        return v if v <= lo else math.nextafter(v, -math.inf)

    def fhi(self) -> float:
        hi = self._ends()[1]
        if not _mp.isfinite(hi):
            return math.inf
        v = float(hi)
        return v if v >= hi else math.nextafter(v, math.inf)

    def finite(self) -> bool:
        lo, hi = self._ends()
        return bool(_mp.isfinite(lo) and _mp.isfinite(hi))

    def exact_value(self) -> float | None:
        lo, hi = self._ends()
        if lo != hi or not _mp.isfinite(lo):
            return None
        f = float(lo)
        return f if f == lo else None

    def hull(self, other: Any) -> IvBall:
        (a, b), (c, d) = self._ends(), _lift(other)._ends()
        return IvBall([min(a, c), max(b, d)])

    def bmax(self, other: Any) -> IvBall:
        (a, b), (c, d) = self._ends(), _lift(other)._ends()
        return IvBall([max(a, c), max(b, d)])

    def bmin(self, other: Any) -> IvBall:
        (a, b), (c, d) = self._ends(), _lift(other)._ends()
        return IvBall([min(a, c), min(b, d)])

    def nonneg(self) -> IvBall:
        a, b = self._ends()
        if b < 0:
            raise Undecided(f"{self.text()} has no nonnegative part")
        return IvBall([max(a, 0), b])

    def text(self, digits: int = 6) -> str:
        lo, hi = self._ends()
        return f"[{_mp.nstr(lo, digits)}, {_mp.nstr(hi, digits)}]"

    def __repr__(self) -> str:
        return self.text(15)

    __str__ = __repr__

    def __neg__(self) -> IvBall:
        return IvBall(-self.v)

    def __pos__(self) -> IvBall:
        return self

    def __abs__(self) -> IvBall:
        return IvBall(abs(self.v))


def _iv_binary(name: str) -> Callable[[Any, Any], Any]:
    def op(self: IvBall, other: Any) -> Any:
        if isinstance(other, np.ndarray) or getattr(other, "backend", "mpmath") != "mpmath":
            return NotImplemented
        o = other.v if isinstance(other, IvBall) else plain(other)
        result = getattr(self.v, name)(o)
        return result if result is NotImplemented else IvBall(result)

    op.__name__ = name
    return op


for _name in ("add", "sub", "mul", "truediv"):
    for _dunder in (f"__{_name}__", f"__r{_name}__"):
        setattr(IvBall, _dunder, _iv_binary(_dunder))


def _iv_unary(name: str) -> Callable[[IvBall], IvBall]:
    def op(self: IvBall) -> IvBall:
        fn = getattr(_iv, name, None)
        if fn is None:
            raise Undecided(f"mpmath.iv has no {name}; install python-flint")
        return IvBall(fn(self.v))

    op.__name__ = name
    return op


for _name in UNARY:
    setattr(IvBall, _name, _iv_unary(_name))


def iv_real_power(base: IvBall, exponent: Any) -> IvBall:
    e = exponent.v if isinstance(exponent, IvBall) else plain(exponent)
    return IvBall(base.v**e)


def iv_compare(a: Any, b: Any) -> tuple[bool, bool, bool]:
    (xa, xb), (ya, yb) = _lift(a)._ends(), _lift(b)._ends()
    return bool(xb < ya), bool(xa > yb), bool(xa == xb == ya == yb)
