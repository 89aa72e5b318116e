"""``creality derive [SPEC ...]``: derive, verify and regenerate ``generated/``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from creality_sym.derive import derive
from creality_sym.generate import Layout, derive_all, load_all, render_all, write_tree
from creality_sym.spec import SpecError

DERIVATION_METHODS = ("symbolic", "numeric")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "specs",
        nargs="*",
        metavar="SPEC",
        help="spec names to verify (default: every spec in derivations/)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path.cwd(),
        help="project folder holding derivations/ and generated/ (default: .)",
    )
    parser.add_argument(
        "--no-verify", action="store_true", help="regenerate without running the verification"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the numeric checks")


def method_legend() -> str:
    """How each verification method decides, for the printed table."""
    from creality_sym.verify import numeric, statements, symbolic

    sizes = ", ".join(f"({n},{d})" for n, d in symbolic.SIZES)
    instances = ", ".join(f"({n},{d})" for n, d, *_ in numeric.INSTANCES)
    return "\n".join(
        [
            f"symbolic:   at (n,d) in {sizes}: {symbolic.HOW}",
            f"numeric:    at (n,d) in {instances}: directional derivatives vs central "
            f"differences (tol {numeric.FD_TOL:g}) and mpmath at {numeric.MP_DPS} digits "
            f"(tol {numeric.MP_TOL:g})",
            f"statements: each registered closed form vs the derivation, exactly at "
            f"n={statements.EXACT_N} and numerically at n={statements.NUMERIC_N}",
        ]
    )


def run(args: argparse.Namespace) -> int:
    layout = Layout(args.root)
    start = time.perf_counter()
    try:
        selected = load_all(layout, args.specs or None)
        derivations = derive_all(layout)
    except SpecError as exc:
        print(f"creality derive: {exc}", file=sys.stderr)
        return 2
    statements_ok = True
    if not args.no_verify:
        from creality_sym.verify import verify

        for spec in selected:
            report = verify(derive(spec), seed=args.seed)
            print(report.table())
            print(method_legend())
            print()
            bad = [r for r in report.rows if r.verdict == "FAIL"]
            if any(r.method in DERIVATION_METHODS for r in bad):
                print(
                    f"creality derive: the derivation of {spec.name} failed verification; "
                    "generated/ left unchanged",
                    file=sys.stderr,
                )
                return 1
            statements_ok = statements_ok and not bad
    files = render_all(derivations, layout)
    write_tree(files, layout.generated)
    elapsed = time.perf_counter() - start
    print(
        f"wrote {len(files)} files to {layout.generated} "
        f"({len(derivations)} specs, {elapsed:.1f} s)"
    )
    if not statements_ok:
        print(
            "creality derive: some registered statements disagree with the derivation "
            "(see FAIL rows above); generated/ was rewritten from the verified derivation",
            file=sys.stderr,
        )
        return 1
    return 0
