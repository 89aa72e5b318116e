"""Lower derived vector expressions to straight-line code: reductions, then CSE.

The derivation's entry expressions may contain ``Total(e)`` (a sum over the
n entries). Lowering replaces every Total by a scalar named ``sum0, sum1,
...`` computed from a reduction, innermost first, and runs one
``sympy.cse(order="canonical")`` per stage over the stage's outputs *and*
their dominant-entry variants (entry k recomputed from the complements
``1 - f_k``, ``1 - b_k``, so nothing cancels there), so every backend prints
the same deterministic program. Every expression is then rewritten with
``sympy.codegen.rewriting`` (small integer powers as products, ``log1p``,
``expm1``), the same for every backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sympy as sp
from sympy.codegen.rewriting import (
    create_expand_pow_optimization,
    expm1_opt,
    log1p_opt,
    optimize,
)

from creality_sym.errors import SpecError
from creality_sym.spec import f
from creality_sym.vector import Total, is_entry_symbol

#: symbol standing for ``log f`` in generated code (computed as t - logsumexp(t)).
LOGF = sp.Symbol("logf", real=True)
#: rewrites applied to every printed expression (one IR for every backend)
REWRITES = (create_expand_pow_optimization(3, base_req=lambda base: True), log1p_opt, expm1_opt)


@dataclass(frozen=True)
class Stage:
    """One CSE block: temporaries then named outputs (entry or scalar expressions).

    ``variants`` maps an output to its value at the dominant entry k (only for
    entrywise outputs that depend on the softmax); ``entry_temporaries`` names
    the temporaries that are n-vectors.
    """

    temporaries: tuple[tuple[sp.Symbol, sp.Expr], ...]
    outputs: tuple[tuple[str, sp.Expr], ...]
    #: names among ``outputs`` that are reductions (sum over entries).
    reductions: frozenset[str] = frozenset()
    variants: Mapping[str, sp.Expr] = field(default_factory=dict)
    entry_temporaries: frozenset[sp.Symbol] = frozenset()
    #: the outputs before CSE (in terms of earlier reductions only).
    full: tuple[tuple[str, sp.Expr], ...] = ()


@dataclass(frozen=True)
class Program:
    """Straight-line program: stages in order; every reduction feeds later stages."""

    stages: tuple[Stage, ...]
    results: tuple[str, ...]

    @property
    def operation_count(self) -> int:
        exprs = [
            e
            for st in self.stages
            for e in (
                *(e for _, e in st.temporaries),
                *(e for _, e in st.outputs),
                *st.variants.values(),
            )
        ]
        return int(sum(sp.count_ops(e) for e in exprs))


class XLogX(sp.Function):
    """``v log v`` with the convention ``0 log 0 = 0`` (printed without log(0))."""

    nargs = 1


def _is_xlogx(e: sp.Expr) -> bool:
    return e.is_Mul and any(
        isinstance(a, sp.log) and a.args[0].is_Symbol and a.args[0] in e.args for a in e.args
    )


def _as_xlogx(e: sp.Mul) -> sp.Expr:
    for a in e.args:
        if isinstance(a, sp.log) and a.args[0].is_Symbol and a.args[0] in e.args:
            v = a.args[0]
            rest = [b for b in e.args if b not in (a, v)]
            return sp.Mul(*rest, XLogX(v))
    return e


def _has_entry_f(e: sp.Basic) -> bool:
    return e.replace(Total, lambda *a: sp.Integer(1)).has(f)


def substitute_log_f(e: sp.Expr) -> sp.Expr:
    """Replace ``log(f)`` by the stable symbol ``logf`` and ``v log v`` by
    :class:`XLogX` (so a zero entry of a parameter gives 0, not nan); reject
    other logs of an entry of f (a log of a global sum is fine)."""
    e = sp.sympify(e)
    e = e.replace(
        lambda a: isinstance(a, sp.log) and _has_entry_f(a),
        lambda a: sp.expand_log(a, force=True),
    )
    e = e.xreplace({sp.log(f): LOGF})
    e = e.replace(_is_xlogx, _as_xlogx)
    for lg in e.atoms(sp.log):
        if _has_entry_f(lg):
            raise SpecError(f"cannot evaluate {lg} stably; write it with log(f)")
    return e


def is_entrywise_in(expr: sp.Expr, entry_temps: frozenset[sp.Symbol] | set[sp.Symbol]) -> bool:
    """True when ``expr`` is an n-vector: it uses an entry symbol or an entry temporary."""
    return any(is_entry_symbol(s) or s in entry_temps for s in expr.free_symbols)


def rewrite(e: sp.Expr) -> sp.Expr:
    """The printing rewrites (:data:`REWRITES`) of one expression."""
    return optimize(e, REWRITES) if isinstance(e, sp.Basic) and not e.is_Atom else e


def lower(
    outputs: Mapping[str, sp.Expr],
    *,
    dominant: Mapping[sp.Symbol, sp.Expr] | None = None,
    prefix: str = "",
) -> Program:
    """Lower named expressions (entry or scalar, possibly with Totals) to stages.

    Reductions are named ``{prefix}sum0, {prefix}sum1, ...`` in a canonical
    order so the same input always yields the same program; temporaries of
    stage ``s`` are ``{prefix}t{s}_0, ...``. With ``dominant`` (entry symbols
    -> their values at entry k), every entrywise output that depends on the
    softmax gets a variant at k, computed in the same CSE.
    """
    exprs = {k: substitute_log_f(v) for k, v in outputs.items()}
    stages: list[Stage] = []
    reduction_of: dict[sp.Expr, sp.Symbol] = {}
    counter = 0
    while True:
        innermost = sorted(
            {
                t
                for e in exprs.values()
                for t in sp.preorder_traversal(e)
                if isinstance(t, Total) and not t.args[0].has(Total)
            },
            key=sp.default_sort_key,
        )
        if not innermost:
            break
        named = {}
        for t in innermost:
            sym = sp.Symbol(f"{prefix}sum{counter}", real=True)
            counter += 1
            reduction_of[t] = sym
            named[str(sym)] = t.args[0]
        stages.append(
            _cse_stage(
                named, reductions=frozenset(named), prefix=f"{prefix}t{len(stages)}_", at_k=dominant
            )
        )
        exprs = {k: v.xreplace(reduction_of) for k, v in exprs.items()}
    stages.append(
        _cse_stage(exprs, reductions=frozenset(), prefix=f"{prefix}t{len(stages)}_", at_k=dominant)
    )
    return Program(stages=tuple(stages), results=tuple(outputs))


def _needs_variant(expr: sp.Expr, at_k: Mapping[sp.Symbol, sp.Expr] | None) -> bool:
    return bool(at_k) and is_entrywise_in(expr, set()) and (expr.has(f) or expr.has(LOGF))


def _cse_stage(
    named: Mapping[str, sp.Expr],
    *,
    reductions: frozenset[str],
    prefix: str,
    at_k: Mapping[sp.Symbol, sp.Expr] | None,
) -> Stage:
    names = list(named)
    variant_names = [k for k in names if _needs_variant(named[k], at_k)]
    exprs = [named[k] for k in names]
    exprs += [named[k].xreplace(dict(at_k or {})) for k in variant_names]
    symbols = sp.numbered_symbols(prefix, real=True)
    replacements, reduced = sp.cse(exprs, symbols=symbols, order="canonical")
    entry_temps: set[sp.Symbol] = set()
    temporaries = []
    for sym, expr in replacements:
        if is_entrywise_in(expr, entry_temps):
            entry_temps.add(sym)
        temporaries.append((sym, rewrite(expr)))
    outputs = tuple((k, rewrite(e)) for k, e in zip(names, reduced[: len(names)], strict=True))
    variants = {k: rewrite(e) for k, e in zip(variant_names, reduced[len(names) :], strict=True)}
    return Stage(
        temporaries=tuple(temporaries),
        outputs=outputs,
        reductions=reductions,
        variants=variants,
        entry_temporaries=frozenset(entry_temps),
        full=tuple((k, named[k]) for k in names),
    )
