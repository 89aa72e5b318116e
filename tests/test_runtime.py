"""Unit tests of the static runtime the generated modules share (creality_sym.codegen.static)."""

from __future__ import annotations

import numpy as np
import pytest

from creality_sym.codegen.static import _runtime as rt


def _pieces(rng, n, *, columns=0, scale=1.0):
    t = rng.normal(size=n) * scale
    sm = rt.softmax(np, t)
    delta = rng.normal(size=n)
    p = rng.normal(size=n)
    cols = tuple(rng.normal(size=n) for _ in range(columns))
    core = rng.normal(size=(columns, columns))
    core = core + core.T
    B = rt.ZPieces(
        sm,
        delta=delta,
        p=p,
        c=0.7,
        columns=cols,
        totals=tuple(float(c.sum()) for c in cols),
        core=tuple(tuple(row) for row in core),
    )
    dense = np.diag(delta) - np.outer(p, sm.f) - np.outer(sm.f, p) + 0.7 * np.outer(sm.f, sm.f)
    ones = dense.sum(axis=1)  # row sums of the base part (the low-rank part is separate)
    for i, ci in enumerate(cols):
        for j, cj in enumerate(cols):
            dense += core[i, j] * np.outer(ci, cj)
    B.ones, B.ones_total = ones, float(ones.sum())
    return B, dense


@pytest.mark.parametrize("columns", [0, 3])
def test_hessian_and_hvp_equal_the_dense_products(columns):
    rng = np.random.default_rng(columns)
    n, d = 30, 6
    B, dense = _pieces(rng, n, columns=columns)
    A = rng.normal(size=(n, d))
    H = rt.hessian_from(np, A, B)
    assert np.allclose(H, A.T @ dense @ A, rtol=1e-12, atol=1e-12)
    assert np.array_equal(H, H.T)
    v = rng.normal(size=d)
    assert np.allclose(rt.hvp_from(np, A, v, B), A.T @ dense @ A @ v, rtol=1e-12, atol=1e-12)
    Z = rt.ZHessian(B)
    assert np.allclose(Z.dense(), dense)
    u = rng.normal(size=n)
    assert np.allclose(Z.matvec(u), dense @ u)


@pytest.mark.parametrize("chunk_rows", [24, 4096])
@pytest.mark.parametrize("parallel", [False, True])
def test_blocked_gram_equals_the_direct_product(monkeypatch, parallel, chunk_rows):
    """The signed Gram of the shifted rows and, from the same syrks, ``rows @ (A - 1 a_k^T)``;
    rows whose thin column cannot be carried (delta = 0, a huge ratio) are added directly."""
    rng = np.random.default_rng(3)
    n, d = 1000, 7
    A = rng.normal(size=(n, d)) + 3.0  # an offset: the shift matters
    delta = rng.normal(size=n)
    delta[:130] = np.abs(delta[:130])  # a block of one sign, then mixed blocks
    delta[400:530] = -np.abs(delta[400:530])  # and a block of the other
    delta[[5, 450, 700]] = 0.0  # no Gram row, but a thin product
    delta[[6, 451]] = 1e-280  # a thin column of about 1e140: still carried in the syrk
    rows = rng.normal(size=(4, n))
    rows[:, 17] = 1e6  # entry k is ignored: row k of A - 1 a_k^T is zero
    monkeypatch.setattr(rt, "_BLOCK_BYTES", 8 * d * 128)
    # chunks that do not divide the per-sign buffers: a chunk stops where a buffer is full
    monkeypatch.setattr(rt, "_CHUNK_BYTES", 8 * d * chunk_rows)
    # with workers (when threadpoolctl can limit BLAS) the blocks are dealt out to threads
    monkeypatch.setattr(rt, "_PARALLEL_BYTES", 0 if parallel else A.nbytes + 1)
    S = A - A[17]
    want = S.T @ (delta[:, None] * S)
    H, thin = rt._signed_gram_numpy(A, 17, delta, rows)
    assert H.shape == (d, d) and thin.shape == (4, d)
    assert np.allclose(H, want, rtol=1e-12, atol=1e-10)
    assert np.allclose(thin, rows @ S, rtol=1e-12, atol=1e-10)
    again, thin_again = rt._signed_gram_numpy(A, 17, delta, rows)
    assert np.array_equal(H, again)  # a fixed order of the partial sums: the same bits
    assert np.array_equal(thin, thin_again)
    columns, special = rt._thin_columns(rows, delta, np.sqrt(np.abs(delta)), 17)
    assert set(special) == {5, 450, 700}
    assert np.all(columns[:, special] == 0.0) and np.all(columns[:, 17] == 0.0)


