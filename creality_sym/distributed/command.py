"""``creality solve`` on a Dask cluster and Zarr stores (``--scheduler``, ``--write-zarr``).

Examples::

    creality solve --n 2000000 --d 50 --write-zarr big.zarr        # write the instance, exit
    creality solve --data big.zarr --scheduler tcp://10.0.0.5:8786 --method exact --out run
    creality solve --data big.zarr --method exact --out mem         # the same data in memory

With ``--scheduler`` every pass over ``A`` runs on the cluster's workers
(:mod:`creality_sym.distributed.solve`); the store is read by the workers.
A store without ``--scheduler`` is read into this process and solved in
memory, the reference a cluster run is compared with. The last lines give
this process's peak resident memory and wall time, and with a cluster the
number of tasks its scheduler ran.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_solve_options", "peak_rss_bytes", "run_solve", "wants_cluster"]


def add_solve_options(parser: argparse.ArgumentParser) -> None:
    """``--scheduler``, ``--write-zarr`` and ``--chunk-rows`` for ``creality solve``."""
    group = parser.add_argument_group("cluster and stores (Dask, Zarr)")
    group.add_argument(
        "--scheduler",
        metavar="ADDR",
        default=None,
        help="run every pass over A on a Dask cluster: tcp://HOST:PORT, a scheduler FILE.json "
        "or local:K (K local worker processes); --data may then be a Zarr store",
    )
    group.add_argument(
        "--write-zarr",
        metavar="STORE",
        type=Path,
        default=None,
        help="write the instance (random, or --data FILE.npz) to the Zarr store STORE and exit",
    )
    group.add_argument(
        "--chunk-rows",
        metavar="R",
        type=int,
        default=None,
        help="rows per chunk of A in --write-zarr (default: about 32 MB per chunk)",
    )


def wants_cluster(args: argparse.Namespace) -> bool:
    """Whether this module runs the command (a scheduler, a store to write or to read)."""
    from .store import is_store

    return bool(
        getattr(args, "scheduler", None)
        or getattr(args, "write_zarr", None)
        or is_store(getattr(args, "data", None))
    )


def peak_rss_bytes() -> int:
    """This process's peak resident set size in bytes (``getrusage``; KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB"


def _fail(message: str) -> int:
    print(f"creality solve: {message}", file=sys.stderr)
    return 2


def _write(args: argparse.Namespace) -> int:
    from creality_sym.solve.command import build_instance

    from .store import write_store

    if args.data is not None and Path(args.data).suffix == ".zarr":
        return _fail(f"--write-zarr: --data {args.data} is already a store")
    if args.chunk_rows is not None and args.chunk_rows < 1:
        return _fail(f"--chunk-rows must be >= 1; got {args.chunk_rows}")
    inst = build_instance(args)
    path = write_store(
        args.write_zarr,
        inst.A,
        inst.b,
        inst.w,
        chunk_rows=args.chunk_rows,
        x0=inst.x0,
        overwrite=True,
        gamma=inst.gamma,
        **inst.extra,
    )
    n, d = inst.shape
    print(f"wrote {path}: A {n} x {d} ({_mb(8 * n * d)}), b, w, x0, gamma = {inst.gamma:g}")
    return 0


def _overrides(args: argparse.Namespace) -> dict[str, float]:
    from creality_sym.solve.command import _extra_params

    out = _extra_params(args.param)
    if args.gamma is not None:
        out["gamma"] = float(args.gamma)
    return out


def run_solve(args: argparse.Namespace) -> int:
    """``creality solve`` with ``--scheduler``, ``--write-zarr`` or a store as ``--data``."""
    from creality_sym.solve.command import load_model

    start = time.perf_counter()
    try:
        if args.write_zarr is not None:
            return _write(args)
        model = load_model(args.spec)
        overrides = _overrides(args)
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    if not args.scheduler:
        return _in_memory(args, model, overrides, start)
    from .cluster import describe, session

    try:
        with session(args.scheduler) as (client, tasks):
            print(f"cluster: {describe(client)}")
            code = _on_cluster(args, model, overrides, client)
    except ValueError as exc:
        return _fail(str(exc))
    if code == 2:
        return code
    print(
        f"client: peak RSS {_mb(peak_rss_bytes())}, wall {time.perf_counter() - start:.1f} s; "
        f"{tasks.text()}"
    )
    return code


