"""Array-API printer: SymPy expressions as calls on the namespace ``xp``.

Like SymPy's own CuPy and JAX printers, it is SymPy's NumPy printer with
another module name and a table of function names: here the names of the
Python array API standard (``xp.acos``, not numpy's ``arccos``), so the same
code runs on numpy, CuPy, PyTorch and JAX through ``array_api_compat``.
Anything that would print outside that table is refused when the spec is
derived (:class:`~creality_sym.errors.SpecError`), never emitted.
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.numpy import NumPyPrinter

from creality_sym.errors import SpecError

#: numpy function name -> array API standard name, for every function we print.
ARRAY_API_FUNCTIONS = {
    "exp": "exp",
    "log": "log",
    "log1p": "log1p",
    "expm1": "expm1",
    "sqrt": "sqrt",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "sinh": "sinh",
    "cosh": "cosh",
    "tanh": "tanh",
    "arcsin": "asin",
    "arccos": "acos",
    "arctan": "atan",
    "arcsinh": "asinh",
    "arccosh": "acosh",
    "arctanh": "atanh",
    "where": "where",
    "pi": "pi",
    "e": "e",
}
_CALL = re.compile(r"\bxp\.(\w+)")


class ArrayApiPrinter(NumPyPrinter):
    """Prints ``numpy.arccos(a)`` as ``xp.acos(a)`` for an array-API namespace ``xp``."""

    _module = "xp"
    printmethod = "_arrayapicode"

    def __init__(self) -> None:
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False})

    def _module_format(self, fqn: str, register: bool = True) -> str:
        if fqn.startswith("numpy."):
            name = fqn[len("numpy.") :]
            if name not in ARRAY_API_FUNCTIONS:
                raise SpecError(f"numpy.{name} has no array-API counterpart to print")
            return "xp." + ARRAY_API_FUNCTIONS[name]
        return super()._module_format(fqn, register)

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp == -1:  # a reciprocal: no float power, no pow() call
            return "1/" + self.parenthesize(expr.base, sp.printing.precedence.PRECEDENCE["Atom"])
        return super()._print_Pow(expr, rational=rational)

    def _print_XLogX(self, expr: sp.Expr) -> str:
        v = f"({self._print(expr.args[0])})"
        return f"({v}*xp.log(xp.where({v} > 0, {v}, 1.0)))"


def print_expr(e: sp.Expr) -> str:
    """Source text of one expression; :class:`SpecError` if it uses a non-array-API call."""
    text = ArrayApiPrinter().doprint(e)
    allowed = set(ARRAY_API_FUNCTIONS.values())
    for name in _CALL.findall(text):
        if name not in allowed:
            raise SpecError(f"cannot print {e} with array-API functions (xp.{name})")
    if "numpy." in text or "functools" in text or "select(" in text:
        raise SpecError(f"cannot print {e} with array-API functions: {text[:80]}")
    return text
