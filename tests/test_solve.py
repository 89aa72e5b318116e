"""Newton solver (exact and sampled Hessian), its CLI and its benchmark."""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import creality_generated.creativity_reality as model
import numpy as np
import pytest

from creality_sym.cli import main as cli_main
from creality_sym.solve import newton, random_instance, sampling
from creality_sym.solve.bench import format_benchmark, solver_benchmark
from creality_sym.solve.newton import damped_cholesky_solve
from creality_sym.solve.oracle import Oracle

sys.path.insert(0, str(Path(__file__).parent))
import reference_model  # noqa: E402

STRICT = {"over": "raise", "divide": "raise", "invalid": "raise"}


def solve(inst, method, **kw):
    with np.errstate(**STRICT), warnings.catch_warnings():
        warnings.simplefilter("error")
        return newton(model, inst.x0, method=method, **kw, **inst.data())


def assert_finite_history(result):
    for row in result.history:
        assert math.isfinite(row.loss) and math.isfinite(row.grad_norm)
    assert np.all(np.isfinite(result.x))


# -- exact and sampled modes ----------------------------------------------------


def test_exact_small_agrees_with_dense_reference():
    inst = random_instance(300, 6, gamma=0.5, seed=1)
    r = solve(inst, "exact")
    assert r.converged and r.grad_norm <= 1e-10 and r.iterations <= 30
    # the hand-written dense model (independent of the generator) sees a stationary point
    g_ref = reference_model.gradient(r.x, inst.A, inst.b, inst.w, inst.gamma)
    assert np.linalg.norm(g_ref) <= 1e-9
    assert r.loss == pytest.approx(reference_model.loss(r.x, inst.A, inst.b, inst.w, inst.gamma))


def test_both_modes_reach_the_same_minimizer():
    inst = random_instance(20_000, 30, gamma=0.5, seed=2)
    exact = solve(inst, "exact", tol=1e-10)
    sampled = solve(inst, "sampled", tol=1e-10, seed=0)
    for r in (exact, sampled):
        assert r.converged, r.reason
        assert np.linalg.norm(model.gradient(r.x, **inst.data())) <= 1e-10
        assert_finite_history(r)
    assert exact.iterations <= 30 and sampled.iterations <= 40
    assert np.linalg.norm(exact.x - sampled.x) <= 1e-6 * max(1.0, np.linalg.norm(exact.x))
    assert exact.loss == pytest.approx(sampled.loss, abs=1e-12)
    # the sampled Hessian really used fewer rows than n
    assert max(row.rows for row in sampled.history) < 20_000


def test_sampled_is_deterministic_for_a_seed():
    inst = random_instance(5_000, 10, gamma=0.5, seed=3)
    a = solve(inst, "sampled", seed=7)
    b = solve(inst, "sampled", seed=7)
    assert np.array_equal(a.x, b.x)
    assert [r.rows for r in a.history] == [r.rows for r in b.history]
    assert [r.loss for r in a.history] == [r.loss for r in b.history]


def test_history_records_each_iteration():
    inst = random_instance(2_000, 8, gamma=0.5, seed=4)
    r = solve(inst, "exact")
    assert len(r.history) == r.iterations + 1
    assert [row.iteration for row in r.history] == list(range(r.iterations + 1))
    losses = [row.loss for row in r.history]
    assert all(b <= a + 1e-12 for a, b in zip(losses, losses[1:], strict=False))
    assert all(row.step > 0 and row.seconds > 0 for row in r.history[:-1])
    table = r.history_table()
    assert table["grad_norm"].shape == (r.iterations + 1,)
    assert json.loads(json.dumps(r.to_dict()))["iterations"] == r.iterations
    for row in r.history:  # the parts of an iteration's time fit inside it
        parts = row.gradient_seconds + row.step_seconds + row.search_seconds
        assert row.gradient_seconds > 0 and parts <= row.seconds * (1 + 1e-9)
    assert all(row.step_seconds > 0 and row.search_seconds > 0 for row in r.history[:-1])
    phases = r.phases
    assert phases["start"] > 0 and phases["step"] == sum(row.step_seconds for row in r.history)


def test_max_iter_stops_with_reason():
    inst = random_instance(2_000, 8, gamma=0.5, seed=4)
    r = solve(inst, "exact", max_iter=1)
    assert not r.converged and r.iterations == 1 and "max_iter" in r.reason


