"""NumPy / array-API backend: one importable module per spec.

Each module holds only its mathematics (one function per term and piece:
loss, gradient and Hessian pieces at the logits, printed straight from the
lowered programs) and a thin, typed public API over the shared runtime
(``_runtime.py``, a copy of :mod:`creality_sym.codegen.static._runtime`).
Every rendered file is formatted with ruff.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import sympy as sp

from creality_sym.codegen.common import (
    GENERATOR_VERSION,
    environment,
    format_python,
    header_lines,
    python_docstring,
    static_file,
)
from creality_sym.codegen.ir import (
    KINDS,
    VECTOR_OUTPUTS,
    dominant_substitution,
    program_outputs,
    renaming,
    uses_exp,
)
from creality_sym.codegen.lower import LOGF, Program, Stage, is_entrywise_in, lower
from creality_sym.codegen.numpy.printer import print_expr
from creality_sym.derive import Derivation, TermDerivation
from creality_sym.spec import Spec, f

TEMPLATES = Path(__file__).parent / "templates"
MODULE_TEMPLATE = "module.py.jinja"
PACKAGE_TEMPLATE = "package.py.jinja"


@dataclass(frozen=True)
class PrintedFunction:
    """A straight-line piece function ready for the template."""

    name: str
    arguments: tuple[str, ...]
    lines: tuple[str, ...]
    results: tuple[tuple[str, str], ...]
    operations: int
    doc: str


def _is_zero_program(outputs: dict[str, sp.Expr]) -> bool:
    return all(sp.sympify(e) == 0 for e in outputs.values())


def _print_program(
    program: Program,
    *,
    vectors: set[str],
    like: str,
    dominant: dict[sp.Symbol, sp.Expr] | None,
    space: str,
) -> tuple[list[str], dict[str, str]]:
    """Body lines and ``{output: expression text}`` of one program."""
    lines: list[str] = []
    results: dict[str, str] = {}
    printed: dict[str, str] = {}  # output text (normal, variant) -> name, to reuse equal outputs
    entry_temps: set[sp.Symbol] = set()
    for index, stage in enumerate(program.stages):
        entry_temps |= stage.entry_temporaries
        ops = _stage_ops(stage)
        label = "reductions" if stage.reductions else "outputs"
        lines.append(f"# stage {index + 1} of {len(program.stages)}: {label} (ops: {ops})")
        for sym, expr in stage.temporaries:
            lines.append(f"{sym} = {print_expr(expr)}")
        for out, expr in stage.outputs:
            if sp.sympify(expr) == 0 and out not in stage.reductions:
                continue  # zero: the runtime's default
            entrywise = is_entrywise_in(expr, entry_temps)
            text = print_expr(expr)
            variant = stage.variants.get(out)
            if variant is not None and entrywise:
                text = f"at_dominant(xp, is_k, {print_expr(variant)}, {text})"
            if out in stage.reductions:
                text = f"xp.sum({text})" if entrywise else f"n * ({text})"
                lines.append(f"{out} = {text}")
                continue
            if out in vectors and not entrywise:
                text = f"full(xp, {'sm.f' if space == 'z' else like}, {text})"
            if text in printed:
                results[out] = printed[text]
                continue
            if out in vectors and re.fullmatch(r"\w+", text):
                # a fresh array, never an input
                text = f"full(xp, {'sm.f' if space == 'z' else like}, {text})"
            printed[text] = out
            lines.append(f"{out} = {text}")
            results[out] = out
    body = "\n".join(lines)
    prelude = []
    if re.search(r"\bn\b", body):
        prelude.append(f"n = {'sm.f' if space == 'z' else like}.shape[0]")
    if space == "z":
        for name, source in (
            ("f", "sm.f"),
            ("logf", "sm.logf"),
            ("fc", "sm.fc"),
            ("is_k", "sm.is_k"),
        ):
            if re.search(rf"(?<![\w.]){name}\b", body):  # not the attribute sm.{name}
                prelude.append(f"{name} = {source}")
        for local, source in _dominant_locals(dominant or {}):
            if re.search(rf"(?<![\w.]){local}\b", body):
                prelude.append(f"{local} = {source}")
    return prelude + lines, results


def _stage_ops(stage: Stage) -> int:
    exprs = [e for _, e in (*stage.temporaries, *stage.outputs)] + list(stage.variants.values())
    return int(sum(sp.count_ops(e) for e in exprs))


def _dominant_locals(table: dict[sp.Symbol, sp.Expr]) -> list[tuple[str, str]]:
    out = []
    for sym, value in table.items():
        if sym == f:
            continue  # fc, the complement 1 - f_k, comes with the softmax
        local = next(iter(value.free_symbols))
        array = "sm.logf" if sym == LOGF else str(sym)
        index = f"{array}[sm.k]"
        out.append((str(local), f"1.0 - {index}" if value != local else index))
    return out


def _label(td: TermDerivation) -> str:
    return "the weighted total" if td.name == "total" else f"term {td.name!r} (unweighted)"


def _printed(
    name: str,
    outputs: dict[str, sp.Expr],
    *,
    arguments: tuple[str, ...],
    like: str,
    dominant: dict[sp.Symbol, sp.Expr] | None,
    space: str,
    doc: str,
) -> PrintedFunction:
    """One piece function: ``outputs`` lowered to one program and printed."""
    program = lower(outputs, dominant=dominant)
    vectors = {k for k in outputs if VECTOR_OUTPUTS.match(k)}
    lines, results = _print_program(
        program, vectors=vectors, like=like, dominant=dominant, space=space
    )
    return PrintedFunction(
        name=name,
        arguments=arguments,
        lines=tuple(lines),
        results=tuple(results.items()),
        operations=program.operation_count,
        doc=doc,
    )


def piece_functions(derivation: Derivation) -> tuple[list[PrintedFunction], dict, dict, dict]:
    """Every non-zero piece function, the z/x tables ``{term: (loss, grad, hess)}`` and the
    combined z-space functions ``{term: name}``.

    A term with more than one non-zero z-space program also gets
    ``_z_all_<term>``: the three programs' outputs lowered together, so the
    reductions and temporaries they share are computed once (the runtime's
    ``z_pieces`` at ``order=2``).
    """
    spec = derivation.spec
    params = [p for p in spec.parameters]
    z_args = ("sm", "z", *(p.python_name for p in params if p.kind == "vector" and p.space == "z"))
    x_args = ("x", *(p.python_name for p in params if p.kind == "vector" and p.space == "x"))
    scalars = tuple(p.python_name for p in params if p.kind == "scalar")
    dominant = dominant_substitution(spec)
    functions: list[PrintedFunction] = []
    tables: dict[str, dict[str, list[str | None]]] = {"z": {}, "x": {}}
    combined: dict[str, str] = {}
    for td in derivation.all:
        for space, arguments, like in (("z", z_args + scalars, "f"), ("x", x_args + scalars, "x")):
            row: list[str | None] = []
            together: dict[str, sp.Expr] = {}
            for kind in KINDS:
                outputs = program_outputs(spec, td, space, kind)
                present = td.has_z if space == "z" else td.has_x
                if not present or _is_zero_program(outputs):
                    row.append(None)
                    continue
                name = f"_{space}_{kind}_{td.name}"
                functions.append(
                    _printed(
                        name,
                        outputs,
                        arguments=arguments,
                        like=like,
                        dominant=dominant if space == "z" else None,
                        space=space,
                        doc=f"{space}-space {kind} pieces of {_label(td)}.",
                    )
                )
                row.append(name)
                together.update(outputs)
            if any(row):
                tables[space][td.name] = row
            if space == "z" and sum(fn is not None for fn in row) > 1:
                name = f"_z_all_{td.name}"
                functions.append(
                    _printed(
                        name,
                        together,
                        arguments=arguments,
                        like=like,
                        dominant=dominant,
                        space=space,
                        doc=f"z-space pieces of every order of {_label(td)}, in one program.",
                    )
                )
                combined[td.name] = name
    return functions, tables["z"], tables["x"], combined


def loss_text(spec: Spec) -> str:
    """The loss as plain text for docstrings: weights and each term's LaTeX or name."""
    parts = []
    for t in spec.terms:
        body = t.latex or t.name
        weight = "" if t.weight == 1 else f"{t.weight} * "
        parts.append(f"{weight}{body}")
    return " + ".join(parts)


