"""Replay a saved counterexample (``.npz``) exactly.

The file holds every instance field and parameter, the spec's name, the
bound id, its source file, the model's name and the recorded ``lhs``,
``rhs`` and verdict. Replaying
re-evaluates the bound on those exact numbers; it *reproduces* when the
fresh verdict equals the recorded one (``creality audit --replay`` exits 0
then, 1 otherwise).

A counterexample file is data, never code: the recorded ``source`` and
``model`` are shown, not run or imported. The bound comes from the default
registry or from the bounds the caller names; the model is the one the
caller names, else the generated default; a file recorded for another spec
is refused (with the spec to name).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from creality_sym.audit.bounds import (
    Bound,
    EvaluationError,
    default_bounds,
    evaluate,
    is_violation,
    load_bounds,
)
from creality_sym.audit.instance import Instance, Space, resolve_model, violates_assumptions
from creality_sym.audit.limits import DEFAULT_EVAL_TIMEOUT, EvaluationTimeout, time_limit
from creality_sym.instance import DEFAULT_SPEC, model_name

#: the fields of every counterexample file besides the parameters
FIELDS = ("A", "x", "y", "R", "bound_id")
#: the parameters of files written before they named them (the default spec's)
LEGACY_PARAMETERS = ("b", "w", "gamma")

__all__ = ["Replay", "replay", "load_counterexample"]


@dataclass
class Replay:
    """A replayed counterexample: fresh ``lhs``/``rhs`` against the recorded ones.

    ``verdict`` is ``"violated"``, ``"holds"`` or ``"error"`` (``message`` says
    why: a value that is not a finite number, an exception, a timeout).
    ``bounds_from``, ``source_used`` and ``model_name`` say what was used; ``recorded_source``
    and ``recorded_model`` what the file names.
    """

    bound_id: str
    instance: Instance
    lhs: float
    rhs: float
    verdict: str
    recorded_verdict: str
    recorded_lhs: float
    recorded_rhs: float
    assumptions_broken: list[str]
    recorded_source: str = ""
    recorded_model: str = ""
    bounds_from: str = ""
    source_used: str = ""
    model_name: str = ""
    message: str = ""

    @property
    def reproduced(self) -> bool:
        """Same verdict as recorded (and the instance still admissible)."""
        return self.verdict == self.recorded_verdict and not self.assumptions_broken

    @property
    def exact(self) -> bool:
        """``lhs`` and ``rhs`` equal the recorded values bit for bit."""
        return self.lhs == self.recorded_lhs and self.rhs == self.recorded_rhs


def load_counterexample(path: str | Path) -> tuple[Instance, dict[str, object]]:
    """The instance (without a model) and the metadata (``bound_id``, ``spec``, ``source``,
    ...) of a ``.npz`` file.

    ``ValueError`` naming the file when it is missing, unreadable or malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            fields = {k: data[k] for k in data.files}
    except Exception as exc:
        raise ValueError(f"{path}: not a counterexample file ({exc})") from exc
    missing = [k for k in FIELDS if k not in fields]
    if missing:
        raise ValueError(f"{path}: not a counterexample file (lacks fields {missing})")
    try:
        names = _parameter_names(fields)
        missing = [k for k in names if k not in fields]
        if missing:
            raise ValueError(f"lacks parameters {missing}")
        A = np.asarray(fields["A"], dtype=np.float64)
        if A.ndim != 2 or 0 in A.shape:
            raise ValueError(f"A has shape {A.shape}, not (n, d)")
        n, d = A.shape
        points = {}
        for name in ("x", "y"):
            points[name] = np.asarray(fields[name], dtype=np.float64)
            if points[name].shape != (d,):
                raise ValueError(f"{name} has shape {points[name].shape}, not ({d},)")
        params: dict[str, object] = {}
        for name in names:
            value = np.asarray(fields[name], dtype=np.float64)
            if value.ndim == 0:
                params[name] = float(value)
            elif value.shape in ((n,), (d,)):
                params[name] = value
            else:
                raise ValueError(f"{name} has shape {value.shape}, not ({n},), ({d},) or ()")
        inst = Instance(A=A, x=points["x"], y=points["y"], params=params, R=float(fields["R"]))
        skip = {"A", "x", "y", "R", *names}
        meta = {k: v.item() for k, v in fields.items() if k not in skip and v.size == 1}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: malformed counterexample file ({exc})") from exc
    if not isinstance(meta.get("bound_id"), str):
        raise ValueError(f"{path}: malformed counterexample file (bound_id is not one string)")
    meta.setdefault("spec", DEFAULT_SPEC)
    return inst, meta


