"""Report sections on the numerical side: the audit and the solver comparison.

Both, like the trade-off sweep (:mod:`creality_sym.report.sweep`), run the
installed generated model of the report's spec (``creality_generated.<spec>``,
the default spec unless ``--spec``) through :mod:`creality_sym.audit` and
:mod:`creality_sym.solve`, with the scalars of :func:`spec_setup`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from creality_sym.instance import Instance, load_model, resolve_scalars
from creality_sym.report.figures import convergence_plot, tightness_plot
from creality_sym.report.page import Cell, Section, Table, write_csv, write_json

if TYPE_CHECKING:
    from creality_sym.report.study import Settings

Update = Callable[[str], None]

#: trade-off weight of the solver comparison unless --param sets it
SOLVE_GAMMA = 0.5
#: least seconds of trials of a statistical claim (a failure rate near 0.04 needs ~300)
STATISTICAL_SECONDS = 1.0


def model(settings: Settings) -> ModuleType:
    """The generated model of the report's spec."""
    return load_model(settings.spec)


def spec_setup(settings: Settings) -> tuple[ModuleType, dict[str, float], list[str]]:
    """The model, a value for every scalar and notes on the chosen ones.

    ``--param`` values first, the trade-off weight at :data:`SOLVE_GAMMA`,
    then the spec's defaults and stated choices
    (:func:`creality_sym.instance.resolve_scalars`).
    """
    m = model(settings)
    scalars, notes = resolve_scalars(m, settings.params, tradeoff=SOLVE_GAMMA)
    return m, scalars, notes


# ----------------------------------------------------------------------------- audit


def _plot_ratio(v: Any) -> float | None:
    """``observed / bound`` on a common scale, or None where there is none."""
    t = float(v.tightness)
    if v.kind == "statistical":
        return t / float(v.delta) if v.delta else None
    if v.compare == "ratio" and math.isfinite(t) and t > 0:
        return t
    return None


