"""The verification methods without false alarms: undecided instead of FAIL, time limits,
instances outside float64 skipped, symbolic exponents and exp(z), the generated method."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from functools import cache
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy as sp

from creality_sym.derive import Derivation, derive
from creality_sym.generate import MANIFEST, Layout, render_all
from creality_sym.spec import Spec, Term, f, load_spec, z
from creality_sym.verify import generated, numeric, symbolic, verify
from creality_sym.verify._candidate import candidate_tree
from creality_sym.verify._decide import decide, is_zero
from creality_sym.verify._limits import TimeLimitExceeded, time_limit
from creality_sym.verify.report import FAIL, PASS, UNDECIDED, Row, VerificationReport

ROOT = Path(__file__).resolve().parents[1]
SMALL = ((3, 2),)


@cache
def derivation_of(name: str) -> Derivation:
    return derive(load_spec(ROOT / "derivations" / f"{name}.py"))


def _point(rng: np.random.Generator) -> dict[sp.Symbol, mpmath.mpf]:
    return {sp.Symbol("t"): mpmath.mpf(float(rng.uniform(0.1, 2.0)))}


# ----------------------------------------------------------------------------- deciding


def test_an_identity_sympy_cannot_prove_is_undecided_never_failed() -> None:
    t = sp.Symbol("t")
    assert not is_zero(sp.sin(t) ** 2 + sp.cos(t) ** 2 - 1)  # beyond the exact test
    dec = decide(sp.sin(t) ** 2 + sp.cos(t) ** 2, sp.Integer(1), _point)
    assert dec.verdict == UNDECIDED
    assert "could not prove zero" in dec.reason and "agrees to" in dec.reason


def test_a_real_difference_found_by_the_probe_is_a_failure() -> None:
    t = sp.Symbol("t")
    dec = decide(sp.sin(t) ** 2, sp.Integer(1), _point)
    assert dec.verdict == FAIL and "differs by" in dec.reason


def test_symbolic_powers_are_split_into_generators() -> None:
    u, q = sp.symbols("u q")
    assert is_zero(u ** (q - 2) * u**2 - u**q)
    assert is_zero((u / (1 + u)) ** q * (1 + u) ** q - u**q)
    assert decide(u**q, u ** (q - 1) * u, _point_uq).verdict == PASS


def test_denominators_are_cleared_and_roots_reduced_exactly() -> None:
    u, v, b = sp.symbols("u v b", positive=True)
    S = u**2 + v**2 + b
    # fractions with sums in the denominators
    assert is_zero((1 / (1 + u) - 1) / u + 1 / (1 + u))
    assert is_zero(u / (u + v) + v / (u + v) - 1)
    # roots keep r**m = S: sqrt(S)**2 = S, S**(3/2) / S = sqrt(S), S**(-1/2) S = sqrt(S)
    assert is_zero(sp.sqrt(S) * sp.sqrt(S) - S)
    assert is_zero(S ** sp.Rational(3, 2) / S - sp.sqrt(S))
    assert is_zero(S ** sp.Rational(-1, 2) * S - sp.sqrt(S))
    assert is_zero(1 / (sp.sqrt(S) * u) - sp.sqrt(S) / (S * u))
    assert is_zero(sp.cbrt(S) ** 4 - S * sp.cbrt(S))
    # and nothing that differs is called zero
    assert not is_zero(sp.sqrt(S) - S)
    assert not is_zero(1 / (1 + u) - 1 / (1 + 2 * u))
    assert not is_zero(sp.sqrt(S) ** 3 - S)
    assert not is_zero(S ** sp.Rational(3, 2) / S - sp.sqrt(S) * (1 + 1e-30 * u))


def _point_uq(rng: np.random.Generator) -> dict[sp.Symbol, mpmath.mpf]:
    u, q = sp.symbols("u q")
    return {u: mpmath.mpf(float(rng.uniform(0.1, 1))), q: mpmath.mpf(float(rng.uniform(0.5, 2)))}


def test_an_exact_test_past_its_time_limit_is_undecided() -> None:
    t = sp.Symbol("t")
    dec = decide(sp.expand((t + 1) ** 40), (t + 1) ** 40, _point, seconds=1e-4)
    assert dec.verdict == UNDECIDED and "time limit" in dec.reason


def test_time_limits_nest_and_name_the_one_that_expired() -> None:
    def busy() -> None:
        end = time.monotonic() + 5
        while time.monotonic() < end:
            sum(range(1000))

    with pytest.raises(TimeLimitExceeded) as outer_exc:
        with time_limit(0.4, "outer") as outer:
            try:
                with time_limit(0.1, "inner") as inner:
                    busy()
            except TimeLimitExceeded as exc:
                assert exc.limit is inner
            busy()
    assert outer_exc.value.limit is outer
    time.sleep(0.3)  # no alarm left behind


# ----------------------------------------------------------------------------- symbolic


def test_symbolic_decides_a_correct_derivation_at_a_tiny_time_limit_as_undecided(
    monkeypatch,
) -> None:
    monkeypatch.setattr(symbolic, "_CACHE", {})  # results of earlier runs are cached
    rows = symbolic.run(derivation_of("cross_entropy"), sizes=((2, 1),), seconds=1e-4)
    assert rows and not any(r.failed for r in rows)
    assert all(r.verdict == UNDECIDED and "time limit" in r.detail for r in rows)


def _spec(name: str, *terms: Term, scalars: tuple[sp.Symbol, ...] = (), **kw: object) -> Spec:
    base = load_spec(ROOT / "derivations" / "cross_entropy.py")
    return dataclasses.replace(
        base,
        name=name,
        terms=terms,
        statements=(),
        scalars=scalars,
        vectors=(),
        tradeoff=None,
        defaults={},
        **kw,
    )


def test_exp_of_the_logit_beside_a_tempered_softmax_is_proved_exactly() -> None:
    tau = sp.Symbol("tau", positive=True)
    spec = _spec(
        "softplus",
        Term("softplus", sp.log(1 + sp.exp(z))),
        scalars=(tau,),
        logit_scale=1 / tau,
    )
    rows = symbolic.run(derive(spec), sizes=((2, 1),))
    assert {r.verdict for r in rows} == {PASS}, [r.detail for r in rows if r.verdict != PASS]


def test_a_symbolic_exponent_is_proved_exactly() -> None:
    q = sp.Symbol("q", positive=True)
    spec = _spec("power", Term("power", f**q), scalars=(q,))
    rows = symbolic.run(derive(spec), sizes=SMALL)
    assert {r.verdict for r in rows} == {PASS}, [r.detail for r in rows if r.verdict != PASS]


# ----------------------------------------------------------------------------- numeric


def test_instances_where_exp_z_overflows_are_moderated_or_skipped_and_said() -> None:
    spec = _spec("exp_term", Term("growth", sp.exp(z) / 10), Term("entropy", f * sp.log(f)))
    rows = numeric.run(derive(spec))
    assert rows and all(r.verdict == PASS for r in rows), [r.detail for r in rows]
    assert all("(40,4 spread 400 -> 100, as 400 overflows)" in r.detail for r in rows)
    rows = numeric.run(derive(spec), instances=((5, 3, 1.0), (6, 2, 1e5)))
    assert all(r.verdict == PASS for r in rows), [r.detail for r in rows]
    assert all("skipped (outside float64): (6,2) spread 100000: overflow" in r.detail for r in rows)
    rows = numeric.run(derive(spec), instances=((6, 2, 1e5),))
    assert all(r.verdict == UNDECIDED and "no instance" in r.detail for r in rows)


# ----------------------------------------------------------------------------- generated


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    d = derivation_of("cross_entropy")
    return render_all([d], Layout(ROOT))


def _run_on(files: dict[str, str]) -> list[Row]:
    with candidate_tree(files) as cand:
        return generated.run(derivation_of("cross_entropy"), candidate=cand)


def test_the_generated_method_passes_the_shipped_code(rendered) -> None:
    rows = _run_on(rendered)
    assert rows and all(r.verdict == PASS for r in rows if r.method == "generated")
    assert {r.term for r in rows} == {"reality", "creativity", "regularizer", "total"}
    assert all("one-hot f" in r.detail for r in rows if r.method == "generated")
    kernels = [r for r in rows if r.method == "generated-c"]
    assert kernels and all(r.verdict in (PASS, "—") for r in kernels)


def test_a_planted_error_in_one_terms_hessian_fails_only_that_term(rendered) -> None:
    files = dict(rendered)
    text = files["cross_entropy.py"]
    start = text.index("def _z_hessian_creativity(")
    end = text.index("\ndef ", start + 1)
    body = text[start:end]
    planted = body.replace("    return ", "    delta = 1.01 * delta\n    return ", 1)
    assert planted != body and "delta" in body
    files["cross_entropy.py"] = text[:start] + planted + text[end:]
    rows = _run_on(files)
    bad = {(r.term, r.quantity) for r in rows if r.failed and r.method == "generated"}
    assert ("creativity", "hessian") in bad and ("reality", "hessian") not in bad
    assert ("creativity", "gradient") not in bad


@pytest.mark.parametrize("name", ["delta", "g"])
def test_a_planted_error_in_the_combined_program_fails_that_term(rendered, name) -> None:
    """The combined program (z_pieces at order 2, the solver's) is checked on its own."""
    files = dict(rendered)
    text = files["cross_entropy.py"]
    start = text.index("def _z_all_total(")
    end = text.index("\ndef ", start + 1)
    body = text[start:end]
    planted = body.replace("    return ", f"    {name} = 1.01 * {name}\n    return ", 1)
    assert planted != body and f"    {name} = " in body
    files["cross_entropy.py"] = text[:start] + planted + text[end:]
    rows = _run_on(files)
    bad = {(r.term, r.quantity) for r in rows if r.failed and r.method == "generated"}
    quantity = "hessian" if name == "delta" else "gradient"
    assert bad == {("total", quantity)}
    detail = next(r.detail for r in rows if r.failed)
    assert "(z_pieces 2)" in detail


def test_a_module_that_does_not_import_fails_with_the_error(rendered) -> None:
    files = dict(rendered, **{"cross_entropy.py": "def broken(:\n"})
    rows = _run_on(files)
    assert rows and all(r.failed for r in rows)
    assert "generated/cross_entropy.py:1: SyntaxError" in rows[0].detail


def test_the_candidate_package_is_private_and_removed_afterwards(rendered) -> None:
    import sys

    with candidate_tree(rendered) as cand:
        folder, package = cand.folder, cand.package
        mod = cand.module("cross_entropy")
        assert mod.__name__ == f"{package}.cross_entropy" and package.startswith("_creality")
        assert Path(mod.__file__).is_relative_to(folder)
    assert not folder.exists()
    assert not [k for k in sys.modules if k.startswith(package)]


# ----------------------------------------------------------------------------- report and manifest


def test_undecided_rows_are_shown_and_are_not_failures() -> None:
    rows = [
        Row("s", "t", "gradient", "symbolic", UNDECIDED, "time limit"),
        Row("s", "t", "gradient", "numeric", PASS, "ok"),
    ]
    report = VerificationReport(rows)
    assert report.ok and report.undecided
    table = report.table()
    assert "undecided" in table.splitlines()[2]
    assert table.rstrip().endswith("OK (1 undecided, none failed)")
    assert report.verdicts("s") == {"symbolic": UNDECIDED, "numeric": PASS}


def test_the_manifest_records_verification_unverified_by_default() -> None:
    d = derivation_of("cross_entropy")
    plain = json.loads(render_all([d], Layout(ROOT))[MANIFEST])
    assert plain["specs"]["cross_entropy"]["verification"] == "unverified"
    verdicts = {"symbolic": PASS, "generated": PASS}
    recorded = json.loads(render_all([d], Layout(ROOT), {"cross_entropy": verdicts})[MANIFEST])
    assert recorded["specs"]["cross_entropy"]["verification"] == verdicts


def test_verify_runs_every_method_on_a_variant() -> None:
    report = verify(derivation_of("cross_entropy"), methods=("generated",))
    assert report.ok and {r.method for r in report.rows} <= {"generated", "generated-c"}
    assert math.isfinite(report.timings["cross_entropy"]["generated"])
