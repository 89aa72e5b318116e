"""Loss specifications: what a researcher writes in ``derivations/``.

A spec is a Python file that defines ``SPEC = Spec(...)``. Every loss term is a
sum over the ``n`` entries of an *entry expression* in the entry symbols below
(``f`` is the j-th softmax probability, ``z`` the j-th logit, ``b``/``w`` the
j-th entries of vector parameters), or, with ``space="x"``, a sum over the
``d`` entries of the parameter vector ``x``. Because every expression is
written for one generic entry, everything derived from it holds for symbolic
``n`` and ``d``.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib.util
import keyword
import linecache
import re
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sympy as sp

from creality_sym.constructs import check_smooth
from creality_sym.errors import SpecError
from creality_sym.vector import (
    BUILTIN_ENTRY_NAMES,
    LowRank,
    Total,
    VectorSymbol,
    diag,
    inner,
    is_entrywise,
    outer,
    total,
    vector_symbol,
)

__all__ = [
    "Spec",
    "Term",
    "Statement",
    "Parameter",
    "SpecError",
    "f",
    "z",
    "x",
    "inner",
    "total",
    "diag",
    "outer",
    "Total",
    "LowRank",
    "load_spec",
    "discover_specs",
    "vector",
    "scalar",
]

#: j-th softmax probability ``f_j``.
f = sp.Symbol("f", positive=True)
#: j-th logit ``z_j = (A x)_j``.
z = sp.Symbol("z", real=True)
#: i-th entry of the parameter vector ``x`` (for ``space="x"`` terms).
x = sp.Symbol("x", real=True)

VECTOR_RULES = ("probability", "positive", "nonnegative", "real")
SCALAR_RULES = ("positive", "nonnegative", "real")
QUANTITIES = ("z_gradient", "z_hessian", "x_gradient", "x_hessian")
SPACES = ("z", "x")

#: names the generated functions use themselves: a parameter with one of these
#: names (or a Python keyword or builtin) is renamed with a trailing underscore.
GENERATED_NAMES = frozenset(
    """A v xp term validate order n d k fc t u y g H out value name np math sm is_k logf_k z_k
    full at_dominant prepare_z data ordered values full_values Model Parameter ZPieces XPieces
    ZHessian Array Any annotations delta p c ones ones_total g_total loss gradient
    hessian_diag""".split()
)
#: generated local names (reductions, temporaries, low-rank pieces, values at the dominant entry)
GENERATED_PATTERN = re.compile(r"(sum\d+|sum_\w+|t\d+_\w+|lr\d+(_total)?|core\d+_\d+|\w+_k|\w+c_k)")
#: spec names taken by the generated package's own files.
RESERVED_SPEC_NAMES = frozenset({"cuda_loader", "cuda", "manifest", "DERIVATIONS"})


def _caller_location() -> str:
    """``file:line`` of the innermost frame outside this package (the spec file)."""
    here = Path(__file__).resolve().parent
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        try:
            inside = Path(filename).resolve().is_relative_to(here)
        except (OSError, ValueError):
            inside = False
        if not inside and not filename.startswith("<"):
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>:1"


def python_name(name: str) -> str:
    """The identifier a parameter gets in generated Python and C code.

    Python keywords and builtins (``lambda``, ``float``, ``int``...) and the
    generated functions' own local names get a trailing underscore
    (``lambda_``); every other name is kept.
    """
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or hasattr(builtins, name):
        return name + "_"
    if name in GENERATED_NAMES or name.startswith("_") or GENERATED_PATTERN.fullmatch(name):
        return name + "_"
    return name


def _check_parameter_name(name: object, what: str) -> str:
    where = _caller_location()
    if not isinstance(name, str) or not name.isidentifier():
        raise SpecError(f"{where}: {what} name must be a Python identifier; got {name!r}")
    if name in BUILTIN_ENTRY_NAMES:
        raise SpecError(
            f"{where}: {what} {name!r}: the name is taken by the built-in entry symbol "
            f"{name!r}; choose another name"
        )
    return name


def vector(name: str, rule: str = "real", *, space: str = "z") -> sp.Symbol:
    """Declare a vector parameter; returns its entry symbol.

    ``space="z"`` (default) gives one entry per logit (shape ``(n,)``),
    ``space="x"`` one per coordinate of ``x`` (shape ``(d,)``, for x-space
    terms). ``rule`` is checked on every call of the generated code:
    ``"probability"`` (entries >= 0 summing to 1), ``"positive"``,
    ``"nonnegative"`` or ``"real"`` (finite). The role is carried by the
    symbol itself, so specs never affect one another.
    """
    name = _check_parameter_name(name, "vector")
    if rule not in VECTOR_RULES:
        raise SpecError(
            f"{_caller_location()}: vector {name!r}: rule must be one of {VECTOR_RULES}; "
            f"got {rule!r}"
        )
    if space not in SPACES:
        raise SpecError(
            f"{_caller_location()}: vector {name!r}: space must be 'z' or 'x'; got {space!r}"
        )
    if rule == "probability" and space == "x":
        raise SpecError(
            f"{_caller_location()}: vector {name!r}: a probability vector lives in z-space "
            "(one entry per logit); use rule='nonnegative' for an x-space vector"
        )
    return vector_symbol(name, rule, space)


def scalar(name: str, rule: str = "real") -> sp.Symbol:
    """Declare a scalar parameter (``"positive"``, ``"nonnegative"`` or ``"real"``).

    The rule is carried by the symbol's assumptions.
    """
    name = _check_parameter_name(name, "scalar")
    if rule not in SCALAR_RULES:
        raise SpecError(
            f"{_caller_location()}: scalar {name!r}: rule must be one of {SCALAR_RULES}; "
            f"got {rule!r}"
        )
    assumptions = {"positive": {"positive": True}, "nonnegative": {"nonnegative": True}}
    return sp.Symbol(name, real=True, **assumptions.get(rule, {}))


def scalar_rule(sym: sp.Symbol) -> str:
    """The rule of a scalar symbol, read from its assumptions."""
    if sym.is_positive:
        return "positive"
    if sym.is_nonnegative:
        return "nonnegative"
    return "real"


@dataclass(frozen=True)
class Parameter:
    """One parameter of a spec, in the generated functions' argument order.

    ``kind`` is ``"vector"`` or ``"scalar"``; a vector's ``space`` is ``"z"``
    (shape ``(n,)``) or ``"x"`` (shape ``(d,)``); ``python_name`` is the name
    the argument has in generated code (see :func:`python_name`).
    """

    symbol: sp.Symbol
    kind: str
    rule: str
    space: str = ""
    default: float | None = None

    @property
    def name(self) -> str:
        return str(self.symbol)

    @property
    def python_name(self) -> str:
        return python_name(self.name)

    @property
    def shape(self) -> str:
        """``"n"``, ``"d"`` or ``"scalar"``."""
        if self.kind == "scalar":
            return "scalar"
        return "n" if self.space == "z" else "d"


@dataclass(frozen=True)
class Term:
    """One loss term ``weight * sum_j phi`` (or ``weight * phi`` when not summed).

    ``phi`` is an entry expression; ``space="z"`` sums it over the n logits,
    ``space="x"`` over the d entries of ``x``. Inside ``phi``, ``total(e)`` and
    ``inner(u, v)`` are global sums over the entries (the same for every
    entry) and may appear inside any smooth function. ``summed=False`` makes
    the term the scalar ``phi`` itself, a function of global sums only (for
    example Renyi's ``log(total(f**q)) / (q - 1)``).
    """

    name: str
    phi: sp.Expr
    weight: sp.Expr = sp.Integer(1)
    space: str = "z"
    latex: str | None = None
    summed: bool = True
    where: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        where = self.where or _caller_location()
        object.__setattr__(self, "where", where)
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SpecError(f"{where}: term name must be an identifier; got {self.name!r}")
        if self.space not in SPACES:
            raise SpecError(
                f"{where}: term {self.name!r}: space must be 'z' or 'x'; got {self.space!r}"
            )
        if not isinstance(self.summed, bool):
            raise SpecError(f"{where}: term {self.name!r}: summed must be True or False")
        try:
            phi = sp.sympify(self.phi, strict=True)
            weight = sp.sympify(self.weight, strict=True)
        except (sp.SympifyError, TypeError) as exc:
            raise SpecError(
                f"{where}: term {self.name!r}: phi and weight must be SymPy expressions: {exc}"
            ) from None
        object.__setattr__(self, "phi", phi)
        object.__setattr__(self, "weight", weight)
        check_smooth(phi, f"{where}: term {self.name!r}")
        check_smooth(weight, f"{where}: term {self.name!r} weight")
        if self.space == "x" and phi.has(Total):
            raise SpecError(
                f"{where}: term {self.name!r}: global sums (total, inner) are not supported in "
                "x-space terms; write the x-space term entrywise"
            )


@dataclass(frozen=True)
class Statement:
    """A paper-style closed form to check against the derivation.

    ``quantity`` is ``"z_gradient"`` (vector ``g`` with gradient ``A^T g``),
    ``"z_hessian"`` (a :class:`LowRank` ``B`` with Hessian ``A^T B A``),
    ``"x_gradient"`` or ``"x_hessian"`` (an entry expression / diagonal).
    The statement is about the *unweighted* term ``term``, or the total loss
    when ``term == "total"``.
    """

    id: str
    term: str
    quantity: str
    value: object
    latex: str | None = None

    def __post_init__(self) -> None:
        if self.quantity not in QUANTITIES:
            raise SpecError(
                f"{_caller_location()}: statement {self.id!r}: quantity must be one of "
                f"{QUANTITIES}; got {self.quantity!r}"
            )


@dataclass(frozen=True)
class Spec:
    """A loss ``L(x) = sum_t weight_t * term_t`` with ``f = softmax(scale * A x)``.

    ``vectors`` lists the vector parameters (made by :func:`vector`),
    ``scalars`` the scalar ones (made by :func:`scalar`); after construction
    both map each symbol to its rule, and :attr:`parameters` describes every
    parameter (kind, rule, shape, default) in the generated functions'
    argument order after ``x, A``. ``tradeoff`` optionally names the scalar
    that moves the model between its modes (``"gamma"`` in the default spec).
    """

    name: str
    terms: tuple[Term, ...]
    vectors: Sequence[sp.Symbol] = ()
    scalars: Sequence[sp.Symbol] = ()
    logit_scale: sp.Expr = sp.Integer(1)
    statements: tuple[Statement, ...] = ()
    description: str = ""
    defaults: Mapping[str, float] = field(default_factory=dict)
    tradeoff: str | None = None
    source: str = ""
    path: str = ""
    source_bytes: bytes = field(default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        where = _caller_location()
        object.__setattr__(self, "terms", tuple(self.terms))
        object.__setattr__(self, "statements", tuple(self.statements))
        object.__setattr__(self, "logit_scale", sp.sympify(self.logit_scale))
        object.__setattr__(self, "defaults", dict(self.defaults))
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SpecError(f"{where}: spec name must be an identifier; got {self.name!r}")
        if keyword.iskeyword(self.name) or self.name.startswith("_"):
            raise SpecError(
                f"{where}: spec name {self.name!r} cannot name a Python module "
                "(a keyword or a leading underscore); rename the file and SPEC.name"
            )
        if self.name in RESERVED_SPEC_NAMES:
            raise SpecError(
                f"{where}: spec name {self.name!r} is taken by a file of the generated package "
                f"({sorted(RESERVED_SPEC_NAMES)}); rename the file and SPEC.name"
            )
        for sym in self.vectors:
            if not isinstance(sym, VectorSymbol):
                raise SpecError(f"{where}: vectors= takes symbols made by vector(...); got {sym!r}")
        for sym in self.scalars:
            if not isinstance(sym, sp.Symbol) or isinstance(sym, VectorSymbol):
                raise SpecError(f"{where}: scalars= takes symbols made by scalar(...); got {sym!r}")
        vectors = {s: s.rule for s in self.vectors}
        scalars = {s: scalar_rule(s) for s in self.scalars}
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "scalars", scalars)
        self._check_names(where)
        if not self.terms:
            raise SpecError(f"{where}: spec {self.name!r} has no terms")
        names = [t.name for t in self.terms]
        if len(set(names)) != len(names) or "total" in names:
            raise SpecError(f"{where}: spec {self.name!r}: term names must be unique, not 'total'")
        for term in self.terms:
            self._check_term(term)
        if self.logit_scale.free_symbols - set(self.scalars):
            raise SpecError(f"{where}: logit_scale may use scalar parameters only")
        check_smooth(self.logit_scale, f"{where}: logit_scale")
        unknown = set(self.defaults) - {str(s) for s in self.scalars}
        if unknown:
            raise SpecError(f"{where}: defaults= names unknown scalars {sorted(unknown)}")
        if self.tradeoff is not None and self.tradeoff not in {str(s) for s in self.scalars}:
            raise SpecError(
                f"{where}: tradeoff={self.tradeoff!r} must name one of the scalars "
                f"{[str(s) for s in self.scalars]}"
            )
        known = {t.name for t in self.terms} | {"total"}
        for st in self.statements:
            if st.term not in known:
                raise SpecError(f"{where}: statement {st.id!r} names unknown term {st.term!r}")

    def _check_names(self, where: str) -> None:
        names = [str(s) for s in (*self.vectors, *self.scalars)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SpecError(
                f"{where}: spec {self.name!r}: parameter names must be unique; {dup} declared "
                "more than once"
            )
        mangled = [python_name(n) for n in names]
        clash = sorted({m for m in mangled if mangled.count(m) > 1})
        if clash:
            raise SpecError(
                f"{where}: spec {self.name!r}: parameters {names} give clashing names in "
                f"generated code ({clash}); rename one of them"
            )

    def _check_term(self, term: Term) -> None:
        where = term.where
        z_vectors = {s for s in self.vectors if s.space == "z"}
        x_vectors = {s for s in self.vectors if s.space == "x"}
        allowed = {f, z, x, *self.vectors, *self.scalars}
        extra = (term.phi.free_symbols | term.weight.free_symbols) - allowed
        if extra:
            raise SpecError(
                f"{where}: term {term.name!r} uses undeclared symbols {sorted(map(str, extra))}; "
                "declare them in vectors= or scalars="
            )
        if term.weight.free_symbols - set(self.scalars):
            raise SpecError(f"{where}: term {term.name!r}: weight may use scalar parameters only")
        if term.space == "x":
            bad = term.phi.free_symbols - {x, *x_vectors, *self.scalars}
            if bad:
                raise SpecError(
                    f"{where}: term {term.name!r}: an x-space term may use x, x-space vectors "
                    f"and scalars only; got {sorted(map(str, bad))}"
                )
        else:
            bad = term.phi.free_symbols & {x, *x_vectors}
            if bad:
                raise SpecError(
                    f"{where}: term {term.name!r}: a z-space term may not use "
                    f"{sorted(map(str, bad))} (x and x-space vectors live in x-space terms)"
                )
            del z_vectors
        if term.summed and term.space == "z" and not is_entrywise(term.phi):
            raise SpecError(
                f"{where}: term {term.name!r} is a function of global sums only; summing it "
                "over the n entries multiplies it by n. Write Term(..., summed=False) for a "
                "scalar term, or make phi an entry expression"
            )
        if not term.summed and is_entrywise(term.phi):
            raise SpecError(
                f"{where}: term {term.name!r} has summed=False but depends on the entry outside "
                "every global sum; wrap the entry expression in total(...)"
            )

    @property
    def parameters(self) -> tuple[Parameter, ...]:
        """Every parameter in argument order: vectors, then scalars."""
        out = [Parameter(s, "vector", r, s.space) for s, r in self.vectors.items()]
        for s, r in self.scalars.items():
            out.append(Parameter(s, "scalar", r, "", self.defaults.get(str(s))))
        return tuple(out)

    @property
    def digest(self) -> str:
        """SHA-256 of the spec file's bytes (of its source text when built in memory)."""
        data = self.source_bytes or self.source.encode()
        return hashlib.sha256(data).hexdigest()

    def term(self, name: str) -> Term:
        for t in self.terms:
            if t.name == name:
                return t
        raise KeyError(name)


def load_spec(path: str | Path) -> Spec:
    """Execute a spec file and return its ``SPEC``.

    Raises :class:`SpecError` naming the file and line of any error.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise SpecError(f"spec file not found: {path}")
    data = path.read_bytes()
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}:1: the spec file is not UTF-8 text: {exc}") from None
    module_name = f"_creality_spec_{path.stem}"
    try:
        code = compile(source, str(path), "exec")
        namespace: dict[str, object] = {"__name__": module_name, "__file__": str(path)}
        linecache.checkcache(str(path))
        exec(code, namespace)
    except SyntaxError as exc:
        raise SpecError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    except SpecError as exc:
        message = str(exc)
        if message.startswith(f"{path}:"):
            raise SpecError(message) from None
        raise SpecError(f"{path}:{_spec_line(exc, path)}: {message}") from None
    except Exception as exc:
        line = _spec_line(exc, path)
        raise SpecError(f"{path}:{line}: {type(exc).__name__}: {exc}") from exc
    spec = namespace.get("SPEC")
    if not isinstance(spec, Spec):
        raise SpecError(f"{path}:1: a spec file must define SPEC = Spec(...)")
    object.__setattr__(spec, "source", source)
    object.__setattr__(spec, "source_bytes", data)
    object.__setattr__(spec, "path", str(path))
    if spec.name != path.stem:
        raise SpecError(f"{path}:1: SPEC.name {spec.name!r} must equal the file stem {path.stem!r}")
    return spec


def _spec_line(exc: BaseException, path: Path) -> int:
    frames = [fr for fr in traceback.extract_tb(exc.__traceback__) if fr.filename == str(path)]
    return frames[-1].lineno if frames and frames[-1].lineno else 1


def discover_specs(derivations: str | Path) -> list[Path]:
    """Spec files in a ``derivations/`` folder (every ``*.py`` defining ``SPEC``)."""
    folder = Path(derivations)
    return sorted(
        p
        for p in folder.glob("*.py")
        if not p.name.startswith("_") and "SPEC" in p.read_text() and "Spec(" in p.read_text()
    )


def embedded_derivations() -> Path:
    """The ``derivations/`` folder shipped with the package."""
    spec = importlib.util.find_spec("creality_derivations")
    if spec is None or not spec.submodule_search_locations:
        raise SpecError("the embedded derivations package is not installed")
    return Path(list(spec.submodule_search_locations)[0])
