"""The sketch-preconditioned Newton-CG variant: its pieces and its cost proxies."""

from __future__ import annotations

import importlib
import math
import threading

import creality_generated.creativity_reality as model
import numpy as np
import pytest
import scipy.linalg

from creality_sym.solve import newton, random_instance
from creality_sym.solve.oracle import HessianOperator, Oracle
from creality_sym.solve.pcg import pcg
from creality_sym.solve.sketch import SketchPreconditioner, cg_steps, pilot_rows, plan_rows
from creality_sym.solve.steps import _hessian_columns, exact_part


def _operator(spec, inst, x):
    m = importlib.import_module(f"creality_generated.{spec}")
    params = {k: v for k, v in inst.data(m.PARAMETERS).items() if k != "A"}
    oracle = Oracle(m, inst.A, params, x)
    z = inst.A @ x
    pieces = oracle.pieces(x, z, 2)
    Y = np.stack(_hessian_columns(pieces)) @ inst.A
    h = oracle.x_hessian_diag(x)
    return m, params, oracle, pieces, Y, HessianOperator(inst.A, pieces, Y[2:].T, h)


@pytest.mark.parametrize("spec", ["creativity_reality", "cosine", "renyi"])
@pytest.mark.parametrize("x_scale", [1.0, 30.0])  # 30: f nearly one-hot
def test_hessian_operator_matches_the_model(spec, x_scale):
    inst = random_instance(3_000, 9, gamma=0.5, seed=1)
    if spec == "renyi":
        inst.extra["q"] = 2.0
    x = x_scale * inst.x0
    m, params, _, _, _, op = _operator(spec, inst, x)
    rng = np.random.default_rng(0)
    H = m.hessian(x, inst.A, **params)
    for _ in range(3):
        v = rng.standard_normal(9)
        Hv, Av = op(v)
        assert np.allclose(Av, inst.A @ v)
        ref = m.hvp(x, v, inst.A, **params)
        assert np.linalg.norm(Hv - ref) <= 1e-10 * np.linalg.norm(H) * np.linalg.norm(v)
    assert op.products == 3


def test_pcg_solves_and_flags_negative_curvature():
    rng = np.random.default_rng(2)
    Q, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    H = Q @ np.diag(np.geomspace(1e-3, 1.0, 12)) @ Q.T
    b = rng.standard_normal(12)
    A = rng.standard_normal((30, 12))
    r = pcg(lambda v: (H @ v, A @ v), lambda r: r, b, 30, target=1e-12, max_iter=200)
    assert r.converged and np.linalg.norm(H @ r.dx - b) <= 1e-10
    assert np.allclose(r.u, A @ r.dx)
    # a good preconditioner (spectral error 0.05) needs few products
    w, V = np.linalg.eigh(H)
    root = V @ np.diag(np.sqrt(w)) @ V.T
    E = rng.standard_normal((12, 12))
    E = 0.05 * (E + E.T) / np.linalg.norm(E + E.T, 2)
    M = np.linalg.inv(root @ (np.eye(12) + E) @ root)
    fast = pcg(lambda v: (H @ v, A @ v), lambda r: M @ r, b, 30, target=1e-10, max_iter=200)
    assert fast.converged and fast.products <= 8 < r.products
    # damping enters as H + mu I
    damped = pcg(lambda v: (H @ v, A @ v), lambda r: r, b, 30, target=1e-12, max_iter=200, mu=0.5)
    assert np.linalg.norm(H @ damped.dx + 0.5 * damped.dx - b) <= 1e-10
    indefinite = H - 0.5 * np.eye(12)
    bad = pcg(lambda v: (indefinite @ v, A @ v), lambda r: r, b, 30, target=1e-12, max_iter=50)
    assert bad.negative_curvature and not bad.converged and bad.curvature < 0