@pytest.mark.parametrize("method", ["exact", "sampled"])
def test_indefinite_hessian_is_damped_never_nan(method):
    # small w, large gamma, a far start: the creativity term makes H(x0) indefinite
    inst = random_instance(3_000, 12, gamma=5.0, seed=3, w_scale=1e-3, x0_scale=3.0)
    H0 = model.hessian(inst.x0, **inst.data())
    assert np.linalg.eigvalsh(H0)[0] < 0
    r = solve(inst, method, seed=0, max_iter=200)
    assert_finite_history(r)
    damped = [row for row in r.history if row.damping > 0]
    assert damped and "not PD" in damped[0].note
    assert "not positive definite" in r.reason
    assert r.converged and r.grad_norm <= 1e-10


@pytest.mark.parametrize(("spec", "extra"), [("cross_entropy", {}), ("temperature", {"tau": 0.7})])
def test_variant_modules_unchanged(spec, extra):
    import importlib

    variant = importlib.import_module(f"creality_generated.{spec}")
    inst = random_instance(4_000, 12, gamma=0.5, seed=5)
    data = {**inst.data(tuple(variant.PARAMETERS)), **extra}
    for method in ("exact", "sampled"):
        r = newton(variant, inst.x0, method=method, seed=1, **data)
        assert r.converged, (spec, method, r.reason)
        assert np.linalg.norm(variant.gradient(r.x, **data)) <= 1e-10


def _with_ridge_on_x(lam):
    """The default model plus lam/2 ||x||^2, seen only through the public (x, A) functions.

    The wrapper has no ``z_pieces``/``x_pieces``: the oracle falls back to direct calls.
    """

    def add(fn, extra):
        return lambda x, *a, **k: fn(x, *a, **k) + extra(x)

    skip = {"z_pieces", "x_pieces"}
    ns = SimpleNamespace(
        **{k: getattr(model, k) for k in dir(model) if not k.startswith("__") and k not in skip}
    )
    ns.__name__ = "ridge_model"
    ns.HAS_X_TERMS = True
    ns.loss = add(model.loss, lambda x: 0.5 * lam * float(x @ x))
    ns.gradient = add(model.gradient, lambda x: lam * x)
    ns.x_gradient = add(model.x_gradient, lambda x: lam * x)
    ns.x_hessian_diag = add(model.x_hessian_diag, lambda x: lam * np.ones_like(x))
    ns.hessian = add(model.hessian, lambda x: lam * np.eye(x.shape[0]))
    return ns


@pytest.mark.parametrize("method", ["exact", "sampled"])
def test_x_space_terms_through_direct_calls(method):
    ridge = _with_ridge_on_x(1e-3)
    inst = random_instance(4_000, 10, gamma=0.5, seed=6)
    params = {"b": inst.b, "w": inst.w, "gamma": inst.gamma}
    oracle = Oracle(ridge, inst.A, params, inst.x0)
    assert oracle.has_x_terms and not oracle.via_pieces
    assert not Oracle(model, inst.A, params, inst.x0).has_x_terms
    r = newton(ridge, inst.x0, method=method, seed=0, **inst.data())
    assert r.converged, r.reason
    assert np.linalg.norm(ridge.gradient(r.x, **inst.data())) <= 1e-10
    plain = newton(model, inst.x0, method=method, seed=0, **inst.data())
    assert np.linalg.norm(r.x - plain.x) > 1e-6  # the ridge moved the minimizer


@pytest.mark.parametrize("variant", ["exact", "sketch-pcg", "paper"])
def test_x_space_terms_of_a_spec(variant):
    import creality_generated.ridge_prior as prior

    inst = random_instance(4_000, 10, gamma=0.5, seed=6)
    rng = np.random.default_rng(0)
    data = {
        "A": inst.A,
        "b": inst.b,
        "lam": rng.uniform(1e-3, 1e-2, 10),
        "x0": rng.standard_normal(10),  # the prior's mean, not the start
        "gamma": 0.5,
    }
    oracle = Oracle(prior, inst.A, {k: v for k, v in data.items() if k != "A"}, inst.x0)
    assert oracle.has_x_terms and oracle.via_pieces
    method = "exact" if variant == "exact" else "sampled"
    r = newton(prior, inst.x0, method=method, variant=variant, seed=0, **data)
    assert r.converged, r.reason
    assert np.linalg.norm(prior.gradient(r.x, **data)) <= 1e-10


