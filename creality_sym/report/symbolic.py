"""Report sections on the symbolic side: the derivation check and the verification.

Which ``derivations/`` and ``generated/`` are checked: the project folder
``root`` when given, otherwise the embedded default (the installed packages
``creality_derivations`` and ``creality_generated``); never the current
folder just because it looks like a project.

Nothing is ever written into the checked folders: when ``generated/`` is
stale, the freshly generated tree goes to ``OUT/generated/`` for inspection
and the page says so.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from creality_sym.derive import Derivation, TermDerivation, derive
from creality_sym.generate import Layout, derive_all, render_all, stale_report, write_tree
from creality_sym.instance import DEFAULT_SPEC as INSTANCE_DEFAULT_SPEC
from creality_sym.latex import hessian_latex, vector_latex
from creality_sym.report.figures import render_formula
from creality_sym.report.page import Cell, Formula, FormulaBlock, Section, Table, write_json
from creality_sym.spec import Spec, SpecError, embedded_derivations, load_spec

#: the spec a report is about unless ``--spec`` names another
DEFAULT_SPEC = INSTANCE_DEFAULT_SPEC


@dataclass
class Sources:
    """The folders a report reads: a :class:`Layout` and how it was chosen."""

    layout: Layout
    origin: str  # "project" or "installed"


def installed_generated() -> Path:
    """Folder of the installed ``creality_generated`` package (what the solver imports)."""
    spec = importlib.util.find_spec("creality_generated")
    if spec is None or not spec.submodule_search_locations:
        raise SpecError("the generated package creality_generated is not installed")
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def locate(root: Path | None) -> Sources:
    """The derivations/generated pair to check: ``root``'s, else the embedded default."""
    if root is not None:
        if not (Path(root) / "derivations").is_dir():
            raise SpecError(f"--root {root}: no derivations/ folder there")
        return Sources(Layout(root), "project")
    derivations = embedded_derivations()
    layout = Layout(derivations.parent, derivations=derivations, generated=installed_generated())
    return Sources(layout, "installed")


def load_named_spec(sources: Sources, name: str = DEFAULT_SPEC) -> Spec:
    """The spec ``name`` as found in the checked ``derivations/``."""
    path = sources.layout.derivations / f"{name}.py"
    if not path.is_file():
        raise SpecError(f"the spec {name} is missing from {sources.layout.derivations}")
    return load_spec(path)


def default_spec(sources: Sources) -> Spec:
    """The default spec as found in the checked ``derivations/``."""
    return load_named_spec(sources, DEFAULT_SPEC)


def derivations_md_section(generated: Path, name: str) -> str | None:
    """The section of ``generated/DERIVATIONS.md`` about spec ``name`` (None when absent)."""
    path = generated / "DERIVATIONS.md"
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    head = f"\n## `{name}`\n"
    start = text.find(head)
    if start < 0:
        return None
    end = text.find("\n## ", start + len(head))
    return text[start + 1 : end if end >= 0 else len(text)].rstrip() + "\n"


