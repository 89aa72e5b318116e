"""C99 printer for kernel bodies that compile both as CUDA and as plain C.

Entry symbols print as ``name[i]`` (one entry of an input array), the
symbolic dimension as ``((double)n)``, everything else as a local or a kernel
parameter. Only ``exp``, ``log``, ``pow``, ``sqrt`` and friends from the C
math library are emitted (the double versions, which CUDA also provides), and
constants print as double literals, so no header beyond ``<math.h>`` is needed.
"""

from __future__ import annotations

from collections.abc import Mapping

import sympy as sp
from sympy.printing.c import C99CodePrinter
from sympy.printing.precedence import PRECEDENCE

from creality_sym.vector import N

#: identifiers the kernels use themselves, plus C/C++ keywords and <math.h>
#: names a spec symbol must not shadow (such symbols get a trailing "_").
RESERVED = frozenset(
    """
    n i r red stats
    auto break case char const continue default do double else enum extern float for goto if
    inline int long register restrict return short signed sizeof static struct switch typedef
    union unsigned void volatile while bool true false class delete friend mutable namespace new
    operator private protected public template this throw try typename using virtual
    acos acosh asin asinh atan atan2 atanh cbrt ceil copysign cos cosh erf erfc exp exp2 expm1
    fabs fdim floor fma fmax fmin fmod frexp gamma hypot ilogb isfinite isinf isnan ldexp lgamma
    log log10 log1p log2 logb lrint lround modf nan nearbyint nextafter pow remainder remquo
    rint round scalbn signbit sin sinh sqrt tan tanh tgamma trunc expf logf powf sqrtf fabsf
    """.split()
)


def c_identifier(name: str) -> str:
    """The C name of a spec symbol: unchanged unless it would clash with the kernels."""
    if name in RESERVED or name.startswith(("_", "out_")):
        return name + "_"
    return name


class KernelPrinter(C99CodePrinter):
    """Prints one entry of an expression inside a kernel's loop over ``i``.

    ``arrays`` maps the names of entry symbols (input arrays) to their C
    names; ``scalars`` maps scalar parameters to theirs. Other symbols
    (temporaries, reductions) print unchanged.
    """

    def __init__(self, arrays: Mapping[str, str], scalars: Mapping[str, str]) -> None:
        super().__init__({"allow_unknown_functions": False})
        self._arrays = dict(arrays)
        self._scalars = dict(scalars)

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        if expr == N:
            return "((double)n)"
        if expr.name in self._arrays:
            return f"{self._arrays[expr.name]}[i]"
        return self._scalars.get(expr.name, expr.name)

    def _print_Pow(self, expr: sp.Pow) -> str:
        base, exp = expr.base, expr.exp
        if exp == -1:  # a reciprocal, no pow() call
            return "1.0/" + self.parenthesize(base, PRECEDENCE["Atom"])
        if exp == sp.S.Half:
            return f"sqrt({self._print(base)})"
        if exp.is_number:
            return f"pow({self._print(base)}, {_double(exp)})"
        return f"pow({self._print(base)}, {self._print(exp)})"

    def _print_XLogX(self, expr: sp.Expr) -> str:
        v = f"({self._print(expr.args[0])})"
        return f"({v} > 0.0 ? {v}*log({v}) : 0.0)"

    def _print_Rational(self, expr: sp.Rational) -> str:
        return f"{_double(expr.p)}/{_double(expr.q)}"

    def _print_Integer(self, expr: sp.Integer) -> str:
        return _double(expr)

    def _print_Float(self, expr: sp.Float) -> str:
        return _double(expr)

    def _print_NumberSymbol(self, expr: sp.NumberSymbol) -> str:
        return _double(expr)

    _print_Pi = _print_NumberSymbol
    _print_Exp1 = _print_NumberSymbol
    _print_EulerGamma = _print_NumberSymbol
    _print_GoldenRatio = _print_NumberSymbol
    _print_Catalan = _print_NumberSymbol


def _double(value: object) -> str:
    """A C double literal that reads back as exactly ``float(value)``."""
    text = repr(float(value))
    if text in ("inf", "-inf", "nan"):
        raise ValueError(f"cannot print the non-finite constant {value} in a kernel")
    return text if any(ch in text for ch in ".en") else text + ".0"


def print_entry(expr: sp.Expr, arrays: Mapping[str, str], scalars: Mapping[str, str]) -> str:
    """C source of one entry of ``expr``."""
    return KernelPrinter(arrays, scalars).doprint(sp.sympify(expr))
