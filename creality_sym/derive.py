"""Structured derivation: gradient and Hessian of a spec, for symbolic n and d.

For a z-space term ``sum_j phi(f_j, z_j, ...)`` with ``f = softmax(k z)``
(``k`` the spec's logit scale) the scalar calculus gives five entry
quantities, each simplified so that no ``1/f`` survives:

    G = f phi_f,  E = f^2 phi_ff,  R = f phi_fz,  Z1 = phi_z,  Z2 = phi_zz.

With ``h = G - f <G, 1>`` the structure lemma reads

    grad_z   = k h + Z1
    hess_z   = diag(delta) - p f^T - f p^T + c f f^T
    delta    = k^2 (h + E) + 2 k R + Z2,   p = k^2 (h + E) + k R,   c = k^2 <E, 1>

so ``grad L = A^T grad_z`` and ``hess L = A^T hess_z A``: diagonal plus rank
two, never an n x n expression. An x-space term ``sum_i psi(x_i)`` adds
``psi'(x)`` to the gradient and ``diag(psi''(x))`` to the Hessian.

Global sums. A term may contain global sums ``S_k = sum_j g_k(entry j)``
(``total``/``inner``), inside a summed ``phi(entry; S)`` or in a scalar
``Psi(S)`` (``summed=False``). With ``Phi(z, S) = sum_j phi + Psi`` and
``L_k = dPhi/dS_k`` (a scalar) the chain rule gives

    grad_z   = structure gradient of  phi + sum_k L_k g_k       (L_k, S held fixed)
    hess_z   = structure Hessian  of  phi + sum_k L_k g_k
               + sum_k (r_k s_k^T + s_k r_k^T) + sum_kl L_kl s_k s_l^T

with ``s_k = grad_z S_k`` and ``r_k`` the structure gradient of ``dphi/dS_k``
(both per-entry gradients), ``L_kl = d^2 Phi / dS_k dS_l``: still diagonal
plus low rank, with the columns ``[s_1..s_m, r_1..r_m]`` and the core
``[[L_kl, I], [I, 0]]``. Sums that do not depend on ``z`` drop out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from creality_sym.spec import Spec, SpecError, Term, f, x, z
from creality_sym.vector import (
    LowRank,
    Total,
    is_probability,
    split_scalar,
    split_totals,
    total,
)


@dataclass(frozen=True)
class EntryParts:
    """Scalar derivative quantities of one z-space term (entry expressions)."""

    phi: sp.Expr
    G: sp.Expr
    E: sp.Expr
    R: sp.Expr
    Z1: sp.Expr
    Z2: sp.Expr

    def scaled(self, weight: sp.Expr) -> EntryParts:
        return EntryParts(*(tidy(weight * getattr(self, k)) for k in _PART_NAMES))

    def __add__(self, other: EntryParts) -> EntryParts:
        return EntryParts(*(tidy(getattr(self, k) + getattr(other, k)) for k in _PART_NAMES))


_PART_NAMES = ("phi", "G", "E", "R", "Z1", "Z2")
ZERO_PARTS = EntryParts(*(sp.Integer(0),) * 6)


@dataclass(frozen=True)
class HessianPieces:
    """``B = diag(delta) - p f^T - f p^T + c f f^T`` and its action on ``1_n``.

    ``ones`` is ``B 1_n`` simplified symbolically (zero for the part of B that
    depends on z through f only, since softmax is shift-invariant), and
    ``ones_total = <1_n, B 1_n>``; generated code uses both to shift rows of A
    without cancellation.
    """

    delta: sp.Expr
    p: sp.Expr
    c: sp.Expr
    ones: sp.Expr
    ones_total: sp.Expr

    @property
    def matrix(self) -> LowRank:
        terms = []
        if self.p != 0:
            terms += [(sp.Integer(-1), self.p, f), (sp.Integer(-1), f, self.p)]
        if self.c != 0:
            terms.append((self.c, f, f))
        return LowRank(self.delta, tuple(terms))


@dataclass(frozen=True)
class LowRankPart:
    """``U C U^T``: columns ``U`` (entry expressions), their sums, a symmetric core ``C``.

    ``columns[i]`` is an n-vector (a per-entry gradient, so ``totals[i]`` =
    ``<1, U_i>`` is known symbolically); ``core[i][j]`` is a scalar expression.
    Empty for a spec without global sums.
    """

    columns: tuple[sp.Expr, ...] = ()
    totals: tuple[sp.Expr, ...] = ()
    core: tuple[tuple[sp.Expr, ...], ...] = ()

    @property
    def rank(self) -> int:
        return len(self.columns)

    @property
    def matrix(self) -> LowRank:
        terms = []
        for i, u in enumerate(self.columns):
            for j, v in enumerate(self.columns):
                if self.core[i][j] != 0:
                    terms.append((self.core[i][j], u, v))
        return LowRank(sp.Integer(0), tuple(terms))


NO_LOW_RANK = LowRankPart()


@dataclass(frozen=True)
class TermDerivation:
    """Gradient and Hessian of one term (unweighted) or of the weighted total.

    ``z_gradient`` / ``z_hessian`` give ``A^T g`` and ``A^T B A``;
    ``x_gradient`` / ``x_hessian`` are the x-space gradient and Hessian
    diagonal (entry expressions in ``x``).
    """

    name: str
    weight: sp.Expr
    loss_z: sp.Expr
    loss_x: sp.Expr
    parts: EntryParts
    z_gradient: sp.Expr
    pieces: HessianPieces
    x_gradient: sp.Expr
    x_hessian: sp.Expr
    #: the scalar (not summed) part of the z-space loss, a function of global sums
    loss_scalar: sp.Expr = sp.Integer(0)
    #: the low-rank part the global sums add to the z-Hessian
    low_rank: LowRankPart = field(default=NO_LOW_RANK)

    @property
    def z_hessian(self) -> LowRank:
        """The full z-Hessian: the base (diag + rank two) plus the low-rank part."""
        if not self.low_rank.rank:
            return self.pieces.matrix
        return self.pieces.matrix + self.low_rank.matrix

    @property
    def loss_value(self) -> sp.Expr:
        """The z-space loss as one scalar: ``sum_j phi + Psi``."""
        return Total(self.loss_z) + self.loss_scalar

    @property
    def z_gradient_total(self) -> sp.Expr:
        """``<1_n, z_gradient>`` simplified (shift invariance removes the softmax part)."""
        return sp.expand(total(self.z_gradient))

    @property
    def has_z(self) -> bool:
        return self.parts != ZERO_PARTS or self.loss_scalar != 0

    @property
    def has_x(self) -> bool:
        return self.loss_x != 0


@dataclass(frozen=True)
class Derivation:
    """The derivation of a whole spec: every term (unweighted) and the total."""

    spec: Spec
    terms: dict[str, TermDerivation]
    total: TermDerivation

    def get(self, name: str) -> TermDerivation:
        return self.total if name == "total" else self.terms[name]

    @property
    def all(self) -> list[TermDerivation]:
        return [*self.terms.values(), self.total]


def tidy(e: sp.Expr) -> sp.Expr:
    """Light canonical form of an entry expression: powers combined, nothing expanded.

    Differences such as ``f - b`` stay together, so printed code never forms
    them as a cancelling sum (``f^2 - b f`` would lose ``f - b`` when f ~ b).
    """
    return sp.powsimp(sp.sympify(e))


def reduction(e: sp.Expr) -> sp.Expr:
    """``sum_j e_j`` as one reduction of the unexpanded summand (for printing)."""
    known = sp.Integer(0)  # scalar * (probability vector) sums to the scalar
    rest = []
    for term in sp.Add.make_args(tidy(e)):
        scalar, vector = split_scalar(term)
        if is_probability(vector):
            known += scalar
        elif term != 0:
            rest.append(term)
    return known + (Total(sp.Add(*rest)) if rest else sp.Integer(0))


def entry_parts(phi: sp.Expr) -> EntryParts:
    """The scalar calculus of ``phi(f, z)``: products taken before simplifying."""
    phi_f = sp.factor_terms(sp.diff(phi, f))
    # common factors pulled out of sums first, so that f^2 * f^(q-2) combines to f^q
    # (finite where f underflows) without expanding differences such as f - b
    return EntryParts(
        phi=tidy(phi),
        G=tidy(f * phi_f),
        E=tidy(f**2 * sp.factor_terms(sp.diff(phi_f, f))),
        R=tidy(f * sp.factor_terms(sp.diff(phi_f, z))),
        Z1=tidy(sp.diff(phi, z)),
        Z2=tidy(sp.diff(phi, z, 2)),
    )


def structure(parts: EntryParts, kappa: sp.Expr) -> tuple[sp.Expr, HessianPieces]:
    """z-gradient and z-Hessian pieces (diag + rank 2) from the entry quantities."""
    h = tidy(parts.G - f * reduction(parts.G))
    base = tidy(kappa**2 * (h + parts.E))
    delta = tidy(base + 2 * kappa * parts.R + parts.Z2)
    p = tidy(base + kappa * parts.R)
    c = tidy(kappa**2 * reduction(parts.E))
    grad = tidy(kappa * h + parts.Z1)
    # B 1_n, simplified with sum(f) = 1 (total() splits and cancels the reductions)
    ones = sp.expand(split_totals(delta - p) - f * (total(p) - total(kappa**2 * parts.E)))
    return grad, HessianPieces(delta, p, c, ones, sp.expand(total(ones)))


def _x_derivation(name: str, weight: sp.Expr, psi: sp.Expr) -> TermDerivation:
    psi = tidy(psi)
    return TermDerivation(
        name=name,
        weight=weight,
        loss_z=sp.Integer(0),
        loss_x=psi,
        parts=ZERO_PARTS,
        z_gradient=sp.Integer(0),
        pieces=HessianPieces(*(sp.Integer(0),) * 5),
        x_gradient=tidy(sp.factor_terms(sp.diff(psi, x))),
        x_hessian=tidy(sp.factor_terms(sp.diff(psi, x, 2))),
    )


def _global_sums(terms: list[tuple[Term, sp.Expr]]) -> list[Total]:
    """Every global sum of the z-space terms, in a canonical order."""
    found = {
        node
        for term, _ in terms
        for node in sp.preorder_traversal(term.phi)
        if isinstance(node, Total)
    }
    return sorted(found, key=sp.default_sort_key)


def derive_z(terms: list[tuple[Term, sp.Expr]], kappa: sp.Expr) -> dict[str, object]:
    """z-space derivation of ``sum_t weight_t * term_t`` (terms as ``(term, weight)``).

    Without global sums this is the structure lemma on the weighted sum of the
    terms' entry quantities; with them, the chain rule of the module docstring.
    """
    sums = _global_sums(terms)
    if not sums:
        parts = ZERO_PARTS
        for term, weight in terms:
            parts = parts + entry_parts(term.phi).scaled(weight)
        grad, hess = structure(parts, kappa)
        return {"loss_z": parts.phi, "parts": parts, "z_gradient": grad, "pieces": hess}
    sigma = [sp.Symbol(f"_sum{k}", real=True) for k in range(len(sums))]
    ell = [sp.Symbol(f"_adj{k}", real=True) for k in range(len(sums))]
    to_sigma = dict(zip(sums, sigma, strict=True))
    summands = [s.args[0] for s in sums]
    phi = sp.Integer(0)
    psi = sp.Integer(0)
    parts = ZERO_PARTS
    for term, weight in terms:
        expr = term.phi.xreplace(to_sigma)
        if term.summed:
            phi += weight * expr
            parts = parts + entry_parts(expr).scaled(weight)
        else:
            psi += weight * expr
    adjoint = [tidy(reduction(sp.diff(phi, s)) + sp.diff(psi, s)) for s in sigma]
    for lk, gk in zip(ell, summands, strict=True):
        parts = parts + entry_parts(gk).scaled(lk)
    grad, hess = structure(parts, kappa)
    from_sigma = {s: t for s, t in zip(sigma, sums, strict=True)}
    adjoint_map = {lk: a.xreplace(from_sigma) for lk, a in zip(ell, adjoint, strict=True)}

    def back(e: sp.Expr) -> sp.Expr:
        return tidy(sp.sympify(e).xreplace(adjoint_map).xreplace(from_sigma))

    # per-entry gradients of the sums (s_k) and of dphi/dS_k (r_k)
    s_cols = [back(structure(entry_parts(g), kappa)[0]) for g in summands]
    r_cols = [back(structure(entry_parts(sp.diff(phi, s)), kappa)[0]) for s in sigma]
    live = [k for k, col in enumerate(s_cols) if col != 0]  # sums constant in z drop out
    columns: list[sp.Expr] = []
    index_s: dict[int, int] = {}
    index_r: dict[int, int] = {}
    for k in live:
        index_s[k] = len(columns)
        columns.append(s_cols[k])
    for k in live:
        if r_cols[k] != 0:
            index_r[k] = len(columns)
            columns.append(r_cols[k])
    core = [[sp.Integer(0)] * len(columns) for _ in columns]
    for k in live:
        for m in live:
            second = sp.diff(phi, sigma[k], sigma[m])
            value = back(reduction(second) + sp.diff(psi, sigma[k], sigma[m]))
            core[index_s[k]][index_s[m]] = value
        if k in index_r:
            core[index_s[k]][index_r[k]] = sp.Integer(1)
            core[index_r[k]][index_s[k]] = sp.Integer(1)
    low_rank = LowRankPart(
        columns=tuple(columns),
        totals=tuple(sp.expand(total(col)) for col in columns),
        core=tuple(tuple(row) for row in core),
    )
    pieces = HessianPieces(*(back(getattr(hess, k)) for k in HessianPieces.__dataclass_fields__))
    return {
        "loss_z": tidy(phi.xreplace(from_sigma)),
        "loss_scalar": tidy(psi.xreplace(from_sigma)),
        "parts": EntryParts(*(back(getattr(parts, k)) for k in _PART_NAMES)),
        "z_gradient": back(grad),
        "pieces": pieces,
        "low_rank": low_rank,
    }


def derive_term(term: Term, kappa: sp.Expr) -> TermDerivation:
    """Derive one term, unweighted."""
    if term.space == "x":
        return _x_derivation(term.name, term.weight, term.phi)
    return TermDerivation(
        name=term.name,
        weight=term.weight,
        loss_x=sp.Integer(0),
        x_gradient=sp.Integer(0),
        x_hessian=sp.Integer(0),
        **derive_z([(term, sp.Integer(1))], kappa),
    )


def derive(spec: Spec) -> Derivation:
    """Derive every term of ``spec`` and the weighted total.

    Raises :class:`SpecError` naming the term's ``file:line`` when a term
    cannot be derived.
    """
    kappa = spec.logit_scale
    terms = {}
    for t in spec.terms:
        try:
            terms[t.name] = derive_term(t, kappa)
        except SpecError:
            raise
        except Exception as exc:  # SymPy failures become a located, one-line error
            raise SpecError(
                f"{t.where or spec.path}: term {t.name!r} cannot be derived "
                f"({type(exc).__name__}: {exc}); rewrite it with smooth elementary functions"
            ) from None
    z_terms = [(t, t.weight) for t in spec.terms if t.space == "z"]
    loss_x = sp.Integer(0)
    for t in spec.terms:
        loss_x = loss_x + t.weight * terms[t.name].loss_x
    loss_x = tidy(loss_x)
    try:
        z_part = derive_z(z_terms, kappa) if z_terms else None
    except Exception as exc:
        raise SpecError(
            f"{spec.path or spec.name}: the total loss cannot be derived "
            f"({type(exc).__name__}: {exc})"
        ) from None
    if z_part is None:
        z_part = {
            "loss_z": sp.Integer(0),
            "parts": ZERO_PARTS,
            "z_gradient": sp.Integer(0),
            "pieces": HessianPieces(*(sp.Integer(0),) * 5),
        }
    total_derivation = TermDerivation(
        name="total",
        weight=sp.Integer(1),
        loss_x=loss_x,
        x_gradient=tidy(sp.factor_terms(sp.diff(loss_x, x))),
        x_hessian=tidy(sp.factor_terms(sp.diff(loss_x, x, 2))),
        **z_part,
    )
    return Derivation(spec=spec, terms=terms, total=total_derivation)
