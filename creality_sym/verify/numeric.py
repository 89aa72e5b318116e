"""Method (b): the structured forms in float64 against finite differences and mpmath.

The loss is evaluated from the spec's terms (not from the derivation), with
``log f = t - logsumexp(t)``; the derivation's forms are lambdified to numpy.
On each random instance (A (n, d), x (d,), a random unit direction v (d,)):

* finite differences: ``g.v`` against the central difference of the loss,
  ``v^T H v`` against its second central difference, and ``H v`` against the
  central difference of the structured gradient;
* mpmath (``mp.dps = 40``): the loss along ``x + h v`` in high precision,
  ``mpmath.diff`` of first and second order at ``h = 0``, against ``g.v`` and
  ``v^T H v`` to ~1e-9 relative.

Hessians are applied as ``A^T (B (A v)) + psi''(x) * v`` from the diag + low-rank
pieces: no n x n (or d x d) matrix is formed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp

from creality_sym.derive import Derivation, TermDerivation
from creality_sym.spec import Spec, f, x, z
from creality_sym.verify._entries import (
    LOGF,
    Instance,
    as_vector,
    evaluate,
    evaluate_mp,
    lowrank_matvec,
    lowrank_pieces,
    random_instance,
    softmax_env,
    term_value,
    term_value_mp,
    x_env,
)
from creality_sym.verify.report import FAIL, PASS, UNDECIDED, Row

METHOD = "numeric"
#: (n, d, logit spread) of the random instances; the last has logits far apart, so
#: that some f_j underflow to 0 in float64 (log f must still be finite).
INSTANCES: tuple[tuple[int, int, float], ...] = (
    (5, 3, 1.0),
    (60, 12, 2.0),
    (500, 50, 3.0),
    (40, 4, 400.0),
)
#: relative tolerances: finite differences, and mpmath (plus float64 round-off allowance).
FD_TOL = 1e-5
MP_TOL = 1e-9
MP_DPS = 40


@dataclass
class _Errors:
    """Worst relative error and pass/fail per check."""

    worst: dict[str, float]
    failed: dict[str, list[str]]

    def add(self, check: str, err: float, allowed: float, where: str) -> None:
        rel = err / allowed if allowed > 0 else (0.0 if err == 0 else np.inf)
        self.worst[check] = max(self.worst.get(check, 0.0), rel)
        if not rel <= 1.0:  # also catches NaN
            self.failed.setdefault(check, []).append(where)


TermList = list[tuple[sp.Expr, sp.Expr, str, bool]]  # (phi, weight, space, summed)


def terms_of(spec: Spec, name: str) -> TermList:
    """The terms making up ``name`` (one unweighted term, or every weighted term)."""
    if name == "total":
        return [(t.phi, t.weight, t.space, getattr(t, "summed", True)) for t in spec.terms]
    t = spec.term(name)
    return [(t.phi, sp.Integer(1), t.space, getattr(t, "summed", True))]


def loss(spec: Spec, name: str, inst: Instance, xv: np.ndarray) -> float:
    """The loss of term ``name`` (or ``"total"``) at ``xv`` (d,), from the spec's phi.

    A summed term adds ``sum_j phi_j``, an unsummed one the scalar ``phi``.
    """
    zv = inst.A @ xv
    env = softmax_env(zv, inst.kappa, inst)
    out = 0.0
    for phi, weight, space, summed in terms_of(spec, name):
        w = float(evaluate(weight, inst.scalars, inst.n))
        if space == "x":
            out += w * term_value(phi, summed, x_env(xv, inst), inst.d)
        else:
            out += w * term_value(phi, summed, env, inst.n)
    return out


#: largest magnitude whose square (a term of a norm) stays finite in float64
_SQUARE_LIMIT = 1e150


def overflow(spec: Spec, inst: Instance, v: np.ndarray, steps: Sequence[float] = ()) -> str:
    """Why ``inst`` lies outside float64's reach ("" when it does not).

    The spec's loss (total and every term) is evaluated at ``x`` and at ``x + h v``
    for each step ``h`` with overflow raising: an overflow (e.g. ``exp(z)`` for large
    logits) or a non-finite loss means the instance cannot be checked in float64.
    """
    names = [t.name for t in spec.terms] + ["total"]
    for h in (0.0, *steps):
        for name in names:
            try:
                with np.errstate(over="raise", invalid="ignore", divide="ignore"):
                    value = loss(spec, name, inst, inst.x + h * v)
            except (FloatingPointError, OverflowError):
                return f"overflow in float64 evaluating the loss of {name}"
            if not np.isfinite(value):
                return f"the loss of {name} is {value} in float64"
            if abs(float(value)) > _SQUARE_LIMIT:
                # norms of derivatives (sums of squares of loss-sized numbers) must fit too
                return f"the loss of {name} is {float(value):.3g}: its square overflows float64"
    return ""


def gradient(td: TermDerivation, inst: Instance, xv: np.ndarray) -> np.ndarray:
    """Structured gradient ``A^T g + psi'(x)`` (d,)."""
    env = softmax_env(inst.A @ xv, inst.kappa, inst)
    g = as_vector(evaluate(td.z_gradient, env, inst.n), inst.n)
    xg = as_vector(evaluate(td.x_gradient, x_env(xv, inst), inst.d), inst.d)
    return inst.A.T @ g + xg


