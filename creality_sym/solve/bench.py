"""Time to ``||grad L|| <= tol``: Newton (exact, sketch-PCG, the paper's) against scipy.

Every solver gets the same random instance (:func:`creality_sym.solve.random_instance`,
started at ``x0 ~ x0_scale * N(0, I)``, by default ``x0_scale = 1 / sqrt(d)``)
and the same tolerance. The Newton rows run :func:`creality_sym.solve.newton`
(``newton-exact``, ``newton-sampled`` = its default sampled variant,
``newton-paper``); the scipy rows get the generated functions of the model
(``loss``, ``gradient``, ``hessian``, ``hvp``, all with ``validate=False``)
or, with a ``[jax]`` suffix, ``jax.jit`` derivatives of the same loss
(:mod:`creality_sym.solve.jax_derivatives`; compile time reported apart, not
in ``seconds``; rows say ``skipped`` when JAX is not installed). scipy's
stopping rules aim at the tolerance (``trust-exact``: ``gtol = tol``;
``L-BFGS-B``: ``gtol = tol / sqrt(d)`` on the max-norm, ``ftol = 0``;
``Newton-CG``: ``xtol = 1e-14``); whether a solver met it is judged afterwards
by ``||model.gradient(x)||_2 <= tol`` at the point it returned. With
``repeats > 1`` every solver runs that many times in one process (solvers
interleaved) and ``seconds`` is the median.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import scipy.optimize

from .instance import DEFAULT_CONDITION, random_instance
from .jax_derivatives import jax_derivatives
from .newton import newton
from .oracle import parameter_names
from .result import PHASES

NEWTON = {"newton-exact": ("exact", None), "newton-sampled": ("sampled", None)}
NEWTON["newton-paper"] = ("sampled", "paper")
SCIPY = ("trust-exact", "Newton-CG", "L-BFGS-B")
SOLVERS = (*NEWTON, *SCIPY, *(f"{m}[jax]" for m in SCIPY))
#: default (n, d) list: n = 1e4 ... 1e6, d = 100 ... 400 (many minutes on a small CPU)
DEFAULT_SIZES: tuple[tuple[int, int], ...] = (
    (10_000, 100),
    (100_000, 100),
    (200_000, 400),
    (1_000_000, 100),
)


def _scipy_run(
    method: str,
    functions: dict[str, Callable[..., Any]],
    x0: np.ndarray,
    *,
    tol: float,
    time_limit: float,
) -> tuple[np.ndarray, int, str]:
    """One ``scipy.optimize.minimize`` run; returns ``(x, iterations, message)``."""
    d = x0.shape[0]
    start = time.perf_counter()

    def stop_at_time_limit(intermediate_result: Any) -> None:
        if time.perf_counter() - start > time_limit:
            raise StopIteration

    kwargs: dict[str, Any] = {"jac": functions["jac"], "callback": stop_at_time_limit}
    if method == "trust-exact":
        kwargs["hess"] = functions["hess"]
        kwargs["options"] = {"gtol": tol, "maxiter": 1000}
    elif method == "Newton-CG":
        kwargs["hessp"] = functions["hessp"]
        kwargs["options"] = {"xtol": 1e-14, "maxiter": 1000}
    elif method == "L-BFGS-B":
        kwargs["options"] = {"gtol": tol / math.sqrt(d), "ftol": 0.0, "maxiter": 100_000}
    else:
        raise ValueError(f"unknown scipy method {method!r}")
    res = scipy.optimize.minimize(functions["fun"], x0, method=method, **kwargs)
    return np.asarray(res.x, dtype=float), int(res.nit), str(res.message)


def _generated_functions(model: Any, data: dict[str, Any]) -> dict[str, Callable[..., Any]]:
    A = data["A"]
    params = {k: v for k, v in data.items() if k != "A"}
    return {
        "fun": lambda x: float(model.loss(x, A, **params, validate=False)),
        "jac": lambda x: np.asarray(model.gradient(x, A, **params, validate=False)),
        "hess": lambda x: np.asarray(model.hessian(x, A, **params, validate=False)),
        "hessp": lambda x, v: np.asarray(model.hvp(x, v, A, **params, validate=False)),
    }


def _one_run(
    solver: str,
    model: Any,
    inst: Any,
    data: dict[str, Any],
    jax_fns: Any,
    *,
    tol: float,
    seed: int,
    time_limit: float,
) -> dict[str, Any]:
    """Run ``solver`` once; the row's timing-independent fields and ``seconds``."""
    start = time.perf_counter()
    if solver in NEWTON:
        method, variant = NEWTON[solver]
        result = newton(model, inst.x0, method=method, variant=variant, tol=tol, seed=seed, **data)
        seconds = time.perf_counter() - start
        used = [h.rows for h in result.history[:-1] if h.rows]
        return {
            "x": result.x,
            "seconds": seconds,
            "iterations": result.iterations,
            "message": result.reason,
            "variant": result.variant,
            "products": result.products,
            "rows": int(np.median(used)) if used else 0,
            "phases": result.phases,
        }
    name, _, source = solver.partition("[")
    functions = _generated_functions(model, data) if not source else jax_fns.__dict__
    x, iterations, message = _scipy_run(name, functions, inst.x0, tol=tol, time_limit=time_limit)
    return {
        "x": x,
        "seconds": time.perf_counter() - start,
        "iterations": iterations,
        "message": message,
        "variant": "scipy + JAX jit" if source else "scipy + generated",
        "products": 0,
        "rows": 0,
    }


