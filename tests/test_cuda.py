"""CUDA kernels: the same source compiled as C (gcc) agrees with the numpy modules.

The host path of ``creality_generated.cuda_loader`` compiles each
``generated/cuda/<spec>.cu`` with ``gcc -x c`` and calls the kernels through
ctypes, summing the reduction scratch arrays with numpy; its softmax,
pieces and end-to-end results are compared with the generated numpy module.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from creality_generated import SPECS, cuda_loader

from creality_sym.generate import Layout, derive_all, render_all, write_tree

ROOT = Path(__file__).resolve().parents[1]
CUDA = ROOT / "generated" / "cuda"
RTOL = 1e-13

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not on PATH")


def assert_close(actual, expected, what: str, rtol: float = RTOL) -> None:
    """Entrywise within rtol of the largest magnitude (relative, robust to exact zeros)."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, what
    assert np.all(np.isfinite(actual)), f"{what}: non-finite kernel result"
    scale = max(float(np.max(np.abs(expected), initial=0.0)), np.finfo(float).tiny)
    err = float(np.max(np.abs(actual - expected), initial=0.0)) / scale
    assert err <= rtol, f"{what}: relative error {err:.2e} > {rtol:.0e}"


def random_parameters(module, n: int, rng: np.random.Generator) -> dict[str, object]:
    """Values satisfying each parameter's rule (module.RULES)."""
    values: dict[str, object] = {}
    for name, (kind, rule) in module.RULES.items():
        if kind == "vector":
            if rule == "probability":
                v = rng.random(n)
                values[name] = v / v.sum()
            elif rule in ("positive", "nonnegative"):
                values[name] = rng.random(n) + 0.5
            else:
                values[name] = rng.standard_normal(n)
        else:
            values[name] = float(rng.uniform(0.3, 1.5) if rule != "real" else rng.normal())
    return values


def instances(module):
    """(label, x, A, parameters): a moderate instance and one with logits about ±1e3."""
    rng = np.random.default_rng(7)
    n, d = 37, 6
    A = rng.standard_normal((n, d))
    x = rng.standard_normal(d)
    yield "moderate", x, A, random_parameters(module, n, rng)
    z = A @ x
    yield "logits ±1e3", x * (1e3 / np.max(np.abs(z))), A, random_parameters(module, n, rng)


def module_call(fn, x, A, module, values):
    """Call a generated function: defaulted parameters are keyword-only there."""
    positional = [values[p] for p in module.PARAMETERS if p not in module.DEFAULTS]
    keywords = {p: values[p] for p in module.DEFAULTS}
    return fn(x, A, *positional, **keywords)


@pytest.fixture(scope="module", params=SPECS)
def spec(request):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not on PATH")
    module = importlib.import_module(f"creality_generated.{request.param}")
    return module, cuda_loader.load_host(request.param)


def test_softmax_and_pieces_match_the_numpy_module(spec):
    module, kernels = spec
    for label, x, A, values in instances(module):
        ordered = [values[p] for p in module.PARAMETERS]
        z, f, logf, k, fc = module._softmax(np, x, A, *ordered)
        f_k, logf_k, k_k, fc_k = kernels.softmax(z, *ordered)
        assert k_k == k
        assert fc_k == pytest.approx(fc, rel=1e-13, abs=1e-300)
        assert_close(f_k, f, f"{label}: f")
        assert_close(logf_k, logf, f"{label}: logf")
        for kind in ("loss", "gradient", "hessian"):
            names = kernels.description["programs"][kind]["outputs"]
            expected = dict(
                zip(
                    names,
                    getattr(module, f"_z_{kind}_total")(np, f, logf, z, *ordered, k, fc),
                    strict=True,
                )
            )
            got = kernels.z_pieces(kind, f, logf, z, *ordered, k=k, fc=fc)
            for name in names:
                assert_close(got[name], expected[name], f"{label}: {kind} piece {name}")


def test_loss_gradient_hessian_match_the_numpy_module(spec):
    module, kernels = spec
    for label, x, A, values in instances(module):
        ordered = [values[p] for p in module.PARAMETERS]
        for name in ("probabilities", "loss", "gradient", "hessian"):
            expected = module_call(getattr(module, name), x, A, module, values)
            assert_close(getattr(kernels, name)(x, A, *ordered), expected, f"{label}: {name}")


