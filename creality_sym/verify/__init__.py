"""Verification of a derivation by four independent methods.

* ``symbolic``: brute-force SymPy differentiation of the written-out loss at
  small concrete sizes, decided exactly (:mod:`creality_sym.verify.symbolic`);
* ``numeric``: the structured forms in float64 against finite differences and
  mpmath at high precision, up to n = 500 (:mod:`creality_sym.verify.numeric`);
* ``statements``: every paper-style statement of the spec against the derived
  quantity, exactly and numerically (:mod:`creality_sym.verify.statements`);
* ``generated``: the rendered numpy modules (and the CUDA kernels built as C,
  method ``generated-c``) imported from a temporary folder and checked against
  the derivation, finite differences and mpmath
  (:mod:`creality_sym.verify.generated`).

``verify(derive(spec))`` returns a :class:`VerificationReport` of rows
``(spec, term, quantity, method, verdict, detail)``. A verdict is ``pass``,
``FAIL``, ``undecided`` (neither proven nor refuted, e.g. the exact test ran out
of time while random 50-digit points agree; never a failure) or ``—``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from creality_sym.derive import Derivation
from creality_sym.verify import numeric, statements, symbolic
from creality_sym.verify.report import (
    FAIL,
    GENERATED_C,
    METHODS,
    NONE,
    PASS,
    UNDECIDED,
    Row,
    VerificationReport,
)

__all__ = ["verify", "VerificationReport", "Row", "METHODS", "GENERATED_C"]
__all__ += ["PASS", "FAIL", "UNDECIDED", "NONE"]


def verify(
    derivation: Derivation,
    *,
    methods: Sequence[str] = METHODS,
    seed: int = 0,
    candidate: object | None = None,
    seconds: float | None = None,
    progress: Callable[[str, str, float, list[Row]], None] | None = None,
) -> VerificationReport:
    """Run the chosen methods on ``derivation``; rows in method order, timings in seconds.

    ``methods`` is any of :data:`METHODS`; ``seed`` fixes the random instances of
    the numeric methods; ``candidate`` is the rendered tree the ``generated``
    method imports (a :class:`~creality_sym.verify._candidate.Candidate`; default:
    the spec rendered alone); ``seconds`` limits each step of the exact tests
    (default :data:`creality_sym.verify._decide.CHECK_SECONDS`); ``progress`` is
    called after each method with ``(spec, method, seconds, rows)``.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"methods must be among {METHODS}; got {unknown}")
    report = VerificationReport()
    name = derivation.spec.name
    for method in METHODS:
        if method not in methods:
            continue
        t0 = time.perf_counter()
        if method == "symbolic":
            rows = symbolic.run(derivation, seconds=seconds)
        elif method == "numeric":
            rows = numeric.run(derivation, seed=seed)
        elif method == "statements":
            rows = statements.run(derivation, seed=seed)
        else:
            from creality_sym.verify import generated

            rows = generated.run(derivation, seed=seed, candidate=candidate)  # type: ignore[arg-type]
        report.rows.extend(rows)
        elapsed = time.perf_counter() - t0
        report.timings.setdefault(name, {})[method] = elapsed
        if progress is not None:
            progress(name, method, elapsed, rows)
    return report
