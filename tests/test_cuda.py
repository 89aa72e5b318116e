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


def random_parameters(module, n: int, d: int, rng: np.random.Generator) -> dict[str, object]:
    """Values satisfying each parameter's rule and shape (module.PARAMETERS)."""
    values: dict[str, object] = {}
    for p in module.PARAMETERS:
        size = n if p.shape == "n" else d
        if p.kind == "vector":
            if p.rule == "probability":
                v = rng.random(size)
                values[p.name] = v / v.sum()
            elif p.rule in ("positive", "nonnegative"):
                values[p.name] = rng.random(size) + 0.5
            else:
                values[p.name] = rng.standard_normal(size)
        elif p.name == "q":
            values[p.name] = float(rng.uniform(1.3, 2.5))
        else:
            values[p.name] = float(rng.uniform(0.3, 1.5) if p.rule != "real" else rng.normal())
    return values


def instances(module):
    """(label, x, A, parameters): a moderate instance and one with logits about ±1e3."""
    rng = np.random.default_rng(7)
    n, d = 37, 6
    A = rng.standard_normal((n, d))
    x = rng.standard_normal(d)
    if module.USES_EXP:  # the unnormalized exp(z): logits must stay moderate
        yield "moderate", x / 4, A, random_parameters(module, n, d, rng)
        return
    yield "moderate", x, A, random_parameters(module, n, d, rng)
    z = A @ x
    yield "logits ±1e3", x * (1e3 / np.max(np.abs(z))), A, random_parameters(module, n, d, rng)


def module_call(fn, x, A, module, values):
    """Call a generated function: defaulted parameters are keyword-only there."""
    positional = [values[p.name] for p in module.PARAMETERS if p.default is None]
    keywords = {p.name: values[p.name] for p in module.PARAMETERS if p.default is not None}
    return fn(x, A, *positional, **keywords)


def ordered_values(module, values, shapes=("n", "d", "scalar")):
    return [values[p.name] for p in module.PARAMETERS if p.shape in shapes]


@pytest.fixture(scope="module", params=SPECS)
def spec(request):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not on PATH")
    module = importlib.import_module(f"creality_generated.{request.param}")
    return module, cuda_loader.load_host(request.param)


def test_softmax_and_pieces_match_the_numpy_module(spec):
    module, kernels = spec
    fields = {"loss": ("loss",), "gradient": ("g", "g_total")}
    fields["hessian"] = ("delta", "p", "c", "ones", "ones_total")
    for label, x, A, values in instances(module):
        z = A @ x
        zvalues = ordered_values(module, values, ("n", "scalar"))
        keywords = {p.name: values[p.name] for p in module.PARAMETERS if p.default is not None}
        positional = [values[p.name] for p in module.PARAMETERS if p.shape == "n"]
        positional += [
            values[p.name] for p in module.PARAMETERS if p.kind == "scalar" and p.default is None
        ]
        expected = module.z_pieces(z, *positional, **keywords)
        f_k, logf_k, k_k, fc_k = kernels.softmax(z, *zvalues)
        assert k_k == expected.softmax.k
        assert fc_k == pytest.approx(float(expected.softmax.fc), rel=1e-13, abs=1e-300)
        assert_close(f_k, expected.f, f"{label}: f")
        assert_close(logf_k, expected.softmax.logf, f"{label}: logf")
        for kind, names in fields.items():
            got = kernels.z_pieces(kind, f_k, logf_k, z, *zvalues, k=k_k, fc=fc_k)
            for name in names:
                want = getattr(expected, name)
                want = np.zeros_like(z) if want is None else want
                if np.ndim(want) == 1:
                    # entry k is set from the known total downstream; compare the others
                    mask = np.arange(z.shape[0]) != k_k
                    assert_close(np.asarray(got[name])[mask], np.asarray(want)[mask], name)
                else:
                    assert_close(got[name], want, f"{label}: {kind} piece {name}")
        if module.LOW_RANK_COLUMNS:
            got = kernels.z_pieces("hessian", f_k, logf_k, z, *zvalues, k=k_k, fc=fc_k)
            for i, column in enumerate(expected.columns):
                assert_close(got[f"lr{i}"], column, f"{label}: low-rank column {i}")


