"""``creality audit``: attack every stated bound, or replay a counterexample.

Exit status: 0 when every verdict matches its bound's ``expect`` (for
``--replay``: when the replay reproduces the recorded verdict); 1 when a
check failed (a verdict, ``error`` and ``undecided`` included, that does not
match its expectation; a replay that does not reproduce); 2 when the audit
could not run (a bad argument or file). Every failure of the last kind is
one line on stderr, ``creality audit: ...``, naming the argument or file.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from creality_sym.audit.bounds import Bound, default_bounds, load_bounds, select
from creality_sym.audit.instance import Space, resolve_model
from creality_sym.audit.limits import DEFAULT_EVAL_TIMEOUT
from creality_sym.audit.replay import replay
from creality_sym.audit.runner import DEFAULT_BUDGET, DEFAULT_CAP, Verdict, audit
from creality_sym.instance import DEFAULT_SPEC, add_spec_arguments, load_model, parse_params

__all__ = ["configure", "run", "format_table", "DEFAULT_OUT", "EXIT_MISMATCH", "EXIT_USAGE"]

#: where counterexamples go unless ``--out`` says otherwise
DEFAULT_OUT = "creality-audit"

#: exit status when a verdict does not match its expectation
EXIT_MISMATCH = 1
#: exit status when the audit could not run
EXIT_USAGE = 2

PROG = "creality audit"


class UsageError(Exception):
    """A bad argument or input file: one line, exit status 2."""


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Make argparse's own errors (bad values, unknown options) one line, exit 2."""

    def error(message: str) -> NoReturn:
        print(f"{PROG}: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)

    plain = parser.parse_known_args

    def parse_known_args(args: Any = None, namespace: Any = None) -> Any:
        ns, extras = plain(args, namespace)
        if extras:
            error(f"unrecognized arguments: {' '.join(extras)}")
        return ns, extras

    parser.error = error  # type: ignore[method-assign]
    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def configure(parser: argparse.ArgumentParser) -> None:
    _one_line_errors(parser)
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
        help="a Python file defining BOUNDS (default: derivations/lemmas.py); it is executed",
    )
    parser.add_argument("--seed", type=int, default=0, help="search seed (default 0)")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"total search time for all selected bounds (default {DEFAULT_BUDGET:g}); "
        "shrinking each counterexample adds up to 2 s. With --max-evals: only a time cap "
        f"(default {DEFAULT_CAP:g})",
    )
    parser.add_argument(
        "--max-evals",
        type=int,
        default=None,
        metavar="N",
        help="evaluations per bound (trials for statistical claims): the search is then "
        "the same for the same --seed, and time is only a cap",
    )
    parser.add_argument(
        "--eval-timeout",
        type=float,
        default=DEFAULT_EVAL_TIMEOUT,
        metavar="SECONDS",
        help="time limit of one evaluation of lhs/rhs or one trial; a longer one counts as "
        f"an evaluation error (default {DEFAULT_EVAL_TIMEOUT:g})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="K",
        help="bounds audited in parallel processes: a local Dask cluster of K workers "
        "(default 1: in this process)",
    )
    parser.add_argument(  # creality_sym.distributed: the bounds as Dask tasks
        "--scheduler",
        metavar="ADDR",
        default=None,
        help="audit the bounds as Dask tasks on this scheduler: tcp://HOST:PORT, a scheduler "
        "FILE.json, or local:K (K local worker processes); the same verdicts as a local run "
        "with --max-evals",
    )
    parser.add_argument(
        "--replay",
        metavar="FILE",
        help="re-evaluate a saved counterexample (.npz) against the default registry "
        "(or --bounds) and exit; nothing the file names is run",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=DEFAULT_OUT,
        help=f"folder for counterexample .npz files (default ./{DEFAULT_OUT})",
    )
    add_spec_arguments(parser, "audited")
    parser.add_argument(
        "--model",
        metavar="MODULE",
        default=None,
        help="a model module by dotted name, instead of --spec (it is imported)",
    )
    from creality_sym.audit.rigor import add_options

    add_options(parser)  # --certify, --prove (--n, --d, --R-max, --prove-budget, --prove-boxes)


