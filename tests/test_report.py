"""``creality report`` as a user runs it: write the page, open it, follow every reference."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from creality_sym.cli import main
from creality_sym.report import numeric, sweep, symbolic
from creality_sym.report.progress import Progress
from creality_sym.report.symbolic import check_generated, locate

LEMMA_IDS = (
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
)

PLOTS = ("convergence.png", "tradeoff.png")
DATA = ("convergence.csv", "tradeoff.csv", "audit.json", "verification.json")


class Page(HTMLParser):
    """Collects the page's text, image sources, link targets and table cells."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.scripts: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img" and a.get("src"):
            self.images.append(a["src"] or "")
        if tag == "a" and a.get("href"):
            self.links.append(a["href"] or "")
        if tag in ("script", "link"):
            self.scripts.append(a.get("src") or a.get("href") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def run_report(out: Path, *extra: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "creality_sym.cli", "report", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def check_report(out: Path, stdout: str) -> Page:
    """The page exists, parses, references only files that exist; returns it parsed."""
    page_path = out / "index.html"
    assert page_path.is_file()
    assert stdout.strip().splitlines()[-1] == str(page_path.resolve())
    page = Page()
    page.feed(page_path.read_text(encoding="utf-8"))
    page.close()
    assert not page.scripts, f"the page must not load scripts or styles: {page.scripts}"
    for ref in page.images + page.links:
        assert "://" not in ref, f"the page must work offline; it references {ref}"
        if ref.startswith("#"):
            continue
        target = out / ref
        assert target.is_file() and target.stat().st_size > 0, f"missing or empty: {ref}"
    for plot in PLOTS:
        assert plot in page.images
    plots = [i for i in page.images if not i.startswith("formulas/")]
    assert len(plots) >= 2
    assert any(i.startswith("formulas/") for i in page.images), "no rendered formula"
    for name in DATA:
        assert name in page.links, f"the page does not link its data {name}"
        assert (out / name).stat().st_size > 0
    text = " ".join(page.text)
    for lemma in LEMMA_IDS:
        assert lemma in text, f"lemma {lemma} missing from the page"
    for mode in ("precise", "balanced", "creative"):
        assert mode in text
    return page


def test_quick_report(tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = run_report(out, "--quick", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page = check_report(out, proc.stdout)
    # not a terminal: no live progress line, one line per step
    assert "\r" not in proc.stdout
    assert "[6/6] page:" in proc.stdout

    audit = json.loads((out / "audit.json").read_text())
    verdicts = {v["id"]: v["verdict"] for v in audit["verdicts"]}
    assert set(verdicts) == set(LEMMA_IDS)
    assert verdicts["bcre-psd"] == "violated"
    ce = [link for link in page.links if link.startswith("counterexamples/")]
    assert ce == ["counterexamples/bcre-psd.npz"]

    lines = (out / "tradeoff.csv").read_text().splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    assert float(rows[0]["gamma"]) == 0.0 and "jump_to_next" in header
    assert {r["mode"] for r in rows} >= {"precise", "balanced", "creative"}
    entropy = [float(r["entropy"]) for r in rows]
    distance = [float(r["reality_distance"]) for r in rows]
    assert entropy[-1] > entropy[0] and distance[-1] > distance[0]
    gammas = [float(r["gamma"]) for r in rows]
    assert gammas == sorted(gammas) and len(gammas) == 15
    assert "gamma_sweep.png" not in page.images  # the twin-axis plot is gone
    assert "[3/6] audit: 12 lemmas on spec creativity_reality: " in proc.stdout
    assert "searched" in " ".join(page.text) and "gamma 0-4" in " ".join(page.text)

    methods = {line.split(",")[0] for line in (out / "convergence.csv").read_text().splitlines()}
    assert {"exact", "sampled"} <= methods


def test_unwritable_out_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["report", "--quick", "--out", str(blocker)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["report", "--quick", "--out", str(blocker / "below")]) == 2
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="file permissions do not bind this user"
)
def test_read_only_out(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["report", "--quick", "--out", str(locked)]) == 2
        assert "cannot write" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_bad_budget(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", "--out", str(tmp_path), "--audit-budget", "0"]) == 2
    assert "--audit-budget" in capsys.readouterr().err


def test_progress_is_quiet_off_a_terminal(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    with log.open("w") as stream:
        progress = Progress(2, stream=stream, delay=0.0)
        assert not progress.live
        with progress.step("first") as step:
            step.update("detail that only a terminal shows")
            step.summary = "done"
    assert re.fullmatch(r"\[1/2\] first: done \(\d+\.\d s\)\n", log.read_text())


def test_quick_report_of_another_spec(tmp_path: Path) -> None:
    out = tmp_path / "cosine"
    proc = run_report(out, "--spec", "cosine", "--quick", "--audit-budget", "0.05")
    assert proc.returncode == 0, proc.stderr
    page = check_report(out, proc.stdout)
    text = " ".join(page.text)
    assert "Spec cosine" in text and "derivation.md" in page.links
    assert (out / "derivation.md").read_text().startswith("## `cosine`")
    assert json.loads((out / "audit.json").read_text())["spec"] == "cosine"
    assert json.loads((out / "solve.json").read_text())["instance"]["spec"] == "cosine"
    assert "lemmas on spec cosine" in proc.stdout and "1 skipped" in proc.stdout


def test_bad_spec_or_param_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for args, words in (
        (["--spec", "nope"], "--spec nope: no generated spec 'nope'"),
        (["--spec", "renyi", "--param", "q=1"], "--param q=1: spec renyi is singular there"),
        (["--param", "tau=2"], "--param tau: spec creativity_reality has no parameter 'tau'"),
    ):
        assert main(["report", "--quick", "--out", str(tmp_path / "o"), *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("creality report: ") and words in err[0], err


def test_locate_ignores_a_project_in_the_current_folder(
    project_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project_root)
    assert locate(None).origin == "installed"
    assert locate(project_root).origin == "project"


@pytest.mark.slow
def test_full_report(tmp_path: Path, project_root: Path) -> None:
    out = tmp_path / "full"
    proc = run_report(out, "--root", str(project_root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    check_report(out, proc.stdout)


def test_stale_generated_is_reported_not_overwritten(tmp_path: Path, project_root: Path) -> None:
    project = tmp_path / "project"
    for folder in ("derivations", "generated"):
        shutil.copytree(
            project_root / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    spec = project / "derivations" / "creativity_reality.py"
    spec.write_text(spec.read_text() + "\n# edited after the last derive\n")
    before = {p: p.read_bytes() for p in (project / "generated").rglob("*") if p.is_file()}
    out = tmp_path / "out"
    out.mkdir()

    section, problems = check_generated(locate(project), out)

    assert problems and section.status == "warn"
    assert "STALE" in section.summary
    assert (out / "generated" / "manifest.json").is_file()
    after = {p: p.read_bytes() for p in (project / "generated").rglob("*") if p.is_file()}
    assert after == before, "the checked generated/ must never be written"


def test_a_failing_step_is_shown_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("deliberately broken step")

    for module, name in (
        (numeric, "audit_section"),
        (numeric, "solve_section"),
        (sweep, "sweep_section"),
        (symbolic, "verification_section"),
    ):
        monkeypatch.setattr(module, name, broken)
    out = tmp_path / "out"
    assert main(["report", "--quick", "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "failed: verification, audit, solve, tradeoff" in captured.err
    page = Page()
    page.feed((out / "index.html").read_text(encoding="utf-8"))
    assert "deliberately broken step" in " ".join(page.text)
    for ref in page.images + page.links:
        assert ref.startswith("#") or (out / ref).is_file()
