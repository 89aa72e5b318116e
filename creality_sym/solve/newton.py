"""Newton's method on a generated model: exact, the paper's sampled Hessian, or sketch-PCG.

Each iteration computes the z-space pieces at the shared logits ``z = A x``
(``model.z_pieces``: O(n), no pass over ``A``), ``grad L = A^T g +
x_gradient``, a step (see :mod:`creality_sym.solve.steps`)
and a backtracking Armijo line search along it that moves the logits as
``z + t A dx`` (``A dx`` comes free from CG in the sketch-PCG variant).

Every stop has a ``status`` and a ``reason``: ``converged`` (``||grad L|| <=
tol``), ``max-iter``, ``stagnated`` (no decrease possible, or over
:data:`STALL_ITERATIONS` iterations neither a halving of the gradient nor a
resolvable decrease of the loss; the reason compares the gradient with its
measured float64 rounding noise), ``overflow`` (a step or the logits left the
float64 range) and ``non-finite`` (NaN). Floating-point warnings are never
raised or emitted by the loop: it checks finiteness itself. A Hessian that is
singular or indefinite is damped (:mod:`creality_sym.solve.linalg`), never an
exception.
"""

from __future__ import annotations

import math
import time
from types import ModuleType
from typing import Any

import numpy as np

from . import sampling
from .inputs import check_magnitudes, option, real_array
from .linalg import damped_cholesky_solve
from .oracle import Oracle, split_data
from .result import Iteration, NewtonResult
from .steps import VARIANTS, make_steps

__all__ = ["Iteration", "NewtonResult", "damped_cholesky_solve", "newton"]

METHODS = ("exact", "sampled")
#: default variant of each method
DEFAULT_VARIANT = {"exact": "exact", "sampled": "sketch-pcg"}
ARMIJO = 1e-4
BACKTRACK = 0.5
MAX_BACKTRACKS = 60
#: the loss is trusted to resolve changes of this many ulps of max(1, |L|)
LOSS_RESOLUTION_ULPS = 1e3
#: stagnated: over this many iterations ||grad L|| never halved and the loss stalled
STALL_ITERATIONS = 8
#: CG residual target of the first inexact Newton step, relative to ||grad L||
FIRST_FORCING = 1e-3
#: largest relative CG residual target
MAX_FORCING = 0.5
#: the last step aims at this fraction of tol (the rest is left to the nonlinearity)
TOL_FRACTION = 0.25


def _variant(method: str, variant: str | None) -> str:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if variant is None:
        return DEFAULT_VARIANT[method]
    allowed = ("exact",) if method == "exact" else ("sketch-pcg", "paper")
    if variant not in allowed:
        raise ValueError(
            f"variant must be one of {allowed} for method {method!r}; got {variant!r} "
            f"(variants: {VARIANTS})"
        )
    return variant


def _rng(seed: Any) -> np.random.Generator:
    if isinstance(seed, (np.random.Generator, np.random.SeedSequence)) or seed is None:
        return np.random.default_rng(seed)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be None or a nonnegative integer; got {seed!r}")
    return np.random.default_rng(int(seed))


