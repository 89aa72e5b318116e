"""The report folder: ``index.html`` (self-contained, offline) and the data files beside it.

The page is rendered from ``templates/report.html.jinja`` with autoescaping;
images and data files are referenced by relative paths, so the folder can be
moved, zipped or opened from disk without a network.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Cell:
    """A table cell: text, an optional CSS class (``ok``, ``bad``, ``warn``, ``num``),
    a tooltip and a link (a path relative to the page) shown after the text."""

    text: str
    css: str = ""
    title: str = ""
    href: str = ""


@dataclass
class Table:
    """A plain table for the page; ``rows`` hold :class:`Cell` or strings."""

    headers: list[str]
    rows: list[list[Cell | str]] = field(default_factory=list)

    def cells(self) -> list[list[Cell]]:
        return [[c if isinstance(c, Cell) else Cell(str(c)) for c in row] for row in self.rows]


@dataclass
class Formula:
    """A display formula: its LaTeX source and, when mathtext could draw it, an image."""

    latex: str
    image: str | None = None
    width: int = 0
    height: int = 0


@dataclass
class FormulaBlock:
    """A titled group of formulas (one loss term, or the total)."""

    title: str
    formulas: list[Formula]


@dataclass
class Section:
    """One part of the report: a heading, a status line, and what to show."""

    key: str
    title: str
    summary: str
    status: str = "ok"  # "ok", "warn" or "bad"
    seconds: float = 0.0
    intro: str = ""
    notes: list[str] = field(default_factory=list)
    formulas: list[FormulaBlock] = field(default_factory=list)
    tables: list[tuple[str, Table]] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (file, caption)
    data: list[str] = field(default_factory=list)  # data files behind this section
    text: str = ""  # preformatted text (e.g. the plain verification table)
    crashed: bool = False  # the step raised; ``text`` holds the traceback


def _clean(value: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, non-finite floats to strings."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "tolist"):
        return _clean(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON (numpy values converted, inf/nan as strings)."""
    path.write_text(json.dumps(_clean(data), indent=2, sort_keys=False) + "\n")
    return path


def write_csv(path: Path, columns: Mapping[str, Sequence[Any]]) -> Path:
    """Write equal-length ``columns`` as a CSV file with a header row."""
    names = list(columns)
    lengths = {len(columns[k]) for k in names}
    if len(lengths) > 1:
        raise ValueError(f"CSV columns of {path.name} differ in length: {sorted(lengths)}")
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(names)
        for row in zip(*(columns[k] for k in names), strict=True):
            writer.writerow([_format(v) for v in row])
    return path


def _format(v: Any) -> str:
    if isinstance(v, float) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "f"):
        return repr(float(v))
    return str(v)


def render_page(
    out: Path, *, title: str, subtitle: str, sections: Sequence[Section], meta: Mapping[str, str]
) -> Path:
    """Write ``out/index.html`` and return its path."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    html = env.get_template("report.html.jinja").render(
        title=title, subtitle=subtitle, sections=sections, meta=meta
    )
    path = out / "index.html"
    path.write_text(html, encoding="utf-8")
    return path