def hash_report(layout: Layout) -> list[str]:
    """Reasons ``generated/`` differs from its manifest (empty when in sync by hashes).

    Every spec file must have the sha256 the manifest records, and every
    generated file listed there its recorded sha256; nothing is derived.
    """
    path = layout.generated / "manifest.json"
    if not path.is_file():
        return [f"{path} is missing: run `creality derive`"]
    try:
        manifest = json.loads(path.read_text())
        recorded, files = dict(manifest["specs"]), dict(manifest["files"])
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{path} is not a manifest ({exc})"]
    problems = []
    current = {p.stem: p for p in layout.spec_files()}
    for spec, spec_path in current.items():
        entry = recorded.get(spec)
        if entry is None:
            problems.append(f"spec {spec} ({spec_path}) has never been generated")
        elif entry.get("sha256") != _sha256(spec_path):
            problems.append(f"spec {spec} is stale: {spec_path} changed since the last derive")
    problems += [
        f"spec {s} was removed but is still generated" for s in recorded if s not in current
    ]
    for rel, digest in files.items():
        target = layout.generated / rel
        if not target.is_file():
            problems.append(f"generated/{rel} is missing")
        elif _sha256(target) != digest:
            problems.append(f"generated/{rel} differs from its manifest entry")
    return problems


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_generated(
    sources: Sources, out: Path, name: str = DEFAULT_SPEC, *, quick: bool = False
) -> tuple[Section, list[str]]:
    """Compare ``generated/`` with what ``derivations/`` generate; returns (section, problems).

    ``quick``: compare hashes with the manifest only (:func:`hash_report`),
    without deriving. When stale, the fresh tree is written to
    ``out/generated`` (never into the checked folder).
    """
    layout = sources.layout
    problems = hash_report(layout) if quick else stale_report(layout)
    where = (
        f"project folder {layout.root}"
        if sources.origin == "project"
        else "installed packages creality_derivations / creality_generated"
    )
    section = Section(
        key="derivations",
        title="Derivations and generated code",
        summary="",
        intro=(
            f"Spec {name}: {layout.derivations / (name + '.py')}. Generated code: "
            f"{layout.generated} ({where}). The gradient and Hessian below are derived by SymPy "
            "for symbolic n and d; gradient = Aᵀ g, Hessian = Aᵀ B A with B diagonal plus rank "
            "two (plus a low-rank part U C Uᵀ for global sums)."
        ),
    )
    md = derivations_md_section(layout.generated, name)
    if md is not None:
        (out / "derivation.md").write_text(md, encoding="utf-8")
        section.data.append("derivation.md")
    else:
        section.notes.append(f"generated/DERIVATIONS.md has no section for spec {name}.")
    running = installed_generated()
    if running != layout.generated.resolve():
        section.notes.append(
            f"The solver and the audit run the installed code in {running}, "
            f"not the checked {layout.generated}."
        )
    if problems:
        fresh = out / "generated"
        write_tree(render_all(derive_all(layout), layout), fresh)
        section.status = "warn"
        section.summary = f"generated/ is STALE ({len(problems)} problem(s))"
        section.notes += problems
        section.notes.append(
            f"Freshly generated code was written to {fresh.name}/ beside this page; the numbers "
            "in this report come from the stale installed code. Run `creality derive` to update."
        )
    else:
        section.summary = "generated/ is in sync with derivations/" + (
            " (by hashes)" if quick else ""
        )
    if quick:
        section.notes.append(
            "Quick run: generated/ was checked against the sha256 of every spec and generated "
            "file in its manifest; the full run regenerates everything and compares bytes."
        )
    write_json(
        out / "derivations.json",
        {
            "spec": name,
            "origin": sources.origin,
            "derivations": str(layout.derivations),
            "generated": str(layout.generated),
            "running": str(running),
            "in_sync": not problems,
            "problems": problems,
        },
    )
    section.data.insert(0, "derivations.json")
    return section, problems


def _term_lines(td: TermDerivation) -> list[str]:
    lines: list[str] = []
    if td.has_z:
        lines.append(rf"\phi = {vector_latex(td.loss_z)}")
        lines.append(rf"\nabla_x L = A^\top g, \quad g = {vector_latex(td.z_gradient)}")
        lines.append(r"\nabla_x^2 L = A^\top B A")
        lines += hessian_latex(td)
    if td.has_x:
        lines.append(rf"\psi(x) = {vector_latex(td.loss_x)}")
        lines.append(rf"\nabla_x \psi = {vector_latex(td.x_gradient)}")
        lines.append(rf"\nabla_x^2 \psi = \operatorname{{diag}}({vector_latex(td.x_hessian)})")
    return lines


def loss_latex(spec: Spec) -> str:
    """The loss of ``spec`` in one display line."""
    loss = " + ".join(
        (vector_latex(t.weight) + r"\," if t.weight != 1 else "") + (t.latex or t.name)
        for t in spec.terms
    )
    scale = "" if spec.logit_scale == 1 else vector_latex(spec.logit_scale) + r"\,"
    return rf"L(x) = {loss}, \qquad f = \operatorname{{softmax}}({scale}A x)"