def newton(
    model: ModuleType,
    x0: np.ndarray,
    /,
    *,
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
    """Minimize ``model.loss`` by Newton's method from ``x0 (d,)``.

    Parameters
    ----------
    model : module
        A generated model (``creality_generated.<spec>``).
    x0 : (d,) array_like
        Start; real (complex input is an error, not truncated).
    method : {"exact", "sampled"}
        ``"exact"`` uses the model's structured Hessian (the runtime's
        ``hessian_from`` on the pieces the line search kept: ``model.hessian``
        without its second ``A @ x`` and softmax); ``"sampled"`` a row-sampled
        Hessian.
    variant : {None, "sketch-pcg", "paper"}
        For ``method="sampled"``: ``"sketch-pcg"`` (default) solves each Newton
        system by CG on exact Hessian-vector products preconditioned by a
        sampled Hessian whose sample is reused across iterations and sized from
        its measured error; ``"paper"`` is the paper's algorithm, the sampled
        Hessian itself with ``s = ceil(sample_constant * epsilon**-2 * d *
        log(d / delta))`` rows drawn by sketched leverage scores at every
        iterate (:mod:`creality_sym.solve.sampling`).
    tol : float
        Stop when ``||grad L||_2 <= tol``.
    max_iter : int
        Most Newton steps.
    seed : int or None
        Seed of all sampling (same seed, same iterates).
    epsilon, delta, sample_constant : float
        Sample-size formula of the ``"paper"`` variant.
    **data
        ``A (n, d)`` and the names in ``model.PARAMETERS`` (e.g. ``b (n,),
        w (n,), gamma``).

    Returns
    -------
    NewtonResult
        ``status``/``reason`` say why it stopped; ``grad_norm`` is recomputed
        with ``model.gradient`` at the returned ``x``.

    Raises
    ------
    ValueError
        Naming a bad argument: unknown method or variant, a non-positive or
        non-numeric option, complex or string data, wrong shapes, data the
        model's rules refuse, or data so large that float64 would overflow.
    """
    begun = time.perf_counter()
    variant = _variant(method, variant)
    tol = option("tol", tol, rule="positive")
    max_iter = int(option("max_iter", max_iter, rule="nonnegative", integer=True))
    epsilon = option("epsilon", epsilon, rule="(0, 1)")
    delta = option("delta", delta, rule="(0, 1)")
    sample_constant = option("sample_constant", sample_constant, rule="positive")
    rng = _rng(seed)
    A, params = split_data(model, data)
    x = np.array(real_array("x0", x0, ndim=1))
    if x.shape != (A.shape[1],):
        raise ValueError(f"x0 must have shape (d,) = ({A.shape[1]},); got {x.shape}")
    with np.errstate(all="ignore"):
        check_magnitudes(A, x, params)
        oracle = Oracle(model, A, params, x)
        n, d = A.shape
        s = sampling.sample_size(n, d, epsilon=epsilon, delta=delta, constant=sample_constant)
        steps = make_steps(variant, oracle, rng, s)
        z = oracle.z0
        loss = oracle.loss(x, z, steps.pieces_order)  # the first gradient's pieces too
        if not (np.all(np.isfinite(z)) and math.isfinite(loss)):
            oracle.diagnose(x)  # the model's own message, where it has one
            raise ValueError(
                f"x0: the loss at x0 is not finite in float64 (loss = {loss!r}); "
                "start closer to 0 or rescale the data"
            )
        return _iterate(
            oracle, steps, x, z, loss, tol=tol, max_iter=max_iter, method=method, begun=begun
        )


def _forcing(norm: float, previous: float | None, eta: float) -> float:
    """Eisenstat-Walker (choice 2) relative residual target of the next CG solve."""
    if previous is None or previous <= 0.0:
        return FIRST_FORCING
    nxt = 0.9 * (norm / previous) ** 2
    if 0.9 * eta * eta > 0.1:
        nxt = max(nxt, 0.9 * eta * eta)
    return min(MAX_FORCING, nxt)


def _gradient_floor(oracle: Oracle, x: np.ndarray) -> float:
    """Rounding noise of ``||grad L||`` near ``x``, measured with the model's own functions.

    The largest ``||grad(x + xi) - grad(x) - H xi||`` over three random ``xi``
    of relative size 1e-9 (``H xi`` from ``model.hvp``): the second-order
    term is far below rounding, so what remains is the noise of the evaluations.
    """
    rng = np.random.default_rng(0)
    model, A, params = oracle.model, oracle.A, oracle.params
    center = oracle.gradient(x)
    worst = 0.0
    for _ in range(3):
        xi = rng.standard_normal(x.shape)
        xi *= 1e-9 * max(1.0, float(np.linalg.norm(x))) / float(np.linalg.norm(xi))
        linear = np.asarray(model.hvp(x, xi, A, **params, validate=False), dtype=float)
        value = float(np.linalg.norm(oracle.gradient(x + xi) - center - linear))
        if math.isfinite(value):
            worst = max(worst, value)
    return worst


def _stagnated(
    oracle: Oracle, x: np.ndarray, z: np.ndarray, grad: np.ndarray, tol: float, why: str
) -> str:
    norm = float(np.linalg.norm(grad))
    floor = _gradient_floor(oracle, x)
    if norm <= 10.0 * floor:
        return (
            f"stagnated at the rounding floor: {why} at ||grad L|| = {norm:.3g}, within 10x "
            f"of the float64 rounding noise of the gradient here (about {floor:.1g}); "
            f"tol = {tol:g} is below what float64 resolves, use tol >= {10 * norm:.0e}"
        )
    return (
        f"stagnated: {why} at ||grad L|| = {norm:.3g} (tol = {tol:g}; the gradient's rounding "
        f"noise is about {floor:.1g}): the loss is too flat along the step to resolve in "
        "float64, or the Hessian is badly conditioned there"
    )


def _bad_number(what: str, values: np.ndarray, k: int) -> tuple[str, str]:
    """``(status, reason)`` for non-finite ``values``: overflow (inf) or non-finite (NaN)."""
    if np.any(np.isnan(values)):
        return "non-finite", f"non-finite: {what} has NaN entries at iteration {k}"
    return "overflow", (
        f"overflow: {what} overflowed float64 at iteration {k}; the iterate ran off to "
        "infinity (is the loss bounded below on this data?)"
    )


def _iterate(
    oracle: Oracle,
    steps: Any,
    x: np.ndarray,
    z: np.ndarray,
    loss: float,
    *,
    tol: float,
    max_iter: int,
    method: str,
    begun: float,
) -> NewtonResult:
    """The Newton loop from ``x`` (logits ``z``, loss ``loss``); see :func:`newton`.

    ``begun``: the ``time.perf_counter()`` at which the solve began (the time
    until the loop starts is the result's ``start_seconds``).
    """
    start_seconds = time.perf_counter() - begun
    history: list[Iteration] = []
    status, reason, damped = "", "", 0
    previous, eta = None, FIRST_FORCING
    best, since_best, best_loss = math.inf, 0, loss
    finishing = False  # the last step aimed below tol: the model's own gradient first
    certified: np.ndarray | None = None  # the x at which grad is model.gradient's
    for k in range(max_iter + 1):
        start = time.perf_counter()
        if finishing:  # likely the last check: model.gradient both tests and certifies
            grad, rows, certified = oracle.gradient(x), 0, x
            steps.forget()
        else:
            grad, rows = steps.gradient(x, z)
        norm = float(np.linalg.norm(grad))
        row = Iteration(k, loss, norm, rows=rows, gradient_seconds=time.perf_counter() - start)
        history.append(row)
        if not math.isfinite(norm):
            status, reason = _bad_number("the gradient", grad, k)
            break
        if norm <= tol:
            status, reason = "converged", f"converged: ||grad L|| = {norm:.3g} <= tol = {tol:g}"
            break
        if k == max_iter:
            status = "max-iter"
            reason = f"max_iter = {max_iter} reached at ||grad L|| = {norm:.3g} > tol = {tol:g}"
            break
        if norm < 0.5 * best:
            best, since_best, best_loss = norm, 0, loss
        else:
            since_best += 1
            resolution = LOSS_RESOLUTION_ULPS * np.finfo(float).eps * max(1.0, abs(loss))
            if since_best >= STALL_ITERATIONS and best_loss - loss <= resolution:
                status = "stagnated"
                why = (
                    f"neither ||grad L|| halved nor the loss decreased resolvably in "
                    f"{STALL_ITERATIONS} iterations"
                )
                reason = _stagnated(oracle, x, z, grad, tol, why)
                break
        eta = _forcing(norm, previous, eta)
        previous = norm
        finishing = eta * norm <= TOL_FRACTION * tol
        stepped = time.perf_counter()
        step = steps.step(x, z, grad, max(TOL_FRACTION * tol, eta * norm))
        row.step_seconds = time.perf_counter() - stepped
        row.damping, row.products, row.error = step.damping, step.products, step.error
        row.rows = step.rows if step.rows is not None else rows
        row.note = step.note
        if step.damping:
            damped += 1
            what = "Hessian not PD: damped" if math.isfinite(step.damping) else "gradient step"
            row.note = f"{what}; {row.note}" if row.note else what
        if not np.all(np.isfinite(step.dx)):
            status, reason = _bad_number("the Newton step", step.dx, k)
            break
        order = 0 if finishing else steps.pieces_order
        searched = time.perf_counter()
        t, new_loss, x_new, z_new, overflowed = _line_search(
            oracle, x, z, loss, grad, step.dx, step.u, order=order
        )
        row.search_seconds = time.perf_counter() - searched
        if t == 0.0:
            row.seconds = time.perf_counter() - start
            if overflowed:
                status, reason = (
                    "overflow",
                    (
                        f"overflow: every trial point along the step overflowed float64 at "
                        f"iteration {k} (||grad L|| = {norm:.3g})"
                    ),
                )
            else:
                status = "stagnated"
                reason = _stagnated(oracle, x, z, grad, tol, "the line search found no decrease")
            break
        x, z, loss = x_new, z_new, new_loss
        row.step, row.step_norm = t, t * float(np.linalg.norm(step.dx))
        row.seconds = time.perf_counter() - start
    if damped:
        reason += (
            f"; Hessian not positive definite (singular or indefinite) at {damped} "
            "iterate(s), damped"
        )
    if history and not history[-1].seconds:  # the last iteration ended before a step
        history[-1].seconds = time.perf_counter() - start
    final_grad = grad if certified is x else oracle.gradient(x)
    final_loss = loss if math.isfinite(loss) else oracle.loss(x, z)
    return NewtonResult(
        x=x,
        converged=status == "converged",
        iterations=len(history) - 1,
        reason=reason,
        method=method,
        loss=float(final_loss),
        grad_norm=float(np.linalg.norm(final_grad)),
        history=history,
        variant=steps.variant,
        status=status,
        start_seconds=start_seconds,
    )


def _line_search(
    oracle: Oracle,
    x: np.ndarray,
    z: np.ndarray,
    loss: float,
    grad: np.ndarray,
    dx: np.ndarray,
    u: np.ndarray | None = None,
    *,
    order: int = 0,
) -> tuple[float, float, np.ndarray, np.ndarray, bool]:
    """Backtracking Armijo search along ``dx``.

    Returns ``(t, loss(x + t dx), x + t dx, z + t A dx, overflowed)`` (the
    point is ``(x, z)`` itself when ``t = 0``). ``u = A dx`` is computed unless
    given. The full step is tried first, with the pieces of ``order`` (those
    the next gradient needs, kept by the oracle when the step is accepted).
    When the predicted decrease ``-grad . dx`` is below the loss's
    resolution, the loss cannot arbitrate and the full step is taken.
    ``t = 0`` means no acceptable step (or ``dx`` is not a descent
    direction); ``overflowed`` says whether a trial point was non-finite.
    """
    if u is None:
        u = oracle.matvec(dx)
    slope = float(grad @ dx)
    if not (math.isfinite(slope) and slope < 0.0):
        return 0.0, loss, x, z, not math.isfinite(slope)
    resolution = LOSS_RESOLUTION_ULPS * np.finfo(float).eps * max(1.0, abs(loss))
    overflowed = False
    t = 1.0
    for _ in range(MAX_BACKTRACKS):
        x_trial, z_trial = x + t * dx, z + t * u
        trial = oracle.loss(x_trial, z_trial, order if t == 1.0 else 0)
        if math.isfinite(trial):
            if trial <= loss + ARMIJO * t * slope or (t == 1.0 and slope >= -resolution):
                return t, trial, x_trial, z_trial, overflowed
        else:
            overflowed = True
        t *= BACKTRACK
    return 0.0, loss, x, z, overflowed
