"""``creality bench`` runs and reports its structure (no timing assertions)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from creality_sym.bench.instance import bench_instance, parse_sizes
from creality_sym.bench.peers import sympy_peer
from creality_sym.bench.suite import GEMM, HESSIAN, MATVEC, SYRK, bench_one
from creality_sym.cli import main

ROW_KEYS = {
    "name",
    "group",
    "median_s",
    "best_s",
    "samples",
    "x_gemm",
    "x_matvec",
    "peak_copies_of_A",
    "rel_err",
    "setup_s",
    "note",
}


def test_quick_run_prints_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = "bench --quick --sizes 6x2,40x3 --repeats 1 --peers none --json".split()
    code = main([*argv, str(out)])
    assert code == 0
    text = capsys.readouterr().out
    for name in (GEMM, SYRK, MATVEC, HESSIAN, "gradient (validate=True)", "hvp"):
        assert name in text
    assert "x GEMM" in text and "peak/A" in text
    assert "generated hessian:" in text

    doc = json.loads(out.read_text())
    assert set(doc) >= {"environment", "settings", "results"}
    assert doc["settings"]["sizes"] == [[6, 2], [40, 3]]
    assert doc["settings"]["spec"] == "creativity_reality"
    results = doc["results"]
    assert [(r["n"], r["d"], r["case"]) for r in results] == [
        (6, 2, "typical"),
        (6, 2, "negative"),
        (40, 3, "typical"),
        (40, 3, "negative"),
    ]
    for r in results:
        assert 0.0 <= r["negative_fraction"] <= 1.0
        assert r["hessian_x_gemm"] > 0 and r["hessian_peak_copies_of_A"] > 0
        assert r["gradient_x_matvec"] > 0 and r["gradient_validated_x_matvec"] > 0
        for row in r["rows"]:
            assert set(row) == ROW_KEYS
            assert row["samples"] >= 1 and row["median_s"] > 0
        gemm = next(row for row in r["rows"] if row["name"] == GEMM)
        assert gemm["x_gemm"] == pytest.approx(1.0)


def test_missing_solver_or_peer_is_a_note_not_an_error(tmp_path, capsys, monkeypatch):
    import creality_sym.bench.peers as peers

    monkeypatch.setattr(peers.importlib.util, "find_spec", lambda name: None)
    out = tmp_path / "bench.json"
    argv = "bench --quick --sizes 5x2 --cases typical --peers jax,torch --json".split()
    code = main([*argv, str(out)])
    assert code == 0
    doc = json.loads(out.read_text())
    notes = doc["results"][0]["notes"]
    assert any("jax not installed" in n for n in notes)
    assert any("torch not installed" in n for n in notes)
    assert "note: " in capsys.readouterr().out


def test_sympy_peer_agrees_with_generated_hessian():
    pytest.importorskip("sympy")
    inst = bench_instance(3, 2, case="negative", seed=1)
    result = bench_one(inst, repeats=1, case="negative", peers=("sympy",), budget=1.0)
    row = next(r for r in result["rows"] if r["group"] == "peer")
    assert row["rel_err"] < 1e-10
    too_big = sympy_peer(bench_instance(50, 10))
    assert too_big.run is None and "skipped" in too_big.note


def test_negative_case_has_negative_curvature_rows():
    inst = bench_instance(400, 8, case="negative")
    delta = inst.z_hessian_pieces().delta
    assert 0.2 < np.mean(delta < 0) < 0.8
    typical = bench_instance(400, 8, case="typical")
    assert np.all(typical.z_hessian_pieces().delta > 0)
    assert inst.gamma == 0.5 and inst.spec == "creativity_reality"


@pytest.mark.parametrize("spec", ["renyi", "cosine", "ridge_prior", "rescaled"])
def test_every_spec_benches(spec, tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--spec", spec, "--sizes", "30x3", "--repeats", "1", "--json", str(out)]
    assert main([*argv, "--peers", "jax"]) == 0
    text = capsys.readouterr().out
    assert f"spec {spec}" in text.splitlines()[0] and f"{spec}  30x3  case typical" in text
    doc = json.loads(out.read_text())
    assert [r["spec"] for r in doc["results"]] == [spec, spec]
    assert any("write the creativity_reality loss" in n for n in doc["results"][0]["notes"])
    if spec == "renyi":
        assert "note: q = 2 (spec renyi gives no default" in text


def test_bench_param_errors_name_the_parameter(capsys):
    assert main(["bench", "--quick", "--spec", "renyi", "--param", "q=1"]) == 2
    assert "--param q=1: spec renyi is singular there" in capsys.readouterr().err
    assert main(["bench", "--quick", "--spec", "nope"]) == 2
    assert "--spec nope: no generated spec 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sizes", "20000by400"], "--sizes must be NxD"),
        (["--sizes", "0x3"], "n >= 1"),
        (["--peers", "matlab"], "--peers must name"),
        (["--cases", "odd"], "--cases must name"),
        (["--repeats", "0"], "--repeats must be >= 1"),
    ],
)
def test_bad_options_name_the_option(argv, message, capsys):
    assert main(["bench", "--quick", *argv]) == 2
    assert message in capsys.readouterr().err


def test_parse_sizes():
    assert parse_sizes("20000x400, 2000X50") == [(20000, 400), (2000, 50)]
    with pytest.raises(ValueError, match="at least one"):
        parse_sizes(" , ")
