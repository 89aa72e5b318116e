"""Vector expressions for symbolic n: entry expressions, totals, diag + low rank.

An *entry expression* is a SymPy expression in entry symbols (``f``, ``z``,
``b``, ...) that stands for the vector whose j-th entry it gives.
``Total(e)`` is the scalar ``sum_j e_j``; ``inner(u, v) = Total(u*v)``.
A :class:`LowRank` is the n x n matrix ``diag(d) + sum_k c_k u_k v_k^T`` held
by its pieces only, never as an n x n expression.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import sympy as sp

#: the symbolic dimension n (number of logits).
N = sp.Symbol("n", positive=True, integer=True)


class Total(sp.Function):
    """``Total(e) = sum_j e_j`` over the n entries (an unevaluated scalar)."""

    nargs = 1
    is_real = True

    @classmethod
    def eval(cls, arg):  # noqa: ANN001 - SymPy protocol
        arg = sp.sympify(arg)
        if arg == 0:
            return sp.Integer(0)
        return None


def split_totals(e: sp.Expr) -> sp.Expr:
    """Every ``Total`` in ``e`` rewritten by :func:`total` (split over +, sum(f) = 1)."""
    e = sp.sympify(e)
    if not e.has(Total):
        return e
    return e.replace(lambda a: isinstance(a, Total), lambda a: total(a.args[0]))


def total(e: sp.Expr) -> sp.Expr:
    """Sum of an entry expression over all entries, expanded over + and constants.

    Nested totals are split too, so equal sums compare equal symbolically.
    """
    e = sp.expand_mul(split_totals(sp.sympify(e)))
    if isinstance(e, sp.Add):
        return sp.Add(*(total(a) for a in e.args))
    coeff, rest = split_scalar(e)
    if rest == 1:
        return coeff * N
    if is_probability(rest):
        return coeff  # a probability vector sums to one
    return coeff * Total(rest)


def inner(u: sp.Expr, v: sp.Expr) -> sp.Expr:
    """``<u, v> = sum_j u_j v_j``."""
    return total(sp.sympify(u) * sp.sympify(v))


_OPAQUE = sp.Symbol("_opaque_total")
#: names of the built-in entry symbols: softmax probability, logit, x entry, log f.
#: Parameter names may not take them, so a name here is always that entry symbol.
BUILTIN_ENTRY_NAMES = frozenset({"f", "z", "x", "logf"})


class VectorSymbol(sp.Symbol):
    """Entry symbol of a vector parameter; its class carries the rule and the space.

    The role travels with the symbol itself (no registry): two specs may declare
    the same name with different roles and neither affects the other. Sorting
    keys are those of a plain :class:`sympy.Symbol` of the same name, so printed
    code does not depend on the class.
    """

    __slots__ = ()
    #: "probability", "positive", "nonnegative" or "real"
    rule: str = "real"
    #: "z" (one entry per logit, shape (n,)) or "x" (one per coordinate, shape (d,))
    space: str = "z"

    @classmethod
    def class_key(cls) -> tuple[int, int, str]:
        return sp.Symbol.class_key()


def _vector_class(rule: str, space: str) -> type[VectorSymbol]:
    qualname = f"{rule.capitalize()}{space.upper()}Vector"
    cls = type(qualname, (VectorSymbol,), {"__slots__": (), "rule": rule, "space": space})
    # SymPy orders arguments by class *name* (Basic.compare): named "Symbol", a
    # parameter sorts exactly like a plain symbol; the qualified name finds it for pickle.
    cls.__name__ = "Symbol"
    return cls


#: one symbol class per (rule, space); module attributes so that symbols pickle.
VECTOR_CLASSES: dict[tuple[str, str], type[VectorSymbol]] = {}
for _rule in ("probability", "positive", "nonnegative", "real"):
    for _space in ("z", "x"):
        _cls = _vector_class(_rule, _space)
        VECTOR_CLASSES[(_rule, _space)] = _cls
        globals()[_cls.__qualname__] = _cls


def vector_symbol(name: str, rule: str, space: str) -> VectorSymbol:
    """The entry symbol of a vector parameter ``name`` with ``rule`` in ``space``."""
    return VECTOR_CLASSES[(rule, space)](name, real=True)


def is_entry_symbol(s: sp.Basic) -> bool:
    """True for the built-in entry symbols and every vector parameter's symbol."""
    return isinstance(s, VectorSymbol) or (
        isinstance(s, sp.Symbol) and s.name in BUILTIN_ENTRY_NAMES
    )


