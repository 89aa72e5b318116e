"""Time to ``||grad L|| <= tol``: exact and sampled Newton against scipy's minimizers.

Every solver gets the same generated functions of one model (``loss``,
``gradient``, ``hessian``, ``hvp``, all with ``validate=False``), the same
random instance (:func:`creality_sym.solve.random_instance`) and the same start.
scipy's stopping rules are set to aim at the tolerance (``trust-exact``:
``gtol = tol``; ``L-BFGS-B``: ``gtol = tol / sqrt(d)`` on the max-norm, ``ftol = 0``;
``Newton-CG``: ``xtol = 1e-14``); whether a solver met it is judged afterwards
by ``||model.gradient(x)||_2 <= tol`` at the point it returned.
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
from .newton import newton

SOLVERS = ("newton-exact", "newton-sampled", "trust-exact", "Newton-CG", "L-BFGS-B")
#: default (n, d) list: n = 1e4 ... 1e6, d = 100 ... 400 (several minutes on a small CPU)
DEFAULT_SIZES: tuple[tuple[int, int], ...] = (
    (10_000, 100),
    (100_000, 100),
    (100_000, 400),
    (1_000_000, 100),
)


def _scipy_run(
    method: str,
    model: Any,
    x0: np.ndarray,
    data: dict[str, Any],
    *,
    tol: float,
    time_limit: float,
) -> tuple[np.ndarray, int, str]:
    """One ``scipy.optimize.minimize`` run; returns ``(x, iterations, message)``."""
    A = data["A"]
    params = {k: v for k, v in data.items() if k != "A"}
    d = A.shape[1]

    def fun(x: np.ndarray) -> float:
        return model.loss(x, A, **params, validate=False)

    def jac(x: np.ndarray) -> np.ndarray:
        return model.gradient(x, A, **params, validate=False)

    start = time.perf_counter()

    def stop_at_time_limit(intermediate_result: Any) -> None:
        if time.perf_counter() - start > time_limit:
            raise StopIteration

    kwargs: dict[str, Any] = {"jac": jac, "callback": stop_at_time_limit}
    if method == "trust-exact":
        kwargs["hess"] = lambda x: model.hessian(x, A, **params, validate=False)
        kwargs["options"] = {"gtol": tol, "maxiter": 1000}
    elif method == "Newton-CG":
        kwargs["hessp"] = lambda x, v: model.hvp(x, v, A, **params, validate=False)
        kwargs["options"] = {"xtol": 1e-14, "maxiter": 1000}
    elif method == "L-BFGS-B":
        kwargs["options"] = {"gtol": tol / math.sqrt(d), "ftol": 0.0, "maxiter": 100_000}
    else:
        raise ValueError(f"unknown scipy method {method!r}")
    res = scipy.optimize.minimize(fun, x0, method=method, **kwargs)
    return np.asarray(res.x, dtype=float), int(res.nit), str(res.message)


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
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every solver in ``solvers`` on a random instance of each ``(n, d)`` in ``sizes``.

    Returns one dict per (size, solver): ``n, d, solver, seconds`` (wall time of
    the whole call), ``iterations``, ``grad_norm`` (``||model.gradient(x)||_2`` at
    the returned ``x``), ``met_tol``, ``loss``, ``gap`` (``||x - x_exact||``,
    NaN without the exact Newton row) and ``message``. The instance is
    ``random_instance(n, d, gamma=gamma, seed=seed, condition=condition)``,
    started at its ``x0``. scipy runs are stopped after ``time_limit`` seconds.
    ``progress`` is called with each row.
    """
    unknown = [s for s in solvers if s not in SOLVERS]
    if unknown:
        raise ValueError(f"unknown solver(s) {unknown}; choose from {SOLVERS}")
    model = importlib.import_module(f"creality_generated.{spec}")
    rows: list[dict[str, Any]] = []
    for n, d in sizes:
        inst = random_instance(int(n), int(d), gamma=gamma, seed=seed, condition=condition)
        data = inst.data(tuple(model.PARAMETERS))
        params = {k: v for k, v in data.items() if k != "A"}
        x_ref: np.ndarray | None = None
        for solver in solvers:
            start = time.perf_counter()
            if solver.startswith("newton-"):
                result = newton(model, inst.x0, method=solver[7:], tol=tol, seed=seed, **data)
                seconds = time.perf_counter() - start
                x, iterations, message = result.x, result.iterations, result.reason
            else:
                x, iterations, message = _scipy_run(
                    solver, model, inst.x0, data, tol=tol, time_limit=time_limit
                )
                seconds = time.perf_counter() - start
            grad_norm = float(np.linalg.norm(model.gradient(x, inst.A, **params)))
            if solver == "newton-exact":
                x_ref = x
            row = {
                "n": int(n),
                "d": int(d),
                "solver": solver,
                "seconds": seconds,
                "iterations": iterations,
                "grad_norm": grad_norm,
                "met_tol": bool(grad_norm <= tol),
                "loss": float(model.loss(x, inst.A, **params)),
                "gap": float(np.linalg.norm(x - x_ref)) if x_ref is not None else math.nan,
                "message": message,
            }
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


def format_benchmark(rows: Sequence[dict[str, Any]], *, tol: float = 1e-10) -> str:
    """The rows of :func:`solver_benchmark` as a text table, with speed-ups vs trust-exact."""
    head = (
        f"{'n':>8} {'d':>4}  {'solver':<15} {'seconds':>9} {'x trust':>8} {'iters':>6} "
        f"{'||grad||':>9}  {'met ' + format(tol, 'g'):>9}  {'|x - x_exact|':>13}"
    )
    lines = [head, "-" * len(head)]
    reference = {(r["n"], r["d"]): r["seconds"] for r in rows if r["solver"] == "trust-exact"}
    for r in rows:
        ref = reference.get((r["n"], r["d"]))
        speedup = f"{ref / r['seconds']:.2f}" if ref and r["seconds"] > 0 else "-"
        lines.append(
            f"{r['n']:>8} {r['d']:>4}  {r['solver']:<15} {r['seconds']:>9.3f} {speedup:>8} "
            f"{r['iterations']:>6} {r['grad_norm']:>9.2e}  {'yes' if r['met_tol'] else 'NO':>9}  "
            f"{r['gap']:>13.2e}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m creality_sym.solve.bench [--sizes 10000x100,100000x100] [--json FILE]``."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Newton vs scipy: time to ||grad L|| <= tol")
    parser.add_argument("--sizes", default=",".join(f"{n}x{d}" for n, d in DEFAULT_SIZES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=120.0)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in item.split("x")) for item in args.sizes.split(",")]
    rows = solver_benchmark(
        sizes,  # type: ignore[arg-type]
        seed=args.seed,
        time_limit=args.time_limit,
        progress=lambda r: print(f"  {r['n']}x{r['d']} {r['solver']}: {r['seconds']:.3f} s"),
    )
    print(format_benchmark(rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
