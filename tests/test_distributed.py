"""The audit and the Newton solver on a Dask cluster (a LocalCluster: no external service).

One in-process cluster (two workers of one thread each) serves the module;
it listens on TCP so that the command line can reach it with ``--scheduler``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
pytest.importorskip("zarr")

from creality_sym.audit.bounds import default_bounds, select  # noqa: E402
from creality_sym.audit.runner import audit  # noqa: E402
from creality_sym.cli import main  # noqa: E402
from creality_sym.distributed.cluster import connect, parse_scheduler, task_log  # noqa: E402
from creality_sym.distributed.oracle import ClusterOracle  # noqa: E402
from creality_sym.distributed.rows import RowMatrix  # noqa: E402
from creality_sym.distributed.solve import newton  # noqa: E402
from creality_sym.distributed.store import (  # noqa: E402
    load,
    open_store,
    read_store,
    write_store,
)
from creality_sym.instance import Instance, load_model, spec_names  # noqa: E402
from creality_sym.solve import newton as memory_newton  # noqa: E402
from creality_sym.solve.instance import random_instance  # noqa: E402

MODEL = load_model("creativity_reality")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        dashboard_address=":0",
        silence_logs=50,
    )
    c = distributed.Client(cluster, set_as_default=False)
    yield c
    c.close()
    cluster.close()


def _data(inst: Instance, A) -> dict:
    return {"A": A, **inst.params}


# ----------------------------------------------------------------------------- the audit


#: the in-process cluster's two worker threads run their Hypothesis searches at the same time,
#: and Hypothesis reads the other thread's draws as use of the global ``random`` module inside
#: a strategy (the audit's strategies draw from Hypothesis only; with worker processes, as on
#: a real cluster, the warning cannot arise)
CONCURRENT_SEARCHES = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)


@CONCURRENT_SEARCHES
def test_audit_tasks_give_the_local_verdicts_and_files(client, tmp_path: Path) -> None:
    bounds = select(default_bounds(), ["bcre-psd", "breal-norm", "sampling-spectral"])
    local = audit(bounds, seed=3, max_evals=60, out=tmp_path / "local")
    with task_log(client) as log:
        remote = audit(bounds, seed=3, max_evals=60, out=tmp_path / "dask", scheduler=client)
    assert log.tasks == len(bounds) and sum(log.workers.values()) == len(bounds)
    for a, b in zip(local, remote, strict=True):
        assert (a.id, a.verdict, a.instances, a.tightness) == (
            b.id,
            b.verdict,
            b.instances,
            b.tightness,
        )
    assert [v.verdict for v in remote] == ["violated", "holds", "holds"]
    assert remote[0].path == str(tmp_path / "dask" / "bcre-psd.npz")
    with np.load(tmp_path / "local" / "bcre-psd.npz") as x, np.load(remote[0].path) as y:
        assert x.files == y.files
        assert all(x[k].tobytes() == y[k].tobytes() for k in x.files)
    assert remote[0].counterexample is not None and remote[0].counterexample.model is MODEL


@CONCURRENT_SEARCHES
def test_audit_command_on_a_scheduler(client, tmp_path: Path, capsys) -> None:
    address = client.scheduler.address
    args = ["audit", "--lemma", "bcre-psd", "f-lipschitz", "--max-evals", "40", "--seed", "2"]
    assert main([*args, "--scheduler", address, "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"the scheduler ran 2 tasks on \d workers", text)
    assert "every verdict matches its expectation" in text
    assert main([*args, "--scheduler", address, "--workers", "2"]) == 2
    assert "give one" in capsys.readouterr().err


def test_scheduler_addresses() -> None:
    assert parse_scheduler("local:3") == ("local", 3)
    assert parse_scheduler("tcp://127.0.0.1:8786") == ("address", "tcp://127.0.0.1:8786")
    assert parse_scheduler("sched.json")[0] == "file"
    for bad in ("", "local:0", "local:two"):
        with pytest.raises(ValueError, match="--scheduler"):
            parse_scheduler(bad)
    with pytest.raises(ValueError, match="cannot connect"):
        with connect("tcp://127.0.0.1:9", timeout=0.5):
            pass


# ----------------------------------------------------------------------------- the oracle


@pytest.mark.parametrize("spec", spec_names())
def test_cluster_pieces_match_the_generated_model(client, spec: str) -> None:
    """Loss, gradient, Hessian and Hessian-vector product of every shipped spec."""
    model = load_model(spec)
    rng = np.random.default_rng(1)
    inst = Instance.random(model, 57, 4, rng, logit_std=2.0)
    A = RowMatrix.from_array(client, inst.A, chunk_rows=10)
    params = {
        k: (A.vector(v) if np.ndim(v) and v.shape == (57,) else v) for k, v in inst.params.items()
    }
    oracle = ClusterOracle(model, A, params, inst.x)
    v = rng.standard_normal(4)
    kw = {**inst.params, "validate": False}
    scale = max(1.0, float(np.max(np.abs(model.hessian(inst.x, inst.A, **kw)))))
    assert oracle.loss(inst.x, oracle.z0) == pytest.approx(float(inst.loss()), rel=1e-12, abs=1e-13)
    np.testing.assert_allclose(oracle.gradient(inst.x), inst.gradient(), atol=1e-12 * scale)
    np.testing.assert_allclose(oracle.hessian(inst.x), inst.hessian(), atol=1e-12 * scale)
    np.testing.assert_allclose(
        oracle.hvp(inst.x, v), model.hvp(inst.x, v, inst.A, **kw), atol=1e-12 * scale
    )


def test_row_vectors_combine_lazily(client) -> None:
    A = RowMatrix.from_array(client, np.arange(12.0).reshape(6, 2), chunk_rows=4)
    assert A.row_chunks == (4, 2)
    u = A @ np.array([1.0, 0.0])
    w = A @ np.array([0.0, 1.0])
    np.testing.assert_array_equal((u + 2.0 * w - w * 0.5).compute(), np.arange(6) * 5.0 + 1.5)
    np.testing.assert_array_equal((-u).compute(), -2.0 * np.arange(6))
    np.testing.assert_array_equal(u @ A, np.arange(12.0).reshape(6, 2).T @ (2.0 * np.arange(6)))
    assert A.locate(5) == (1, 1) and A.local_index(2) == [2, -1]


# ----------------------------------------------------------------------------- Newton


def test_exact_newton_equals_the_in_memory_solve(client) -> None:
    inst = random_instance(3000, 6, gamma=0.5, seed=2)
    data = {"b": inst.b, "w": inst.w, "gamma": inst.gamma}
    A = RowMatrix.from_array(client, inst.A, chunk_rows=700)
    ours = newton(MODEL, inst.x0, client=client, method="exact", A=A, **data)
    ref = memory_newton(MODEL, inst.x0, method="exact", A=inst.A, **data)
    assert ours.status == ref.status == "converged" and ours.iterations == ref.iterations
    np.testing.assert_allclose(ours.x, ref.x, rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        [r.loss for r in ours.history], [r.loss for r in ref.history], rtol=1e-13
    )


@pytest.mark.parametrize("variant", ["sketch-pcg", "paper"])
def test_sampled_newton_reaches_the_in_memory_solution(client, variant: str) -> None:
    inst = random_instance(2500, 4, gamma=0.5, seed=4)
    data = {"b": inst.b, "w": inst.w, "gamma": inst.gamma}
    A = RowMatrix.from_array(client, inst.A, chunk_rows=600)
    kw = {"method": "sampled", "variant": variant, "seed": 0}
    first = newton(MODEL, inst.x0, client=client, A=A, **kw, **data)
    again = newton(MODEL, inst.x0, client=client, A=A, **kw, **data)
    ref = memory_newton(MODEL, inst.x0, method="exact", A=inst.A, **data)
    assert first.converged and first.variant == variant
    np.testing.assert_array_equal(first.x, again.x)  # same seed, same samples
    np.testing.assert_allclose(first.x, ref.x, rtol=0, atol=1e-7)


def test_newton_with_x_space_terms_and_a_logit_scale(client) -> None:
    for spec in ("ridge_prior", "temperature"):
        model = load_model(spec)
        inst = Instance.problem(model, 2000, 4, np.random.default_rng(5))
        A = RowMatrix.from_array(client, inst.A, chunk_rows=600)
        ours = newton(model, inst.x, client=client, **_data(inst, A))
        ref = memory_newton(model, inst.x, A=inst.A, **inst.params)
        assert ours.converged and ref.converged, spec
        np.testing.assert_allclose(ours.x, ref.x, rtol=0, atol=1e-9)


def test_bad_data_is_named(client) -> None:
    inst = random_instance(200, 3, gamma=0.5, seed=0)
    good = {"A": inst.A, "b": inst.b, "w": inst.w, "gamma": 0.5}
    cases = [
        ({"b": inst.b * 2.0}, "b must be a probability vector"),
        ({"w": -inst.w}, "w must be > 0"),
        ({"gamma": -1.0}, "gamma must be >= 0"),
        ({"A": np.where(np.arange(600).reshape(200, 3) == 7, np.nan, inst.A)}, "A must be finite"),
        ({"A": inst.A * 1e160}, "A has entries up to"),
        ({"b": inst.b[:-1]}, "b must have shape"),
        ({"q": 1.0}, "unknown data argument"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            newton(MODEL, inst.x0, client=client, **{**good, **change})
    with pytest.raises(ValueError, match="missing data argument"):
        newton(MODEL, inst.x0, client=client, A=inst.A, b=inst.b, gamma=0.5)
    with pytest.raises(ValueError, match="x0 must have shape"):
        newton(MODEL, np.zeros(2), client=client, **good)


# ----------------------------------------------------------------------------- stores


def test_store_round_trip_and_load(client, tmp_path: Path) -> None:
    inst = random_instance(1000, 4, gamma=0.3, seed=1)
    path = write_store(
        tmp_path / "s.zarr", inst.A, inst.b, inst.w, chunk_rows=300, x0=inst.x0, gamma=0.3
    )
    info = open_store(path)
    assert (info.n, info.d, info.row_chunks) == (1000, 4, (300, 300, 300, 100))
    assert info.arrays == {"b": (1000,), "w": (1000,), "x0": (4,)} and info.scalars == {
        "gamma": 0.3
    }
    raw = read_store(path)
    np.testing.assert_array_equal(raw["A"], inst.A)
    np.testing.assert_array_equal(raw["x0"], inst.x0)
    data, x0 = load(client, path, MODEL, {"gamma": 0.25})
    assert data["gamma"] == 0.25 and data["A"].row_chunks == info.row_chunks
    np.testing.assert_array_equal(data["b"].compute(), inst.b)
    np.testing.assert_array_equal(x0, inst.x0)
    with pytest.raises(ValueError, match="exists"):
        write_store(path, inst.A)
    with pytest.raises(ValueError, match="must have shape"):
        write_store(tmp_path / "bad.zarr", inst.A, inst.b[:5])
    with pytest.raises(ValueError, match="no such store"):
        open_store(tmp_path / "missing.zarr")
    write_store(tmp_path / "nob.zarr", inst.A, w=inst.w)
    with pytest.raises(ValueError, match="no array 'b'"):
        load(client, tmp_path / "nob.zarr", MODEL)


def test_solve_command_on_a_store(client, tmp_path: Path, capsys) -> None:
    store = tmp_path / "s.zarr"
    args = ["solve", "--n", "5000", "--d", "5", "--seed", "3"]
    assert main([*args, "--write-zarr", str(store), "--chunk-rows", "1200"]) == 0
    assert "wrote" in capsys.readouterr().out
    common = ["solve", "--data", str(store), "--method", "both", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "mem")]) == 0
    assert "process: peak RSS" in capsys.readouterr().out
    address = client.scheduler.address
    assert main([*common, "--scheduler", address, "--out", str(tmp_path / "dask")]) == 0
    text = capsys.readouterr().out
    assert "A on the workers: 5000 x 5" in text
    assert re.search(r"client: peak RSS \d+ MB, wall [\d.]+ s; the scheduler ran \d+ tasks", text)
    with np.load(tmp_path / "mem.npz") as mem, np.load(tmp_path / "dask.npz") as ours:
        np.testing.assert_allclose(ours["exact_x"], mem["exact_x"], rtol=0, atol=1e-10)
        np.testing.assert_allclose(ours["sampled_x"], mem["exact_x"], rtol=0, atol=1e-7)
    assert main(["solve", "--data", str(tmp_path / "none.zarr"), "--scheduler", address]) == 2
    assert "no such store" in capsys.readouterr().err