def test_loader_checks_its_arguments(spec):
    module, kernels = spec
    x, A, values = next(iter(instances(module)))[1:]
    ordered = [values[p] for p in module.PARAMETERS]
    with pytest.raises(ValueError, match="A must have shape"):
        kernels.gradient(x, A[:, :-1], *ordered)
    with pytest.raises(TypeError, match="missing parameter"):
        kernels.gradient(x, A)
    probability = [p for p, (_, rule) in module.RULES.items() if rule == "probability"]
    if probability:
        name = probability[0]
        bad = dict(values, **{name: values[name] * 2})
        with pytest.raises(ValueError, match=f"{name} must be a probability vector"):
            kernels.gradient(x, A, *[bad[p] for p in module.PARAMETERS])


XSPACE = '''
"""x-space ridge, Tsallis creativity with a symbolic exponent, temperature."""

import sympy as sp

from creality_sym.spec import Spec, Term, f, scalar, vector, x, z

b = vector("b", "probability")
gamma = scalar("gamma", "nonnegative")
q = scalar("q", "positive")
lam = scalar("lam", "nonnegative")
tau = scalar("tau", "positive")

SPEC = Spec(
    name="xspace",
    description="cross-entropy + gamma sum f^q + lam/2 ||x||^2 + x^4/4, f = softmax(Ax/tau).",
    terms=[
        Term("reality", -b * sp.log(f)),
        Term("creativity", f**q, weight=gamma),
        Term("ridge", lam * x**2 / 2 + x**4 / 4, space="x"),
    ],
    vectors=[b],
    scalars=[gamma, q, lam, tau],
    logit_scale=1 / tau,
    defaults={"q": 2.5, "tau": 1.0},
)
'''


@needs_gcc
def test_x_space_terms_and_symbolic_powers_through_the_kernels(tmp_path):
    (tmp_path / "derivations").mkdir()
    (tmp_path / "derivations" / "xspace.py").write_text(XSPACE)
    layout = Layout(tmp_path)
    write_tree(render_all(derive_all(layout), layout), layout.generated)
    source = (tmp_path / "generated" / "cuda" / "xspace.cu").read_text()
    assert "pow(f[i], q)" in source and "xspace_x_hessian_s0" in source
    spec = importlib.util.spec_from_file_location("_gen_xspace", layout.generated / "xspace.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    kernels = cuda_loader.load_host("xspace", folder=layout.generated / "cuda")
    for label, x, A, values in instances(module):
        if label != "moderate":
            x = x / 10  # keep the quartic ridge term moderate
        ordered = [values[p] for p in module.PARAMETERS]
        for name in ("loss", "gradient", "hessian"):
            expected = module_call(getattr(module, name), x, A, module, values)
            assert_close(getattr(kernels, name)(x, A, *ordered), expected, f"{label}: {name}")
        scalars = [values[p] for p in module.PARAMETERS if module.RULES[p][0] == "scalar"]
        xh = kernels.x_pieces("hessian", x, *scalars)["xh"]
        assert_close(xh, module._x_hessian_total(np, x, *scalars)[0], f"{label}: xh")


@needs_gcc
def test_every_source_compiles_as_strict_c():
    for name in SPECS:
        command = [
            "gcc",
            "-x",
            "c",
            "-std=c99",
            "-pedantic",
            "-Wall",
            "-Wextra",
            "-Wno-unused-parameter",
            "-Werror",
            "-fsyntax-only",
            str(CUDA / f"{name}.cu"),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
def test_every_source_compiles_with_nvcc(tmp_path):
    for name in SPECS:
        ptx = tmp_path / f"{name}.ptx"
        command = [
            "nvcc",
            "-ptx",
            "--Werror",
            "all-warnings",
            "-o",
            str(ptx),
            str(CUDA / f"{name}.cu"),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        entries = set(re.findall(r"\.entry\s+(\w+)", ptx.read_text()))
        desc = json.loads((CUDA / f"{name}.json").read_text())
        declared = {e["kernel"] for e in desc["softmax"].values()}
        declared |= {s["kernel"] for p in desc["programs"].values() for s in p["stages"]}
        assert entries == declared, f"{name}: PTX entries differ from the description"


def test_load_without_cupy_raises_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail
    with pytest.raises(RuntimeError, match="CuPy with a CUDA GPU is required"):
        cuda_loader.load(SPECS[0])


def test_loader_imports_neither_sympy_nor_the_generator():
    code = (
        "import sys, creality_generated.cuda_loader as m; "
        "bad = [k for k in sys.modules if k.split('.')[0] in ('sympy', 'creality_sym', 'cupy')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
