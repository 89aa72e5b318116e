"""``creality solve``: Newton on a random or saved instance, with a per-iteration table.

Examples::

    creality solve --n 200000 --d 100 --gamma 0.5 --method both --out run.npz
    creality solve --data instance.npz --spec temperature --param tau=0.7
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .instance import DEFAULT_CONDITION, DEFAULT_W_SCALE, Instance, load_instance, random_instance
from .newton import NewtonResult, newton
from .oracle import parameter_names
from .sampling import SAMPLE_CONSTANT


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``solve`` options to ``parser``."""
    src = parser.add_argument_group("instance")
    src.add_argument(
        "--data",
        type=Path,
        help="load A, b, w (gamma, x0 optional) from an .npz or a Zarr store (.zarr)",
    )
    src.add_argument("--n", type=int, default=10_000, help="rows of the random A (default 10000)")
    src.add_argument("--d", type=int, default=100, help="columns of the random A (default 100)")
    src.add_argument("--gamma", type=float, default=None, help="creativity weight (default 0.5)")
    src.add_argument("--seed", type=int, default=0, help="seed of the instance and of sampling")
    src.add_argument(
        "--w-scale", type=float, default=DEFAULT_W_SCALE, help="w ~ w_scale / sqrt(n) (default 0.3)"
    )
    src.add_argument("--x0-scale", type=float, default=1.0, help="start x0 ~ scale * N(0, I)")
    src.add_argument(
        "--condition",
        type=float,
        default=DEFAULT_CONDITION,
        help="spread of the column scales of A, about kappa(A) (default 100)",
    )
    src.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra scalar parameter of the spec, e.g. tau=0.7 (repeatable)",
    )
    opt = parser.add_argument_group("solver")
    opt.add_argument("--spec", default="creativity_reality", help="generated module name")
    opt.add_argument("--method", choices=("exact", "sampled", "both"), default="both")
    opt.add_argument(
        "--variant",
        choices=("sketch-pcg", "paper"),
        default=None,
        help="sampled variant: sketch-preconditioned CG (default) or the paper's sampled Newton",
    )
    opt.add_argument("--tol", type=float, default=1e-10, help="stop at ||grad L|| <= tol")
    opt.add_argument("--max-iter", type=int, default=100)
    opt.add_argument("--epsilon", type=float, default=0.3, help="sampling accuracy (paper)")
    opt.add_argument("--delta", type=float, default=0.1, help="sampling failure prob. (paper)")
    opt.add_argument("--sample-constant", type=float, default=SAMPLE_CONSTANT)
    parser.add_argument("--out", type=Path, help="save x and history to OUT.npz and OUT.json")
    parser.add_argument("--quiet", action="store_true", help="print the summary only")
    from creality_sym.distributed.command import add_solve_options

    add_solve_options(parser)  # --scheduler, --write-zarr, --chunk-rows (creality_sym.distributed)


def load_model(spec: str) -> ModuleType:
    """Import ``creality_generated.<spec>``; ``ValueError`` naming the spec if it is missing."""
    try:
        return importlib.import_module(f"creality_generated.{spec}")
    except ModuleNotFoundError as exc:
        raise ValueError(f"--spec {spec!r}: no generated module ({exc})") from None


