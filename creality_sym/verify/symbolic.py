"""Method (a): brute-force SymPy differentiation of the fully expanded loss.

For concrete sizes ``(n, d)`` the loss ``L(x) = sum_j weight * phi(f_j, z_j, ...)``
is written out with ``z_j = sum_k a_jk x_k``, ``f_j = exp(s z_j) / sum_l exp(s z_l)``
and ``log f_j = s z_j - log(sum_l exp(s z_l))`` (``s`` the logit scale), plus the
x-space terms, and differentiated by SymPy with respect to ``x``. The result is
compared with the structured forms ``A^T g + psi'(x)`` and
``A^T B A + diag(psi''(x))`` instantiated at the same ``n``.

Equality is decided exactly. Every ``exp(c_1 s z_1 + ...)`` becomes the monomial
``U_1^c_1 ...`` in symbols ``U_j`` standing for ``exp(s z_j)``, and the
logsumexp ``log(sum U)`` one symbol ``L_``. When exponentials enter only
through f, both sides are homogeneous of degree 0 in U, so ``U`` may be scaled
onto ``sum U = 1``: ``U_(n-1) = 1 - (sum of the others)``, which clears every
denominator ``(sum U)^k``. Otherwise (``exp(z)`` beside the softmax) ``U_j =
S F_j`` with ``S = sum U`` a symbol of its own and ``F_(n-1) = 1 - (sum of the
others)``, the same bijection of the positive orthant with the scale kept
(``exp(c s z_j) = S^c F_j^c`` for any, also symbolic, c). Powers with symbolic
exponents become new generators (``U^(q-2) = U^-2 P``, ``P`` for ``U^q``).
When the exact test cannot show that the difference is zero (or runs past the
time limit), 50-digit values at random consistent points decide between a real
difference (FAIL) and "undecided" (:mod:`creality_sym.verify._decide`).
A probability vector's last entry is likewise
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

import mpmath
import numpy as np
import sympy as sp

from creality_sym.derive import Derivation, TermDerivation
from creality_sym.spec import Spec, f, x, z
from creality_sym.vector import LowRank, instantiate
from creality_sym.verify._decide import (
    CHECK_SECONDS,
    Decision,
    Sampler,
    combine,
    decide,
    is_zero,
)
from creality_sym.verify._entries import LOGF, _draw_scalar, _draw_vector, prepare
from creality_sym.verify._limits import TimeLimitExceeded, time_limit
from creality_sym.verify.report import PASS, UNDECIDED, Row

__all__ = ["SIZES", "METHOD", "HOW", "Concrete", "concrete", "expanded_loss", "to_rational"]
__all__ += ["is_zero", "structured", "check", "run", "sampler"]

#: concrete sizes (n, d) checked by default.
SIZES: tuple[tuple[int, int], ...] = ((2, 1), (3, 2), (4, 3))

METHOD = "symbolic"
HOW = (
    "sympy diff of the written-out loss; exp(s z_j)->U_j with sum U = 1, logsumexp->L_; "
    "difference == 0 as a polynomial over QQ, denominators cleared and roots r**m = S reduced "
    "in the ring (rational normal form as fallback); "
    "unproven: 50-digit values at random points (differ: FAIL, agree: undecided)"
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
    dehomogenized: bool = True  # False: U_j = S F_j with the scale S = sum U a symbol
    scalars: tuple[tuple[sp.Symbol, str], ...] = ()  # plain scalar symbols and rules
    vectors: tuple[tuple[tuple[sp.Expr, ...], str], ...] = ()  # entries and rule


def concrete(spec: Spec, n: int, d: int, *, dehomogenize: bool = True) -> Concrete:
    """The concrete model of ``spec`` at size (n, d).

    ``dehomogenize`` puts ``U_(n-1) = 1 - sum(others)`` so that ``sum U = 1``
    (valid when the compared expressions are homogeneous of degree 0 in U);
    otherwise ``U_j = S_ F_j`` with ``F_(n-1) = 1 - sum(others)`` and ``S_`` free.
    z-space vectors get n entries, x-space vectors d.
    """
    # plain symbols (no assumptions) everywhere: SymPy's assumption queries dominate otherwise
    scalars = {sym: sp.Symbol(str(sym)) for sym in spec.scalars}
    s = spec.logit_scale.xreplace(scalars)
    A = sp.Matrix(n, d, lambda j, k: sp.Symbol(f"a_{j}_{k}"))
    xs = tuple(sp.Symbol(f"x_{k}") for k in range(d))
    zs = tuple(sp.expand(sum(A[j, k] * xs[k] for k in range(d))) for j in range(n))
    U: tuple[sp.Expr, ...] = tuple(sp.Symbol(f"U_{j}") for j in range(n))
    # U_j -> F_j = U_j / sum(U): the last is 1 - (sum of the others); scaled by S_ if needed
    U = (*U[:-1], 1 - sp.Add(*U[:-1]))
    if not dehomogenize:
        U = tuple(SCALE * u for u in U)
    lse = sp.Symbol("L_")
    exps = [sp.exp(s * zj) for zj in zs]
    exp_sum = sp.Add(*exps)
    u_sum = sp.Add(*U) if dehomogenize else SCALE  # S_ * (sum of the F) is S_
    z_params: dict[sp.Symbol, list[sp.Expr]] = {}
    x_params: dict[sp.Symbol, list[sp.Expr]] = {}
    vectors = []
    for sym, rule in spec.vectors.items():
        space = getattr(sym, "space", "z")
        entries = [sp.Symbol(f"{sym}_{j}") for j in range(d if space == "x" else n)]
        if rule == "probability":  # sum b = 1 is part of the rule; the derivation may use it
            entries[-1] = 1 - sp.Add(*entries[:-1])
        (x_params if space == "x" else z_params)[sym] = entries
        vectors.append((tuple(entries), rule))
    plain = {sym: [p] * max(n, d) for sym, p in scalars.items()}
    exp_table = {
        f: [e / exp_sum for e in exps],
        z: list(zs),
        LOGF: [s * zj - sp.log(exp_sum) for zj in zs],
        **z_params,
        **plain,
    }
    rat_table = {
        f: [u / u_sum for u in U],
        z: list(zs),
        LOGF: [s * zj - lse for zj in zs],
        **z_params,
        **plain,
    }
    x_table = {x: list(xs), **x_params, **plain}
    rules = tuple((scalars[sym], rule) for sym, rule in spec.scalars.items())
    tables = (x_table, exp_table, rat_table)
    return Concrete(
        n, d, A, xs, U, lse, zs, *tables, exp_sum, s, dehomogenize, rules, tuple(vectors)
    )


def sampler(cm: Concrete) -> Sampler:
    """Random consistent points of ``cm``: ``U_j = exp(s z_j)`` (over their sum when
    dehomogenized), ``L_ = log(sum exp(s z))``, parameters by their rules."""
    free = sorted(cm.scale.free_symbols, key=str)
    scale_fn = sp.lambdify(free, cm.scale, modules="mpmath")

    def draw(rng: np.random.Generator) -> dict[sp.Symbol, mpmath.mpf]:
        point: dict[sp.Symbol, mpmath.mpf] = {}
        for sym, rule in cm.scalars:
            point[sym] = mpmath.mpf(_draw_scalar(rule, rng))
        for entries, rule in cm.vectors:
            for e, v in zip(entries, _draw_vector(rule, len(entries), rng), strict=True):
                if e.is_Symbol:
                    point[e] = mpmath.mpf(float(v))
        for a in cm.A:
            point[a] = mpmath.mpf(float(rng.normal(scale=0.7)))
        for xk in cm.xs:
            point[xk] = mpmath.mpf(float(rng.normal()))
        s = mpmath.mpf(scale_fn(*(point[v] for v in free)))
        e = [
            mpmath.exp(s * mpmath.fsum(point[cm.A[j, k]] * point[cm.xs[k]] for k in range(cm.d)))
            for j in range(cm.n)
        ]
        total = mpmath.fsum(e)
        for j, ej in enumerate(e[:-1]):
            point[sp.Symbol(f"U_{j}")] = ej / total
        if not cm.dehomogenized:
            point[SCALE] = total
        point[cm.lse] = mpmath.log(total)
        return point

    return draw


#: ``sum_j exp(s z_j)`` where it cannot be scaled away.
SCALE = sp.Symbol("S_")

TermList = Sequence[tuple[sp.Expr, sp.Expr, str, bool]]  # (phi, weight, space, summed)


def expanded_loss(spec: Spec, cm: Concrete, terms: TermList) -> sp.Expr:
    """``sum_t weight_t * term_t`` written out in x (exp form).

    A summed term is ``sum_j phi_j``; an unsummed one (``summed=False``) the scalar
    ``phi`` itself (its global sums written out).
    """
    total = sp.Integer(0)
    for phi, weight, space, *rest in terms:
        summed = rest[0] if rest else True
        phi = prepare(phi)
        table, size = (cm.x_table, cm.d) if space == "x" else (cm.exp_table, cm.n)
        if summed:
            value = sp.Add(*(instantiate(phi, i, table, size) for i in range(size)))
        else:
            value = instantiate(phi, 0, table, size)
        total += instantiate(weight, 0, cm.exp_table, cm.n) * value
    return total


def to_rational(expr: sp.Expr, cm: Concrete) -> sp.Expr:
    """Logsumexp to ``L_`` and each ``exp(c_1 s z_1 + ... + r)`` to ``exp(r) U_1^c_1 ...``.

    The ``c_j`` may be symbolic (``exp(z)`` with a logit scale ``1/tau`` is
    ``U^tau``); an exponential that is not of this form stays as it is.
    """
    expr = expr.xreplace({sp.log(cm.exp_sum): cm.lse})
    entries = set(cm.A) | set(cm.xs)

    def monomial(arg: sp.Expr) -> sp.Expr:
        arg = sp.expand(arg)
        coeffs = []
        for j in range(cm.n):
            ck = sp.expand(arg.coeff(cm.A[j, 0]).coeff(cm.xs[0]))
            coeffs.append(sp.cancel(ck / cm.scale))
        rest = sp.expand(arg - sum(c * cm.scale * zj for c, zj in zip(coeffs, cm.zs, strict=True)))
        if (rest.free_symbols | set().union(*(c.free_symbols for c in coeffs))) & entries:
            return sp.exp(arg)
        return sp.exp(rest) * sp.Mul(*(u**c for u, c in zip(cm.U, coeffs, strict=True)))

    expr = expr.xreplace({a: monomial(a.args[0]) for a in expr.atoms(sp.exp)})
    if not cm.dehomogenized:  # the exponentials' sum, written out, is the scale symbol
        expr = expr.xreplace({sp.Add(*cm.U): SCALE})
    return expr


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


def _term_list(spec: Spec, name: str) -> list[tuple[sp.Expr, sp.Expr, str, bool]]:
    if name == "total":
        return [(t.phi, t.weight, t.space, getattr(t, "summed", True)) for t in spec.terms]
    t = spec.term(name)
    return [(t.phi, sp.Integer(1), t.space, getattr(t, "summed", True))]


#: per quantity ("gradient", "hessian"): (what was compared, decision)
Result = dict[str, list[tuple[str, Decision]]]


def check(
    spec: Spec, td: TermDerivation, n: int, d: int, *, seconds: float | None = None
) -> Result:
    """Decisions at size (n, d) about the gradient and about the Hessian.

    ``seconds`` limits each step (writing out the loss, each exact test, each
    probe; default :data:`~creality_sym.verify._decide.CHECK_SECONDS`).
    Cached per (term losses, logit scale, parameter roles, derived forms, n, d).
    """
    seconds = CHECK_SECONDS if seconds is None else seconds
    key = (
        sp.srepr(tuple(_term_list(spec, td.name))),
        sp.srepr(spec.logit_scale),
        tuple(sorted((str(k), v, getattr(k, "space", "z")) for k, v in spec.vectors.items())),
        sp.srepr(_derived_forms(td)),
        n,
        d,
    )
    if key not in _CACHE:
        result = _check(spec, td, n, d, seconds)
        if not _timed_out(result):
            _CACHE[key] = result
        return result
    return _CACHE[key]


_CACHE: dict[tuple[object, ...], Result] = {}


def _timed_out(result: Result) -> bool:
    return any("time limit" in dec.reason for items in result.values() for _, dec in items)


def _derived_forms(td: TermDerivation) -> tuple[object, ...]:
    B: LowRank = td.z_hessian
    pieces = getattr(td, "pieces", None)
    base = getattr(pieces, "matrix", None)
    extra = (getattr(pieces, "ones", None), getattr(pieces, "ones_total", None))
    base_forms = (base.diagonal, base.terms) if isinstance(base, LowRank) else None
    gtotal = getattr(td, "z_gradient_total", None)
    forms = (td.z_gradient, B.diagonal, B.terms, td.x_gradient, td.x_hessian, gtotal)
    return (*forms, extra, base_forms)


def _homogeneous(spec: Spec, name: str) -> bool:
    """True when exponentials enter only through f, so the U-form is of degree 0 in U."""
    return not any(sp.sympify(t[0]).has(sp.exp) for t in _term_list(spec, name))


def _limited(seconds: float, what: str) -> Decision:
    return Decision(UNDECIDED, f"time limit: {what} ran past {seconds:g} s")


def _check(spec: Spec, td: TermDerivation, n: int, d: int, seconds: float) -> Result:
    lim = None
    try:
        with time_limit(seconds, "brute force") as lim:
            cm = concrete(spec, n, d, dehomogenize=_homogeneous(spec, td.name))
            loss = expanded_loss(spec, cm, _term_list(spec, td.name))
            grad_s, hess_s = structured(td, cm)
            g0 = sp.diff(loss, cm.xs[0])
            g_pair = (to_rational(g0, cm), to_rational(grad_s[0], cm))
    except TimeLimitExceeded as exc:
        if exc.limit is not lim:
            raise
        dec = _limited(seconds, "writing out and differentiating the loss")
        return {"gradient": [("brute force", dec)], "hessian": [("brute force", dec)]}
    samp = sampler(cm)
    # Both sides are invariant under relabelling the columns k of A together with x_k
    # (z_j and hence f_j, log f_j are), so component 0 and entries (0,0), (0,1) decide all.
    grad = decide(*g_pair, samp, seconds=seconds)
    out: Result = {"gradient": [("gradient (every component, by symmetry)", grad)], "hessian": []}
    for m in range(min(d, 2)):
        which = "diagonal Hessian entries" if m == 0 else "off-diagonal Hessian entries"
        lim = None
        try:
            with time_limit(seconds, "brute force") as lim:
                h0m = to_rational(sp.diff(g0, cm.xs[m]), cm)
                hs = to_rational(hess_s[0, m], cm)
        except TimeLimitExceeded as exc:
            if exc.limit is not lim:
                raise
            out["hessian"].append((which, _limited(seconds, "differentiating the gradient")))
            continue
        exact = not _timed_out(out)
        out["hessian"].append((which, decide(h0m, hs, samp, seconds=seconds, exact=exact)))
    g_extra, h_extra = _reductions(td, cm, samp, seconds)
    out["gradient"] += g_extra
    out["hessian"] += h_extra
    return out


def _reductions(
    td: TermDerivation, cm: Concrete, samp: Sampler, seconds: float
) -> tuple[list[tuple[str, Decision]], list[tuple[str, Decision]]]:
    """The derivation's reductions, if it has them: ``<1, g>``, ``B 1_n``, ``<1, B 1_n>``.

    ``B`` here is the base part ``td.pieces.matrix`` (the part the reductions
    describe), not the full z-Hessian with its global-sum terms.
    """
    n = cm.n

    def entry(e: sp.Expr, j: int) -> sp.Expr:
        return to_rational(instantiate(prepare(e), j, cm.rat_table, n), cm)

    g_out: list[tuple[str, Decision]] = []
    h_out: list[tuple[str, Decision]] = []
    gtotal = getattr(td, "z_gradient_total", None)
    if gtotal is not None:
        g = [entry(td.z_gradient, j) for j in range(n)]
        dec = decide(sp.Add(*g), entry(gtotal, 0), samp, seconds=seconds)
        g_out.append(("z_gradient_total vs <1, g>", dec))
    pieces = getattr(td, "pieces", None)
    base = getattr(pieces, "matrix", None)
    if not isinstance(base, LowRank):
        return g_out, h_out
    B = base.map(prepare).matrix(lambda e, j: instantiate(e, j, cm.rat_table, n), n)
    B = B.applyfunc(lambda e: to_rational(e, cm))
    ones = getattr(pieces, "ones", None)
    if ones is not None:
        rows = [
            (f"row {j}", decide(sp.Add(*B.row(j)), entry(ones, j), samp, seconds=seconds))
            for j in range(n)
        ]
        verdict, reasons = combine(rows)
        h_out.append(("pieces.ones vs B 1_n", Decision(verdict, "; ".join(reasons))))
    ones_total = getattr(pieces, "ones_total", None)
    if ones_total is not None:
        dec = decide(sp.Add(*B), entry(ones_total, 0), samp, seconds=seconds)
        h_out.append(("pieces.ones_total vs <1, B 1_n>", dec))
    return g_out, h_out


def run(
    derivation: Derivation,
    *,
    sizes: Sequence[tuple[int, int]] = SIZES,
    seconds: float | None = None,
) -> list[Row]:
    """Rows (gradient, hessian) for every term and the total of ``derivation``.

    Besides the gradient and Hessian, the derivation's reductions (``<1, g>``,
    ``B 1_n``, ``<1, B 1_n>``, when present) are checked against them. After a
    step runs out of time at one size, the larger sizes of that term are skipped.
    """
    spec = derivation.spec
    rows: list[Row] = []
    for td in derivation.all:
        t0 = time.perf_counter()
        found: dict[str, list[tuple[str, Decision]]] = {"gradient": [], "hessian": []}
        done: list[str] = []
        for n, d in sizes:
            result = check(spec, td, n, d, seconds=seconds)
            done.append(f"({n},{d})")
            for q in found:
                found[q] += [(f"n={n},d={d}: {what}", dec) for what, dec in result[q]]
            if _timed_out(result):
                break
        where = ", ".join(done)
        skipped = [f"({n},{d})" for n, d in sizes][len(done) :]
        seconds_used = time.perf_counter() - t0
        for quantity in ("gradient", "hessian"):
            verdict, messages = combine(found[quantity])
            if verdict == PASS:
                what = f"exactly equal at (n,d) in {where}"
            else:
                what = "; ".join(messages)
            if skipped:
                what += f"; not tried at {', '.join(skipped)} after the time limit"
            rows.append(
                Row(
                    spec=spec.name,
                    term=td.name,
                    quantity=quantity,
                    method=METHOD,
                    verdict=verdict,
                    detail=f"{what} [{HOW}]",
                    seconds=seconds_used / 2,
                )
            )
    return rows
