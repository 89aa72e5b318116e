"""The auditor on every spec: --spec/--param, term lemmas skipped, the model's domain, replay."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from creality_sym.audit import Bound, audit, default_bounds, replay, select
from creality_sym.cli import main
from creality_sym.instance import spec_names

GENERIC = ["softmax-simplex", "softmax-floor", "f-lipschitz", "hessian-pd", "sampling-spectral"]


def test_rescaled_runs_the_softmax_lemmas_without_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["audit", "--spec", "rescaled", "--lemma", "softmax-simplex", "f-lipschitz"]
    assert main([*args, "--budget", "2", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "2 bounds on spec rescaled" in text and "error" not in text


QUICK_SPECS = ("rescaled", "renyi", "ridge_prior")


@pytest.mark.parametrize(
    "spec",
    [s if s in QUICK_SPECS else pytest.param(s, marks=pytest.mark.slow) for s in spec_names()],
)
def test_generic_lemmas_hold_on_every_spec(spec: str) -> None:
    vs = audit(select(default_bounds(), GENERIC), model=spec, max_evals=200, budget=60)
    for v in vs:
        assert v.verdict == "holds" and v.errors == 0, (spec, v.id, v.message, v.notes)
        assert v.spec == spec


def test_term_lemmas_are_skipped_on_specs_without_the_term(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ids = ["breal-norm", "bcre-norm", "bcre-psd"]
    vs = audit(select(default_bounds(), ids), model="exp_regression", budget=0.5)
    assert [v.verdict for v in vs] == ["skipped"] * 3 and all(v.ok for v in vs)
    assert "spec(s) creativity_reality" in vs[0].notes[0]
    (v,) = audit(select(default_bounds(), ["bcre-psd"]), model="cosine", budget=2.0, out=tmp_path)
    assert v.verdict == "violated"  # cosine's creativity is the negative entropy
    mine = Bound(
        "any-term",
        "max |B_prior| <= 1e9",
        lhs=lambda i: float(np.abs(i.z_hessian(i.x, "prior")).max()),
        rhs=lambda i: 1e9,
        terms=("prior",),
    )
    skipped, ran = (audit([mine], model=spec, budget=0.3)[0] for spec in ("renyi", "ridge_prior"))
    assert skipped.verdict == "skipped" and "lack" in skipped.notes[0]
    assert ran.verdict == "holds" and ran.errors == 0
    args = ["audit", "--spec", "rescaled", "--lemma", *ids, "--out", str(tmp_path)]
    assert main(args) == 0
    assert "3 bounds on spec rescaled (3 skipped)" in capsys.readouterr().out


def test_instances_outside_the_domain_are_counted_not_errors() -> None:
    """rescaled uses exp(z): with R up to 30 the logits reach 900 > 354."""
    wide = Bound(
        "wide", "finite loss", lhs=lambda i: 0.0, rhs=lambda i: 1 + math.tanh(i.loss()), R_max=30.0
    )
    (v,) = audit([wide], model="rescaled", budget=1.0)
    assert v.verdict == "holds" and v.errors == 0 and v.outside > 0
    assert any("outside the model's domain" in note for note in v.notes)


def test_param_fixes_scalars_and_bad_ones_exit_2(capsys: pytest.CaptureFixture) -> None:
    fixed = {"q": 0.5, "gamma": 2.0}
    (v,) = audit(select(default_bounds(), ["hessian-pd"]), model="renyi", params=fixed, budget=0.3)
    assert v.verdict == "holds" and "gamma = 2, q = 0.5" in v.domain
    for args, words in (
        (["--spec", "renyi", "--param", "q=1"], "--param q=1: spec renyi is singular there"),
        (["--spec", "renyi", "--param", "zeta=1"], "--param zeta: spec renyi has no parameter"),
        (["--spec", "renyi", "--param", "q"], "--param must be NAME=VALUE"),
        (["--spec", "nope"], "--spec nope: no generated spec 'nope'; installed: "),
        (["--spec", "renyi", "--model", "x.y"], "--model and --spec name the model twice"),
    ):
        assert main(["audit", *args, "--budget", "0.1"]) == 2, args
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("creality audit: "), captured.err
        assert words in lines[0] and captured.out == "", (args, lines)


def test_counterexamples_of_another_spec_replay_with_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bounds = select(default_bounds(), ["bcre-psd"])
    (v,) = audit(bounds, model="ridge_prior", budget=2.0, out=tmp_path)
    assert v.verdict == "violated" and v.path
    with np.load(v.path) as data:
        assert str(data["spec"]) == "ridge_prior" and {"lam", "x0", "gamma"} <= set(data.files)
    with pytest.raises(ValueError, match="recorded for spec ridge_prior, not creativity_reality"):
        replay(v.path)
    r = replay(v.path, model="ridge_prior")
    assert r.reproduced and r.exact
    assert main(["audit", "--replay", v.path]) == 2
    assert "pass --spec ridge_prior" in capsys.readouterr().err
    assert main(["audit", "--replay", v.path, "--spec", "ridge_prior"]) == 0


def test_files_written_before_specs_were_recorded_replay_as_the_default(tmp_path: Path) -> None:
    (v,) = audit(select(default_bounds(), ["bcre-psd"]), budget=1.0, out=tmp_path)
    with np.load(v.path) as data:
        legacy = {k: data[k] for k in data.files if k not in ("spec", "parameters")}
    old = tmp_path / "old.npz"
    np.savez(old, **legacy)
    r = replay(old)
    assert r.reproduced and r.exact and r.instance.spec == "creativity_reality"
