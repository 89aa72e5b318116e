"""JAX ``jit`` derivatives of a spec's loss, for scipy's minimizers in the solver benchmark.

JAX is optional: :func:`jax_derivatives` returns ``None`` and a note when it
is not installed or when the spec has no JAX form here. The loss is written
out in ``jax.numpy`` (float64) for the specs below and checked against the
generated module's loss and gradient at the start point before use; the
gradient, Hessian (``jax.hessian``, forward over reverse) and
Hessian-vector product (``jax.jvp`` of ``jax.grad``) are ``jax.jit``-compiled
once (compile time reported apart).
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

#: specs with a JAX form of the loss
JAX_SPECS = ("creativity_reality", "cross_entropy", "temperature")


@dataclass
class JaxDerivatives:
    """numpy-in, numpy-out ``fun, jac, hess, hessp`` backed by jitted JAX functions.

    ``compile_seconds`` is the time of the first (tracing and compiling) call
    of each, ``note`` the JAX version and platform.
    """

    fun: Callable[[np.ndarray], float]
    jac: Callable[[np.ndarray], np.ndarray]
    hess: Callable[[np.ndarray], np.ndarray]
    hessp: Callable[[np.ndarray, np.ndarray], np.ndarray]
    compile_seconds: float
    note: str


def _loss(spec: str) -> Callable[..., Any]:
    import jax
    import jax.numpy as jnp

    def parts(x: Any, A: Any, tau: Any = 1.0) -> tuple[Any, Any, Any]:
        z = A @ x
        logf = jax.nn.log_softmax(z / tau)
        return z, logf, jnp.exp(logf)

    if spec == "cross_entropy":

        def loss(x: Any, A: Any, b: Any, w: Any, gamma: Any) -> Any:
            z, logf, f = parts(x, A)
            return -jnp.sum(b * logf) + gamma * jnp.sum(f * logf) + 0.5 * jnp.sum((w * z) ** 2)

    elif spec == "temperature":

        def loss(x: Any, A: Any, b: Any, w: Any, gamma: Any, tau: Any = 1.0) -> Any:
            z, logf, f = parts(x, A, tau)
            return (
                0.5 * jnp.sum((f - b) ** 2)
                + gamma * jnp.sum(f * logf)
                + 0.5 * jnp.sum((w * z) ** 2)
            )

    else:

        def loss(x: Any, A: Any, b: Any, w: Any, gamma: Any) -> Any:
            z, logf, f = parts(x, A)
            return (
                0.5 * jnp.sum((f - b) ** 2)
                + gamma * jnp.sum(f * logf)
                + 0.5 * jnp.sum((w * z) ** 2)
            )

    return loss


def jax_derivatives(
    model: ModuleType, data: dict[str, Any], x0: np.ndarray
) -> tuple[JaxDerivatives | None, str]:
    """JAX derivatives of ``model``'s loss on ``data`` (``A`` and parameters), or ``None``.

    Parameters
    ----------
    model : module
        A generated model; its ``SPEC_NAME`` must be in :data:`JAX_SPECS`.
    data : dict
        ``A (n, d)`` and the model's parameters.
    x0 : (d,) array
        The start: the JAX loss and gradient are checked against the model's there.

    Returns
    -------
    (JaxDerivatives or None, note)
        The note says why JAX is not used when the first item is ``None``.
    """
    if importlib.util.find_spec("jax") is None:
        return None, "jax not installed (pip install jax)"
    spec = str(getattr(model, "SPEC_NAME", ""))
    if spec not in JAX_SPECS:
        return None, f"no JAX form of spec {spec!r} (have {', '.join(JAX_SPECS)})"
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    loss = _loss(spec)
    names = ["A", "b", "w", "gamma"] + (["tau"] if "tau" in data else [])
    args = [jnp.asarray(data[k], dtype=jnp.float64) for k in names]
    fun = jax.jit(loss)
    grad = jax.jit(jax.grad(loss))
    hess = jax.jit(jax.hessian(loss))
    hvp = jax.jit(lambda x, v, *a: jax.jvp(lambda y: jax.grad(loss)(y, *a), (x,), (v,))[1])
    start = time.perf_counter()
    x = jnp.asarray(x0, dtype=jnp.float64)
    value = float(fun(x, *args))
    g = np.asarray(grad(x, *args))
    hess(x, *args).block_until_ready()
    hvp(x, x, *args).block_until_ready()
    compile_seconds = time.perf_counter() - start
    params = {k: v for k, v in data.items() if k != "A"}
    ref = float(model.loss(x0, data["A"], **params))
    ref_g = np.asarray(model.gradient(x0, data["A"], **params))
    scale = max(1.0, float(np.linalg.norm(ref_g)))
    if abs(value - ref) > 1e-9 * max(1.0, abs(ref)) or np.linalg.norm(g - ref_g) > 1e-8 * scale:
        return None, f"JAX loss of {spec!r} disagrees with the generated module; not used"
    note = f"jax {jax.__version__}, float64, {jax.devices()[0].platform}"
    return (
        JaxDerivatives(
            fun=lambda x: float(fun(jnp.asarray(x), *args)),
            jac=lambda x: np.asarray(grad(jnp.asarray(x), *args)),
            hess=lambda x: np.asarray(hess(jnp.asarray(x), *args)),
            hessp=lambda x, v: np.asarray(hvp(jnp.asarray(x), jnp.asarray(v), *args)),
            compile_seconds=compile_seconds,
            note=note,
        ),
        note,
    )
