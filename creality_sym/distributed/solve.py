"""Newton's method with ``A`` on a Dask cluster: the in-memory loop, cluster passes over ``A``.

:func:`newton` takes the arguments of :func:`creality_sym.solve.newton`
plus a ``client``, and runs the same loop
(:func:`creality_sym.solve.newton._iterate`: the same line search, stopping
rules and history) on :class:`~creality_sym.distributed.oracle.ClusterOracle`:
``A`` and the ``(n,)`` parameters stay on the workers in row chunks, and the
client holds ``x``, ``d``-vectors and ``d x d`` matrices only. The exact
variant gives the in-memory iterates up to rounding (sums are taken per
chunk); the sampled variants draw their samples per chunk (see
:mod:`creality_sym.distributed.steps`) and reach the same solution.

The data are checked as the in-memory solver checks them, from per-chunk
statistics (finite, magnitudes that keep float64 products finite, the
model's rules on every parameter), with the same one-line messages naming
the argument.
"""

from __future__ import annotations

import math
import time
from types import ModuleType
from typing import Any

import numpy as np

from creality_sym.solve import sampling
from creality_sym.solve.inputs import _MAX, option, real_array, real_scalar
from creality_sym.solve.newton import _iterate, _rng, _variant
from creality_sym.solve.oracle import check_data_names
from creality_sym.solve.result import NewtonResult

from .oracle import ClusterOracle
from .rows import RowMatrix, RowVector
from .steps import ClusterExactSteps, ClusterPaperSteps, ClusterSketchPCGSteps

__all__ = ["cluster_data", "newton"]

#: probability vectors may miss a sum of 1 by this much (the generated runtime's tolerance)
PROBABILITY_TOLERANCE = 1e-9


def _stats(*blocks: np.ndarray) -> np.ndarray:
    """``[non-finite count, min, max, sum, max |finite|]`` of one chunk (of the first block)."""
    a = blocks[0]
    finite = np.isfinite(a)
    bad = int(a.size - np.count_nonzero(finite))
    if bad:
        a = a[finite]
    if a.size == 0:
        return np.array([bad, np.inf, -np.inf, 0.0, 0.0])
    low, high = float(np.min(a)), float(np.max(a))
    return np.array([bad, low, high, float(np.sum(a)), max(abs(low), abs(high))])


def _combine(parts: list[np.ndarray]) -> dict[str, float]:
    P = np.array(parts)
    return {
        "bad": int(P[:, 0].sum()),
        "min": float(P[:, 1].min()),
        "max": float(P[:, 2].max()),
        "sum": math.fsum(P[:, 3]),
        "abs": float(P[:, 4].max()),
    }


def _vector_stats(v: RowVector) -> dict[str, float]:
    return _combine(v.rows.client.gather(v.rows.map(_stats, [v], with_matrix=False)))


def _matrix_stats(A: RowMatrix) -> dict[str, float]:
    return _combine(A.client.gather(A.map(_stats)))


def _check_rule(name: str, s: dict[str, float], rule: str, n: int) -> None:
    """The runtime's ``check_vector_rule`` messages, from statistics."""
    if s["bad"]:
        plural = "y" if s["bad"] == 1 else "ies"
        raise ValueError(f"{name} must be finite; got {s['bad']} non-finite entr{plural}")
    if rule == "probability":
        if s["min"] < 0:
            raise ValueError(
                f"{name} must be a probability vector (entries >= 0); got min {s['min']!r}"
            )
        tolerance = PROBABILITY_TOLERANCE + n * 2.0**-52
        if abs(s["sum"] - 1.0) > tolerance:
            raise ValueError(
                f"{name} must be a probability vector (sum 1.0 ± {tolerance:g}); "
                f"got sum {s['sum']!r}"
            )
    elif rule == "positive" and s["min"] <= 0:
        raise ValueError(f"{name} must be > 0 entrywise; got min {s['min']!r}")
    elif rule == "nonnegative" and s["min"] < 0:
        raise ValueError(f"{name} must be >= 0 entrywise; got min {s['min']!r}")


