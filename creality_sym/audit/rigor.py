"""``creality audit --certify`` and ``--prove``: options, output, and verdict levels.

Three levels of evidence for a verdict, weakest first:

* ``searched``: the float search's verdict (a bound that held wherever the
  search looked, or a counterexample only floats have seen);
* ``certified``: a counterexample whose violation interval arithmetic confirms
  at its exact float64 inputs (:func:`creality_sym.audit.certify.certify`);
* ``proved``: an interval branch and bound showed ``lhs <= rhs`` on the whole
  assumption set at small fixed ``n``, ``d`` and ``R <= R_max``
  (:func:`creality_sym.audit.prove.prove`).

For the report, :func:`verdict_levels` maps bound ids to ``(level, text)``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the interval machinery (SymPy, python-flint) loads only when used
    from creality_sym.audit.bounds import Bound
    from creality_sym.audit.certify import Certificate
    from creality_sym.audit.instance import Space
    from creality_sym.audit.prove import Proof

__all__ = [
    "add_options",
    "certification",
    "prove_command",
    "verdict_levels",
    "level",
    "level_text",
    "EXIT_MISMATCH",
]

EXIT_MISMATCH = 1
#: seconds per bound that ``--prove`` spends by default
DEFAULT_PROVE_BUDGET = 60.0


def level(verdict: Any = None, *, certificate: Any = None, proof: Any = None) -> str:
    """:func:`creality_sym.audit.certify.level`: ``searched``, ``certified`` or ``proved``."""
    from creality_sym.audit.certify import level as _level

    return _level(verdict, certificate=certificate, proof=proof)


def level_text(verdict: Any = None, *, certificate: Any = None, proof: Any = None) -> str:
    """:func:`creality_sym.audit.certify.level_text`: the level and its evidence."""
    from creality_sym.audit.certify import level_text as _level_text

    return _level_text(verdict, certificate=certificate, proof=proof)


def add_options(parser: argparse.ArgumentParser) -> None:
    """The ``--certify`` and ``--prove`` options of ``creality audit``."""
    parser.add_argument(
        "--certify",
        action="store_true",
        help="re-check every counterexample in interval arithmetic at its exact float64 "
        "inputs: 'certified' when the enclosure of lhs - rhs is > 0, else 'float only'",
    )
    parser.add_argument(
        "--prove",
        action="store_true",
        help="instead of searching, prove each bound by interval branch and bound over the "
        "whole assumption set at fixed --n, --d, R <= --R-max: proved, violated (certified) "
        "or undecided; --workers K explores the boxes in K processes",
    )
    parser.add_argument("--n", type=int, default=2, metavar="N", help="--prove: rows of A (2)")
    parser.add_argument("--d", type=int, default=1, metavar="D", help="--prove: columns (1)")
    parser.add_argument(
        "--R-max",
        dest="R_max",
        type=float,
        default=2.0,
        metavar="R",
        help="--prove: largest R (default 2; at most the bound's own R_max)",
    )
    parser.add_argument(
        "--prove-budget",
        type=float,
        default=DEFAULT_PROVE_BUDGET,
        metavar="SECONDS",
        help=f"--prove: seconds per bound (default {DEFAULT_PROVE_BUDGET:g})",
    )
    parser.add_argument(
        "--prove-boxes",
        type=int,
        default=None,
        metavar="N",
        help="--prove: most boxes evaluated per bound (default: no limit but the time)",
    )


def check_options(args: argparse.Namespace) -> None:
    """``ValueError`` naming the first bad ``--prove`` option."""
    if args.n < 1 or args.d < 1:
        raise ValueError(f"--n and --d must be integers >= 1; got {args.n}, {args.d}")
    if not (math.isfinite(args.R_max) and args.R_max >= 1):
        raise ValueError(f"--R-max must be a finite number >= 1; got {args.R_max}")
    if not (math.isfinite(args.prove_budget) and args.prove_budget > 0):
        raise ValueError(f"--prove-budget must be a number of seconds > 0; got {args.prove_budget}")
    if args.prove_boxes is not None and args.prove_boxes < 1:
        raise ValueError(f"--prove-boxes must be an integer >= 1; got {args.prove_boxes}")


def certification(verdicts: Sequence[Any], bounds: Sequence[Bound], space: Space) -> str:
    """The ``--certify`` section: one line per counterexample."""
    from creality_sym.audit.certify import certify_verdicts, format_certificates

    return format_certificates(certify_verdicts(verdicts, bounds, model=space.model))


def prove_command(args: argparse.Namespace, bounds: Sequence[Bound], space: Space) -> int:
    """Run ``--prove`` on ``bounds``; print the table; 0 when every outcome matches.

    A bound expected to hold matches when proved, one expected to be violated
    when a certified counterexample is found; statistical claims and bounds
    about other specs are skipped. ``ValueError`` for a bad option.
    """
    from creality_sym.audit.prove import format_proofs, prove

    check_options(args)
    start = time.monotonic()
    proofs: list[Proof] = []
    for bound in bounds:
        proofs.append(
            prove(
                bound,
                space,
                n=args.n,
                d=args.d,
                R_max=args.R_max,
                budget=args.prove_budget,
                max_boxes=args.prove_boxes,
                workers=args.workers,
                progress=sys.stderr,
            )
        )
    print(format_proofs(proofs))
    print()
    for p in proofs:
        if p.status == "violated" and p.counterexample is not None:
            print(f"{p.bound_id}: certified counterexample")
            print("    " + p.counterexample.describe(digits=17).replace("\n", "\n    "))
            print("    " + p.certificate.text().replace("\n", "\n    "))
            print()
    clipped = [p.bound_id for p in proofs if p.status != "skipped" and _clipped(p, args)]
    if clipped:
        print(f"note: R <= the bound's own R_max for {', '.join(clipped)}")
    print(
        f"{len(proofs)} bounds on spec {space.spec}, n={args.n}, d={args.d}, "
        f"R <= {args.R_max:g}, {time.monotonic() - start:.1f}s"
    )
    bad = [p for p in proofs if not p.ok]
    if bad:
        names = ", ".join(f"{p.bound_id} (expected {p.expect}, got {p.status})" for p in bad)
        print(f"MISMATCH: {names}")
        return EXIT_MISMATCH
    print("every outcome matches its expectation")
    return 0


def _clipped(proof: Proof, args: argparse.Namespace) -> bool:
    return proof.R_max < args.R_max


def verdict_levels(
    verdicts: Sequence[Any],
    *,
    bounds: Sequence[Bound] | None = None,
    certificates: Mapping[str, Certificate] | None = None,
    proofs: Mapping[str, Proof] | Sequence[Proof] | None = None,
) -> dict[str, tuple[str, str]]:
    """Per bound id, ``(level, text)``: ``searched``, ``certified`` or ``proved``.

    ``verdicts``: from :func:`~creality_sym.audit.runner.audit`; ``bounds``: the
    audited bounds (default: the registry), used to certify the verdicts'
    counterexamples unless ``certificates`` (from
    :func:`~creality_sym.audit.certify.certify_verdicts`) are given; ``proofs``:
    from :func:`~creality_sym.audit.prove.prove`, by id or as a list. ``text``
    is the level with its evidence, e.g. ``"certified: lhs - rhs in [0.155, 0.155]"``.
    """
    from creality_sym.audit.certify import certify_verdicts

    if certificates is None:
        if bounds is None:
            from creality_sym.audit.bounds import default_bounds

            bounds = default_bounds()
        certificates = certify_verdicts(verdicts, bounds)
    if proofs is not None and not isinstance(proofs, Mapping):
        proofs = {p.bound_id: p for p in proofs}
    proofs = proofs or {}
    out = {}
    for v in verdicts:
        cert = certificates.get(v.id)
        proof = proofs.get(v.id)
        out[v.id] = (
            level(v, certificate=cert, proof=proof),
            level_text(v, certificate=cert, proof=proof),
        )
    return out
