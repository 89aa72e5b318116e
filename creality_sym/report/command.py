"""``creality report --out DIR``: the full study of one spec as one offline HTML page.

Checks the derivations against the generated code, shows and verifies the
spec's derivation (the default spec, or ``--spec NAME``), audits the default
lemma registry on it, solves a random instance with the exact and the
sampled-Hessian Newton method, sweeps the spec's trade-off weight from the
precise mode (0) to the creative one, and writes ``DIR/index.html`` with its
images and data files beside it. ``--param NAME=VALUE`` fixes scalars.

What is checked: the project folder given by ``--root``, else the embedded
default (the installed ``creality_derivations`` / ``creality_generated``),
never the current folder just because it looks like a project: nothing in
``./derivations`` is run unless the user names it. ``DIR`` must not be, lie
inside, or contain any ``derivations/`` or ``generated/`` folder the run
reads (or the current folder's, when it is a project): a stale check writes
a fresh tree to ``DIR/generated``, which must never be a project's own.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
from pathlib import Path

from creality_sym.generate import Layout
from creality_sym.instance import (
    DEFAULT_SPEC,
    add_spec_arguments,
    load_model,
    parse_params,
    resolve_scalars,
)
from creality_sym.report.study import Settings, build_report
from creality_sym.spec import SpecError, embedded_derivations

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
        "(default: the embedded default, the installed packages; the current "
        "folder is never used unless named here)",
    )
    parser.add_argument(
        "--audit-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds of search per lemma (default: 0.3 quick, 3 full)",
    )
    add_spec_arguments(parser, "reported")
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


def _installed_generated() -> Path | None:
    from creality_sym.report.symbolic import installed_generated

    try:
        return installed_generated()
    except SpecError:
        return None


def _is_project(folder: Path) -> bool:
    return (folder / "derivations").is_dir() and (folder / "generated").is_dir()


def protected_folders(root: Path | None) -> list[tuple[str, Path]]:
    """``(what, folder)`` pairs that ``--out`` must keep clear of.

    ``root``'s ``derivations/`` and ``generated/``, the embedded default and the
    installed generated code (what the solver runs), and the current folder's
    when it is a project.
    """
    found: list[tuple[str, Path]] = []
    if root is not None:
        layout = Layout(root)
        found += [("the checked derivations/", layout.derivations)]
        found += [("the checked generated/", layout.generated)]
    with contextlib.suppress(SpecError):
        found.append(("the embedded derivations/", embedded_derivations().resolve()))
    generated = _installed_generated()
    if generated is not None:
        found.append(("the installed generated/", generated))
    cwd = Path.cwd().resolve()
    if _is_project(cwd):
        found += [("this project's derivations/", cwd / "derivations")]
        found += [("this project's generated/", cwd / "generated")]
    return found


def _overlap(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


def check_out(out: Path, root: Path | None) -> str | None:
    """An error message when ``out`` is, lies inside, or contains a protected folder."""
    where = out.resolve()
    for what, folder in protected_folders(root):
        folder = folder.resolve()
        if _overlap(where, folder):
            relation = (
                "is"
                if where == folder
                else ("lies inside" if folder in where.parents else "contains")
            )
            return (
                f"--out {out}: {relation} {what} ({folder}); "
                "choose a folder outside every derivations/ and generated/"
            )
    return None


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this run, for the page."""
    parts = ["creality", "report", "--out", str(args.out)]
    if args.spec not in (None, DEFAULT_SPEC):
        parts += ["--spec", args.spec]
    for item in args.param:
        parts += ["--param", item]
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
    if args.root is not None and not (args.root / "derivations").is_dir():
        print(f"creality report: --root {args.root}: no derivations/ folder there", file=sys.stderr)
        return EXIT_USAGE
    try:
        params = parse_params(args.param)
        resolve_scalars(load_model(args.spec), params)
    except ValueError as exc:
        where = "" if str(exc).startswith("--param") else f"--spec {args.spec or DEFAULT_SPEC}: "
        print(f"creality report: {where}{exc}", file=sys.stderr)
        return EXIT_USAGE
    problem = check_out(args.out, args.root) or prepare_out(args.out)
    if problem:
        print(f"creality report: {problem}", file=sys.stderr)
        return EXIT_USAGE
    settings = Settings.make(
        quick=args.quick,
        seed=args.seed,
        audit_budget=args.audit_budget,
        spec=args.spec or DEFAULT_SPEC,
        params=params,
    )
    root = None if args.root is None else args.root.resolve()
    try:
        result = build_report(
            args.out.resolve(),
            settings,
            root=root,
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
