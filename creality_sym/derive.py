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
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from creality_sym.spec import Spec, Term, f, x, z
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

    @property
    def z_hessian(self) -> LowRank:
        return self.pieces.matrix

    @property
    def z_gradient_total(self) -> sp.Expr:
        """``<1_n, z_gradient>`` simplified (shift invariance removes the softmax part)."""
        return sp.expand(total(self.z_gradient))

    @property
    def has_z(self) -> bool:
        return self.parts != ZERO_PARTS

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
    phi_f = sp.diff(phi, f)
    return EntryParts(
        phi=tidy(phi),
        G=tidy(f * phi_f),
        E=tidy(f**2 * sp.diff(phi_f, f)),
        R=tidy(f * sp.diff(phi_f, z)),
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


def derive_term(term: Term, kappa: sp.Expr) -> TermDerivation:
    """Derive one term, unweighted."""
    if term.space == "x":
        psi = tidy(term.phi)
        return TermDerivation(
            name=term.name,
            weight=term.weight,
            loss_z=sp.Integer(0),
            loss_x=psi,
            parts=ZERO_PARTS,
            z_gradient=sp.Integer(0),
            pieces=HessianPieces(*(sp.Integer(0),) * 5),
            x_gradient=tidy(sp.diff(psi, x)),
            x_hessian=tidy(sp.diff(psi, x, 2)),
        )
    parts = entry_parts(term.phi)
    grad, hess = structure(parts, kappa)
    return TermDerivation(
        name=term.name,
        weight=term.weight,
        loss_z=parts.phi,
        loss_x=sp.Integer(0),
        parts=parts,
        z_gradient=grad,
        pieces=hess,
        x_gradient=sp.Integer(0),
        x_hessian=sp.Integer(0),
    )


def derive(spec: Spec) -> Derivation:
    """Derive every term of ``spec`` and the weighted total."""
    kappa = spec.logit_scale
    terms = {t.name: derive_term(t, kappa) for t in spec.terms}
    parts = ZERO_PARTS
    loss_x = sp.Integer(0)
    for t in spec.terms:
        d = terms[t.name]
        parts = parts + d.parts.scaled(t.weight)
        loss_x = loss_x + t.weight * d.loss_x
    loss_x = tidy(loss_x)
    grad, hess = structure(parts, kappa)
    total_derivation = TermDerivation(
        name="total",
        weight=sp.Integer(1),
        loss_z=parts.phi,
        loss_x=loss_x,
        parts=parts,
        z_gradient=grad,
        pieces=hess,
        x_gradient=tidy(sp.diff(loss_x, x)),
        x_hessian=tidy(sp.diff(loss_x, x, 2)),
    )
    return Derivation(spec=spec, terms=terms, total=total_derivation)
