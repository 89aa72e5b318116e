"""CUDA backend: the fused O(n) work of a spec as kernels that also compile as C.

For the weighted total, every lowered :class:`~creality_sym.codegen.lower.Program`
(the same ones the numpy backend prints: loss, gradient and Hessian pieces,
and the x-space pieces when the spec has x-space terms) becomes one kernel
per stage:

* a *reduction stage* writes the per-entry summand of each of its ``k``
  reductions into a scratch array ``red`` (``k x n``, row-major); the caller
  sums the rows (numpy on the host, CuPy on the GPU) and appends the sums to
  the array ``r`` that later stages read;
* the *last stage* writes the vector outputs (``g``, ``delta``, ``p``,
  ``B 1_n``, ...) entrywise and its scalar outputs (``c``, totals) once.

Three more kernels do the softmax statistics: ``logits`` (``t = scale z``),
``shifted_exp`` (``exp(t - t_max)``, summed by the caller into ``lse``) and
``softmax`` (``logf = t - t_max - lse``, ``f = exp(logf)``).

Under ``__CUDACC__`` the kernels are ``extern "C" __global__`` functions
with grid-stride loops; otherwise plain C functions with a serial loop. A
JSON description (kernel names, argument lists, reduction counts) lets a
loader call them without parsing C.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import sympy as sp

from creality_sym.codegen.common import (
    GENERATOR_VERSION,
    c_comment,
    environment,
    format_c,
    header_lines,
    static_file,
)
from creality_sym.codegen.cuda.printer import c_identifier, print_entry
from creality_sym.codegen.ir import (
    KINDS as PROGRAM_KINDS,
)
from creality_sym.codegen.ir import (
    VECTOR_OUTPUTS,
    dominant_substitution,
    program_outputs,
    renaming,
    uses_exp,
)
from creality_sym.codegen.lower import LOGF, Program, Stage, lower
from creality_sym.derive import Derivation
from creality_sym.spec import f, x, z
from creality_sym.vector import N, is_entry_symbol

TEMPLATES = Path(__file__).parent / "templates"
KERNELS_TEMPLATE = "kernels.cu.jinja"

#: argument kinds of the description: how a loader supplies each argument.
KINDS = {
    "size": "const long long n",  # number of entries
    "index": "const long long",  # the dominant entry k
    "array": "const double *CR_RESTRICT",  # input entries (f, logf, z, a vector, x)
    "scalar": "const double",  # scalar parameter
    "reductions": "const double *CR_RESTRICT",  # sums of earlier stages, r[0..]
    "stats": "const double *CR_RESTRICT",  # softmax statistics {t_max, lse}
    "scratch": "double *CR_RESTRICT",  # per-entry summands, k x n
    "output": "double *CR_RESTRICT",  # vector output, n entries
    "scalar_outputs": "double *CR_RESTRICT",  # scalar outputs, written once
}


@dataclass(frozen=True)
class Argument:
    """One kernel argument: its logical name (for the loader) and kind."""

    name: str
    kind: str
    c_name: str

    @property
    def declaration(self) -> str:
        if self.kind == "size":
            return KINDS["size"]
        if self.kind == "index":
            return f"{KINDS['index']} {self.c_name}"
        return f"{KINDS[self.kind]} {self.c_name}"

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "kind": self.kind}


@dataclass(frozen=True)
class Kernel:
    """A kernel ready for the template: setup lines, lines run once, loop body."""

    name: str
    doc: str
    arguments: tuple[Argument, ...]
    setup: tuple[str, ...]
    first: tuple[str, ...]
    loop: tuple[str, ...]
    operations: int
    reductions: int = 0

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"kernel": self.name}
        if self.reductions:
            out["reductions"] = self.reductions
        out["arguments"] = [a.describe() for a in self.arguments]
        return out


@dataclass(frozen=True)
class Inputs:
    """The inputs every kernel of one space takes: entry arrays, then scalars."""

    arrays: tuple[str, ...]
    scalars: tuple[str, ...]

    def __post_init__(self) -> None:
        names = [c_identifier(n) for n in (*self.arrays, *self.scalars)]
        if len(set(names)) != len(names):
            raise ValueError(
                f"spec symbols {[*self.arrays, *self.scalars]} map to clashing C names {names}"
            )

    @property
    def c_arrays(self) -> dict[str, str]:
        return {n: c_identifier(n) for n in self.arrays}

    @property
    def c_scalars(self) -> dict[str, str]:
        return {n: c_identifier(n) for n in self.scalars}

    def arguments(self) -> list[Argument]:
        return [
            Argument("n", "size", "n"),
            *(Argument(n, "array", c) for n, c in self.c_arrays.items()),
            *(Argument(n, "scalar", c) for n, c in self.c_scalars.items()),
        ]

    def print(self, expr: sp.Expr) -> str:
        return print_entry(expr, self.c_arrays, self.c_scalars)


def stage_kernels(
    prefix: str,
    program: Program,
    inputs: Inputs,
    vectors: set[str],
    doc: str,
    dominant: Mapping[sp.Symbol, sp.Expr] | None = None,
) -> list[Kernel]:
    """One kernel per stage of ``program``; ``vectors`` names its vector outputs.

    With ``dominant`` (z-space), the kernels take the dominant index ``k`` and
    ``fc = 1 - f[k]``, and entry k of every f-dependent summand or output is
    computed from the complements (1 - f_k, 1 - b_k) so that nothing cancels.
    """
    kernels = []
    # values at the dominant entry k, read once per thread before the loop
    locals_at_k: dict[str, str] = {"fc": "fc"}
    for sym, value in (dominant or {}).items():
        if sym == f:
            continue
        (local,) = value.free_symbols
        array = inputs.c_arrays[str(sym)]
        locals_at_k[local.name] = f"(1.0 - {array}[k])" if value.is_Add else f"{array}[k]"

    def print_c(expr: sp.Expr) -> str:
        # entry k's values (z_k, logf_k, bc_k, ...) may appear in any expression
        return print_entry(expr, inputs.c_arrays, {**inputs.c_scalars, **locals_at_k})

    def at_k(name: str, normal: str, variants: Mapping[str, sp.Expr]) -> str:
        if name not in variants:
            return normal
        return f"(i == k) ? ({print_c(variants[name])}) : ({normal})"

    done = 0  # reductions computed by earlier stages
    for index, stage in enumerate(program.stages):
        entry_temps = {s.name for s in stage.entry_temporaries}
        exprs = [e for _, e in (*stage.temporaries, *stage.outputs)] + list(stage.variants.values())
        _check_symbols(
            exprs,
            inputs,
            stage,
            program.reduction_names[:done],
            f"{prefix} stage {index}",
            locals_at_k,
        )
        used = {s.name for e in exprs for s in e.free_symbols}
        setup = [
            f"const double {name} = r[{j}];"
            for j, name in enumerate(program.reduction_names[:done])
            if name in used
        ]
        loop: list[str] = []
        first: list[str] = []
        for sym, expr in stage.temporaries:
            if sym.name in entry_temps:
                loop.append(f"const double {sym} = {print_c(expr)};")
            else:
                setup.append(f"const double {sym} = {print_c(expr)};")
        arguments = inputs.arguments()
        if dominant:
            arguments += [Argument("k", "index", "k"), Argument("fc", "scalar", "fc")]
        if done:
            arguments.append(Argument("r", "reductions", "r"))
        last = index == len(program.stages) - 1
        if not last:
            names = [name for name, _ in stage.outputs]
            if set(names) != set(stage.reductions):
                raise ValueError(f"{prefix} stage {index}: outputs {names} are not all reductions")
            for j, (out, expr) in enumerate(stage.outputs):
                row = "i" if j == 0 else f"{j} * n + i"
                loop.append(f"red[{row}] = {at_k(out, print_c(expr), stage.variants)};")
            arguments.append(Argument("red", "scratch", "red"))
            kind = f"{len(names)} reduction summand(s) -> red ({len(names)} x n)"
        else:
            scalar_outputs = [name for name, _ in stage.outputs if name not in vectors]
            for name, expr in stage.outputs:
                text = print_c(expr)
                if name in vectors:
                    arguments.append(Argument(name, "output", f"out_{name}"))
                    loop.append(f"out_{name}[i] = {at_k(name, text, stage.variants)};")
                elif any(s.name in entry_temps or is_entry_symbol(s) for s in expr.free_symbols):
                    raise ValueError(f"{prefix}: scalar output {name} depends on the entry")
                else:
                    first.append(f"out_scalars[{scalar_outputs.index(name)}] = {text};")
            if scalar_outputs:
                arguments.append(Argument("scalars", "scalar_outputs", "out_scalars"))
            kind = "outputs " + ", ".join(
                [n for n, _ in stage.outputs if n in vectors]
                + [f"scalars[{j}] = {n}" for j, n in enumerate(scalar_outputs)]
            )
        ops = int(sum(sp.count_ops(e) for e in exprs))
        kernels.append(
            Kernel(
                name=f"{prefix}_s{index}",
                doc=f"{doc}, stage {index + 1} of {len(program.stages)}: {kind}.",
                arguments=tuple(arguments),
                setup=tuple(setup),
                first=tuple(first),
                loop=tuple(loop),
                operations=ops,
                reductions=0 if last else len(stage.outputs),
            )
        )
        done += 0 if last else len(stage.outputs)
    return kernels


def _check_symbols(
    exprs: Sequence[sp.Expr],
    inputs: Inputs,
    stage: Stage,
    reductions: Sequence[str],
    where: str,
    locals_at_k: Mapping[str, str],
) -> None:
    known = {
        *inputs.arrays,
        *inputs.scalars,
        *locals_at_k,
        *(str(s) for s, _ in stage.temporaries),
        *reductions,
    }
    for e in exprs:
        for s in e.free_symbols:
            if s == N or s.name in known:
                continue
            raise ValueError(f"{where}: cannot print symbol {s.name!r} in a kernel")


def softmax_kernels(prefix: str, scale: sp.Expr, inputs: Inputs) -> dict[str, Kernel]:
    """``logits``, ``shifted_exp`` and ``softmax`` kernels for ``f = softmax(scale z)``."""
    z_c = inputs.c_arrays[str(z)]
    if scale == 1:
        setup: tuple[str, ...] = ()
        t = f"{z_c}[i]"
    else:
        setup = (f"const double _scale = {inputs.print(scale)};",)
        t = f"_scale*{z_c}[i]"
    base = inputs.arguments()
    stats = Argument("stats", "stats", "stats")
    return {
        "logits": Kernel(
            f"{prefix}_logits",
            "Logits t = scale * z (the caller takes t_max = max t).",
            (*base, Argument("t", "output", "out_t")),
            setup,
            (),
            (f"out_t[i] = {t};",),
            int(sp.count_ops(scale)) + 1,
        ),
        "shifted_exp": Kernel(
            f"{prefix}_shifted_exp",
            "exp(t - t_max) with stats = {t_max}; the caller sums it: lse = log(sum).",
            (*base, stats, Argument("e", "output", "out_e")),
            setup,
            (),
            (f"const double _t = {t};", "out_e[i] = exp(_t - stats[0]);"),
            int(sp.count_ops(scale)) + 3,
        ),
        "softmax": Kernel(
            f"{prefix}_softmax",
            "log f = t - t_max - lse and f = exp(log f) with stats = {t_max, lse}.",
            (
                *base,
                stats,
                Argument("f", "output", "out_f"),
                Argument("logf", "output", "out_logf"),
            ),
            setup,
            (),
            (
                f"const double _t = {t};",
                "const double _logf = (_t - stats[0]) - stats[1];",
                "out_logf[i] = _logf;",
                "out_f[i] = exp(_logf);",
            ),
            int(sp.count_ops(scale)) + 4,
        ),
    }


def kernel_set(derivation: Derivation) -> tuple[list[Kernel], dict[str, object]]:
    """Every kernel of one spec (for the total) and the description of its programs."""
    spec = derivation.spec
    name = spec.name
    names = renaming(spec)
    params = spec.parameters
    scalars = tuple(p.python_name for p in params if p.kind == "scalar")
    z_vectors = tuple(p.python_name for p in params if p.kind == "vector" and p.space == "z")
    x_vectors = tuple(p.python_name for p in params if p.kind == "vector" and p.space == "x")
    z_inputs = Inputs(("f", str(LOGF), str(z), *z_vectors), scalars)
    x_inputs = Inputs((str(x), *x_vectors), scalars)
    total = derivation.total
    scale = spec.logit_scale.xreplace(names)
    softmax = softmax_kernels(name, scale, Inputs((str(z),), scalars))
    kernels = list(softmax.values())
    programs: dict[str, object] = {}
    spaces = [("z", "", z_inputs, dominant_substitution(spec))]
    if total.has_x:
        spaces.append(("x", "x_", x_inputs, None))
    for space, label, inputs, at_k in spaces:
        for kind in PROGRAM_KINDS:
            outputs = program_outputs(spec, total, space, kind)
            program = lower(outputs, dominant=at_k)
            vectors = {k for k in outputs if VECTOR_OUTPUTS.match(k)}
            stages = stage_kernels(
                f"{name}_{label}{kind}",
                program,
                inputs,
                vectors,
                f"{space}-space {kind} pieces of the weighted total",
                at_k,
            )
            kernels += stages
            programs[f"{label}{kind}"] = {
                "space": space,
                "outputs": list(outputs),
                "vector_outputs": [k for k in outputs if k in vectors],
                "scalar_outputs": [k for k in outputs if k not in vectors],
                "stages": [k.describe() for k in stages],
            }
    description = {
        "spec": name,
        "spec_sha256": spec.digest,
        "generator": f"creality_sym {GENERATOR_VERSION}",
        "source": f"{name}.cu",
        "dtype": "float64",
        "size_type": "int64",
        "parameters": [
            {
                "name": p.python_name,
                "kind": p.kind,
                "rule": p.rule,
                "shape": p.shape,
                **({"default": p.default} if p.default is not None else {}),
            }
            for p in params
        ],
        "has_x": total.has_x,
        "uses_exp": uses_exp(derivation),
        "low_rank": total.low_rank.rank,
        "softmax": {key: k.describe() for key, k in softmax.items()},
        "programs": programs,
    }
    return kernels, description


def render(derivation: Derivation, *, spec_file: str) -> dict[str, str]:
    """``{"cuda/<spec>.cu": kernel source, "cuda/<spec>.json": its description}``."""
    spec = derivation.spec
    kernels, description = kernel_set(derivation)
    template = f"cuda/templates/{KERNELS_TEMPLATE}"
    source = (
        environment(TEMPLATES)
        .get_template(KERNELS_TEMPLATE)
        .render(
            header=[
                c_comment(line)
                for line in header_lines(
                    spec_file=spec_file, spec_hash=spec.digest, template=template
                )
            ],
            spec=spec,
            description=c_comment(spec.description or spec.name).replace("\n", "\n * "),
            kernels=kernels,
        )
    )
    description = {
        "header": header_lines(
            spec_file=spec_file, spec_hash=spec.digest, template="cuda/__init__.py (description)"
        ),
        **description,
    }
    return {
        f"cuda/{spec.name}.cu": format_c(source, filename=f"{spec.name}.cu"),
        f"cuda/{spec.name}.json": _dump(description),
    }


def _dump(description: Mapping[str, object]) -> str:
    """JSON text with one line per kernel argument."""
    text = json.dumps(description, indent=1)
    text = re.sub(
        r'\{\s+"name": ("[^"]*"),\s+"kind": ("[^"]*")\s+\}', r'{"name": \1, "kind": \2}', text
    )
    return text + "\n"


def render_runtime(spec_names: Sequence[str]) -> dict[str, str]:
    """The loader module shared by every spec (a copy of the static module)."""
    del spec_names  # the loader finds the specs from the cuda/*.json descriptions
    return {"cuda_loader.py": static_file("cuda_loader.py")}
