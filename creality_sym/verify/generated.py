"""Method (d): the freshly generated modules themselves, before they replace ``generated/``.

The rendered tree is imported from a temporary folder under a private package
name (:mod:`creality_sym.verify._candidate`). On each instance of
:data:`INSTANCES` (the last one has logits spread ~400, so ``f`` is one-hot in
float64 and the generated dominant-entry path runs), for the total and every
term (``term=``), the module's

* ``loss`` against the spec's loss in mpmath (:data:`numeric.MP_DPS` digits);
* ``gradient`` against the derivation (lambdified), the mpmath directional
  derivative and the central difference of the module's own ``loss``;
* ``hessian`` against the derivation (dense, from its structured products),
  the mpmath second directional derivative and the central difference of the
  module's own ``gradient``; it must be symmetric; ``hvp`` must equal
  ``hessian @ v``.

A module that fails to import or to run is a failure with the error. The CUDA
kernels (``cuda/<spec>.cu``) are built as C with the host compiler (through
the candidate's ``cuda_loader.load_host``) and their ``loss``, ``gradient``
and ``hessian`` compared with the module's, as method :data:`GENERATED_C`;
without a C compiler those rows say so. Instances where the spec's loss
overflows in float64 are skipped and named.
"""

from __future__ import annotations

import inspect
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from creality_sym.derive import Derivation, TermDerivation
from creality_sym.spec import f
from creality_sym.verify import numeric
from creality_sym.verify._candidate import Candidate, ImportFailure, candidate_tree
from creality_sym.verify._entries import (
    Instance,
    as_vector,
    evaluate,
    lowrank_pieces,
    softmax_env,
    x_env,
)
from creality_sym.verify.report import FAIL, GENERATED_C, NONE, PASS, UNDECIDED, Row

METHOD = "generated"
#: (n, d, logit spread): moderate, larger, and f one-hot in float64.
INSTANCES: tuple[tuple[int, int, float], ...] = ((5, 3, 1.0), (60, 12, 2.0), (40, 4, 400.0))
#: relative tolerance against the derivation evaluated in float64; C kernels against numpy.
DERIVED_TOL = 1e-9
KERNEL_TOL = 1e-12
COMPILER = "gcc"
HOW = (
    "the rendered modules imported from a temporary folder: loss/gradient/hessian/hvp (total "
    "and each term=) vs the derivation, central differences and mpmath; H symmetric, hvp = H v"
)


class CallFailure(Exception):
    """A generated function raised or returned something unusable."""


# ----------------------------------------------------------------------------- calling


def _values(spec: object, inst: Instance) -> dict[str, object]:
    """Parameter values by python name and by declared name."""
    out: dict[str, object] = {}
    values = inst.values()
    for p in spec.parameters:
        out[p.name] = values[p.symbol]
        out[p.python_name] = values[p.symbol]
    return out


def _signature_problem(spec: object, module: ModuleType) -> str:
    """Differences between ``loss``'s arguments after ``x, A`` and ``spec.parameters``."""
    sig = inspect.signature(module.loss)
    names = [
        p.name for p in list(sig.parameters.values())[2:] if p.name not in ("term", "validate")
    ]
    expected = [p.python_name for p in spec.parameters]
    if names != expected:
        return f"loss takes parameters {names} after (x, A); spec.parameters are {expected}"
    if "term" not in sig.parameters:
        return "loss takes no term= argument"
    return ""