def test_thin_columns_beyond_the_limit_are_added_directly():
    rng = np.random.default_rng(4)
    n, d = 300, 5
    A = rng.normal(size=(n, d))
    delta = rng.uniform(0.5, 1.0, n)
    delta[[3, 200]] = 1e-310  # subnormal: sqrt is ~1e-155, the ratio ~1e155 > 2**480
    rows = rng.normal(size=(2, n))
    rows[:, 200] = np.nan  # a non-finite piece stays visible in the result
    columns, special = rt._thin_columns(rows, delta, np.sqrt(np.abs(delta)), 0)
    assert list(special) == [3, 200]
    H, thin = rt._signed_gram_numpy(A, 0, delta, rows)
    S = A - A[0]
    assert np.isnan(thin).all()
    rows[:, 200] = 1.0
    H, thin = rt._signed_gram_numpy(A, 0, delta, rows)
    assert np.allclose(thin, rows @ S, rtol=1e-12, atol=1e-12)
    assert np.allclose(H, S.T @ (delta[:, None] * S), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("k", [0, 61, 499])  # first row, inside a block, last row
def test_shifted_row_pass_is_the_shifted_product(monkeypatch, parallel, k):
    """s = A v - u_k (s_k = 0), y = (A - 1 a_k^T)^T (weights * s), serially or on the workers
    (blocks dealt out in contiguous runs; the same bits on every call)."""
    rng = np.random.default_rng(13)
    n, d = 500, 9
    A = rng.normal(size=(n, d)) + 2.0
    v = rng.normal(size=d)
    weights = rng.normal(size=n)
    monkeypatch.setattr(rt, "_PASS_BYTES", 8 * d * 37)  # blocks that do not divide n
    monkeypatch.setattr(rt, "_WORKER_PASS_BYTES", 8 * d * 23)
    monkeypatch.setattr(rt, "_PARALLEL_BYTES", 0 if parallel else A.nbytes + 1)
    if parallel and rt._WORKERS.for_array(A) < 2:
        pytest.skip("threadpoolctl cannot limit this BLAS, or one core: the serial path only")
    s, u_k, y = rt.shifted_row_pass(A, v, k, weights)
    want_s = A @ v - A[k] @ v
    want_s[k] = 0.0
    assert u_k == pytest.approx(A[k] @ v, rel=1e-14)
    assert s[k] == 0.0
    np.testing.assert_allclose(s, want_s, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(y, (A - A[k]).T @ (weights * want_s), rtol=1e-12, atol=1e-12)
    again = rt.shifted_row_pass(A, v, k, weights)
    assert np.array_equal(again[0], s) and np.array_equal(again[2], y)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("m", [1, 4])
@pytest.mark.parametrize("order", ["C", "F"])
def test_row_products_are_the_stacked_product(monkeypatch, parallel, m, order):
    """V @ A for a few rows, serially (blocks stacked on the fly) or on the workers (blocks
    dealt out in contiguous runs), for any memory order of A; the same bits on every call."""
    rng = np.random.default_rng(17)
    n, d = 700, 11
    A = np.asarray(rng.normal(size=(n, d)) + 3.0, order=order)
    rows = [rng.normal(size=n) for _ in range(m)]
    monkeypatch.setattr(rt, "_BLOCK_BYTES", 8 * d * 41)  # blocks that do not divide n
    monkeypatch.setattr(rt, "_WORKER_PASS_BYTES", 8 * d * 29)
    monkeypatch.setattr(rt, "_WORKER_PRODUCT_COLUMNS", d if parallel else d + 1)
    monkeypatch.setattr(rt, "_WORKER_PRODUCT_ROWS", 1)
    monkeypatch.setattr(rt, "_PARALLEL_BYTES", 0)
    if parallel and rt._WORKERS.for_array(A) < 2:
        pytest.skip("threadpoolctl cannot limit this BLAS, or one core: the serial path only")
    Y = rt.row_products(rows, A)
    assert Y.shape == (m, d)
    np.testing.assert_allclose(Y, np.stack(rows) @ A, rtol=1e-12, atol=1e-11)
    assert np.array_equal(rt.row_products(rows, A), Y)


def test_softmax_is_finite_and_accurate_at_extreme_logits():
    t = np.array([1e3, -1e3, 0.0, 1e3 - 50.0])
    sm = rt.softmax(np, t)
    assert sm.k == 0
    assert np.all(np.isfinite(sm.logf))
    assert sm.logf[1] == pytest.approx(-2e3)
    assert float(sm.fc) == pytest.approx(np.exp(-50.0), rel=1e-12)
    assert float(sm.f.sum()) == pytest.approx(1.0)


def test_numpy_softmax_is_the_generic_arithmetic_bit_for_bit():
    """The numpy path sets entry k in place; any other namespace takes the generic one."""
    xps = pytest.importorskip("array_api_strict")
    rng = np.random.default_rng(8)
    for t in (rng.normal(size=500) * 30.0, np.array([1e3, -1e3, 0.0, 1e3 - 50.0]), np.ones(3)):
        fast = rt.softmax(np, t)
        generic = rt.softmax(xps, xps.asarray(t))
        assert fast.k == generic.k
        for name in ("f", "logf", "fc", "is_k"):
            want = np.asarray(getattr(generic, name))
            assert np.array_equal(np.asarray(getattr(fast, name)), want)


def test_dominant_entry_is_set_from_the_known_total():
    g = np.array([0.5, 1e-20, -0.25])
    is_k = np.array([True, False, False])
    out = rt.set_dominant_total(np, g, is_k, 0.0)
    assert out[0] == pytest.approx(0.25 - 1e-20)
    assert g[0] == 0.5  # the input is not written into


def test_argument_errors_name_the_argument():
    params = (
        rt.Parameter("b", "vector", "probability", "n"),
        rt.Parameter("g", "scalar", "real", "scalar"),
    )
    x, A = np.zeros(2), np.eye(2)
    with pytest.raises(ValueError, match="b must be a probability vector"):
        rt.prepare(x, A, {"b": np.array([0.7, 0.7]), "g": 1.0}, params)
    with pytest.raises(ValueError, match="g must be a real scalar"):
        rt.prepare(x, A, {"b": np.array([0.5, 0.5]), "g": "0.5"}, params)
    with pytest.raises(ValueError, match="x must have shape"):
        rt.prepare(np.zeros(3), A, {"b": np.array([0.5, 0.5]), "g": 1.0}, params)
    with pytest.raises(ValueError, match="A must be a real array"):
        rt.prepare(x, np.eye(2) * 1j, {"b": np.array([0.5, 0.5]), "g": 1.0}, params)


def test_the_hessian_on_worker_threads_equals_the_serial_one(monkeypatch):
    """A large A runs the logits and the Gram's pass on the workers (BLAS at one thread each);
    the result is the serial one up to rounding, and BLAS gets its thread count back."""
    import creality_generated._runtime as generated_rt
    import creality_generated.creativity_reality as model

    rng = np.random.default_rng(5)
    n, d = 3000, 12
    A = rng.normal(size=(n, d))
    x = rng.normal(size=d) / np.sqrt(d)
    b = rng.dirichlet(np.ones(n))
    w = rng.uniform(0.5, 1.5, n) / np.sqrt(n)
    monkeypatch.setattr(generated_rt, "_BLOCK_BYTES", 8 * d * 64)
    monkeypatch.setattr(generated_rt, "_PARALLEL_BYTES", A.nbytes + 1)
    serial = model.hessian(x, A, b, w, 0.7)
    monkeypatch.setattr(generated_rt, "_PARALLEL_BYTES", 0)
    if not generated_rt._WORKERS._ready():
        pytest.skip("threadpoolctl cannot limit this BLAS, or one core: the serial path only")
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info()]
    parallel = model.hessian(x, A, b, w, 0.7)
    np.testing.assert_allclose(parallel, serial, rtol=1e-12, atol=1e-14 * np.abs(serial).max())
    assert np.array_equal(parallel, parallel.T)
    assert [i["num_threads"] for i in threadpoolctl.threadpool_info()] == before
    with generated_rt._WORKERS.hold(A) as held:  # held: a nested call runs serially, no deadlock
        assert held
        nested = model.hessian(x, A, b, w, 0.7)
    np.testing.assert_allclose(nested, serial, rtol=1e-12, atol=1e-14 * np.abs(serial).max())


@pytest.mark.parametrize("share", [0.0, 0.4, 1.0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_signed_gram_is_the_signed_weighted_gram(share, dtype):
    """One syrk per sign: ``S^T diag(sign) S`` for no, some and only negative rows, in the
    rows' dtype and exactly symmetric; the same with array-api-strict arrays."""
    rng = np.random.default_rng(3)
    S = rng.normal(size=(300, 7)).astype(dtype)
    negative = rng.random(300) < share
    signs = np.where(negative, -1.0, 1.0)
    want = S.astype(float).T @ (signs[:, None] * S.astype(float))
    got = rt.signed_gram(np, S, negative)
    assert got.dtype == dtype and np.array_equal(got, got.T)
    tol = 1e-13 if dtype == np.float64 else 1e-4
    assert np.max(np.abs(got - want)) <= tol * np.max(np.abs(S.astype(float).T @ S))
    xps = pytest.importorskip("array_api_strict")
    strict = rt.signed_gram(xps, xps.asarray(S), xps.asarray(negative))
    assert np.array_equal(np.asarray(strict), got)


class _FakeBlas:
    def __init__(self, internal_api):
        self.internal_api = internal_api


@pytest.mark.parametrize(
    ("timeout", "apis", "prompt"),
    [
        ("20", ["openblas"], True),
        ("24", ["openblas", "openblas"], True),  # numpy's and scipy's copies
        ("25", ["openblas"], False),
        (None, ["openblas"], False),  # OpenBLAS's default: 2**28 cycles
        ("soon", ["openblas"], False),
        ("20", ["mkl"], False),
        ("20", ["openblas", "mkl"], False),
        ("20", [], False),
    ],
)
def test_blas_parks_promptly_reads_openblas_thread_timeout(monkeypatch, timeout, apis, prompt):
    if timeout is None:
        monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", timeout)
    assert rt.blas_parks_promptly([_FakeBlas(api) for api in apis]) is prompt


def test_workers_start_lower_where_blas_parks_its_threads(monkeypatch):
    """From _PARKED_PARALLEL_BYTES (not _PARALLEL_BYTES) on where idle BLAS threads park."""
    workers = rt._Workers()
    monkeypatch.setattr(workers, "_usable", True)
    monkeypatch.setattr(rt._Workers, "count", property(lambda self: 2))
    A = np.zeros((rt._PARKED_PARALLEL_BYTES // 64, 8))  # exactly the parked threshold
    small = A[:-1]
    assert workers.threshold == rt._PARALLEL_BYTES and workers.for_array(A) == 1
    monkeypatch.setattr(workers, "_parks", True)
    assert workers.threshold == rt._PARKED_PARALLEL_BYTES
    assert workers.for_array(A) == 2 and workers.for_array(small) == 1
    monkeypatch.setattr(rt, "_PARALLEL_BYTES", 1 << 10)  # the lower of the two applies
    assert workers.threshold == 1 << 10 and workers.for_array(small) == 2


@pytest.mark.parametrize("preset", [None, "26"])
def test_the_command_line_sets_openblas_thread_timeout_unless_set(preset):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    code = (
        "import os, sys; import creality_sym.cli; "
        "print(os.environ['OPENBLAS_THREAD_TIMEOUT'], 'numpy' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [preset or "20", "False"]  # set before numpy loads, so OpenBLAS reads it


@pytest.mark.parametrize("when", ["before numpy", "after numpy"])
def test_the_workers_measure_whether_idle_blas_threads_park(when):
    """OPENBLAS_THREAD_TIMEOUT set after numpy loaded reads prompt but is not: measured."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    set_it = "os.environ['OPENBLAS_THREAD_TIMEOUT'] = '20'"
    code = "\n".join(
        [
            "import os",
            set_it if when == "before numpy" else "",
            "import numpy",
            set_it if when == "after numpy" else "",
            "import creality_generated._runtime as rt",
            "rt.PARK_PROBE_SECONDS = 0.05",
            "w = rt._WORKERS",
            "usable = w._ready()",
            "blas = w._controller.select(user_api='blas').lib_controllers if usable else []",
            "print(usable, rt.blas_parks_promptly(blas), w._parks)",
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    if out[:2] != ["True", "True"]:
        pytest.skip("no OpenBLAS that threadpoolctl can limit, or one core")
    assert out[2] == ("True" if when == "before numpy" else "False")


def test_workspaces_are_reused_per_thread_and_replaced_when_far_off():
    import threading

    spaces = rt._Workspaces()
    a = spaces.get("rows", (100, 8))
    assert a.shape == (100, 8) and a.flags.c_contiguous and a.dtype == np.float64
    b = spaces.get("rows", (90, 8))  # a bit smaller: the same memory
    assert np.shares_memory(a, b)
    c = spaces.get("rows", (101, 8))  # more than there is: replaced
    assert not np.shares_memory(a, c)
    d = spaces.get("rows", (10, 8))  # far less (under a quarter): replaced, memory returned
    assert not np.shares_memory(c, d)
    seen = []
    worker = threading.Thread(target=lambda: seen.append(spaces.get("rows", (10, 8))))
    worker.start()
    worker.join()
    assert not np.shares_memory(seen[0], d)  # another thread has its own
