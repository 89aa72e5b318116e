"""creality report reads nothing from the current folder and never writes into a project."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from creality_sym.audit import Bound, audit
from creality_sym.cli import main
from creality_sym.report.command import check_out

ROOT = Path(__file__).resolve().parents[1]


def planted_project(tmp_path: Path, marker: Path) -> Path:
    """A stale copy of the project whose every spec file writes ``marker`` when run."""
    project = tmp_path / "project"
    for folder in ("derivations", "generated"):
        shutil.copytree(
            ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    plant = f"open({str(marker)!r}, 'a').write(__file__ + '\\n')\n"
    for spec in (project / "derivations").glob("*.py"):
        spec.write_text(plant + spec.read_text())
    return project


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_out_may_not_touch_a_project_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    project = planted_project(tmp_path, tmp_path / "marker")
    monkeypatch.chdir(project)
    before = snapshot(project)
    cases = {
        ".": "contains this project's derivations/",
        "generated": "is this project's generated/",
        "generated/report": "lies inside this project's generated/",
        "derivations/x": "lies inside this project's derivations/",
        str(ROOT / "generated"): "the installed generated/",
    }
    for out, words in cases.items():
        assert main(["report", "--quick", "--out", out]) == 2, out
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("creality report: --out"), err
        assert words in err[0], (out, err)
    for out in (".", "x/.."):
        assert main(["report", "--quick", "--root", str(project), "--out", out]) == 2
        assert "the checked derivations/" in capsys.readouterr().err
    assert snapshot(project) == before
    assert not (tmp_path / "marker").exists()
    assert check_out(tmp_path / "elsewhere", None) is None


def test_report_without_root_runs_nothing_from_the_current_folder(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    project = planted_project(tmp_path, marker)
    before = snapshot(project / "generated")
    out = tmp_path / "out"
    proc = subprocess.run(  # `python -m` puts the current folder on sys.path: the harder case
        [sys.executable, "-m", "creality_sym.cli", "report", "--quick", "--no-progress"]
        + ["--out", str(out), "--audit-budget", "0.1"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1: a step's own failure, not ours
    assert not marker.exists(), marker.read_text()
    info = json.loads((out / "derivations.json").read_text())
    assert info["origin"] == "installed"
    assert Path(info["derivations"]).resolve() != (project / "derivations").resolve()
    assert snapshot(project / "generated") == before


def test_a_bound_id_cannot_write_outside_out(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "deep" / "out"
    out.parent.mkdir()
    bad_ids = ["../../escaped", "../escaped2", "/tmp/abs-escaped", "a/../../b", ".."]
    bounds = [
        Bound(i, "always violated", lhs=lambda inst: 1.0, rhs=lambda inst: 0.0, expect="violated")
        for i in bad_ids
    ]
    before = {p for p in tmp_path.rglob("*")}
    vs = audit(bounds, budget=1.0, out=out, shrink_seconds=0.1)
    assert [v.verdict for v in vs] == ["violated"] * len(bad_ids)
    written = {p for p in tmp_path.rglob("*")} - before
    assert written, "counterexamples were written"
    for p in written:
        assert p == out or out in p.parents, p
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == len(bad_ids) and all(n.endswith(".npz") for n in names)
    assert not Path("/tmp/abs-escaped.npz").exists()
    # the CLI: the same through a bounds file
    f = tmp_path / "bad_ids.py"
    f.write_text(
        textwrap.dedent(
            """
            from creality_sym.audit import Bound
            BOUNDS = [Bound("../../../cli-escaped", "s", lhs=lambda i: 1.0, rhs=lambda i: 0.0,
                            expect="violated")]
            """
        )
    )
    out2 = tmp_path / "x" / "y" / "out2"
    assert main(["audit", "--bounds", str(f), "--out", str(out2), "--budget", "1"]) == 0
    capsys.readouterr()
    found = list(tmp_path.rglob("*cli-escaped*"))
    assert len(found) == 1 and found[0].parent == out2
