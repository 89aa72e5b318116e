"""``creality derive [SPEC ...]``: derive, verify and regenerate ``generated/``.

Every spec is loaded and derived (all errors are reported, one ``file:line: ...``
line each, exit 2); the tree is rendered in memory and, unless ``--no-verify``,
the named specs (default: all) are verified by every method, the ``generated``
one importing the freshly rendered modules from a temporary folder. Only when
nothing failed is ``generated/`` replaced; its manifest records per spec which
methods ran and their verdicts (``"unverified"`` with ``--no-verify``; specs not
named keep their recorded status while their spec and generated files are
unchanged). A failed verification leaves ``generated/`` untouched (exit 1),
except that a failing registered *statement* alone still writes the tree
(exit 1). Progress goes to stderr, one line per spec and method.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from creality_sym.derive import Derivation, derive
from creality_sym.generate import (
    MANIFEST,
    Layout,
    load_each,
    previous_verification,
    render_all,
    write_tree,
)
from creality_sym.spec import Spec, SpecError

#: files that record the verification (the rest is written exactly as verified).
STATUS_FILES = (MANIFEST, "DERIVATIONS.md")
#: methods whose failure refuses the swap (a statement failure alone does not).
BLOCKING_METHODS = ("symbolic", "numeric", "generated", "generated-c")
DEFAULT_TIMEOUT = 600.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "specs",
        nargs="*",
        metavar="SPEC",
        help="spec names to verify (default: every spec in derivations/); all are regenerated",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path.cwd(),
        help="project folder holding derivations/ and generated/ (default: .)",
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="regenerate without verifying (recorded as unverified; `creality check` fails)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the numeric checks")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="time limit for one spec's derivation, and for its verification "
        f"(default {DEFAULT_TIMEOUT:g}; 0: none)",
    )
    parser.add_argument(
        "--check-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="time limit of one exact symbolic test before it is reported undecided (default 20)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def method_legend() -> str:
    """How each verification method decides, for the printed table."""
    from creality_sym.verify import generated, numeric, statements, symbolic

    sizes = ", ".join(f"({n},{d})" for n, d in symbolic.SIZES)
    instances = ", ".join(f"({n},{d})" for n, d, *_ in numeric.INSTANCES)
    gen = ", ".join(f"({n},{d})" for n, d, *_ in generated.INSTANCES)
    return "\n".join(
        [
            f"symbolic:    at (n,d) in {sizes}: {symbolic.HOW}",
            f"numeric:     at (n,d) in {instances}: directional derivatives vs central "
            f"differences (tol {numeric.FD_TOL:g}) and mpmath at {numeric.MP_DPS} digits "
            f"(tol {numeric.MP_TOL:g})",
            f"statements:  each registered closed form vs the derivation, exactly at "
            f"n={statements.EXACT_N} and numerically at n={statements.NUMERIC_N}",
            f"generated:   at (n,d) in {gen} (the last with f one-hot): {generated.HOW}",
            f"generated-c: the CUDA kernels built as C ({generated.COMPILER}) vs the module "
            f"(rel. tol {generated.KERNEL_TOL:g}); skipped without a C compiler",
            "undecided:   neither proven nor refuted (the detail says why); not a failure",
        ]
    )


class _Progress:
    """One line per step on stderr (or nothing when quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(f"creality derive: {text}", file=sys.stderr, flush=True)


def spec_location(spec: Spec) -> str:
    """``file:line`` of the spec's ``SPEC = ...`` assignment (line 1 when not found)."""
    match = re.search(r"^SPEC\s*[:=]", spec.source or "", flags=re.MULTILINE)
    line = spec.source.count("\n", 0, match.start()) + 1 if match else 1
    return f"{spec.path}:{line}"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, SpecError) else text


def _located(spec: Spec, what: str, exc: BaseException) -> str:
    message = str(exc)
    if isinstance(exc, SpecError) and re.match(r"^\S+:\d+: ", message):
        return " ".join(message.split())
    return f"{spec_location(spec)}: spec {spec.name}: {what}: {_one_line(exc)}"