def test_loss_gradient_hessian_match_the_numpy_module(spec):
    module, kernels = spec
    for label, x, A, values in instances(module):
        ordered = ordered_values(module, values)
        for name in ("probabilities", "loss", "gradient", "hessian"):
            expected = module_call(getattr(module, name), x, A, module, values)
            assert_close(getattr(kernels, name)(x, A, *ordered), expected, f"{label}: {name}")


def test_loader_checks_its_arguments(spec):
    module, kernels = spec
    x, A, values = next(iter(instances(module)))[1:]
    ordered = ordered_values(module, values)
    with pytest.raises(ValueError, match="A must have shape"):
        kernels.gradient(x, A[:, :-1], *ordered)
    with pytest.raises(TypeError, match="missing parameter"):
        kernels.gradient(x, A)
    probability = [p.name for p in module.PARAMETERS if p.rule == "probability"]
    if probability:
        name = probability[0]
        bad = dict(values, **{name: values[name] * 2})
        with pytest.raises(ValueError, match=f"{name} must be a probability vector"):
            kernels.gradient(x, A, *ordered_values(module, bad))
    # a non-finite A is diagnosed from the logits (no scan of A on a valid call)
    broken = A.copy()
    broken[1, 0] = np.nan
    with pytest.raises(ValueError, match="A must be finite; got 1 non-finite entry"):
        kernels.hessian(x, broken, *ordered)
    # as in the numpy module: a spec that keeps exp(z) refuses logits beyond its range
    top = float(np.max(A @ x))
    assert top > 0.0
    far = x * (400.0 / top)  # the largest logit at 400
    if module.USES_EXP:
        with pytest.raises(ValueError, match="x: the logits A @ x reach"):
            kernels.loss(far, A, *ordered)
        with pytest.raises(ValueError, match="x: the logits A @ x reach"):
            module_call(module.loss, far, A, module, values)
    else:
        assert np.isfinite(kernels.loss(far, A, *ordered))


@needs_gcc
def test_loader_refuses_a_non_finite_result_like_the_module():
    """renyi at q = 1 divides by q - 1: both the module and the kernels raise, naming it."""
    module = importlib.import_module("creality_generated.renyi")
    kernels = cuda_loader.load_host("renyi")
    x, A, values = next(iter(instances(module)))[1:]
    singular = dict(values, q=1.0)
    for name in ("loss", "gradient", "hessian"):
        with pytest.raises(ValueError, match="not finite at these arguments"):
            module_call(getattr(module, name), x, A, module, singular)
        with pytest.raises(ValueError, match="not finite at these arguments"):
            getattr(kernels, name)(x, A, *ordered_values(module, singular))


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
    spec = importlib.util.spec_from_file_location(
        "_gen", layout.generated / "__init__.py", submodule_search_locations=[str(layout.generated)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules["_gen"] = package
    spec.loader.exec_module(package)
    module = importlib.import_module("_gen.xspace")
    kernels = cuda_loader.load_host("xspace", folder=layout.generated / "cuda")
    for label, x, A, values in instances(module):
        if label != "moderate":
            x = x / 10  # keep the quartic ridge term moderate
        ordered = ordered_values(module, values)
        for name in ("loss", "gradient", "hessian"):
            expected = module_call(getattr(module, name), x, A, module, values)
            assert_close(getattr(kernels, name)(x, A, *ordered), expected, f"{label}: {name}")
        scalars = ordered_values(module, values, ("scalar",))
        xh = kernels.x_pieces("hessian", x, *scalars)["hessian_diag"]
        keywords = {p.name: values[p.name] for p in module.PARAMETERS if p.shape != "n"}
        expected = module.x_pieces(x, **keywords)
        assert_close(xh, expected.hessian_diag, f"{label}: x-space Hessian diagonal")


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