def hvp(td: TermDerivation, inst: Instance, xv: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Structured Hessian-vector product ``A^T B A v + psi''(x) v`` (d,)."""
    env = softmax_env(inst.A @ xv, inst.kappa, inst)
    pieces = lowrank_pieces(td.z_hessian, env, inst.n)
    xh = as_vector(evaluate(td.x_hessian, x_env(xv, inst), inst.d), inst.d)
    return inst.A.T @ lowrank_matvec(pieces, inst.A @ v) + xh * v


def _scales(td: TermDerivation, inst: Instance, v: np.ndarray) -> tuple[float, float]:
    """Round-off scales of ``g.v`` and ``v^T H v`` in float64 (absolute).

    Sum of absolute contributions times ``1e-12``, plus ``64 eps T`` times the
    f-weighted size of ``A v`` (``T = max |t|``): float64 ``log f = t - logsumexp(t)``
    is exact only to ``eps T`` absolutely, which matters once some f_j underflow.
    """
    zv = inst.A @ inst.x
    env = softmax_env(zv, inst.kappa, inst)
    av = inst.A @ v
    g = as_vector(evaluate(td.z_gradient, env, inst.n), inst.n)
    xg = as_vector(evaluate(td.x_gradient, x_env(inst.x, inst), inst.d), inst.d)
    diag, terms = lowrank_pieces(td.z_hessian, env, inst.n)
    xh = as_vector(evaluate(td.x_hessian, x_env(inst.x, inst), inst.d), inst.d)
    sg = float(np.abs(g) @ np.abs(av) + np.abs(xg) @ np.abs(v))
    sh = float(np.abs(diag) @ av**2 + np.abs(xh) @ v**2)
    for c, u, w in terms:
        sh += abs(c) * float(np.abs(u) @ np.abs(av)) * float(np.abs(w) @ np.abs(av))
    fv = env[f]
    k = abs(inst.kappa)
    big = 64 * np.finfo(float).eps * (1.0 + float(np.max(np.abs(inst.kappa * zv))))
    fa = float(fv @ np.abs(av))
    return (
        1e-12 * sg + big * k * fa,
        1e-12 * sh + big * k**2 * (float(fv @ av**2) + fa**2),
    )


def instance_in_range(
    spec: Spec, n: int, d: int, spread: float, seed: object, directions: int
) -> tuple[Instance | None, list[np.ndarray], str]:
    """A random instance with logits of size ``spread`` and unit directions, inside float64.

    When the loss overflows there (e.g. ``exp(z)`` at logits ~400), the spread is
    reduced (by 4, twice) while it stays large enough for a one-hot f; returns
    ``(instance, directions, note)``, or ``(None, [None, ...], why)`` when every try overflows.
    """
    spreads = [spread, spread / 4, spread / 16] if spread >= 64 else [spread]
    why = ""
    for s in spreads:
        rng = np.random.default_rng(seed)
        inst = random_instance(spec, n, d, rng, logit_std=s)
        vs = [u / np.linalg.norm(u) for u in rng.normal(size=(directions, d))]
        why = overflow(spec, inst, vs[0], (1e-5, -1e-5, 1e-4, -1e-4))
        if not why:
            return (
                inst,
                vs,
                (f"{spread:g} -> {s:g}, as {spread:g} overflows" if s != spread else ""),
            )
    return None, [None] * directions, why


# ----------------------------------------------------------------------------- mpmath


@dataclass(frozen=True)
class _MpLine:
    """The instance along ``x + h v`` in mpmath: logits z0 + h zv, x0 + h v."""

    z0: list[mpmath.mpf]
    zv: list[mpmath.mpf]
    x0: list[mpmath.mpf]
    xv: list[mpmath.mpf]
    vectors: dict[sp.Symbol, list[mpmath.mpf]]
    scalars: dict[sp.Symbol, mpmath.mpf]
    kappa: mpmath.mpf
    x_vectors: dict[sp.Symbol, list[mpmath.mpf]]


def _mp_line(spec: Spec, inst: Instance, v: np.ndarray) -> _MpLine:
    A = [[mpmath.mpf(float(a)) for a in row] for row in inst.A]
    x0 = [mpmath.mpf(float(t)) for t in inst.x]
    vv = [mpmath.mpf(float(t)) for t in v]
    z0 = [mpmath.fdot(row, x0) for row in A]
    zv = [mpmath.fdot(row, vv) for row in A]
    scalars = {s: mpmath.mpf(val) for s, val in inst.scalars.items()}
    kappa = mpmath.mpf(sp.lambdify(list(scalars), spec.logit_scale, "mpmath")(*scalars.values()))
    vectors = {s: [mpmath.mpf(float(t)) for t in val] for s, val in inst.vectors.items()}
    x_vectors = {s: [mpmath.mpf(float(t)) for t in val] for s, val in inst.x_vectors.items()}
    return _MpLine(z0, zv, x0, vv, vectors, scalars, kappa, x_vectors)


def _mp_loss(spec: Spec, name: str, line: _MpLine, h: mpmath.mpf) -> mpmath.mpf:
    zh = [a + h * b for a, b in zip(line.z0, line.zv, strict=True)]
    t = [line.kappa * zj for zj in zh]
    tmax = max(t)
    lse = tmax + mpmath.log(mpmath.fsum(mpmath.exp(tj - tmax) for tj in t))
    logf = [tj - lse for tj in t]
    env = {f: [mpmath.exp(q) for q in logf], z: zh, LOGF: logf, **line.vectors, **line.scalars}
    xs = [a + h * b for a, b in zip(line.x0, line.xv, strict=True)]
    xenv = {x: xs, **line.x_vectors, **line.scalars}
    n, d = len(zh), len(line.x0)
    out = mpmath.mpf(0)
    for phi, weight, space, summed in terms_of(spec, name):
        w = evaluate_mp(weight, line.scalars, 1)[0]
        if space == "x":
            out += w * term_value_mp(phi, summed, xenv, d)
        else:
            out += w * term_value_mp(phi, summed, env, n)
    return out


def mp_loss(spec: Spec, name: str, line: _MpLine, h: float = 0.0) -> mpmath.mpf:
    """The loss of ``name`` at ``x + h v`` in mpmath at :data:`MP_DPS` digits."""
    with mpmath.workdps(MP_DPS):
        return _mp_loss(spec, name, line, mpmath.mpf(h))


def mp_line(spec: Spec, inst: Instance, v: np.ndarray) -> _MpLine:
    """The instance along ``x + h v`` in mpmath (for :func:`mp_loss`, :func:`mp_derivatives`)."""
    with mpmath.workdps(MP_DPS):
        return _mp_line(spec, inst, v)


def mp_derivatives(spec: Spec, name: str, line: _MpLine) -> tuple[float, float]:
    """First and second derivatives of the loss along the line at h = 0, as floats."""
    d1, d2 = _mp_derivatives(spec, name, line)
    return float(d1), float(d2)


def _mp_derivatives(spec: Spec, name: str, line: _MpLine) -> tuple[mpmath.mpf, mpmath.mpf]:
    """First and second derivative of the loss along the line at h = 0."""
    with mpmath.workdps(MP_DPS):
        d1 = mpmath.diff(lambda h: _mp_loss(spec, name, line, h), 0, 1)
        d2 = mpmath.diff(lambda h: _mp_loss(spec, name, line, h), 0, 2)
    return d1, d2


# ----------------------------------------------------------------------------- driver


def central_first(fn: Callable[[float], object], h: float) -> tuple[object, float]:
    """Central first difference of ``fn`` at 0 with step ``h/2``, and its truncation error
    estimated as the distance to the one with step ``h`` (the error is O(h^2))."""
    a = (np.asarray(fn(h)) - np.asarray(fn(-h))) / (2 * h)
    b = (np.asarray(fn(h / 2)) - np.asarray(fn(-h / 2))) / h
    return (float(b) if b.ndim == 0 else b), float(np.linalg.norm(np.ravel(a - b)))


def central_second(fn: Callable[[float], float], f0: float, h: float) -> tuple[float, float]:
    """Central second difference at step ``h/2`` and its truncation estimate (as above)."""
    a = (fn(h) - 2 * f0 + fn(-h)) / h**2
    b = (fn(h / 2) - 2 * f0 + fn(-h / 2)) / (h / 2) ** 2
    return float(b), float(abs(a - b))


def check_instance(
    spec: Spec,
    td: TermDerivation,
    inst: Instance,
    v: np.ndarray,
    errors: _Errors,
    *,
    mp: bool = True,
    line: _MpLine | None = None,
) -> None:
    """All checks of one term on one instance; failures recorded in ``errors``."""
    where = f"n={inst.n},d={inst.d}"
    x0 = inst.x
    L0 = loss(spec, td.name, inst, x0)
    g = gradient(td, inst, x0)
    hv = hvp(td, inst, x0, v)
    gv, vhv = float(g @ v), float(v @ hv)
    rg, rh = _scales(td, inst, v)
    eps = np.finfo(float).eps

    def lossat(h: float) -> float:
        return loss(spec, td.name, inst, x0 + h * v)

    # finite differences at h/2, truncation estimated from h and h/2, round-off ~ eps |L| / h^k
    h1, h2 = 1e-5, 1e-4
    fd1, t1 = central_first(lossat, h1)
    allowed = FD_TOL * abs(gv) + 1e6 * rg + 20 * eps * abs(L0) / h1 + 2 * t1
    errors.add("fd g.v", abs(fd1 - gv), allowed, where)
    fd2, t2 = central_second(lossat, L0, h2)
    allowed = FD_TOL * abs(vhv) + 1e6 * rh + 40 * eps * abs(L0) / h2**2 + 2 * t2
    errors.add("fd vHv", abs(fd2 - vhv), allowed, where)
    fdv, tv = central_first(lambda h: gradient(td, inst, x0 + h * v), h1)
    allowed = (
        FD_TOL * float(np.linalg.norm(hv))
        + 1e6 * rh
        + 20 * eps * float(np.linalg.norm(g)) / h1
        + 2 * tv
    )
    errors.add("fd(grad) Hv", float(np.linalg.norm(fdv - hv)), allowed, where)
    if mp and line is not None:
        d1, d2 = _mp_derivatives(spec, td.name, line)
        errors.add("mpmath g.v", float(abs(d1 - gv)), MP_TOL * abs(float(d1)) + rg, where)
        errors.add("mpmath vHv", float(abs(d2 - vhv)), MP_TOL * abs(float(d2)) + rh, where)


def run(
    derivation: Derivation,
    *,
    seed: int = 0,
    instances: Sequence[tuple[int, int, float]] = INSTANCES,
    mp: bool = True,
) -> list[Row]:
    """Rows (gradient, hessian) for every term and the total of ``derivation``."""
    spec = derivation.spec
    errs = {td.name: _Errors({}, {}) for td in derivation.all}
    secs = dict.fromkeys(errs, 0.0)
    checked: list[str] = []
    skipped: list[str] = []
    for i, (n, d, spread) in enumerate(instances):
        inst, (v,), why = instance_in_range(spec, n, d, spread, [seed, i], 1)
        if inst is None:
            skipped.append(f"({n},{d}) spread {spread:g}: {why}")
            continue
        checked.append(f"({n},{d}{f' spread {why}' if why else ''})")
        line = _mp_line(spec, inst, v) if mp else None
        for td in derivation.all:
            t0 = time.perf_counter()
            check_instance(spec, td, inst, v, errs[td.name], mp=mp, line=line)
            secs[td.name] += time.perf_counter() - t0
    where = ", ".join(checked)
    note = f"; skipped (outside float64): {'; '.join(skipped)}" if skipped else ""
    rows = []
    for td in derivation.all:
        e = errs[td.name]
        for quantity, checks in (
            ("gradient", ("fd g.v", "mpmath g.v")),
            ("hessian", ("fd vHv", "fd(grad) Hv", "mpmath vHv")),
        ):
            present = [c for c in checks if c in e.worst]
            bad = {c: e.failed[c] for c in present if c in e.failed}
            summary = ", ".join(f"{c} {e.worst[c]:.1e}" for c in present)
            if bad:
                what = "; ".join(f"{c} off at {', '.join(w)}" for c, w in bad.items())
                verdict, detail = FAIL, f"{what} (error/tolerance: {summary}){note}"
            elif not checked:
                verdict, detail = UNDECIDED, f"no instance inside float64's range{note}"
            else:
                verdict = PASS
                detail = f"error/tolerance <= 1 at (n,d) in {where}: {summary}{note}"
            rows.append(
                Row(
                    spec=spec.name,
                    term=td.name,
                    quantity=quantity,
                    method=METHOD,
                    verdict=verdict,
                    detail=detail,
                    seconds=secs[td.name] / 2,
                )
            )
    return rows