def _in_memory(
    args: argparse.Namespace, model: Any, overrides: dict[str, float], start: float
) -> int:
    """Solve a store read into this process (the reference for a cluster run)."""
    from creality_sym.solve.newton import newton

    from .store import DEFAULT_GAMMA, read_store

    try:
        raw = read_store(args.data)
    except (ValueError, OSError) as exc:
        return _fail(f"--data {exc}")
    names = {p.name for p in model.PARAMETERS}
    data = {k: v for k, v in raw.items() if k == "A" or k in names}
    data.update({k: v for k, v in overrides.items() if k in names})
    if "gamma" in names and "gamma" not in data:
        data["gamma"] = DEFAULT_GAMMA
    x0 = raw["x0"] if "x0" in raw and "x0" not in names else np.zeros(data["A"].shape[1])
    code = _solve_all(args, model, data, lambda **kw: newton(model, x0, **kw, **data))
    print(f"process: peak RSS {_mb(peak_rss_bytes())}, wall {time.perf_counter() - start:.1f} s")
    return code


def _on_cluster(
    args: argparse.Namespace, model: Any, overrides: dict[str, float], client: Any
) -> int:
    from creality_sym.solve.command import build_instance

    from .solve import newton
    from .store import is_store, load

    try:
        if is_store(args.data):
            data, x0 = load(client, args.data, model, overrides)
        else:  # a random instance or an .npz, sent to the workers from here
            inst = build_instance(args)
            names = tuple(p.name for p in model.PARAMETERS)
            data, x0 = inst.data(names), inst.x0
    except (ValueError, OSError) as exc:
        return _fail(f"--data {args.data}: {exc}" if args.data else str(exc))
    A = data["A"]
    print(f"A on the workers: {A.shape[0]} x {A.shape[1]} ({_mb(8 * A.shape[0] * A.shape[1])})")

    def run(**kw: Any) -> Any:
        return newton(model, x0, client=client, **kw, **data)

    return _solve_all(args, model, data, run)


def _solve_all(args: argparse.Namespace, model: Any, data: dict[str, Any], run: Any) -> int:
    """Every requested method, printed and saved as ``creality solve`` does."""
    from creality_sym.solve.command import format_history, save, summary

    n, d = data["A"].shape
    params = {k: v for k, v in data.items() if isinstance(v, (int, float))}
    print(f"spec {model.SPEC_NAME}: n = {n}, d = {d}, {params}")
    methods = ("exact", "sampled") if args.method == "both" else (args.method,)
    results = {}
    for method in methods:
        try:
            result = run(
                method=method,
                variant=args.variant if method == "sampled" else None,
                tol=args.tol,
                max_iter=args.max_iter,
                seed=args.seed,
                epsilon=args.epsilon,
                delta=args.delta,
                sample_constant=args.sample_constant,
            )
        except ValueError as exc:
            source = f"--data {args.data}: " if args.data is not None else ""
            return _fail(f"{source}{exc}")
        results[method] = result
        if not args.quiet:
            print(f"\n== {method} Newton ({result.variant}) ==")
            print(format_history(result))
        print(summary(result))
    if len(results) == 2:
        gap = float(np.linalg.norm(results["exact"].x - results["sampled"].x))
        print(f"||x_exact - x_sampled|| = {gap:.3e}")
    if args.out is not None:
        meta = {"spec": model.SPEC_NAME, "n": n, "d": d, "seed": args.seed, **params}
        if args.scheduler:
            meta["scheduler"] = str(args.scheduler)
        if args.data is not None:
            meta["data"] = str(args.data)
        try:
            written = save(args.out, results, meta)
        except OSError as exc:
            return _fail(f"--out {args.out}: cannot write ({exc})")
        print(f"saved {written.with_suffix('.npz')} and {written}")
    return 0 if all(r.converged for r in results.values()) else 1