def test_measured_error_tracks_the_true_spectral_error():
    inst = random_instance(40_000, 12, gamma=0.5, seed=3)
    _, _, oracle, pieces, Y, _ = _operator("creativity_reality", inst, inst.x0)
    rest = exact_part(pieces, Y, oracle.x_hessian_diag(inst.x0))
    H = model.hessian(inst.x0, **inst.data())
    w, V = np.linalg.eigh(H)
    root = V @ np.diag(w**-0.5) @ V.T
    pre = SketchPreconditioner(inst.A, np.random.default_rng(0))
    built = pre.build(pieces.delta, rest)
    L = built.factor.L
    true = np.max(np.abs(np.linalg.eigvalsh(root @ (L @ L.T) @ root) - 1.0))
    assert 0.3 * true <= built.error <= 3.0 * true, (built.error, true)
    assert built.rows <= inst.A.shape[0] // 8 + 200
    # the next build reuses the rows (only the Gram product is redone)
    index = pre.index.copy()
    again = pre.build(pieces.delta, rest)
    assert np.array_equal(pre.index, index) and again.note == "sample reused"
    assert again.error == pytest.approx(built.error, rel=1e-2)  # power iteration: random start


def test_the_sample_grams_on_held_workers_equal_the_serial_ones(monkeypatch):
    """With the runtime's workers held, the sure rows' and the two halves' Grams are computed
    on the workers (one part each): the same sample, the same Grams to float32 rounding."""
    import creality_generated._runtime as rt

    inst = random_instance(40_000, 12, gamma=0.5, seed=3)
    delta = np.abs(np.random.default_rng(1).standard_normal(40_000)) + 0.1
    delta[::7] *= -0.5  # mixed signs: each part splits its rows by sign
    monkeypatch.setattr(rt, "_PARALLEL_BYTES", 0)
    if rt._WORKERS.for_array(inst.A) < 2:
        pytest.skip("threadpoolctl cannot limit this BLAS, or one core: the serial path only")
    serial = SketchPreconditioner(inst.A, np.random.default_rng(0), rt)
    serial._draw(delta, 3_000)
    held = SketchPreconditioner(inst.A, np.random.default_rng(0), rt)
    held._draw(delta, 3_000)
    assert np.array_equal(serial.index, held.index)
    used: set[str] = set()
    signed_gram = rt.signed_gram

    def spy(xp, S, negative):
        used.add(threading.current_thread().name)
        return signed_gram(xp, S, negative)

    monkeypatch.setattr("creality_sym.solve.sampling.signed_gram", spy)
    G, difference = serial._grams(delta)
    assert used == {threading.current_thread().name}
    used.clear()
    with rt.hold_workers(inst.A) as holding:
        assert holding
        G_held, difference_held = held._grams(delta)
    assert used and all(name.startswith("creality") for name in used)
    np.testing.assert_allclose(G_held, G, rtol=1e-5, atol=1e-6 * np.abs(G).max())
    np.testing.assert_allclose(difference_held, difference, atol=1e-5 * np.abs(G).max())


def test_on_workers_keeps_the_order_of_the_parts(monkeypatch):
    import creality_generated._runtime as rt

    parts = list(range(7))
    assert rt.on_workers(lambda p: p * p, parts) == [p * p for p in parts]  # not held: serial
    monkeypatch.setattr(rt, "_PARALLEL_BYTES", 0)
    with rt.hold_workers() as holding:
        if not holding:
            pytest.skip("threadpoolctl cannot limit this BLAS, or one core")
        names = rt.on_workers(lambda p: (p, threading.current_thread().name), parts)
    assert [p for p, _ in names] == parts
    assert all(name.startswith("creality") for _, name in names)


def test_coherent_rows_get_leverage_scores():
    rng = np.random.default_rng(4)
    n, d = 40_000, 10
    A = rng.standard_normal((n, d))
    A[:20, -1] *= 300.0  # a direction carried by 20 rows
    A /= np.sqrt(d)
    delta = rng.uniform(0.5, 1.5, n) / n
    pre = SketchPreconditioner(A, np.random.default_rng(0))
    built = pre.build(delta, np.zeros((d, d)))
    assert pre.leverage is not None and "leverage" in built.note
    M = built.factor.L @ built.factor.L.T
    H = A.T @ (A * delta[:, None])
    lam = scipy.linalg.eigh(M, H, eigvals_only=True)
    assert np.max(np.abs(lam - 1.0)) < 0.5
    assert np.max(np.abs(lam - 1.0)) <= 3.0 * built.error
    # sampling by |delta| alone misses the direction the 20 rows carry
    blind = SketchPreconditioner(A, np.random.default_rng(0))
    blind._draw(delta, built.rows)
    G, _ = blind._grams(delta)
    assert np.max(np.abs(scipy.linalg.eigh(G, H, eigvals_only=True) - 1.0)) > 0.5