def test_direct_calls_when_the_pieces_disagree(monkeypatch):
    inst = random_instance(2_000, 8, gamma=0.5, seed=7)
    fast = solve(inst, "sampled", seed=0)
    monkeypatch.setattr(Oracle, "_pieces_agree", lambda self, x0, z0: False)
    slow = solve(inst, "sampled", seed=0)
    assert slow.converged and np.linalg.norm(slow.x - fast.x) <= 1e-8


@pytest.mark.parametrize("method", ["exact", "sampled"])
def test_kept_pieces_change_nothing_but_the_softmax_count(monkeypatch, method):
    """The line search's pieces at the accepted point serve the next gradient: same iterates
    bit for bit as recomputing them, with fewer z-space evaluations."""
    inst = random_instance(3_000, 12, gamma=0.5, seed=5)
    calls = {"n": 0}
    evaluate = Oracle._evaluate

    def counted(self, x, z, order):
        calls["n"] += 1
        return evaluate(self, x, z, order)

    monkeypatch.setattr(Oracle, "_evaluate", counted)
    kept = solve(inst, method, seed=0)
    kept_calls, calls["n"] = calls["n"], 0
    monkeypatch.setattr(Oracle, "pieces", lambda self, x, z, order: counted(self, x, z, order))
    fresh = solve(inst, method, seed=0)
    assert kept.converged and fresh.converged
    assert np.array_equal(kept.x, fresh.x)
    assert [r.loss for r in kept.history] == [r.loss for r in fresh.history]
    assert kept_calls < calls["n"]


def test_oracle_keeps_only_the_pieces_of_the_same_point():
    inst = random_instance(500, 5, gamma=0.5, seed=6)
    A, params = inst.A, {k: v for k, v in inst.data().items() if k != "A"}
    oracle = Oracle(model, A, params, inst.x0)
    z = oracle.z0
    first = oracle.pieces(inst.x0, z, 2)
    assert oracle.pieces(inst.x0.copy(), z, 1) is first  # same values of x, same z
    assert oracle.pieces(inst.x0, z.copy(), 1) is not first  # another z array: recomputed
    moved = inst.x0 + 1e-3
    assert oracle.pieces(moved, A @ moved, 0) is not first
    low = oracle.pieces(inst.x0, z, 0)
    assert oracle.pieces(inst.x0, z, 2) is not low  # a higher order is computed anew


# -- argument checking --------------------------------------------------------------


def test_invalid_arguments_are_named():
    inst = random_instance(100, 4, gamma=0.5, seed=0)
    data = inst.data()
    with pytest.raises(ValueError, match="method"):
        newton(model, inst.x0, method="fast", **data)
    with pytest.raises(ValueError, match="unknown data argument"):
        newton(model, inst.x0, **data, tau=1.0)
    with pytest.raises(ValueError, match="'b'"):
        newton(model, inst.x0, A=inst.A, w=inst.w, gamma=0.5)
    with pytest.raises(ValueError, match="x0"):
        newton(model, np.zeros(5), **data)
    with pytest.raises(ValueError, match="epsilon"):
        newton(model, inst.x0, method="sampled", epsilon=1.5, **data)
    with pytest.raises(ValueError, match="b must be a probability vector"):
        newton(model, inst.x0, **{**data, "b": 2 * inst.b})
    with pytest.raises(ValueError, match="w must be"):
        newton(model, inst.x0, **{**data, "w": -inst.w})


# -- building blocks ---------------------------------------------------------------


def test_damped_cholesky_solve():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    H = Q @ np.diag([-1.0, 0.5, 1, 2, 3, 4]) @ Q.T
    rhs = rng.standard_normal(6)
    dx, mu = damped_cholesky_solve(H, rhs)
    assert 1.0 < mu < 100.0
    assert np.allclose((H + mu * np.eye(6)) @ dx, rhs)
    dx0, mu0 = damped_cholesky_solve(H @ H, rhs)
    assert mu0 == 0.0 and np.allclose(H @ H @ dx0, rhs)


def test_sample_size_formula_and_cap():
    s = sampling.sample_size(10**6, 100, epsilon=0.3, delta=0.1, constant=1.0)
    assert s == math.ceil(100 * math.log(1000) / 0.09)
    assert sampling.sample_size(500, 100, epsilon=0.3, delta=0.1, constant=1.0) == 500


