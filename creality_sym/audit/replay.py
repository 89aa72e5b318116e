"""Replay a saved counterexample (``.npz``) exactly.

The file holds every instance field, the bound id, its source file, and the
recorded ``lhs``, ``rhs`` and verdict. Replaying re-evaluates the bound on
those exact numbers; it *reproduces* when the fresh verdict equals the
recorded one (``creality audit --replay`` exits 0 then, 1 otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from creality_sym.audit.bounds import Bound, default_bounds, evaluate, is_violation, load_bounds
from creality_sym.audit.instance import Instance, resolve_model, violates_assumptions

__all__ = ["Replay", "replay", "load_counterexample"]


@dataclass
class Replay:
    """A replayed counterexample: fresh ``lhs``/``rhs`` against the recorded ones."""

    bound_id: str
    instance: Instance
    lhs: float
    rhs: float
    verdict: str
    recorded_verdict: str
    recorded_lhs: float
    recorded_rhs: float
    assumptions_broken: list[str]

    @property
    def reproduced(self) -> bool:
        """Same verdict as recorded (and the instance still admissible)."""
        return self.verdict == self.recorded_verdict and not self.assumptions_broken

    @property
    def exact(self) -> bool:
        """``lhs`` and ``rhs`` equal the recorded values bit for bit."""
        return self.lhs == self.recorded_lhs and self.rhs == self.recorded_rhs


def load_counterexample(path: str | Path) -> tuple[Instance, dict[str, object]]:
    """The instance and the metadata (``bound_id``, ``source``, ...) of a ``.npz`` file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"replay: file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            fields = {k: data[k] for k in data.files}
    except Exception as exc:
        raise ValueError(f"replay: {path} is not a counterexample file ({exc})") from exc
    needed = ("A", "x", "y", "b", "w", "gamma", "R", "bound_id")
    missing = [k for k in needed if k not in fields]
    if missing:
        raise ValueError(f"replay: {path} lacks fields {missing}")
    inst = Instance(
        A=np.asarray(fields["A"], dtype=np.float64),
        x=np.asarray(fields["x"], dtype=np.float64),
        y=np.asarray(fields["y"], dtype=np.float64),
        b=np.asarray(fields["b"], dtype=np.float64),
        w=np.asarray(fields["w"], dtype=np.float64),
        gamma=float(fields["gamma"]),
        R=float(fields["R"]),
    )
    meta = {k: v.item() for k, v in fields.items() if k not in needed[:7]}
    return inst, meta


def _find_bound(bound_id: str, source: str, bounds: list[Bound] | None) -> Bound:
    if bounds is None:
        bounds = load_bounds(source) if source and Path(source).is_file() else default_bounds()
    for b in bounds:
        if b.id == bound_id:
            return b
    raise ValueError(f"replay: bound {bound_id!r} not found (source {source or 'default'})")


def replay(
    path: str | Path,
    *,
    bounds: list[Bound] | str | Path | None = None,
    model: ModuleType | str | None = None,
) -> Replay:
    """Re-evaluate a saved counterexample.

    ``bounds``: where to look the bound up (default: the file's recorded
    source, else the default registry). ``model``: default the recorded
    model name, else the generated default.
    """
    inst, meta = load_counterexample(path)
    if isinstance(bounds, (str, Path)):
        bounds = load_bounds(bounds)
    bound = _find_bound(str(meta["bound_id"]), str(meta.get("source", "")), bounds)
    if model is None and meta.get("model"):
        try:
            model = resolve_model(str(meta["model"]))
        except ValueError:
            model = None
    inst = inst.with_model(resolve_model(model))
    broken = violates_assumptions(inst, rtol=1e-12)
    if bound.assume is not None:
        assumed = bound.assume(inst)
        if assumed is None:
            broken.append(f"premise of {bound.id}")
        else:
            inst = assumed
    lhs, rhs = evaluate(bound, inst)
    verdict = "violated" if is_violation(bound, lhs, rhs) else "holds"
    return Replay(
        bound_id=bound.id,
        instance=inst,
        lhs=lhs,
        rhs=rhs,
        verdict=verdict,
        recorded_verdict=str(meta.get("verdict", "violated")),
        recorded_lhs=float(meta.get("lhs", math.nan)),
        recorded_rhs=float(meta.get("rhs", math.nan)),
        assumptions_broken=broken,
    )
