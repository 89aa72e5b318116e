"""The generated default module: accuracy, extreme input, errors, array API."""

from __future__ import annotations

import warnings

import creality_generated.creativity_reality as model
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.mp_reference import reference
from tests.reference_model import hessian as dense_hessian

FUNCTIONS = ("loss", "gradient", "hessian")


def instance(n, d, *, seed=0, logit=1.0, w_scale=1.0, gamma=0.5, b_zeros=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d))
    x = rng.standard_normal(d)
    A *= logit / max(np.max(np.abs(A @ x)), 1e-300)
    b = rng.random(n)
    b[:b_zeros] = 0.0
    b /= b.sum()
    w = w_scale * (0.5 + rng.random(n))
    return x, A, b, w, gamma


def one_hot_instance(n, d, *, gap, seed=0, w_scale=1e-9, gamma=0.7):
    """f nearly one-hot: logit 0 leads the others by ``gap`` (f_other ~ exp(-gap))."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(d)
    x /= np.linalg.norm(x)
    A = rng.standard_normal((n, d))
    A -= np.outer(A @ x, x)  # rows orthogonal to x ...
    A += np.outer(-gap - rng.random(n), x)  # ... then logits in [-gap-1, -gap]
    A[0] = rng.standard_normal(d) - np.dot(A[0], x) * 0  # dominant row
    A[0] += (0.0 - A[0] @ x) * x
    b = rng.random(n)
    b /= b.sum()
    w = w_scale * (0.5 + rng.random(n))
    return x, A, b, w, gamma


def rel_err(a, ref):
    return float(np.max(np.abs(np.asarray(a) - ref)) / max(np.max(np.abs(ref)), 1e-300))


def strict_float_checks():
    """Turn every floating-point event except underflow into an error."""
    return np.errstate(over="raise", divide="raise", invalid="raise", under="ignore")


def fitted_one_hot_instance(n, d, *, gap, seed=0, gamma=0.0, w_scale=1e-100):
    """Precise mode at its fit: b one-hot on the dominant logit, f within exp(-gap) of b."""
    x, A, _, w, _ = one_hot_instance(n, d, gap=gap, seed=seed, w_scale=w_scale)
    b = np.zeros(n)
    b[0] = 1.0
    return x, A, b, w, gamma


CASES = {
    "ordinary": lambda: instance(12, 4, seed=1),
    "ordinary-b-zeros": lambda: instance(15, 3, seed=2, b_zeros=5),
    "logits-1e3": lambda: instance(10, 3, seed=3, logit=1e3),
    "one-hot-gap-30": lambda: one_hot_instance(10, 3, gap=30.0, seed=4),
    "one-hot-gap-575": lambda: one_hot_instance(10, 3, gap=575.0, seed=5, w_scale=1e-140),
    "tiny-probabilities": lambda: one_hot_instance(8, 2, gap=710.0, seed=6, w_scale=1.0),
    "fit-one-hot-1d": lambda: (
        np.array([40.0]),
        np.array([[1.0], [0.0]]),
        np.array([1.0, 0.0]),
        np.full(2, 1e-100),
        0.0,
    ),
    "fit-one-hot-gap-20": lambda: fitted_one_hot_instance(5, 3, gap=20.0, seed=7),
    "fit-one-hot-gap-80": lambda: fitted_one_hot_instance(5, 3, gap=80.0, seed=8, gamma=0.3),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_mpmath_reference(case):
    x, A, b, w, gamma = CASES[case]()
    ref_loss, ref_grad, ref_hess = reference(x, A, b, w, gamma)
    with warnings.catch_warnings(), strict_float_checks():
        warnings.simplefilter("error")
        got = {fn: getattr(model, fn)(x, A, b, w, gamma) for fn in FUNCTIONS}
    assert abs(got["loss"] - ref_loss) <= 1e-10 * max(abs(ref_loss), 1e-300)
    assert rel_err(got["gradient"], ref_grad) <= 1e-10
    assert rel_err(got["hessian"], ref_hess) <= 1e-10
    assert np.array_equal(got["hessian"], got["hessian"].T)


def test_one_hot_is_really_extreme():
    x, A, b, w, gamma = CASES["tiny-probabilities"]()
    f = model.probabilities(x, A, b, w, gamma)
    assert np.sort(f)[-2] < 1e-300  # the runner-up probability is below 1e-300
    assert np.all(np.isfinite(model.log_probabilities(x, A, b, w, gamma)))


@st.composite
def small_instances(draw):
    n = draw(st.integers(1, 9))
    d = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    logit = draw(st.sampled_from([1e-3, 1.0, 10.0, 200.0]))
    gamma = draw(st.sampled_from([0.0, 0.3, 2.0]))
    return instance(n, d, seed=seed, logit=logit, gamma=gamma)


@given(small_instances())
def test_hessian_matches_dense_formulas(inst):
    x, A, b, w, gamma = inst
    H = model.hessian(x, A, b, w, gamma)
    ref = dense_hessian(x, A, b, w, gamma)
    assert rel_err(H, ref) <= 1e-9


@given(small_instances(), st.integers(0, 2**32 - 1))
def test_hvp_is_hessian_times_v(inst, seed):
    x, A, b, w, gamma = inst
    v = np.random.default_rng(seed).standard_normal(x.shape[0])
    Hv = model.hessian(x, A, b, w, gamma) @ v
    assert rel_err(model.hvp(x, v, A, b, w, gamma), Hv) <= 1e-9


def test_gradient_matches_central_differences():
    x, A, b, w, gamma = instance(40, 6, seed=9)
    g = model.gradient(x, A, b, w, gamma)
    eps = 1e-6
    fd = np.array(
        [
            (model.loss(x + eps * e, A, b, w, gamma) - model.loss(x - eps * e, A, b, w, gamma))
            / (2 * eps)
            for e in np.eye(6)
        ]
    )
    assert rel_err(g, fd) <= 1e-7


def test_terms_add_up_to_the_total():
    x, A, b, w, gamma = instance(20, 4, seed=11)
    weights = {"reality": 1.0, "creativity": gamma, "regularizer": 1.0}
    total = sum(weights[t] * model.loss(x, A, b, w, gamma, term=t) for t in model.TERMS)
    assert total == pytest.approx(model.loss(x, A, b, w, gamma), rel=1e-13)
    u = np.random.default_rng(0).standard_normal(20)
    Bu = sum(weights[t] * model.z_hessian(x, A, b, w, gamma, term=t).matvec(u) for t in model.TERMS)
    assert rel_err(model.z_hessian(x, A, b, w, gamma).matvec(u), Bu) <= 1e-13


GOOD = instance(6, 3, seed=0)
BAD_ARGUMENTS = [
    ("x", {"x": np.ones(4)}, "shape"),
    ("x", {"x": np.array([1.0, np.nan, 0.0])}, "finite"),
    ("x", {"x": np.zeros(3) + 1j}, "real"),
    ("A", {"A": np.ones(6)}, "2-D"),
    ("A", {"A": np.full((6, 3), np.inf)}, "finite"),
    ("b", {"b": np.full(6, 0.2)}, "probability"),
    ("b", {"b": np.array([1.5, -0.5, 0, 0, 0, 0])}, "probability"),
    ("b", {"b": np.full(5, 0.2)}, "shape"),
    ("w", {"w": np.zeros(6)}, "> 0"),
    ("w", {"w": np.full(7, 1.0)}, "shape"),
    ("gamma", {"gamma": -0.1}, ">= 0"),
    ("gamma", {"gamma": float("inf")}, "finite"),
]


@pytest.mark.parametrize("function", FUNCTIONS)
@pytest.mark.parametrize(("argument", "change", "rule"), BAD_ARGUMENTS)
def test_bad_input_names_argument_and_rule(function, argument, change, rule):
    args = dict(zip(("x", "A", "b", "w", "gamma"), GOOD, strict=True))
    args.update(change)
    with pytest.raises(ValueError, match=rf"^{argument} must .*{rule}|^{argument} must"):
        getattr(model, function)(**args)
    with pytest.raises(ValueError) as info:
        getattr(model, function)(**args)
    assert str(info.value).startswith(f"{argument} must")
    assert rule in str(info.value)


def test_validate_false_skips_checks():
    x, A, b, w, gamma = GOOD
    bad_b = b * 2  # not a probability vector: unchecked, still computes
    assert np.isfinite(model.loss(x, A, bad_b, w, gamma, validate=False))


def test_array_api_strict_path_matches_numpy():
    xps = pytest.importorskip("array_api_strict")
    x, A, b, w, gamma = instance(30, 5, seed=13)
    v = np.random.default_rng(1).standard_normal(5)
    conv = [xps.asarray(a) for a in (x, A, b, w)]
    for fn in FUNCTIONS:
        got = getattr(model, fn)(*conv, gamma)
        ref = getattr(model, fn)(x, A, b, w, gamma)
        assert rel_err(np.asarray(got), ref) <= 1e-13, fn
        if fn != "loss":
            assert type(got).__module__.startswith("array_api_strict")
    got = model.hvp(conv[0], xps.asarray(v), *conv[1:], gamma)
    assert rel_err(np.asarray(got), model.hvp(x, v, A, b, w, gamma)) <= 1e-13


def test_no_sympy_import():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "import creality_generated.creativity_reality as m\n"
        "import creality_generated.temperature, creality_generated.cross_entropy\n"
        "assert 'sympy' not in sys.modules, 'generated code imported sympy'\n"
        "print(m.loss(np.zeros(2), np.eye(2), np.array([.5, .5]), np.ones(2), 0.1))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) == pytest.approx(np.log(0.5) * 0.1)
