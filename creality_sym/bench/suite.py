"""One benchmark size: generated functions, floors and peers timed side by side.

The *floors* are what any implementation must at least pay:

- ``GEMM form``: ``(A * delta[:, None]).T @ A``, the weighted Gram product that
  holds the n * d^2 flops of the Hessian (every ratio is printed against it);
- ``A.T @ A``: the same flops as a symmetric rank-n update (BLAS syrk), half
  the GEMM's work: the cheapest a Hessian of this shape can be;
- ``2 mat-vecs``: ``A @ x`` and ``A.T @ g``, two passes over A, the floor of the
  gradient and of the Hessian-vector product.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from .instance import BenchInstance
from .peers import PEERS
from .timing import Samples, peak_bytes, time_interleaved

SPEC = "creativity_reality"
GEMM = "floor: (A*delta[:,None]).T @ A"
SYRK = "floor: A.T @ A"
MATVEC = "floor: A @ x, A.T @ g"
HESSIAN = "hessian"


def default_model() -> ModuleType:
    """The generated module of the default spec (the peers write the same loss)."""
    return importlib.import_module(f"creality_generated.{SPEC}")


def _generated(model: ModuleType, inst: BenchInstance) -> dict[str, Callable[[], Any]]:
    x, A, b, w, gamma = inst.args
    v = np.random.default_rng(1).standard_normal(x.shape[0])
    return {
        HESSIAN: lambda: model.hessian(x, A, b, w, gamma, validate=False),
        "hessian (validate=True)": lambda: model.hessian(x, A, b, w, gamma),
        "gradient": lambda: model.gradient(x, A, b, w, gamma, validate=False),
        "gradient (validate=True)": lambda: model.gradient(x, A, b, w, gamma),
        "hvp": lambda: model.hvp(x, v, A, b, w, gamma, validate=False),
    }


def _floors(model: ModuleType, inst: BenchInstance) -> dict[str, Callable[[], Any]]:
    x, A, b, w, gamma = inst.args
    delta = np.asarray(model.z_hessian(x, A, b, w, gamma).delta)
    g = np.asarray(model.z_gradient(x, A, b, w, gamma))
    return {
        GEMM: lambda: (A * delta[:, None]).T @ A,
        SYRK: lambda: A.T @ A,
        MATVEC: lambda: (A @ x, A.T @ g),
    }


def _row(
    name: str, group: str, s: Samples, gemm: float, matvec: float, copies: float | None
) -> dict[str, Any]:
    return {
        "name": name,
        "group": group,
        "median_s": s.median,
        "best_s": s.best,
        "samples": len(s.seconds),
        "x_gemm": s.median / gemm,
        "x_matvec": s.median / matvec,
        "peak_copies_of_A": copies,
        "rel_err": None,
        "setup_s": None,
        "note": "",
    }


def _rel_err(got: Any, ref: np.ndarray) -> float:
    got = np.asarray(got, dtype=np.float64)
    scale = max(float(np.max(np.abs(ref))), 1e-300)
    return float(np.max(np.abs(got - ref)) / scale)


def bench_one(
    inst: BenchInstance,
    *,
    repeats: int,
    peers: Sequence[str] = tuple(PEERS),
    budget: float = 30.0,
    model: ModuleType | None = None,
) -> dict[str, Any]:
    """Time the generated functions, the floors and ``peers`` on ``inst``.

    The floors and generated functions are timed round-robin together; each
    peer afterwards, round-robin with the GEMM-form floor again (its ``x_gemm``
    is against that paired floor). Returns a dict with ``n, d, case,
    negative_fraction``, ``rows`` (one dict per timed case: ``name, group,
    median_s, best_s, samples, x_gemm, x_matvec``,
    ``peak_copies_of_A`` where tracemalloc can see it, ``rel_err`` of a peer's
    Hessian against the generated one, ``setup_s`` and ``note``), ``notes`` and
    ``hessian_x_gemm`` / ``hessian_peak_copies_of_A`` (the headline figures).
    """
    model = model or default_model()
    n, d = inst.shape
    x, A, b, w, gamma = inst.args
    generated = _generated(model, inst)
    floors = _floors(model, inst)
    H = np.asarray(generated[HESSIAN]())
    delta = np.asarray(model.z_hessian(x, A, b, w, gamma).delta)
    cases: dict[str, Callable[[], Any]] = {**floors, **generated}
    samples = time_interleaved(cases, repeats=repeats, budget=budget)
    gemm, matvec = samples[GEMM].median, samples[MATVEC].median
    rows = []
    for name, s in samples.items():
        group = "floor" if name in floors else "generated"
        rows.append(_row(name, group, s, gemm, matvec, peak_bytes(cases[name]) / A.nbytes))
    # Peers are set up and timed afterwards, each round-robin with its own GEMM
    # floor: their thread pools (which may spin after a call) cannot slow the
    # numpy timings above.
    notes: list[str] = []
    for key in peers:
        peer = PEERS[key](inst)
        if peer.run is None:
            notes.append(f"{peer.name}: {peer.note}")
            continue
        paired = time_interleaved(
            {GEMM: floors[GEMM], peer.name: peer.run}, repeats=repeats, budget=budget
        )
        row = _row(peer.name, "peer", paired[peer.name], paired[GEMM].median, matvec, None)
        row["rel_err"] = _rel_err(peer.run(), H)
        row["setup_s"] = peer.setup_seconds
        row["note"] = peer.note
        rows.append(row)
    by_name = {row["name"]: row for row in rows}
    return {
        "n": n,
        "d": d,
        "case": inst.case,
        "negative_fraction": float(np.mean(delta < 0)),
        "rows": rows,
        "notes": notes,
        "hessian_x_gemm": by_name[HESSIAN]["x_gemm"],
        "hessian_x_syrk": samples[HESSIAN].median / samples[SYRK].median,
        "hessian_peak_copies_of_A": by_name[HESSIAN]["peak_copies_of_A"],
    }
