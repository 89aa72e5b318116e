"""Bounds as data: a :class:`Bound` states ``lhs(instance) <= rhs(instance)``.

A *bounds file* is any Python module that defines ``BOUNDS = [Bound(...), ...]``;
the default registry is ``derivations/lemmas.py``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from creality_sym.audit.limits import time_limit
from creality_sym.instance import Instance

__all__ = [
    "Bound",
    "EvaluationError",
    "evaluate",
    "real_value",
    "safe_name",
    "is_violation",
    "objective",
    "tightness",
    "load_bounds",
    "default_bounds",
    "select",
    "DEFAULT_REGISTRY",
]

#: module holding the default registry (``derivations/lemmas.py``)
DEFAULT_REGISTRY = "creality_derivations.lemmas"

EXPECTS = ("holds", "violated")
KINDS = ("deterministic", "statistical")
COMPARES = ("ratio", "difference")

#: ``trial(model, rng) -> True`` when the claimed event *fails* in that trial
Trial = Callable[[ModuleType, np.random.Generator], bool]


@dataclass(frozen=True)
class Bound:
    """One claim to attack.

    Deterministic claims state ``lhs(inst) <= rhs(inst)`` for every admissible
    :class:`Instance` (floats). A violation needs
    ``lhs - rhs > rtol * max(|lhs|, |rhs|) + atol``: differences below that are
    rounding noise (e.g. ``f(x) - f(y)`` for nearly equal ``x, y``). Tightness is
    the worst ``lhs/rhs`` found (``compare="ratio"``, needs ``rhs > 0``) or the
    worst ``lhs - rhs`` (``compare="difference"``).

    The search space is ``n`` rows and ``d`` columns in the given inclusive
    ranges, ``1 <= R <= R_max``, the searched scalar (the spec's trade-off
    weight, e.g. ``gamma``) in ``[0, gamma_max]`` and vector parameters with
    entries at most ``w_max`` in size (``0 < w <= w_max`` for a positive
    ``w``); the other scalars are fixed (see :class:`~creality_sym.audit.instance.Space`).
    ``assume`` adds premises: it maps an admissible instance to one that also
    meets them (idempotently), or to ``None``.

    ``terms`` names the terms the claim is about (e.g. ``("creativity",)`` for
    a claim on ``B_cre``): on a spec without all of them the bound is skipped
    with a note. ``specs``, when given, names the only specs the claim is
    stated for; on any other it is skipped too.

    Statistical claims give ``trial(model, rng) -> failed`` and ``delta``; the
    claim is that trials fail with probability at most ``delta``. A trial
    with the attribute ``takes_space = True`` receives the audit's
    :class:`~creality_sym.audit.instance.Space` (model and fixed scalars)
    instead of the bare model.
    """

    id: str
    statement: str
    lhs: Callable[[Instance], float] | None = None
    rhs: Callable[[Instance], float] | None = None
    expect: str = "holds"
    kind: str = "deterministic"
    compare: str = "ratio"
    rtol: float = 1e-9
    atol: float = 1e-12
    n: tuple[int, int] = (1, 8)
    d: tuple[int, int] = (1, 6)
    R_max: float = 5.0
    gamma_max: float = 4.0
    w_max: float = 10.0
    assume: Callable[[Instance], Instance | None] | None = None
    trial: Trial | None = None
    delta: float = 0.1
    max_trials: int = 2000
    note: str = ""
    source: str = ""
    terms: tuple[str, ...] = ()
    specs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"id must be a non-empty string; got {self.id!r}")
        if self.expect not in EXPECTS:
            raise ValueError(f"expect must be one of {EXPECTS}; got {self.expect!r} ({self.id})")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r} ({self.id})")
        if self.compare not in COMPARES:
            raise ValueError(f"compare must be one of {COMPARES}; got {self.compare!r}")
        if self.kind == "deterministic":
            if not callable(self.lhs) or not callable(self.rhs):
                raise ValueError(f"lhs and rhs must be callables of an Instance ({self.id})")
            for name in ("n", "d"):
                lo, hi = getattr(self, name)
                if not 1 <= lo <= hi:
                    raise ValueError(
                        f"{name} must be a range (lo, hi), 1 <= lo <= hi; got {(lo, hi)}"
                    )
            if not self.R_max >= 1.0:
                raise ValueError(f"R_max must be >= 1; got {self.R_max} ({self.id})")
            if not (self.gamma_max >= 0.0 and self.w_max > 0.0):
                raise ValueError(f"gamma_max must be >= 0 and w_max > 0 ({self.id})")
        else:
            if not callable(self.trial):
                raise ValueError(f"trial must be a callable (model, rng) -> bool ({self.id})")
            if not 0.0 < self.delta < 1.0:
                raise ValueError(f"delta must lie in (0, 1); got {self.delta} ({self.id})")
            if self.max_trials < 1:
                raise ValueError(f"max_trials must be >= 1; got {self.max_trials} ({self.id})")
        if self.rtol < 0 or self.atol < 0:
            raise ValueError(f"rtol and atol must be >= 0 ({self.id})")
        for name in ("terms", "specs"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(t, str) for t in value):
                raise ValueError(f"{name} must be a tuple of names ({self.id})")
            object.__setattr__(self, name, tuple(value))

    def skip_reason(self, spec: str, terms: Sequence[str]) -> str:
        """Why this bound does not apply to ``spec`` with ``terms`` (empty when it does)."""
        if self.specs and spec not in self.specs:
            return f"stated for spec(s) {', '.join(self.specs)}, not {spec}"
        missing = [t for t in self.terms if t not in terms]
        if missing:
            return f"about term(s) {', '.join(missing)}, which spec {spec} lacks"
        return ""

    def seed_for(self, seed: int) -> int:
        """A stable per-bound seed derived from the run's ``seed``."""
        digest = hashlib.sha256(f"{seed}:{self.id}".encode()).digest()
        return int.from_bytes(digest[:8], "little")

    def domain(self, scalars: str = "") -> str:
        """The searched space in words, e.g. ``"n 1-8, d 1-6, R 1-5, gamma 0-4"``.

        ``scalars`` describes the spec's scalars (``Space.describe``).
        Statistical claims draw their own instances: their trial's ``domain``
        attribute, when it has one.
        """
        if self.kind == "statistical":
            text = str(getattr(self.trial, "domain", "drawn by the trial"))
            return text + (f", {scalars}" if scalars and self._takes_space() else "")

        def span(name: str, lo: float, hi: float) -> str:
            return f"{name} {lo:g}" if lo == hi else f"{name} {lo:g}-{hi:g}"

        parts = [span("n", *self.n), span("d", *self.d), span("R", 1.0, self.R_max)]
        if self.assume is not None:
            parts.append("premise")
        return ", ".join(parts + ([scalars] if scalars else []))

    def _takes_space(self) -> bool:
        return bool(getattr(self.trial, "takes_space", False))