def _parameter_names(fields: dict[str, np.ndarray]) -> tuple[str, ...]:
    if "parameters" not in fields:
        return LEGACY_PARAMETERS
    text = str(fields["parameters"].item())
    return tuple(name for name in text.split(",") if name)


def _find_bound(bound_id: str, bounds: list[Bound], where: str, source: str) -> Bound:
    for b in bounds:
        if b.id == bound_id:
            return b
    hint = ""
    if source and where == "the default registry":
        hint = f"; the file was recorded from {source}: pass --bounds with that file to use it"
    raise ValueError(f"bound {bound_id!r} is not in {where}{hint}")


def replay(
    path: str | Path,
    *,
    bounds: list[Bound] | str | Path | None = None,
    model: ModuleType | str | None = None,
    eval_timeout: float | None = DEFAULT_EVAL_TIMEOUT,
) -> Replay:
    """Re-evaluate a saved counterexample.

    ``bounds``: where to look the bound up, a list or a bounds file (default:
    the default registry); the file's recorded source is never executed.
    ``model``: a module or a dotted name (default: the generated default
    model); the recorded model name is never imported. ``eval_timeout``:
    seconds the evaluation may take.
    """
    inst, meta = load_counterexample(path)
    source = str(meta.get("source", ""))
    if bounds is None:
        blist, where = default_bounds(), "the default registry"
    elif isinstance(bounds, (str, Path)):
        blist, where = load_bounds(bounds), str(bounds)
    else:
        blist, where = list(bounds), "the given bounds"
    bound = _find_bound(str(meta["bound_id"]), blist, where, source)
    mod = resolve_model(model)
    recorded_spec = str(meta["spec"])
    if recorded_spec != model_name(mod):
        raise ValueError(
            f"recorded for spec {recorded_spec}, not {model_name(mod)}; pass --spec {recorded_spec}"
        )
    expected = [p.name for p in mod.PARAMETERS]
    if sorted(expected) != sorted(inst.params):
        raise ValueError(
            f"holds parameters {sorted(inst.params)}; the model takes {sorted(expected)}"
        )
    inst = inst.with_model(mod)
    trade = getattr(mod, "TRADEOFF", None)
    searched = (trade,) if trade else ()
    scalars = {p.name: float(inst.params[p.name]) for p in mod.PARAMETERS if p.kind == "scalar"}
    space = Space(mod, {k: v for k, v in scalars.items() if k not in searched}, searched)
    broken = violates_assumptions(inst, space, rtol=1e-12)
    lhs = rhs = math.nan
    message = ""
    try:
        with time_limit(eval_timeout):
            assumed = bound.assume(inst) if bound.assume is not None else inst
        if assumed is not None and space.outside(assumed):
            broken.append("inside the model's domain")
        if assumed is None:
            broken.append(f"premise of {bound.id}")
        else:
            inst = assumed
        lhs, rhs = evaluate(bound, inst, timeout=eval_timeout)
        verdict = "violated" if is_violation(bound, lhs, rhs) else "holds"
    except EvaluationTimeout:
        verdict, message = "error", f"evaluation took longer than the {eval_timeout:g} s limit"
    except EvaluationError as exc:
        verdict, message = "error", str(exc)
    except Exception as exc:  # the bound's own code failed
        verdict, message = "error", f"{type(exc).__name__}: {exc}"
    return Replay(
        bound_id=bound.id,
        instance=inst,
        lhs=lhs,
        rhs=rhs,
        verdict=verdict,
        recorded_verdict=str(meta.get("verdict", "violated")),
        recorded_lhs=_float(meta.get("lhs")),
        recorded_rhs=_float(meta.get("rhs")),
        assumptions_broken=broken,
        recorded_source=source,
        recorded_model=str(meta.get("model", "")),
        bounds_from=where,
        source_used=bound.source,
        model_name=getattr(mod, "__name__", str(mod)),
        message=message,
    )


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
