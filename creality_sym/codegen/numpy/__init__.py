"""NumPy / array-API backend: one importable module per spec."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sympy as sp

from creality_sym.codegen.common import environment, header_lines
from creality_sym.codegen.lower import LOGF, Program, lower
from creality_sym.codegen.numpy.printer import print_expr
from creality_sym.derive import Derivation, TermDerivation
from creality_sym.spec import z
from creality_sym.vector import Total, is_entrywise

TEMPLATES = Path(__file__).parent / "templates"
MODULE_TEMPLATE = "module.py.jinja"
RUNTIME_TEMPLATE = "runtime.py.jinja"
PACKAGE_TEMPLATE = "package.py.jinja"

#: (name, expression getter, is a vector) for each generated z-space piece function
Z_PIECES = {
    "loss": (("phi_sum", lambda t: Total(t.loss_z), False),),
    "gradient": (
        ("g", lambda t: t.z_gradient, True),
        ("g_total", lambda t: t.z_gradient_total, False),
    ),
    "hessian": (
        ("delta", lambda t: t.pieces.delta, True),
        ("p", lambda t: t.pieces.p, True),
        ("c", lambda t: t.pieces.c, False),
        ("ones", lambda t: t.pieces.ones, True),
        ("ones_total", lambda t: t.pieces.ones_total, False),
    ),
}
X_PIECES = {
    "loss": (("psi_sum", lambda t: Total(t.loss_x), False),),
    "gradient": (("xg", lambda t: t.x_gradient, True),),
    "hessian": (("xh", lambda t: t.x_hessian, True),),
}


@dataclass(frozen=True)
class PrintedFunction:
    """A straight-line function ready for the template."""

    name: str
    arguments: tuple[str, ...]
    lines: tuple[str, ...]
    results: tuple[str, ...]
    operations: int
    doc: str


def _printed(
    name: str, program: Program, arguments: tuple[str, ...], vectors: set[str], like: str, doc: str
) -> PrintedFunction:
    lines: list[str] = [f"n = {like}.shape[0]"]
    entry_temps: set[sp.Symbol] = set()

    def entrywise(expr: sp.Expr) -> bool:
        return is_entrywise(expr) or bool(expr.free_symbols & entry_temps)

    for stage in program.stages:
        for sym, expr in stage.temporaries:
            if entrywise(expr):
                entry_temps.add(sym)
            lines.append(f"{sym} = {print_expr(expr)}")
        for out, expr in stage.outputs:
            text = print_expr(expr)
            if out in stage.reductions:
                text = f"xp.sum({text})" if entrywise(expr) else f"n * ({text})"
            elif out in vectors and (not entrywise(expr) or expr.is_Symbol):
                # a fresh array: callers may write into vector results
                text = f"xp.zeros_like({like}) + ({text})"
            lines.append(f"{out} = {text}")
    return PrintedFunction(
        name, arguments, tuple(lines), program.results, program.operation_count, doc
    )


def _z_arguments(derivation: Derivation) -> tuple[str, ...]:
    spec = derivation.spec
    return (
        "f",
        str(LOGF),
        str(z),
        *(str(v) for v in spec.vectors),
        *(str(s) for s in spec.scalars),
    )


def piece_functions(derivation: Derivation) -> list[PrintedFunction]:
    """Every z-space and x-space piece function, for the total and each term."""
    spec = derivation.spec
    z_args = _z_arguments(derivation)
    x_args = ("x", *(str(s) for s in spec.scalars))
    spaces = (("z", Z_PIECES, z_args, "f"), ("x", X_PIECES, x_args, "x"))
    out = []
    for td in derivation.all:
        for space, table, arguments, like in spaces:
            for kind, pieces in table.items():
                program = lower({name: getter(td) for name, getter, _ in pieces})
                vectors = {name for name, _, is_vec in pieces if is_vec}
                doc = f"{space}-space {kind} pieces of {_label(td)}."
                name = f"_{space}_{kind}_{td.name}"
                out.append(_printed(name, program, arguments, vectors, like, doc))
    return out


def _label(td: TermDerivation) -> str:
    return "the weighted total" if td.name == "total" else f"term {td.name!r} (unweighted)"


def _source(e: sp.Expr) -> str:
    return print_expr(e).replace("xp.", "")


def render(derivation: Derivation, *, spec_file: str) -> dict[str, str]:
    """Module source for one spec: ``{filename: text}``."""
    spec = derivation.spec
    env = environment(TEMPLATES)
    template = env.get_template(MODULE_TEMPLATE)
    vectors = [(str(s), rule) for s, rule in spec.vectors.items()]
    scalars = [(str(s), rule, spec.defaults.get(str(s))) for s, rule in spec.scalars.items()]
    text = template.render(
        header=header_lines(
            spec_file=spec_file,
            spec_hash=spec.digest,
            template=f"numpy/templates/{MODULE_TEMPLATE}",
        ),
        spec=spec,
        spec_hash=spec.digest,
        vectors=vectors,
        scalars=scalars,
        terms=[t.name for t in spec.terms],
        weights={t.name: _source(t.weight) for t in spec.terms},
        logit_scale=print_expr(spec.logit_scale),
        has_x=derivation.total.has_x,
        functions=piece_functions(derivation),
        loss_latex=" + ".join(t.latex or t.name for t in spec.terms),
    )
    return {f"{spec.name}.py": text}


def render_runtime(spec_names: list[str]) -> dict[str, str]:
    """The shared runtime (validation, namespaces) and the package ``__init__``."""
    env = environment(TEMPLATES)
    runtime = env.get_template(RUNTIME_TEMPLATE).render(
        header=header_lines(
            spec_file="(all specs)", spec_hash="-", template=f"numpy/templates/{RUNTIME_TEMPLATE}"
        ),
    )
    package = env.get_template(PACKAGE_TEMPLATE).render(
        header=header_lines(
            spec_file="(all specs)", spec_hash="-", template=f"numpy/templates/{PACKAGE_TEMPLATE}"
        ),
        specs=spec_names,
    )
    return {"_runtime.py": runtime, "__init__.py": package}
