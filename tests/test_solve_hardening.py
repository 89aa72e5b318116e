"""The solver never raises on legitimate input, names bad arguments, and says why it stopped."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import creality_generated.creativity_reality as model
import numpy as np
import pytest

from creality_sym.solve import newton, random_instance
from creality_sym.solve.linalg import damped_cholesky, damped_cholesky_solve
from creality_sym.solve.result import STATUSES

STRICT = {"over": "raise", "divide": "raise", "invalid": "raise"}
VARIANTS = [("exact", None), ("sampled", "sketch-pcg"), ("sampled", "paper")]


def strict_newton(m, x0, **kw):
    """``newton`` with floating-point warnings turned into errors: none may occur."""
    with np.errstate(**STRICT), warnings.catch_warnings():
        warnings.simplefilter("error")
        return newton(m, x0, **kw)


def duplicated_column(seed, n=2_000, d=8):
    inst = random_instance(n, d, gamma=0.5, seed=seed)
    A = inst.A.copy()
    A[:, 3] = A[:, 1]
    return inst, {**inst.data(), "A": A}


# -- singular and indefinite systems ------------------------------------------------


@pytest.mark.parametrize(("method", "variant"), VARIANTS)
def test_rank_deficient_A_never_raises(method, variant):
    for seed in range(10):
        inst, data = duplicated_column(seed)
        r = strict_newton(model, inst.x0, method=method, variant=variant, seed=seed, **data)
        assert np.all(np.isfinite(r.x)), (seed, r.reason)
        assert r.status in STATUSES and r.reason
        assert math.isfinite(r.grad_norm) and math.isfinite(r.loss)
        assert r.converged, (seed, r.reason)  # the loss depends on x only through A x
        if variant != "sketch-pcg":  # CG needs no damping: it stays in the range of H
            assert "singular or indefinite" in r.reason
        # the step never moves along the null direction e_1 - e_3 (beyond rounding)
        null = (r.x[1] - r.x[3]) - (inst.x0[1] - inst.x0[3])
        assert abs(null) <= 1e-4 * max(1.0, float(np.linalg.norm(r.x))), null


@pytest.mark.parametrize("method", ["exact", "sampled"])
def test_zero_column_and_rank_one_A(method):
    inst = random_instance(1_000, 6, gamma=0.5, seed=3)
    for A in (
        np.column_stack([inst.A[:, :5], np.zeros(1_000)]),
        np.outer(inst.A[:, 0], np.ones(6)),
    ):
        r = strict_newton(model, inst.x0, method=method, seed=0, **{**inst.data(), "A": A})
        assert np.all(np.isfinite(r.x)) and r.converged, r.reason


def test_damped_cholesky_on_singular_and_broken_matrices():
    rng = np.random.default_rng(0)
    M = rng.standard_normal((50, 6))
    M[:, 2] = M[:, 0]
    H = M.T @ M  # exactly singular
    rhs = M.T @ rng.standard_normal(50)  # in the range of H
    dx, mu = damped_cholesky_solve(H, rhs)
    assert np.all(np.isfinite(dx)) and 0.0 < mu < 1e-6 * np.max(np.diag(H))
    assert np.linalg.norm(H @ dx - rhs) <= 1e-6 * np.linalg.norm(rhs)
    for bad in (np.full((6, 6), np.nan), np.zeros((6, 6)), -np.eye(6) * 1e300):
        dx, mu = damped_cholesky_solve(bad, rhs)
        assert np.all(np.isfinite(dx)) and mu > 0.0
    assert damped_cholesky(np.full((3, 3), np.inf)).L is None


# -- stop statuses ------------------------------------------------------------------


def test_every_stop_has_a_status_and_reason():
    inst = random_instance(2_000, 8, gamma=0.5, seed=4)
    r = strict_newton(model, inst.x0, **inst.data())
    assert r.status == "converged" and r.reason.startswith("converged: ||grad L||")
    r = strict_newton(model, inst.x0, max_iter=1, **inst.data())
    assert r.status == "max-iter" and "max_iter = 1 reached at ||grad L||" in r.reason
    assert not r.converged and r.to_dict()["status"] == "max-iter"


@pytest.mark.parametrize(("method", "variant"), VARIANTS)
def test_tolerance_below_rounding_stagnates_with_reason(method, variant):
    inst = random_instance(2_000, 8, gamma=0.5, seed=5)
    r = strict_newton(
        model, inst.x0, method=method, variant=variant, tol=1e-300, seed=0, **inst.data()
    )
    assert r.status == "stagnated", r.reason
    assert "rounding floor" in r.reason and "use tol >=" in r.reason
    assert r.iterations < 60 and r.grad_norm < 1e-12


def _unbounded_model():
    """The default model minus 1e3 ||x||^4: the loss has no minimum, iterates run off."""

    def add(fn, extra):
        return lambda x, *a, **k: fn(x, *a, **k) + extra(np.asarray(x, dtype=float))

    skip = {"z_pieces", "x_pieces"}
    ns = SimpleNamespace(
        **{k: getattr(model, k) for k in dir(model) if not k.startswith("__") and k not in skip}
    )
    ns.__name__ = "unbounded"
    ns.HAS_X_TERMS = True
    ns.loss = add(model.loss, lambda x: -1e3 * float(x @ x) ** 2)
    ns.gradient = add(model.gradient, lambda x: -4e3 * float(x @ x) * x)
    ns.x_gradient = add(model.x_gradient, lambda x: -4e3 * float(x @ x) * x)
    ns.x_hessian_diag = add(model.x_hessian_diag, lambda x: -12e3 * x * x)
    ns.hessian = add(model.hessian, lambda x: -4e3 * (float(x @ x) * np.eye(x.size)))
    return ns


@pytest.mark.parametrize(("method", "variant"), VARIANTS)
def test_overflow_is_a_status_not_an_exception(method, variant):
    inst = random_instance(500, 4, gamma=0.5, seed=6)
    r = strict_newton(
        _unbounded_model(),
        inst.x0,
        method=method,
        variant=variant,
        seed=0,
        max_iter=500,
        **inst.data(),
    )
    assert r.status in ("overflow", "non-finite"), r.reason
    assert r.reason.startswith(r.status) and "float64" in r.reason or "NaN" in r.reason
    assert np.all(np.isfinite(r.x))


# -- inputs -------------------------------------------------------------------------


def test_complex_and_string_inputs_are_named():
    inst = random_instance(200, 4, gamma=0.5, seed=0)
    data = inst.data()
    cases = [
        ({"x0": inst.x0 + 1e-3j}, "x0"),
        ({"x0": "0 0 0 0"}, "x0"),
        ({"x0": [object()] * 4}, "x0"),
        ({"A": inst.A.astype(complex)}, "A"),
        ({"A": "A.npy"}, "A"),
        ({"b": inst.b.astype(complex)}, "b"),
        ({"w": [str(v) for v in inst.w]}, "w"),
        ({"gamma": "0.5"}, "gamma"),
        ({"gamma": 0.5 + 0j}, "gamma"),
        ({"gamma": np.array([0.5, 0.5])}, "gamma"),
    ]
    for change, name in cases:
        kw = {**data, **change}
        x0 = kw.pop("x0", inst.x0)
        with pytest.raises(ValueError, match=rf"^{name}\b"):
            strict_newton(model, x0, **kw)


def test_option_errors_are_named():
    inst = random_instance(200, 4, gamma=0.5, seed=0)
    data = inst.data()
    for option, value in [
        ("tol", "1e-10"),
        ("tol", 0.0),
        ("tol", math.nan),
        ("max_iter", 2.5),
        ("max_iter", "10"),
        ("max_iter", -1),
        ("seed", "0"),
        ("seed", 1.5),
        ("epsilon", "0.3"),
        ("delta", 1.0),
        ("sample_constant", -1.0),
    ]:
        with pytest.raises(ValueError, match=rf"^{option}\b"):
            strict_newton(model, inst.x0, method="sampled", **{option: value}, **data)
    with pytest.raises(ValueError, match="variant"):
        newton(model, inst.x0, method="exact", variant="paper", **data)
    with pytest.raises(ValueError, match="variant"):
        newton(model, inst.x0, method="sampled", variant="fast", **data)


def test_huge_finite_inputs_are_refused_by_name():
    inst = random_instance(200, 4, gamma=0.5, seed=0)
    data = inst.data()
    cases = [
        ({"A": inst.A * 1e160}, "A"),
        ({"x0": inst.x0 * 1e200}, "x0"),
        ({"w": inst.w * 1e200}, "w"),
        ({"gamma": 1e300}, "gamma"),
    ]
    for change, name in cases:
        kw = {**data, **change}
        x0 = kw.pop("x0", inst.x0)
        with pytest.raises(ValueError, match=rf"^{name}\b"):
            strict_newton(model, x0, **kw)
    # large but safe data still solves
    r = strict_newton(model, inst.x0 * 1e3, **data)
    assert np.all(np.isfinite(r.x)) and r.status in STATUSES


def _model_error(m, x0, data):
    with pytest.raises(ValueError) as caught:
        m.loss(x0, **data, validate=True)
    return str(caught.value)


@pytest.mark.parametrize("method", ["exact", "sampled"])
def test_bad_data_gets_the_models_own_message(method):
    """The solver checks the data with the model's rules (one pass over A for the logits):
    each refusal is the model's own ValueError, word for word."""
    import creality_generated.exp_regression as exp_model
    import creality_generated.renyi as renyi

    inst = random_instance(300, 5, gamma=0.5, seed=3)
    data = inst.data()
    A_inf, A_nan = inst.A.copy(), inst.A.copy()
    A_inf[7, 2], A_nan[11, 0] = np.inf, np.nan
    b_bad = inst.b.copy()
    b_bad[0] += 0.5
    x_nan = inst.x0.copy()
    x_nan[1] = np.nan
    renyi_data = {**data, "q": 1.0}
    exp_data = {"A": inst.A, "b": inst.b, "w": inst.w}
    cases = [
        (model, inst.x0, {**data, "A": A_inf}),
        (model, inst.x0, {**data, "A": A_nan}),
        (model, inst.x0, {**data, "b": b_bad}),
        (model, inst.x0, {**data, "w": -inst.w}),
        (model, x_nan, data),
        (renyi, inst.x0, renyi_data),  # q = 1: a singular value of the loss
        (exp_model, inst.x0 * 0 + 400.0 / np.abs(inst.A).sum(1).min(), exp_data),
    ]
    for m, x0, kw in cases:
        expected = _model_error(m, x0, kw)
        with pytest.raises(ValueError) as caught:
            strict_newton(m, x0, method=method, **kw)
        assert str(caught.value) == expected, (m.__name__, expected)