def audit_section(out: Path, settings: Settings, *, update: Update) -> Section:
    """Audit every lemma of the default registry for ``settings.audit_budget`` s each."""
    from creality_sym.audit import Space, audit, default_bounds

    space = Space.make(settings.spec, settings.params)
    bounds = default_bounds()
    folder = out / "counterexamples"
    shrink = 0.5 if settings.quick else 2.0
    budget = settings.audit_budget * len(bounds)
    verdicts = []
    start = time.monotonic()
    for i, bound in enumerate(bounds):
        update(f"{bound.id} ({i + 1}/{len(bounds)})")
        share = max(budget - (time.monotonic() - start), 0.05 * settings.audit_budget)
        share /= len(bounds) - i
        if bound.kind == "statistical":  # enough trials for the interval to decide
            share = max(share, STATISTICAL_SECONDS)
        verdicts += audit(
            [bound],
            model=space,
            seed=settings.seed,
            budget=share,
            out=folder,
            shrink_seconds=shrink,
        )
    update("plotting")
    table = Table(
        [
            "lemma",
            "claim",
            "expected",
            "verdict",
            "tightness",
            "instances",
            "searched",
            "counterexample",
            "seconds",
        ]
    )
    rows = []
    for v in verdicts:
        ce = ""
        if v.counterexample is not None:
            c = v.counterexample
            scalars = "".join(
                f", {k}={float(val):.3g}" for k, val in c.params.items() if np.ndim(val) == 0
            )
            ce = f"n={c.n}, d={c.d}, R={c.R:.3g}{scalars}: lhs={v.lhs:.4g} > rhs={v.rhs:.4g}"
        link = Path(v.path).relative_to(out).as_posix() if v.path else ""
        table.rows.append(
            [
                Cell(v.id, title=v.source),
                v.statement,
                v.expect,
                Cell(
                    v.verdict + ("" if v.ok else " (unexpected)"),
                    "" if v.verdict == "skipped" else ("ok" if v.ok else "bad"),
                    title="; ".join(v.notes),
                ),
                Cell(v.tightness_text(), "num"),
                Cell(str(v.instances), "num"),
                v.domain,
                Cell(ce, title=v.message, href=link),
                Cell(f"{v.seconds:.2f}", "num"),
            ]
        )
        rows.append(
            {
                "id": v.id,
                "statement": v.statement,
                "expect": v.expect,
                "verdict": v.verdict,
                "ok": v.ok,
                "kind": v.kind,
                "compare": v.compare,
                "tightness": v.tightness,
                "tightness_text": v.tightness_text(),
                "instances": v.instances,
                "lhs": v.lhs,
                "rhs": v.rhs,
                "failures": v.failures,
                "ci": v.ci,
                "delta": v.delta,
                "errors": v.errors,
                "message": v.message,
                "seconds": v.seconds,
                "counterexample": link or None,
                "source": v.source,
                "domain": v.domain,
                "notes": v.notes,
            }
        )
    write_json(
        out / "audit.json",
        {
            "spec": space.spec,
            "fixed": dict(space.fixed),
            "searched": list(space.searched),
            "budget_per_lemma": settings.audit_budget,
            "seed": settings.seed,
            "verdicts": rows,
        },
    )
    write_csv(
        out / "audit.csv",
        {
            "id": [r["id"] for r in rows],
            "expect": [r["expect"] for r in rows],
            "verdict": [r["verdict"] for r in rows],
            "domain": [r["domain"] for r in rows],
            "tightness": [r["tightness"] for r in rows],
            "plot_ratio": [_plot_ratio(v) for v in verdicts],
            "instances": [r["instances"] for r in rows],
        },
    )
    tightness_plot(
        [v.id for v in verdicts],
        [_plot_ratio(v) for v in verdicts],
        [v.verdict for v in verdicts],
        [v.tightness_text() for v in verdicts],
        out / "audit_tightness.png",
    )
    summary = f"{len(verdicts)} lemmas on spec {space.spec}: " + verdict_counts(verdicts)
    section = Section(
        key="audit",
        title="Audit of the lemmas",
        summary=summary,
        status="bad" if any(not v.ok for v in verdicts) else "ok",
        intro=(
            f"Every bound of the default registry (derivations/lemmas.py) is attacked on "
            f"random and adversarial instances of spec {space.spec} in its assumption set "
            "(the 'searched' column: sizes, radius, the searched trade-off weight and the "
            "fixed scalars). Tightness is the worst "
            "lhs/rhs found (1 = tight), lhs - rhs for difference bounds, and the failure "
            "frequency with its 95% interval for statistical claims. A violated bound "
            "comes with a shrunk counterexample saved as .npz. Bounds about a term the spec "
            "lacks, or stated for other specs, are skipped."
        ),
        tables=[("", table)],
        figures=[
            (
                "audit_tightness.png",
                "Worst observed / bound per lemma on a log scale; statistical claims show "
                "failure frequency / delta. Each bar is labelled with the measured tightness; "
                "lemmas without a ratio (difference bounds, infinite ratios) have a label only.",
            )
        ],
        data=["audit.json", "audit.csv"],
    )
    section.notes += list(space.notes)
    if settings.quick:
        section.notes.append(
            f"Quick run: {settings.audit_budget:g} s of search per lemma; "
            "tightness values are rough lower estimates."
        )
    return section


def verdict_counts(verdicts: list[Any]) -> str:
    """``"9 hold, 1 violated (bcre-psd), 2 skipped, all as expected"``: every verdict counted."""
    parts = []
    for name in ("holds", "violated", "undecided", "error", "skipped"):
        ids = [v.id for v in verdicts if v.verdict == name]
        if not ids:
            continue
        label = "hold" if name == "holds" else name
        shown = f" ({', '.join(ids)})" if name in ("violated", "undecided", "error") else ""
        parts.append(f"{len(ids)} {label}{shown}")
    unexpected = [v.id for v in verdicts if not v.ok]
    tail = f"UNEXPECTED: {', '.join(unexpected)}" if unexpected else "all as expected"
    return ", ".join(parts) + ("; " if unexpected else ", ") + tail


# ----------------------------------------------------------------------------- solver


