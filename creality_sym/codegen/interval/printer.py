"""Interval printer: SymPy expressions as calls on the ball namespace ``ia``.

SymPy's Python code printer with the ``math`` module replaced by ``ia``
(:mod:`creality_sym.codegen.interval.runtime`): ``math.exp(a)`` prints as
``ia.exp(a)``, and every number prints exactly, so that nothing is rounded
before it reaches a ball: integers as Python ints, rationals as ``ia.q(p, q)``,
SymPy floats by their exact binary value ``ia.dyadic(m, e)``. Integer powers
print as ``**`` on balls (squares enclose ``x**2 >= 0`` even for boxes around 0),
reciprocals as ``1/x``. A function without an enclosure in ``ia`` is refused
(:class:`~creality_sym.errors.SpecError`), never printed.
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.precedence import PRECEDENCE, precedence
from sympy.printing.pycode import PythonCodePrinter

from creality_sym.codegen.interval.runtime import FUNCTIONS
from creality_sym.errors import SpecError

__all__ = ["IntervalPrinter", "print_expr"]

#: ``math`` function name -> ``ia`` function name
MATH_FUNCTIONS = {
    "exp": "exp",
    "log": "log",
    "log1p": "log1p",
    "expm1": "expm1",
    "sqrt": "sqrt",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "atan": "atan",
    "asin": "asin",
    "acos": "acos",
    "sinh": "sinh",
    "cosh": "cosh",
    "tanh": "tanh",
    "asinh": "asinh",
    "acosh": "acosh",
    "atanh": "atanh",
}
_CALL = re.compile(r"\bia\.(\w+)")


class IntervalPrinter(PythonCodePrinter):
    """Prints ``math.exp(a)`` as ``ia.exp(a)`` and numbers exactly."""

    printmethod = "_intervalcode"

    def __init__(self) -> None:
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False})

    def _module_format(self, fqn: str, register: bool = True) -> str:
        if fqn.startswith("math."):
            name = fqn[len("math.") :]
            if name not in MATH_FUNCTIONS:
                raise SpecError(f"math.{name} has no interval enclosure to print")
            return "ia." + MATH_FUNCTIONS[name]
        raise SpecError(f"{fqn} has no interval enclosure to print")

    def _print_Integer(self, expr: sp.Integer) -> str:
        return str(expr.p)

    def _print_Rational(self, expr: sp.Rational) -> str:
        return f"ia.q({expr.p}, {expr.q})"

    def _print_Half(self, expr: sp.Rational) -> str:
        return self._print_Rational(expr)

    def _print_Float(self, expr: sp.Float) -> str:
        sign, mantissa, exponent, _ = expr._mpf_
        if mantissa == 0 and exponent == 0:
            return "0"
        if not isinstance(mantissa, int) or mantissa == 0:
            raise SpecError(f"cannot print the number {expr} exactly")
        return f"ia.dyadic({-mantissa if sign else mantissa}, {exponent})"

    def _print_Pi(self, expr: sp.Expr) -> str:
        return "ia.pi()"

    def _print_Exp1(self, expr: sp.Expr) -> str:
        return "ia.e()"

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        base, exponent = expr.base, expr.exp
        atom = PRECEDENCE["Atom"]
        if exponent == -1:
            return "1/" + self.parenthesize(base, atom, strict=True)
        if exponent == sp.Rational(1, 2):
            return f"ia.sqrt({self._print(base)})"
        if exponent == sp.Rational(-1, 2):
            return f"1/ia.sqrt({self._print(base)})"
        if exponent.is_Integer:
            if exponent < 0:
                return f"1/({self.parenthesize(base, atom, strict=True)}**{-int(exponent)})"
            return f"{self.parenthesize(base, atom, strict=True)}**{int(exponent)}"
        return f"ia.power({self._print(base)}, {self._print(exponent)})"

    def _print_XLogX(self, expr: sp.Expr) -> str:
        return f"ia.xlogx({self._print(expr.args[0])})"

    def _print_Max(self, expr: sp.Expr) -> str:
        return "ia.max(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Min(self, expr: sp.Expr) -> str:
        return "ia.min(" + ", ".join(self._print(a) for a in expr.args) + ")"

    def _print_Abs(self, expr: sp.Expr) -> str:
        return f"abs({self._print(expr.args[0])})"

    def _print_Piecewise(self, expr: sp.Expr) -> str:
        raise SpecError(f"cannot print {expr} in interval arithmetic (a Piecewise)")

    def _print_UnevaluatedExpr(self, expr: sp.Expr) -> str:
        return self.parenthesize(expr.args[0], precedence(expr))


def print_expr(expr: sp.Expr) -> str:
    """Source text of one expression on balls; :class:`SpecError` if it cannot be enclosed."""
    text = IntervalPrinter().doprint(expr)
    for name in _CALL.findall(text):
        if name not in FUNCTIONS:
            raise SpecError(f"cannot print {expr} in interval arithmetic (ia.{name})")
    if "math." in text or "numpy." in text or "mpmath." in text:
        raise SpecError(f"cannot print {expr} in interval arithmetic: {text[:80]}")
    return text
