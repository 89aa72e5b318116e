"""The verification engine: the methods agree on the shipped specs and catch planted errors."""

from __future__ import annotations

import dataclasses
import json
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from creality_sym.derive import Derivation, derive
from creality_sym.spec import (
    Spec,
    Statement,
    diag,
    discover_specs,
    f,
    inner,
    load_spec,
    outer,
    z,
)
from creality_sym.vector import LowRank
from creality_sym.verify import VerificationReport, numeric, statements, symbolic, verify
from creality_sym.verify._entries import evaluate, random_instance, softmax_env
from tests import reference_model

DERIVATIONS = Path(__file__).resolve().parents[1] / "derivations"
SPECS = tuple(p.stem for p in discover_specs(DERIVATIONS))
SMALL = ((3, 2),)  # symbolic size for the quick tests


@cache
def spec_of(name: str) -> Spec:
    return load_spec(DERIVATIONS / f"{name}.py")


@cache
def derivation_of(name: str) -> Derivation:
    return derive(spec_of(name))


def failures(report: VerificationReport) -> list[str]:
    return [f"{r.term}/{r.quantity}/{r.method}: {r.detail}" for r in report.failures]


# ----------------------------------------------------------------------------- clean specs


def test_default_spec_verifies_clean_by_every_method() -> None:
    report = verify(derivation_of("creativity_reality"))
    assert report.ok and not report.undecided, failures(report)
    methods = {r.method for r in report.rows}
    assert methods >= {"symbolic", "numeric", "statements", "generated"}
    # every term has a passing statement for its gradient and its Hessian
    for term in ("reality", "creativity", "regularizer"):
        for quantity in ("gradient", "hessian"):
            rows = [
                r
                for r in report.rows
                if (r.method, r.term, r.quantity) == ("statements", term, quantity)
            ]
            assert rows and all(r.verdict == "pass" and r.statement for r in rows)
    table = report.table()
    assert "pass (B_cre)" in table and "pass (hessian-total)" in table
    assert table.rstrip().endswith("OK")


@pytest.mark.parametrize("name", ["cross_entropy", "temperature"])
def test_variant_specs_verify_clean(name: str) -> None:
    d = derivation_of(name)
    report = verify(d, methods=("numeric", "statements"))
    report.rows.extend(symbolic.run(d, sizes=SMALL))
    assert report.ok, failures(report)
    covered = {(r.term, r.quantity) for r in report.rows if r.statement and r.verdict == "pass"}
    assert covered >= {(t.name, q) for t in d.spec.terms for q in ("gradient", "hessian")}


@pytest.mark.slow
@pytest.mark.parametrize("name", SPECS)
def test_every_spec_verifies_clean_at_all_sizes(name: str) -> None:
    report = verify(derivation_of(name), seed=3)
    assert report.ok, failures(report)


# ----------------------------------------------------------------------------- planted statements


def planted(spec: Spec, *extra: Statement) -> Derivation:
    return derive(dataclasses.replace(spec, statements=(*spec.statements, *extra)))


def b_cre(sign: int = -1) -> LowRank:
    v = f * (z - inner(f, z))
    return diag(f + v) - outer(f, f) + sign * outer(v, f) - outer(f, v)


def test_planted_wrong_hessian_statement_is_caught() -> None:
    spec = spec_of("creativity_reality")
    d = planted(spec, Statement("B_cre_flipped", "creativity", "z_hessian", b_cre(+1)))
    report = verify(d, methods=("statements",))
    assert not report.ok
    (row,) = report.failures
    assert (row.statement, row.term, row.quantity) == ("B_cre_flipped", "creativity", "hessian")
    assert row.detail.startswith("B_cre_flipped (creativity z_hessian): differs from derived")
    assert "entries off the diagonal differ (exact)" in row.detail
    assert "entries off the diagonal differ (numeric)" in row.detail
    assert "B_cre_flipped" in report.table() and "FAIL" in report.table()


def test_planted_wrong_gradient_statement_is_caught() -> None:
    spec = spec_of("creativity_reality")
    b = next(s for s in spec.vectors if str(s) == "b")
    wrong = f * (f - b) + inner(f, f - b) * f  # sign of s f flipped
    d = planted(spec, Statement("grad-reality-wrong", "reality", "z_gradient", wrong))
    (row,) = verify(d, methods=("statements",)).failures
    assert (row.statement, row.term, row.quantity) == ("grad-reality-wrong", "reality", "gradient")
    assert "entries" in row.detail and "(exact)" in row.detail and "(numeric)" in row.detail


@settings(max_examples=8, deadline=None)
@given(c=st.integers(-2, 2), d=st.integers(-2, 2))
def test_statement_check_fails_exactly_when_the_statement_is_off(c: int, d: int) -> None:
    spec = spec_of("creativity_reality")
    value = b_cre() + c * outer(f, f) + diag(d * f**2)
    st_ = Statement("probe", "creativity", "z_hessian", value)
    row = statements.check_statement(derivation_of(spec.name), st_, np.random.default_rng(0))
    assert (row.verdict == "FAIL") == (c != 0 or d != 0)
    assert ("diagonal entries differ (exact)" in row.detail) == (c + d != 0)


