"""Ridge prior: the default reality and creativity with a per-coordinate Gaussian prior on x.

    L(x) = 1/2 ||f - b||^2 + gamma <f, log f> + 1/2 sum_i lam_i (x_i - x0_i)^2

``lam`` and ``x0`` are d-vectors (x-space parameters, shape (d,)).
"""

import sympy as sp

from creality_sym.spec import Spec, Statement, Term, diag, f, inner, outer, scalar, vector, x, z

b = vector("b", "probability")
lam = vector("lam", "positive", space="x")
x0 = vector("x0", "real", space="x")
gamma = scalar("gamma", "nonnegative")

c = f - b
s = inner(f, c)
qq = f * (2 * f - b)
m = inner(f, z)
v = f * (z - m)
B_real = (
    diag(f * (2 * f - b - s)) - outer(qq, f) - outer(f, qq) + inner(3 * f - 2 * b, f) * outer(f, f)
)
B_cre = diag(f + v) - outer(f, f) - outer(v, f) - outer(f, v)

SPEC = Spec(
    name="ridge_prior",
    description="Reality (squared distance to b) + gamma * creativity (negative entropy) "
    "+ a per-coordinate Gaussian prior on x.",
    terms=[
        Term("reality", sp.Rational(1, 2) * (f - b) ** 2, latex=r"\tfrac12\|f-b\|_2^2"),
        Term("creativity", f * sp.log(f), weight=gamma, latex=r"\langle f, \log f\rangle"),
        Term(
            "prior",
            sp.Rational(1, 2) * lam * (x - x0) ** 2,
            space="x",
            latex=r"\tfrac12\sum_i \lambda_i (x_i - x_{0,i})^2",
        ),
    ],
    vectors=[b, lam, x0],
    scalars=[gamma],
    tradeoff="gamma",
    statements=[
        Statement("grad-reality", "reality", "z_gradient", f * c - s * f),
        Statement("grad-creativity", "creativity", "z_gradient", v),
        Statement("grad-prior", "prior", "x_gradient", lam * (x - x0)),
        Statement("B_real", "reality", "z_hessian", B_real),
        Statement("B_cre", "creativity", "z_hessian", B_cre),
        Statement("hess-prior", "prior", "x_hessian", lam),
        Statement("grad-total", "total", "z_gradient", f * c - s * f + gamma * v),
        Statement("hessian-total", "total", "z_hessian", B_real + gamma * B_cre),
        Statement("grad-total-x", "total", "x_gradient", lam * (x - x0)),
        Statement("hessian-total-x", "total", "x_hessian", lam),
    ],
)