class EvaluationError(ValueError):
    """A bound's ``lhs`` or ``rhs`` gave no finite real number."""


def real_value(value: Any, what: str) -> float:
    """``value`` as a finite float, or :class:`EvaluationError` naming ``what``.

    Python and numpy integers and floats (also 0-d arrays) are accepted;
    strings, booleans, complex numbers, arrays with entries, NaN and
    infinities are not.
    """
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
    if not ok and isinstance(value, np.ndarray) and value.shape == ():
        ok = value.dtype.kind in "iuf"
    if not ok:
        shown = repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise EvaluationError(f"{what} returned {type(value).__name__} {shown}, not a real number")
    try:
        out = float(value)
    except OverflowError:
        raise EvaluationError(f"{what} returned an integer too large for a float") from None
    if not math.isfinite(out):
        raise EvaluationError(f"{what} is {out} (not finite)")
    return out


def evaluate(bound: Bound, inst: Instance, *, timeout: float | None = None) -> tuple[float, float]:
    """``(lhs, rhs)`` of a deterministic bound at ``inst``: finite floats.

    Raises :class:`EvaluationError` for a value that is not a finite real
    number and :class:`~creality_sym.audit.limits.EvaluationTimeout` when the
    pair takes longer than ``timeout`` seconds (None: no limit).
    """
    assert bound.lhs is not None and bound.rhs is not None
    with time_limit(timeout):
        lhs, rhs = bound.lhs(inst), bound.rhs(inst)
    return real_value(lhs, "lhs"), real_value(rhs, "rhs")


