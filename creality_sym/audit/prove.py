"""Proofs on small domains: interval branch and bound over the whole assumption set.

For fixed small ``n`` and ``d``, :func:`prove` covers the bound's assumption
set (:mod:`creality_sym.audit.boxes`) with boxes and evaluates the bound's own
``lhs``/``rhs`` callables on each box in ball arithmetic (the same rebinding
as :mod:`creality_sym.audit.certify`). A box is

* proved when the enclosure of ``lhs - rhs`` is ``<= 0``,
* dropped when it certainly misses the assumption set (or the premise rejects it),
* split in two along its widest relevant coordinate otherwise (only the
  coordinates the bound was seen to use); its middle point is tried in
  floats, and a float violation there is certified in balls.

The outcome is ``proved`` (every box resolved; with the number of boxes and a
rigorous upper bound of ``lhs - rhs``, and of ``lhs/rhs`` for ratio bounds),
``violated`` (a certified counterexample) or ``undecided`` (the budget ran out:
the unresolved fraction of the box volume is reported). A bound that depends on
``x`` only through ``z = A x`` is proved over the logits (``logit`` domain),
any other over ``A``, ``x``, ``y`` (``full`` domain); the result says which.
Boxes are explored in rounds, in parallel over worker processes when asked.
"""

from __future__ import annotations

import heapq
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from creality_sym.audit.bounds import Bound, evaluate, is_violation, tightness
from creality_sym.audit.boxes import Domain, choose_axis, split, volume
from creality_sym.audit.certify import Certificate, certify
from creality_sym.audit.instance import Space
from creality_sym.audit.interval import NeedsFullDomain, interval_model_for
from creality_sym.audit.rebind import as_value, rigorous
from creality_sym.audit.rigor import DEFAULT_PROVE_BUDGET
from creality_sym.codegen.interval.balls import Undecided, precision

__all__ = ["Proof", "prove", "format_proofs", "PROVE_BITS", "DEFAULT_PROVE_BUDGET"]

#: precision of box evaluations (box widths dominate any rounding)
PROVE_BITS = 64
#: boxes a worker explores before it reports back
ROUND_BOXES = 400


@dataclass
class Proof:
    """The outcome of :func:`prove` for one bound.

    ``status``: ``proved``, ``violated``, ``undecided``, ``skipped`` or
    ``error``; ``mode``: ``logit`` or ``full``; ``domain``: the covered set in
    words; ``worst_difference`` / ``worst_ratio``: rigorous upper bounds of
    ``lhs - rhs`` and ``lhs/rhs`` over the proved boxes; ``open_fraction``:
    the unresolved fraction of the box volume; ``certificate``: the
    counterexample's certificate when violated.
    """

    bound_id: str
    expect: str
    status: str
    compare: str = "ratio"
    R_max: float = math.nan
    mode: str = ""
    domain: str = ""
    boxes: int = 0
    seconds: float = 0.0
    worst_difference: float = -math.inf
    worst_ratio: float = -math.inf
    worst_seen: float = -math.inf
    open_fraction: float = 1.0
    proved_fraction: float = 0.0
    certificate: Certificate | None = None
    counterexample: Any = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        """Whether the outcome confirms the bound's ``expect`` (a skip is no mismatch)."""
        wanted = {"holds": "proved", "violated": "violated"}[self.expect]
        return self.status in (wanted, "skipped")

    def summary(self) -> str:
        """The outcome in one line."""
        if self.status == "proved":
            ratio = math.isfinite(self.worst_ratio)
            name = "lhs/rhs" if ratio else "lhs - rhs"
            bound = self.worst_ratio if ratio else self.worst_difference
            seen = (
                f" (largest at box centres {self.worst_seen:.4g})"
                if self.worst_seen > -1e300
                else ""
            )
            return f"{self.boxes} boxes, {name} <= {bound:.6g} everywhere{seen} on {self.domain}"
        if self.status == "violated" and self.certificate is not None:
            return (
                f"certified counterexample after {self.boxes} boxes: lhs - rhs in "
                f"{self.certificate.difference}"
            )
        if self.status == "undecided":
            return (
                f"{self.boxes} boxes, {100 * self.open_fraction:.3g}% of the volume unresolved"
                + (f" ({self.reason})" if self.reason else "")
            )
        return self.reason


