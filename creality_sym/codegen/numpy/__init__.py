"""NumPy / array-API backend: one importable module per spec."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sympy as sp

from creality_sym.codegen.common import environment, header_lines
from creality_sym.codegen.lower import LOGF, Program, lower
from creality_sym.codegen.numpy.printer import print_expr
from creality_sym.derive import Derivation, TermDerivation
from creality_sym.spec import f, z
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
    name: str,
    program: Program,
    arguments: tuple[str, ...],
    vectors: set[str],
    like: str,
    doc: str,
    dominant: dict[sp.Symbol, sp.Expr] | None = None,
) -> PrintedFunction:
    """Print a program; with ``dominant``, entry k of every f-dependent vector is
    recomputed from the complements (1 - f_k, 1 - b_k) so that nothing cancels there."""
    lines: list[str] = [f"n = {like}.shape[0]"]
    if dominant:
        lines += [f"{sym} = {value}" for sym, value in _dominant_locals(dominant)]
    entry_temps: set[sp.Symbol] = set()

    def entrywise(expr: sp.Expr) -> bool:
        return is_entrywise(expr) or bool(expr.free_symbols & entry_temps)

    def at_dominant(expr: sp.Expr) -> str | None:
        if not dominant or not (expr.has(f) or expr.has(LOGF)):
            return None
        return print_expr(expr.xreplace(dominant))

    for stage in program.stages:
        full = dict(stage.full)
        for sym, expr in stage.temporaries:
            if entrywise(expr):
                entry_temps.add(sym)
            lines.append(f"{sym} = {print_expr(expr)}")
        for out, expr in stage.outputs:
            text = print_expr(expr)
            fixed = at_dominant(full[out]) if entrywise(expr) else None
            if out in stage.reductions:
                if fixed is not None:
                    lines.append(f"{out} = xp.zeros_like({like}) + ({text})")
                    lines.append(f"{out}[k] = {fixed}")
                    text = f"xp.sum({out})"
                else:
                    text = f"xp.sum({text})" if entrywise(expr) else f"n * ({text})"
            elif out in vectors and (not entrywise(expr) or expr.is_Symbol):
                # a fresh array: callers may write into vector results
                text = f"xp.zeros_like({like}) + ({text})"
            lines.append(f"{out} = {text}")
            if fixed is not None and out in vectors:
                lines.append(f"{out}[k] = {fixed}")
    return PrintedFunction(
        name, arguments, tuple(lines), program.results, program.operation_count, doc
    )


def dominant_substitution(derivation: Derivation) -> dict[sp.Symbol, sp.Expr]:
    """Entry symbols at the dominant entry k, probabilities through their complements."""
    spec = derivation.spec
    table: dict[sp.Symbol, sp.Expr] = {
        f: 1 - sp.Symbol("fc", real=True),
        LOGF: sp.Symbol("logf_k", real=True),
        z: sp.Symbol("z_k", real=True),
    }
    for v, rule in spec.vectors.items():
        if rule == "probability":
            table[v] = 1 - sp.Symbol(f"{v}c_k", real=True)
        else:
            table[v] = sp.Symbol(f"{v}_k", real=True)
    return table


def _dominant_locals(table: dict[sp.Symbol, sp.Expr]) -> list[tuple[str, str]]:
    out = []
    for sym, value in table.items():
        if sym == f:
            continue  # fc, the complement 1 - f_k, is an argument
        local = next(iter(value.free_symbols))
        index = f"{sym}[k]"
        out.append((str(local), f"1.0 - {index}" if value != local else index))
    return out


def _z_arguments(derivation: Derivation) -> tuple[str, ...]:
    spec = derivation.spec
    return (
        "f",
        str(LOGF),
        str(z),
        *(str(v) for v in spec.vectors),
        *(str(s) for s in spec.scalars),
        "k",
        "fc",
    )


def piece_functions(derivation: Derivation) -> list[PrintedFunction]:
    """Every z-space and x-space piece function, for the total and each term."""
    spec = derivation.spec
    z_args = _z_arguments(derivation)
    x_args = ("x", *(str(s) for s in spec.scalars))
    dominant = dominant_substitution(derivation)
    spaces = (("z", Z_PIECES, z_args, "f", dominant), ("x", X_PIECES, x_args, "x", None))
    out = []
    for td in derivation.all:
        for space, table, arguments, like, at_k in spaces:
            for kind, pieces in table.items():
                program = lower({name: getter(td) for name, getter, _ in pieces})
                vectors = {name for name, _, is_vec in pieces if is_vec}
                doc = f"{space}-space {kind} pieces of {_label(td)}."
                name = f"_{space}_{kind}_{td.name}"
                out.append(_printed(name, program, arguments, vectors, like, doc, at_k))
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
