"""Method (c): every paper-style :class:`Statement` against the derived quantity.

A statement's value (entry expression, or :class:`LowRank` for Hessians) is
compared with the same quantity of the derivation of its term (unweighted),
or of the weighted total when ``term == "total"``:

* exactly at a small concrete size: entries ``f_j = F_j`` with
  ``F_(n-1) = 1 - sum(others)``, ``log f_j = s z_j - L`` (``L`` the logsumexp,
  ``s`` the logit scale), ``z_j`` and parameters free symbols (a probability
  vector's last entry ``1 - sum(others)``), Hessians as explicit n x n matrices;
  the difference must reduce to exactly 0 (:func:`_decide.is_zero`); when that
  cannot be shown, 50-digit values at random consistent points decide between
  a real difference (FAIL) and "undecided" (never a failure);
* numerically at a larger n on random logits with stable ``log f``: vectors
  entrywise, Hessians by their diagonals and products with random vectors
  (never an n x n matrix).
"""

from __future__ import annotations

import time

import mpmath
import numpy as np
import sympy as sp

from creality_sym.derive import Derivation, TermDerivation
from creality_sym.spec import QUANTITIES, Spec, Statement, f, x, z
from creality_sym.vector import LowRank, instantiate
from creality_sym.verify._decide import Decision, Sampler, decide
from creality_sym.verify._entries import (
    LOGF,
    Instance,
    _draw_scalar,
    _draw_vector,
    as_vector,
    draw_parameters,
    evaluate,
    logit_scale,
    lowrank_diagonal,
    lowrank_matvec,
    lowrank_pieces,
    prepare,
    softmax_env,
    x_env,
)
from creality_sym.verify.report import FAIL, NONE, PASS, UNDECIDED, Row

METHOD = "statements"
#: sizes of the exact comparison (n for z-space, d for x-space) and of the numeric one.
EXACT_N = 4
NUMERIC_N = 200
TOL = 1e-9


def _derived(td: TermDerivation, quantity: str) -> object:
    return getattr(td, quantity)


def _as_lowrank(value: object) -> LowRank:
    return value if isinstance(value, LowRank) else LowRank(sp.sympify(value))


def _is_hessian(quantity: str) -> bool:
    return quantity.endswith("hessian")


# ----------------------------------------------------------------------------- exact


def _exact_table(spec: Spec, n: int, space: str) -> tuple[dict[sp.Symbol, list[sp.Expr]], Sampler]:
    """Concrete entries at size ``n`` and a sampler of random consistent points."""
    plain = {s: sp.Symbol(str(s)) for s in spec.scalars}
    table: dict[sp.Symbol, list[sp.Expr]] = {s: [p] * n for s, p in plain.items()}
    free: list[tuple[tuple[sp.Expr, ...], str]] = []
    for sym, rule in spec.vectors.items():
        if getattr(sym, "space", "z") != space:
            continue
        entries = [sp.Symbol(f"{sym}_{j}") for j in range(n)]
        if rule == "probability":
            entries[-1] = 1 - sp.Add(*entries[:-1])
        table[sym] = entries
        free.append((tuple(entries), rule))
    s = spec.logit_scale.xreplace(plain)
    X = [sp.Symbol(f"{'x' if space == 'x' else 'z'}_{j}") for j in range(n)]
    F = [sp.Symbol(f"F_{j}") for j in range(n - 1)]
    lse = sp.Symbol("L_")
    if space == "x":
        table[x] = X
    else:
        table.update({f: [*F, 1 - sp.Add(*F)], z: X, LOGF: [s * zj - lse for zj in X]})
    rules = [(plain[sym], rule) for sym, rule in spec.scalars.items()]
    scale = sp.lambdify(list(plain.values()), s, modules="mpmath")

    def draw(rng: np.random.Generator) -> dict[sp.Symbol, mpmath.mpf]:
        point = {sym: mpmath.mpf(_draw_scalar(rule, rng)) for sym, rule in rules}
        for entries, rule in free:
            for e, v in zip(entries, _draw_vector(rule, n, rng), strict=True):
                if e.is_Symbol:
                    point[e] = mpmath.mpf(float(v))
        point.update({xj: mpmath.mpf(float(rng.normal())) for xj in X})
        k = mpmath.mpf(scale(*(point[p] for p in plain.values())))
        e = [mpmath.exp(k * point[zj]) for zj in X]
        total = mpmath.fsum(e)
        point.update({Fj: ej / total for Fj, ej in zip(F, e, strict=False)})
        point[lse] = mpmath.log(total)
        return point

    return table, draw


def exact_decisions(
    spec: Spec, quantity: str, stated: object, derived: object
) -> list[tuple[str, Decision]]:
    """Exact comparison at size EXACT_N: (what, decision) for entries / diagonal / off-diagonal."""
    n = EXACT_N
    table, samp = _exact_table(spec, n, "x" if quantity.startswith("x_") else "z")

    def entry(e: sp.Expr, j: int) -> sp.Expr:
        return instantiate(prepare(e), j, table, n)

    if not _is_hessian(quantity):
        pairs = [(entry(stated, j), entry(derived, j)) for j in range(n)]
        return [("entries", _first_bad(pairs, samp))]
    S = _as_lowrank(stated).matrix(entry, n)
    D = _as_lowrank(derived).matrix(entry, n)
    diagonal = [(S[j, j], D[j, j]) for j in range(n)]
    off = [(S[j, k], D[j, k]) for j in range(n) for k in range(n) if j != k]
    return [
        ("diagonal entries", _first_bad(diagonal, samp)),
        ("entries off the diagonal", _first_bad(off, samp)),
    ]