class ProofError(RuntimeError):
    """A bound that cannot be evaluated on boxes."""


@dataclass
class _Stats:
    boxes: int = 0
    proved: float = 0.0
    dropped: float = 0.0
    stuck: float = 0.0
    worst_difference: float = -math.inf
    worst_ratio: float = -math.inf
    seen: float = -math.inf
    touched: set[str] = field(default_factory=set)

    def merge(self, other: _Stats) -> None:
        self.seen = max(self.seen, other.seen)
        self.boxes += other.boxes
        self.proved += other.proved
        self.dropped += other.dropped
        self.stuck += other.stuck
        self.worst_difference = max(self.worst_difference, other.worst_difference)
        self.worst_ratio = max(self.worst_ratio, other.worst_ratio)
        self.touched |= other.touched


class _Prover:
    """Evaluates boxes of one bound over one domain."""

    def __init__(self, bound: Bound, domain: Domain) -> None:
        self.bound = bound
        self.domain = domain
        self.fns = (rigorous(bound.lhs), rigorous(bound.rhs), rigorous(bound.assume))
        self.widths = domain.widths()

    def active(self, touched: set[str]) -> np.ndarray:
        groups = self.domain.groups_of(touched)
        return np.array([v.group in groups for v in self.domain.vars], dtype=bool)

    def assess(self, lo: np.ndarray, hi: np.ndarray, stats: _Stats) -> tuple[str, float]:
        """``(status, score)`` of one box: proved, dropped, violated or open."""
        if self.domain.infeasible(lo, hi):
            return "dropped", 0.0
        lhs_fn, rhs_fn, assume_fn = self.fns
        inst = self.domain.instance(lo, hi)
        try:
            if assume_fn is not None:
                premised = assume_fn(inst)
                if premised is None:
                    return "dropped", 0.0
                inst = premised
            lhs = as_value(lhs_fn(inst), "lhs")
            rhs = as_value(rhs_fn(inst), "rhs")
        except Undecided:
            return "open", math.inf
        except NeedsFullDomain:
            raise
        except Exception as exc:  # the bound uses what has no enclosure
            raise ProofError(f"cannot evaluate on boxes: {type(exc).__name__}: {exc}") from exc
        finally:
            stats.touched |= inst._touched
        diff = lhs - rhs
        hi_diff, lo_diff = diff.fhi(), diff.flo()
        if hi_diff <= 0:
            stats.worst_difference = max(stats.worst_difference, hi_diff)
            if self.bound.compare == "ratio":
                try:
                    stats.worst_ratio = max(stats.worst_ratio, (lhs / rhs).fhi())
                except Undecided:
                    stats.worst_ratio = math.inf
            return "proved", 0.0
        if lo_diff > 0:
            return "violated", math.inf
        score = 0.5 * (lo_diff + hi_diff)
        return "open", score if math.isfinite(score) else math.inf

    def try_point(
        self, lo: np.ndarray, hi: np.ndarray, stats: _Stats
    ) -> tuple[Any, Certificate] | None:
        """A certified counterexample at the box's middle point, if there is one."""
        try:
            inst = self.domain.point(lo, hi)
            if self.bound.assume is not None:
                inst = self.bound.assume(inst)
                if inst is None:
                    return None
            lhs, rhs = evaluate(self.bound, inst, timeout=None)
        except Exception:  # a float evaluation error is no counterexample
            return None
        stats.seen = max(stats.seen, tightness(self.bound, lhs, rhs))
        if not is_violation(self.bound, lhs, rhs):
            return None
        cert = certify(self.bound, inst, imodel=self.domain.interval)
        return (inst, cert) if cert.certified else None

    def explore(
        self, boxes: list[tuple[np.ndarray, np.ndarray]], touched: set[str], limit: int
    ) -> tuple[_Stats, list[tuple[np.ndarray, np.ndarray]], Any]:
        """Branch and bound from ``boxes`` for at most ``limit`` box evaluations."""
        stats = _Stats(touched=set(touched))
        heap: list[tuple[float, int, np.ndarray, np.ndarray]] = []
        counter = 0
        for lo, hi in boxes:
            heap.append((0.0, counter, lo, hi))
            counter += 1
        heapq.heapify(heap)
        found = None
        with precision(PROVE_BITS):
            while heap and stats.boxes < limit and found is None:
                _, _, lo, hi = heapq.heappop(heap)
                stats.boxes += 1
                status, score = self.assess(lo, hi, stats)
                vol = volume(lo, hi, self.widths)
                if status == "proved":
                    stats.proved += vol
                    continue
                if status == "dropped":
                    stats.dropped += vol
                    continue
                if status == "violated" or score > 0 or stats.boxes % 8 == 0:
                    found = self.try_point(lo, hi, stats)
                    if found is not None:
                        break
                axis = choose_axis(lo, hi, self.widths, self.active(stats.touched))
                if axis is None:
                    stats.stuck += vol
                    continue
                for half in split(lo, hi, axis):
                    heapq.heappush(heap, (-score, counter, *half))
                    counter += 1
        return stats, [(lo, hi) for _, _, lo, hi in heap], found