def formula_blocks(derivation: Derivation, out: Path) -> list[FormulaBlock]:
    """The loss, then each term's and the total's gradient and Hessian, as images + LaTeX."""
    folder = out / "formulas"
    folder.mkdir(exist_ok=True)
    count = 0

    def formula(latex: str) -> Formula:
        nonlocal count
        count += 1
        name = f"formulas/eq{count:02d}.png"
        size = render_formula(latex, out / name)
        if size is None:
            return Formula(latex)
        # drawn at twice the page's resolution: shown at half size, sharp on dense screens
        return Formula(latex, name, width=size[0] // 2, height=size[1] // 2)

    blocks = [FormulaBlock("Loss", [formula(loss_latex(derivation.spec))])]
    for td in derivation.all:
        title = "Total loss" if td.name == "total" else f"Term {td.name} (unweighted)"
        blocks.append(FormulaBlock(title, [formula(line) for line in _term_lines(td)]))
    return blocks


def derivation_of(spec: Spec) -> Derivation:
    """The structured derivation of ``spec``."""
    return derive(spec)


def _overview(rows: list) -> Table:
    """One line per (term, quantity), one column per method: pass / FAIL / — per cell."""
    methods = list(dict.fromkeys(r.method for r in rows))
    keys = list(dict.fromkeys((r.term, r.quantity) for r in rows))
    table = Table(["term", "quantity", *methods])
    for term, quantity in keys:
        line: list[Cell | str] = [term, quantity]
        for method in methods:
            cell = [r for r in rows if (r.term, r.quantity, r.method) == (term, quantity, method)]
            ids = ", ".join(r.statement for r in cell if r.statement)
            if any(r.failed for r in cell):
                verdict, css = "FAIL", "bad"
            elif cell and any(r.verdict == "pass" for r in cell):
                verdict, css = "pass", "ok"
            else:
                verdict, css = ("—" if cell else ""), ""
            line.append(Cell(f"{verdict} ({ids})" if ids else verdict, css))
        table.rows.append(line)
    return table


def verification_section(
    derivation: Derivation, out: Path, *, seed: int, methods: tuple[str, ...] | None = None
) -> Section:
    """Run the verification of ``derivation`` (all methods, or ``methods``) and show every row."""
    from creality_sym.verify import METHODS, verify

    chosen = tuple(methods or METHODS)
    report = verify(derivation, methods=chosen, seed=seed)
    write_json(out / "verification.json", report.to_dict())
    rows = report.rows
    failed = [r for r in rows if r.failed]
    table = Table(["term", "quantity", "method", "statement", "verdict", "detail"])
    for r in rows:
        css = "bad" if r.failed else ("ok" if r.verdict == "pass" else "")
        table.rows.append(
            [r.term, r.quantity, r.method, r.statement, Cell(r.verdict, css), r.detail]
        )
    section = Section(
        key="verification",
        title="Verification of the derivation",
        summary=(
            f"{len(rows)} checks ({', '.join(chosen)}): "
            + ("all pass" if not failed else f"{len(failed)} FAILED")
        ),
        status="bad" if failed else "ok",
        intro=(
            "Each closed form is checked by independent methods: symbolic (brute-force SymPy "
            "differentiation of the written-out loss at small concrete sizes, decided exactly), "
            "numeric (float64 against finite differences and mpmath), and statements (the "
            f"paper-style closed forms registered in the spec {derivation.spec.name})."
        ),
        tables=[("Overview", _overview(rows)), ("All checks", table)],
        text=report.table(details=True),
        data=["verification.json"],
    )
    skipped = [m for m in METHODS if m not in chosen]
    if skipped:
        section.notes.append(
            f"Quick run: the {', '.join(skipped)} method was skipped; run without --quick "
            "for the full verification."
        )
    return section
