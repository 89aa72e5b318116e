"""Every failure of `creality audit` to run is one line naming the argument or file, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from creality_sym.cli import main


def _files(tmp_path: Path) -> dict[str, Path]:
    syntax = tmp_path / "syntax.py"
    syntax.write_text("BOUNDS = [\n")
    raises = tmp_path / "raises.py"
    raises.write_text("x = 1\nraise RuntimeError('broken on purpose')\n")
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    not_bounds = tmp_path / "not_bounds.py"
    not_bounds.write_text("BOUNDS = [1]\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    return {
        "syntax": syntax,
        "raises": raises,
        "empty": empty,
        "not_bounds": not_bounds,
        "a_file": a_file,
    }


def cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    f = _files(tmp_path)
    return [
        (["--bounds", str(tmp_path / "missing.py")], "--bounds"),
        (["--bounds", str(f["syntax"])], f"--bounds {f['syntax']}:1: syntax error"),
        (
            ["--bounds", str(f["raises"])],
            f"--bounds {f['raises']}:2: RuntimeError: broken on purpose",
        ),
        (["--bounds", str(f["empty"])], "must define BOUNDS"),
        (["--bounds", str(f["not_bounds"])], "BOUNDS[0] is a int"),
        (["--lemma", "no-such-bound"], "--lemma: unknown bound ids ['no-such-bound']"),
        (["--model", "no_such_module_here"], "--model no_such_module_here: "),
        (["--budget", "0"], "--budget must be"),
        (["--budget", "-1"], "--budget must be"),
        (["--budget", "nan"], "--budget must be"),
        (["--budget", "soon"], "argument --budget: invalid float value: 'soon'"),
        (["--max-evals", "0"], "--max-evals must be"),
        (["--max-evals", "1.5"], "argument --max-evals: invalid int value"),
        (["--eval-timeout", "0"], "--eval-timeout must be"),
        (["--workers", "0"], "--workers must be"),
        (["--out", str(f["a_file"])], f"--out {f['a_file']}: exists and is not a folder"),
        (["--out", str(f["a_file"] / "below")], "is not a folder"),
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["--replay", str(tmp_path / "missing.npz")], "file not found"),
    ]


def test_every_failure_is_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for args, words in cases(tmp_path):
        try:
            rc = main(
                ["audit", *args, "--budget", "0.1"] if "--budget" not in args else ["audit", *args]
            )
        except SystemExit as exc:  # argparse's own errors
            rc = exc.code
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert rc == 2, (args, captured.err)
        assert len(lines) == 1, (args, captured.err)
        assert lines[0].startswith("creality audit: "), lines
        assert words in lines[0], (args, lines[0])
        assert "Traceback" not in captured.err and captured.out == "", args


def test_a_failed_check_exits_1_and_a_good_run_0(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    f = tmp_path / "b.py"
    f.write_text(
        "from creality_sym.audit import Bound\n"
        "BOUNDS = [Bound('ok', 's', lhs=lambda i: 0.0, rhs=lambda i: 1.0),\n"
        "          Bound('wrong', 's', lhs=lambda i: 2.0, rhs=lambda i: 1.0)]\n"
    )
    out = str(tmp_path / "out")
    assert (
        main(["audit", "--bounds", str(f), "--lemma", "ok", "--budget", "0.3", "--out", out]) == 0
    )
    assert main(["audit", "--bounds", str(f), "--budget", "0.5", "--out", out]) == 1
    text = capsys.readouterr().out
    assert "MISMATCH: wrong (expected holds, got violated)" in text
