"""Verification rows and the report that collects them (table, JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: verdicts: a check passed, failed, could not be decided (never a failure: the exact test
#: gave up or ran out of time and numbers agree), or there was nothing to check.
PASS, FAIL, UNDECIDED, NONE = "pass", "FAIL", "undecided", "—"
#: methods run by :func:`creality_sym.verify.verify`; ``generated`` also adds rows of
#: method :data:`GENERATED_C` (the CUDA kernels built as C) when a C compiler exists.
METHODS = ("symbolic", "numeric", "statements", "generated")
GENERATED_C = "generated-c"


@dataclass(frozen=True)
class Row:
    """One verdict: ``quantity`` of ``term`` in spec ``spec`` checked by ``method``.

    ``quantity`` is ``"gradient"`` or ``"hessian"`` (``"loss"`` and ``"import"`` for
    the ``generated`` method); ``verdict`` is ``"pass"``, ``"FAIL"``, ``"undecided"``
    (not proven, not refuted: the detail says why) or ``"—"`` (nothing to check);
    ``statement`` names the statement id for the ``statements`` method.
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

    @property
    def undecided(self) -> bool:
        return self.verdict == UNDECIDED


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

    @property
    def undecided(self) -> list[Row]:
        return [r for r in self.rows if r.undecided]

    def verdicts(self, spec: str) -> dict[str, str]:
        """One verdict per method that ran on ``spec``: ``"FAIL"`` if any row failed,
        else ``"undecided"`` if any row is, else ``"pass"`` (``"—"``: nothing checked)."""
        out: dict[str, str] = {}
        for method in _ordered_methods(self.rows):
            rows = [r for r in self.rows if r.spec == spec and r.method == method]
            if rows:
                out[method] = _verdict(rows)
        return out

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
        methods = _ordered_methods(self.rows)
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
        listed = self.rows if details else self.failures + self.undecided
        if listed:
            out.append("")
            out.append("details:" if details else "failures and undecided checks:")
            for r in listed:
                sid = f" [{r.statement}]" if r.statement else ""
                out.append(
                    f"  {r.verdict} {r.spec}/{r.term}/{r.quantity} {r.method}{sid}: {r.detail}"
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
        if not self.ok:
            out.append(f"{len(self.failures)} FAILED")
        elif self.undecided:
            out.append(f"OK ({len(self.undecided)} undecided, none failed)")
        else:
            out.append("OK")
        return "\n".join(out)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict: ``ok``, ``rows`` (list of dicts), ``timings``."""
        return {"ok": self.ok, "rows": [asdict(r) for r in self.rows], "timings": self.timings}


def _ordered_methods(rows: list[Row]) -> list[str]:
    methods = [m for m in METHODS if any(r.method == m for r in rows)]
    return methods + sorted({r.method for r in rows} - set(methods))


def _verdict(rows: list[Row]) -> str:
    if any(r.failed for r in rows):
        return FAIL
    if any(r.undecided for r in rows):
        return UNDECIDED
    if all(r.verdict == NONE for r in rows):
        return NONE
    return PASS


def _cell(rows: list[Row]) -> str:
    if not rows:
        return ""
    verdict = _verdict(rows)
    ids = [r.statement for r in rows if r.statement]
    return f"{verdict} ({', '.join(ids)})" if ids else verdict
