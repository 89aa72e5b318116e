"""``creality bench``: the generated code against its floors and against other libraries.

Examples::

    creality bench                                  # default sizes, both cases, all peers
    creality bench --spec renyi --param q=2         # another spec (peers: the default only)
    creality bench --sizes 20000x400 --json bench.json
    creality bench --quick --peers none             # a smoke run in seconds
    creality bench --solver                         # also Newton vs scipy (time to tolerance)

Every case of one size is timed round-robin in one process; the table prints
medians and their ratios to the GEMM-form floor ``(A*delta[:,None]).T @ A``
and to two mat-vecs, and the peak numpy memory of the generated functions in
copies of A. Peers (JAX, PyTorch, SymPy) are optional: an absent one is noted.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from creality_sym.instance import (
    add_spec_arguments,
    load_model,
    parse_params,
    resolve_scalars,
)

from .instance import BENCH_TRADEOFF, CASES, bench_instance, parse_sizes
from .peers import PEERS
from .suite import bench_one
from .table import LEGEND, environment, format_result, summary, write_json

DEFAULT_SIZES = "8x3,2000x100,20000x400"
QUICK_SIZES = "4x2,500x20"
DEFAULT_REPEATS = 7
QUICK_REPEATS = 3
QUICK_SOLVER_SIZES = "2000x20"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``bench`` options to ``parser``."""
    parser.add_argument(
        "--sizes",
        help=f"comma-separated NxD sizes (default {DEFAULT_SIZES}; with --quick {QUICK_SIZES})",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help=f"timed calls per case (default {DEFAULT_REPEATS}; with --quick {QUICK_REPEATS})",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    add_spec_arguments(parser, "benchmarked")
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"instance cases, comma-separated from {', '.join(CASES)} (default both)",
    )
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help=f"peers to time, comma-separated from {', '.join(PEERS)}, or 'none' "
        "(default all; they run on the first case only)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=30.0,
        help="seconds of timed calls after which a slow case stops repeating (default 30)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random instances")
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")
    parser.add_argument(
        "--solver", action="store_true", help="also run the solver benchmark (Newton vs scipy)"
    )
    parser.add_argument(
        "--solver-repeats",
        type=int,
        default=1,
        help="runs of every solver per size in the solver benchmark (median time; default 1)",
    )
    parser.add_argument(
        "--solver-sizes",
        help="NxD sizes of the solver benchmark (default its own; with --quick "
        f"{QUICK_SOLVER_SIZES})",
    )


def _choices(text: str, allowed: tuple[str, ...] | list[str], option: str) -> list[str]:
    if text.strip().lower() == "none":
        return []
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown:
        raise ValueError(f"{option} must name items of {', '.join(allowed)}; got {unknown}")
    return items


def _solver(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """Run the solver benchmark if its module is importable; (JSON part, text)."""
    try:
        from creality_sym.solve import bench as solve_bench
    except ImportError as exc:
        note = f"solver benchmark not available ({exc})"
        return {"skipped": note}, f"note: {note}"
    if args.solver_sizes:
        sizes = parse_sizes(args.solver_sizes)
    elif args.quick:
        sizes = parse_sizes(QUICK_SOLVER_SIZES)
    else:
        sizes = list(getattr(solve_bench, "DEFAULT_SIZES", parse_sizes("10000x100")))
    repeats = getattr(args, "solver_repeats", 1)
    rows = solve_bench.solver_benchmark(sizes, seed=args.seed, repeats=repeats)
    formatter = getattr(solve_bench, "format_benchmark", None)
    text = formatter(rows) if formatter is not None else "\n".join(map(str, rows))
    return {"sizes": [list(s) for s in sizes], "repeats": repeats, "rows": rows}, text


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by ``args``; 0 on success, 2 on a bad option."""
    try:
        sizes = parse_sizes(args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES))
        cases = _choices(args.cases, CASES, "--cases")
        peers = _choices(args.peers, list(PEERS), "--peers")
        repeats = args.repeats
        if repeats is None:
            repeats = QUICK_REPEATS if args.quick else DEFAULT_REPEATS
        if repeats < 1:
            raise ValueError(f"--repeats must be >= 1; got {repeats}")
        if getattr(args, "solver_repeats", 1) < 1:
            raise ValueError(f"--solver-repeats must be >= 1; got {args.solver_repeats}")
        if not cases:
            raise ValueError("--cases must name at least one case")
        try:
            model = load_model(args.spec)
        except ValueError as exc:
            raise ValueError(f"--spec {args.spec}: {exc}") from None
        scalars, notes = resolve_scalars(model, parse_params(args.param), tradeoff=BENCH_TRADEOFF)
    except ValueError as exc:
        print(f"creality bench: {exc}", file=sys.stderr)
        return 2
    budget = min(args.budget, 5.0) if args.quick else args.budget
    env = environment()
    shown = ", ".join(f"{k}={v:g}" for k, v in scalars.items())
    print(
        f"creality bench: spec {model.SPEC_NAME}{' (' + shown + ')' if shown else ''}, "
        f"numpy {env['numpy']} ({env['blas']}), {env['cpus']} CPUs, {repeats} repeats, float64"
    )
    print(
        f"process: OPENBLAS_THREAD_TIMEOUT={env['openblas_thread_timeout'] or 'unset'}, "
        f"{env['allocator']}"
    )
    for note in notes:
        print(f"note: {note}")
    print(LEGEND)
    results = []
    for n, d in sizes:
        for i, case in enumerate(cases):
            inst = bench_instance(n, d, case=case, seed=args.seed, model=model, scalars=scalars)
            result = bench_one(
                inst, repeats=repeats, case=case, peers=peers if i == 0 else (), budget=budget
            )
            results.append(result)
            print()
            print(format_result(result), flush=True)
    print()
    print(summary(results))
    document: dict[str, Any] = {
        "environment": env,
        "settings": {
            "spec": model.SPEC_NAME,
            "scalars": scalars,
            "repeats": repeats,
            "budget_s": budget,
            "seed": args.seed,
            "cases": cases,
            "peers": peers,
            "sizes": [list(s) for s in sizes],
        },
        "results": results,
    }
    if args.solver:
        print()
        document["solver"], text = _solver(args)
        print(text)
    if args.json:
        write_json(args.json, document)
        print(f"\nwrote {args.json}")
    return 0
