"""``creality report --out DIR``: the full study as one offline HTML page.

Checks the derivations against the generated code, verifies the default
spec, audits the default lemma registry, solves a random instance with the
exact and the sampled-Hessian Newton method, sweeps gamma from the precise
mode (0) to the creative one, and writes ``DIR/index.html`` with its images
and data files beside it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from creality_sym.report.study import Settings, build_report

EXIT_USAGE = 2


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("creality-report"),
        metavar="DIR",
        help="folder to write index.html, images and data into "
        "(created if missing; default: ./creality-report)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and a short audit budget (well under a minute)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of every random choice (instances, audit, sampling)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="project folder whose derivations/ and generated/ are checked "
        "(default: the current folder when it is a project, "
        "otherwise the installed packages)",
    )
    parser.add_argument(
        "--audit-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds of search per lemma (default: 0.3 quick, 3 full)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="never draw the live progress line (it is drawn only on a terminal)",
    )


def prepare_out(out: Path) -> str | None:
    """Create ``out`` and check it is writable; an error message, or None when fine."""
    if out.exists() and not out.is_dir():
        return f"--out {out}: exists and is not a folder"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".creality-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        return f"--out {out}: cannot write there ({exc.strerror or exc})"
    return None


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, for the page."""
    parts = ["creality", "report", "--out", str(args.out)]
    if args.quick:
        parts.append("--quick")
    if args.seed:
        parts += ["--seed", str(args.seed)]
    if args.root is not None:
        parts += ["--root", str(args.root)]
    if args.audit_budget is not None:
        parts += ["--audit-budget", f"{args.audit_budget:g}"]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    if args.audit_budget is not None and not args.audit_budget > 0:
        print(
            f"creality report: --audit-budget must be > 0 seconds; got {args.audit_budget}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    problem = prepare_out(args.out)
    if problem:
        print(f"creality report: {problem}", file=sys.stderr)
        return EXIT_USAGE
    settings = Settings.make(quick=args.quick, seed=args.seed, audit_budget=args.audit_budget)
    try:
        result = build_report(
            args.out.resolve(),
            settings,
            root=args.root,
            live=False if args.no_progress else None,
            command=command_line(args),
        )
    except OSError as exc:
        print(f"creality report: cannot write the report into {args.out}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:  # SpecError and argument errors of the pieces
        print(f"creality report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(result.summary)
    print(result.page)
    if result.crashed:
        print(
            f"creality report: step(s) failed: {', '.join(result.crashed)} (see the page)",
            file=sys.stderr,
        )
        return 1
    return 0
