"""The namespace ``ia`` the printed interval programs call: elementwise functions on balls.

Entry quantities are numpy object arrays of balls (:mod:`.balls`), scalars are
balls; every function here accepts both (and exact Python numbers) and returns
enclosures. Constants are exact (``q(1, 3)`` is a ball around 1/3, never the
float ``1/3``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np

from creality_sym.codegen.interval.balls import ball, is_ball

__all__ = [
    "Softmax",
    "asballs",
    "softmax",
    "q",
    "dyadic",
    "pi",
    "e",
    "sum",
    "full",
    "xlogx",
    "power",
    "max",
    "min",
    "elementwise",
]

_builtin_sum = sum


def asballs(value: Any) -> Any:
    """A ball, or an object array of balls, holding ``value`` exactly."""
    if isinstance(value, np.ndarray):
        if value.dtype == object and all(is_ball(v) for v in value.flat):
            return value
        out = np.empty(value.shape, dtype=object)
        for index, v in np.ndenumerate(value):
            out[index] = ball(v)
        return out
    return ball(value)


def elementwise(fn: Any, value: Any) -> Any:
    """``fn`` applied to a ball or to every ball of an object array."""
    if isinstance(value, np.ndarray):
        out = np.empty(value.shape, dtype=object)
        for index, v in np.ndenumerate(value):
            out[index] = fn(ball(v))
        return out
    return fn(ball(value))


def _unary(name: str) -> Any:
    def fn(value: Any) -> Any:
        return elementwise(lambda v: getattr(v, name)(), value)

    fn.__name__ = name
    fn.__doc__ = f"Enclosure of ``{name}`` (elementwise)."
    return fn


exp = _unary("exp")
log = _unary("log")
log1p = _unary("log1p")
expm1 = _unary("expm1")
sqrt = _unary("sqrt")
sin = _unary("sin")
cos = _unary("cos")
tan = _unary("tan")
atan = _unary("atan")
asin = _unary("asin")
acos = _unary("acos")
sinh = _unary("sinh")
cosh = _unary("cosh")
tanh = _unary("tanh")
asinh = _unary("asinh")
acosh = _unary("acosh")
atanh = _unary("atanh")

#: every function name the printer may emit as ``ia.<name>``
FUNCTIONS = frozenset(
    """exp log log1p expm1 sqrt sin cos tan atan asin acos sinh cosh tanh asinh acosh atanh
    q dyadic pi e sum full xlogx power max min""".split()
)


def q(p: int, r: int) -> Any:
    """The rational ``p / r`` as a ball."""
    return ball(p) / r


def dyadic(mantissa: int, exponent: int) -> Any:
    """The exact binary number ``mantissa * 2**exponent``."""
    return ball(mantissa) * ball(2) ** exponent


def pi() -> Any:
    return type(ball(0)).pi()


def e() -> Any:
    return type(ball(0)).e()


def sum(value: Any) -> Any:  # noqa: A001 - the name the printed programs call
    """Sum over the entries of an object array (a scalar ball is returned as is)."""
    if isinstance(value, np.ndarray):
        return reduce(lambda a, b: a + b, value.flat, ball(0))
    return ball(value)


def full(like: np.ndarray, value: Any) -> np.ndarray:
    """An object array shaped like ``like`` holding the ball ``value`` everywhere."""
    out = np.empty(like.shape, dtype=object)
    out[...] = ball(value) if not isinstance(value, np.ndarray) else value
    return out


def _xlogx(v: Any) -> Any:
    if v.flo() > 0:
        return v * v.log()
    top = v.fhi()
    if top <= 0:
        return ball(0)  # the convention 0 log 0 = 0 (entries are >= 0)
    # v lies in [0, top]; x log x falls on [0, 1/e] to -1/e and rises after it
    u = ball(top)
    at_top = u * u.log()
    inv_e = 1 / type(u).e()
    if top < inv_e.flo():
        return at_top.hull(0)
    return (-inv_e).hull(at_top.bmax(0))


def xlogx(value: Any) -> Any:
    """``v log v`` with ``0 log 0 = 0``, for ``v >= 0`` (elementwise)."""
    return elementwise(_xlogx, value)


def power(base: Any, exponent: Any) -> Any:
    """``base ** exponent`` for a real exponent (elementwise in the base)."""
    if isinstance(exponent, np.ndarray):
        return np.array([power(b, x) for b, x in np.broadcast(base, exponent)], dtype=object)
    return elementwise(lambda v: v**exponent, base)


def max(*values: Any) -> Any:  # noqa: A001
    """Rigorous maximum of balls (the ball of all possible maxima)."""
    return reduce(lambda a, b: ball(a).bmax(b), values)


def min(*values: Any) -> Any:  # noqa: A001
    """Rigorous minimum of balls."""
    return reduce(lambda a, b: ball(a).bmin(b), values)


@dataclass(frozen=True)
class Softmax:
    """``f = softmax(t)`` and ``log f`` as object arrays of balls."""

    f: np.ndarray
    logf: np.ndarray


def softmax(t: np.ndarray) -> Softmax:
    """Enclosures of ``softmax(t)`` and ``log softmax(t)``.

    Entry j is ``1 / (1 + sum_{i != j} exp(t_i - t_j))``: monotone in every
    ``t_i``, so for boxes of logits the enclosure is tight; no cancellation and
    no overflow (balls have unbounded exponents).
    """
    t = asballs(np.asarray(t, dtype=object))
    n = t.shape[0]
    f = np.empty(n, dtype=object)
    logf = np.empty(n, dtype=object)
    for j in range(n):
        rest = _builtin_sum(((t[i] - t[j]).exp() for i in range(n) if i != j), ball(0))
        f[j] = 1 / (1 + rest)
        logf[j] = -(rest.log1p())
    return Softmax(f=f, logf=logf)
