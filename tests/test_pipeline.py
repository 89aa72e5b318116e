"""derive / check: deterministic, atomic, in sync; specs are plain files."""

from __future__ import annotations

import importlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from creality_sym.cli import main
from creality_sym.generate import (
    MANIFEST,
    Layout,
    derive_all,
    previous_verification,
    render_all,
    write_tree,
)
from creality_sym.spec import SpecError, load_spec

ROOT = Path(__file__).resolve().parents[1]
#: what a verifying `creality derive` records for a spec whose every method passed
PASSED = {m: "pass" for m in ("symbolic", "numeric", "statements", "generated", "generated-c")}
BUILD_LEFTOVERS = shutil.ignore_patterns("__pycache__", "build", "dist", "*.egg-info")


def mark_verified(project: Path) -> None:
    """Record a passing verification for every spec in ``project`` (a stand-in for a full
    `creality derive`, which takes minutes for the shipped specs): the manifest and
    DERIVATIONS.md are rewritten as a verifying derive would write them."""
    layout = Layout(project)
    derivations = derive_all(layout)
    statuses = {d.spec.name: dict(PASSED) for d in derivations}
    write_tree(render_all(derivations, layout, statuses), layout.generated)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's derivations/ and generated/, recorded as verified."""
    for name in ("derivations", "generated"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=BUILD_LEFTOVERS)
    mark_verified(tmp_path)
    return tmp_path


def without_verification(manifest: bytes) -> dict:
    data = json.loads(manifest)
    for entry in data["specs"].values():
        entry.pop("verification", None)
    return data


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.relative_to(folder).parts[0] not in ("build", "dist")
        and not p.relative_to(folder).parts[0].endswith(".egg-info")
    }


def test_generated_matches_a_fresh_regeneration(request):
    """Golden test: regenerate in memory and diff against generated/.

    Verification statuses are compared by `creality check` (and the test below);
    ``--update-generated`` keeps a spec's recorded status only while its spec and
    generated files are unchanged.
    """
    layout = Layout(ROOT)
    derivations = derive_all(layout)
    expected = render_all(derivations, layout)
    statuses = previous_verification(layout, derivations, expected)
    expected = render_all(derivations, layout, statuses)
    if request.config.getoption("--update-generated"):
        write_tree(expected, layout.generated)
    on_disk = tree(layout.generated)
    assert sorted(on_disk) == sorted(expected), (
        "run `pytest --update-generated` or `creality derive`"
    )
    for rel, text in expected.items():
        if rel == MANIFEST:
            assert without_verification(on_disk[rel]) == without_verification(text.encode())
        else:
            assert on_disk[rel] == text.encode(), f"generated/{rel} is stale"


def test_the_shipped_generated_tree_records_a_verification(capsys):
    """generated/ was written by a verifying `creality derive` (not --no-verify)."""
    from creality_sym.generate import verification_problems

    problems = verification_problems(Layout(ROOT))
    assert not problems, "run `creality derive` to verify generated/: " + "; ".join(problems)


def test_regeneration_is_deterministic(project):
    layout = Layout(project)
    first = render_all(derive_all(layout), layout)
    second = render_all(derive_all(layout), layout)
    assert first == second


def test_check_detects_an_edited_spec_and_derive_repairs_it(project, capsys):
    assert main(["check", "--root", str(project)]) == 0
    spec = project / "derivations" / "creativity_reality.py"
    spec.write_text(spec.read_text() + "# an edit\n")
    assert main(["check", "--root", str(project)]) == 1
    assert "creativity_reality is stale" in capsys.readouterr().err
    # regenerated without verification: in sync, but check names it as unverified
    assert main(["derive", "--no-verify", "--root", str(project)]) == 0
    capsys.readouterr()
    assert main(["check", "--root", str(project)]) == 1
    err = capsys.readouterr().err
    assert "spec creativity_reality was written unverified" in err
    assert "cross_entropy" not in err  # unchanged specs keep their recorded status
    # verifying the one spec repairs it, prints the table with every method, keeps the others
    assert main(["derive", "creativity_reality", "--root", str(project)]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:3] == ["spec", "term", "quantity"]
    assert {"symbolic", "numeric", "statements", "generated"} <= set(header)
    assert main(["check", "--root", str(project)]) == 0
    manifest = json.loads((project / "generated" / MANIFEST).read_bytes())
    recorded = manifest["specs"]["creativity_reality"]["verification"]
    assert {recorded[m] for m in ("symbolic", "numeric", "statements", "generated")} == {"pass"}
    assert manifest["specs"]["cross_entropy"]["verification"] == PASSED


def test_derive_reproduces_generated_byte_for_byte(project):
    before = tree(project / "generated")
    assert main(["derive", "--no-verify", "--root", str(project)]) == 0
    assert tree(project / "generated") == before