def cluster_data(
    model: ModuleType, client: Any, data: dict[str, Any], x0: Any
) -> tuple[RowMatrix, dict[str, Any], np.ndarray]:
    """``(A, params, x0)`` on the cluster, checked as the in-memory solver checks them.

    ``data`` holds ``A`` (a :class:`RowMatrix`, numpy or dask array) and the
    model's ``PARAMETERS`` by name: ``(n,)`` vectors (:class:`RowVector`,
    numpy or dask), ``(d,)`` vectors and scalars.

    Raises
    ------
    ValueError
        Naming the argument: unknown or missing names, complex or non-numeric
        data, wrong shapes, non-finite entries, values the model's rules
        refuse, or magnitudes that would overflow float64.
    """
    info = check_data_names(model, data)
    A = data["A"]
    if not isinstance(A, RowMatrix):
        A = RowMatrix.from_array(client, A)
    n, d = A.shape
    x = np.array(real_array("x0", x0, ndim=1))
    if x.shape != (d,):
        raise ValueError(f"x0 must have shape (d,) = ({d},); got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x0 must be finite")
    limit = 1e-8 * _MAX
    a = _matrix_stats(A)
    if a["bad"]:
        raise ValueError(f"A must be finite; got {a['bad']} non-finite entries")
    if a["abs"] * a["abs"] * n > limit:
        raise ValueError(
            f"A has entries up to {a['abs']:.3g}: the Hessian A^T B A (sums of n = {n} products "
            "of two rows) would overflow float64; rescale A"
        )
    x_max = float(np.max(np.abs(x), initial=0.0))
    if a["abs"] * x_max * d > math.sqrt(limit):
        raise ValueError(
            f"x0 has entries up to {x_max:.3g}: the logits A @ x0 (max |A| = {a['abs']:.3g}, "
            f"d = {d}) would be too large for float64 squares; start closer to 0"
        )
    rules = {name: rule[1] for name, rule in getattr(model, "RULES", {}).items()}
    params: dict[str, Any] = {}
    for p in info:
        if p.name not in data:
            continue
        value = data[p.name]
        rule = rules.get(p.name, "real")
        if p.kind == "scalar":
            params[p.name] = real_scalar(p.name, value)
            _check_scalar(p.name, rule, params[p.name])
            size = abs(params[p.name])
        elif p.shape == "n":
            params[p.name] = vector = A.vector(value, p.name)
            s = _vector_stats(vector)
            _check_rule(p.name, s, rule, n)
            size = s["abs"]
        else:
            params[p.name] = arr = np.array(real_array(p.name, value, ndim=1))
            if arr.shape != (d,):
                raise ValueError(f"{p.name} must have shape ({d},); got {arr.shape}")
            s = _combine([_stats(arr)])
            _check_rule(p.name, s, rule, d)
            size = s["abs"]
        if size * size * max(n, d) > limit:
            raise ValueError(
                f"{p.name} has magnitude up to {size:.3g}: its squares in the loss and Hessian "
                "would overflow float64; rescale it"
            )
    return A, params, x


def _check_scalar(name: str, rule: str, value: float) -> None:
    """The runtime's ``check_scalar`` rules: finite, and ``> 0`` or ``>= 0`` by ``rule``."""
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}")
    if rule == "positive" and not value > 0:
        raise ValueError(f"{name} must be > 0; got {value!r}")
    if rule == "nonnegative" and not value >= 0:
        raise ValueError(f"{name} must be >= 0; got {value!r}")


def newton(
    model: ModuleType,
    x0: Any,
    /,
    *,
    client: Any,
    method: str = "exact",
    variant: str | None = None,
    tol: float = 1e-10,
    max_iter: int = 100,
    seed: int | None = None,
    epsilon: float = 0.3,
    delta: float = 0.1,
    sample_constant: float = sampling.SAMPLE_CONSTANT,
    **data: Any,
) -> NewtonResult:
    """Minimize ``model.loss`` by Newton's method from ``x0 (d,)``, ``A`` on a Dask cluster.

    Parameters
    ----------
    model : module
        A generated model (``creality_generated.<spec>``).
    x0 : (d,) array_like
    client : distributed.Client
        Where ``A`` and the ``(n,)`` data live and every pass over them runs.
    method, variant, tol, max_iter, seed, epsilon, delta, sample_constant
        As in :func:`creality_sym.solve.newton`.
    **data
        ``A (n, d)`` (a :class:`~creality_sym.distributed.rows.RowMatrix`,
        e.g. from :func:`creality_sym.distributed.store.load`, or a numpy or
        dask array) and the names in ``model.PARAMETERS``.

    Returns
    -------
    NewtonResult
        As the in-memory solver's; ``grad_norm`` is recomputed at ``x``.

    Raises
    ------
    ValueError
        Naming a bad argument (see :func:`cluster_data`).
    """
    begun = time.perf_counter()
    variant = _variant(method, variant)
    tol = option("tol", tol, rule="positive")
    max_iter = int(option("max_iter", max_iter, rule="nonnegative", integer=True))
    epsilon = option("epsilon", epsilon, rule="(0, 1)")
    delta = option("delta", delta, rule="(0, 1)")
    sample_constant = option("sample_constant", sample_constant, rule="positive")
    rng = _rng(seed)
    A, params, x = cluster_data(model, client, data, x0)
    with np.errstate(all="ignore"):
        oracle = ClusterOracle(model, A, params, x)
        n, d = A.shape
        s = sampling.sample_size(n, d, epsilon=epsilon, delta=delta, constant=sample_constant)
        if variant == "exact":
            steps: Any = ClusterExactSteps(oracle)  # type: ignore[arg-type]
        elif variant == "paper":
            steps = ClusterPaperSteps(oracle, rng, s)
        else:
            steps = ClusterSketchPCGSteps(oracle, rng)
        z = oracle.z0
        loss = oracle.loss(x, z, steps.pieces_order)  # the first gradient's pieces too
        if not math.isfinite(loss):
            raise ValueError(
                f"x0: the loss at x0 is not finite in float64 (loss = {loss!r}); "
                "start closer to 0 or rescale the data"
            )
        return _iterate(
            oracle,  # type: ignore[arg-type]
            steps,
            x,
            z,  # type: ignore[arg-type]
            loss,
            tol=tol,
            max_iter=max_iter,
            method=method,
            begun=begun,
        )