def render(derivation: Derivation, *, spec_file: str) -> dict[str, str]:
    """Module source for one spec: ``{filename: text}``."""
    spec = derivation.spec
    env = environment(TEMPLATES)
    template = env.get_template(MODULE_TEMPLATE)
    names = renaming(spec)
    functions, z_table, x_table, z_all = piece_functions(derivation)
    scale = spec.logit_scale.xreplace(names)
    parameters = [
        {
            "name": p.python_name,
            "kind": p.kind,
            "rule": p.rule,
            "shape": p.shape,
            "default": p.default,
            "type": "float" if p.kind == "scalar" else "Array",
        }
        for p in spec.parameters
    ]
    scalars = [p["name"] for p in parameters if p["kind"] == "scalar"]
    header = header_lines(
        spec_file=spec_file, spec_hash=spec.digest, template=f"numpy/templates/{MODULE_TEMPLATE}"
    )
    shapes = ", ".join(
        f"{p['name']} ({p['shape']},)" if p["kind"] == "vector" else f"{p['name']} scalar"
        for p in parameters
    )
    doc = "\n".join(
        [
            spec.description or spec.name,
            "",
            *header,
            "",
            f"Loss: L(x) = {loss_text(spec)}, with f = softmax("
            + ("" if scale == 1 else f"({print_expr(scale)}) * ")
            + "A x).",
            f"Shapes: x (d,), A (n, d){', ' + shapes if shapes else ''}.",
            "Arrays may come from numpy or, through array_api_compat, CuPy, PyTorch or JAX.",
        ]
    )
    body = "\n".join(line for fn in functions for line in fn.lines)
    used = [name for name in ("at_dominant", "full") if re.search(rf"\b{name}\(", body)]
    imports = ["Model", "Parameter", "XPieces", "ZHessian", "ZPieces", *used, "prepare_z"]
    text = template.render(
        imports=imports,
        docstring=python_docstring(doc),
        spec=spec,
        parameters=parameters,
        scalars=scalars,
        terms=[t.name for t in spec.terms],
        weights={t.name: str(t.weight.xreplace(names)) for t in spec.terms},
        tradeoff=spec.tradeoff,
        logit_scale=None if scale == 1 else print_expr(scale),
        logit_scale_text=str(scale),
        has_x=derivation.total.has_x,
        uses_exp=uses_exp(derivation),
        low_rank=derivation.total.low_rank.rank,
        functions=functions,
        z_table=z_table,
        x_table=x_table,
        z_all=z_all,
    )
    return {f"{spec.name}.py": format_python(text)}


