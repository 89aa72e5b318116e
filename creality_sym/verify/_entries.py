"""Shared helpers of the verifiers: stable ``log f``, entry-expression evaluation, instances.

Entry expressions (see :mod:`creality_sym.vector`) are evaluated on concrete
vectors of length ``n``: numpy arrays (float64) or lists of ``mpmath.mpf``.
``log(f)`` is never evaluated as the log of a (possibly underflowed) ``f``:
:func:`prepare` rewrites it to the symbol :data:`LOGF`, which callers bind to
``t - logsumexp(t)`` with ``t = logit_scale * z``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import mpmath
import numpy as np
import sympy as sp

from creality_sym.spec import Spec, f, x, z
from creality_sym.vector import N, Total, has_outside_totals

#: stands for ``log f_j = t_j - logsumexp(t)``, ``t = logit_scale * z``.
LOGF = sp.Symbol("logf_", real=True)

Value = object  # a float64 array/scalar or an mpf list/scalar


def prepare(expr: object) -> sp.Expr:
    """Rewrite every ``log(f)`` (also ``log(f**k)``, ``log(b*f)``) into :data:`LOGF`.

    Raises ``ValueError`` when ``f`` survives inside a logarithm.
    """
    e = sp.sympify(expr)
    if not e.has(sp.log):
        return e
    e = e.replace(
        lambda a: isinstance(a, sp.log) and has_outside_totals(a, f),
        lambda a: sp.expand_log(a, force=True),
    )
    e = e.xreplace({sp.log(f): LOGF})
    bad = [a for a in e.atoms(sp.log) if has_outside_totals(a, f)]
    if bad:
        raise ValueError(f"cannot rewrite {bad[0]} as logit - logsumexp; write log(f) explicitly")
    return e


def _top_totals(e: sp.Basic) -> set[sp.Basic]:
    if isinstance(e, Total):
        return {e}
    out: set[sp.Basic] = set()
    for a in e.args:
        out |= _top_totals(a)
    return out


@dataclass(frozen=True)
class _Compiled:
    """A lambdified entry expression whose Totals are computed first, by recursion."""

    fn: Callable[..., object]
    args: tuple[sp.Symbol, ...]
    totals: tuple[_Compiled, ...] = field(default=())


@lru_cache(maxsize=4096)
def _compile(e: sp.Expr, backend: str) -> _Compiled:
    tops = sorted(_top_totals(e), key=sp.default_sort_key)
    holders = [sp.Symbol(f"total_{i}_", real=True) for i in range(len(tops))]
    body = e.xreplace(dict(zip(tops, holders, strict=True)))
    args = tuple(sorted(body.free_symbols - set(holders), key=str))
    fn = sp.lambdify([*args, *holders], body, modules=backend)
    return _Compiled(fn, args, tuple(_compile(t.args[0], backend) for t in tops))


def evaluate(expr: object, env: Mapping[sp.Symbol, Value], n: int) -> np.ndarray | float:
    """Entry expression on float64 data: an ``(n,)`` array (or a scalar if constant).

    ``env`` binds every free symbol (entry symbols to ``(n,)`` arrays, scalars to
    floats); ``Total`` sums over the ``n`` entries and ``N`` is ``n``.
    """
    return _run(_compile(prepare(expr), "numpy"), {**env, N: n}, n)


def _run(c: _Compiled, env: Mapping[sp.Symbol, Value], n: int) -> object:
    totals = [np.sum(np.broadcast_to(_run(t, env, n), (n,))) for t in c.totals]
    try:
        values = [env[a] for a in c.args]
    except KeyError as exc:
        raise ValueError(f"no value bound for symbol {exc.args[0]}") from None
    return c.fn(*values, *totals)


def evaluate_mp(expr: object, env: Mapping[sp.Symbol, Value], n: int) -> list[mpmath.mpf]:
    """Entry expression on mpmath data: a list of ``n`` mpf (entries from lists)."""
    return _run_mp(_compile(prepare(expr), "mpmath"), {**env, N: mpmath.mpf(n)}, n)


def _run_mp(c: _Compiled, env: Mapping[sp.Symbol, Value], n: int) -> list[mpmath.mpf]:
    totals = [mpmath.fsum(_run_mp(t, env, n)) for t in c.totals]
    values = [env[a] for a in c.args]
    out = []
    for j in range(n):
        entry = [v[j] if isinstance(v, (list, tuple)) else v for v in values]
        out.append(mpmath.mpf(c.fn(*entry, *totals)))
    return out


# ----------------------------------------------------------------------------- instances


@dataclass(frozen=True)
class Instance:
    """A random numeric instance: ``A`` (n, d), ``x`` (d,), parameters by symbol.

    ``vectors`` holds the z-space vectors (shape ``(n,)``), ``x_vectors`` the
    x-space ones (shape ``(d,)``).
    """

    A: np.ndarray
    x: np.ndarray
    vectors: dict[sp.Symbol, np.ndarray]
    scalars: dict[sp.Symbol, float]
    kappa: float  # the logit scale's value
    x_vectors: dict[sp.Symbol, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.A.shape[0])

    @property
    def d(self) -> int:
        return int(self.A.shape[1])

    def values(self) -> dict[sp.Symbol, object]:
        """Every parameter's value by symbol."""
        return {**self.vectors, **self.x_vectors, **self.scalars}


def parameters(spec: Spec) -> tuple[object, ...]:
    """``spec.parameters`` (vectors then scalars, with kind, rule, space, python name)."""
    return tuple(spec.parameters)


