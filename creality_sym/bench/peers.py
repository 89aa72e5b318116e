"""Other ways to get the Hessian of the default spec's loss, timed against the generated one.

Each peer writes ``L(x) = 1/2 ||f - b||^2 + gamma <f, log f> + 1/2 ||W A x||^2``
(``f = softmax(A x)``) in its own library and differentiates it twice:

- ``jax``: ``jax.jit(jax.hessian(loss))`` in float64 (compile time reported apart);
- ``torch``: ``torch.func.hessian(loss)`` on float64 CPU tensors;
- ``sympy``: the loss fully expanded entry by entry for the concrete ``(n, d)``,
  ``sympy.hessian`` of it, then ``lambdify(..., cse=True)`` (small sizes only:
  the symbolic work grows like ``n^2 d^2``).

The libraries are optional (``pip install -e ".[bench]"``): a peer that cannot
be imported comes back with ``run=None`` and a note saying why. The peers
take an :class:`~creality_sym.instance.Instance` of the default spec.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from creality_sym.instance import Instance

#: the SymPy peer runs only where n * d is at most this (its set-up grows like n^2 d^2)
SYMPY_MAX_ENTRIES = 24


@dataclass
class Peer:
    """A timed way to the Hessian: ``run()`` returns it (d, d); ``None`` when unavailable."""

    name: str
    run: Callable[[], Any] | None
    note: str = ""
    setup_seconds: float = 0.0


def _args(inst: Instance) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """``(x, A, b, w, gamma)`` of an instance of the default spec."""
    return inst.x, inst.A, inst.b, inst.w, float(inst.gamma)


def _missing(name: str, module: str) -> Peer | None:
    if importlib.util.find_spec(module) is None:
        return Peer(name, None, f'{module} not installed (pip install -e ".[bench]")')
    return None


def jax_peer(inst: Instance) -> Peer:
    """``jax.jit(jax.hessian(loss))`` in float64; set-up time includes tracing and compiling."""
    name = "JAX jit(hessian)"
    absent = _missing(name, "jax")
    if absent is not None:
        return absent
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)

    def loss(x: Any, A: Any, b: Any, w: Any, gamma: Any) -> Any:
        z = A @ x
        logf = jax.nn.log_softmax(z)
        f = jnp.exp(logf)
        return 0.5 * jnp.sum((f - b) ** 2) + gamma * jnp.sum(f * logf) + 0.5 * jnp.sum((w * z) ** 2)

    hess = jax.jit(jax.hessian(loss))
    args = [jnp.asarray(a, dtype=jnp.float64) for a in _args(inst)[:4]]
    gamma = jnp.float64(inst.gamma)
    start = time.perf_counter()
    hess(*args, gamma).block_until_ready()
    setup = time.perf_counter() - start
    note = f"jax {jax.__version__}, float64, {jax.devices()[0].platform}"
    return Peer(name, lambda: hess(*args, gamma).block_until_ready(), note, setup)


def torch_peer(inst: Instance) -> Peer:
    """``torch.func.hessian(loss)`` on float64 CPU tensors."""
    name = "PyTorch func.hessian"
    absent = _missing(name, "torch")
    if absent is not None:
        return absent
    import torch

    def loss(x: Any, A: Any, b: Any, w: Any, gamma: float) -> Any:
        z = A @ x
        logf = torch.log_softmax(z, dim=0)
        f = torch.exp(logf)
        return (
            0.5 * torch.sum((f - b) ** 2)
            + gamma * torch.sum(f * logf)
            + 0.5 * torch.sum((w * z) ** 2)
        )

    hess = torch.func.hessian(loss)
    args = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)) for a in _args(inst)[:4]]
    note = f"torch {torch.__version__}, float64, {torch.get_num_threads()} threads"
    return Peer(name, lambda: hess(*args, float(inst.gamma)), note)


@lru_cache(maxsize=4)
def _sympy_hessian(n: int, d: int) -> Callable[..., Any]:
    """Lambdified brute-force Hessian at ``(n, d)``: ``fn(x, A.ravel(), b, w, gamma)``."""
    import sympy as sp

    xs = sp.symbols(f"x0:{d}", real=True)
    a = sp.symbols(f"a0:{n * d}", real=True)
    bs = sp.symbols(f"b0:{n}", real=True)
    ws = sp.symbols(f"w0:{n}", real=True)
    gamma = sp.Symbol("gamma", nonnegative=True)
    zs = [sp.Add(*(a[j * d + k] * xs[k] for k in range(d))) for j in range(n)]
    exps = [sp.exp(zj) for zj in zs]
    total = sp.Add(*exps)
    fs = [e / total for e in exps]
    logfs = [zj - sp.log(total) for zj in zs]
    half = sp.Rational(1, 2)
    loss = (
        half * sp.Add(*((fj - bj) ** 2 for fj, bj in zip(fs, bs, strict=True)))
        + gamma * sp.Add(*(fj * lj for fj, lj in zip(fs, logfs, strict=True)))
        + half * sp.Add(*(wj**2 * zj**2 for wj, zj in zip(ws, zs, strict=True)))
    )
    H = sp.hessian(loss, xs)
    return sp.lambdify([xs, a, bs, ws, gamma], H, modules="numpy", cse=True)


def sympy_peer(inst: Instance, *, max_entries: int = SYMPY_MAX_ENTRIES) -> Peer:
    """``lambdify`` of ``sympy.hessian`` of the expanded loss; set-up time is the symbolic work."""
    name = "SymPy lambdify (expanded)"
    n, d = inst.n, inst.d
    if n * d > max_entries:
        return Peer(
            name, None, f"skipped: n*d = {n * d} > {max_entries} (symbolic set-up ~ n^2 d^2)"
        )
    import sympy as sp

    start = time.perf_counter()
    fn = _sympy_hessian(n, d)
    setup = time.perf_counter() - start
    x, A, b, w, gamma = _args(inst)
    flat = A.ravel()
    return Peer(
        name,
        lambda: np.asarray(fn(x, flat, b, w, gamma), dtype=np.float64),
        f"sympy {sp.__version__}, expanded at n={n}, d={d}",
        setup,
    )


PEERS: dict[str, Callable[[Instance], Peer]] = {
    "jax": jax_peer,
    "torch": torch_peer,
    "sympy": sympy_peer,
}
