"""Default spec: the creativity/reality model of Sinha, Song and Zhou.

    L(x) = 1/2 ||f - b||^2 + gamma <f, log f> + 1/2 ||W A x||^2,   f = softmax(A x)

The statements below are the paper-style closed forms (docs/mathematics.md);
the derivation engine checks each against its own derivation.
"""

import sympy as sp

from creality_sym.spec import Spec, Statement, Term, diag, f, inner, outer, scalar, vector, z

b = vector("b", "probability")
w = vector("w", "positive")
gamma = scalar("gamma", "nonnegative")

# Paper notation: c = f - b, s = <f, c>, q = f o (2f - b), m = <f, z>, v = f o (z - m).
c = f - b
s = inner(f, c)
q = f * (2 * f - b)
m = inner(f, z)
v = f * (z - m)

B_real = (
    diag(f * (2 * f - b - s)) - outer(q, f) - outer(f, q) + inner(3 * f - 2 * b, f) * outer(f, f)
)
B_cre = diag(f + v) - outer(f, f) - outer(v, f) - outer(f, v)

SPEC = Spec(
    name="creativity_reality",
    description="Reality (squared distance to b) + gamma * creativity (negative entropy) "
    "+ weighted ridge on the logits.",
    terms=[
        Term("reality", sp.Rational(1, 2) * (f - b) ** 2, latex=r"\tfrac12\|f-b\|_2^2"),
        Term("creativity", f * sp.log(f), weight=gamma, latex=r"\langle f, \log f\rangle"),
        Term("regularizer", sp.Rational(1, 2) * w**2 * z**2, latex=r"\tfrac12\|WAx\|_2^2"),
    ],
    vectors=[b, w],
    scalars=[gamma],
    tradeoff="gamma",
    statements=[
        Statement("grad-reality", "reality", "z_gradient", f * c - s * f),
        Statement("grad-creativity", "creativity", "z_gradient", v),
        Statement("grad-regularizer", "regularizer", "z_gradient", w**2 * z),
        Statement("B_real", "reality", "z_hessian", B_real),
        Statement("B_cre", "creativity", "z_hessian", B_cre),
        Statement("W2", "regularizer", "z_hessian", diag(w**2)),
        Statement("grad-total", "total", "z_gradient", f * c - s * f + gamma * v + w**2 * z),
        Statement("hessian-total", "total", "z_hessian", B_real + gamma * B_cre + diag(w**2)),
    ],
)