def _history_columns(result: Any) -> dict[str, list[float]]:
    table = result.history_table()
    # x_k is reached once the iterations before it are done
    seconds = np.concatenate([[0.0], np.cumsum(table["seconds"])[:-1]])
    return {
        "iteration": [int(v) for v in table["iteration"]],
        "loss": [float(v) for v in table["loss"]],
        "grad_norm": [float(v) for v in table["grad_norm"]],
        "step": [float(v) for v in table["step"]],
        "seconds": [float(v) for v in seconds],
        "damping": [float(v) for v in table["damping"]],
        "rows": [int(v) for v in table["rows"]],
    }


def solve_instance(settings: Settings, m: ModuleType, scalars: dict[str, float]) -> Instance:
    """The solver's problem: :meth:`Instance.problem` of size ``solve_n x solve_d``."""
    rng = np.random.default_rng(settings.seed)
    return Instance.problem(m, settings.solve_n, settings.solve_d, rng, scalars=scalars)


def solve_section(out: Path, settings: Settings, *, update: Update) -> Section:
    """Exact and sampled-Hessian Newton on one random instance of the spec."""
    from creality_sym.solve import newton

    m, scalars, notes = spec_setup(settings)
    n, d = settings.solve_n, settings.solve_d
    inst = solve_instance(settings, m, scalars)
    results = {}
    for method in ("exact", "sampled"):
        update(f"{method} Newton, n={n}, d={d}")
        results[method] = newton(
            m, inst.x, A=inst.A, method=method, seed=settings.seed, **inst.params
        )
    update("plotting")
    histories = {k: _history_columns(r) for k, r in results.items()}
    convergence_plot(histories, out / "convergence.png")
    columns: dict[str, list[Any]] = {"method": []}
    for method, h in histories.items():
        columns["method"] += [method] * len(h["iteration"])
        for key, values in h.items():
            columns.setdefault(key, []).extend(values)
    write_csv(out / "convergence.csv", columns)
    shown = ", ".join(f"{k} = {v:g}" for k, v in scalars.items())
    write_json(
        out / "solve.json",
        {
            "instance": {
                "spec": inst.spec,
                "n": n,
                "d": d,
                "scalars": scalars,
                "seed": settings.seed,
                "generator": "creality_sym.instance.Instance.problem",
            },
            "results": {
                k: {key: val for key, val in r.to_dict().items() if key != "x"}
                for k, r in results.items()
            },
        },
    )
    table = Table(
        [
            "method",
            "converged",
            "iterations",
            "final ||grad L||",
            "loss",
            "rows per Hessian",
            "seconds",
            "reason",
        ]
    )
    for method, r in results.items():
        rows = histories[method]["rows"]
        table.rows.append(
            [
                method,
                Cell("yes" if r.converged else "NO", "ok" if r.converged else "bad"),
                Cell(str(r.iterations), "num"),
                Cell(f"{r.grad_norm:.2e}", "num"),
                Cell(f"{r.loss:.12g}", "num"),
                Cell(f"{int(np.median(rows)) if rows else n}", "num"),
                Cell(f"{r.seconds:.3f}", "num"),
                r.reason,
            ]
        )
    gap = float(np.linalg.norm(results["exact"].x - results["sampled"].x))
    ok = all(r.converged for r in results.values())
    summary = "; ".join(
        f"{k} {'converged' if r.converged else 'NOT converged'} in {r.iterations} it "
        f"({r.seconds:.2f} s)"
        for k, r in results.items()
    )
    return Section(
        key="solve",
        title="Newton solver: exact vs sampled Hessian",
        summary=summary,
        status="ok" if ok else "bad",
        intro=(
            f"Random instance of spec {inst.spec} (creality_sym.instance.Instance.problem) with "
            f"n = {n}, d = {d}{', ' + shown if shown else ''}, seed {settings.seed}. Exact mode "
            "uses the structured Hessian; sampled mode replaces Aᵀ diag(δ) A by a leverage-score "
            f"row sample and keeps the low-rank part exact. ||x_exact − x_sampled|| = {gap:.2e}."
        ),
        notes=list(notes),
        tables=[("", table)],
        figures=[
            (
                "convergence.png",
                "Gradient norm per Newton iteration (log scale), exact vs sampled Hessian: "
                "quadratic against linear convergence.",
            )
        ],
        data=["convergence.csv", "solve.json"],
    )