_POOL: dict[str, Any] = {}


def _work(task: tuple[list[tuple[np.ndarray, np.ndarray]], set[str], int]) -> Any:
    stats, rest, found = _POOL["prover"].explore(*task)
    if found is not None:
        inst, cert = found
        found = (inst.with_model(None), cert)
    return stats, rest, found


def _progress(
    stream: TextIO | None, bound: Bound, stats: _Stats, open_vol: float, t: float
) -> None:
    if stream is None:
        return
    worst = f", worst lhs-rhs <= {stats.worst_difference:.3g}" if stats.proved else ""
    line = (
        f"prove {bound.id}: {stats.boxes} boxes, {100 * stats.proved:.2f}% proved, "
        f"{100 * stats.dropped:.2f}% outside, {100 * open_vol:.3g}% open{worst}, {t:.1f}s"
    )
    end = "\r" if getattr(stream, "isatty", lambda: False)() else "\n"
    stream.write(line + end)
    stream.flush()


def _skip(bound: Bound, space: Space, n: int, d: int) -> str:
    if bound.kind != "deterministic":
        return "a statistical claim: nothing to prove in interval arithmetic"
    reason = bound.skip_reason(space.spec, space.terms)
    if reason:
        return reason
    if not bound.n[0] <= n <= bound.n[1] or not bound.d[0] <= d <= bound.d[1]:
        return f"n={n}, d={d} lies outside the bound's own ranges n {bound.n}, d {bound.d}"
    return ""


def _domain(bound: Bound, space: Space, imodel: Any, n: int, d: int, R_max: float) -> Domain:
    """The logit domain when the bound evaluates there, else the full one."""
    for mode in ("logit", "full"):
        dom = Domain.make(
            mode, n, d, R_max, space, imodel, w_max=bound.w_max, gamma_max=bound.gamma_max
        )
        prover = _Prover(bound, dom)
        lo, hi = dom.root()
        try:
            with precision(PROVE_BITS):
                prover.assess(lo, hi, _Stats())
        except NeedsFullDomain:
            continue
        except Exception:  # the full domain decides, or reports the error
            return (
                dom
                if mode == "full"
                else Domain.make(
                    "full", n, d, R_max, space, imodel, w_max=bound.w_max, gamma_max=bound.gamma_max
                )
            )
        return dom
    raise AssertionError("unreachable")