def test_leverage_estimates_within_constant_factor():
    rng = np.random.default_rng(1)
    n, d = 20_000, 10
    A = rng.standard_normal((n, d)) * np.exp(rng.standard_normal((n, 1)))  # coherent rows
    weights = rng.uniform(0.1, 2.0, n)
    Q, _ = np.linalg.qr(A * np.sqrt(weights)[:, None])
    exact = np.sum(Q * Q, axis=1)
    _, SA = sampling.products_and_sketch(A, np.zeros((n, 1)), np.sqrt(weights), 4 * d, rng)
    est = sampling.leverage_estimates(A.astype(np.float32), weights, SA, 32, rng)
    ratio = est / exact
    assert np.median(ratio) == pytest.approx(1.0, rel=0.5)
    assert np.quantile(ratio, 0.05) > 0.2 and np.quantile(ratio, 0.95) < 5.0


def test_leverage_estimates_on_held_workers_equal_the_serial_ones(monkeypatch):
    import creality_generated._runtime as rt
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(3)
    A = rng.standard_normal((30_000, 40))
    SA = rng.standard_normal((160, 40))
    monkeypatch.setattr(sampling, "LEVERAGE_BLOCK_BYTES", 8 * 40 * 500)  # 60 blocks, 8 runs
    with threadpool_limits(1, user_api="blas"):
        serial = sampling.leverage_estimates(A, np.ones(30_000), SA, 9, np.random.default_rng(0))
    monkeypatch.setattr(rt, "_PARALLEL_BYTES", 0)
    with rt.hold_workers(A) as holding:
        if not holding:
            pytest.skip("threadpoolctl cannot limit this BLAS, or one core")
        held = sampling.leverage_estimates(
            A, np.ones(30_000), SA, 9, np.random.default_rng(0), rt.on_workers
        )
    assert np.array_equal(held, serial)
    assert np.all(held > 0)


def test_sampled_gram_is_unbiased_with_negative_weights():
    rng = np.random.default_rng(2)
    n, d = 400, 5
    A = rng.standard_normal((n, d))
    delta = rng.uniform(-0.3, 1.0, n)
    exact = A.T @ (A * delta[:, None])
    scores = np.abs(delta) * np.sum(A * A, axis=1)
    draws = [sampling.sampled_gram(A, delta, scores, 60, rng).matrix for _ in range(3000)]
    mean = np.mean(draws, axis=0)
    assert np.linalg.norm(mean - exact) <= 0.03 * np.linalg.norm(exact)


def test_fused_products_and_sketch():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((500, 7))
    cols = rng.standard_normal((500, 3))
    Y, SA = sampling.products_and_sketch(A, cols, np.ones(500), 20, rng)
    assert np.allclose(Y, A.T @ cols)
    assert SA.shape == (20, 7)
    # a CountSketch preserves the Gram matrix in expectation; here just its trace roughly
    assert np.trace(SA.T @ SA) == pytest.approx(np.trace(A.T @ A), rel=0.3)


# -- command line and benchmark -----------------------------------------------------


