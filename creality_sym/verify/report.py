"""Verification rows and the report that collects them (table, JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: verdicts: a check passed, failed, or there was nothing to check.
PASS, FAIL, NONE = "pass", "FAIL", "—"
METHODS = ("symbolic", "numeric", "statements")


@dataclass(frozen=True)
class Row:
    """One verdict: ``quantity`` of ``term`` in spec ``spec`` checked by ``method``.

    ``quantity`` is ``"gradient"`` or ``"hessian"``; ``verdict`` is ``"pass"``,
    ``"FAIL"`` or ``"—"`` (nothing to check); ``statement`` names the statement
    id for the ``statements`` method.
    """

    spec: str
    term: str
    quantity: str
    method: str
    verdict: str
    detail: str
    statement: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.verdict == FAIL


@dataclass
class VerificationReport:
    """All rows of one or more verifications, with timings per (spec, method) in seconds."""

    rows: list[Row] = field(default_factory=list)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no row failed."""
        return not any(r.failed for r in self.rows)

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if r.failed]

    def extend(self, other: VerificationReport) -> None:
        """Merge another report into this one."""
        self.rows.extend(other.rows)
        for spec, t in other.timings.items():
            self.timings.setdefault(spec, {}).update(t)

    def table(self, *, details: bool = False) -> str:
        """Plain-text table: one line per (spec, term, quantity), one column per method.

        A cell aggregates its rows (FAIL if any failed, "—" if nothing was checked,
        with the statement ids for the ``statements`` column). Failures are listed
        with their details below the table; ``details=True`` lists every row.
        """
        methods = [m for m in METHODS if any(r.method == m for r in self.rows)]
        methods += sorted({r.method for r in self.rows} - set(methods))
        keys: list[tuple[str, str, str]] = []
        cells: dict[tuple[str, str, str, str], list[Row]] = {}
        for r in self.rows:
            key = (r.spec, r.term, r.quantity)
            if key not in keys:
                keys.append(key)
            cells.setdefault((*key, r.method), []).append(r)
        header = ["spec", "term", "quantity", *methods]
        lines = [header]
        for key in keys:
            lines.append([*key, *(_cell(cells.get((*key, m), [])) for m in methods)])
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        out = [
            "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
            for line in lines
        ]
        out.insert(1, "  ".join("-" * w for w in widths))
        listed = self.rows if details else self.failures
        if listed:
            out.append("")
            out.append("details:" if details else "failures:")
            for r in listed:
                sid = f" [{r.statement}]" if r.statement else ""
                out.append(
                    f"  {r.verdict:4} {r.spec}/{r.term}/{r.quantity} {r.method}{sid}: {r.detail}"
                )
        if self.timings:
            out.append("")
            out.append(
                "seconds: "
                + "; ".join(
                    f"{spec} " + ", ".join(f"{m} {t:.2f}" for m, t in ts.items())
                    for spec, ts in self.timings.items()
                )
            )
        out.append("")
        out.append("OK" if self.ok else f"{len(self.failures)} FAILED")
        return "\n".join(out)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict: ``ok``, ``rows`` (list of dicts), ``timings``."""
        return {"ok": self.ok, "rows": [asdict(r) for r in self.rows], "timings": self.timings}


def _cell(rows: list[Row]) -> str:
    if not rows:
        return ""
    if any(r.failed for r in rows):
        verdict = FAIL
    elif all(r.verdict == NONE for r in rows):
        verdict = NONE
    else:
        verdict = PASS
    ids = [r.statement for r in rows if r.statement]
    return f"{verdict} ({', '.join(ids)})" if ids else verdict
