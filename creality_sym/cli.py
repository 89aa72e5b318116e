"""The ``creality`` command line: one subcommand per job.

Each subcommand lives in its own module exposing ``configure(parser)`` and
``run(args) -> int``; this file only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from creality_sym import process

#: before any subcommand loads numpy (why: :mod:`creality_sym.process`)
process.set_openblas_thread_timeout()

#: subcommand name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "derive": ("creality_sym.commands.derive", "derive, verify and generate code for specs"),
    "check": ("creality_sym.commands.check", "exit 0 when generated/ is in sync with derivations/"),
    "solve": ("creality_sym.solve.command", "Newton solve of a random or saved instance"),
    "audit": ("creality_sym.audit.command", "attack every stated bound numerically"),
    "bench": ("creality_sym.bench.command", "time generated code against floors and peers"),
    "report": ("creality_sym.report.command", "the full study: derivations, audit, solver, plots"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (all of them when None)."""
    parser = argparse.ArgumentParser(
        prog="creality",
        description="Loss in SymPy -> verified closed forms -> generated code -> Newton.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if command is not None and name != command:
            continue
        module = importlib.import_module(module_name)
        module.configure(p)
        p.set_defaults(_run=module.run)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    process.keep_freed_memory()  # arrays reused, not page-faulted anew on every call
    command = _command_of(argv)
    args = build_parser(command or "").parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