def solver_benchmark(
    sizes: Iterable[tuple[int, int]] = DEFAULT_SIZES,
    *,
    seed: int,
    spec: str = "creativity_reality",
    gamma: float = 0.5,
    condition: float = DEFAULT_CONDITION,
    tol: float = 1e-10,
    solvers: Sequence[str] = SOLVERS,
    time_limit: float = 120.0,
    repeats: int = 1,
    x0_scale: float | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every solver in ``solvers`` on a random instance of each ``(n, d)`` in ``sizes``.

    Returns one dict per (size, solver): ``n, d, solver, variant`` (the Newton
    variant that ran, or the derivative source of a scipy row), ``seconds``
    (median wall time of the whole call over ``repeats``), ``seconds_all``,
    ``iterations``, ``products`` (Hessian-vector products of a Newton solve),
    ``rows`` (median rows of ``A`` per Hessian or preconditioner),
    ``grad_norm`` (``||model.gradient(x)||_2`` at the returned ``x``),
    ``met_tol``, ``loss``, ``gap`` (``||x - x_exact||``, NaN without the exact
    Newton row), ``message`` and, for JAX rows, ``compile_seconds`` (``skipped``
    rows have NaN times and say why in ``message``). The instance is
    ``random_instance(n, d, gamma=gamma, seed=seed, condition=condition,
    x0_scale=x0_scale)`` with ``x0_scale = 1 / sqrt(d)`` by default. scipy runs
    are stopped after ``time_limit`` seconds. ``progress`` is called with each
    row.
    """
    unknown = [s for s in solvers if s not in SOLVERS]
    if unknown:
        raise ValueError(f"unknown solver(s) {unknown}; choose from {SOLVERS}")
    if int(repeats) != repeats or repeats < 1:
        raise ValueError(f"repeats must be a positive integer; got {repeats!r}")
    model = importlib.import_module(f"creality_generated.{spec}")
    rows: list[dict[str, Any]] = []
    for n, d in sizes:
        scale = 1.0 / math.sqrt(d) if x0_scale is None else float(x0_scale)
        inst = random_instance(
            int(n), int(d), gamma=gamma, seed=seed, condition=condition, x0_scale=scale
        )
        data = inst.data(parameter_names(model))
        params = {k: v for k, v in data.items() if k != "A"}
        jax_fns, jax_note = (None, "")
        if any(s.endswith("[jax]") for s in solvers):
            jax_fns, jax_note = jax_derivatives(model, data, inst.x0)
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in solvers}
        for _ in range(int(repeats)):
            for solver in solvers:
                if solver.endswith("[jax]") and jax_fns is None:
                    continue
                runs[solver].append(
                    _one_run(
                        solver,
                        model,
                        inst,
                        data,
                        jax_fns,
                        tol=tol,
                        seed=seed,
                        time_limit=time_limit,
                    )
                )
        x_ref = runs["newton-exact"][-1]["x"] if runs.get("newton-exact") else None
        for solver in solvers:
            row = _row(int(n), int(d), solver, runs[solver], model, inst.A, params, x_ref, tol)
            if solver.endswith("[jax]"):
                row["compile_seconds"] = jax_fns.compile_seconds if jax_fns else math.nan
                if jax_fns is None:
                    row["message"] = f"skipped: {jax_note}"
                else:
                    row["message"] += f" ({jax_note})"
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


def _row(
    n: int,
    d: int,
    solver: str,
    runs: list[dict[str, Any]],
    model: Any,
    A: np.ndarray,
    params: dict[str, Any],
    x_ref: np.ndarray | None,
    tol: float,
) -> dict[str, Any]:
    """The row of one solver from its runs (timings pooled, the last run's point)."""
    if not runs:
        nan = math.nan
        return {
            "n": n,
            "d": d,
            "solver": solver,
            "variant": "-",
            "seconds": nan,
            "seconds_all": [],
            "iterations": 0,
            "products": 0,
            "rows": 0,
            "grad_norm": nan,
            "met_tol": False,
            "loss": nan,
            "gap": nan,
            "message": "",
            "phases": {},
        }
    last = runs[-1]
    x = last["x"]
    grad_norm = float(np.linalg.norm(model.gradient(x, A, **params)))
    times = [r["seconds"] for r in runs]
    return {
        "n": n,
        "d": d,
        "solver": solver,
        "variant": last["variant"],
        "seconds": float(np.median(times)),
        "seconds_all": times,
        "iterations": last["iterations"],
        "products": last["products"],
        "rows": last["rows"],
        "grad_norm": grad_norm,
        "met_tol": bool(grad_norm <= tol),
        "loss": float(model.loss(x, A, **params)),
        "gap": float(np.linalg.norm(x - x_ref)) if x_ref is not None else math.nan,
        "message": last["message"],
        "phases": {
            name: float(np.median([r["phases"][name] for r in runs]))
            for name in last.get("phases", {})
        },
    }


def format_benchmark(rows: Sequence[dict[str, Any]], *, tol: float = 1e-10) -> str:
    """The rows of :func:`solver_benchmark` as a text table.

    ``x exact`` is the speed-up over ``newton-exact``, ``x trust`` over scipy
    ``trust-exact`` with JAX derivatives (with the generated ones where JAX is absent).
    A second table says where the Newton rows' time went (medians over the
    repeats, seconds): the start (data checks, the start's logits and
    pieces), the gradients (the paper's variant builds its sampled Hessian in
    the same pass), the steps (Hessian or preconditioner and the linear
    solve), the line searches, and the rest of the measured time.
    """
    head = (
        f"{'n':>8} {'d':>4}  {'solver':<18} {'variant':<18} {'seconds':>8} {'x exact':>7} "
        f"{'x trust':>7} {'iters':>5} {'hvp':>4} {'rows':>7} {'||grad||':>9} "
        f"{'met ' + format(tol, 'g'):>9} {'|x - x_exact|':>13}"
    )
    lines = [head, "-" * len(head)]
    by = {(r["n"], r["d"], r["solver"]): r["seconds"] for r in rows}
    for r in rows:
        key = (r["n"], r["d"])
        exact = by.get((*key, "newton-exact"), math.nan)
        trust = by.get((*key, "trust-exact[jax]"), math.nan)
        if not math.isfinite(trust):
            trust = by.get((*key, "trust-exact"), math.nan)
        seconds = r["seconds"]
        if not math.isfinite(seconds):
            lines.append(f"{r['n']:>8} {r['d']:>4}  {r['solver']:<18} {r['message'][:60]}")
            continue

        def ratio(ref: float, seconds: float = seconds) -> str:
            return f"{ref / seconds:.2f}" if math.isfinite(ref) and seconds > 0 else "-"

        lines.append(
            f"{r['n']:>8} {r['d']:>4}  {r['solver']:<18} {r['variant']:<18} {seconds:>8.3f} "
            f"{ratio(exact):>7} {ratio(trust):>7} {r['iterations']:>5} {r['products']:>4} "
            f"{r['rows']:>7} {r['grad_norm']:>9.2e} {'yes' if r['met_tol'] else 'NO':>9} "
            f"{r['gap']:>13.2e}"
        )
    phased = [r for r in rows if r.get("phases") and math.isfinite(r["seconds"])]
    if phased:
        head = (
            f"{'n':>8} {'d':>4}  {'solver':<18} {'start':>7} {'gradient':>8} {'step':>7} "
            f"{'search':>7} {'other':>7} {'hvp':>4}"
        )
        lines += ["", "where the Newton rows' time went (seconds)", head, "-" * len(head)]
        for r in phased:
            parts = [r["phases"][name] for name in PHASES]
            other = r["seconds"] - sum(parts)
            lines.append(
                f"{r['n']:>8} {r['d']:>4}  {r['solver']:<18} "
                + " ".join(
                    f"{v:>{w}.3f}" for v, w in zip([*parts, other], (7, 8, 7, 7, 7), strict=True)
                )
                + f" {r['products']:>4}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m creality_sym.solve.bench [--sizes 10000x100,...] [--repeats 3] [--json F]``."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Newton vs scipy: time to ||grad L|| <= tol")
    parser.add_argument("--sizes", default=",".join(f"{n}x{d}" for n, d in DEFAULT_SIZES))
    parser.add_argument("--solvers", default=",".join(SOLVERS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--time-limit", type=float, default=120.0)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in item.split("x")) for item in args.sizes.split(",")]
    rows = solver_benchmark(
        sizes,  # type: ignore[arg-type]
        seed=args.seed,
        solvers=[s.strip() for s in args.solvers.split(",") if s.strip()],
        repeats=args.repeats,
        time_limit=args.time_limit,
        progress=lambda r: print(
            f"  {r['n']}x{r['d']} {r['solver']}: {r['seconds']:.3f} s", flush=True
        ),
    )
    print(format_benchmark(rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