def test_check_detects_a_hand_edited_generated_file(project, capsys):
    target = project / "generated" / "creativity_reality.py"
    text = target.read_text()
    target.write_text(text.replace("return _MODEL.hessian(", "return 2 * _MODEL.hessian(", 1))
    assert target.read_text() != text
    assert main(["check", "--root", str(project)]) == 1
    assert "generated/creativity_reality.py differs" in capsys.readouterr().err


def test_a_broken_spec_is_reported_with_file_and_line_and_changes_nothing(project, capsys):
    before = tree(project / "generated")
    spec = project / "derivations" / "temperature.py"
    lines = spec.read_text().splitlines()
    lines.insert(20, "oops = undefined_name + 1")
    spec.write_text("\n".join(lines) + "\n")
    assert main(["derive", "--no-verify", "--root", str(project)]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:21" in err and "NameError" in err
    assert tree(project / "generated") == before


def test_a_failed_write_leaves_generated_intact(project, monkeypatch):
    before = tree(project / "generated")
    files = render_all(derive_all(Layout(project)), Layout(project))
    original = Path.write_bytes

    def failing(self, data):
        if self.name == "temperature.py" and "generated.tmp" in str(self):
            raise OSError("disk full")
        return original(self, data)

    monkeypatch.setattr(Path, "write_bytes", failing)
    with pytest.raises(OSError):
        write_tree(files, project / "generated")
    assert tree(project / "generated") == before
    assert not list(project.glob("generated.tmp-*"))


def test_syntax_error_names_the_line(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("import sympy\nSPEC = (\n")
    with pytest.raises(SpecError, match=r"broken.py:\d+: syntax error"):
        load_spec(bad)


TSALLIS = '''
"""Tsallis-type creativity: sum f^q, with plain ridge on x."""

import sympy as sp

from creality_sym.spec import Spec, Statement, Term, f, scalar, vector, x, z

b = vector("b", "probability")
gamma = scalar("gamma", "nonnegative")
q = scalar("q", "positive")
lam = scalar("lam", "nonnegative")

SPEC = Spec(
    name="tsallis",
    description="KL(b || f) reality + gamma * sum f^q + lam/2 ||x||^2.",
    terms=[
        Term("reality", b * sp.log(b) - b * sp.log(f)),
        Term("creativity", f**q, weight=gamma),
        Term("ridge", lam * x**2 / 2, space="x"),
    ],
    vectors=[b],
    scalars=[gamma, q, lam],
    defaults={"q": 2.0, "lam": 0.1},
    statements=[Statement("grad-ridge", "ridge", "x_gradient", lam * x)],
)
'''


def _import_generated(path: Path, name: str):
    """Import module ``name`` of the generated tree holding ``path`` (a private package:
    generated modules import their runtime relatively)."""
    folder = path.parent
    package = f"_gen_{name}_{abs(hash(str(folder)))}"
    spec = importlib.util.spec_from_file_location(
        package, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module
    spec.loader.exec_module(module)
    return importlib.import_module(f"{package}.{name}")


def test_a_new_spec_file_goes_through_the_pipeline(project):
    (project / "derivations" / "tsallis.py").write_text(TSALLIS)
    assert main(["check", "--root", str(project)]) == 1
    assert main(["derive", "--no-verify", "--root", str(project)]) == 0
    mod = _import_generated(project / "generated" / "tsallis.py", "tsallis")
    assert "sympy" not in mod.__dict__
    rng = np.random.default_rng(0)
    n, d = 12, 4
    A, x = rng.standard_normal((n, d)), rng.standard_normal(d)
    b = rng.random(n)
    b /= b.sum()
    g = mod.gradient(x, A, b, 0.4, q=1.5, lam=0.3)
    eps = 1e-6
    fd = [
        (
            mod.loss(x + eps * e, A, b, 0.4, q=1.5, lam=0.3)
            - mod.loss(x - eps * e, A, b, 0.4, q=1.5, lam=0.3)
        )
        / (2 * eps)
        for e in np.eye(d)
    ]
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)
    H = mod.hessian(x, A, b, 0.4, q=1.5, lam=0.3)
    fdH = np.array(
        [
            (
                mod.gradient(x + eps * e, A, b, 0.4, q=1.5, lam=0.3)
                - mod.gradient(x - eps * e, A, b, 0.4, q=1.5, lam=0.3)
            )
            / (2 * eps)
            for e in np.eye(d)
        ]
    )
    np.testing.assert_allclose(H, fdH, rtol=1e-5, atol=1e-8)
    v = rng.standard_normal(d)
    np.testing.assert_allclose(mod.hvp(x, v, A, b, 0.4, q=1.5, lam=0.3), H @ v, rtol=1e-10)


@pytest.mark.parametrize("name", ["temperature", "cross_entropy"])
def test_variant_modules_agree_with_finite_differences(name):
    mod = importlib.import_module(f"creality_generated.{name}")
    rng = np.random.default_rng(3)
    n, d = 25, 5
    A, x = rng.standard_normal((n, d)), rng.standard_normal(d)
    b = rng.random(n)
    b /= b.sum()
    w = 0.5 + rng.random(n)
    kw = {"tau": 0.7} if name == "temperature" else {}
    grad = mod.gradient(x, A, b, w, 0.6, **kw)
    H = mod.hessian(x, A, b, w, 0.6, **kw)
    eps = 1e-6
    fd = np.array(
        [
            (
                mod.gradient(x + eps * e, A, b, w, 0.6, **kw)
                - mod.gradient(x - eps * e, A, b, w, 0.6, **kw)
            )
            / (2 * eps)
            for e in np.eye(d)
        ]
    )
    np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-7)
    fdg = [
        (mod.loss(x + eps * e, A, b, w, 0.6, **kw) - mod.loss(x - eps * e, A, b, w, 0.6, **kw))
        / (2 * eps)
        for e in np.eye(d)
    ]
    np.testing.assert_allclose(grad, fdg, rtol=1e-6, atol=1e-7)


def test_temperature_one_equals_the_default_spec():
    import creality_generated.creativity_reality as default
    import creality_generated.temperature as temp

    rng = np.random.default_rng(4)
    A, x = rng.standard_normal((9, 3)), rng.standard_normal(3)
    b = np.full(9, 1 / 9)
    w = np.ones(9)
    np.testing.assert_allclose(
        temp.hessian(x, A, b, w, 0.3, tau=1.0), default.hessian(x, A, b, w, 0.3), rtol=1e-14
    )
    with pytest.raises(ValueError, match="^tau must be > 0"):
        temp.loss(x, A, b, w, 0.3, tau=0.0)


CROSS = '''
"""A loss mixing f and z (exercises the f-z cross derivative and B 1_n != 0)."""

import sympy as sp

from creality_sym.spec import Spec, Term, f, scalar, vector, z

b = vector("b", "probability")
tau = scalar("tau", "positive")

SPEC = Spec(
    name="cross_terms",
    terms=[
        Term("expected_logit", f * z),
        Term("softplus", sp.log(1 + sp.exp(z)) * b),
        Term("entropy", f * sp.log(f), weight=tau),
    ],
    vectors=[b],
    scalars=[tau],
    logit_scale=1 / tau,
)
'''


def test_cross_terms_and_temperature_agree_with_finite_differences(project):
    (project / "derivations" / "cross_terms.py").write_text(CROSS)
    assert main(["derive", "--no-verify", "--root", str(project)]) == 0
    mod = _import_generated(project / "generated" / "cross_terms.py", "cross_terms")
    rng = np.random.default_rng(5)
    n, d = 15, 4
    A, x = rng.standard_normal((n, d)), rng.standard_normal(d)
    b = rng.random(n)
    b /= b.sum()
    tau = 0.8
    eps = 1e-6
    grad = mod.gradient(x, A, b, tau)
    H = mod.hessian(x, A, b, tau)
    fdg = [
        (mod.loss(x + eps * e, A, b, tau) - mod.loss(x - eps * e, A, b, tau)) / (2 * eps)
        for e in np.eye(d)
    ]
    fdH = np.array(
        [
            (mod.gradient(x + eps * e, A, b, tau) - mod.gradient(x - eps * e, A, b, tau))
            / (2 * eps)
            for e in np.eye(d)
        ]
    )
    np.testing.assert_allclose(grad, fdg, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(H, fdH, rtol=1e-5, atol=1e-7)
    v = rng.standard_normal(d)
    np.testing.assert_allclose(mod.hvp(x, v, A, b, tau), H @ v, rtol=1e-10, atol=1e-12)


KL = '''
"""KL(b || f) reality: b log b - b log f, with 0 log 0 = 0."""

import sympy as sp

from creality_sym.spec import Spec, Term, f, vector

b = vector("b", "probability")

SPEC = Spec(
    name="kl",
    terms=[Term("reality", b * sp.log(b) - b * sp.log(f))],
    vectors=[b],
)
'''


def test_zero_entries_of_b_follow_the_0_log_0_convention(project):
    (project / "derivations" / "kl.py").write_text(KL)
    assert main(["derive", "--no-verify", "--root", str(project)]) == 0
    mod = _import_generated(project / "generated" / "kl.py", "kl")
    A = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    x = np.array([0.3, -0.2])
    b = np.array([0.5, 0.5, 0.0])
    with np.errstate(all="raise"):
        value = mod.loss(x, A, b)
        grad = mod.gradient(x, A, b)
    z = A @ x
    logf = z - np.log(np.sum(np.exp(z)))
    assert value == pytest.approx(np.sum(b[:2] * (np.log(b[:2]) - logf[:2])), rel=1e-14)
    np.testing.assert_allclose(grad, A.T @ (np.exp(logf) - b), rtol=1e-13)
