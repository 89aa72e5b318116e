"""A real cluster: ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 (slow).

The audit of the default registry runs on it with ``--scheduler`` and its
verdicts are the expected ones; the scheduler says it ran one task per
bound on both workers. A store solved there equals the in-memory solve of
the same data, and the client stays small.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
pytest.importorskip("zarr")

pytestmark = pytest.mark.slow

DASK = shutil.which("dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _creality(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "creality_sym.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if DASK is None:
        pytest.skip("the dask command line is not installed")
    logs = tmp_path_factory.mktemp("dask")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = []

    def start(*args: str, name: str) -> None:
        log = open(logs / f"{name}.log", "w")  # closed with the process
        procs.append((subprocess.Popen([DASK, *args], stdout=log, stderr=log), log))

    try:
        start(
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dashboard-address",
            ":0",
            name="scheduler",
        )
        for i in (1, 2):
            start(
                "worker",
                address,
                "--nthreads",
                "1",
                "--nworkers",
                "1",
                "--name",
                f"w{i}",
                "--memory-limit",
                "4GB",
                name=f"worker{i}",
            )
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc, log in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def test_audit_on_a_dask_scheduler_and_two_workers(scheduler: str, tmp_path: Path) -> None:
    run = _creality("audit", "--scheduler", scheduler, "--seed", "1", "--out", "ce", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "every verdict matches its expectation" in run.stdout
    match = re.search(r"the scheduler ran (\d+) tasks on (\d+) workers", run.stdout)
    assert match and match.group(2) == "2", run.stdout
    table = run.stdout.split("\n\n")[0].splitlines()[3:]
    assert int(match.group(1)) == len(table) >= 12
    assert (tmp_path / "ce" / "bcre-psd.npz").is_file()
    replay = _creality("audit", "--replay", str(tmp_path / "ce" / "bcre-psd.npz"), cwd=tmp_path)
    assert replay.returncode == 0 and "reproduced" in replay.stdout


def test_audit_max_evals_on_the_cluster_equals_the_local_run(scheduler: str, tmp_path: Path):
    ids = ["bcre-psd", "hessian-pd", "newton-rate"]
    common = ["audit", "--lemma", *ids, "--max-evals", "80", "--seed", "5"]
    local = _creality(*common, "--out", "a", cwd=tmp_path)
    remote = _creality(*common, "--out", "b", "--scheduler", scheduler, cwd=tmp_path)
    assert local.returncode == remote.returncode == 0

    def table(text: str) -> list[str]:
        lines = text[text.index("id ") :].split("\n\n")[0].splitlines()
        return [re.sub(r"\s+\d+\.\d+s$", "", line) for line in lines]

    assert table(local.stdout) == table(remote.stdout)
    assert (tmp_path / "a" / "bcre-psd.npz").read_bytes() == (
        tmp_path / "b" / "bcre-psd.npz"
    ).read_bytes()


def test_solve_a_store_on_the_cluster(scheduler: str, tmp_path: Path) -> None:
    written = _creality(
        "solve",
        "--n",
        "200000",
        "--d",
        "20",
        "--seed",
        "1",
        "--write-zarr",
        "s.zarr",
        "--chunk-rows",
        "25000",
        cwd=tmp_path,
    )
    assert written.returncode == 0, written.stderr
    common = ["solve", "--data", "s.zarr", "--method", "both", "--quiet"]
    mem = _creality(*common, "--out", "mem", cwd=tmp_path)
    start = time.perf_counter()
    ours = _creality(*common, "--out", "ours", "--scheduler", scheduler, cwd=tmp_path)
    assert mem.returncode == 0 and ours.returncode == 0, ours.stdout + ours.stderr
    assert time.perf_counter() - start < 600
    assert re.search(r"client: peak RSS \d+ MB", ours.stdout), ours.stdout
    with np.load(tmp_path / "mem.npz") as a, np.load(tmp_path / "ours.npz") as b:
        np.testing.assert_allclose(b["exact_x"], a["exact_x"], rtol=0, atol=1e-8)
        np.testing.assert_allclose(b["sampled_x"], a["exact_x"], rtol=0, atol=1e-6)


def test_two_million_rows_keep_the_client_under_half_of_a(scheduler: str, tmp_path: Path):
    """``A`` 2,000,000 x 50 (800 MB): client peak RSS below 400 MB, x as in memory."""
    written = _creality(
        "solve",
        "--n",
        "2000000",
        "--d",
        "50",
        "--seed",
        "0",
        "--write-zarr",
        "big.zarr",
        cwd=tmp_path,
    )
    assert written.returncode == 0, written.stderr
    common = ["solve", "--data", "big.zarr", "--method", "exact", "--quiet"]
    ours = _creality(*common, "--scheduler", scheduler, "--out", "ours", cwd=tmp_path)
    assert ours.returncode == 0, ours.stdout + ours.stderr
    rss = re.search(r"client: peak RSS (\d+) MB", ours.stdout)
    assert rss and int(rss.group(1)) < 400, ours.stdout
    mem = _creality(*common, "--out", "mem", cwd=tmp_path)
    assert mem.returncode == 0, mem.stderr
    with np.load(tmp_path / "mem.npz") as a, np.load(tmp_path / "ours.npz") as b:
        np.testing.assert_allclose(b["exact_x"], a["exact_x"], rtol=0, atol=1e-8)
