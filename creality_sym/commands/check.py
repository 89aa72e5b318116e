"""``creality check``: is ``generated/`` in sync with ``derivations/``, and was it verified?

Exit 0 when every spec's generated code is what the specs generate and was
written by a verifying ``creality derive``; 1 when something is stale or a spec
was written unverified (``--no-verify``), naming it; 2 when a spec cannot be
read (``file:line: syntax error`` and the like).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from creality_sym.generate import Layout, stale_report, syntax_errors, verification_problems
from creality_sym.spec import SpecError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root",
        type=Path,
        default=Path.cwd(),
        help="project folder holding derivations/ and generated/ (default: .)",
    )


def run(args: argparse.Namespace) -> int:
    layout = Layout(args.root)
    try:
        broken = syntax_errors(layout)
        if broken:
            return _errors(broken)
        problems = stale_report(layout)
    except SpecError as exc:
        return _errors(str(exc).splitlines())
    if not problems:
        problems = verification_problems(layout)
        hint = "run `creality derive` (without --no-verify) to verify and regenerate"
    else:
        hint = "run `creality derive` to regenerate"
    if problems:
        for line in problems:
            print(f"creality check: {line}", file=sys.stderr)
        print(f"creality check: {hint}", file=sys.stderr)
        return 1
    print(f"generated/ is in sync with derivations/ and verified ({layout.root})")
    return 0


def _errors(lines: list[str]) -> int:
    for line in lines:
        print(f"creality check: {line}", file=sys.stderr)
    return 2
