"""Interval backend: the spec's derivation printed as Python functions on balls.

The same lowered programs as the numpy backend (:func:`creality_sym.codegen.lower.lower`
of :func:`~creality_sym.codegen.ir.z_outputs` / :func:`~creality_sym.codegen.ir.x_outputs`,
without the dominant-entry variants: balls need no cancellation-free rewrite),
printed by :class:`~creality_sym.codegen.interval.printer.IntervalPrinter` into
functions that take the ball namespace ``ia``
(:mod:`creality_sym.codegen.interval.runtime`) as their first argument. The
module is rendered in memory (:func:`render`) and executed (:func:`load`);
nothing is written to ``generated/``.

    >>> from creality_sym.spec import load_spec
    >>> from creality_sym.derive import derive
    >>> model = load(derive(load_spec("derivations/creativity_reality.py")))
    >>> sorted(model.z_functions)
    ['creativity', 'reality', 'regularizer', 'total']
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from creality_sym.codegen.interval import runtime
from creality_sym.codegen.interval.printer import print_expr
from creality_sym.codegen.ir import KINDS, VECTOR_OUTPUTS, renaming, x_outputs, z_outputs
from creality_sym.codegen.lower import Program, is_entrywise_in, lower
from creality_sym.derive import Derivation, TermDerivation

__all__ = ["render", "load", "IntervalModel", "ParameterInfo", "wanted_output"]

_LOW_RANK = re.compile(r"^(lr\d+|core\d+_\d+)$")
#: outputs the interval runtime assembles (the rest serve the float runtime only)
WANTED = {"loss": {"loss"}, "gradient": {"g", "gradient"}, "hessian": {"delta", "p", "c"}}
WANTED["hessian"] |= {"hessian_diag"}


def wanted_output(kind: str, name: str) -> bool:
    """Whether the interval runtime uses output ``name`` of a ``kind`` program."""
    return name in WANTED[kind] or (kind == "hessian" and bool(_LOW_RANK.match(name)))


@dataclass(frozen=True)
class ParameterInfo:
    """One spec parameter: code name, kind (vector/scalar), rule, space (z/x), default."""

    name: str
    kind: str
    rule: str
    space: str
    default: float | None = None


def _function_lines(
    name: str,
    arguments: Sequence[str],
    program: Program,
    *,
    vectors: set[str],
    like: str,
    space: str,
    doc: str,
) -> list[str]:
    body: list[str] = []
    results: list[str] = []
    entry_temps: set[sp.Symbol] = set()
    for index, stage in enumerate(program.stages):
        entry_temps |= stage.entry_temporaries
        label = "reductions" if stage.reductions else "outputs"
        body.append(f"# stage {index + 1} of {len(program.stages)}: {label}")
        for sym, expr in stage.temporaries:
            body.append(f"{sym} = {print_expr(expr)}")
        for out, expr in stage.outputs:
            if sp.sympify(expr) == 0 and out not in stage.reductions:
                continue  # zero: the runtime's default
            entrywise = is_entrywise_in(expr, entry_temps)
            text = print_expr(expr)
            if out in stage.reductions:
                body.append(f"{out} = " + (f"ia.sum({text})" if entrywise else f"n * ({text})"))
                continue
            if out in vectors and not entrywise:
                text = f"ia.full({like}, {text})"
            body.append(f"{out} = {text}")
            results.append(out)
    text = "\n".join(body)
    prelude = []
    if re.search(r"\bn\b", text):
        prelude.append(f"n = {like}.shape[0]")
    if space == "z":
        for local in ("f", "logf"):
            if re.search(rf"\b{local}\b", text):
                prelude.append(f"{local} = sm.{local}")
    returned = ", ".join(f'"{r}": {r}' for r in results)
    lines = [f"def {name}({', '.join(('ia', *arguments))}):", f'    """{doc}"""']
    lines += ["    " + line for line in (*prelude, *body)]
    lines.append(f"    return {{{returned}}}")
    return lines


def _uses(lines: Sequence[str], names: Sequence[str]) -> tuple[str, ...]:
    text = "\n".join(line for line in lines[2:])  # the body, not the signature or docstring
    return tuple(n for n in names if re.search(rf"\b{re.escape(n)}\b", text))


def render(derivation: Derivation) -> str:
    """Python source of the interval module of one derivation (not formatted)."""
    spec = derivation.spec
    names = renaming(spec)
    params = spec.parameters
    z_vectors = [p.python_name for p in params if p.kind == "vector" and p.space == "z"]
    x_vectors = [p.python_name for p in params if p.kind == "vector" and p.space == "x"]
    scalars = [p.python_name for p in params if p.kind == "scalar"]
    lines = [
        f'"""Interval (ball) functions of spec {spec.name!r}, rendered in memory by creality."""',
        "",
        f"SPEC_NAME = {spec.name!r}",
        f"SPEC_SHA256 = {spec.digest!r}",
        "PARAMETERS = (",
        *(
            f"    ({p.python_name!r}, {p.kind!r}, {p.rule!r}, {p.space or ''!r}, {p.default!r}),"
            for p in params
        ),
        ")",
        f"TERMS = {tuple(t.name for t in spec.terms)!r}",
        "",
    ]
    tables: dict[str, dict[str, list[str]]] = {"z": {}, "x": {}}
    uses: dict[str, tuple[str, ...]] = {}
    all_names = ["z", "x", *z_vectors, *x_vectors, *scalars]
    for td in derivation.all:
        for space, outputs_of, arguments, like in (
            ("z", z_outputs, ("sm", "z", *z_vectors, *scalars), "z"),
            ("x", x_outputs, ("x", *x_vectors, *scalars), "x"),
        ):
            row = []
            for kind in KINDS:
                name = f"_{space}_{kind}_{td.name}"
                raw = outputs_of(td, kind)
                outputs = {
                    k: sp.sympify(v).xreplace(names)
                    for k, v in raw.items()
                    if wanted_output(kind, k)
                }
                present = td.has_z if space == "z" else td.has_x
                if not present or all(e == 0 for e in outputs.values()):
                    row.append("None")
                    continue
                vectors = {k for k in outputs if VECTOR_OUTPUTS.match(k)}
                fn = _function_lines(
                    name,
                    arguments,
                    lower(outputs),
                    vectors=vectors,
                    like=like,
                    space=space,
                    doc=f"{space}-space {kind} pieces of {_label(td)}, on balls.",
                )
                lines += [*fn, "", ""]
                uses[name] = _uses(fn, all_names)
                row.append(name)
            tables[space][td.name] = row
    scale = spec.logit_scale.xreplace(names)
    lines += [
        f"def _logit_scale({', '.join(('ia', *scalars))}):",
        '    """The softmax is taken of this scalar times A x."""',
        f"    return {print_expr(scale)}",
        "",
        "",
    ]
    for space in ("z", "x"):
        lines.append(f"{space.upper()}_FUNCTIONS = {{")
        for term, row in tables[space].items():
            lines.append(f"    {term!r}: ({', '.join(row)}),")
        lines.append("}")
    lines.append(f"USES = {uses!r}")
    lines.append(
        f"LOGIT_SCALE_USES = {tuple(str(s) for s in sorted(scale.free_symbols, key=str))!r}"
    )
    return "\n".join(lines) + "\n"


def _label(td: TermDerivation) -> str:
    return "the weighted total" if td.name == "total" else f"term {td.name!r} (unweighted)"


@dataclass(frozen=True)
class IntervalModel:
    """The executed interval module of one spec.

    ``z_functions[term]`` / ``x_functions[term]`` are ``(loss, gradient, hessian)``
    piece functions (``None`` for a zero program), ``term`` an unweighted term
    or ``"total"``; ``uses[name]`` the arguments a function reads.
    """

    spec_name: str
    spec_sha256: str
    parameters: tuple[ParameterInfo, ...]
    terms: tuple[str, ...]
    z_functions: Mapping[str, tuple[Any, Any, Any]]
    x_functions: Mapping[str, tuple[Any, Any, Any]]
    uses: Mapping[str, tuple[str, ...]]
    logit_scale_uses: tuple[str, ...]
    source: str = field(repr=False, default="")
    _scale: Any = field(repr=False, default=None)

    def scalars(self) -> list[ParameterInfo]:
        return [p for p in self.parameters if p.kind == "scalar"]

    def logit_scale(self, values: Mapping[str, Any]) -> Any:
        """The ball ``scale`` with ``f = softmax(scale * z)``."""
        return runtime.asballs(self._scale(runtime, *(values[p.name] for p in self.scalars())))

    def softmax(self, z: np.ndarray, values: Mapping[str, Any]) -> runtime.Softmax:
        """``f`` and ``log f`` of the logits ``z`` (object array of balls)."""
        scale = self.logit_scale(values)
        return runtime.softmax(z * scale if self.logit_scale_uses else z)

    def function(self, space: str, kind: str, term: str) -> Any:
        table = self.z_functions if space == "z" else self.x_functions
        if term not in table:
            raise ValueError(f"unknown term {term!r}; have {sorted(table)}")
        return table[term][KINDS.index(kind)]

    def z_pieces(
        self, kind: str, term: str, sm: runtime.Softmax, z: np.ndarray, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The named z-space outputs of one program (``{}`` for a zero program)."""
        fn = self.function("z", kind, term)
        if fn is None:
            return {}
        args = [values[p.name] for p in self.parameters if p.kind == "vector" and p.space == "z"]
        return fn(runtime, sm, z, *args, *(values[p.name] for p in self.scalars()))

    def x_pieces(
        self, kind: str, term: str, x: np.ndarray, values: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The named x-space outputs of one program (``{}`` for a zero program)."""
        fn = self.function("x", kind, term)
        if fn is None:
            return {}
        args = [values[p.name] for p in self.parameters if p.kind == "vector" and p.space == "x"]
        return fn(runtime, x, *args, *(values[p.name] for p in self.scalars()))


def load(derivation: Derivation) -> IntervalModel:
    """Render the interval module of ``derivation`` and execute it in memory."""
    source = render(derivation)
    namespace: dict[str, Any] = {"__name__": f"_creality_interval_{derivation.spec.name}"}
    exec(compile(source, f"<interval module {derivation.spec.name}>", "exec"), namespace)
    return IntervalModel(
        spec_name=namespace["SPEC_NAME"],
        spec_sha256=namespace["SPEC_SHA256"],
        parameters=tuple(ParameterInfo(*row) for row in namespace["PARAMETERS"]),
        terms=tuple(namespace["TERMS"]),
        z_functions=namespace["Z_FUNCTIONS"],
        x_functions=namespace["X_FUNCTIONS"],
        uses=namespace["USES"],
        logit_scale_uses=tuple(namespace["LOGIT_SCALE_USES"]),
        source=source,
        _scale=namespace["_logit_scale"],
    )
