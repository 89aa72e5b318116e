"""Verification of a derivation by three independent methods.

* ``symbolic``: brute-force SymPy differentiation of the written-out loss at
  small concrete sizes, decided exactly (:mod:`creality_sym.verify.symbolic`);
* ``numeric``: the structured forms in float64 against finite differences and
  mpmath at high precision, up to n = 500 (:mod:`creality_sym.verify.numeric`);
* ``statements``: every paper-style statement of the spec against the derived
  quantity, exactly and numerically (:mod:`creality_sym.verify.statements`).

``verify(derive(spec))`` returns a :class:`VerificationReport` of rows
``(spec, term, quantity, method, verdict, detail)``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from creality_sym.derive import Derivation
from creality_sym.verify import numeric, statements, symbolic
from creality_sym.verify.report import FAIL, METHODS, NONE, PASS, Row, VerificationReport

__all__ = ["verify", "VerificationReport", "Row", "METHODS", "PASS", "FAIL", "NONE"]


def verify(
    derivation: Derivation,
    *,
    methods: Sequence[str] = METHODS,
    seed: int = 0,
) -> VerificationReport:
    """Run the chosen methods on ``derivation``; rows in method order, timings in seconds.

    ``methods`` is any of ``"symbolic"``, ``"numeric"``, ``"statements"``;
    ``seed`` fixes the random instances of the numeric methods.
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
            rows = symbolic.run(derivation)
        elif method == "numeric":
            rows = numeric.run(derivation, seed=seed)
        else:
            rows = statements.run(derivation, seed=seed)
        report.rows.extend(rows)
        report.timings.setdefault(name, {})[method] = time.perf_counter() - t0
    return report
