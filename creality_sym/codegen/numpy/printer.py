"""NumPy printer that targets an array-API namespace bound to ``xp``."""

from __future__ import annotations

import sympy as sp
from sympy.printing.numpy import NumPyPrinter


class ArrayApiPrinter(NumPyPrinter):
    """Prints ``numpy.exp(a)`` as ``xp.exp(a)``, so the same code runs on any
    array-API namespace (numpy, CuPy, PyTorch via ``array_api_compat``)."""

    def __init__(self) -> None:
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False})

    def _module_format(self, fqn: str, register: bool = True) -> str:
        if fqn.startswith("numpy."):
            return "xp." + fqn[len("numpy.") :]
        return super()._module_format(fqn, register)

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        # small integer powers as products: exact, fast, no pow() call
        if expr.exp.is_Integer and 2 <= int(expr.exp) <= 3:
            base = self.parenthesize(expr.base, sp.printing.precedence.PRECEDENCE["Mul"])
            return "(" + "*".join([base] * int(expr.exp)) + ")"
        return super()._print_Pow(expr, rational=rational)

    def _print_XLogX(self, expr: sp.Expr) -> str:
        v = f"({self._print(expr.args[0])})"
        return f"({v}*xp.log(xp.where({v} > 0, {v}, 1.0)))"


def print_expr(e: sp.Expr) -> str:
    """Source text of one expression."""
    return ArrayApiPrinter().doprint(e)