def run(args: argparse.Namespace) -> int:
    from creality_sym.verify._limits import TimeLimitExceeded, time_limit

    layout = Layout(args.root)
    say = _Progress(args.quiet)
    timeout = args.timeout if args.timeout and args.timeout > 0 else None
    start = time.perf_counter()
    try:
        every, errors = load_each(layout)
        known = sorted(p.stem for p in layout.spec_files())
    except SpecError as exc:
        return _refuse([str(exc)])
    messages = [" ".join(str(e).split()) for e in errors]
    unknown = [n for n in args.specs if n not in known]
    if unknown:
        messages.append(f"unknown spec(s) {unknown}; available: {known} in {layout.derivations}")
    derivations: list[Derivation] = []
    for spec in every:
        t0 = time.perf_counter()
        lim = None
        try:
            with time_limit(timeout, f"deriving {spec.name}") as lim:
                derivations.append(derive(spec))
        except TimeLimitExceeded as exc:
            if exc.limit is not lim:
                raise
            messages.append(
                f"{spec_location(spec)}: spec {spec.name}: the derivation took longer than "
                f"{timeout:g} s (--timeout); simplify the loss or raise the limit"
            )
            continue
        except Exception as exc:
            messages.append(_located(spec, "cannot derive", exc))
            continue
        say(f"{spec.name}: derived ({time.perf_counter() - t0:.1f} s)")
    files: dict[str, str] = {}
    if not messages:
        files, render_errors = _render(derivations, layout)
        messages += render_errors
    if messages:
        return _refuse(messages)
    selected = [d for d in derivations if not args.specs or d.spec.name in args.specs]
    # unchanged specs keep their recorded status; verified ones get their new verdicts
    statuses = previous_verification(layout, derivations, files)
    blocking: list[str] = []
    statement_failures: list[str] = []
    if not args.no_verify:
        outcome = _verify(selected, files, args, timeout, say)
        if isinstance(outcome, list):
            return _refuse(outcome)
        report, verdicts = outcome
        statuses.update(verdicts)
        print(report.table())
        print(method_legend())
        print()
        for name, verdict in verdicts.items():
            bad = sorted(m for m, v in verdict.items() if v == "FAIL")
            if any(m in BLOCKING_METHODS for m in bad):
                blocking.append(f"{name} ({', '.join(bad)})")
            elif bad:
                statement_failures.append(name)
    if blocking:
        print(
            "creality derive: verification failed for " + "; ".join(blocking) + "; generated/ "
            "left unchanged",
            file=sys.stderr,
        )
        return 1
    final = render_all(derivations, layout, statuses)  # with the statuses recorded
    changed = [rel for rel in final if rel not in STATUS_FILES and final[rel] != files.get(rel)]
    if changed or set(final) != set(files):
        return _refuse([f"rendering is not deterministic: {sorted(changed)[:3]} changed"])
    write_tree(final, layout.generated)
    files = final
    elapsed = time.perf_counter() - start
    unverified = sorted(d.spec.name for d in derivations if d.spec.name not in statuses)
    note = f"; unverified: {', '.join(unverified)}" if unverified else ""
    print(
        f"wrote {len(files)} files to {layout.generated} "
        f"({len(derivations)} specs, {elapsed:.1f} s{note})"
    )
    if statement_failures:
        print(
            "creality derive: some registered statements disagree with the derivation of "
            f"{', '.join(statement_failures)} (see FAIL rows above); generated/ was rewritten "
            "from the verified derivation",
            file=sys.stderr,
        )
        return 1
    return 0


def _refuse(messages: list[str]) -> int:
    for message in messages:
        print(f"creality derive: {message}", file=sys.stderr)
    count = len(messages)
    print(
        f"creality derive: {count} error{'s' if count != 1 else ''}; generated/ left unchanged",
        file=sys.stderr,
    )
    return 2


def _render(derivations: list[Derivation], layout: Layout) -> tuple[dict[str, str], list[str]]:
    """The rendered tree, or (when rendering fails) which specs fail to render and why."""
    try:
        return render_all(derivations, layout), []
    except Exception as first:
        errors = []
        for d in derivations:
            try:
                render_all([d], layout)
            except Exception as exc:
                errors.append(_located(d.spec, "cannot generate code", exc))
        return {}, errors or [f"cannot generate code: {_one_line(first)}"]


def _verify(
    selected: list[Derivation],
    files: dict[str, str],
    args: argparse.Namespace,
    timeout: float | None,
    say: _Progress,
) -> tuple[object, dict[str, dict[str, str]]] | list[str]:
    """Verify ``selected`` against the rendered ``files``: (report, verdicts) or errors."""
    from creality_sym.verify import VerificationReport, verify
    from creality_sym.verify._candidate import candidate_tree
    from creality_sym.verify._limits import TimeLimitExceeded, time_limit

    report = VerificationReport()
    errors: list[str] = []

    def progress(spec: str, method: str, seconds: float, rows: list) -> None:
        verdicts = sorted({r.verdict for r in rows})
        say(f"{spec}: {method}: {', '.join(verdicts) or 'nothing to check'} ({seconds:.1f} s)")

    with candidate_tree(files) as candidate:
        for d in selected:
            lim = None
            try:
                with time_limit(timeout, f"verifying {d.spec.name}") as lim:
                    part = verify(
                        d,
                        seed=args.seed,
                        candidate=candidate,
                        seconds=args.check_timeout,
                        progress=progress,
                    )
            except TimeLimitExceeded as exc:
                if exc.limit is not lim:
                    raise
                errors.append(
                    f"{spec_location(d.spec)}: spec {d.spec.name}: the verification took longer "
                    f"than {timeout:g} s (--timeout); simplify the loss or raise the limit"
                )
                continue
            report.extend(part)
    if errors:
        return errors
    return report, {d.spec.name: report.verdicts(d.spec.name) for d in selected}