def _call(fn: Callable[..., object], head: Sequence[object], values: dict, **kw: object) -> object:
    """``fn(*head, *parameters, **keyword parameters, **kw)`` from the signature."""
    params = list(inspect.signature(fn).parameters.values())[len(head) :]
    args, kwargs = list(head), {}
    for p in params:
        if p.name in ("term", "validate"):
            if p.name in kw:
                kwargs[p.name] = kw[p.name]
            continue
        if p.name not in values:
            if p.default is inspect.Parameter.empty:
                raise CallFailure(f"{fn.__name__} wants argument {p.name!r}, not a parameter")
            continue
        if p.kind is inspect.Parameter.KEYWORD_ONLY:
            kwargs[p.name] = values[p.name]
        else:
            args.append(values[p.name])
    if "term" in kw and kw["term"] is not None and "term" not in kwargs:
        raise CallFailure(f"{fn.__name__} takes no term=")
    try:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)
    except Exception as exc:
        raise CallFailure(f"{fn.__name__} raised {type(exc).__name__}: {exc}") from None


def _takes_term(fn: Callable[..., object]) -> bool:
    return "term" in inspect.signature(fn).parameters


class _Module:
    """The generated functions of one term (``term=None``: the weighted total)."""

    def __init__(self, module: ModuleType, inst: Instance, values: dict, term: str | None):
        self.m, self.inst, self.values, self.term = module, inst, values, term
        self.composed: set[str] = set()

    def _kw(self, fn: Callable[..., object]) -> dict[str, object]:
        return {"term": self.term} if self.term is not None or _takes_term(fn) else {}

    def loss(self, xv: np.ndarray) -> float:
        out = _call(self.m.loss, (xv, self.inst.A), self.values, **self._kw(self.m.loss))
        return float(out)  # type: ignore[arg-type]

    def gradient(self, xv: np.ndarray) -> np.ndarray:
        A = self.inst.A
        if self.term is None or _takes_term(self.m.gradient):
            return _vector(
                _call(self.m.gradient, (xv, A), self.values, **self._kw(self.m.gradient))
            )
        self.composed.add("gradient")
        g = _call(self.m.z_gradient, (xv, A), self.values, term=self.term)
        xg = _call(self.m.x_gradient, (xv, A), self.values, term=self.term)
        return A.T @ _vector(g) + _vector(xg)

    def hessian(self, xv: np.ndarray) -> np.ndarray:
        A = self.inst.A
        if self.term is None or _takes_term(self.m.hessian):
            return np.asarray(
                _call(self.m.hessian, (xv, A), self.values, **self._kw(self.m.hessian)), float
            )
        self.composed.add("hessian")
        B = _call(self.m.z_hessian, (xv, A), self.values, term=self.term)
        xh = _vector(_call(self.m.x_hessian_diag, (xv, A), self.values, term=self.term))
        return A.T @ np.asarray(B.dense(), float) @ A + np.diag(xh)  # type: ignore[attr-defined]

    def hvp(self, xv: np.ndarray, v: np.ndarray) -> np.ndarray:
        A = self.inst.A
        if self.term is None or _takes_term(self.m.hvp):
            return _vector(_call(self.m.hvp, (xv, v, A), self.values, **self._kw(self.m.hvp)))
        self.composed.add("hvp")
        B = _call(self.m.z_hessian, (xv, A), self.values, term=self.term)
        xh = _vector(_call(self.m.x_hessian_diag, (xv, A), self.values, term=self.term))
        return A.T @ np.asarray(B.matvec(A @ v), float) + xh * v  # type: ignore[attr-defined]


def probabilities(inst: Instance) -> np.ndarray:
    """f at the instance's x."""
    return softmax_env(inst.A @ inst.x, inst.kappa, inst)[f]


def _vector(value: object) -> np.ndarray:
    return np.asarray(value, dtype=float).reshape(-1)


# ----------------------------------------------------------------------------- scales


