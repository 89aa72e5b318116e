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

import hashlib
import importlib.util
import linecache
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sympy as sp

from creality_sym.vector import LowRank, Total, diag, inner, outer, register_entry_symbol, total

__all__ = [
    "Spec",
    "Term",
    "Statement",
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


_RULES: dict[str, str] = {}


def vector(name: str, rule: str = "real") -> sp.Symbol:
    """Declare an n-vector parameter; returns its entry symbol.

    ``rule`` is checked on every call of the generated code:
    ``"probability"`` (entries >= 0 summing to 1), ``"positive"``,
    ``"nonnegative"`` or ``"real"`` (finite).
    """
    if rule not in VECTOR_RULES:
        raise SpecError(f"vector {name!r}: rule must be one of {VECTOR_RULES}; got {rule!r}")
    sym = sp.Symbol(name, real=True)
    register_entry_symbol(sym, probability=rule == "probability")
    _RULES[name] = rule
    return sym


def scalar(name: str, rule: str = "real") -> sp.Symbol:
    """Declare a scalar parameter (``"positive"``, ``"nonnegative"`` or ``"real"``)."""
    if rule not in SCALAR_RULES:
        raise SpecError(f"scalar {name!r}: rule must be one of {SCALAR_RULES}; got {rule!r}")
    assumptions = {"positive": {"positive": True}, "nonnegative": {"nonnegative": True}}
    sym = sp.Symbol(name, real=True, **assumptions.get(rule, {}))
    _RULES[name] = rule
    return sym


class SpecError(ValueError):
    """A spec file that cannot be loaded; the message names file and line."""


@dataclass(frozen=True)
class Term:
    """One loss term ``weight * sum_j phi``.

    ``phi`` is an entry expression; ``space="z"`` sums it over the n logits,
    ``space="x"`` over the d entries of ``x``.
    """

    name: str
    phi: sp.Expr
    weight: sp.Expr = sp.Integer(1)
    space: str = "z"
    latex: str | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise SpecError(f"term name must be an identifier; got {self.name!r}")
        if self.space not in ("z", "x"):
            raise SpecError(f"term {self.name!r}: space must be 'z' or 'x'; got {self.space!r}")
        object.__setattr__(self, "phi", sp.sympify(self.phi))
        object.__setattr__(self, "weight", sp.sympify(self.weight))


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
                f"statement {self.id!r}: quantity must be one of {QUANTITIES}; "
                f"got {self.quantity!r}"
            )


@dataclass(frozen=True)
class Spec:
    """A loss ``L(x) = sum_t weight_t * sum phi_t`` with ``f = softmax(scale * A x)``.

    ``vectors`` lists the n-vector parameters (made by :func:`vector`),
    ``scalars`` the scalar ones (made by :func:`scalar`); after construction
    both map each symbol to its rule. Their order is the order of the
    generated functions' arguments after ``A``.
    """

    name: str
    terms: tuple[Term, ...]
    vectors: Sequence[sp.Symbol] = ()
    scalars: Sequence[sp.Symbol] = ()
    logit_scale: sp.Expr = sp.Integer(1)
    statements: tuple[Statement, ...] = ()
    description: str = ""
    defaults: Mapping[str, float] = field(default_factory=dict)
    source: str = ""
    path: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "terms", tuple(self.terms))
        object.__setattr__(self, "statements", tuple(self.statements))
        object.__setattr__(self, "logit_scale", sp.sympify(self.logit_scale))
        object.__setattr__(self, "vectors", {s: _RULES.get(str(s), "real") for s in self.vectors})
        object.__setattr__(self, "scalars", {s: _RULES.get(str(s), "real") for s in self.scalars})
        if not self.name.isidentifier():
            raise SpecError(f"spec name must be an identifier; got {self.name!r}")
        if not self.terms:
            raise SpecError(f"spec {self.name!r} has no terms")
        names = [t.name for t in self.terms]
        if len(set(names)) != len(names) or "total" in names:
            raise SpecError(f"spec {self.name!r}: term names must be unique, not 'total'")
        for sym, rule in self.vectors.items():
            if rule not in VECTOR_RULES:
                raise SpecError(f"vector {sym}: rule must be one of {VECTOR_RULES}; got {rule!r}")
        for sym, rule in self.scalars.items():
            if rule not in SCALAR_RULES:
                raise SpecError(f"scalar {sym}: rule must be one of {SCALAR_RULES}; got {rule!r}")
        allowed = {f, z, x, *self.vectors, *self.scalars}
        for term in self.terms:
            extra = (term.phi.free_symbols | term.weight.free_symbols) - allowed
            if extra:
                raise SpecError(
                    f"term {term.name!r} uses undeclared symbols {sorted(map(str, extra))}; "
                    "declare them in vectors= or scalars="
                )
            if term.weight.free_symbols - set(self.scalars):
                raise SpecError(f"term {term.name!r}: weight may use scalar parameters only")
            if term.space == "x" and (term.phi.free_symbols - {x, *self.scalars}):
                raise SpecError(f"term {term.name!r}: an x-space term may use x and scalars only")
            if term.space == "z" and x in term.phi.free_symbols:
                raise SpecError(f"term {term.name!r}: a z-space term may not use x")
        if self.logit_scale.free_symbols - set(self.scalars):
            raise SpecError("logit_scale may use scalar parameters only")
        known = {t.name for t in self.terms} | {"total"}
        for st in self.statements:
            if st.term not in known:
                raise SpecError(f"statement {st.id!r} names unknown term {st.term!r}")

    @property
    def digest(self) -> str:
        """SHA-256 of the spec file's source text."""
        return hashlib.sha256(self.source.encode()).hexdigest()

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
    source = path.read_text()
    module_name = f"_creality_spec_{path.stem}"
    try:
        code = compile(source, str(path), "exec")
        namespace: dict[str, object] = {"__name__": module_name, "__file__": str(path)}
        linecache.checkcache(str(path))
        exec(code, namespace)
    except SyntaxError as exc:
        raise SpecError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from exc
    except Exception as exc:
        line = _spec_line(exc, path)
        raise SpecError(f"{path}:{line}: {type(exc).__name__}: {exc}") from exc
    spec = namespace.get("SPEC")
    if not isinstance(spec, Spec):
        raise SpecError(f"{path}:1: a spec file must define SPEC = Spec(...)")
    object.__setattr__(spec, "source", source)
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
