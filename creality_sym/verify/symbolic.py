"""Method (a): brute-force SymPy differentiation of the fully expanded loss.

For concrete sizes ``(n, d)`` the loss ``L(x) = sum_j weight * phi(f_j, z_j, ...)``
is written out with ``z_j = sum_k a_jk x_k``, ``f_j = exp(s z_j) / sum_l exp(s z_l)``
and ``log f_j = s z_j - log(sum_l exp(s z_l))`` (``s`` the logit scale), plus the
x-space terms, and differentiated by SymPy with respect to ``x``. The result is
compared with the structured forms ``A^T g + psi'(x)`` and
``A^T B A + diag(psi''(x))`` instantiated at the same ``n``.

Equality is decided exactly. Every ``exp(c_1 s z_1 + ...)`` becomes the monomial
``U_1^c_1 ...`` in symbols ``U_j`` standing for ``exp(s z_j)``, and the
logsumexp ``log(sum U)`` one symbol ``L_``. Both sides are then homogeneous of
degree 0 in U (exponentials enter only through f), so ``U`` may be scaled onto
``sum U = 1``: ``U_(n-1) = 1 - (sum of the others)``, which clears every
denominator ``(sum U)^k``. A probability vector's last entry is likewise
``1 - (sum of the others)`` (the derivation may use ``sum b = 1``). The
difference is rebuilt in a sparse polynomial ring over QQ (inverse powers of
scalars and function calls such as ``log(b_0)`` become extra generators) and
must be the zero polynomial; otherwise it must vanish in rational-function normal
form (``together``, then ``expand`` of the numerator). Treating U, L_, z, a, x
as independent symbols makes a zero result a proof of the identity.

Both sides are invariant under relabelling the columns of A together with the
entries of x, so gradient component 0 and Hessian entries (0,0), (0,1) decide
all components and entries.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from creality_sym.derive import Derivation, TermDerivation
from creality_sym.spec import Spec, f, x, z
from creality_sym.vector import LowRank, instantiate
from creality_sym.verify._entries import LOGF, prepare
from creality_sym.verify.report import Row

#: concrete sizes (n, d) checked by default.
SIZES: tuple[tuple[int, int], ...] = ((2, 1), (3, 2), (4, 3))

METHOD = "symbolic"
HOW = (
    "sympy diff of the written-out loss; exp(s z_j)->U_j with sum U = 1, logsumexp->L_; "
    "difference == 0 as a polynomial over QQ (rational normal form as fallback)"
)


@dataclass(frozen=True)
class Concrete:
    """Concrete symbols at size (n, d): A (n, d), x (d,), U (n,), logits and tables."""

    n: int
    d: int
    A: sp.Matrix
    xs: tuple[sp.Symbol, ...]
    U: tuple[sp.Expr, ...]
    lse: sp.Symbol
    zs: tuple[sp.Expr, ...]  # logits, expanded sums
    x_table: dict[sp.Symbol, list[sp.Expr]]  # x-space entries
    exp_table: dict[sp.Symbol, list[sp.Expr]]  # entries in exp form (to differentiate)
    rat_table: dict[sp.Symbol, list[sp.Expr]]  # entries in U form (to compare)
    exp_sum: sp.Expr
    scale: sp.Expr


def concrete(spec: Spec, n: int, d: int, *, dehomogenize: bool = True) -> Concrete:
    """The concrete model of ``spec`` at size (n, d).

    ``dehomogenize`` puts ``U_(n-1) = 1 - sum(others)`` so that ``sum U = 1``
    (valid when the compared expressions are homogeneous of degree 0 in U).
    """
    # plain symbols (no assumptions) everywhere: SymPy's assumption queries dominate otherwise
    scalars = {sym: sp.Symbol(str(sym)) for sym in spec.scalars}
    s = spec.logit_scale.xreplace(scalars)
    A = sp.Matrix(n, d, lambda j, k: sp.Symbol(f"a_{j}_{k}"))
    xs = tuple(sp.Symbol(f"x_{k}") for k in range(d))
    zs = tuple(sp.expand(sum(A[j, k] * xs[k] for k in range(d))) for j in range(n))
    U: tuple[sp.Expr, ...] = tuple(sp.Symbol(f"U_{j}") for j in range(n))
    if dehomogenize:  # U_j -> F_j = U_j / sum(U): the last is 1 - (sum of the others)
        U = (*U[:-1], 1 - sp.Add(*U[:-1]))
    lse = sp.Symbol("L_")
    exps = [sp.exp(s * zj) for zj in zs]
    exp_sum = sp.Add(*exps)
    u_sum = sp.Add(*U)
    params: dict[sp.Symbol, list[sp.Expr]] = {}
    for sym, rule in spec.vectors.items():
        entries = [sp.Symbol(f"{sym}_{j}") for j in range(n)]
        if rule == "probability":  # sum b = 1 is part of the rule; the derivation may use it
            entries[-1] = 1 - sp.Add(*entries[:-1])
        params[sym] = entries
    params.update({sym: [plain] * max(n, d) for sym, plain in scalars.items()})
    exp_table = {
        f: [e / exp_sum for e in exps],
        z: list(zs),
        LOGF: [s * zj - sp.log(exp_sum) for zj in zs],
        **params,
    }
    rat_table = {
        f: [u / u_sum for u in U],
        z: list(zs),
        LOGF: [s * zj - lse for zj in zs],
        **params,
    }
    x_table = {x: list(xs), **params}
    return Concrete(n, d, A, xs, U, lse, zs, x_table, exp_table, rat_table, exp_sum, s)


def expanded_loss(
    spec: Spec, cm: Concrete, terms: Sequence[tuple[sp.Expr, sp.Expr, str]]
) -> sp.Expr:
    """``sum_t weight_t * sum phi_t`` written out in x (exp form); terms as (phi, weight, space)."""
    total = sp.Integer(0)
    for phi, weight, space in terms:
        phi = prepare(phi)
        if space == "x":
            entries = [instantiate(phi, i, cm.x_table, cm.d) for i in range(cm.d)]
        else:
            entries = [instantiate(phi, j, cm.exp_table, cm.n) for j in range(cm.n)]
        total += instantiate(weight, 0, cm.exp_table, cm.n) * sp.Add(*entries)
    return total


def to_rational(expr: sp.Expr, cm: Concrete) -> sp.Expr:
    """Logsumexp to ``L_`` and each exponential to a monomial in the ``U_j``."""
    expr = expr.xreplace({sp.log(cm.exp_sum): cm.lse})

    def monomial(arg: sp.Expr) -> sp.Expr:
        arg = sp.expand(arg)
        coeffs = []
        for j in range(cm.n):
            ck = sp.expand(arg.coeff(cm.A[j, 0]).coeff(cm.xs[0]))
            coeffs.append(sp.cancel(ck / cm.scale))
        rest = sp.expand(arg - sum(c * cm.scale * zj for c, zj in zip(coeffs, cm.zs, strict=True)))
        if rest != 0 or not all(c.is_rational for c in coeffs):
            raise ValueError(f"exponential exp({arg}) is not a monomial in exp(s z_j)")
        return sp.Mul(*(u**c for u, c in zip(cm.U, coeffs, strict=True)))

    expr = expr.xreplace({a: monomial(a.args[0]) for a in expr.atoms(sp.exp)})
    if expr.has(sp.exp) or any(a.has(cm.exp_sum) for a in expr.atoms(sp.log)):
        raise ValueError("exponentials left after the U_j substitution")
    return expr


def is_zero(expr: sp.Expr) -> bool:
    """Exact test that an expression is identically 0 (a zero result is a proof).

    Fast path: inverse powers ``s**-k`` of symbols become ``inv_s**k`` and function
    calls become new symbols; the result is rebuilt in a sparse polynomial ring
    over QQ and must be the zero polynomial. Otherwise (or when the ring cannot
    hold it): the numerator of ``together(expr)`` must ``expand`` to 0.
    """
    if _ring_zero(expr):
        return True
    num, _ = sp.fraction(sp.together(expr))
    return sp.expand(num) == 0


def _ring_zero(expr: sp.Expr) -> bool:
    inverses = {
        p: sp.Symbol(f"inv_{p.base}_") ** (-p.exp)
        for p in expr.atoms(sp.Pow)
        if p.base.is_Symbol and p.exp.is_Integer and p.exp < 0
    }
    expr = expr.xreplace(inverses)
    calls = sorted(expr.atoms(sp.Function), key=sp.default_sort_key)  # e.g. log(b_0): opaque
    expr = expr.xreplace({c: sp.Symbol(f"call_{i}_") for i, c in enumerate(calls)})
    gens = sorted(expr.free_symbols, key=str)
    if not gens:
        return expr == 0
    ring = sp.ring(gens, sp.QQ)[0]
    try:
        return ring.from_expr(expr) == 0
    except (ValueError, sp.polys.polyerrors.CoercionFailed):
        return False


def structured(td: TermDerivation, cm: Concrete) -> tuple[list[sp.Expr], sp.Matrix]:
    """``A^T g + psi'(x)`` (d entries) and ``A^T B A + diag(psi''(x))`` (d x d), U form."""
    n, d = cm.n, cm.d
    g = sp.Matrix([instantiate(prepare(td.z_gradient), j, cm.rat_table, n) for j in range(n)])
    B = td.z_hessian.map(prepare).matrix(lambda e, j: instantiate(e, j, cm.rat_table, n), n)
    xg = [instantiate(td.x_gradient, i, cm.x_table, d) for i in range(d)]
    xh = [instantiate(td.x_hessian, i, cm.x_table, d) for i in range(d)]
    grad = cm.A.T * g
    hess = cm.A.T * B * cm.A + sp.diag(*xh)
    return [grad[k] + xg[k] for k in range(d)], hess


