"""The backends' shared intermediate representation: which programs a spec lowers to.

Every backend prints the same lowered programs (:mod:`creality_sym.codegen.lower`)
of the same named outputs, with the same code names for the parameters and the
same dominant-entry substitution; this module says what those are. A backend
imports this module, never another backend.
"""

from __future__ import annotations

import re

import sympy as sp

from creality_sym.codegen.logspace import has_exp_of_logits, log_space
from creality_sym.codegen.lower import LOGF
from creality_sym.derive import Derivation, TermDerivation
from creality_sym.spec import Spec, f, z
from creality_sym.vector import Total, VectorSymbol


def _low_rank_outputs(td: TermDerivation) -> dict[str, sp.Expr]:
    lr = td.low_rank
    out: dict[str, sp.Expr] = {}
    for i, (col, tot) in enumerate(zip(lr.columns, lr.totals, strict=True)):
        out[f"lr{i}"] = col
        out[f"lr{i}_total"] = tot
    for i in range(lr.rank):
        for j in range(i, lr.rank):
            out[f"core{i}_{j}"] = lr.core[i][j]
    return out


def z_outputs(td: TermDerivation, kind: str) -> dict[str, sp.Expr]:
    """The named outputs of a z-space piece program (``kind``: loss, gradient, hessian)."""
    if kind == "loss":
        return {"loss": td.loss_value}
    if kind == "gradient":
        return {"g": td.z_gradient, "g_total": td.z_gradient_total}
    pc = td.pieces
    return {
        "delta": pc.delta,
        "p": pc.p,
        "c": pc.c,
        "ones": pc.ones,
        "ones_total": pc.ones_total,
        **_low_rank_outputs(td),
    }


def x_outputs(td: TermDerivation, kind: str) -> dict[str, sp.Expr]:
    """The named outputs of an x-space piece program."""
    if kind == "loss":
        return {"loss": Total(td.loss_x)}
    if kind == "gradient":
        return {"gradient": td.x_gradient}
    return {"hessian_diag": td.x_hessian}


#: outputs that are n- (or d-) vectors; the rest are scalars
VECTOR_OUTPUTS = re.compile(r"^(g|delta|p|ones|lr\d+|gradient|hessian_diag)$")
KINDS = ("loss", "gradient", "hessian")


def renaming(spec: Spec) -> dict[sp.Symbol, sp.Symbol]:
    """Spec symbols whose code name differs (keywords, builtins) -> renamed symbols."""
    out: dict[sp.Symbol, sp.Symbol] = {}
    for p in spec.parameters:
        if p.python_name != p.name:
            sym = p.symbol
            if isinstance(sym, VectorSymbol):
                out[sym] = type(sym)(p.python_name, real=True)
            else:
                out[sym] = sp.Symbol(p.python_name, **sym.assumptions0)
    return out


def dominant_substitution(spec: Spec) -> dict[sp.Symbol, sp.Expr]:
    """Entry symbols at the dominant entry k, probabilities through their complements.

    Keys are the code symbols (after :func:`renaming`).
    """
    table: dict[sp.Symbol, sp.Expr] = {
        f: 1 - sp.Symbol("fc", real=True),
        LOGF: sp.Symbol("logf_k", real=True),
        z: sp.Symbol("z_k", real=True),
    }
    names = renaming(spec)
    for p in spec.parameters:
        if p.kind != "vector" or p.space != "z":
            continue
        sym = names.get(p.symbol, p.symbol)
        if p.rule == "probability":
            table[sym] = 1 - sp.Symbol(f"{sym}c_k", real=True)
        else:
            table[sym] = sp.Symbol(f"{sym}_k", real=True)
    return table


def program_outputs(spec: Spec, td: TermDerivation, space: str, kind: str) -> dict[str, sp.Expr]:
    """The outputs one program prints: code names, and z-space ``exp(z)`` in log space.

    See :mod:`creality_sym.codegen.logspace`: where every ``exp(z)`` factors
    through the log-sum-exp the program is written in ``f``, ``log f`` and
    ``z_k - logf_k``; otherwise as derived.
    """
    names = renaming(spec)
    raw = (z_outputs if space == "z" else x_outputs)(td, kind)
    outputs = {k: sp.sympify(v).xreplace(names) for k, v in raw.items()}
    if space == "x":
        return outputs
    at_k = dominant_substitution(spec)
    return log_space(outputs, softmax=spec.logit_scale == 1, lse=at_k[z] - at_k[LOGF])[0]


def uses_exp(derivation: Derivation) -> bool:
    """True when a printed z-space program keeps the unnormalized ``exp`` of a logit.

    Such programs overflow float64 for large logits, which the generated code
    refuses; specs whose ``exp(z)`` all factor through the log-sum-exp do not.
    """
    spec = derivation.spec
    return any(
        has_exp_of_logits(e)
        for td in derivation.all
        if td.has_z
        for kind in KINDS
        for e in program_outputs(spec, td, "z", kind).values()
    )
