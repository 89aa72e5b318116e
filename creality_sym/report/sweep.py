"""The trade-off sweep: x*(gamma) from the precise mode (gamma = 0) to the creative one.

``gamma`` is the spec's trade-off weight (``model.TRADEOFF``); a spec without
one gets a section saying so. The points are placed by arc length of the
trade-off curve (:mod:`creality_sym.report.tradeoff`), each solved by exact
Newton (:func:`creality_sym.solve.newton`) on the installed generated model,
warm-started from both neighbours; jumps and other local minima are marked,
not joined.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from creality_sym.instance import Instance
from creality_sym.report import tradeoff
from creality_sym.report.figures import tradeoff_plot
from creality_sym.report.numeric import Update, spec_setup
from creality_sym.report.page import Cell, Section, Table, write_csv, write_json

if TYPE_CHECKING:
    from creality_sym.report.study import Settings

#: weight scale of the sweep instance: weak, so that gamma = 0 can reproduce b
SWEEP_W_SCALE = 1e-3
#: norm of the hidden x_true behind the sweep's ground truth b = f(x_true)
SWEEP_TRUTH_NORM = 8.0
#: f counts as uniform when its entropy is within this fraction of log n
UNIFORM = 1e-3

TITLE = "Creativity vs reality: the trade-off sweep"


def sweep_instance(settings: Settings, model: Any, scalars: dict[str, float]) -> Instance:
    """The sweep's problem: :meth:`Instance.problem` with weak weights and a peaked,
    realizable ground truth ``b = f(x_true)`` (its first probability vector)."""
    rng = np.random.default_rng(settings.seed)
    inst = Instance.problem(
        model, settings.sweep_n, settings.sweep_d, rng, scalars=scalars, w_scale=SWEEP_W_SCALE
    )
    prob = [p.name for p in model.PARAMETERS if p.rule == "probability" and p.shape == "n"]
    if prob:
        x_true = np.random.default_rng(settings.seed + 1).standard_normal(settings.sweep_d)
        x_true *= SWEEP_TRUTH_NORM / np.linalg.norm(x_true)
        inst = inst.replace(**{prob[0]: inst.f(x_true)})
    return inst


def modes(curve: tradeoff.Curve) -> dict[str, int]:
    """Indices of the precise (gamma = 0), balanced and creative (largest gamma) points.

    Balanced is the point closest to the ideal corner (least distance, most
    entropy) once both axes are scaled to [0, 1] along the curve.
    """
    last = len(curve.points) - 1
    dist, ent = curve.distance, curve.entropy
    dn = (dist - dist.min()) / (float(np.ptp(dist)) or 1.0)
    hn = (ent.max() - ent) / (float(np.ptp(ent)) or 1.0)
    score = np.hypot(dn, hn)
    inner = score[1:last] if last > 1 else score
    balanced = int(np.argmin(inner)) + (1 if last > 1 else 0)
    return {"precise": 0, "balanced": balanced, "creative": last}


def uniform_from(curve: tradeoff.Curve, log_n: float) -> float | None:
    """The smallest gamma from which every point has entropy within :data:`UNIFORM` of log n."""
    near = curve.entropy >= (1.0 - UNIFORM) * log_n
    if not near[-1]:
        return None
    k = len(near) - 1
    while k > 0 and near[k - 1]:
        k -= 1
    return float(curve.gammas[k])


def _absent(model: Any) -> Section:
    return Section(
        key="tradeoff",
        title=TITLE,
        summary=f"no sweep: spec {model.SPEC_NAME} declares no trade-off weight",
        intro=(
            f"The sweep varies the scalar that weighs the spec's terms against each other "
            f"(TRADEOFF in the generated module). Spec {model.SPEC_NAME} has none (TRADEOFF is "
            f"None; terms {', '.join(model.TERMS)} with weights "
            f"{', '.join(f'{t}: {w}' for t, w in model.WEIGHTS.items())}), so there is no "
            "creativity-vs-reality curve to draw."
        ),
    )


def _mode_table(curve: tradeoff.Curve, marks: dict[str, int], name: str) -> Table:
    table = Table(["mode", name, curve.axes[1], curve.axes[0], "loss", "iterations"])
    for mode, i in marks.items():
        p = curve.points[i]
        table.rows.append(
            [
                mode,
                Cell(f"{p.gamma:.4g}", "num"),
                Cell(f"{p.entropy:.4f}", "num"),
                Cell(f"{p.distance:.4g}", "num"),
                Cell(f"{p.loss:.6g}", "num"),
                Cell(str(p.iterations), "num"),
            ]
        )
    return table


def _events_table(curve: tradeoff.Curve, name: str) -> Table:
    table = Table(["what", f"{name} (from - to)", curve.axes[1], curve.axes[0], "loss"])
    for i in curve.jumps:
        a, b = curve.points[i], curve.points[i + 1]
        table.rows.append(
            [
                Cell("jump", "warn"),
                Cell(f"{a.gamma:.5g} - {b.gamma:.5g}", "num"),
                Cell(f"{a.entropy:.4f} -> {b.entropy:.4f}", "num"),
                Cell(f"{a.distance:.4g} -> {b.distance:.4g}", "num"),
                Cell(f"{a.loss:.6g} -> {b.loss:.6g}", "num"),
            ]
        )
    for p in curve.alternatives:
        table.rows.append(
            [
                f"other local minimum (from the {p.start} neighbour)",
                Cell(f"{p.gamma:.5g}", "num"),
                Cell(f"{p.entropy:.4f}", "num"),
                Cell(f"{p.distance:.4g}", "num"),
                Cell(f"{p.loss:.6g}", "num"),
            ]
        )
    return table


def _write_data(out: Path, curve: tradeoff.Curve, marks: dict[str, int], info: dict) -> None:
    pts = curve.points
    jumps = set(curve.jumps)
    write_csv(
        out / "tradeoff.csv",
        {
            "gamma": [p.gamma for p in pts],
            "entropy": [p.entropy for p in pts],
            "reality_distance": [p.distance for p in pts],
            "loss": [p.loss for p in pts],
            "iterations": [p.iterations for p in pts],
            "converged": [p.converged for p in pts],
            "seconds": [p.seconds for p in pts],
            "start": [p.start for p in pts],
            "mode": [next((k for k, i in marks.items() if i == j), "") for j in range(len(pts))],
            "jump_to_next": [j in jumps for j in range(len(pts))],
        },
    )
    alt = curve.alternatives
    write_csv(
        out / "tradeoff_alternatives.csv",
        {
            "gamma": [p.gamma for p in alt],
            "entropy": [p.entropy for p in alt],
            "reality_distance": [p.distance for p in alt],
            "loss": [p.loss for p in alt],
            "start": [p.start for p in alt],
        },
    )
    write_json(out / "tradeoff.json", info)


def sweep_section(out: Path, settings: Settings, *, update: Update) -> Section:
    """The trade-off sweep: the curve with its jumps and other minima, the three modes."""
    from creality_sym.solve import newton

    model, scalars, notes = spec_setup(settings)
    name = model.TRADEOFF
    if not name:
        return _absent(model)
    inst = sweep_instance(settings, model, scalars)
    curve = tradeoff.sweep(
        inst,
        newton,
        gamma_max=settings.gamma_max,
        points=settings.sweep_points,
        first=settings.sweep_first,
        update=update,
    )
    update("plotting")
    marks = modes(curve)
    log_n = math.log(inst.n)
    lo, hi = tradeoff.transition(curve)
    flat = uniform_from(curve, log_n)
    prob = [p.name for p in model.PARAMETERS if p.rule == "probability" and p.shape == "n"]
    h_b = None
    if prob:
        b = np.asarray(inst.params[prob[0]])
        h_b = float(-np.sum(b[b > 0] * np.log(b[b > 0])))
    info = {
        "spec": model.SPEC_NAME,
        "tradeoff": name,
        "instance": {
            "n": inst.n,
            "d": inst.d,
            "seed": settings.seed,
            "w_scale": SWEEP_W_SCALE,
            "truth_norm": SWEEP_TRUTH_NORM,
            "entropy_b": h_b,
            "log_n": log_n,
            "scalars": {k: v for k, v in scalars.items() if k != name},
        },
        "placement": {
            "coarse_grid": settings.sweep_first,
            "points": settings.sweep_points,
            "min_ratio": tradeoff.MIN_RATIO,
            "min_chord": tradeoff.MIN_CHORD,
            "jump_chord": tradeoff.JUMP_CHORD,
            "solves": curve.solves,
        },
        "transition": [lo, hi],
        "uniform_from": flat,
        "jumps": [[curve.points[i].gamma, curve.points[i + 1].gamma] for i in curve.jumps],
        "unresolved": [
            [curve.points[i].gamma, curve.points[i + 1].gamma] for i in curve.unresolved
        ],
        "modes": {k: {"index": i, "gamma": curve.points[i].gamma} for k, i in marks.items()},
        "reasons": [p.reason for p in curve.points],
    }
    _write_data(out, curve, marks, info)
    tradeoff_plot(
        curve.distance,
        curve.entropy,
        curve.gammas,
        marks,
        out / "tradeoff.png",
        max_entropy=log_n if prob else None,
        jumps=curve.jumps,
        alternatives=[(p.distance, p.entropy, p.gamma) for p in curve.alternatives],
        axes=curve.axes,
        tradeoff=name,
    )
    p0, pb, pc = (curve.points[marks[k]] for k in ("precise", "balanced", "creative"))
    summary = (
        f"{len(curve.points)} {name} values in [0, {settings.gamma_max:g}] by arc length: "
        f"transition {lo:.3g} -> {hi:.3g}"
    )
    if curve.jumps:
        where = ", ".join(f"{curve.points[i].gamma:.3g}" for i in curve.jumps)
        summary += f", jump at {name} = {where}"
    if curve.alternatives:
        summary += f", {len(curve.alternatives)} other local minima"
    summary += (
        f"; entropy {p0.entropy:.3f} -> {pc.entropy:.3f} (log n = {log_n:.3f}), "
        f"||f - b|| {p0.distance:.3g} -> {pc.distance:.3g}; balanced at {name} = {pb.gamma:.3g}"
    )
    failed = [f"{p.gamma:.3g}" for p in curve.points if not p.converged]
    if failed:
        summary += f"; NOT converged at {name} = {', '.join(failed)}"
    section = Section(
        key="tradeoff",
        title=TITLE,
        summary=summary,
        status="warn" if failed else "ok",
        intro=_intro(settings, inst, name, h_b, lo, hi, flat),
        tables=[("The three modes", _mode_table(curve, marks, name))],
        figures=[("tradeoff.png", _caption(name))],
        data=["tradeoff.csv", "tradeoff_alternatives.csv", "tradeoff.json"],
        notes=list(notes),
    )
    if curve.jumps or curve.alternatives:
        section.tables.append(("Jumps and other local minima", _events_table(curve, name)))
    if curve.unresolved:
        section.notes.append(
            f"{len(curve.unresolved)} long segment(s) were left unresolved by the budget of "
            f"{settings.sweep_points} points; run without --quick for more."
        )
    if name in settings.params:
        section.notes.append(
            f"--param {name}={settings.params[name]:g} sets the solver's {name}; "
            "the sweep varies it."
        )
    return section


def _intro(
    settings: Settings,
    inst: Instance,
    name: str,
    h_b: float | None,
    lo: float,
    hi: float,
    flat: float | None,
) -> str:
    truth = (
        f"a peaked ground truth b = f(x_true), ||x_true|| = {SWEEP_TRUTH_NORM:g}, "
        f"H(b) = {h_b:.3f}, "
        if h_b is not None
        else ""
    )
    text = (
        f"x*({name}) for {name} = 0 (precise) up to {settings.gamma_max:g} (creative), by exact "
        f"Newton on spec {inst.spec}: Instance.problem(n = {inst.n}, d = {inst.d}, weights "
        f"scaled by {SWEEP_W_SCALE:g}) with {truth}seed {settings.seed}. After a coarse log grid "
        f"of {settings.sweep_first} values, each new {name} splits the longest segment of the "
        "curve (both axes scaled to [0, 1]) at its geometric middle, so the points follow the "
        "curve's arc length; every point is solved from both neighbours' solutions and the "
        f"lowest loss kept. 90% of the arc length (5% to 95%) lies between {name} = {lo:.3g} "
        f"and {hi:.3g}."
    )
    if flat is not None:
        text += f" From {name} = {flat:.3g} on, f is uniform to {UNIFORM:.1%} of log n."
    return text + (
        " The creativity term is not convex: x* may jump between basins, and two minima may "
        "coexist at one value; a jump is a segment that stays long when its ends are within "
        f"{tradeoff.MIN_RATIO - 1:.1%} in {name}, drawn dotted and never joined."
    )


def _caption(name: str) -> str:
    return (
        f"Entropy of f(x*) against the reality distance ||f(x*) − b|| as {name} sweeps; colour "
        f"= {name}, the three modes marked, jumps dotted (not joined), other local minima hollow."
    )