def _term_list(spec: Spec, name: str) -> list[tuple[sp.Expr, sp.Expr, str]]:
    if name == "total":
        return [(t.phi, t.weight, t.space) for t in spec.terms]
    t = spec.term(name)
    return [(t.phi, sp.Integer(1), t.space)]


Problems = tuple[tuple[str, ...], tuple[str, ...]]  # (gradient, hessian) messages


def check(spec: Spec, td: TermDerivation, n: int, d: int) -> Problems:
    """What differs at size (n, d): messages about the gradient and about the Hessian.

    Cached per (term losses, logit scale, vector rules, derived forms, n, d).
    """
    key = (
        sp.srepr(tuple(_term_list(spec, td.name))),
        sp.srepr(spec.logit_scale),
        tuple(sorted((str(k), v) for k, v in spec.vectors.items())),
        sp.srepr(_derived_forms(td)),
        n,
        d,
    )
    if key not in _CACHE:
        _CACHE[key] = _check(spec, td, n, d)
    return _CACHE[key]


_CACHE: dict[tuple[object, ...], Problems] = {}


def _derived_forms(td: TermDerivation) -> tuple[object, ...]:
    B: LowRank = td.z_hessian
    pieces = getattr(td, "pieces", None)
    extra = (getattr(pieces, "ones", None), getattr(pieces, "ones_total", None))
    gtotal = getattr(td, "z_gradient_total", None)
    return (td.z_gradient, B.diagonal, B.terms, td.x_gradient, td.x_hessian, gtotal, extra)