def is_probability(e: sp.Basic) -> bool:
    """True for ``f`` and for a probability-vector parameter (entries summing to one)."""
    if isinstance(e, VectorSymbol):
        return e.rule == "probability"
    return isinstance(e, sp.Symbol) and e.name == "f"


def has_outside_totals(e: sp.Basic, symbol: sp.Symbol) -> bool:
    """True when ``symbol`` occurs in ``e`` outside every global sum (``log(total(f))`` is fine)."""
    return e.replace(Total, lambda *a: sp.Integer(1)).has(symbol)


def is_entrywise(e: sp.Expr) -> bool:
    """True when ``e`` depends on an entry symbol outside every Total."""
    stripped = sp.sympify(e).replace(Total, lambda *a: _OPAQUE)
    return any(is_entry_symbol(s) for s in stripped.free_symbols)


def split_scalar(e: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """Split a product into (scalar factor, entrywise factor)."""
    factors = e.args if isinstance(e, sp.Mul) else (e,)
    scalar = [a for a in factors if not is_entrywise(a)]
    entry = [a for a in factors if is_entrywise(a)]
    return sp.Mul(*scalar), sp.Mul(*entry)


@dataclass(frozen=True)
class LowRank:
    """``diag(d) + sum_k c_k u_k v_k^T`` as pieces (entry expressions, scalar c_k)."""

    diagonal: sp.Expr
    terms: tuple[tuple[sp.Expr, sp.Expr, sp.Expr], ...] = ()

    def __add__(self, other: LowRank) -> LowRank:
        if not isinstance(other, LowRank):
            return NotImplemented
        return LowRank(self.diagonal + other.diagonal, self.terms + other.terms)

    def __neg__(self) -> LowRank:
        return LowRank(-self.diagonal, tuple((-c, u, v) for c, u, v in self.terms))

    def __sub__(self, other: LowRank) -> LowRank:
        return self + (-other)

    def __mul__(self, scalar: object) -> LowRank:
        s = sp.sympify(scalar)
        return LowRank(s * self.diagonal, tuple((s * c, u, v) for c, u, v in self.terms))

    __rmul__ = __mul__

    def map(self, fn: Callable[[sp.Expr], sp.Expr]) -> LowRank:
        """Apply ``fn`` to every piece."""
        return LowRank(fn(self.diagonal), tuple((fn(c), fn(u), fn(v)) for c, u, v in self.terms))

    def matrix(self, entries: Callable[[sp.Expr, int], sp.Expr], n: int) -> sp.Matrix:
        """The explicit n x n matrix, given ``entries(expr, j)`` for concrete n."""
        out = sp.diag(*[entries(self.diagonal, j) for j in range(n)])
        for c, u, v in self.terms:
            cj = entries(c, 0)
            uu = sp.Matrix([entries(u, j) for j in range(n)])
            vv = sp.Matrix([entries(v, j) for j in range(n)])
            out += cj * uu * vv.T
        return out


def diag(d: sp.Expr) -> LowRank:
    """``diag(d)`` for an entry expression ``d``."""
    return LowRank(sp.sympify(d))


def outer(u: sp.Expr, v: sp.Expr) -> LowRank:
    """``u v^T`` for entry expressions ``u``, ``v``."""
    return LowRank(sp.Integer(0), ((sp.Integer(1), sp.sympify(u), sp.sympify(v)),))


def instantiate(
    e: sp.Expr, j: int, table: Mapping[sp.Symbol, Sequence[sp.Expr]], n: int
) -> sp.Expr:
    """Entry ``j`` of ``e`` at concrete ``n``: entry symbols from ``table``, Totals summed."""
    e = sp.sympify(e)
    if e.has(Total):
        e = e.replace(
            lambda a: isinstance(a, Total),
            lambda a: sp.Add(*(instantiate(a.args[0], k, table, n) for k in range(n))),
        )
    e = e.xreplace({N: sp.Integer(n)})
    return e.xreplace({s: vals[j] for s, vals in table.items()})
