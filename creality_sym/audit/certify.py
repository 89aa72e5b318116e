"""Certified counterexamples: a violation re-checked in interval arithmetic.

:func:`certify` re-evaluates a bound at a counterexample's exact binary
float64 inputs with balls: the bound's own ``lhs``/``rhs`` (and ``assume``)
callables run on an :class:`~creality_sym.audit.interval.IntervalInstance`
(the spec's quantities from its interval module, the audit helpers as
rigorous enclosures; :mod:`creality_sym.audit.rebind`). The violation is
``certified`` only when the enclosure of ``lhs - rhs`` lies above 0;
otherwise it is ``float only`` and the enclosure says why (below 0: a
rounding artefact; around 0: undecided at the precisions tried).

A float instance can lie outside the assumption set by a rounding error
(``||A||_2 = R (1 + 2e-16)``, ``sum(b) = 1 - 1e-16``). Such an instance is
first replaced by balls around the nearby exactly admissible point (``A``
scaled by ``min(1, R / ||A||_2)``, ``b / sum(b)``, ...): a certified
violation is then one at a real instance of the assumption set within
rounding of the saved floats, and the repair is named.

:func:`level` gives the strength of a verdict for the report: ``searched``,
``certified`` or ``proved`` (see :mod:`creality_sym.audit.prove`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from creality_sym.audit import enclose
from creality_sym.audit.bounds import Bound
from creality_sym.audit.instance import Instance
from creality_sym.audit.interval import IntervalInstance, from_instance, interval_model_for
from creality_sym.audit.limits import EvaluationTimeout, alarm_scope, time_limit
from creality_sym.audit.rebind import as_value, rigorous
from creality_sym.codegen.interval import IntervalModel
from creality_sym.codegen.interval.balls import Undecided, backend, ball, describe, precision

__all__ = [
    "Certificate",
    "certify",
    "certify_verdicts",
    "format_certificates",
    "level",
    "level_text",
    "LEVELS",
    "PRECISIONS",
]

#: precisions (bits) tried in turn until the sign of lhs - rhs is decided
PRECISIONS = (64, 128, 256)
#: relative excess beyond which an assumption is broken, not rounded
ROUNDING = 1e-9
#: the three strengths of a verdict, weakest first
LEVELS = ("searched", "certified", "proved")


@dataclass
class Certificate:
    """The interval re-check of one counterexample.

    ``label``: ``"certified"`` (the enclosure of ``lhs - rhs`` is above 0) or
    ``"float only"``; ``lower``/``upper``: float bounds of that enclosure
    (rigorous, rounded outward), ``difference``/``lhs``/``rhs`` the balls as
    text; ``bits`` the precision that decided (or the last tried);
    ``repairs``: how the instance was made exactly admissible; ``reason``:
    why it is only float.
    """

    bound_id: str
    label: str
    lower: float = float("nan")
    upper: float = float("nan")
    difference: str = ""
    lhs: str = ""
    rhs: str = ""
    bits: int = 0
    backend: str = ""
    repairs: list[str] = field(default_factory=list)
    reason: str = ""
    seconds: float = 0.0

    @property
    def certified(self) -> bool:
        return self.label == "certified"

    def text(self) -> str:
        """One line: label, enclosure of lhs - rhs, precision, notes."""
        head = f"{self.bound_id}: {self.label}"
        if self.difference:
            head += f"  lhs - rhs in {self.difference}"
        if self.bits:
            head += f" ({self.backend} balls, {self.bits} bits)"
        notes = list(self.repairs)
        if self.reason:
            notes.append(self.reason)
        return head + "".join(f"\n    {n}" for n in notes)


class _Broken(Exception):
    """The instance lies outside the assumption set beyond rounding."""


def _certain(test: Any) -> bool | None:
    """``test()`` with ``None`` for an undecidable comparison."""
    try:
        return bool(test())
    except Undecided:
        return None


def _decided(diff: Any) -> bool:
    """Whether the sign question ``diff > 0`` has a certain answer."""
    return bool(_certain(lambda: diff > 0) or _certain(lambda: diff <= 0))


def _norm_within(v: np.ndarray, R: Any, matrix: bool) -> tuple[bool | None, Any]:
    """Whether ``||v||_2 <= R`` certainly (None: undecided), and the norm's enclosure.

    Vectors (and one-column or one-row matrices) compare squared norms, exact
    at high precision for float64 entries; other matrices their spectral norm.
    """
    flat = not matrix or min(v.shape) == 1
    with precision(1024):
        norm = enclose.spectral_norm(v) if not flat else enclose.vector_norm(v.ravel())
        if flat:
            square = enclose.ball_sum(e**2 for e in v.flat)
            return _certain(lambda: square <= R * R), norm
        return _certain(lambda: norm <= R), norm


def _scaled_into(
    v: np.ndarray, R: Any, what: str, repairs: list[str], matrix: bool = False
) -> np.ndarray:
    """``v`` itself when ``||v||_2 <= R`` certainly, else balls around ``v min(1, R/||v||)``."""
    inside, norm = _norm_within(v, R, matrix)
    if inside:
        return v
    if _certain(lambda: norm > R * (1 + ROUNDING)):
        raise _Broken(f"{what} <= R fails: {what} in {describe(norm, 10)}, R = {describe(R)}")
    factor = ball(1).bmin(R / norm)
    repairs.append(f"{what} <= R holds only up to rounding: scaled by {describe(factor, 17)}")
    return v * factor


def admissible(inst: IntervalInstance) -> tuple[IntervalInstance, list[str]]:
    """Balls around the exactly admissible point nearest ``inst`` (``inst`` itself when
    it is admissible), and the repairs made. Raises :class:`_Broken` beyond rounding.

    The assumption set: ``R >= 1``, ``||A||_2, ||x||_2, ||y||_2 <= R`` and every
    parameter obeying its rule (probability, positive, nonnegative).
    """
    repairs: list[str] = []
    R = inst.R
    if not _certain(lambda: R >= 1):
        raise _Broken(f"R >= 1 fails (R = {describe(R)})")
    changes: dict[str, Any] = {}
    changes["A"] = _scaled_into(inst.A, R, "||A||_2", repairs, matrix=True)
    changes["x"] = _scaled_into(inst.x, R, "||x||_2", repairs)
    if inst.y is not None:
        changes["y"] = _scaled_into(inst.y, R, "||y||_2", repairs)
    params = dict(inst.params)
    for p in inst.interval.parameters:
        if p.name not in params:
            continue
        value = params[p.name]
        entries = list(value.flat) if isinstance(value, np.ndarray) else [value]
        if p.rule in ("probability", "nonnegative"):
            if not all(_certain(lambda v=v: v >= 0) for v in entries):
                raise _Broken(f"{p.name} >= 0 fails")
        elif p.rule == "positive" and not all(_certain(lambda v=v: v > 0) for v in entries):
            raise _Broken(f"{p.name} > 0 fails")
        if p.rule == "probability":
            total = enclose.ball_sum(entries)
            if not _certain(lambda t=total: t == 1):
                if not _certain(lambda t=total: abs(t - 1) <= ROUNDING):
                    raise _Broken(f"sum({p.name}) = 1 fails: the sum is in {describe(total, 10)}")
                params[p.name] = value / total
                repairs.append(
                    f"sum({p.name}) = {describe(total, 17)}: {p.name} replaced by "
                    f"{p.name} / sum({p.name})"
                )
    if not repairs:
        return inst, repairs
    return replace(inst, **changes, params=params, _touched=set()), repairs


@dataclass
class _Outcome:
    diff: Any = None
    lhs: Any = None
    rhs: Any = None
    repairs: list[str] = field(default_factory=list)
    reason: str = ""
    final: bool = False


def _evaluate(
    bound: Bound, inst: Instance, imodel: IntervalModel, fns: tuple[Any, Any, Any]
) -> _Outcome:
    lhs_fn, rhs_fn, assume_fn = fns
    try:
        iinst, repairs = admissible(from_instance(inst, imodel))
    except _Broken as exc:
        return _Outcome(reason=f"outside the assumption set: {exc}", final=True)
    out = _Outcome(repairs=repairs)
    try:
        if assume_fn is not None:
            premised = assume_fn(iinst)
            if premised is None:
                out.reason, out.final = "the premise (assume) rejects the instance in balls", True
                return out
            iinst = premised
        out.lhs = as_value(lhs_fn(iinst), "lhs")
        out.rhs = as_value(rhs_fn(iinst), "rhs")
        out.diff = out.lhs - out.rhs
    except Undecided as exc:
        out.reason = f"undecided in interval arithmetic: {exc}"
    except EvaluationTimeout:
        raise
    except Exception as exc:  # a bound may use what has no enclosure: float only, said why
        out.reason = f"cannot evaluate in interval arithmetic: {type(exc).__name__}: {exc}"
        out.final = True
    return out


def certify(
    bound: Bound,
    inst: Instance,
    *,
    model: Any = None,
    imodel: IntervalModel | None = None,
    bits: Sequence[int] = PRECISIONS,
    timeout: float | None = 60.0,
) -> Certificate:
    """Re-check the violation of ``bound`` at ``inst`` in ball arithmetic.

    ``imodel``: the spec's interval module (default: the one of ``model``, or
    of ``inst.model``); ``bits``: precisions tried in turn until the sign of
    ``lhs - rhs`` is decided; ``timeout``: seconds for all of them.
    """
    start = time.monotonic()
    if imodel is None:
        imodel = interval_model_for(model if model is not None else inst.model)
    fns = (rigorous(bound.lhs), rigorous(bound.rhs), rigorous(bound.assume))
    out = _Outcome()
    used = 0
    try:
        with alarm_scope(), time_limit(timeout):
            for used in bits:
                with precision(used):
                    out = _evaluate(bound, inst, imodel, fns)
                    if out.final:
                        break
                    if out.diff is not None and _decided(out.diff):
                        break
    except EvaluationTimeout:
        out = _Outcome(repairs=out.repairs, reason=f"ran past the {timeout:g} s limit")
    cert = Certificate(
        bound_id=bound.id,
        label="float only",
        bits=used,
        backend=backend(),
        repairs=out.repairs,
        reason=out.reason,
        seconds=time.monotonic() - start,
    )
    if out.diff is not None:
        cert.lower, cert.upper = out.diff.flo(), out.diff.fhi()
        cert.difference = describe(out.diff, 10)
        cert.lhs, cert.rhs = describe(out.lhs, 10), describe(out.rhs, 10)
        if cert.lower > 0:
            cert.label = "certified"
        elif cert.upper <= 0:
            cert.reason = cert.reason or "the enclosure puts lhs <= rhs: the float violation rounds"
        elif not cert.reason:
            cert.reason = f"the enclosure contains 0 even at {used} bits"
    return cert


def certify_verdicts(
    verdicts: Sequence[Any], bounds: Sequence[Bound], *, model: Any = None
) -> dict[str, Certificate]:
    """A :class:`Certificate` for every verdict with a counterexample, by bound id."""
    by_id = {b.id: b for b in bounds}
    out: dict[str, Certificate] = {}
    for v in verdicts:
        ce = getattr(v, "counterexample", None)
        if ce is None or v.id not in by_id:
            continue
        try:
            out[v.id] = certify(by_id[v.id], ce, model=model if model is not None else ce.model)
        except Exception as exc:  # e.g. no interval module for this model: the float verdict
            reason = f"not certified: {type(exc).__name__}: {exc}"
            out[v.id] = Certificate(bound_id=v.id, label="float only", reason=reason)
    return out


def format_certificates(certificates: Mapping[str, Certificate]) -> str:
    """The certification section of the audit output."""
    if not certificates:
        return "certification: no counterexample to certify"
    lines = ["certification (interval arithmetic at the counterexamples' exact float64 inputs):"]
    lines += ["  " + c.text().replace("\n", "\n  ") for c in certificates.values()]
    return "\n".join(lines)


def level(verdict: Any = None, *, certificate: Certificate | None = None, proof: Any = None) -> str:
    """How strong a verdict is: ``"proved"``, ``"certified"`` or ``"searched"``.

    ``proved``: a branch-and-bound proof (:func:`creality_sym.audit.prove.prove`)
    showed ``lhs <= rhs`` on its whole (small) domain; ``certified``: a
    counterexample whose violation interval arithmetic confirms (from
    :func:`certify`, or found by the prover); ``searched``: the float search's
    verdict only (a bound that held wherever it looked, or a float-only
    counterexample).
    """
    if proof is not None and getattr(proof, "status", None) == "proved":
        return "proved"
    if certificate is not None and certificate.certified:
        return "certified"
    proof_cert = getattr(proof, "certificate", None)
    if proof_cert is not None and proof_cert.certified:
        return "certified"
    return "searched"


def level_text(
    verdict: Any = None, *, certificate: Certificate | None = None, proof: Any = None
) -> str:
    """:func:`level` with its evidence in a few words, for a report cell."""
    name = level(verdict, certificate=certificate, proof=proof)
    if name == "proved":
        return f"proved: {proof.summary()}"
    if name == "certified":
        cert = (
            certificate if certificate is not None and certificate.certified else proof.certificate
        )
        return f"certified: lhs - rhs in [{cert.lower:.4g}, {cert.upper:.4g}]"
    if certificate is not None:
        return f"searched (float only: {certificate.reason or certificate.difference})"
    return "searched"