def _homogeneous(spec: Spec, name: str) -> bool:
    """True when exponentials enter only through f, so the U-form is of degree 0 in U."""
    return not any(sp.sympify(phi).has(sp.exp) for phi, _, _ in _term_list(spec, name))


def _check(spec: Spec, td: TermDerivation, n: int, d: int) -> Problems:
    cm = concrete(spec, n, d, dehomogenize=_homogeneous(spec, td.name))
    loss = expanded_loss(spec, cm, _term_list(spec, td.name))
    grad_s, hess_s = structured(td, cm)
    # Both sides are invariant under relabelling the columns k of A together with x_k
    # (z_j and hence f_j, log f_j are), so component 0 and entries (0,0), (0,1) decide all.
    bad_g: list[str] = []
    bad_h: list[str] = []
    g0 = sp.diff(loss, cm.xs[0])
    if not is_zero(to_rational(g0, cm) - grad_s[0]):
        bad_g.append("gradient differs from brute force (every component, by symmetry)")
    for m in range(min(d, 2)):
        h0m = sp.diff(g0, cm.xs[m])
        if not is_zero(to_rational(h0m, cm) - hess_s[0, m]):
            which = "diagonal" if m == 0 else "off-diagonal"
            bad_h.append(f"{which} Hessian entries differ from brute force")
    g_extra, h_extra = _reductions(td, cm)
    return tuple(bad_g + g_extra), tuple(bad_h + h_extra)


