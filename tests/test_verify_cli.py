"""`creality derive` / `creality check`: every error named, verification recorded and enforced.

The projects here are small scratch copies (two of the shipped specs) so that a
verifying `creality derive` takes seconds.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from creality_sym import generate
from creality_sym.cli import main
from creality_sym.generate import Layout, derive_all, render_all, write_tree

ROOT = Path(__file__).resolve().parents[1]
PASSED = {m: "pass" for m in ("symbolic", "numeric", "statements", "generated", "generated-c")}


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """derivations/ with the default spec and cross_entropy; generated/ recorded as verified."""
    (tmp_path / "derivations").mkdir()
    for name in ("creativity_reality", "cross_entropy"):
        shutil.copy(ROOT / "derivations" / f"{name}.py", tmp_path / "derivations")
    layout = Layout(tmp_path)
    statuses = dict.fromkeys(["creativity_reality", "cross_entropy"], PASSED)
    write_tree(render_all(derive_all(layout), layout, statuses), layout.generated)
    return tmp_path


def import_generated(folder: Path, module: str):
    """Import ``folder`` (a generated/ tree) as a private package and return ``module``."""
    package = f"_test_generated_{abs(hash(str(folder)))}"
    spec = importlib.util.spec_from_file_location(
        package, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    pkg = importlib.util.module_from_spec(spec)
    sys.modules[package] = pkg
    spec.loader.exec_module(pkg)
    return importlib.import_module(f"{package}.{module}")


# ----------------------------------------------------------------------------- errors


HINGE = '''"""Hinge reality: not differentiable."""

import sympy as sp

from creality_sym.spec import Spec, Term, f, vector

b = vector("b", "probability")

SPEC = Spec(
    name="{name}",
    terms=[Term("hinge", sp.Max(f - b, 0))],
    vectors=[b],
)
'''


def test_every_failing_spec_is_named_as_file_and_line_without_traceback(small, capsys):
    before = tree(small / "generated")
    for name in ("hinge_a", "hinge_b"):
        (small / "derivations" / f"{name}.py").write_text(HINGE.format(name=name))
    assert main(["derive", "--root", str(small)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for name in ("hinge_a", "hinge_b"):
        lines = [ln for ln in err.splitlines() if f"{small}/derivations/{name}.py:11:" in ln]
        assert len(lines) == 1 and "Max" in lines[0], err
    assert "2 errors; generated/ left unchanged" in err
    assert tree(small / "generated") == before


def test_a_runaway_spec_hits_the_time_limit_and_is_named(small, capsys):
    before = tree(small / "generated")
    assert main(["derive", "--timeout", "0.001", "--root", str(small)]) == 2
    err = capsys.readouterr().err
    assert "took longer than 0.001 s (--timeout)" in err
    assert f"{small}/derivations/creativity_reality.py:" in err and "Traceback" not in err
    assert tree(small / "generated") == before


def test_check_reports_a_syntax_error_as_file_and_line_not_stale(small, capsys):
    spec = small / "derivations" / "cross_entropy.py"
    spec.write_text(spec.read_text().replace("SPEC = Spec(", "SPEC = Spec((", 1))
    assert main(["check", "--root", str(small)]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:" in err and "syntax error" in err and "stale" not in err


def test_a_crlf_spec_is_hashed_as_bytes_and_not_stale_after_derive(small, capsys):
    spec = small / "derivations" / "cross_entropy.py"
    spec.write_bytes(spec.read_bytes().replace(b"\n", b"\r\n"))
    assert main(["check", "--root", str(small)]) == 1
    assert "cross_entropy is stale" in capsys.readouterr().err
    assert main(["derive", "--no-verify", "--root", str(small)]) == 0
    capsys.readouterr()
    assert main(["check", "--root", str(small)]) == 1
    err = capsys.readouterr().err
    assert "stale" not in err and "differs" not in err
    assert "spec cross_entropy was written unverified" in err
    assert "creativity_reality" not in err


# ----------------------------------------------------------------------------- the generated method


def test_derive_refuses_code_that_fails_the_generated_check(small, monkeypatch, capsys):
    """A wrong generated gradient (planted in the rendered text) never replaces generated/."""
    before = tree(small / "generated")
    real = generate.render_all

    def planted(derivations, layout, verification=None):
        files = real(derivations, layout, verification)
        text = files["cross_entropy.py"]
        marker = "def gradient("
        assert marker in text
        files["cross_entropy.py"] = text.replace(
            "    return _MODEL.gradient(", "    return 1.001 * _MODEL.gradient(", 1
        )
        assert files["cross_entropy.py"] != text
        return files

    monkeypatch.setattr("creality_sym.commands.derive.render_all", planted)
    assert main(["derive", "cross_entropy", "--root", str(small)]) == 1
    captured = capsys.readouterr()
    assert "verification failed for cross_entropy (generated" in captured.err
    rows = [ln for ln in captured.out.splitlines() if ln.startswith("cross_entropy")]
    assert rows and any("FAIL" in ln for ln in rows)
    assert tree(small / "generated") == before


def test_derive_refuses_a_module_that_does_not_import(small, monkeypatch, capsys):
    before = tree(small / "generated")
    real = generate.render_all

    def broken(derivations, layout, verification=None):
        files = real(derivations, layout, verification)
        files["cross_entropy.py"] += "\ndef oops(:\n"
        return files

    monkeypatch.setattr("creality_sym.commands.derive.render_all", broken)
    assert main(["derive", "cross_entropy", "--root", str(small)]) == 1
    captured = capsys.readouterr()
    assert "SyntaxError" in captured.out and "cannot import the module" in captured.out
    assert tree(small / "generated") == before


# ----------------------------------------------------------------------------- new specs

SCALAR_W = '''"""A scalar named w, while the default spec has a vector w."""

import sympy as sp

from creality_sym.spec import Spec, Term, f, scalar, vector, z

b = vector("b", "probability")
w = scalar("w", "positive")

SPEC = Spec(
    name="scalar_w",
    terms=[Term("reality", -b * sp.log(f)), Term("ridge", w * z**2 / 2)],
    vectors=[b],
    scalars=[w],
)
'''

KEYWORD = '''"""A scalar named lambda (a Python keyword)."""

import sympy as sp

from creality_sym.spec import Spec, Term, f, scalar, vector, x

b = vector("b", "probability")
lam = scalar("lambda", "nonnegative")

SPEC = Spec(
    name="keyword_scalar",
    terms=[Term("reality", -b * sp.log(f)), Term("ridge", lam * x**2 / 2, space="x")],
    vectors=[b],
    scalars=[lam],
)
'''

QUOTED = """\"\"\"A description with triple quotes.\"\"\"

