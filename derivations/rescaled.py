"""Rescaled softmax regression: u = exp(Ax) against its own mass times b.

    L(x) = 1/2 ||exp(A x) - <exp(A x), 1> b||^2 + 1/2 ||W A x||^2

The global sum alpha = <u, 1> appears inside every entry of the reality term.
"""

import sympy as sp

from creality_sym.spec import Spec, Statement, Term, diag, inner, outer, total, vector, z

b = vector("b", "probability")
w = vector("w", "positive")
u = sp.exp(z)
alpha = total(u)
r = u - alpha * b
rb = inner(r, b)
# By hand: dL/dz_j = u_j (r_j - <r, b>), and the Hessian
# diag(u o (r - <r,b>) + u^2) - u o b u^T - u (u o b)^T + <b, b> u u^T.
B_rescaled = (
    diag(u * (r - rb) + u**2) - outer(u * b, u) - outer(u, u * b) + inner(b, b) * outer(u, u)
)

SPEC = Spec(
    name="rescaled",
    description="Rescaled softmax regression: squared distance of exp(Ax) to <exp(Ax), 1> b "
    "+ weighted ridge on the logits.",
    terms=[
        Term(
            "reality",
            sp.Rational(1, 2) * (u - alpha * b) ** 2,
            latex=r"\tfrac12\|\exp(Ax)-\langle \exp(Ax), \mathbf{1}\rangle b\|_2^2",
        ),
        Term("regularizer", sp.Rational(1, 2) * w**2 * z**2, latex=r"\tfrac12\|WAx\|_2^2"),
    ],
    vectors=[b, w],
    statements=[
        Statement("grad-reality", "reality", "z_gradient", u * (r - rb)),
        Statement("grad-regularizer", "regularizer", "z_gradient", w**2 * z),
        Statement("B_rescaled", "reality", "z_hessian", B_rescaled),
        Statement("W2", "regularizer", "z_hessian", diag(w**2)),
        Statement("grad-total", "total", "z_gradient", u * (r - rb) + w**2 * z),
        Statement("hessian-total", "total", "z_hessian", B_rescaled + diag(w**2)),
    ],
)
