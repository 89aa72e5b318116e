"""Lower derived vector expressions to straight-line code: reductions, then CSE.

The derivation's entry expressions may contain ``Total(e)`` (a sum over the
n entries). Lowering replaces every Total by a scalar temporary computed from
a reduction, innermost first, and runs ``sympy.cse(order="canonical")`` on
each stage, so every backend prints the same deterministic program.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy as sp

from creality_sym.spec import f
from creality_sym.vector import Total

#: symbol standing for ``log f`` in generated code (computed as t - logsumexp(t)).
LOGF = sp.Symbol("logf", real=True)


@dataclass(frozen=True)
class Stage:
    """One CSE block: temporaries then named outputs (entry or scalar expressions)."""

    temporaries: tuple[tuple[sp.Symbol, sp.Expr], ...]
    outputs: tuple[tuple[str, sp.Expr], ...]
    #: names among ``outputs`` that are reductions (sum over entries).
    reductions: frozenset[str] = frozenset()
    #: the outputs before CSE (in terms of earlier reductions only).
    full: tuple[tuple[str, sp.Expr], ...] = ()


@dataclass(frozen=True)
class Program:
    """Straight-line program: stages in order; every reduction feeds later stages."""

    stages: tuple[Stage, ...]
    results: tuple[str, ...]

    @property
    def operation_count(self) -> int:
        exprs = [e for st in self.stages for _, e in (*st.temporaries, *st.outputs)]
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


def substitute_log_f(e: sp.Expr) -> sp.Expr:
    """Replace ``log(f)`` by the stable symbol ``logf`` and ``v log v`` by
    :class:`XLogX` (so a zero entry of a parameter gives 0, not nan); reject
    other logs of f."""
    e = sp.expand_log(sp.sympify(e), force=True)
    e = e.xreplace({sp.log(f): LOGF})
    e = e.replace(_is_xlogx, _as_xlogx)
    for lg in e.atoms(sp.log):
        if lg.has(f):
            raise ValueError(f"cannot evaluate {lg} stably; write it with log(f)")
    return e


def lower(outputs: Mapping[str, sp.Expr], *, prefix: str = "r") -> Program:
    """Lower named expressions (entry or scalar, possibly with Totals) to stages.

    Reductions are named ``_{prefix}0, _{prefix}1, ...`` in a canonical order
    so the same input always yields the same program.
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
            sym = sp.Symbol(f"_{prefix}{counter}", real=True)
            counter += 1
            reduction_of[t] = sym
            named[str(sym)] = t.args[0]
        stages.append(
            _cse_stage(named, reductions=frozenset(named), prefix=f"_{prefix}t{len(stages)}")
        )
        exprs = {k: v.xreplace(reduction_of) for k, v in exprs.items()}
    stages.append(_cse_stage(exprs, reductions=frozenset(), prefix=f"_{prefix}t{len(stages)}"))
    return Program(stages=tuple(stages), results=tuple(outputs))


def _cse_stage(named: Mapping[str, sp.Expr], *, reductions: frozenset[str], prefix: str) -> Stage:
    names = list(named)
    symbols = sp.numbered_symbols(prefix, real=True)
    replacements, reduced = sp.cse([named[k] for k in names], symbols=symbols, order="canonical")
    return Stage(
        temporaries=tuple(replacements),
        outputs=tuple(zip(names, reduced, strict=True)),
        reductions=reductions,
        full=tuple((k, named[k]) for k in names),
    )
