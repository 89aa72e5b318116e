"""The bound auditor: bounds as data, search with teeth, verdicts, replay, CLI."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import creality_generated.creativity_reality as model
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import NonInteractiveExampleWarning

from creality_sym.audit import (
    Bound,
    Instance,
    Space,
    audit,
    default_bounds,
    load_bounds,
    project,
    replay,
    select,
    spectral_norm,
)
from creality_sym.audit.experiments import sampling_spectral, wilson
from creality_sym.audit.instance import project_simplex, violates_assumptions
from creality_sym.cli import main
from creality_sym.strategies import instances, matrices, prob_vectors
from tests import reference_model

ROOT = Path(__file__).resolve().parents[1]
IDS = [
    "softmax-simplex",
    "softmax-floor",
    "alpha-range",
    "u-lipschitz",
    "f-lipschitz",
    "breal-norm",
    "bcre-norm",
    "hessian-pd",
    "hessian-lipschitz",
    "bcre-psd",
    "newton-rate",
    "sampling-spectral",
]

# Plausible but false: each constant is a little too small, so only instances
# near the worst case violate it (random instances do not).
PLANTED = """
import math
import numpy as np
from creality_sym.audit import Bound, spectral_norm

def gap(i):
    return float(np.linalg.norm(i.x - i.y))

def log_alpha(i):
    z = i.z(i.x)
    m = z.max()
    return m + math.log(np.exp(z - m).sum())