def prove(
    bound: Bound,
    space: Space,
    *,
    n: int = 2,
    d: int = 1,
    R_max: float = 2.0,
    budget: float = DEFAULT_PROVE_BUDGET,
    max_boxes: int | None = None,
    workers: int = 1,
    progress: TextIO | None = None,
) -> Proof:
    """Prove ``bound`` over its assumption set at ``n`` rows, ``d`` columns, ``R <= R_max``.

    ``budget``: seconds; ``max_boxes``: box evaluations (both stop the search
    with ``undecided``); ``workers``: processes exploring boxes in parallel
    (fork); ``progress``: a stream for progress lines (e.g. ``sys.stderr``).
    """
    start = time.monotonic()
    proof = Proof(bound_id=bound.id, expect=bound.expect, status="skipped", compare=bound.compare)
    reason = _skip(bound, space, n, d)
    if reason:
        proof.reason = reason
        return proof
    R_max = proof.R_max = min(float(R_max), bound.R_max)
    imodel = interval_model_for(space.model)
    args = (proof, bound, space, imodel, n, d, R_max, budget, max_boxes, workers, progress)
    try:
        try:
            return _run(*args)
        except NeedsFullDomain:  # a branch the root box did not reach uses A, x or y
            return _run(*args, mode="full")
    except ProofError as exc:
        proof.status, proof.reason = "error", str(exc)
        proof.seconds = time.monotonic() - start
        return proof


def _run(
    proof: Proof,
    bound: Bound,
    space: Space,
    imodel: Any,
    n: int,
    d: int,
    R_max: float,
    budget: float,
    max_boxes: int | None,
    workers: int,
    progress: TextIO | None,
    mode: str | None = None,
) -> Proof:
    start = time.monotonic()
    if mode is None:
        domain = _domain(bound, space, imodel, n, d, R_max)
    else:
        domain = Domain.make(
            mode, n, d, R_max, space, imodel, w_max=bound.w_max, gamma_max=bound.gamma_max
        )
    proof.mode, proof.domain = domain.mode, domain.describe()
    prover = _Prover(bound, domain)
    stats = _Stats()
    boxes = [domain.root()]
    found = None
    limit = max_boxes if max_boxes is not None else math.inf
    pool = None
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        _POOL["prover"] = prover
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    try:
        while boxes and found is None:
            if time.monotonic() - start > budget or stats.boxes >= limit:
                break
            per = int(min(ROUND_BOXES, max(limit - stats.boxes, 1)))
            if pool is None:
                results = [prover.explore(boxes, stats.touched, per)]
            else:
                chunks = [boxes[k::workers] for k in range(workers) if boxes[k::workers]]
                tasks = [(c, stats.touched, max(per // len(chunks), 8)) for c in chunks]
                results = list(pool.map(_work, tasks))
            boxes = []
            for part, rest, hit in results:
                stats.merge(part)
                boxes += rest
                found = found or hit
            open_vol = sum(volume(lo, hi, prover.widths) for lo, hi in boxes) + stats.stuck
            _progress(progress, bound, stats, open_vol, time.monotonic() - start)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
            _POOL.clear()
        if progress is not None and getattr(progress, "isatty", lambda: False)():
            progress.write("\n")
    proof.boxes, proof.seconds = stats.boxes, time.monotonic() - start
    proof.worst_difference, proof.worst_ratio = stats.worst_difference, stats.worst_ratio
    proof.worst_seen = stats.seen
    proof.proved_fraction = stats.proved
    proof.open_fraction = sum(volume(lo, hi, prover.widths) for lo, hi in boxes) + stats.stuck
    if found is not None:
        proof.status = "violated"
        proof.counterexample, proof.certificate = found
        if proof.counterexample.model is None:
            proof.counterexample = proof.counterexample.with_model(space.model)
    elif not boxes and stats.stuck == 0:
        proof.status, proof.open_fraction = "proved", 0.0
    else:
        proof.status = "undecided"
        proof.reason = "budget spent" if boxes else "boxes too small to split further"
    return proof


def format_proofs(proofs: list[Proof]) -> str:
    """One line per bound: id, expect, outcome, mode, boxes, time, summary."""
    rows = [("id", "expect", "proof", "domain", "boxes", "time", "")]
    for p in proofs:
        mark = "" if p.ok else " !"
        rows.append(
            (
                p.bound_id,
                p.expect,
                p.status + mark,
                p.mode or "-",
                str(p.boxes),
                f"{p.seconds:.1f}s",
                p.summary(),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = []
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r[:6], widths, strict=True)]
        lines.append("  ".join(cells + [r[6]]).rstrip())
    return "\n".join(lines)


def progress_stream() -> TextIO:
    return sys.stderr