def _abs_scales(
    td: TermDerivation, inst: Instance
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Entrywise sizes of the gradient and Hessian, their float64 round-off, and ``big``.

    Sizes: ``|A|^T |g| + |psi'|`` (d,) and ``|A|^T |B| |A| + diag|psi''|`` (d, d).
    Round-off: ``log f = t - logsumexp(t)`` is exact only to ``big = 64 eps (1 + max|t|)``
    absolutely, which the f-weighted sizes of A carry into the derivation's values
    (they matter when f is one-hot and the result is tiny).
    """
    zv = inst.A @ inst.x
    env = softmax_env(zv, inst.kappa, inst)
    absA = np.abs(inst.A)
    g = as_vector(evaluate(td.z_gradient, env, inst.n), inst.n)
    xg = as_vector(evaluate(td.x_gradient, x_env(inst.x, inst), inst.d), inst.d)
    diag, terms = lowrank_pieces(td.z_hessian, env, inst.n)
    xh = as_vector(evaluate(td.x_hessian, x_env(inst.x, inst), inst.d), inst.d)
    sg = absA.T @ np.abs(g) + np.abs(xg)
    sh = absA.T @ (np.abs(diag)[:, None] * absA) + np.diag(np.abs(xh))
    for c, u, w in terms:
        sh = sh + abs(c) * np.outer(absA.T @ np.abs(u), absA.T @ np.abs(w))
    fv = env[f]
    k = max(abs(inst.kappa), 1.0)
    big = 64 * np.finfo(float).eps * (1.0 + float(np.max(np.abs(inst.kappa * zv))))
    fa = absA.T @ fv
    bg = 16 * big * k * fa
    bh = 16 * big * k**2 * (np.outer(fa, fa) + absA.T @ (fv[:, None] * absA))
    return sg, sh, bg, bh, big


def _loss_scale(spec: object, name: str, inst: Instance) -> float:
    total = 0.0
    env = softmax_env(inst.A @ inst.x, inst.kappa, inst)
    for phi, weight, space, summed in numeric.terms_of(spec, name):
        w = abs(float(evaluate(weight, inst.scalars, inst.n)))
        e, size = (x_env(inst.x, inst), inst.d) if space == "x" else (env, inst.n)
        vals = np.abs(as_vector(evaluate(phi, e, size), size))
        total += w * float(np.sum(vals) if summed else vals[0])
    return total


# ----------------------------------------------------------------------------- checks


def _check_term(
    spec: object,
    td: TermDerivation,
    mod: _Module,
    inst: Instance,
    line: object,
    v: np.ndarray,
    v2: np.ndarray,
    errors: numeric._Errors,
) -> None:
    """Every check of one term on one instance, recorded in ``errors``."""
    where = f"n={inst.n},d={inst.d}"
    x0, eps = inst.x, np.finfo(float).eps
    sg, sh, bg, bh, big = _abs_scales(td, inst)
    rg, rh = numeric._scales(td, inst, v)
    # loss
    L0 = mod.loss(x0)
    L_mp = float(numeric.mp_loss(spec, td.name, line))
    lscale = _loss_scale(spec, td.name, inst)
    errors.add("loss~mpmath", abs(L0 - L_mp), 1e-11 * lscale + 4 * big * (1 + lscale), where)
    d1, d2 = numeric.mp_derivatives(spec, td.name, line)
    # gradient
    g = mod.gradient(x0)
    g_der = numeric.gradient(td, inst, x0)
    errors.add("grad~derived", _inf(g - g_der), DERIVED_TOL * _inf(sg) + _inf(bg), where)
    gv = float(g @ v)
    errors.add("grad.v~mpmath", abs(gv - d1), numeric.MP_TOL * abs(d1) + rg, where)
    h1, h2 = 1e-5, 1e-4
    fd1, t1 = numeric.central_first(lambda h: mod.loss(x0 + h * v), h1)
    allowed = numeric.FD_TOL * abs(gv) + 1e6 * rg + 20 * eps * abs(L0) / h1 + 2 * t1
    errors.add("grad.v~fd(loss)", abs(fd1 - gv), allowed, where)
    # Hessian
    H = mod.hessian(x0)
    if H.shape != (inst.d, inst.d):
        raise CallFailure(f"hessian has shape {H.shape}, not {(inst.d, inst.d)}")
    errors.add("H symmetric", _inf(H - H.T), 1e-12 * _inf(sh) + 1e-3 * _inf(bh), where)
    H_der = np.column_stack([numeric.hvp(td, inst, x0, e) for e in np.eye(inst.d)])
    errors.add("H~derived", _inf(H - H_der), DERIVED_TOL * _inf(sh) + _inf(bh), where)
    vhv = float(v @ H @ v)
    errors.add("vHv~mpmath", abs(vhv - d2), numeric.MP_TOL * abs(d2) + rh, where)
    fd2, t2 = numeric.central_second(lambda h: mod.loss(x0 + h * v), L0, h2)
    allowed = numeric.FD_TOL * abs(vhv) + 1e6 * rh + 40 * eps * abs(L0) / h2**2 + 2 * t2
    errors.add("vHv~fd(loss)", abs(fd2 - vhv), allowed, where)
    fdv, tv = numeric.central_first(lambda h: mod.gradient(x0 + h * v), h1)
    hv = H @ v
    allowed = numeric.FD_TOL * _norm(hv) + 1e6 * rh + 20 * eps * _norm(g) / h1 + 2 * tv
    errors.add("Hv~fd(grad)", _norm(fdv - hv), allowed, where)
    allowed = 1e-10 * _inf(sh @ np.abs(v2)) + 1e-3 * _inf(bh @ np.abs(v2))
    errors.add("hvp=H@v", _inf(mod.hvp(x0, v2) - H @ v2), allowed, where)
    combined = _combined(mod, inst)
    if combined is not None:
        L_c, g_c, H_c = combined
        allowed = 1e-11 * lscale + 4 * big * (1 + lscale)
        errors.add("loss~mpmath (z_pieces 2)", abs(L_c - L_mp), allowed, where)
        allowed = DERIVED_TOL * _inf(sg) + _inf(bg)
        errors.add("grad~derived (z_pieces 2)", _inf(g_c - g_der), allowed, where)
        allowed = DERIVED_TOL * _inf(sh) + _inf(bh)
        errors.add("H~derived (z_pieces 2)", _inf(H_c - H_der), allowed, where)


def _combined(mod: _Module, inst: Instance) -> tuple[float, np.ndarray, np.ndarray] | None:
    """Loss, gradient and Hessian from the term's combined program (``z_pieces`` at
    ``order=2``, which the solver's line search uses), or None where it has none.

    The z-space pieces go through the runtime's own ``gradient_from`` and
    ``hessian_from``; the x-space parts come from the module's x-space pieces.
    """
    model = getattr(mod.m, "_MODEL", None)
    term = "total" if mod.term is None else mod.term
    if model is None or term not in getattr(model, "z_all", {}):
        return None
    runtime = sys.modules.get(type(model).__module__)
    A, x = inst.A, inst.x
    try:
        with np.errstate(all="ignore"):
            values = model.prepare(x, A, mod.values, False).values
            zp = model.z_pieces(np, A @ x, values, term, 2)
            xp = model.x_pieces(np, x, values, term, 2)
            loss = float(0.0 if zp.loss is None else zp.loss)
            loss += float(0.0 if xp.loss is None else xp.loss)
            g = np.asarray(runtime.gradient_from(np, A, zp), float)
            H = np.array(runtime.hessian_from(np, A, zp), float)
    except Exception as exc:
        raise CallFailure(f"z_pieces(order=2) raised {type(exc).__name__}: {exc}") from None
    if xp.gradient is not None:
        g = g + np.asarray(xp.gradient, float)
    if xp.hessian_diag is not None:
        H[np.diag_indices_from(H)] += np.asarray(xp.hessian_diag, float)
    return loss, g, H


def _inf(a: np.ndarray) -> float:
    return float(np.max(np.abs(a), initial=0.0)) if np.all(np.isfinite(a)) else np.inf


def _norm(a: np.ndarray) -> float:
    return float(np.linalg.norm(a))


_GRADIENT_CHECKS = ("loss~mpmath", "grad~derived", "grad.v~mpmath", "grad.v~fd(loss)")
_GRADIENT_CHECKS += ("loss~mpmath (z_pieces 2)", "grad~derived (z_pieces 2)")
_HESSIAN_CHECKS = ("H symmetric", "H~derived", "vHv~mpmath", "vHv~fd(loss)", "Hv~fd(grad)")
_HESSIAN_CHECKS += ("hvp=H@v", "H~derived (z_pieces 2)")


def _kernel_check(
    kernels: object, module: ModuleType, inst: Instance, values: dict, errors: numeric._Errors
) -> None:
    """The C kernels' loss, gradient and Hessian against the module's (total)."""
    where = f"n={inst.n},d={inst.d}"
    names = [p["name"] for p in kernels.description["parameters"]]  # type: ignore[attr-defined]
    ordered = [values[name] for name in names]
    for what, check in (("loss", "C loss"), ("gradient", "C gradient"), ("hessian", "C hessian")):
        expected = np.asarray(_call(getattr(module, what), (inst.x, inst.A), values), float)
        try:
            with np.errstate(all="ignore"):
                got = np.asarray(getattr(kernels, what)(inst.x, inst.A, *ordered), float)
        except Exception as exc:
            raise CallFailure(f"kernel {what} raised {type(exc).__name__}: {exc}") from None
        scale = max(_inf(expected), np.finfo(float).tiny)
        err = _inf(got - expected) if got.shape == expected.shape else np.inf
        errors.add(check, err, KERNEL_TOL * scale, where)


# ----------------------------------------------------------------------------- driver


def run(
    derivation: Derivation,
    *,
    seed: int = 0,
    candidate: Candidate | None = None,
    instances: Sequence[tuple[int, int, float]] = INSTANCES,
    kernels: bool = True,
) -> list[Row]:
    """Rows of methods ``generated`` (and ``generated-c``) for ``derivation``'s spec.

    ``candidate`` is the rendered tree to check (default: this spec rendered alone).
    """
    if candidate is None:
        from creality_sym.generate import Layout, render_all

        spec_dir = Path(derivation.spec.path or ".").resolve().parent
        files = render_all([derivation], Layout(spec_dir.parent, derivations=spec_dir))
        with candidate_tree(files) as cand:
            return run(derivation, seed=seed, candidate=cand, instances=instances, kernels=kernels)
    spec = derivation.spec
    t0 = time.perf_counter()
    names = [td.name for td in derivation.all]
    try:
        module = candidate.module(spec.name)
    except ImportFailure as exc:
        rows = _rows(spec.name, names, METHOD, FAIL, f"cannot import the module: {exc}", t0)
        return rows + _rows(spec.name, ["total"], GENERATED_C, FAIL, "module not importable", t0)
    problem = _signature_problem(spec, module)
    if problem:
        rows = _rows(spec.name, names, METHOD, FAIL, problem, t0)
        return rows + _rows(spec.name, ["total"], GENERATED_C, NONE, "not run", t0)
    errs = {name: numeric._Errors({}, {}) for name in names}
    kerr = numeric._Errors({}, {})
    composed: set[str] = set()
    checked, skipped = [], []
    kern, kern_note = _load_kernels(candidate, spec.name) if kernels else (None, "not requested")
    for i, (n, d, spread) in enumerate(instances):
        inst, (v, v2), why = numeric.instance_in_range(spec, n, d, spread, [seed, 7, i], 2)
        if inst is None:
            skipped.append(f"({n},{d}) spread {spread:g}: {why}")
            continue
        onehot = ", one-hot f" if float(np.max(probabilities(inst))) > 1 - 1e-9 else ""
        checked.append(f"({n},{d}{onehot}{f', spread {why}' if why else ''})")
        values = _values(spec, inst)
        line = numeric.mp_line(spec, inst, v)
        for td in derivation.all:
            mod = _Module(module, inst, values, None if td.name == "total" else td.name)
            try:
                _check_term(spec, td, mod, inst, line, v, v2, errs[td.name])
            except CallFailure as exc:
                errs[td.name].failed.setdefault(f"call ({exc})", []).append(f"n={n},d={d}")
            composed |= mod.composed
        if kern is not None:
            try:
                _kernel_check(kern, module, inst, values, kerr)
            except CallFailure as exc:
                kerr.failed.setdefault(f"call ({exc})", []).append(f"n={n},d={d}")
    note = f"; skipped (outside float64): {'; '.join(skipped)}" if skipped else ""
    if composed:
        note += (
            f"; term= through z_gradient/z_hessian ({', '.join(sorted(composed))} take no term=)"
        )
    rows = []
    for name in names:
        rows += _summarize(spec.name, name, METHOD, errs[name], checked, note, t0)
    if kern is None:
        rows += _rows(spec.name, ["total"], GENERATED_C, kern_verdict(kern_note), kern_note, t0)
    else:
        rows += _summarize(spec.name, "total", GENERATED_C, kerr, checked, note, t0, c=True)
    return rows


def kern_verdict(note: str) -> str:
    return FAIL if note.startswith("cannot build") else NONE


def _load_kernels(candidate: Candidate, name: str) -> tuple[object | None, str]:
    if f"cuda/{name}.cu" not in candidate.files:
        return None, f"skipped: the rendered tree has no cuda/{name}.cu"
    if shutil.which(COMPILER) is None:
        return None, f"skipped: no C compiler ({COMPILER}) on PATH"
    try:
        loader = candidate.module("cuda_loader")
        return loader.load_host(name, folder=candidate.cuda_folder, compiler=COMPILER), ""
    except ImportFailure as exc:
        return None, f"cannot build the kernels: cuda_loader does not import: {exc}"
    except Exception as exc:
        return None, f"cannot build the kernels as C: {type(exc).__name__}: {exc}"


def _summarize(
    spec: str,
    term: str,
    method: str,
    e: numeric._Errors,
    checked: list[str],
    note: str,
    t0: float,
    *,
    c: bool = False,
) -> list[Row]:
    groups = (
        (("gradient", ("C loss", "C gradient")), ("hessian", ("C hessian",)))
        if c
        else (("gradient", _GRADIENT_CHECKS), ("hessian", _HESSIAN_CHECKS))
    )
    calls = [k for k in e.failed if k.startswith("call (")]
    rows = []
    for quantity, checks in groups:
        present = [k for k in checks if k in e.worst]
        bad = {k: e.failed[k] for k in (*present, *calls) if k in e.failed}
        summary = ", ".join(f"{k} {e.worst[k]:.1e}" for k in present)
        prefix = "C kernels (gcc) vs the module: " if c else ""
        if bad:
            what = "; ".join(f"{k} off at {', '.join(w)}" for k, w in bad.items())
            verdict, detail = FAIL, f"{prefix}{what} (error/tolerance: {summary}){note}"
        elif not checked:
            verdict, detail = UNDECIDED, f"{prefix}no instance inside float64's range{note}"
        else:
            verdict = PASS
            where = ", ".join(checked)
            detail = f"{prefix}error/tolerance <= 1 at (n,d) in {where}: {summary}{note}"
        rows.append(Row(spec, term, quantity, method, verdict, detail, seconds=_since(t0)))
    return rows


def _rows(spec: str, terms: list[str], method: str, verdict: str, detail: str, t0: float):
    return [
        Row(spec, term, quantity, method, verdict, detail, seconds=_since(t0))
        for term in terms
        for quantity in ("gradient", "hessian")
    ]


def _since(t0: float) -> float:
    return time.perf_counter() - t0
