"""Exponential regression: fit the unnormalized u = exp(Ax) to b.

    L(x) = 1/2 ||exp(A x) - b||^2 + 1/2 ||W A x||^2

No softmax: u = exp(z) enters directly, so the generated code refuses logits
that would overflow exp (a ValueError naming x) instead of returning inf.
"""

import sympy as sp

from creality_sym.spec import Spec, Statement, Term, diag, vector, z

b = vector("b", "real")
w = vector("w", "positive")
u = sp.exp(z)

SPEC = Spec(
    name="exp_regression",
    description="Squared distance of exp(Ax) to b + weighted ridge on the logits.",
    terms=[
        Term("reality", sp.Rational(1, 2) * (u - b) ** 2, latex=r"\tfrac12\|\exp(Ax)-b\|_2^2"),
        Term("regularizer", sp.Rational(1, 2) * w**2 * z**2, latex=r"\tfrac12\|WAx\|_2^2"),
    ],
    vectors=[b, w],
    statements=[
        Statement("grad-reality", "reality", "z_gradient", u * (u - b)),
        Statement("grad-regularizer", "regularizer", "z_gradient", w**2 * z),
        Statement("B_exp", "reality", "z_hessian", diag(u * (2 * u - b))),
        Statement("W2", "regularizer", "z_hessian", diag(w**2)),
        Statement("grad-total", "total", "z_gradient", u * (u - b) + w**2 * z),
        Statement("hessian-total", "total", "z_hessian", diag(u * (2 * u - b) + w**2)),
    ],
)