def test_cli_solve_random_and_saved(tmp_path, capsys):
    out = tmp_path / "run.npz"
    assert cli_main(["solve", "--n", "3000", "--d", "10", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "exact Newton" in text and "sampled Newton" in text and "||x_exact - x_sampled||" in text
    saved = np.load(out)
    assert {"exact_x", "sampled_x", "sampled_grad_norm", "exact_seconds"} <= set(saved.files)
    payload = json.loads(out.with_suffix(".json").read_text())
    assert payload["results"]["exact"]["converged"] is True
    assert payload["instance"]["n"] == 3000

    inst = random_instance(1_000, 5, gamma=0.3, seed=9)
    data = tmp_path / "inst.npz"
    inst.save(data)
    args = ["solve", "--data", str(data), "--method", "exact", "--quiet"]
    assert cli_main(args) == 0
    assert "n = 1000, d = 5" in capsys.readouterr().out
    args = ["solve", "--data", str(data), "--spec", "temperature", "--param", "tau=0.5"]
    assert cli_main(args + ["--method", "sampled", "--quiet"]) == 0


def test_cli_solve_bad_input(capsys):
    assert cli_main(["solve", "--n", "100", "--d", "3", "--param", "tau=2"]) == 2
    assert "tau" in capsys.readouterr().err
    assert cli_main(["solve", "--spec", "no_such_spec"]) == 2


def test_solver_benchmark_rows_and_table(monkeypatch):
    import creality_sym.solve.jax_derivatives as jd

    monkeypatch.setattr(jd.importlib.util, "find_spec", lambda name: None)  # as without JAX
    rows = solver_benchmark([(2_000, 10)], seed=0, time_limit=20.0, repeats=2)
    assert [r["solver"] for r in rows] == [
        "newton-exact",
        "newton-sampled",
        "newton-paper",
        "trust-exact",
        "Newton-CG",
        "L-BFGS-B",
        "trust-exact[jax]",
        "Newton-CG[jax]",
        "L-BFGS-B[jax]",
    ]
    by = {r["solver"]: r for r in rows}
    assert by["newton-exact"]["met_tol"] and by["newton-sampled"]["met_tol"]
    assert by["newton-sampled"]["variant"] == "sketch-pcg"
    assert by["newton-paper"]["variant"] == "paper"
    assert by["newton-sampled"]["products"] > 0 and by["newton-sampled"]["rows"] < 2_000
    assert len(by["newton-exact"]["seconds_all"]) == 2
    assert by["trust-exact"]["gap"] < 1e-5
    assert by["trust-exact[jax]"]["message"].startswith("skipped: jax not installed")
    assert math.isnan(by["trust-exact[jax]"]["seconds"])
    table = format_benchmark(rows)
    assert "newton-sampled" in table and "sketch-pcg" in table and "L-BFGS-B" in table
    assert "skipped: jax not installed" in table
    for name in ("newton-exact", "newton-sampled", "newton-paper"):  # where the time went
        phases = by[name]["phases"]
        assert set(phases) == {"start", "gradient", "step", "line search"}
        assert all(v >= 0.0 for v in phases.values())
        assert sum(phases.values()) <= max(by[name]["seconds_all"]) * (1 + 1e-9)
    assert by["trust-exact"]["phases"] == {}
    assert "where the Newton rows' time went" in table


def test_solver_benchmark_with_jax_derivatives():
    pytest.importorskip("jax")
    rows = solver_benchmark(
        [(1_000, 6)], seed=0, solvers=("newton-exact", "trust-exact[jax]", "Newton-CG[jax]")
    )
    by = {r["solver"]: r for r in rows}
    assert by["trust-exact[jax]"]["met_tol"] and by["trust-exact[jax]"]["gap"] < 1e-6
    assert by["trust-exact[jax]"]["variant"] == "scipy + JAX jit"
    assert by["trust-exact[jax]"]["compile_seconds"] > 0
    assert "x trust" in format_benchmark(rows)


# -- the size the sampled mode is for ------------------------------------------------


@pytest.mark.slow
def test_n200000_both_modes_and_sampled_iteration_cost():
    inst = random_instance(200_000, 100, gamma=0.5, seed=0)
    exact = solve(inst, "exact", tol=1e-10)
    sampled = solve(inst, "sampled", seed=0, tol=1e-10)
    paper = solve(inst, "sampled", variant="paper", seed=0, tol=1e-10)
    for r in (exact, sampled, paper):
        assert r.converged, r.reason
        assert np.linalg.norm(model.gradient(r.x, **inst.data())) <= 1e-9
        assert_finite_history(r)
    assert exact.iterations <= 30 and paper.iterations <= 40
    assert sampled.iterations <= exact.iterations + 1
    # same minimizer, to the accuracy the gradient tolerance allows: ||g|| / lambda_min(H)
    lam_min = np.linalg.eigvalsh(model.hessian(exact.x, **inst.data()))[0]
    assert lam_min > 0
    for r in (sampled, paper):
        gap = np.linalg.norm(exact.x - r.x)
        assert gap <= (exact.grad_norm + r.grad_norm) / lam_min, (gap, lam_min)
        assert exact.loss == pytest.approx(r.loss, abs=1e-12)
    # cost of one iteration: the exact Hessian is a Gram product over all n rows, the
    # sampled ones over the sampled rows only (timings belong to `creality bench --solver`
    # and `creality solve --method both`, not to a unit test)
    rows = [h.rows for h in paper.history if h.rows]
    assert rows and max(rows) <= 0.1 * inst.A.shape[0], rows
    rows = [h.rows for h in sampled.history[:-1]]
    assert max(rows) <= 0.13 * inst.A.shape[0], rows
    assert sampled.products <= 8 * sampled.iterations
