"""The audit's search on a Dask cluster: one task per bound, merged in registry order.

The unit of work is :func:`creality_sym.audit.runner.run_bound` for one
bound, the same unit the sequential run executes: its search (Hypothesis
stage, restarts of the local ascent, shrinking) is seeded by the bound and
``--seed`` alone (``bound.seed_for(seed)``), so with ``--max-evals`` every
task gives the same verdict, counts and counterexample as the sequential
run, whatever the worker and the order the tasks finish in. Results are
gathered in the order of the bounds.

Counterexample files are written by the client (from the verdict the task
returns), so they land in ``--out`` on the client's machine even when the
workers run elsewhere; the bytes are those a local run writes.

A worker runs one bound at a time (a lock per worker process): the search
uses Hypothesis, which is not thread-safe, so several threads of one
worker process would otherwise run searches at the same time. In timed
mode each bound gets ``budget / ceil(bounds / workers)`` seconds, as with a
pool of that many processes. Inside a worker thread the per-evaluation time
limit cannot interrupt an evaluation (``SIGALRM`` works in a main thread
only): a longer evaluation still counts as an error, once it returns.
"""

from __future__ import annotations

import math
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from creality_sym.audit.bounds import Bound
from creality_sym.audit.instance import Space
from creality_sym.audit.runner import Verdict, run_bound, save_counterexample

from .cluster import connect, worker_processes

__all__ = ["audit_on_cluster", "run_task"]

#: one search at a time per worker process (Hypothesis is not thread-safe)
_SEARCH_LOCK = threading.Lock()

#: prefix of the modules :func:`creality_sym.audit.bounds.load_bounds` creates for bounds files
_BOUNDS_MODULE_PREFIX = "_creality_bounds_"


def run_task(bound: Bound, space: Space, options: dict[str, Any]) -> Verdict:
    """One bound's audit, as a task: :func:`run_bound` with its instances detached.

    ``options`` are the keyword arguments of :func:`run_bound` (``seed``,
    ``seconds``, ``max_evals``, ...) with ``out=None``: the client writes the
    counterexample file. The model is dropped from the verdict's instances
    (the client attaches its own).
    """
    with _SEARCH_LOCK, warnings.catch_warnings():
        # the worker's own threads draw from the ``random`` module while Hypothesis
        # generates, which Hypothesis reports as if a strategy had used it
        warnings.filterwarnings("ignore", message=".*`random` module inside strategies")
        verdict = run_bound(bound, space, **{**options, "out": None})
    for name in ("worst", "counterexample"):
        inst = getattr(verdict, name)
        if inst is not None:
            setattr(verdict, name, inst.with_model(None))
    return verdict


def _pickle_bounds_files_by_value() -> None:
    """Send the functions of loaded bounds files by value: workers cannot import those modules."""
    import cloudpickle

    for name, module in list(sys.modules.items()):
        if name.startswith(_BOUNDS_MODULE_PREFIX) and module is not None:
            try:
                cloudpickle.register_pickle_by_value(module)
            except ValueError:  # already registered
                pass


def audit_on_cluster(
    bounds: Sequence[Bound],
    space: Space,
    scheduler: Any,
    *,
    budget: float,
    options: dict[str, Any],
) -> list[Verdict]:
    """Audit ``bounds`` as Dask tasks on ``scheduler``; verdicts in the order of ``bounds``.

    Parameters
    ----------
    bounds : sequence of Bound
    space : Space
        The audited spec and its scalars.
    scheduler : str or distributed.Client
        ``local:K``, a scheduler address or file, or a connected client
        (see :func:`creality_sym.distributed.cluster.connect`).
    budget : float
        Total search seconds (timed mode) or the time cap (with ``max_evals``).
    options : dict
        :func:`run_bound`'s keyword arguments: ``seed``, ``out`` (folder of
        the counterexample files, written here by the client or ``None``),
        ``shrink_seconds``, ``max_evals``, ``eval_timeout``.

    Returns
    -------
    list of Verdict
        The same verdicts a sequential run gives with ``max_evals``.
    """
    blist = list(bounds)
    if not blist:
        return []
    out = options.get("out")
    task_options = {k: v for k, v in options.items() if k != "out"}
    _pickle_bounds_files_by_value()
    with connect(scheduler) as client:
        k = min(worker_processes(client), len(blist))
        task_options["seconds"] = budget / math.ceil(len(blist) / k)
        futures = [
            client.submit(run_task, bound, space, task_options, pure=False) for bound in blist
        ]
        verdicts: list[Verdict] = client.gather(futures)
    model = space.model
    for bound, verdict in zip(blist, verdicts, strict=True):
        for name in ("worst", "counterexample"):
            inst = getattr(verdict, name)
            if inst is not None:
                setattr(verdict, name, inst.with_model(model))
        if out is not None and verdict.counterexample is not None:
            path = save_counterexample(
                Path(out),
                bound,
                verdict.counterexample,
                verdict.lhs,
                verdict.rhs,
                seed=int(options.get("seed", 0)),
                model=getattr(model, "__name__", str(model)),
            )
            verdict.path = str(path)
    return verdicts
