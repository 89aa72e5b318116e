"""Method (c): every paper-style :class:`Statement` against the derived quantity.

A statement's value (entry expression, or :class:`LowRank` for Hessians) is
compared with the same quantity of the derivation of its term (unweighted),
or of the weighted total when ``term == "total"``:

* exactly at a small concrete size: entries ``f_j = F_j`` with
  ``F_(n-1) = 1 - sum(others)``, ``log f_j = s z_j - L`` (``L`` the logsumexp,
  ``s`` the logit scale), ``z_j`` and parameters free symbols (a probability
  vector's last entry ``1 - sum(others)``), Hessians as explicit n x n matrices;
  the difference must reduce to exactly 0 (:func:`symbolic.is_zero`);
* numerically at a larger n on random logits with stable ``log f``: vectors
  entrywise, Hessians by their diagonals and products with random vectors
  (never an n x n matrix).
"""

from __future__ import annotations

import time

import numpy as np
import sympy as sp

from creality_sym.derive import Derivation, TermDerivation
from creality_sym.spec import QUANTITIES, Spec, Statement, f, x, z
from creality_sym.vector import LowRank, instantiate
from creality_sym.verify._entries import (
    LOGF,
    Instance,
    as_vector,
    evaluate,
    lowrank_diagonal,
    lowrank_matvec,
    lowrank_pieces,
    prepare,
    random_parameters,
    softmax_env,
    x_env,
)
from creality_sym.verify.report import FAIL, NONE, PASS, Row
from creality_sym.verify.symbolic import is_zero

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


def _exact_table(spec: Spec, n: int, space: str) -> dict[sp.Symbol, list[sp.Expr]]:
    plain = {s: [sp.Symbol(str(s))] * n for s in spec.scalars}
    if space == "x":
        return {x: [sp.Symbol(f"x_{i}") for i in range(n)], **plain}
    s = spec.logit_scale.xreplace({k: v[0] for k, v in plain.items()})
    F = [sp.Symbol(f"F_{j}") for j in range(n - 1)]
    F.append(1 - sp.Add(*F))
    Z = [sp.Symbol(f"z_{j}") for j in range(n)]
    lse = sp.Symbol("L_")
    table: dict[sp.Symbol, list[sp.Expr]] = {f: F, z: Z, LOGF: [s * zj - lse for zj in Z], **plain}
    for sym, rule in spec.vectors.items():
        entries = [sp.Symbol(f"{sym}_{j}") for j in range(n)]
        if rule == "probability":
            entries[-1] = 1 - sp.Add(*entries[:-1])
        table[sym] = entries
    return table


def exact_difference(spec: Spec, quantity: str, stated: object, derived: object) -> list[str]:
    """What differs exactly at size EXACT_N ([] when equal): entries, diagonal, off-diagonal."""
    n = EXACT_N
    table = _exact_table(spec, n, "x" if quantity.startswith("x_") else "z")

    def entry(e: sp.Expr, j: int) -> sp.Expr:
        return instantiate(prepare(e), j, table, n)

    if not _is_hessian(quantity):
        bad = [j for j in range(n) if not is_zero(entry(stated, j) - entry(derived, j))]
        return [f"entries {bad} differ"] if bad else []
    M = _as_lowrank(stated).matrix(entry, n) - _as_lowrank(derived).matrix(entry, n)
    out = []
    if any(not is_zero(M[j, j]) for j in range(n)):
        out.append("diagonal entries differ")
    if any(not is_zero(M[j, k]) for j in range(n) for k in range(n) if j != k):
        out.append("entries off the diagonal differ")
    return out


# ----------------------------------------------------------------------------- numeric


def _numeric_env(spec: Spec, rng: np.random.Generator, space: str) -> tuple[dict, int]:
    n = NUMERIC_N
    vectors, scalars = random_parameters(spec, n, rng)
    kappa = float(spec.logit_scale.xreplace({k: sp.Float(v) for k, v in scalars.items()}))
    inst = Instance(np.zeros((n, 1)), rng.normal(size=n), vectors, scalars, kappa)
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
    exact = exact_difference(spec, st.quantity, st.value, derived)
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