BOUNDS = [
    Bound("f-lip-045", "||f(x) - f(y)|| <= 0.45 R ||x - y||",
          lhs=lambda i: float(np.linalg.norm(i.f(i.x) - i.f(i.y))),
          rhs=lambda i: 0.45 * i.R * gap(i), rtol=1e-7),
    Bound("floor-13", "f_j >= exp(-1.3 R^2) / n",
          lhs=lambda i: math.exp(-1.3 * i.R**2) / i.n, rhs=lambda i: float(i.f(i.x).min())),
    Bound("alpha-up-09", "alpha <= n exp(0.9 R^2), n >= 2", n=(2, 8),
          lhs=lambda i: math.exp(log_alpha(i) - math.log(i.n) - 0.9 * i.R**2),
          rhs=lambda i: 1.0),
    Bound("jacobian-049", "||J||_2 <= 0.49",
          lhs=lambda i: spectral_norm(i.jacobian(i.x)), rhs=lambda i: 0.49),
    Bound("u-lip-09", "||u(x) - u(y)|| <= 0.9 R e^{R^2} ||x - y||, n >= 2", n=(2, 8),
          lhs=lambda i: float(np.linalg.norm(i.u(i.x) - i.u(i.y))),
          rhs=lambda i: 0.9 * i.R * math.exp(i.R**2) * gap(i), rtol=1e-7),
    Bound("breal-03", "||B_real||_2 <= 0.3 (sup is 0.308)",
          lhs=lambda i: spectral_norm(i.B_real(i.x)), rhs=lambda i: 0.3),
    Bound("bcre-0555", "||B_cre||_2 <= 0.555 (needs n >= 5)",
          lhs=lambda i: spectral_norm(i.B_cre(i.x)), rhs=lambda i: 0.555),
]
"""


def _by_id(ids: list[str]) -> list[Bound]:
    return select(default_bounds(), ids)


# ---------------------------------------------------------------- instances, strategies


@settings(max_examples=40, deadline=None)
@given(instances(n=(1, 6), d=(1, 4), R_max=4.0, model=model))
def test_drawn_instances_are_admissible(inst: Instance) -> None:
    assert violates_assumptions(inst, rtol=1e-12) == []
    f = inst.f(inst.x)
    assert f.shape == (inst.n,) and abs(f.sum() - 1) < 1e-12


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(["ridge_prior", "exp_regression", "temperature"]), st.data())
def test_drawn_instances_of_any_spec_are_admissible(spec: str, data) -> None:
    space = Space.make(spec)
    inst = data.draw(instances(n=(1, 4), d=(1, 3), space=space))
    assert violates_assumptions(inst, space, rtol=1e-12) == []
    assert set(inst.params) == {p.name for p in space.model.PARAMETERS}
    assert np.isfinite(inst.loss()) and inst.hessian().shape == (inst.d, inst.d)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.floats(1.0, 5.0), st.data())
def test_matrices_and_prob_vectors_respect_constraints(n: int, d: int, R: float, data) -> None:
    A = data.draw(matrices(n, d, R))
    b = data.draw(prob_vectors(n))
    assert A.shape == (n, d) and spectral_norm(A) <= R * (1 + 1e-12)
    assert np.all(b >= 0) and abs(b.sum() - 1) < 1e-12


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=8))
def test_project_simplex(v: list[float]) -> None:
    p = project_simplex(np.array(v))
    assert np.all(p >= 0) and abs(p.sum() - 1) < 1e-12
    # the projection is idempotent
    np.testing.assert_allclose(project_simplex(p), p, atol=1e-15)


def test_project_enforces_every_assumption() -> None:
    rng = np.random.default_rng(0)
    params = {"b": [-1.0, 2, 0.5, 3], "w": [-2.0, 0.0, 1, 1], "gamma": -3.0}
    inst = project(10 * rng.standard_normal((4, 3)), [9.0, 9, 9], [-7.0, 0, 0], params, R=0.2)
    assert violates_assumptions(inst) == []
    assert inst.R == 1.0 and inst.gamma == 0.0 and np.all(inst.w > 0)
    # another spec: its own parameters, a fixed scalar, a d-shaped vector
    space = Space.make("ridge_prior")
    params = {"b": [0.2, 0.8], "lam": [-1.0, 0.0], "x0": [50.0, -1.0], "gamma": 9.0}
    inst = project(np.ones((2, 2)), [3.0, 0], [0.0, 0], params, 2.0, space=space, w_max=10.0)
    assert violates_assumptions(inst, space) == [] and inst.spec == "ridge_prior"
    assert np.all(inst.lam > 0) and inst.x0[0] == 10.0 and inst.gamma == 9.0
    renyi = Space.make("renyi", {"q": 3.0})
    inst = project(np.ones((2, 1)), [1.0], [0.0], {"b": [1, 0], "w": [1, 1]}, 1.0, space=renyi)
    assert inst.q == 3.0 and inst.gamma == 0.0 and renyi.searched == ("gamma",)


def test_project_names_bad_arguments() -> None:
    params = {"b": [0.5, 0.5], "w": [1, 1], "gamma": 0.0}
    with pytest.raises(ValueError, match="x and y"):
        project(np.ones((2, 3)), np.ones(2), np.ones(3), params, 1.0)
    with pytest.raises(ValueError, match="A must be finite"):
        project(np.full((2, 1), np.nan), [0.0], [0.0], params, 1.0)
    with pytest.raises(ValueError, match="w is missing"):
        project(np.ones((2, 1)), [0.0], [0.0], {"b": [0.5, 0.5]}, 1.0)
    with pytest.raises(ValueError, match="n must be"), warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        prob_vectors(0).example()


def test_instance_pieces_match_the_dense_reference() -> None:
    rng = np.random.default_rng(3)
    inst = project(
        rng.standard_normal((5, 3)),
        rng.standard_normal(3),
        rng.standard_normal(3),
        {"b": rng.random(5), "w": rng.random(5) + 0.5, "gamma": 0.7},
        2.0,
        space=model,
    )
    ref = inst.with_model(reference_model)
    for name in ("B_real", "B_cre", "hessian", "f", "gradient"):
        np.testing.assert_allclose(
            getattr(inst, name)(inst.x), getattr(ref, name)(inst.x), rtol=1e-10, atol=1e-12
        )
    assert math.isclose(inst.alpha(inst.x), float(np.exp(inst.A @ inst.x).sum()))


# ---------------------------------------------------------------- bounds as data


def test_default_registry_has_exactly_the_stated_ids() -> None:
    assert [b.id for b in default_bounds()] == IDS
    text = (ROOT / "derivations" / "lemmas.py").read_text()
    assert "SPEC" not in text
    bcre = _by_id(["bcre-psd"])[0]
    assert bcre.expect == "violated" and bcre.source.endswith("lemmas.py")


def test_bound_arguments_are_checked() -> None:
    one = lambda i: 1.0  # noqa: E731
    with pytest.raises(ValueError, match="expect"):
        Bound("x", "s", one, one, expect="maybe")
    with pytest.raises(ValueError, match="lhs and rhs"):
        Bound("x", "s")
    with pytest.raises(ValueError, match="delta"):
        Bound("x", "s", kind="statistical", trial=lambda m, r: False, delta=1.5)
    with pytest.raises(ValueError, match="n must be"):
        Bound("x", "s", one, one, n=(3, 2))
    with pytest.raises(ValueError, match="lemma: unknown"):
        select(default_bounds(), ["no-such-bound"])


def test_bounds_file_needs_BOUNDS(tmp_path: Path) -> None:
    f = tmp_path / "empty.py"
    f.write_text("X = 1\n")
    with pytest.raises(ValueError, match="BOUNDS"):
        load_bounds(f)
    with pytest.raises(ValueError, match="not found"):
        load_bounds(tmp_path / "missing.py")


def test_audit_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="budget"):
        audit(_by_id(["breal-norm"]), model=model, budget=0)
    with pytest.raises(ValueError, match="workers"):
        audit(_by_id(["breal-norm"]), model=model, workers=0)


# ---------------------------------------------------------------- verdicts


def test_bcre_psd_is_violated_with_a_small_replayable_counterexample(tmp_path: Path) -> None:
    (v,) = audit(_by_id(["bcre-psd"]), model=model, budget=2.0, out=tmp_path)
    assert v.verdict == "violated" and v.ok
    ce = v.counterexample
    assert ce is not None and ce.n <= 3 and ce.d == 1
    assert v.rhs < -0.1  # lambda_min(B_cre) well below zero, not rounding noise
    assert violates_assumptions(ce, rtol=1e-12) == []
    r = replay(v.path)
    assert r.bound_id == "bcre-psd" and r.reproduced and r.exact
    assert (r.lhs, r.rhs) == (v.lhs, v.rhs)
    saved = np.load(v.path)
    assert {"A", "x", "y", "b", "w", "gamma", "R", "n", "d", "bound_id", "source"} <= set(saved)
    assert main(["audit", "--replay", str(v.path)]) == 0


def test_replay_of_a_repaired_bound_does_not_reproduce(tmp_path: Path, capsys) -> None:
    (v,) = audit(_by_id(["bcre-psd"]), model=model, budget=1.0, out=tmp_path)
    fixed = tmp_path / "fixed.py"
    fixed.write_text(
        textwrap.dedent("""
        from creality_sym.audit import Bound, min_eig
        BOUNDS = [Bound("bcre-psd", "B_cre >= -0.25 I", lhs=lambda i: -0.25,
                        rhs=lambda i: min_eig(i.B_cre(i.x)), compare="difference")]
    """)
    )
    assert main(["audit", "--replay", str(v.path), "--bounds", str(fixed)]) == 1
    assert "NOT reproduced" in capsys.readouterr().out


def test_f_lipschitz_holds_and_is_nearly_tight() -> None:
    (v,) = audit(_by_id(["f-lipschitz"]), model=model, budget=2.5)
    assert v.verdict == "holds" and v.tightness > 0.99 and v.tightness <= 1 + 1e-7
    assert v.instances > 500


def test_breal_norm_holds_and_reports_how_loose_ten_is() -> None:
    (v,) = audit(_by_id(["breal-norm"]), model=model, budget=2.0)
    assert v.verdict == "holds"
    # the supremum of ||B_real||_2 is about 0.308 (n = 2, b one-hot)
    assert 0.025 < v.tightness <= 0.031
    assert math.isclose(v.rhs, 10.0) and v.lhs == pytest.approx(10 * v.tightness)


def test_planted_false_bounds_are_refuted_by_the_cli(tmp_path: Path, capsys) -> None:
    f = tmp_path / "planted.py"
    f.write_text(PLANTED)
    out = tmp_path / "out"
    rc = main(["audit", "--bounds", str(f), "--budget", "14", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 1
    mismatch = text.splitlines()[-1]
    for b in load_bounds(f):
        assert f"{b.id} (expected holds, got violated)" in mismatch
        assert (out / f"{b.id}.npz").is_file()
        r = replay(out / f"{b.id}.npz", bounds=f)  # the recorded source is never run
        assert r.reproduced and r.exact, b.id
        assert r.instance.n <= (5 if b.id == "bcre-0555" else 2), b.id


def test_statistical_claims_report_a_failure_rate() -> None:
    too_few = Bound(
        "sampling-C0.02",
        "s = 0.02 eps^-2 d log(d/delta) rows suffice",
        kind="statistical",
        trial=sampling_spectral(C=0.02),
        delta=0.1,
    )
    v, w = audit([too_few, *_by_id(["sampling-spectral"])], model=model, budget=3.0)
    assert v.verdict == "violated" and v.ci is not None and v.ci[0] > 0.1
    assert w.verdict == "holds" and w.ci is not None and w.ci[0] <= 0.1
    assert w.instances >= 100 and "delta=0.1" in w.tightness_text()


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 200), st.integers(1, 200))
def test_wilson_interval_brackets_the_rate(k: int, n: int) -> None:
    k = min(k, n)
    lo, hi = wilson(k, n)
    assert 0 <= lo <= k / n <= hi <= 1


def test_no_floating_point_warnings_and_no_sympy() -> None:
    code = textwrap.dedent("""
        import sys, warnings
        warnings.simplefilter("error")
        from creality_sym.audit import audit, default_bounds, select
        vs = audit(select(default_bounds(), ["softmax-floor", "alpha-range", "u-lipschitz",
                                             "hessian-lipschitz", "bcre-psd"]), budget=2.5)
        assert all(v.ok and v.errors == 0 for v in vs), [(v.id, v.message) for v in vs]
        assert "sympy" not in sys.modules
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


# ---------------------------------------------------------------- whole registry


@pytest.mark.slow
def test_cli_default_registry_matches_every_expectation(tmp_path: Path, capsys) -> None:
    rc = main(["audit", "--out", str(tmp_path)])
    text = capsys.readouterr().out
    assert rc == 0, text
    for bound_id in IDS:
        assert bound_id in text
    assert (tmp_path / "bcre-psd.npz").is_file()


@pytest.mark.slow
def test_workers_give_the_same_verdicts(tmp_path: Path) -> None:
    bounds = _by_id(["bcre-psd", "breal-norm", "softmax-simplex", "sampling-spectral"])
    vs = audit(bounds, model=model, budget=6.0, workers=2, out=tmp_path)
    assert [v.verdict for v in vs] == ["violated", "holds", "holds", "holds"]
    assert replay(vs[0].path).reproduced