def safe_name(bound_id: str) -> str:
    """A file name for ``bound_id``: letters, digits, ``.``, ``_`` and ``-`` only.

    Ids that need changing (``../x``, ``a/b``, spaces) get a short hash of the
    id appended, so that two different ids never share a file.
    """
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", bound_id).strip("._-")[:80]
    if name == bound_id:
        return name
    digest = hashlib.sha256(bound_id.encode()).hexdigest()[:8]
    return f"{name or 'bound'}-{digest}"


def is_violation(bound: Bound, lhs: float, rhs: float) -> bool:
    """Whether ``lhs <= rhs`` fails beyond the bound's tolerances."""
    if math.isnan(lhs) or math.isnan(rhs):
        return False
    if lhs <= rhs:
        return False
    if math.isinf(lhs) or math.isinf(rhs):
        return True
    return lhs - rhs > bound.rtol * max(abs(lhs), abs(rhs)) + bound.atol


def tightness(bound: Bound, lhs: float, rhs: float) -> float:
    """``lhs/rhs`` (ratio bounds, ``rhs > 0``) or ``lhs - rhs`` (difference)."""
    if bound.compare == "difference":
        return lhs - rhs
    if rhs > 0:
        return lhs / rhs
    return math.inf if lhs > rhs else -math.inf


def objective(bound: Bound, lhs: float, rhs: float) -> float:
    """The score the search maximises (larger = closer to a violation).

    Ratio bounds score ``log(lhs / (rhs + atol))``: the ``atol`` keeps the
    search away from ratios of two rounding errors.
    """
    if math.isnan(lhs) or math.isnan(rhs):
        return -math.inf
    if bound.compare == "difference":
        return lhs - rhs
    if rhs > 0:
        if lhs > 0:
            if not math.isfinite(lhs):
                return math.inf
            return math.log(lhs) - math.log(rhs + bound.atol)
        return -1e3 + lhs / rhs
    return 1e3 + (lhs - rhs) if lhs > rhs else -2e3 + (lhs - rhs)


def _with_source(bounds: Sequence[Any], source: str, where: str) -> list[Bound]:
    if not isinstance(bounds, (list, tuple)):
        raise ValueError(f"{where}: BOUNDS must be a list of Bound; got {type(bounds).__name__}")
    out = []
    for i, b in enumerate(bounds):
        if not isinstance(b, Bound):
            raise ValueError(f"{where}: BOUNDS[{i}] is a {type(b).__name__}, not a Bound")
        out.append(b if b.source else replace(b, source=source))
    ids = [b.id for b in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"{where}: duplicate bound ids {dup}")
    return out


def load_bounds(path: str | Path) -> list[Bound]:
    """The ``BOUNDS`` of a bounds file (any module defining ``BOUNDS``)."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ValueError(f"bounds file not found: {path}")
    name = "_creality_bounds_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"bounds file cannot be imported: {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise ValueError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from exc
    except Exception as exc:
        sys.modules.pop(name, None)
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        line = frames[-1].lineno if frames else 1
        raise ValueError(f"{path}:{line}: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, "BOUNDS"):
        raise ValueError(f"{path}: a bounds file must define BOUNDS = [Bound(...), ...]")
    return _with_source(module.BOUNDS, str(path), str(path))


def default_bounds() -> list[Bound]:
    """The default registry, ``derivations/lemmas.py``."""
    module = importlib.import_module(DEFAULT_REGISTRY)
    return _with_source(module.BOUNDS, str(Path(module.__file__ or "").resolve()), "lemmas")


def select(bounds: Sequence[Bound], ids: Sequence[str] | None) -> list[Bound]:
    """The bounds named by ``ids`` (all when ``ids`` is empty), in ``ids`` order."""
    if not ids:
        return list(bounds)
    by_id = {b.id: b for b in bounds}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ValueError(f"lemma: unknown bound ids {missing}; known: {sorted(by_id)}")
    return [by_id[i] for i in ids]
