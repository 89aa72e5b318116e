"""Replay treats a counterexample file as data: what it names is shown, never run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from creality_sym.audit import audit, default_bounds, replay, select

PLANTED_BOUNDS = """
open("bounds-marker", "w").write("the recorded source was executed")
from creality_sym.audit import Bound
BOUNDS = [Bound("bcre-psd", "planted: always holds", lhs=lambda i: 0.0, rhs=lambda i: 1.0),
          Bound("planted-only", "planted", lhs=lambda i: 0.0, rhs=lambda i: 1.0)]
"""

PLANTED_MODEL = """
open("model-marker", "w").write("the recorded model was imported")
"""


@pytest.fixture(scope="module")
def counterexample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ce")
    (v,) = audit(select(default_bounds(), ["bcre-psd"]), budget=1.0, out=out)
    assert v.verdict == "violated" and v.path
    return Path(v.path)


def rewrite(src: Path, dst: Path, **fields: str) -> Path:
    with np.load(src, allow_pickle=False) as data:
        saved = {k: data[k] for k in data.files}
    saved.update({k: np.str_(v) for k, v in fields.items()})
    np.savez(dst, **saved)
    return dst


def planted_folder(tmp_path: Path) -> Path:
    (tmp_path / "planted_bounds.py").write_text(PLANTED_BOUNDS)
    (tmp_path / "planted_model.py").write_text(PLANTED_MODEL)
    return tmp_path


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m``: the current folder is on sys.path, so an import would find the plants."""
    return subprocess.run(
        [sys.executable, "-m", "creality_sym.cli", "audit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_replay_runs_neither_the_recorded_source_nor_the_recorded_model(
    tmp_path: Path, counterexample: Path
) -> None:
    here = planted_folder(tmp_path)
    npz = rewrite(
        counterexample, here / "ce.npz", source="planted_bounds.py", model="planted_model"
    )
    proc = cli(here, "--replay", "ce.npz")
    assert not (here / "bounds-marker").exists()
    assert not (here / "model-marker").exists()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bound bcre-psd from the default registry" in proc.stdout
    assert "recorded source: planted_bounds.py (not executed" in proc.stdout
    assert "(recorded: planted_model)" in proc.stdout
    assert "reproduced" in proc.stdout.splitlines()[-1]
    r = replay(npz)  # the library call does the same
    assert r.reproduced and r.recorded_source == "planted_bounds.py"
    assert not (here / "bounds-marker").exists() and not (here / "model-marker").exists()


def test_a_bound_only_the_recorded_source_has_is_a_usage_error(
    tmp_path: Path, counterexample: Path
) -> None:
    here = planted_folder(tmp_path)
    rewrite(counterexample, here / "ce.npz", source="planted_bounds.py", bound_id="planted-only")
    proc = cli(here, "--replay", "ce.npz")
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("creality audit: --replay ce.npz: "), lines
    assert "'planted-only' is not in the default registry" in lines[0]
    assert "pass --bounds" in lines[0] and "planted_bounds.py" in lines[0]
    assert not (here / "bounds-marker").exists()


def test_named_bounds_and_model_are_used(tmp_path: Path, counterexample: Path) -> None:
    here = planted_folder(tmp_path)
    rewrite(counterexample, here / "ce.npz", source="elsewhere.py")
    proc = cli(here, "--replay", "ce.npz", "--bounds", "planted_bounds.py")
    assert (here / "bounds-marker").exists()  # the user named it
    assert proc.returncode == 1 and "NOT reproduced" in proc.stdout  # planted: always holds
    model = textwrap.dedent(
        """
        open("model-marker", "w").write("named")
        from creality_generated.creativity_reality import *  # noqa: F403
        """
    )
    (here / "named_model.py").write_text(model)
    proc = cli(here, "--replay", "ce.npz", "--model", "named_model")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (here / "model-marker").read_text() == "named"
    assert "model: named_model (recorded:" in proc.stdout


def test_malformed_counterexample_files_are_named(tmp_path: Path, counterexample: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    shapes = rewrite(counterexample, tmp_path / "shapes.npz")
    with np.load(shapes) as data:
        saved = {k: data[k] for k in data.files}
    saved["x"] = np.zeros(7)
    np.savez(shapes, **saved)
    for name, words in (
        ("missing.npz", "file not found"),
        ("bad.npz", "not a counterexample file"),
        ("shapes.npz", "x has shape (7,)"),
    ):
        proc = cli(tmp_path, "--replay", name)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, (name, proc.stderr)
        assert lines[0].startswith(f"creality audit: --replay {name}: ") and words in lines[0]