def render_runtime(spec_names: list[str]) -> dict[str, str]:
    """The shared runtime (a copy of the static module) and the package ``__init__``."""
    env = environment(TEMPLATES)
    package = env.get_template(PACKAGE_TEMPLATE).render(
        header=header_lines(
            spec_file="(all specs)", spec_hash="-", template=f"numpy/templates/{PACKAGE_TEMPLATE}"
        ),
        specs=spec_names,
    )
    return {
        "_runtime.py": static_file("_runtime.py"),
        "__init__.py": format_python(package),
        "pyproject.toml": PACKAGE_PYPROJECT,
    }


#: lets ``pip install ./generated`` install the generated code alone (no SymPy)
PACKAGE_PYPROJECT = f"""# Generated by creality -- do not edit by hand (`creality derive`).
# `pip install ./generated` installs the generated solver code as creality_generated,
# with numpy, array-api-compat and threadpoolctl only (no SymPy, no generator).
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "creality-generated"
version = "{GENERATOR_VERSION}"
description = "Generated loss, gradient, Hessian and Hessian-vector code of creality specs."
requires-python = ">=3.10"
dependencies = ["numpy>=2.0", "array-api-compat>=1.6", "threadpoolctl>=3.1"]

[tool.setuptools]
packages = ["creality_generated"]
package-dir = {{ creality_generated = "." }}

[tool.setuptools.package-data]
creality_generated = ["*.md", "*.json", "cuda/*.cu", "cuda/*.json"]
"""


__all__ = ["render", "render_runtime", "piece_functions"]