import sympy as sp

from creality_sym.spec import Spec, Term, f, vector

b = vector("b", "probability")

SPEC = Spec(
    name="quoted",
    description='Cross-entropy; it says \"\"\"hello\"\"\" and has a backslash \\\\ too.',
    terms=[Term("reality", -b * sp.log(f))],
    vectors=[b],
)
"""


def test_new_specs_with_awkward_names_derive_verify_and_import(small, capsys):
    default_before = (small / "generated" / "creativity_reality.py").read_bytes()
    for name, text in (("scalar_w", SCALAR_W), ("keyword_scalar", KEYWORD), ("quoted", QUOTED)):
        (small / "derivations" / f"{name}.py").write_text(text)
    code = main(["derive", "scalar_w", "keyword_scalar", "quoted", "--root", str(small)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert (small / "generated" / "creativity_reality.py").read_bytes() == default_before
    assert main(["check", "--root", str(small)]) == 0
    rng = np.random.default_rng(0)
    n, d = 9, 3
    A, x = rng.standard_normal((n, d)), rng.standard_normal(d)
    b = rng.dirichlet(np.ones(n))
    for name, args in (("scalar_w", (b, 0.7)), ("keyword_scalar", (b, 0.3)), ("quoted", (b,))):
        mod = import_generated(small / "generated", name)
        g = np.asarray(mod.gradient(x, A, *args))
        eps = 1e-6
        fd = [
            (float(mod.loss(x + eps * e, A, *args)) - float(mod.loss(x - eps * e, A, *args)))
            / (2 * eps)
            for e in np.eye(d)
        ]
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)
    assert '"""hello"""' in import_generated(small / "generated", "quoted").__doc__


@pytest.mark.slow
def test_a_full_verifying_derive_of_the_shipped_specs_passes_and_check_agrees(tmp_path, capsys):
    """Every shipped spec through every method (minutes): exit 0, then check exits 0."""
    for name in ("derivations", "generated"):
        shutil.copytree(
            ROOT / name,
            tmp_path / name,
            ignore=shutil.ignore_patterns("__pycache__", "build", "dist", "*.egg-info"),
        )
    assert main(["derive", "--root", str(tmp_path)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "FAIL" not in out and "generated" in out.splitlines()[0]
    assert main(["check", "--root", str(tmp_path)]) == 0
