"""Tsallis creativity: the default reality and ridge terms with a Tsallis-entropy creativity.

    L(x) = 1/2 ||f - b||^2 + gamma (sum_j f_j^q - 1) / (q - 1) + 1/2 ||W A x||^2

(q > 0, q != 1; as q -> 1 the creativity tends to the negative Shannon entropy.)
"""

import sympy as sp

from creality_sym.spec import Spec, Statement, Term, diag, f, inner, outer, scalar, total, vector, z

b = vector("b", "probability")
w = vector("w", "positive")
gamma = scalar("gamma", "nonnegative")
q = scalar("q", "positive")

c = f - b
s = inner(f, c)
P = total(f**q)
B_P = (
    diag(q**2 * f**q - q * P * f)
    - q**2 * (outer(f**q, f) + outer(f, f**q))
    + (q * P + q**2 * P) * outer(f, f)
)
qq = f * (2 * f - b)
B_real = (
    diag(f * (2 * f - b - s)) - outer(qq, f) - outer(f, qq) + inner(3 * f - 2 * b, f) * outer(f, f)
)
grad_tsallis = q / (q - 1) * (f**q - P * f)
B_tsallis = B_P * (1 / (q - 1))

SPEC = Spec(
    name="tsallis",
    description="Reality (squared distance to b) + gamma * Tsallis creativity "
    "(sum f^q - 1)/(q - 1) + weighted ridge on the logits.",
    terms=[
        Term("reality", sp.Rational(1, 2) * (f - b) ** 2, latex=r"\tfrac12\|f-b\|_2^2"),
        Term(
            "creativity",
            (total(f**q) - 1) / (q - 1),
            weight=gamma,
            summed=False,
            latex=r"\frac{\sum_j f_j^q - 1}{q-1}",
        ),
        Term("regularizer", sp.Rational(1, 2) * w**2 * z**2, latex=r"\tfrac12\|WAx\|_2^2"),
    ],
    vectors=[b, w],
    scalars=[gamma, q],
    tradeoff="gamma",
    statements=[
        Statement("grad-reality", "reality", "z_gradient", f * c - s * f),
        Statement("grad-tsallis", "creativity", "z_gradient", grad_tsallis),
        Statement("grad-regularizer", "regularizer", "z_gradient", w**2 * z),
        Statement("B_real", "reality", "z_hessian", B_real),
        Statement("B_tsallis", "creativity", "z_hessian", B_tsallis),
        Statement("W2", "regularizer", "z_hessian", diag(w**2)),
        Statement(
            "grad-total", "total", "z_gradient", f * c - s * f + gamma * grad_tsallis + w**2 * z
        ),
        Statement("hessian-total", "total", "z_hessian", B_real + gamma * B_tsallis + diag(w**2)),
    ],
)
