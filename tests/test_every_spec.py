"""Every shipped spec's generated module against an independent implementation of its formula.

For each module of ``creality_generated``: ``loss`` equals a direct numpy
formula written here from the spec's docstring (not from the derivation),
``gradient`` matches central differences of it, ``hessian`` matches central
differences of ``gradient`` and is symmetric, ``hvp`` is ``hessian @ v``, on
moderate and nearly one-hot instances; and ``hessian`` runs at n = 200000
without an n x n allocation.
"""

from __future__ import annotations

import importlib
import tracemalloc
import warnings

import numpy as np
import pytest
from creality_generated import SPECS


def _softmax(t):
    s = t - t.max()
    logf = s - np.log(np.exp(s).sum())
    return np.exp(logf), logf


def _entropy_part(f, logf):
    return float(np.sum(f * logf))


def reference_loss(name, x, A, p):
    """The loss of spec ``name`` from its formula; ``p`` maps parameter names to values."""
    z = A @ x
    f, logf = _softmax(z / p.get("tau", 1.0))
    b = p.get("b")
    ridge = 0.5 * float(np.sum(p["w"] ** 2 * z**2)) if "w" in p else 0.0
    if name in ("creativity_reality", "temperature"):
        return 0.5 * float(np.sum((f - b) ** 2)) + p["gamma"] * _entropy_part(f, logf) + ridge
    if name == "cross_entropy":
        return -float(np.sum(b * logf)) + p["gamma"] * _entropy_part(f, logf) + ridge
    if name == "renyi":
        q = p["q"]
        return (
            0.5 * float(np.sum((f - b) ** 2)) + p["gamma"] * np.log(np.sum(f**q)) / (q - 1) + ridge
        )
    if name == "tsallis":
        q = p["q"]
        return 0.5 * float(np.sum((f - b) ** 2)) + p["gamma"] * (np.sum(f**q) - 1) / (q - 1) + ridge
    if name == "exp_regression":
        return 0.5 * float(np.sum((np.exp(z) - b) ** 2)) + ridge
    if name == "rescaled":
        u = np.exp(z)
        return 0.5 * float(np.sum((u - u.sum() * b) ** 2)) + ridge
    if name == "cosine":
        cos = float(f @ b) / (np.linalg.norm(f) * np.linalg.norm(b))
        return -cos + p["gamma"] * _entropy_part(f, logf) + ridge
    if name == "ridge_prior":
        prior = 0.5 * float(np.sum(p["lam"] * (x - p["x0"]) ** 2))
        return 0.5 * float(np.sum((f - b) ** 2)) + p["gamma"] * _entropy_part(f, logf) + prior
    raise KeyError(name)


def random_values(module, n, d, rng):
    values = {}
    for p in module.PARAMETERS:
        size = n if p.shape == "n" else d
        if p.kind == "scalar":
            values[p.name] = (
                float(rng.uniform(1.3, 2.6)) if p.name == "q" else float(rng.uniform(0.2, 1.5))
            )
        elif p.rule == "probability":
            values[p.name] = rng.dirichlet(np.ones(size))
        elif p.rule in ("positive", "nonnegative"):
            values[p.name] = rng.uniform(0.5, 1.5, size)
        else:
            values[p.name] = rng.normal(size=size)
    return values


def call(fn, module, values, *head, **extra):
    positional = [values[p.name] for p in module.PARAMETERS if p.default is None]
    keywords = {p.name: values[p.name] for p in module.PARAMETERS if p.default is not None}
    return fn(*head, *positional, **keywords, **extra)


def instances(module, seed):
    rng = np.random.default_rng(seed)
    n, d = 12, 4
    A = rng.normal(size=(n, d))
    x = rng.normal(size=d)
    scales = (0.3, 1.0) if module.USES_EXP else (1.0, 25.0)  # 25: nearly one-hot
    for scale in scales:
        yield scale, x * scale, A, random_values(module, n, d, rng)


@pytest.fixture(params=SPECS)
def module(request):
    return importlib.import_module(f"creality_generated.{request.param}")


def test_loss_equals_the_formula(module):
    for _, x, A, values in instances(module, 1):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = float(call(module.loss, module, values, x, A))
        want = reference_loss(module.SPEC_NAME, x, A, values)
        assert got == pytest.approx(want, rel=1e-10, abs=1e-12)