def test_sample_size_planning():
    assert pilot_rows(10**6, 100) == math.ceil(200 * math.log(1000))
    assert pilot_rows(100, 30) == 100
    assert cg_steps(0.0) == 1.0 and cg_steps(1.0) == math.inf
    assert cg_steps(0.1) < cg_steps(0.3) < cg_steps(0.6)
    low = plan_rows(10**6, 100, 1_000, 0.5, max_rows=125_000)
    assert 1_000 <= low <= 125_000
    # CG products are expensive next to Gram rows here: the plan uses many rows
    assert low > 20_000
    # a pilot that is already accurate needs no more rows than the cheap cap allows
    assert plan_rows(10**4, 100, 500, 0.01, max_rows=1_250) <= 1_250


def test_sketch_pcg_cost_proxies_and_same_minimizer():
    inst = random_instance(60_000, 20, gamma=0.5, seed=5, x0_scale=20**-0.5)
    exact = newton(model, inst.x0, method="exact", **inst.data())
    fast = newton(model, inst.x0, method="sampled", seed=0, **inst.data())
    assert fast.variant == "sketch-pcg" and exact.variant == "exact"
    assert fast.converged and exact.converged
    assert fast.iterations <= exact.iterations + 1
    steps = fast.history[:-1]
    # each step reads at most n/8 sampled rows once, then CG: few products per step
    assert all(h.rows <= 60_000 // 8 + 500 for h in steps)
    assert fast.products <= 6 * len(steps)
    assert len({h.rows for h in steps}) == 1  # one sample for the whole solve
    assert all(h.note == "sample reused" for h in steps[1:])
    assert all(h.error < 0.5 for h in steps)
    assert np.linalg.norm(fast.x - exact.x) <= 1e-7 * max(1.0, np.linalg.norm(exact.x))


def test_paper_variant_stays_available():
    inst = random_instance(20_000, 10, gamma=0.5, seed=6)
    r = newton(model, inst.x0, method="sampled", variant="paper", seed=0, **inst.data())
    assert r.variant == "paper" and r.converged and r.products == 0
    s = math.ceil(10 * math.log(10 / 0.1) / 0.3**2)
    rows = [h.rows for h in r.history[:-1]]
    assert all(0.5 * s <= k <= 2 * s for k in rows), (rows, s)


@pytest.mark.parametrize(("x_scale", "gamma"), [(10.0, 0.0), (30.0, 5.0), (100.0, 0.5)])
def test_far_starts_converge_like_exact_newton(x_scale, gamma):
    # nearly one-hot f and a nonconvex creativity term: the sampled preconditioner may be
    # indefinite where H is not; only CG's negative curvature damps the Newton system
    inst = random_instance(20_000, 20, gamma=gamma, seed=1, x0_scale=x_scale)
    exact = newton(model, inst.x0, method="exact", max_iter=200, **inst.data())
    fast = newton(model, inst.x0, method="sampled", seed=0, max_iter=200, **inst.data())
    assert exact.converged and fast.converged, fast.reason
    assert fast.iterations <= max(exact.iterations + 2, 1.5 * exact.iterations)
    assert fast.products <= 6 * fast.iterations


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("share", [0.0, 0.4, 1.0])
def test_scaled_gram_is_the_signed_weighted_gram_in_chunks(monkeypatch, dtype, share):
    from creality_sym.solve import sampling

    rng = np.random.default_rng(4)
    rows = rng.standard_normal((1_000, 7)).astype(dtype)
    scale = rng.random(1_000) + 0.1
    negative = rng.random(1_000) < share
    monkeypatch.setattr(sampling, "GRAM_CHUNK_BYTES", 150 * 7 * rows.itemsize)  # 7 chunks
    got = sampling.scaled_gram(rows, scale, negative)
    assert got.dtype == np.float64 and got.shape == (7, 7)
    R = rows.astype(float)
    expected = R.T @ (R * (np.where(negative, -1.0, 1.0) * scale**2)[:, None])
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert np.max(np.abs(got - expected)) <= tol * np.max(np.abs(R.T @ (R * (scale**2)[:, None])))
    assert np.array_equal(sampling.scaled_gram(rows[:0], scale[:0], negative[:0]), np.zeros((7, 7)))