def test_terms_without_statements_get_no_statement_rows() -> None:
    spec = dataclasses.replace(spec_of("cross_entropy"), statements=())
    rows = statements.run(derive(spec))
    assert rows and all(r.verdict == "—" and "no statement" in r.detail for r in rows)
    assert {r.term for r in rows} == {"reality", "creativity", "regularizer", "total"}


# ----------------------------------------------------------------------------- planted derivations


def sabotaged(name: str, term: str, *, hessian: bool) -> SimpleNamespace:
    """A stand-in derivation of ``term`` and the regularizer, with one sign flipped in
    ``term``'s Hessian (or a wrong gradient)."""
    d = derivation_of(name)
    fakes = []
    for td in (d.terms[term], d.terms["regularizer"]):
        g, B = td.z_gradient, td.z_hessian
        if td.name == term and hessian:
            (c, u, v), *rest = B.terms
            B = LowRank(B.diagonal, ((-c, u, v), *rest))
        elif td.name == term:
            g = g + f * z / 3
        fakes.append(
            SimpleNamespace(
                name=td.name,
                z_gradient=g,
                z_hessian=B,
                x_gradient=td.x_gradient,
                x_hessian=td.x_hessian,
            )
        )
    return SimpleNamespace(
        spec=d.spec, all=fakes, get=lambda n: next(t for t in fakes if t.name == n)
    )


@pytest.mark.parametrize("hessian", [True, False])
def test_symbolic_and_numeric_catch_a_wrong_derivation(hessian: bool) -> None:
    fake = sabotaged("creativity_reality", "creativity", hessian=hessian)
    rows = symbolic.run(fake, sizes=SMALL) + numeric.run(fake, mp=True)
    bad = {(r.method, r.term, r.quantity) for r in rows if r.failed}
    q = "hessian" if hessian else "gradient"
    assert {("symbolic", "creativity", q), ("numeric", "creativity", q)} <= bad
    # a wrong gradient also breaks H v = d(grad)/dv, the numeric Hessian row's consistency check
    extra = bad - {("symbolic", "creativity", q), ("numeric", "creativity", q)}
    assert extra <= {("numeric", "creativity", "hessian")}
    for r in rows:
        if r.failed and r.quantity != q:
            assert "fd(grad) Hv off" in r.detail and "fd vHv off" not in r.detail


# ----------------------------------------------------------------------------- numerics


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(2, 12), d=st.integers(1, 5))
def test_structured_forms_match_the_dense_reference_model(seed: int, n: int, d: int) -> None:
    spec = spec_of("creativity_reality")
    td = derivation_of("creativity_reality").total
    inst = random_instance(spec, n, d, np.random.default_rng(seed), logit_std=2.0)
    b, w = (inst.vectors[s] for s in spec.vectors)
    (gamma,) = inst.scalars.values()
    args = (inst.x, inst.A, b, w, gamma)
    np.testing.assert_allclose(
        numeric.gradient(td, inst, inst.x), reference_model.gradient(*args), rtol=1e-10, atol=1e-12
    )
    H = reference_model.hessian(*args)
    for v in np.eye(d):
        np.testing.assert_allclose(numeric.hvp(td, inst, inst.x, v), H @ v, rtol=1e-10, atol=1e-12)


def test_log_f_is_stable_when_probabilities_underflow() -> None:
    spec = spec_of("creativity_reality")
    inst = random_instance(spec, 30, 3, np.random.default_rng(1), logit_std=2000.0)
    env = softmax_env(inst.A @ inst.x, inst.kappa, inst)
    assert np.any(env[f] == 0.0)
    entropy_part = evaluate(f * sp.log(f), env, inst.n)
    assert np.all(np.isfinite(entropy_part))
    for td in derivation_of("creativity_reality").all:
        assert np.all(np.isfinite(numeric.gradient(td, inst, inst.x)))


# ----------------------------------------------------------------------------- report API


def test_report_table_and_json() -> None:
    d = derivation_of("cross_entropy")
    report = verify(d, methods=("statements",))
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["ok"] is True
    assert {"spec", "term", "quantity", "method", "verdict", "detail"} <= set(payload["rows"][0])
    lines = report.table().splitlines()
    header, rule = lines[0], lines[1]
    assert header.split() == ["spec", "term", "quantity", "statements"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert "pass (B_ce)" in report.table()


def test_verify_rejects_unknown_methods() -> None:
    with pytest.raises(ValueError, match="methods must be among"):
        verify(derivation_of("cross_entropy"), methods=("symbolic", "fuzzy"))
