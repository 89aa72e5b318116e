"""Dense linear algebra of the Newton step: damped Cholesky, never raising.

Only numpy's LAPACK is used (no second BLAS thread pool next to numpy's).
A symmetric ``H (d, d)`` is factored as ``H + mu I = L L^T`` with the smallest
tried ``mu >= 0`` for which the factorization succeeds *and* is well
conditioned enough to give an accurate step: a Cholesky factor whose pivot
ratio ``(min_i L_ii / max_i L_ii)^2`` is below :data:`PIVOT_FLOOR` stands for a
singular (e.g. rank-deficient ``A``) or barely indefinite matrix, and is
damped too. If no shift works (non-finite ``H``) the step is a least-squares
solve or, last, a scaled gradient step. No ``LinAlgError`` escapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: smallest accepted (min L_ii / max L_ii)^2, about 1 / cond(H): below it the matrix is
#: treated as singular and damped (rounding in H is ~ 1e-16 of its largest entries)
PIVOT_FLOOR = 1e-13
#: the damping ladder: mu = shift + scale * 10**e for these exponents
DAMPING_EXPONENTS = tuple(range(-10, 9))


@dataclass
class Factor:
    """``L (d, d)`` lower triangular with ``L L^T = H + mu I``; ``L is None`` when none was found.

    ``mu`` is the damping added (0.0 when ``H`` itself was factored, ``inf`` when
    no shift worked), ``scale`` the largest ``|H_ii|`` (the gradient-step scale).
    """

    L: np.ndarray | None
    mu: float
    scale: float
    _inverse: np.ndarray | None = field(default=None, repr=False, compare=False)

    def inverse(self) -> np.ndarray:
        """``L^-1 (d, d)``, computed once (O(d^3)); later solves cost O(d^2)."""
        assert self.L is not None
        if self._inverse is None:
            self._inverse = triangular_solve(self.L, np.eye(self.L.shape[0]))
        return self._inverse

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``(L L^T)^-1 rhs`` for ``rhs (d,)`` or ``(d, k)``; ``rhs / scale`` without a factor.

        The first call forms ``L^-1``; a one-off solve should use
        :func:`triangular_solve` twice instead.
        """
        if self.L is None:
            return rhs / self.scale
        inverse = self.inverse()
        return inverse.T @ (inverse @ rhs)


def triangular_solve(L: np.ndarray, rhs: np.ndarray, *, transpose: bool = False) -> np.ndarray:
    """``L^-1 rhs`` (or ``L^-T rhs``) for a nonsingular lower-triangular ``L (d, d)``.

    numpy has no triangular solver; ``numpy.linalg.solve`` on the triangle is
    O(d^3) but stable, and d is the number of columns of ``A`` (small).
    """
    M = L.T if transpose else L
    return np.linalg.solve(M, rhs)


def _well_conditioned(L: np.ndarray) -> bool:
    diag = np.diag(L)
    if not np.all(np.isfinite(L)) or np.min(diag) <= 0.0:
        return False
    return bool((np.min(diag) / np.max(diag)) ** 2 >= PIVOT_FLOOR)


def damped_cholesky(H: np.ndarray) -> Factor:
    """The least-damped well-conditioned Cholesky factor of ``(H + H^T) / 2``.

    Parameters
    ----------
    H : (d, d) array
        Symmetric (up to rounding); any definiteness, possibly singular.

    Returns
    -------
    Factor
        Tries ``mu = 0``, then ``mu = shift + s 10^e`` (``e`` in
        :data:`DAMPING_EXPONENTS`) with ``s = max |diag H|`` and ``shift``
        past ``-min diag H``. ``mu = inf`` (``L = None``) when none works.
    """
    H = 0.5 * (H + H.T)
    diag = np.diag(H)
    scale = float(np.max(np.abs(diag), initial=0.0))
    if not np.isfinite(scale) or scale == 0.0:
        scale = 1.0
    if not np.all(np.isfinite(H)):
        return Factor(None, float("inf"), scale)
    shift = max(0.0, -float(np.min(diag)))
    eye = np.eye(H.shape[0])
    for mu in [0.0] + [shift + scale * 10.0**e for e in DAMPING_EXPONENTS]:
        try:
            L = np.linalg.cholesky(H + mu * eye if mu else H)
        except np.linalg.LinAlgError:
            continue
        if _well_conditioned(L):
            return Factor(L, mu, scale)
    return Factor(None, float("inf"), scale)


def damped_cholesky_solve(H: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, float]:
    """Solve ``(H + mu I) dx = rhs`` with the smallest tried ``mu >= 0`` that factors well.

    Parameters
    ----------
    H : (d, d) array
        Symmetric; indefinite or singular input is damped (see :func:`damped_cholesky`).
    rhs : (d,) array

    Returns
    -------
    dx : (d,) array
        Finite whenever ``rhs`` is.
    mu : float
        The damping (0.0 for none). ``inf`` means no shift factored: ``dx``
        is then a least-squares solution of ``H dx = rhs`` if that is finite
        and a descent direction, else the scaled gradient step ``rhs / s``.
    """
    factor = damped_cholesky(H)
    if factor.L is not None:
        try:
            dx = triangular_solve(factor.L, triangular_solve(factor.L, rhs), transpose=True)
        except np.linalg.LinAlgError:
            dx = None
        if dx is not None and np.all(np.isfinite(dx)):
            return dx, factor.mu
    if np.all(np.isfinite(H)):
        try:
            dx = np.linalg.lstsq(0.5 * (H + H.T), rhs, rcond=None)[0]
        except np.linalg.LinAlgError:
            dx = None
        if dx is not None and np.all(np.isfinite(dx)) and float(dx @ rhs) > 0.0:
            return dx, float("inf")
    return rhs / factor.scale, float("inf")
