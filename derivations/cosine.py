"""Cosine reality: negative cosine similarity between f and b, with entropy creativity.

    L(x) = -<f, b> / (||f||_2 ||b||_2) + gamma <f, log f> + 1/2 ||W A x||^2

The reality term is a scalar function of the global sums <f, b>, <f, f> and
<b, b> (the last is constant in x and drops out of every derivative).
"""

import sympy as sp

from creality_sym.spec import Spec, Statement, Term, diag, f, inner, outer, scalar, vector, z

b = vector("b", "probability")
w = vector("w", "positive")
gamma = scalar("gamma", "nonnegative")

S1 = inner(f, b)
S2 = inner(f, f)
nb = sp.sqrt(inner(b, b))
# grad_z <f, b> = J b = f o b - <f, b> f;  grad_z <f, f> = 2 J f = 2 (f^2 - <f, f> f)
grad_S1 = f * b - S1 * f
grad_S2 = 2 * (f**2 - S2 * f)
grad_cosine = -(grad_S1 / sp.sqrt(S2) - S1 * grad_S2 / (2 * S2 ** sp.Rational(3, 2))) / nb
# Hessians of the sums (structure lemma by hand): <f, b> and <f, f>
hess_S1 = diag(grad_S1) - outer(grad_S1, f) - outer(f, grad_S1)
p2 = 4 * f**2 - 2 * S2 * f
hess_S2 = diag(p2) - outer(p2, f) - outer(f, p2) + 2 * S2 * outer(f, f)
B_cosine = (
    hess_S1 * (1 / sp.sqrt(S2))
    - (outer(grad_S1, grad_S2) + outer(grad_S2, grad_S1)) * (1 / (2 * S2 ** sp.Rational(3, 2)))
    - hess_S2 * (S1 / (2 * S2 ** sp.Rational(3, 2)))
    + outer(grad_S2, grad_S2) * (3 * S1 / (4 * S2 ** sp.Rational(5, 2)))
) * (-1 / nb)
m = inner(f, z)
v = f * (z - m)
B_cre = diag(f + v) - outer(f, f) - outer(v, f) - outer(f, v)

SPEC = Spec(
    name="cosine",
    description="Negative cosine similarity of f and b + gamma * creativity (negative entropy) "
    "+ weighted ridge on the logits.",
    terms=[
        Term(
            "reality",
            -S1 / (sp.sqrt(S2) * nb),
            summed=False,
            latex=r"-\frac{\langle f, b\rangle}{\|f\|_2\|b\|_2}",
        ),
        Term("creativity", f * sp.log(f), weight=gamma, latex=r"\langle f, \log f\rangle"),
        Term("regularizer", sp.Rational(1, 2) * w**2 * z**2, latex=r"\tfrac12\|WAx\|_2^2"),
    ],
    vectors=[b, w],
    scalars=[gamma],
    tradeoff="gamma",
    statements=[
        Statement("grad-cosine", "reality", "z_gradient", grad_cosine),
        Statement("grad-creativity", "creativity", "z_gradient", v),
        Statement("grad-regularizer", "regularizer", "z_gradient", w**2 * z),
        Statement("B_cosine", "reality", "z_hessian", B_cosine),
        Statement("B_cre", "creativity", "z_hessian", B_cre),
        Statement("W2", "regularizer", "z_hessian", diag(w**2)),
        Statement("grad-total", "total", "z_gradient", grad_cosine + gamma * v + w**2 * z),
        Statement("hessian-total", "total", "z_hessian", B_cosine + gamma * B_cre + diag(w**2)),
    ],
)
