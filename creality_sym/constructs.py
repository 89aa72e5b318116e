"""What a spec expression may contain: smooth elementary functions and global sums.

Everything the engine derives, prints and verifies is built from the nodes
accepted here; anything else is refused when the spec is loaded, with the
construct named and a smooth alternative suggested, instead of failing later
inside SymPy or printing code that cannot run.
"""

from __future__ import annotations

import sympy as sp
from sympy.core.function import AppliedUndef

from creality_sym.errors import SpecError
from creality_sym.vector import Total

#: elementary functions every backend prints with an array-API / C99 name.
SMOOTH_FUNCTIONS: tuple[type[sp.Function], ...] = (
    sp.exp,
    sp.log,
    sp.sin,
    sp.cos,
    sp.tan,
    sp.sinh,
    sp.cosh,
    sp.tanh,
    sp.asin,
    sp.acos,
    sp.atan,
    sp.asinh,
    sp.acosh,
    sp.atanh,
)

_SURROGATE = "write a smooth surrogate"
#: refused constructs: SymPy class name -> what to write instead.
REFUSED: dict[str, str] = {
    "Max": f"{_SURROGATE}, e.g. log(exp(k*a) + exp(k*b))/k, or log(1 + exp(k*a))/k for Max(a, 0)",
    "Min": f"{_SURROGATE}, e.g. -log(exp(-k*a) + exp(-k*b))/k",
    "Abs": f"{_SURROGATE}, e.g. sqrt(a**2 + eps**2) with a small scalar eps",
    "sign": f"{_SURROGATE}, e.g. tanh(k*a)",
    "Heaviside": f"{_SURROGATE}, e.g. the logistic 1/(1 + exp(-k*a))",
    "Piecewise": f"{_SURROGATE} (a logistic blend of the pieces)",
    "DiracDelta": "derivatives are derived for you; write the loss itself",
    "Derivative": "derivatives are derived for you; write the loss itself",
    "Subs": "write the substituted expression directly",
    "Integral": "write the integral in closed form",
    "Sum": "write sums over the entries as total(e) or inner(u, v)",
    "Product": "write products over the entries as exp(total(log(e)))",
    "floor": f"{_SURROGATE}; floor and ceiling are not differentiable",
    "ceiling": f"{_SURROGATE}; floor and ceiling are not differentiable",
    "re": "the loss is real: drop re/im",
    "im": "the loss is real: drop re/im",
}


def _describe(node: sp.Basic) -> str:
    text = str(node)
    return text if len(text) <= 60 else text[:57] + "..."


def check_smooth(expr: sp.Basic, where: str) -> None:
    """Raise :class:`SpecError` (prefixed by ``where``) on any unsupported construct.

    Accepted: numbers, symbols, ``+``, ``*``, powers (also symbolic exponents),
    :data:`SMOOTH_FUNCTIONS`, and ``Total`` (a global sum) of an expression that
    contains no further global sum.
    """
    for node in sp.preorder_traversal(expr):
        if isinstance(node, (sp.Symbol, sp.Add, sp.Mul, sp.Pow, sp.Tuple)):
            continue
        if isinstance(node, sp.Number):
            if not node.is_finite or not node.is_real:
                raise SpecError(f"{where}: the constant {node} is not a finite real number")
            continue
        if isinstance(node, sp.NumberSymbol):
            continue
        if node is sp.I:
            raise SpecError(f"{where}: the loss must be real; {_describe(expr)} uses I")
        if isinstance(node, Total):
            if node.args[0].has(Total):
                raise SpecError(
                    f"{where}: nested global sums ({_describe(node)}) are not supported; "
                    "a global sum may appear inside phi, but its summand must be an entry "
                    "expression without total(...) or inner(...)"
                )
            continue
        if isinstance(node, SMOOTH_FUNCTIONS):
            continue
        name = type(node).__name__
        if name in REFUSED:
            raise SpecError(
                f"{where}: {name} ({_describe(node)}) is not supported: {REFUSED[name]}"
            )
        if isinstance(node, AppliedUndef):
            raise SpecError(
                f"{where}: the undefined function {name} ({_describe(node)}) cannot be "
                "derived; write it with exp, log, powers, trigonometric or hyperbolic functions"
            )
        if isinstance(node, sp.Function):
            allowed = ", ".join(fn.__name__ for fn in SMOOTH_FUNCTIONS)
            raise SpecError(
                f"{where}: the function {name} ({_describe(node)}) is not supported (every "
                f"backend prints only {allowed}); rewrite it with those"
            )
        raise SpecError(
            f"{where}: {name} ({_describe(node)}) is not supported in a loss expression; "
            "write a smooth expression of the entry symbols, parameters and total(...)"
        )