HEAD = ("id", "expect", "verdict", "instances", "tightness (worst lhs/rhs)", "searched", "time")


def format_table(verdicts: Sequence[Verdict]) -> str:
    """The verdict table: id, expect, verdict, instances, tightness, searched domain, time."""
    rows = [
        (
            v.id,
            v.expect,
            v.verdict + ("" if v.ok else " !"),
            str(v.instances),
            v.tightness_text(),
            v.domain,
            f"{v.seconds:.1f}s",
        )
        for v in verdicts
    ]
    widths = [max(len(r[i]) for r in [HEAD, *rows]) for i in range(len(HEAD))]
    right = {3, 6}

    def fmt(r: Sequence[str]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(HEAD), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def _details(v: Verdict) -> str:
    lines = [f"{v.id}: {v.statement}", f"  searched: {v.domain}"]
    if v.counterexample is not None:
        ce = v.counterexample
        lines.append(f"  counterexample (n={ce.n}, d={ce.d}): lhs = {v.lhs!r} > rhs = {v.rhs!r}")
        lines += ["    " + line for line in ce.describe().splitlines()]
        if v.path:
            lines.append(f"  saved: {v.path}   (replay: creality audit --replay {v.path})")
    elif v.kind == "statistical":
        lines.append(f"  failures {v.failures}/{v.instances} trials; {v.tightness_text()}")
    lines += [f"  note: {note}" for note in v.notes]
    return "\n".join(lines)


def _check_args(args: argparse.Namespace) -> None:
    if args.budget is not None and not (math.isfinite(args.budget) and args.budget > 0):
        raise UsageError(f"--budget must be a finite number of seconds > 0; got {args.budget}")
    if args.max_evals is not None and args.max_evals < 1:
        raise UsageError(f"--max-evals must be an integer >= 1; got {args.max_evals}")
    if not (math.isfinite(args.eval_timeout) and args.eval_timeout > 0):
        raise UsageError(f"--eval-timeout must be a number of seconds > 0; got {args.eval_timeout}")
    if args.workers < 1:
        raise UsageError(f"--workers must be an integer >= 1; got {args.workers}")
    if getattr(args, "scheduler", None) and args.workers > 1:
        raise UsageError("--workers and --scheduler both say where to run; give one")


def _check_out(out: str) -> None:
    """``--out`` must be a folder this user can write (or create)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"--out {out}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: {probe} is not writable")


def _bounds_problem(bounds: str | None, exc: Exception) -> str:
    """``--bounds FILE:line: ...`` without naming the file twice."""
    if not bounds:
        return f"the default registry: {exc}"
    text = str(exc)
    if text.startswith(str(Path(bounds).resolve())):
        return f"--bounds {text}"
    return f"--bounds {bounds}: {text}"


def _load(args: argparse.Namespace) -> list[Bound]:
    try:
        bounds = load_bounds(args.bounds) if args.bounds else default_bounds()
    except Exception as exc:  # a bounds file can fail in any way; load_bounds names file:line
        raise UsageError(_bounds_problem(args.bounds, exc)) from exc
    try:
        return select(bounds, args.lemma)
    except ValueError as exc:
        raise UsageError(f"--lemma: {str(exc).removeprefix('lemma: ')}") from exc


def _model(args: argparse.Namespace) -> Any:
    if args.model and args.spec:
        raise UsageError("--model and --spec name the model twice; give one")
    try:
        if args.model:
            return resolve_model(args.model)
        return load_model(args.spec)
    except ValueError as exc:
        option = f"--model {args.model}" if args.model else f"--spec {args.spec or DEFAULT_SPEC}"
        raise UsageError(f"{option}: {exc}") from exc


def _space(args: argparse.Namespace) -> Space:
    model = _model(args)
    try:
        return Space.make(model, parse_params(args.param))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _run_replay(args: argparse.Namespace) -> int:
    bounds: Any = None
    if args.bounds:
        try:
            bounds = load_bounds(args.bounds)
        except Exception as exc:
            raise UsageError(_bounds_problem(args.bounds, exc)) from exc
    model = _model(args)
    try:
        r = replay(args.replay, bounds=bounds, model=model, eval_timeout=args.eval_timeout)
    except ValueError as exc:
        raise UsageError(f"--replay {args.replay}: {exc}") from exc
    print(f"replay {args.replay}: bound {r.bound_id} from {r.bounds_from}")
    if r.recorded_source and r.recorded_source != r.source_used:
        print(f"recorded source: {r.recorded_source} (not executed; --bounds FILE to use a file)")
    note = "" if r.recorded_model in ("", r.model_name) else f" (recorded: {r.recorded_model})"
    print(f"model: {r.model_name}{note}")
    print(r.instance.describe(digits=17))
    print(f"lhs = {r.lhs!r}")
    print(f"rhs = {r.rhs!r}")
    if r.message:
        print(f"evaluation error: {r.message}")
    print(
        f"verdict: {r.verdict} (recorded: {r.recorded_verdict}; "
        f"values {'identical' if r.exact else 'differ'}: recorded lhs = {r.recorded_lhs!r}, "
        f"rhs = {r.recorded_rhs!r})"
    )
    if r.assumptions_broken:
        print(f"instance breaks the assumptions: {', '.join(r.assumptions_broken)}")
    print("reproduced" if r.reproduced else "NOT reproduced")
    return 0 if r.reproduced else EXIT_MISMATCH


def _mode(args: argparse.Namespace) -> str:
    if args.max_evals is None:
        budget = DEFAULT_BUDGET if args.budget is None else args.budget
        return f"budget {budget:g} s"
    cap = DEFAULT_CAP if args.budget is None else args.budget
    return f"max-evals {args.max_evals} per bound (time cap {cap:g} s)"


def _audit(args: argparse.Namespace) -> int:
    _check_out(args.out)
    space = _space(args)
    bounds = _load(args)
    start = time.monotonic()
    tasks = None
    try:
        with contextlib.ExitStack() as stack:
            scheduler = None
            if getattr(args, "scheduler", None):  # Dask tasks (creality_sym.distributed)
                from creality_sym.distributed.cluster import session

                try:
                    scheduler, tasks = stack.enter_context(session(args.scheduler))
                except ValueError as exc:
                    raise UsageError(str(exc)) from exc
            verdicts = audit(
                bounds,
                model=space,
                seed=args.seed,
                budget=args.budget,
                workers=args.workers,
                out=args.out,
                max_evals=args.max_evals,
                eval_timeout=args.eval_timeout,
                scheduler=scheduler,
            )
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot write there ({exc.strerror or exc})") from exc
    if tasks is not None:
        print(f"dask: {tasks.text()}")
    print(format_table(verdicts))
    print()
    for v in verdicts:
        if v.verdict != "holds" or v.kind == "statistical" or v.notes:
            print(_details(v))
            print()
    if getattr(args, "certify", False):
        from creality_sym.audit.rigor import certification

        print(certification(verdicts, bounds, space))
        print()
    for note in space.notes:
        print(f"note: {note}")
    skipped = [v.id for v in verdicts if v.verdict == "skipped"]
    print(
        f"{len(verdicts)} bounds on spec {space.spec}"
        + (f" ({len(skipped)} skipped)" if skipped else "")
        + f", seed {args.seed}, {_mode(args)}, {time.monotonic() - start:.1f}s"
    )
    capped = [v.id for v in verdicts if v.capped]
    if capped:
        print(f"time cap reached for {', '.join(capped)}: raise --budget to make this repeatable")
    bad = [v for v in verdicts if not v.ok]
    if bad:
        names = ", ".join(f"{v.id} (expected {v.expect}, got {v.verdict})" for v in bad)
        print(f"MISMATCH: {names}")
        return EXIT_MISMATCH
    print("every verdict matches its expectation")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        _check_args(args)
        if getattr(args, "prove", False) and not args.replay:
            from creality_sym.audit.rigor import prove_command

            try:
                return prove_command(args, _load(args), _space(args))
            except ValueError as exc:
                raise UsageError(str(exc)) from exc
        return _run_replay(args) if args.replay else _audit(args)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # never a traceback: one line, and the run counts as not run
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE
