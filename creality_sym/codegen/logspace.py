"""Log-space form of the unnormalized ``exp(z)``: outer functions of log-sum-exp.

With ``f = softmax(z)`` (logit scale 1) every power of the unnormalized
exponential factors through the log-sum-exp ``L = log sum_j exp(z_j)``:

    exp(c z_j) = exp(c L) f_j^c,        L = z_k - log f_k,

where ``k`` is the dominant (largest) entry, so ``L`` is known to full
accuracy from the max-shifted softmax. Substituted into a program's outputs,
the scalar factors ``exp(c L)`` come out of every global sum, logs of them
become ``c L``, and the low-rank columns of the Hessian hand theirs to the
core (``U C U^T = (U s^-1) (s C s) (U s^-1)^T`` for a diagonal ``s``). When
no ``exp(. L)`` is left, the program is evaluated from ``f``, ``log f`` and
``L`` alone: ``log(total(exp(z)))`` is ``L``, ``exp(z) / total(exp(z))`` is
``f``, and nothing overflows at any logit. When a factor stays (the loss
itself grows like ``exp(z)``, as in ``1/2 ||exp(z) - b||^2``) the program is
kept as written and the generated code refuses logits beyond the float64
range of ``exp`` instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import sympy as sp

from creality_sym.codegen.lower import _rewrite_nodes
from creality_sym.spec import f, z
from creality_sym.vector import split_totals

#: ``exp(L)`` while the outputs are rewritten (a positive scalar).
_EXP_LSE = sp.Symbol("_exp_lse", positive=True)
#: the low-rank outputs: columns ``lr{i}``, their sums and the core entries.
_COLUMN = re.compile(r"^lr(\d+)$")
_CORE = re.compile(r"^core(\d+)_(\d+)$")


def has_exp_of_logits(e: sp.Expr) -> bool:
    """True when ``e`` holds ``exp`` of an expression in the logits ``z``."""
    return any(a.has(z) for a in sp.sympify(e).atoms(sp.exp))


def _factor_through_lse(node: sp.exp) -> sp.Expr:
    """``exp(c z + r) -> exp(L)^c f^c exp(r)`` for a positive ``c`` free of ``z``."""
    rest, linear = node.args[0].as_independent(z, as_Add=True)
    c = sp.cancel(linear / z)
    if c.has(z) or c.is_positive is not True:
        return node
    return _EXP_LSE**c * f**c * sp.exp(rest)


def _normalize(e: sp.Expr) -> sp.Expr:
    """Pull ``exp(L)`` out of global sums, powers and logs of one expression."""
    e = split_totals(e)
    e = _rewrite_nodes(
        e,
        lambda a: isinstance(a, sp.Pow) and a.base.has(_EXP_LSE),
        lambda a: sp.expand_power_base(a, force=True),
    )
    return _rewrite_nodes(
        e,
        lambda a: isinstance(a, sp.log) and a.has(_EXP_LSE),
        lambda a: sp.expand_log(a, force=True),
    )


def _exponent(e: sp.Expr) -> sp.Expr | None:
    """``a`` when ``e = exp(L)^a * rest`` with ``rest`` free of ``exp(L)``, else None."""
    a = sp.Integer(0)
    for factor in sp.Mul.make_args(e):
        base, power = factor.as_base_exp()
        if base == _EXP_LSE:
            a += power
        elif factor.has(_EXP_LSE):
            return None
    return a


def _move_column_scales(out: dict[str, sp.Expr]) -> None:
    """Divide each low-rank column (and its sum) by its ``exp(L)`` power, scale the core."""
    scales: dict[int, sp.Expr] = {}
    for name, value in out.items():
        match = _COLUMN.match(name)
        if match and value.has(_EXP_LSE):
            factored = sp.factor_terms(value)
            power = _exponent(factored)
            if power is not None:
                scales[int(match.group(1))] = _EXP_LSE**power
                out[name] = sp.powsimp(factored / _EXP_LSE**power)
    for i, s in scales.items():
        if f"lr{i}_total" in out:
            out[f"lr{i}_total"] = sp.powsimp(out[f"lr{i}_total"] / s)
    for name, value in out.items():
        match = _CORE.match(name)
        if match:
            i, j = int(match.group(1)), int(match.group(2))
            factor = scales.get(i, sp.Integer(1)) * scales.get(j, sp.Integer(1))
            if factor != 1:
                out[name] = sp.powsimp(value * factor)


def log_space(
    outputs: Mapping[str, sp.Expr], *, softmax: bool, lse: sp.Expr
) -> tuple[dict[str, sp.Expr], bool]:
    """``(outputs, exp_left)``: the outputs through the log-sum-exp where that removes
    every ``exp(z)``, else unchanged with ``exp_left`` True.

    ``softmax`` says the spec's softmax is ``softmax(z)`` (logit scale 1, the
    only case where ``exp(z) = exp(L) f``); ``lse`` is ``L`` in code symbols
    (``z_k - logf_k``). Outputs without ``exp(z)`` are returned as they are, so
    specs that never write it keep their programs.
    """
    outputs = dict(outputs)
    if not any(has_exp_of_logits(v) for v in outputs.values()):
        return outputs, False
    if not softmax:
        return outputs, True
    out: dict[str, sp.Expr] = {}
    for name, value in outputs.items():
        if has_exp_of_logits(value):
            value = _rewrite_nodes(
                value, lambda a: isinstance(a, sp.exp) and a.has(z), _factor_through_lse
            )
            value = _normalize(value)
        out[name] = value
    _move_column_scales(out)
    lse_value = sp.Symbol("_lse", real=True)
    final: dict[str, sp.Expr] = {}
    for name, value in out.items():
        if value.has(_EXP_LSE):
            value = sp.powsimp(sp.factor_terms(value))
            value = _normalize(value).xreplace({_EXP_LSE: sp.exp(lse_value)})
            if any(a.has(lse_value) for a in value.atoms(sp.exp)) or has_exp_of_logits(value):
                return outputs, True
            value = value.xreplace({lse_value: lse})
        elif has_exp_of_logits(value):
            return outputs, True
        final[name] = value
    return final, False
