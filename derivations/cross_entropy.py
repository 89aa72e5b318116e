"""Variant: cross-entropy reality loss.

L(x) = -<b, log f> + gamma <f, log f> + 1/2 ||W A x||^2,   f = softmax(A x)
"""

import sympy as sp

from creality_sym.spec import Spec, Statement, Term, diag, f, inner, outer, scalar, vector, z

b = vector("b", "probability")
w = vector("w", "positive")
gamma = scalar("gamma", "nonnegative")

m = inner(f, z)
v = f * (z - m)
J = diag(f) - outer(f, f)
B_cre = diag(f + v) - outer(f, f) - outer(v, f) - outer(f, v)

SPEC = Spec(
    name="cross_entropy",
    description="Cross-entropy reality + gamma * negative entropy + weighted ridge on the logits.",
    terms=[
        Term("reality", -b * sp.log(f), latex=r"-\langle b, \log f\rangle"),
        Term("creativity", f * sp.log(f), weight=gamma, latex=r"\langle f, \log f\rangle"),
        Term("regularizer", sp.Rational(1, 2) * w**2 * z**2, latex=r"\tfrac12\|WAx\|_2^2"),
    ],
    vectors=[b, w],
    scalars=[gamma],
    tradeoff="gamma",
    statements=[
        Statement("grad-reality", "reality", "z_gradient", f - b),
        Statement("grad-creativity", "creativity", "z_gradient", v),
        Statement("grad-regularizer", "regularizer", "z_gradient", w**2 * z),
        Statement("B_ce", "reality", "z_hessian", J),
        Statement("B_cre", "creativity", "z_hessian", B_cre),
        Statement("W2", "regularizer", "z_hessian", diag(w**2)),
        Statement("grad-total", "total", "z_gradient", f - b + gamma * v + w**2 * z),
        Statement("hessian-total", "total", "z_hessian", J + gamma * B_cre + diag(w**2)),
    ],
)
