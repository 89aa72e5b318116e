"""Numerical audit of stated bounds: search for violations, measure tightness.

    >>> from creality_sym.audit import audit
    >>> verdicts = audit(budget=10)          # the default registry, derivations/lemmas.py
    >>> verdicts = audit(budget=10, model="renyi", params={"q": 2.0})  # another spec

See :mod:`creality_sym.audit.bounds` for how a bound is stated and
:mod:`creality_sym.audit.runner` for the budget.
"""

from creality_sym.audit.bounds import (
    Bound,
    EvaluationError,
    default_bounds,
    evaluate,
    load_bounds,
    safe_name,
    select,
)
from creality_sym.audit.instance import (
    Instance,
    Space,
    default_model,
    max_eig,
    min_eig,
    project,
    spectral_norm,
)
from creality_sym.audit.limits import EvaluationTimeout
from creality_sym.audit.replay import Replay, replay
from creality_sym.audit.runner import DEFAULT_BUDGET, DEFAULT_CAP, Verdict, audit

__all__ = [
    "Bound",
    "Instance",
    "Space",
    "Verdict",
    "Replay",
    "audit",
    "replay",
    "default_bounds",
    "load_bounds",
    "select",
    "evaluate",
    "project",
    "default_model",
    "spectral_norm",
    "min_eig",
    "max_eig",
    "DEFAULT_BUDGET",
    "DEFAULT_CAP",
    "EvaluationError",
    "EvaluationTimeout",
    "safe_name",
]