def _extra_params(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--param must be NAME=NUMBER; got {item!r}") from None
    return out


def build_instance(args: argparse.Namespace) -> Instance:
    """The instance named by the command-line options."""
    if args.data is not None:
        try:
            inst = load_instance(args.data)
        except ValueError as exc:
            raise ValueError(f"--data {exc}") from None
        if args.gamma is not None:
            inst.gamma = float(args.gamma)
    else:
        gamma = 0.5 if args.gamma is None else args.gamma
        inst = random_instance(
            args.n,
            args.d,
            gamma=gamma,
            seed=args.seed,
            w_scale=args.w_scale,
            x0_scale=args.x0_scale,
            condition=args.condition,
        )
    inst.extra.update(_extra_params(args.param))
    return inst


def format_history(result: NewtonResult) -> str:
    """The per-iteration table of ``result`` as text."""
    lines = [
        f"{'k':>3}  {'loss':>22}  {'||grad||':>9}  {'t':>7}  {'||dx||':>9}  "
        f"{'ms':>8}  {'mu':>8}  {'rows':>8}  {'hvp':>4}  {'err':>5}  note"
    ]
    for row in result.history:
        error = f"{row.error:>5.2f}" if np.isfinite(row.error) else f"{'-':>5}"
        lines.append(
            f"{row.iteration:>3}  {row.loss:>22.15e}  {row.grad_norm:>9.2e}  {row.step:>7.3g}  "
            f"{row.step_norm:>9.2e}  {1e3 * row.seconds:>8.1f}  {row.damping:>8.1e}  "
            f"{row.rows:>8d}  {row.products:>4d}  {error}  {row.note}"
        )
    return "\n".join(lines)


def _median_iteration_seconds(result: NewtonResult) -> float:
    """Median wall time of the iterations that took a step (0 if none)."""
    steps = [row.seconds for row in result.history[:-1]]
    return float(np.median(steps)) if steps else 0.0


def summary(result: NewtonResult) -> str:
    """One line: method, status, iterations, final gradient norm and time."""
    products = f", {result.products} Hessian-vector products" if result.products else ""
    label = (
        result.method if result.variant == result.method else f"{result.method} ({result.variant})"
    )
    return (
        f"{label}: "
        f"{'converged' if result.converged else 'NOT converged'} after "
        f"{result.iterations} iterations, ||grad L|| = {result.grad_norm:.3e} (model.gradient), "
        f"loss = {result.loss:.15e}, {result.seconds:.3f} s over the iterations "
        f"({1e3 * _median_iteration_seconds(result):.1f} ms/iteration median; {_phases(result)})"
        f"{products} -- {result.reason}"
    )


def _phases(result: NewtonResult) -> str:
    """Where the time went: ``gradient 0.021 s, step 0.160 s, line search 0.030 s, start ...``."""
    parts = {k: v for k, v in result.phases.items() if k != "start"}
    text = ", ".join(f"{name} {seconds:.3f} s" for name, seconds in parts.items())
    return f"{text}; {result.start_seconds:.3f} s before them"


def save(path: Path, results: dict[str, NewtonResult], meta: dict[str, Any]) -> Path:
    """Write ``path`` (.npz: x and history columns per method) and its .json twin."""
    arrays: dict[str, np.ndarray] = {}
    for method, result in results.items():
        arrays[f"{method}_x"] = result.x
        for name, column in result.history_table().items():
            arrays[f"{method}_{name}"] = column
    npz = path if path.suffix == ".npz" else path.with_suffix(".npz")
    np.savez(npz, **arrays)
    payload = {"instance": meta, "results": {m: r.to_dict() for m, r in results.items()}}
    json_path = npz.with_suffix(".json")
    json_path.write_text(json.dumps(payload, indent=1) + "\n")
    return json_path


def run(args: argparse.Namespace) -> int:
    """Solve, print, save; 0 when every requested method converged, 1 otherwise, 2 on bad input."""
    from creality_sym.distributed.command import run_solve, wants_cluster

    if wants_cluster(args):  # --scheduler, --write-zarr or a Zarr store as --data
        return run_solve(args)
    try:
        model = load_model(args.spec)
        inst = build_instance(args)
    except (ValueError, OSError) as exc:
        print(f"creality solve: {exc}", file=sys.stderr)
        return 2
    n, d = inst.shape
    names = parameter_names(model)
    unknown = sorted(set(inst.extra) - set(names))
    if unknown:
        print(
            f"creality solve: --param {unknown}: not parameters of {model.SPEC_NAME} "
            f"(PARAMETERS = {list(names)})",
            file=sys.stderr,
        )
        return 2
    data = inst.data(names)
    methods = ("exact", "sampled") if args.method == "both" else (args.method,)
    params = {k: v for k, v in data.items() if np.ndim(v) == 0}
    print(f"spec {model.SPEC_NAME}: n = {n}, d = {d}, {params}")
    results: dict[str, NewtonResult] = {}
    source = f"--data {args.data}: " if args.data is not None else ""
    for method in methods:
        try:
            result = newton(
                model,
                inst.x0,
                method=method,
                variant=args.variant if method == "sampled" else None,
                tol=args.tol,
                max_iter=args.max_iter,
                seed=args.seed,
                epsilon=args.epsilon,
                delta=args.delta,
                sample_constant=args.sample_constant,
                **data,
            )
        except ValueError as exc:
            print(f"creality solve: {source}{exc}", file=sys.stderr)
            return 2
        results[method] = result
        if not args.quiet:
            print(f"\n== {method} Newton ({result.variant}) ==")
            print(format_history(result))
        print(summary(result))
    if len(results) == 2:
        gap = float(np.linalg.norm(results["exact"].x - results["sampled"].x))
        print(f"||x_exact - x_sampled|| = {gap:.3e}")
        per = {m: _median_iteration_seconds(r) for m, r in results.items()}
        if per["exact"] > 0:
            print(
                f"time per iteration (median): exact {1e3 * per['exact']:.1f} ms, "
                f"sampled {1e3 * per['sampled']:.1f} ms, ratio {per['sampled'] / per['exact']:.2f}"
            )
    if args.out is not None:
        meta = {"spec": model.SPEC_NAME, "n": n, "d": d, "seed": args.seed, **params}
        try:
            written = save(args.out, results, meta)
        except OSError as exc:
            print(f"creality solve: --out {args.out}: cannot write ({exc})", file=sys.stderr)
            return 2
        print(f"saved {written.with_suffix('.npz')} and {written}")
    return 0 if all(r.converged for r in results.values()) else 1
