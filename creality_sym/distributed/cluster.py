"""Connect to a Dask cluster: a scheduler address, a scheduler file, or ``local:K``.

``--scheduler`` takes

- ``local:K``: a :class:`distributed.LocalCluster` of ``K`` worker processes
  with one thread each, started for the command and closed after it;
- ``tcp://HOST:PORT`` (or any address ``distributed.Client`` accepts): a
  running ``dask scheduler`` with its ``dask worker`` processes;
- ``PATH.json``: a scheduler file (``dask scheduler --scheduler-file PATH.json``).

Workers import ``creality_sym`` and ``creality_generated`` themselves: they
must run in an environment where ``creality`` is installed, and for
``creality solve --data STORE.zarr`` they must see the store at the same path.

:class:`TaskLog` records which tasks the workers ran (from the scheduler's
task stream), so that a command can say that the cluster, not the client,
did the work.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "TaskLog",
    "connect",
    "describe",
    "parse_scheduler",
    "session",
    "task_log",
    "worker_processes",
    "worker_threads",
]

_LOCAL = re.compile(r"^local:(\d+)$")


def parse_scheduler(address: str) -> tuple[str, Any]:
    """``("local", K)``, ``("file", path)`` or ``("address", address)`` for ``--scheduler``.

    Raises
    ------
    ValueError
        For an empty address or ``local:K`` with ``K < 1``.
    """
    text = str(address).strip()
    if not text:
        raise ValueError("--scheduler: empty address; give local:K, tcp://HOST:PORT or FILE.json")
    match = _LOCAL.match(text)
    if match:
        k = int(match.group(1))
        if k < 1:
            raise ValueError(f"--scheduler {text}: local:K needs K >= 1 workers")
        return "local", k
    if text.startswith("local"):
        raise ValueError(f"--scheduler {text}: write local:K with an integer K >= 1")
    if text.endswith(".json"):
        return "file", Path(text)
    return "address", text


@contextlib.contextmanager
def connect(address: Any, *, processes: bool = True, timeout: float = 30.0) -> Iterator[Any]:
    """A :class:`distributed.Client` for ``address`` (closed, with its local cluster, on exit).

    Parameters
    ----------
    address : str or distributed.Client
        See the module docstring; a ``Client`` is used as it is (and left open).
    processes : bool
        For ``local:K``: worker processes (default) or threads of this process.
        Threads share one interpreter, so work holding the GIL does not run in
        parallel; they start in a fraction of the time.
    timeout : float
        Seconds to wait for a remote scheduler.

    Raises
    ------
    ValueError
        Naming the address when no scheduler answers there.
    """
    from distributed import Client, LocalCluster

    if isinstance(address, Client):
        yield address
        return
    kind, value = parse_scheduler(address)
    with contextlib.ExitStack() as stack:
        if kind == "local":
            cluster = LocalCluster(
                n_workers=value,
                threads_per_worker=1,
                processes=processes,
                dashboard_address=":0",
                silence_logs=40,
            )
            stack.enter_context(cluster)
            client = Client(cluster, set_as_default=False)
        else:
            try:
                if kind == "file":
                    if not value.is_file():
                        raise ValueError(f"--scheduler {value}: no such scheduler file")
                    client = Client(
                        scheduler_file=str(value), timeout=timeout, set_as_default=False
                    )
                else:
                    client = Client(value, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"--scheduler {address}: cannot connect ({exc})") from None
        stack.enter_context(client)
        yield client


def worker_processes(client: Any) -> int:
    """Number of workers the scheduler knows (at least 1)."""
    return max(1, len(client.scheduler_info(n_workers=-1)["workers"]))


def worker_threads(client: Any) -> int:
    """Total threads over the workers (at least 1)."""
    return max(1, sum(client.nthreads().values()))


@dataclass
class TaskLog:
    """Tasks the workers ran while the log was open: ``tasks`` in all, per ``workers``."""

    tasks: int = 0
    workers: Counter[str] = field(default_factory=Counter)

    def text(self) -> str:
        """One line: how many tasks ran on how many workers."""
        per = ", ".join(f"{w}: {k}" for w, k in sorted(self.workers.items()))
        return f"the scheduler ran {self.tasks} tasks on {len(self.workers)} workers ({per})"


def _stream_index(dask_scheduler: Any) -> int:
    """The scheduler's task-stream counter (installing the task stream if needed)."""
    from distributed.diagnostics.task_stream import TaskStreamPlugin

    plugin = dask_scheduler.plugins.get(TaskStreamPlugin.name)
    if plugin is None:
        plugin = TaskStreamPlugin(dask_scheduler)
        dask_scheduler.add_plugin(plugin)
    return int(plugin.index)


def _stream_since(dask_scheduler: Any, start: int) -> tuple[int, dict[str, int]]:
    """Tasks finished since counter ``start``, and those still in the buffer per worker."""
    from distributed.diagnostics.task_stream import TaskStreamPlugin

    plugin = dask_scheduler.plugins[TaskStreamPlugin.name]
    per: dict[str, int] = {}
    for record in plugin.collect(start_index=start):
        worker = str(record.get("worker", "?"))
        per[worker] = per.get(worker, 0) + 1
    return int(plugin.index) - start, per


@contextlib.contextmanager
def task_log(client: Any) -> Iterator[TaskLog]:
    """Record the tasks the workers of ``client`` finish in the body (the scheduler's count).

    Reads the scheduler's task stream (``client.run_on_scheduler``); the
    scheduler must be able to import this module (the same installation).
    """
    log = TaskLog()
    start = client.run_on_scheduler(_stream_index)
    try:
        yield log
    finally:
        tasks, per = client.run_on_scheduler(_stream_since, start=start)
        log.tasks = tasks
        log.workers.update(per)


@contextlib.contextmanager
def session(address: Any, *, processes: bool = True) -> Iterator[tuple[Any, TaskLog]]:
    """``(client, log)``: :func:`connect` to ``address`` and :func:`task_log` the body."""
    with connect(address, processes=processes) as client, task_log(client) as log:
        yield client, log


def describe(client: Any) -> str:
    """The scheduler's address and its workers with their threads, in one line."""
    threads = client.nthreads()
    return (
        f"scheduler {client.scheduler.address}: {len(threads)} workers, "
        f"{sum(threads.values())} threads"
    )