def _first_bad(pairs: list[tuple[sp.Expr, sp.Expr]], samp: Sampler) -> Decision:
    """FAIL if one pair differs, else undecided if one is, else pass."""
    worst = Decision(PASS)
    for a, b in pairs:
        dec = decide(a, b, samp)
        if dec.verdict == FAIL:
            return dec
        if dec.verdict == UNDECIDED and worst.verdict == PASS:
            worst = dec
    return worst


def exact_difference(spec: Spec, quantity: str, stated: object, derived: object) -> list[str]:
    """What differs exactly at size EXACT_N ([] when equal or undecided)."""
    decisions = exact_decisions(spec, quantity, stated, derived)
    return [f"{what} differ" for what, dec in decisions if dec.verdict == FAIL]


# ----------------------------------------------------------------------------- numeric


def _numeric_env(spec: Spec, rng: np.random.Generator, space: str) -> tuple[dict, int]:
    n = NUMERIC_N
    vectors, x_vectors, scalars = draw_parameters(spec, n, n, rng)
    kappa = logit_scale(spec, scalars)
    inst = Instance(np.zeros((n, 1)), rng.normal(size=n), vectors, scalars, kappa, x_vectors)
    if space == "x":
        return x_env(inst.x, inst), n
    return softmax_env(rng.normal(scale=2.0, size=n), kappa, inst), n


def numeric_difference(
    spec: Spec, quantity: str, stated: object, derived: object, rng: np.random.Generator
) -> tuple[float, list[str]]:
    """Max relative error at n = NUMERIC_N and what differs beyond TOL."""
    env, n = _numeric_env(spec, rng, "x" if quantity.startswith("x_") else "z")
    if not _is_hessian(quantity):
        a = as_vector(evaluate(stated, env, n), n)
        b = as_vector(evaluate(derived, env, n), n)
        err = _rel(a, b)
        return err, ([] if err <= TOL else ["entries differ"])
    pa = lowrank_pieces(_as_lowrank(stated), env, n)
    pb = lowrank_pieces(_as_lowrank(derived), env, n)
    da, db = lowrank_diagonal(pa), lowrank_diagonal(pb)
    Y = rng.normal(size=(n, 3))
    oa = lowrank_matvec(pa, Y) - da[:, None] * Y  # off-diagonal part applied to Y
    ob = lowrank_matvec(pb, Y) - db[:, None] * Y
    e_diag, e_off = _rel(da, db), _rel(oa, ob)
    what = []
    if not e_diag <= TOL:
        what.append("diagonal entries differ")
    if not e_off <= TOL:
        what.append("entries off the diagonal differ")
    return max(e_diag, e_off), what


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), 1e-300)
    return float(np.max(np.abs(a - b))) / scale


# ----------------------------------------------------------------------------- driver


def check_statement(derivation: Derivation, st: Statement, rng: np.random.Generator) -> Row:
    """One row comparing statement ``st`` with the derivation."""
    spec = derivation.spec
    t0 = time.perf_counter()
    derived = _derived(derivation.get(st.term), st.quantity)
    decisions = exact_decisions(spec, st.quantity, st.value, derived)
    exact = [f"{what} differ" for what, dec in decisions if dec.verdict == FAIL]
    unproven = [f"{what}: {dec.reason}" for what, dec in decisions if dec.verdict == UNDECIDED]
    err, numeric = numeric_difference(spec, st.quantity, st.value, derived, rng)
    size = "d" if st.quantity.startswith("x_") else "n"
    where = f"exact at {size}={EXACT_N}, numeric at {size}={NUMERIC_N}: max rel. error {err:.1e}"
    if exact or numeric:
        parts = [f"{w} (exact)" for w in exact] + [f"{w} (numeric)" for w in numeric]
        detail = (
            f"{st.id} ({st.term} {st.quantity}): differs from derived; "
            + "; ".join(parts)
            + f" [{where}]"
        )
        verdict = FAIL
    elif unproven:
        detail = (
            f"{st.id} ({st.term} {st.quantity}): not proven exactly ("
            + "; ".join(unproven)
            + f"), numerically equal [{where}]"
        )
        verdict = UNDECIDED
    else:
        detail = f"{st.id} ({st.term} {st.quantity}): equal to derived [{where}]"
        verdict = PASS
    return Row(
        spec=spec.name,
        term=st.term,
        quantity="hessian" if _is_hessian(st.quantity) else "gradient",
        method=METHOD,
        verdict=verdict,
        detail=detail,
        statement=st.id,
        seconds=time.perf_counter() - t0,
    )


def run(derivation: Derivation, *, seed: int = 0) -> list[Row]:
    """One row per statement, plus "—" rows for derived quantities no statement covers."""
    spec = derivation.spec
    rng = np.random.default_rng([seed, 2])
    rows = [check_statement(derivation, st, rng) for st in spec.statements]
    covered = {(st.term, st.quantity) for st in spec.statements}
    for td in derivation.all:
        for q in QUANTITIES:
            present = td.has_z if q.startswith("z_") else td.has_x
            if present and (td.name, q) not in covered:
                rows.append(
                    Row(
                        spec=spec.name,
                        term=td.name,
                        quantity="hessian" if _is_hessian(q) else "gradient",
                        method=METHOD,
                        verdict=NONE,
                        detail=f"no statement for {q}",
                    )
                )
    return rows
