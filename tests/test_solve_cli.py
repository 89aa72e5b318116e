"""``creality solve``: bad input exits 2 with one line on stderr, never a traceback."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from creality_sym.cli import main as cli_main
from creality_sym.solve import load_instance, random_instance


def run_solve(args, capsys):
    code = cli_main(["solve", *args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err, *names):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("creality solve: "), err
    assert "Traceback" not in err
    for name in names:
        assert str(name) in lines[0], (name, err)


@pytest.fixture
def saved(tmp_path):
    inst = random_instance(300, 4, gamma=0.5, seed=0)
    path = tmp_path / "inst.npz"
    inst.save(path)
    return inst, path


def _npz(tmp_path, name, **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_data_files_that_are_not_instances(tmp_path, capsys, saved):
    inst, _ = saved
    text = tmp_path / "notes.npz"
    text.write_text("not an archive\n")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(b"PK\x03\x04 not really a zip")
    single = tmp_path / "single.npy"
    np.save(single, inst.A)
    cases = [
        text,
        empty,
        truncated,
        single,
        tmp_path / "missing.npz",
        tmp_path,  # a directory
        _npz(tmp_path, "no_w.npz", A=inst.A, b=inst.b),
        _npz(tmp_path, "short_b.npz", A=inst.A, b=inst.b[:-1], w=inst.w),
        _npz(tmp_path, "long_x0.npz", A=inst.A, b=inst.b, w=inst.w, x0=np.zeros(5)),
        _npz(tmp_path, "vector_A.npz", A=inst.b, b=inst.b, w=inst.w),
        _npz(tmp_path, "complex_A.npz", A=inst.A + 1j, b=inst.b, w=inst.w),
        _npz(tmp_path, "string_w.npz", A=inst.A, b=inst.b, w=np.array(["a"] * 300)),
        _npz(tmp_path, "vector_gamma.npz", A=inst.A, b=inst.b, w=inst.w, gamma=np.ones(2)),
        _npz(tmp_path, "object_b.npz", A=inst.A, b=np.array([None] * 300), w=inst.w),
        _npz(tmp_path, "bad_rule.npz", A=inst.A, b=2 * inst.b, w=inst.w),
    ]
    for path in cases:
        code, _, err = run_solve(["--data", str(path), "--quiet"], capsys)
        assert code == 2, (path, err)
        assert_one_line_error(err, "--data", path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without permission")
def test_unreadable_data_file(tmp_path, capsys, saved):
    _, path = saved
    path.chmod(0)
    code, _, err = run_solve(["--data", str(path)], capsys)
    assert code == 2
    assert_one_line_error(err, "--data", path, "permission")


def test_load_instance_names_the_file(tmp_path, saved):
    inst, path = saved
    loaded = load_instance(path)
    assert np.array_equal(loaded.A, inst.A) and loaded.gamma == inst.gamma
    bad = _npz(tmp_path, "c.npz", A=inst.A, b=inst.b, w=inst.w, x0=np.zeros(4) + 1j)
    with pytest.raises(ValueError, match=r"c\.npz: x0 must be real"):
        load_instance(bad)


def test_unwritable_out_exits_2(tmp_path, capsys):
    out = tmp_path / "no" / "such" / "dir" / "run.npz"
    code, _, err = run_solve(["--n", "300", "--d", "4", "--quiet", "--out", str(out)], capsys)
    assert code == 2
    assert_one_line_error(err, "--out")


def test_exit_1_means_not_converged(capsys):
    code, out, err = run_solve(["--n", "300", "--d", "4", "--max-iter", "1", "--quiet"], capsys)
    assert code == 1 and not err
    assert "NOT converged" in out and "max_iter = 1 reached" in out


def test_variant_is_reported(tmp_path, capsys):
    out = tmp_path / "run.npz"
    args = ["--n", "3000", "--d", "8", "--method", "sampled", "--variant", "paper", "--quiet"]
    code, text, _ = run_solve([*args, "--out", str(out)], capsys)
    assert code == 0 and "sampled (paper)" in text
    code, text, _ = run_solve(["--n", "3000", "--d", "8", "--quiet"], capsys)
    assert code == 0 and "sampled (sketch-pcg): converged" in text and "exact: converged" in text
    assert "Hessian-vector products" in text
    payload = json.loads(out.with_suffix(".json").read_text())
    assert payload["results"]["sampled"]["variant"] == "paper"
    assert payload["results"]["sampled"]["status"] == "converged"
