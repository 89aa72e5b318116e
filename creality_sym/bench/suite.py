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

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from creality_sym.instance import DEFAULT_SPEC, Instance

from .peers import PEERS
from .timing import Samples, peak_bytes, time_interleaved

#: the spec the peers write by hand (they are timed for it only)
PEER_SPEC = DEFAULT_SPEC
GEMM = "floor: (A*delta[:,None]).T @ A"
SYRK = "floor: A.T @ A"
MATVEC = "floor: A @ x, A.T @ g"
HESSIAN = "hessian"
HESSIAN_VALIDATED = "hessian (validate=True)"
GRADIENT = "gradient"


def _generated(inst: Instance) -> dict[str, Callable[[], Any]]:
    model, x, A, kw = inst.model, inst.x, inst.A, dict(inst.params)
    v = np.random.default_rng(1).standard_normal(x.shape[0])
    return {
        HESSIAN: lambda: model.hessian(x, A, **kw, validate=False),
        HESSIAN_VALIDATED: lambda: model.hessian(x, A, **kw),
        GRADIENT: lambda: model.gradient(x, A, **kw, validate=False),
        "gradient (validate=True)": lambda: model.gradient(x, A, **kw),
        "hvp": lambda: model.hvp(x, v, A, **kw, validate=False),
    }


def _floors(inst: Instance) -> dict[str, Callable[[], Any]]:
    x, A = inst.x, inst.A
    delta = np.asarray(inst.z_hessian_pieces().delta)
    g = np.asarray(inst.z_gradient())
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
    inst: Instance,
    *,
    repeats: int,
    case: str = "typical",
    peers: Sequence[str] = tuple(PEERS),
    budget: float = 30.0,
) -> dict[str, Any]:
    """Time the generated functions of ``inst.model``, the floors and ``peers`` on ``inst``.

    The floors and generated functions are timed round-robin together; each
    peer afterwards, round-robin with the GEMM-form floor again (its ``x_gemm``
    is against that paired floor); peers write the :data:`PEER_SPEC` loss and
    are skipped, with a note, for any other spec. Returns a dict with ``spec,
    n, d, case, negative_fraction, low_rank_columns``, ``rows`` (one dict per
    timed case: ``name, group, median_s, best_s, samples, x_gemm, x_matvec``,
    ``peak_copies_of_A`` where tracemalloc can see it, ``rel_err`` of a peer's
    Hessian against the generated one, ``setup_s`` and ``note``), ``notes``
    and the headline figures ``hessian_x_gemm``, ``hessian_x_syrk`` (and
    ``hessian_validated_x_syrk``, validate on),
    ``hessian_peak_copies_of_A``, ``gradient_x_matvec`` (validate off) and
    ``gradient_validated_x_matvec``.
    """
    n, d = inst.n, inst.d
    A = inst.A
    generated = _generated(inst)
    floors = _floors(inst)
    H = np.asarray(generated[HESSIAN]())
    delta = np.asarray(inst.z_hessian_pieces().delta)
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
    if peers and inst.spec != PEER_SPEC:
        notes.append(
            f"peers ({', '.join(peers)}) write the {PEER_SPEC} loss; not timed for spec {inst.spec}"
        )
        peers = ()
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
        "spec": inst.spec,
        "n": n,
        "d": d,
        "case": case,
        "negative_fraction": float(np.mean(delta < 0)),
        "low_rank_columns": int(getattr(inst.model, "LOW_RANK_COLUMNS", 0)),
        "rows": rows,
        "notes": notes,
        "hessian_x_gemm": by_name[HESSIAN]["x_gemm"],
        "hessian_x_syrk": samples[HESSIAN].median / samples[SYRK].median,
        "hessian_validated_x_syrk": samples[HESSIAN_VALIDATED].median / samples[SYRK].median,
        "hessian_peak_copies_of_A": by_name[HESSIAN]["peak_copies_of_A"],
        "gradient_x_matvec": by_name[GRADIENT]["x_matvec"],
        "gradient_validated_x_matvec": by_name["gradient (validate=True)"]["x_matvec"],
    }
