"""Variant: the default losses with a softmax temperature tau.

    L(x) = 1/2 ||f - b||^2 + gamma <f, log f> + 1/2 ||W A x||^2,   f = softmax(A x / tau)

Every softmax derivative picks up a factor 1/tau per order.
"""

import sympy as sp

from creality_sym.spec import Spec, Statement, Term, diag, f, inner, outer, scalar, vector, z

b = vector("b", "probability")
w = vector("w", "positive")
gamma = scalar("gamma", "nonnegative")
tau = scalar("tau", "positive")

c = f - b
s = inner(f, c)
q = f * (2 * f - b)
m = inner(f, z / tau)
v = f * (z / tau - m)

B_real = (
    diag(f * (2 * f - b - s)) - outer(q, f) - outer(f, q) + inner(3 * f - 2 * b, f) * outer(f, f)
)
B_cre = diag(f + v) - outer(f, f) - outer(v, f) - outer(f, v)

SPEC = Spec(
    name="temperature",
    description="The default losses with f = softmax(A x / tau).",
    terms=[
        Term("reality", sp.Rational(1, 2) * (f - b) ** 2, latex=r"\tfrac12\|f-b\|_2^2"),
        Term("creativity", f * sp.log(f), weight=gamma, latex=r"\langle f, \log f\rangle"),
        Term("regularizer", sp.Rational(1, 2) * w**2 * z**2, latex=r"\tfrac12\|WAx\|_2^2"),
    ],
    vectors=[b, w],
    scalars=[gamma, tau],
    tradeoff="gamma",
    logit_scale=1 / tau,
    defaults={"tau": 1.0},
    statements=[
        Statement("grad-reality", "reality", "z_gradient", (f * c - s * f) / tau),
        Statement("grad-creativity", "creativity", "z_gradient", v / tau),
        Statement("grad-regularizer", "regularizer", "z_gradient", w**2 * z),
        Statement("B_real", "reality", "z_hessian", B_real * (1 / tau**2)),
        Statement("B_cre", "creativity", "z_hessian", B_cre * (1 / tau**2)),
        Statement("W2", "regularizer", "z_hessian", diag(w**2)),
        Statement(
            "grad-total", "total", "z_gradient", (f * c - s * f + gamma * v) / tau + w**2 * z
        ),
        Statement(
            "hessian-total",
            "total",
            "z_hessian",
            (B_real + gamma * B_cre) * (1 / tau**2) + diag(w**2),
        ),
    ],
)