def _reductions(td: TermDerivation, cm: Concrete) -> tuple[list[str], list[str]]:
    """The derivation's reductions, if it has them: ``<1, g>``, ``B 1_n``, ``<1, B 1_n>``."""
    n = cm.n

    def entry(e: sp.Expr, j: int) -> sp.Expr:
        return instantiate(prepare(e), j, cm.rat_table, n)

    g = [entry(td.z_gradient, j) for j in range(n)]
    B = td.z_hessian.map(prepare).matrix(entry, n)
    bad_g, bad_h = [], []
    gtotal = getattr(td, "z_gradient_total", None)
    if gtotal is not None and not is_zero(sp.Add(*g) - entry(gtotal, 0)):
        bad_g.append("z_gradient_total differs from <1, g>")
    pieces = getattr(td, "pieces", None)
    ones = getattr(pieces, "ones", None)
    if ones is not None and any(not is_zero(sp.Add(*B.row(j)) - entry(ones, j)) for j in range(n)):
        bad_h.append("pieces.ones differs from B 1_n")
    ones_total = getattr(pieces, "ones_total", None)
    if ones_total is not None and not is_zero(sp.Add(*B) - entry(ones_total, 0)):
        bad_h.append("pieces.ones_total differs from <1, B 1_n>")
    return bad_g, bad_h


def run(derivation: Derivation, *, sizes: Sequence[tuple[int, int]] = SIZES) -> list[Row]:
    """Rows (gradient, hessian) for every term and the total of ``derivation``.

    Besides the gradient and Hessian, the derivation's reductions (``<1, g>``,
    ``B 1_n``, ``<1, B 1_n>``, when present) are checked exactly against them.
    """
    spec = derivation.spec
    rows: list[Row] = []
    where = ", ".join(f"({n},{d})" for n, d in sizes)
    for td in derivation.all:
        t0 = time.perf_counter()
        failures: dict[str, list[str]] = {"gradient": [], "hessian": []}
        for n, d in sizes:
            bad_g, bad_h = check(spec, td, n, d)
            failures["gradient"] += [f"n={n},d={d}: {m}" for m in bad_g]
            failures["hessian"] += [f"n={n},d={d}: {m}" for m in bad_h]
        seconds = time.perf_counter() - t0
        for quantity in ("gradient", "hessian"):
            bad = failures[quantity]
            what = "; ".join(bad) if bad else f"exactly equal at (n,d) in {where}"
            rows.append(
                Row(
                    spec=spec.name,
                    term=td.name,
                    quantity=quantity,
                    method=METHOD,
                    verdict="FAIL" if bad else "pass",
                    detail=f"{what} [{HOW}]",
                    seconds=seconds / 2,
                )
            )
    return rows
