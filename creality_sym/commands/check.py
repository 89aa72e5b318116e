"""``creality check``: is ``generated/`` in sync with ``derivations/``?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from creality_sym.generate import Layout, stale_report
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
        problems = stale_report(layout)
    except SpecError as exc:
        print(f"creality check: {exc}", file=sys.stderr)
        return 2
    if problems:
        for line in problems:
            print(f"creality check: {line}", file=sys.stderr)
        print("creality check: run `creality derive` to regenerate", file=sys.stderr)
        return 1
    print(f"generated/ is in sync with derivations/ ({layout.root})")
    return 0
