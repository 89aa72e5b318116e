"""The array-API printer: printed source evaluates to the expression's value."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given
from hypothesis import strategies as st

from creality_sym.codegen.numpy.printer import print_expr

f, b, tau, q = sp.symbols("f b tau q", positive=True)
EXPRESSIONS = [
    b / f**2,
    b / tau**3,
    f**2 * b - f**3 / 2,
    f**q * sp.log(b),
    sp.exp(-f) / (1 + tau**2),
    sp.sqrt(f) * b**-1,
    (f - b) ** 2 / 2,
]


@pytest.mark.parametrize("expr", EXPRESSIONS, ids=str)
@given(values=st.tuples(*[st.floats(0.1, 3.0)] * 4))
def test_printed_source_evaluates_to_the_expression(expr, values):
    env = dict(zip(("f", "b", "tau", "q"), values, strict=True))
    got = eval(print_expr(expr), {"xp": np, **env})  # noqa: S307 - printed by us
    want = float(expr.subs({sp.Symbol(k, positive=True): v for k, v in env.items()}))
    assert got == pytest.approx(want, rel=1e-12)
