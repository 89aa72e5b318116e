"""The report's steps in order, each timed and shown by the progress display."""

from __future__ import annotations

import platform
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from creality_sym.instance import DEFAULT_SPEC
from creality_sym.report import numeric, sweep, symbolic
from creality_sym.report.page import Section, render_page
from creality_sym.report.progress import Progress

Update = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    """Sizes and budgets of one report run, its spec and its fixed scalars (``--param``)."""

    quick: bool
    seed: int
    audit_budget: float  # seconds of search per lemma
    solve_n: int  # rows of the solver instance
    solve_d: int
    sweep_n: int  # rows of the trade-off sweep instance
    sweep_d: int
    sweep_points: int  # trade-off values in all, 0 included
    sweep_first: int  # of them on the coarse grid; the rest placed by arc length
    gamma_max: float  # largest trade-off value
    verify_methods: tuple[str, ...]  # methods of creality_sym.verify to run
    spec: str = DEFAULT_SPEC
    params: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def make(
        cls,
        *,
        quick: bool,
        seed: int = 0,
        audit_budget: float | None = None,
        spec: str = DEFAULT_SPEC,
        params: Mapping[str, float] | None = None,
    ) -> Settings:
        """The quick or the full sizes; ``audit_budget`` overrides the default seconds per lemma."""
        common = {"seed": seed, "gamma_max": 2.0, "spec": spec, "params": dict(params or {})}
        if quick:
            return cls(
                quick=True,
                audit_budget=audit_budget or 0.3,
                solve_n=2000,
                solve_d=10,
                sweep_n=200,
                sweep_d=8,
                sweep_points=15,
                sweep_first=6,
                verify_methods=("numeric", "statements"),
                **common,
            )
        return cls(
            quick=False,
            audit_budget=audit_budget or 3.0,
            solve_n=50_000,
            solve_d=80,
            sweep_n=2000,
            sweep_d=20,
            sweep_points=33,
            sweep_first=10,
            verify_methods=("symbolic", "numeric", "statements"),
            **common,
        )


@dataclass(frozen=True)
class ReportResult:
    """Where the page went and the text summary printed at the end."""

    page: Path
    summary: str
    sections: tuple[Section, ...]
    crashed: tuple[str, ...] = ()  # keys of the steps that raised


STEPS = 6


def build_report(
    out: Path,
    settings: Settings,
    *,
    root: Path | None = None,
    live: bool | None = None,
    command: str = "creality report",
) -> ReportResult:
    """Run every step and write ``out/index.html``; ``out`` must exist and be writable.

    ``root``: the project folder to check (see :func:`symbolic.locate`); ``live``:
    draw the progress line (None: only on a terminal); ``command``: the command
    line shown on the page.
    """
    start = time.perf_counter()
    progress = Progress(STEPS, enabled=live)
    sections: list[Section] = []

    with progress.step("derivations") as step:
        sources = symbolic.locate(root)
        spec = symbolic.load_named_spec(sources, settings.spec)
        derivation = symbolic.derivation_of(spec)
        section, _ = symbolic.check_generated(sources, out, spec.name, quick=settings.quick)
        step.update("rendering formulas")
        section.formulas = symbolic.formula_blocks(derivation, out)
        step.summary = section.summary
    sections.append(_timed(section, step.elapsed))

    steps: list[tuple[str, str, str, Callable[[Update], Section]]] = [
        ("verification", "verification", "Verification of the derivation",
         lambda update: symbolic.verification_section(
             derivation, out, seed=settings.seed, methods=settings.verify_methods)),
        ("audit", "audit", "Audit of the lemmas",
         lambda update: numeric.audit_section(out, settings, update=update)),
        ("solve", "solve", "Newton solver: exact vs sampled Hessian",
         lambda update: numeric.solve_section(out, settings, update=update)),
        ("trade-off sweep", "tradeoff", sweep.TITLE,
         lambda update: sweep.sweep_section(out, settings, update=update)),
    ]  # fmt: skip
    for name, key, title, make in steps:
        sections.append(_guarded(progress, name, key, title, make))

    with progress.step("page") as step:
        meta = _meta(settings, command, spec.name, spec.digest, time.perf_counter() - start)
        page = render_page(
            out,
            title="creality report",
            subtitle=(
                f"Spec {spec.name}: {spec.description} "
                f"({'quick' if settings.quick else 'full'} run, seed {settings.seed})"
            ),
            sections=sections,
            meta=meta,
        )
        plots, formulas = _count_images(sections)
        step.summary = f"{page.name} with {plots} plots and {formulas} formula images"
    total = time.perf_counter() - start
    problems = [s.title for s in sections if s.status != "ok"]
    summary = f"report written in {total:.1f} s" + (
        f"; look at: {', '.join(problems)}" if problems else "; every step as expected"
    )
    crashed = tuple(s.key for s in sections if s.crashed)
    return ReportResult(page, summary, tuple(sections), crashed)


def _timed(section: Section, seconds: float) -> Section:
    section.seconds = seconds
    return section


def _guarded(
    progress: Progress, name: str, key: str, title: str, make: Callable[[Update], Section]
) -> Section:
    """Run one step; an exception becomes a failed section (with its traceback), not a crash.

    ``OSError`` is not caught: a report that cannot be written is an error of the run.
    """
    with progress.step(name) as step:
        try:
            section = make(step.update)
        except OSError:
            raise
        except Exception as exc:  # a broken step must not hide the other results
            section = Section(
                key=key,
                title=title,
                summary=f"FAILED: {type(exc).__name__}: {exc}",
                status="bad",
                text=traceback.format_exc(),
                crashed=True,
            )
        step.summary = section.summary
    return _timed(section, step.elapsed)


def _count_images(sections: list[Section]) -> tuple[int, int]:
    """(plots, rendered formulas) on the page."""
    plots = sum(len(s.figures) for s in sections)
    formulas = sum(1 for s in sections for b in s.formulas for f in b.formulas if f.image)
    return plots, formulas


def _meta(
    settings: Settings, command: str, spec_name: str, digest: str, seconds: float
) -> dict[str, str]:
    import matplotlib
    import scipy
    import sympy

    return {
        "command": command,
        "spec": f"{spec_name} (sha256 {digest[:16]}…)",
        "mode": "quick" if settings.quick else "full",
        "seed": str(settings.seed),
        "parameters": ", ".join(f"{k}={v:g}" for k, v in settings.params.items()) or "defaults",
        "sizes": (
            f"solve n={settings.solve_n}, d={settings.solve_d}; "
            f"sweep n={settings.sweep_n}, d={settings.sweep_d}, "
            f"{settings.sweep_points} trade-off values in [0, {settings.gamma_max:g}]; "
            f"audit {settings.audit_budget:g} s per lemma"
        ),
        "time to build": f"{seconds:.1f} s (excluding the page)",
        "python": f"{platform.python_version()} on {platform.platform(terse=True)}",
        "libraries": (
            f"numpy {np.__version__}, scipy {scipy.__version__}, "
            f"sympy {sympy.__version__}, matplotlib {matplotlib.__version__}"
        ),
    }
