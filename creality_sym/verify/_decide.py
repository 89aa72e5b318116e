"""Deciding ``lhs == rhs`` for concrete SymPy expressions: a proof, a refutation, or neither.

:func:`is_zero` is the exact test (a ``True`` is a proof). :func:`decide` runs it
under a time limit and, when it does not prove the identity, evaluates both
sides with mpmath at :data:`PROBE_DPS` digits at a few random *consistent*
points (every symbol given the value it stands for, e.g. ``U_j = exp(s z_j)``):

* a clear difference (relative :data:`FAIL_REL` or more at some point) is a
  real difference: ``FAIL``;
* agreement is reported as ``undecided``, with the number of digits that agree
  and the reason (the exact test could not prove zero, or ran out of time).

A correct identity is therefore never reported as failed because SymPy could
not simplify it (symbolic exponents such as ``f**q``, ``exp(z)`` beside the
softmax, square roots).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp

from creality_sym.verify._limits import TimeLimitExceeded, time_limit
from creality_sym.verify.report import FAIL, PASS, UNDECIDED

#: digits of the random-point evaluation; points per undecided identity.
PROBE_DPS = 50
PROBE_POINTS = 3
#: relative difference above which a probe counts as a real difference.
FAIL_REL = 1e-12
#: default seconds for the exact test of one identity (the probe gets as long again).
CHECK_SECONDS = 20.0

#: symbol -> value at one random consistent point (drawn from the generator).
Sampler = Callable[[np.random.Generator], Mapping[sp.Symbol, mpmath.mpf]]


@dataclass(frozen=True)
class Decision:
    """``verdict`` (pass / FAIL / undecided) and why (empty for an exact proof)."""

    verdict: str
    reason: str = ""


# ----------------------------------------------------------------------------- exact


def is_zero(expr: sp.Expr) -> bool:
    """Exact test that an expression is identically 0 (a zero result is a proof).

    First in a sparse polynomial ring over QQ (:func:`_ring_zero`): function
    calls become new symbols, every inverse power ``B**-k`` a generator, and
    the result must be the zero polynomial, at once or after the denominators
    are cleared. Otherwise the numerator of ``together(expr)`` must ``expand``
    to 0. Powers with symbolic or fractional exponents (``U**q``,
    ``U**(q-1)``, ``S**(3/2)``) are split into an integer power times a power
    with a fixed exponent, which becomes a new symbol, so that
    ``U**(q-1) * U == U**q`` is found; a root ``S**(1/m)`` keeps its relation
    ``r**m = S``, used when the ring clears the denominators.
    """
    roots: dict[sp.Symbol, tuple[sp.Expr, int]] = {}
    if any(not p.exp.is_Integer for p in expr.atoms(sp.Pow)):
        expr = _split_powers(expr, roots)
    return _ring_zero(expr, roots) or _fraction_zero(expr)


def _fraction_zero(expr: sp.Expr) -> bool:
    num, _ = sp.fraction(sp.together(expr))
    return sp.expand(num) == 0


def _ring_zero(expr: sp.Expr, roots: Mapping[sp.Symbol, tuple[sp.Expr, int]]) -> bool:
    """Zero with every inverse power ``B**-k`` a generator ``t`` and ``t B = 1`` used.

    The expression is a polynomial ``P`` in the symbols and the ``t_i``; with
    ``M_i`` its degree in ``t_i``, ``prod_i B_i**M_i P`` (each ``t_i**m`` replaced by
    ``B_i**(M_i - m)``) is a polynomial, zero exactly when the expression is
    (where no ``B_i`` vanishes). A root ``r = S**(1/m)`` (``roots``) is then
    reduced by ``r**m = S``. All in sparse polynomial arithmetic over QQ, which
    is much faster than ``together`` on large sums of fractions. A zero result
    is a proof; anything else proves nothing.
    """
    bases: dict[sp.Expr, sp.Symbol] = {}
    inverses: dict[sp.Expr, sp.Expr] = {}
    for p in sorted(expr.atoms(sp.Pow), key=sp.default_sort_key):
        if p.exp.is_Integer and p.exp < 0:
            sym = bases.setdefault(p.base, sp.Symbol(f"inv{len(bases)}_"))
            inverses[p] = sym ** (-p.exp)
    expr = expr.xreplace(inverses)
    for base in bases:
        if any(q.exp.is_Integer and q.exp < 0 for q in base.atoms(sp.Pow)):
            return False  # an inverse inside a denominator: not cleared in one pass
    calls = sorted(
        {c for e in (expr, *bases, *(b for b, _ in roots.values())) for c in e.atoms(sp.Function)},
        key=sp.default_sort_key,
    )
    opaque = {c: sp.Symbol(f"call_{i}_") for i, c in enumerate(calls)}
    expr = expr.xreplace(opaque)
    known = [expr, *(b.xreplace(opaque) for b in bases)]
    known += [b.xreplace(opaque) for b, _ in roots.values()]
    gens = sorted({s for e in known for s in e.free_symbols} | set(roots), key=str)
    if not gens:
        return expr == 0
    try:
        ring = sp.ring(gens, sp.QQ)[0]
        poly = ring.from_expr(expr)
        if poly == 0:  # zero whatever the generators' values: no clearing needed
            return True
        for base, sym in bases.items():
            poly = _clear(ring, poly, gens.index(sym), ring.from_expr(base.xreplace(opaque)))
        for sym, (base, m) in roots.items():
            poly = _reduce_root(
                ring, poly, gens.index(sym), ring.from_expr(base.xreplace(opaque)), m
            )
    except (ValueError, sp.polys.polyerrors.CoercionFailed):
        return False
    return poly == 0


def _by_degree(ring: sp.polys.rings.PolyRing, poly: object, i: int) -> dict[int, object]:
    """``{m: c_m}`` with ``poly = sum_m c_m g_i**m`` (``c_m`` free of generator ``i``)."""
    parts: dict[int, object] = {}
    for monom, coeff in poly.terms():  # type: ignore[attr-defined]
        rest = list(monom)
        m, rest[i] = rest[i], 0
        parts[m] = parts.get(m, ring.zero) + ring({tuple(rest): coeff})
    return parts


def _clear(ring: sp.polys.rings.PolyRing, poly: object, i: int, base: object) -> object:
    """``base**M poly`` with ``g_i = 1/base`` (``M``: the degree in ``g_i``)."""
    parts = _by_degree(ring, poly, i)
    top = max(parts, default=0)
    if top == 0:
        return poly
    powers = [ring.one]
    for _ in range(top):
        powers.append(powers[-1] * base)
    return sum((c * powers[top - m] for m, c in parts.items()), ring.zero)


def _reduce_root(
    ring: sp.polys.rings.PolyRing, poly: object, i: int, base: object, m: int
) -> object:
    """``poly`` with ``g_i**e = g_i**(e mod m) base**(e // m)`` (``g_i = base**(1/m)``)."""
    parts = _by_degree(ring, poly, i)
    if max(parts, default=0) < m:
        return poly
    g = ring.gens[i]
    return sum((c * g ** (e % m) * base ** (e // m) for e, c in parts.items()), ring.zero)


def _split_powers(expr: sp.Expr, roots: dict[sp.Symbol, tuple[sp.Expr, int]]) -> sp.Expr:
    """``b**(k + c*r)`` -> ``b**k * P**c`` with ``P`` a new symbol for ``b**r`` (k, c integers).

    A rational exponent ``a/m`` gives ``r**a`` with ``r`` for ``b**(1/m)``, and
    ``roots[r] = (b, m)`` records ``r**m = b`` (for a sum or a symbol ``b``).

    Done in one substitution: SymPy would merge ``b**k * b**r`` back into one power.
    ``(b**m)**r`` (m an integer) counts as ``b**(m r)``. Like ``expand_power_base(force=True)``
    this takes the bases as positive, which they are here (probabilities, exponentials,
    their sums); the random-point probe does not depend on it.
    """
    expr = sp.expand_power_base(expr, force=True)
    table: dict[tuple[sp.Expr, sp.Expr], sp.Symbol] = {}
    reps: dict[sp.Expr, sp.Expr] = {}
    for p in sorted(expr.atoms(sp.Pow), key=sp.default_sort_key):
        if p.exp.is_Integer:
            continue
        if p.exp.is_Rational:  # b**(a/m) = r**a with r = b**(1/m), r**m = b
            key = (p.base, sp.Rational(1, p.exp.q))
            if key not in table:
                table[key] = sp.Symbol(f"pow_{len(table)}_")
                if p.base.is_Symbol or p.base.is_Add:
                    roots[table[key]] = (p.base, int(p.exp.q))
            reps[p] = table[key] ** p.exp.p
            continue
        k, rest = p.exp.as_coeff_Add()
        if not k.is_Integer:
            k, rest = sp.Integer(0), p.exp
        c, r = rest.as_coeff_Mul()
        if not (c.is_Integer and r != 1):
            c, r = sp.Integer(1), rest
        base = p.base
        while isinstance(base, sp.Pow) and base.exp.is_Integer:
            base, c = base.base, c * base.exp
        key = (base, r)
        if key not in table:
            table[key] = sp.Symbol(f"pow_{len(table)}_")
        reps[p] = p.base**k * table[key] ** c
    return expr.xreplace(reps)


# ----------------------------------------------------------------------------- probe


def _value(expr: sp.Expr, point: Mapping[sp.Symbol, mpmath.mpf]) -> mpmath.mpf:
    symbols = sorted(expr.free_symbols, key=str)
    missing = [s for s in symbols if s not in point]
    if missing:
        raise ValueError(f"no value for {missing[0]}")
    fn = sp.lambdify(symbols, expr, modules="mpmath")
    value = fn(*(point[s] for s in symbols))
    if isinstance(value, mpmath.mpc):
        if abs(value.imag) > abs(value.real) * mpmath.mpf(10) ** (-PROBE_DPS // 2):
            raise ValueError("complex value")
        value = value.real
    return mpmath.mpf(value)


def probe(
    lhs: sp.Expr, rhs: sp.Expr, sampler: Sampler, *, points: int = PROBE_POINTS, seed: int = 0
) -> float:
    """Largest relative difference ``|lhs - rhs| / max(|lhs|, |rhs|)`` over random points.

    Raises ``ValueError`` when a side cannot be evaluated there.
    """
    worst = 0.0
    with mpmath.workdps(PROBE_DPS):
        for i in range(points):
            point = sampler(np.random.default_rng([seed, i]))
            a, b = _value(sp.sympify(lhs), point), _value(sp.sympify(rhs), point)
            if not (mpmath.isfinite(a) and mpmath.isfinite(b)):
                raise ValueError("not finite at a random point")
            scale = max(abs(a), abs(b))
            tiny = mpmath.mpf(10) ** (-PROBE_DPS + 5)
            rel = 0.0 if scale <= tiny else float(abs(a - b) / scale)
            worst = max(worst, rel)
    return worst


def _digits(rel: float) -> int:
    return PROBE_DPS if rel <= 0 else max(0, min(PROBE_DPS, int(math.floor(-math.log10(rel)))))


def decide(
    lhs: sp.Expr,
    rhs: sp.Expr,
    sampler: Sampler,
    *,
    seconds: float | None = CHECK_SECONDS,
    seed: int = 0,
    exact: bool = True,
) -> Decision:
    """Is ``lhs == rhs``? Exact test first, then (if unproven) the mpmath probe.

    The exact test and the probe each run under ``seconds`` (None: no limit);
    ``exact=False`` skips the exact test (after an earlier one of the same size
    ran out of time).
    """
    reason = "could not prove zero"
    lim = plim = None
    if not exact:
        reason = "time limit: an exact test of this size ran out of time, this one was not tried"
    try:
        if exact:
            with time_limit(seconds, "exact test") as lim:
                if is_zero(sp.sympify(lhs) - sp.sympify(rhs)):
                    return Decision(PASS)
    except TimeLimitExceeded as exc:
        if exc.limit is not lim:
            raise
        reason = f"time limit: the exact test ran past {seconds:g} s"
    try:
        with time_limit(seconds, "probe") as plim:
            rel = probe(lhs, rhs, sampler, seed=seed)
    except TimeLimitExceeded as exc:
        if exc.limit is not plim:
            raise
        return Decision(UNDECIDED, f"{reason}; the random-point evaluation ran out of time too")
    except (ValueError, TypeError, ZeroDivisionError, OverflowError) as exc:
        return Decision(UNDECIDED, f"{reason}; random-point evaluation failed ({exc})")
    if rel > FAIL_REL:
        return Decision(
            FAIL,
            f"differs by {rel:.1e} (relative) at a random point ({PROBE_DPS}-digit mpmath)",
        )
    return Decision(
        UNDECIDED,
        f"{reason}; agrees to {_digits(rel)} digits at {PROBE_POINTS} random points",
    )


def combine(decisions: list[tuple[str, Decision]]) -> tuple[str, list[str]]:
    """Verdict of several decisions (FAIL > undecided > pass) and their messages."""
    verdict = PASS
    if any(d.verdict == FAIL for _, d in decisions):
        verdict = FAIL
    elif any(d.verdict == UNDECIDED for _, d in decisions):
        verdict = UNDECIDED
    messages = [f"{what}: {d.reason}" for what, d in decisions if d.verdict != PASS]
    return verdict, messages