def test_gradient_hessian_hvp_agree_with_differences(module):
    h = 1e-6
    for scale, x, A, values in instances(module, 2):
        d = x.shape[0]
        g = call(module.gradient, module, values, x, A)
        H = call(module.hessian, module, values, x, A)
        fd = np.array(
            [
                (
                    reference_loss(module.SPEC_NAME, x + h * e, A, values)
                    - reference_loss(module.SPEC_NAME, x - h * e, A, values)
                )
                / (2 * h)
                for e in np.eye(d)
            ]
        )
        fdH = np.array(
            [
                call(module.gradient, module, values, x + h * e, A)
                - call(module.gradient, module, values, x - h * e, A)
                for e in np.eye(d)
            ]
        ).T / (2 * h)
        tol_g = 1e-6 * max(1.0, np.abs(g).max())
        tol_h = 1e-6 * max(1.0, np.abs(H).max())
        assert np.abs(g - fd).max() <= tol_g, f"gradient at scale {scale}"
        assert np.abs(H - fdH).max() <= tol_h, f"hessian at scale {scale}"
        assert np.array_equal(H, H.T)
        v = np.random.default_rng(3).normal(size=d)
        hv = call(module.hvp, module, values, x, v, A)
        assert np.abs(hv - H @ v).max() <= 1e-12 * max(1.0, np.abs(H).max() * np.abs(v).sum())


def test_terms_add_up_to_the_total(module):
    _, x, A, values = next(instances(module, 4))
    weights = {t: float(eval(w, {}, dict(values))) for t, w in module.WEIGHTS.items()}
    for fn in (module.loss, module.gradient, module.hessian):
        total = call(fn, module, values, x, A)
        parts = sum(weights[t] * call(fn, module, values, x, A, term=t) for t in module.TERMS)
        assert np.allclose(parts, total, rtol=1e-12, atol=1e-12)


def test_hessian_at_n_200000_allocates_no_n_by_n_matrix(module):
    rng = np.random.default_rng(5)
    n, d = 200_000, 5
    A = rng.normal(size=(n, d)) * 0.3
    x = rng.normal(size=d)
    values = random_values(module, n, d, rng)
    tracemalloc.start()
    try:
        H = call(module.hessian, module, values, x, A)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert H.shape == (d, d) and np.all(np.isfinite(H))
    assert peak < 12 * A.nbytes, f"peak {peak / A.nbytes:.1f} copies of A"


@pytest.mark.parametrize("spec", ["renyi", "tsallis"])
def test_every_call_at_a_singular_scalar_is_a_value_error(spec):
    """q = 1 divides by q - 1: each public call says so, without a warning or a traceback."""
    module = importlib.import_module(f"creality_generated.{spec}")
    _, x, A, values = next(instances(module, 3))
    values = dict(values, q=1.0)
    v = np.ones(x.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name, head in (
            ("loss", (x, A)),
            ("gradient", (x, A)),
            ("hessian", (x, A)),
            ("hvp", (x, v, A)),
            ("z_gradient", (x, A)),
        ):
            with pytest.raises(ValueError, match="not finite at these arguments"):
                call(getattr(module, name), module, values, *head)


def test_a_singular_scalar_is_a_value_error_with_other_array_libraries():
    """Other namespaces get Python-float scalars: 1 / (q - 1) is caught, not a traceback."""
    xps = pytest.importorskip("array_api_strict")
    module = importlib.import_module("creality_generated.renyi")
    _, x, A, values = next(instances(module, 3))
    arrays = {k: xps.asarray(v) if isinstance(v, np.ndarray) else v for k, v in values.items()}
    arrays["q"] = 1.0
    for name in ("loss", "gradient", "hessian"):
        with (
            warnings.catch_warnings(),
            pytest.raises(ValueError, match="not finite at these arguments"),
        ):
            warnings.simplefilter("error")  # the refusal comes without a floating-point warning
            call(getattr(module, name), module, arrays, xps.asarray(x), xps.asarray(A))


def test_the_solver_hessian_from_kept_pieces_is_the_model_hessian(module, monkeypatch):
    """Exact Newton builds the Hessian from the pieces its line search kept (no second
    ``A @ x`` or softmax): the same matrix as ``model.hessian``, bit for bit."""
    from creality_sym.solve.oracle import Oracle

    for _, x, A, values in instances(module, 4):
        want = call(module.hessian, module, values, x, A)
        oracle = Oracle(module, A, values, x)
        assert oracle.via_pieces
        with monkeypatch.context() as patch:
            patch.setattr(module, "hessian", None)  # the oracle must not call it
            got = oracle.hessian(x, oracle.z0)
        assert np.array_equal(got, want)