def _draw_vector(rule: str, size: int, rng: np.random.Generator) -> np.ndarray:
    if rule == "probability":
        return rng.dirichlet(np.ones(size))
    if rule == "positive":
        return rng.uniform(0.5, 1.5, size)
    if rule == "nonnegative":
        return rng.uniform(0.0, 1.0, size)
    return rng.normal(size=size)


def _draw_scalar(rule: str, rng: np.random.Generator) -> float:
    if rule == "positive":
        return float(rng.uniform(0.5, 2.0))
    if rule == "nonnegative":
        return float(rng.uniform(0.2, 1.5))
    return float(rng.normal())


def draw_parameters(
    spec: Spec, n: int, d: int, rng: np.random.Generator
) -> tuple[dict[sp.Symbol, np.ndarray], dict[sp.Symbol, np.ndarray], dict[sp.Symbol, float]]:
    """z-space vectors ``(n,)``, x-space vectors ``(d,)`` and scalars, each by its rule."""
    zv: dict[sp.Symbol, np.ndarray] = {}
    xv: dict[sp.Symbol, np.ndarray] = {}
    scalars: dict[sp.Symbol, float] = {}
    for p in parameters(spec):
        if p.kind == "scalar":
            scalars[p.symbol] = _draw_scalar(p.rule, rng)
        elif p.space == "x":
            xv[p.symbol] = _draw_vector(p.rule, d, rng)
        else:
            zv[p.symbol] = _draw_vector(p.rule, n, rng)
    return zv, xv, scalars


def random_parameters(
    spec: Spec, n: int, rng: np.random.Generator
) -> tuple[dict[sp.Symbol, np.ndarray], dict[sp.Symbol, float]]:
    """Vector parameters (``(n,)`` arrays, x-space ones too) and scalars by their rules."""
    zv, xv, scalars = draw_parameters(spec, n, n, rng)
    return {**zv, **xv}, scalars


def logit_scale(spec: Spec, scalars: Mapping[sp.Symbol, float]) -> float:
    """The logit scale's value for the given scalars."""
    return float(spec.logit_scale.xreplace({k: sp.Float(v) for k, v in scalars.items()}))


def random_instance(
    spec: Spec, n: int, d: int, rng: np.random.Generator, *, logit_std: float = 1.0
) -> Instance:
    """``A`` with N(0, logit_std^2 / d) entries, ``x`` ~ N(0, I): logits of size ~logit_std."""
    A = rng.normal(size=(n, d)) * (logit_std / np.sqrt(d))
    xv = rng.normal(size=d)
    vectors, x_vectors, scalars = draw_parameters(spec, n, d, rng)
    return Instance(A, xv, vectors, scalars, logit_scale(spec, scalars), x_vectors)


def softmax_env(zv: np.ndarray, kappa: float, inst: Instance) -> dict[sp.Symbol, Value]:
    """Bindings for an entry expression at logits ``zv`` (n,): f, z, LOGF, parameters."""
    t = kappa * zv
    shifted = t - t.max()
    lse = np.log(np.sum(np.exp(shifted)))
    logf = shifted - lse
    return {f: np.exp(logf), z: zv, LOGF: logf, **inst.vectors, **inst.scalars}


def x_env(xv: np.ndarray, inst: Instance) -> dict[sp.Symbol, Value]:
    """Bindings for an x-space entry expression at ``x`` (d,)."""
    return {x: xv, **inst.x_vectors, **inst.scalars}


def term_value(phi: object, summed: bool, env: Mapping[sp.Symbol, Value], size: int) -> float:
    """A term's value: ``sum_j phi_j`` when ``summed``, else the scalar ``phi`` itself."""
    values = as_vector(evaluate(phi, env, size), size)
    return float(np.sum(values)) if summed else float(values[0])


def term_value_mp(
    phi: object, summed: bool, env: Mapping[sp.Symbol, Value], size: int
) -> mpmath.mpf:
    """:func:`term_value` in mpmath."""
    values = evaluate_mp(phi, env, size)
    return mpmath.fsum(values) if summed else values[0]


def as_vector(value: object, n: int) -> np.ndarray:
    """Broadcast an evaluated entry expression to a float64 ``(n,)`` array."""
    return np.broadcast_to(np.asarray(value, dtype=float), (n,)).astype(float)


def lowrank_pieces(
    B: object, env: Mapping[sp.Symbol, Value], n: int
) -> tuple[np.ndarray, list[tuple[float, np.ndarray, np.ndarray]]]:
    """Numeric pieces of a :class:`LowRank`: diagonal (n,) and (c, u (n,), v (n,)) triples."""
    diag = as_vector(evaluate(B.diagonal, env, n), n)
    terms = [
        (
            float(evaluate(c, env, n)),
            as_vector(evaluate(u, env, n), n),
            as_vector(evaluate(v, env, n), n),
        )
        for c, u, v in B.terms
    ]
    return diag, terms


def lowrank_matvec(
    pieces: tuple[np.ndarray, Sequence[tuple[float, np.ndarray, np.ndarray]]], y: np.ndarray
) -> np.ndarray:
    """``B @ y`` for B given by pieces; y is (n,) or (n, k). Never forms an n x n matrix."""
    diag, terms = pieces
    out = diag[:, None] * y if y.ndim == 2 else diag * y
    for c, u, v in terms:
        out = out + c * np.multiply.outer(u, v @ y)
    return out


def lowrank_diagonal(
    pieces: tuple[np.ndarray, Sequence[tuple[float, np.ndarray, np.ndarray]]],
) -> np.ndarray:
    """The diagonal of B (n,): ``d + sum_k c_k u_k * v_k``."""
    diag, terms = pieces
    out = diag.copy()
    for c, u, v in terms:
        out += c * u * v
    return out
