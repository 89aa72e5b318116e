"""``creality audit``: attack every stated bound, or replay a counterexample.

Exit status: 0 when every verdict matches its bound's ``expect`` (for
``--replay``: when the replay reproduces the recorded verdict), 1 otherwise
(the mismatches are named), 2 on bad arguments or files.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from creality_sym.audit.bounds import default_bounds, load_bounds, select
from creality_sym.audit.instance import DEFAULT_MODEL
from creality_sym.audit.replay import replay
from creality_sym.audit.runner import DEFAULT_BUDGET, Verdict, audit

#: where counterexamples go unless ``--out`` says otherwise
DEFAULT_OUT = "creality-audit"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lemma",
        metavar="ID",
        nargs="+",
        action="extend",
        default=[],
        help="audit only these bound ids (default: all)",
    )
    parser.add_argument(
        "--bounds",
        metavar="FILE",
        help="a Python file defining BOUNDS (default: derivations/lemmas.py)",
    )
    parser.add_argument("--seed", type=int, default=0, help="search seed (default 0)")
    parser.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET,
        metavar="SECONDS",
        help=f"total search time for all selected bounds (default {DEFAULT_BUDGET:g}); "
        "shrinking each counterexample adds up to 2 s",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="K",
        help="bounds audited in parallel processes (default 1)",
    )
    parser.add_argument(
        "--replay", metavar="FILE", help="re-evaluate a saved counterexample (.npz) and exit"
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=DEFAULT_OUT,
        help=f"folder for counterexample .npz files (default ./{DEFAULT_OUT})",
    )
    parser.add_argument(
        "--model", metavar="MODULE", default=None, help=f"model module (default {DEFAULT_MODEL})"
    )


def format_table(verdicts: Sequence[Verdict]) -> str:
    """The verdict table: id, expect, verdict, instances, tightness, time."""
    head = ("id", "expect", "verdict", "instances", "tightness (worst lhs/rhs)", "time")
    rows = [
        (
            v.id,
            v.expect,
            v.verdict + ("" if v.ok else " !"),
            str(v.instances),
            v.tightness_text(),
            f"{v.seconds:.1f}s",
        )
        for v in verdicts
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    right = {3, 5}

    def fmt(r: Sequence[str]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def _details(v: Verdict) -> str:
    lines = [f"{v.id}: {v.statement}"]
    if v.counterexample is not None:
        ce = v.counterexample
        lines.append(f"  counterexample (n={ce.n}, d={ce.d}): lhs = {v.lhs!r} > rhs = {v.rhs!r}")
        lines += ["    " + line for line in ce.describe().splitlines()]
        if v.path:
            lines.append(f"  saved: {v.path}   (replay: creality audit --replay {v.path})")
    elif v.kind == "statistical":
        lines.append(f"  failures {v.failures}/{v.instances} trials; {v.tightness_text()}")
    if v.message:
        lines.append(f"  note: {v.errors} evaluation error(s); first: {v.message}")
    return "\n".join(lines)


def _run_replay(args: argparse.Namespace) -> int:
    r = replay(args.replay, bounds=args.bounds, model=args.model)
    print(f"replay {args.replay}: bound {r.bound_id}")
    print(r.instance.describe(digits=17))
    print(f"lhs = {r.lhs!r}")
    print(f"rhs = {r.rhs!r}")
    print(
        f"verdict: {r.verdict} (recorded: {r.recorded_verdict}; "
        f"values {'identical' if r.exact else 'differ'}: recorded lhs = {r.recorded_lhs!r}, "
        f"rhs = {r.recorded_rhs!r})"
    )
    if r.assumptions_broken:
        print(f"instance breaks the assumptions: {', '.join(r.assumptions_broken)}")
    print("reproduced" if r.reproduced else "NOT reproduced")
    return 0 if r.reproduced else 1


def run(args: argparse.Namespace) -> int:
    try:
        if args.replay:
            return _run_replay(args)
        bounds = load_bounds(args.bounds) if args.bounds else default_bounds()
        bounds = select(bounds, args.lemma)
        start = time.monotonic()
        verdicts = audit(
            bounds,
            model=args.model,
            seed=args.seed,
            budget=args.budget,
            workers=args.workers,
            out=args.out,
        )
    except ValueError as exc:
        print(f"creality audit: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(verdicts))
    print()
    for v in verdicts:
        if v.verdict != "holds" or v.kind == "statistical" or v.message:
            print(_details(v))
            print()
    bad = [v for v in verdicts if not v.ok]
    print(f"{len(verdicts)} bounds, seed {args.seed}, {time.monotonic() - start:.1f}s")
    if bad:
        names = ", ".join(f"{v.id} (expected {v.expect}, got {v.verdict})" for v in bad)
        print(f"MISMATCH: {names}")
        return 1
    print("every verdict matches its expectation")
    return 0
