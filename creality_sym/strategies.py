"""Hypothesis strategies for the assumption set of the stated bounds.

The set (see :mod:`creality_sym.audit.instance`): ``||A||_2 <= R``,
``||x||_2, ||y||_2 <= R``, ``R >= 1`` and every parameter of the spec
obeying its rule. Every strategy draws raw arrays and then *builds* a
structured point: the builders (:func:`build_matrix`, :func:`build_point`,
:func:`build_second`, :func:`build_prob`, :func:`build_vector`) are plain
numpy functions shared with the auditor's local search, so structured starts
(rank-one and repeated rows, tied logits, ``x`` along the top singular
vector, one-hot probability vectors, ``R`` at its extremes) are reachable
from both. :func:`instances` draws for any spec (``model="renyi"``).

    >>> from hypothesis import given
    >>> from creality_sym.strategies import instances
    >>> @given(instances(n=(2, 5), d=(1, 3)))
    ... def test_simplex(inst):
    ...     assert abs(inst.f(inst.x).sum() - 1) < 1e-12
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from creality_sym.audit.instance import Instance, Space, project, space_of
from creality_sym.audit.structure import (
    MATRIX_KINDS,
    POINT_KINDS,
    PROB_KINDS,
    SECOND_KINDS,
    VECTOR_KINDS,
    build_matrix,
    build_point,
    build_prob,
    build_second,
    build_vector,
)

__all__ = [
    "MATRIX_KINDS",
    "POINT_KINDS",
    "SECOND_KINDS",
    "PROB_KINDS",
    "build_matrix",
    "build_point",
    "build_second",
    "build_prob",
    "build_vector",
    "VECTOR_KINDS",
    "unit_floats",
    "prob_vectors",
    "positive_vectors",
    "ball_vectors",
    "matrices",
    "shapes",
    "instances",
]

_MATRIX_KIND = st.sampled_from(MATRIX_KINDS)
_POINT_KIND = st.sampled_from(POINT_KINDS)
_SECOND_KIND = st.sampled_from(SECOND_KINDS)
_PROB_KIND = st.sampled_from(PROB_KINDS)
_VECTOR_KIND = st.sampled_from(VECTOR_KINDS)


def unit_floats() -> st.SearchStrategy[float]:
    """Finite float64 values in ``[-1, 1]``."""
    return _UNIT


_UNIT = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False, width=64)
_SCALE = st.one_of(st.just(1.0), st.floats(0.0, 1.0))
_STEP = st.one_of(st.floats(1e-4, 1e-2), st.floats(0.0, 1.0))


@functools.lru_cache(maxsize=256)
def _arrays(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    """Cached array strategies: building strategies is costly, drawing is not."""
    return hnp.arrays(np.float64, shape, elements=_UNIT)


@functools.lru_cache(maxsize=64)
def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


@functools.lru_cache(maxsize=64)
def _floats(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def _draw_matrix(draw: Any, n: int, d: int, R: float) -> np.ndarray:
    G, u, v = draw(_arrays((n, d))), draw(_arrays((n,))), draw(_arrays((d,)))
    kind = draw(_MATRIX_KIND)
    return build_matrix(kind, G, u, v, R, draw(_SCALE))


def _draw_point(draw: Any, d: int, R: float, A: np.ndarray, kinds: Any) -> np.ndarray:
    g = draw(_arrays((d,)))
    return build_point(draw(kinds), g, A, R, draw(_SCALE))


def _draw_prob(draw: Any, n: int) -> np.ndarray:
    g = draw(_arrays((n,)))
    return build_prob(draw(_PROB_KIND), g, draw(_ints(0, n - 1)))


def _check_size(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")


def _check_R(R: float) -> None:
    if not R >= 1.0:
        raise ValueError(f"R must be >= 1; got {R!r}")


@st.composite
def prob_vectors(draw: Any, n: int) -> np.ndarray:
    """Probability vectors ``(n,)``: spread, one-hot, uniform or two-point."""
    _check_size("n", n)
    return _draw_prob(draw, n)


@st.composite
def positive_vectors(draw: Any, n: int, *, lo: float = 1e-3, hi: float = 10.0) -> np.ndarray:
    """Vectors ``(n,)`` with entries in ``[lo, hi]`` (``0 < lo <= hi``)."""
    _check_size("n", n)
    if not 0.0 < lo <= hi:
        raise ValueError(f"lo, hi must satisfy 0 < lo <= hi; got lo={lo}, hi={hi}")
    el = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    return draw(hnp.arrays(np.float64, n, elements=el))


@st.composite
def matrices(draw: Any, n: int, d: int, R: float = 1.0) -> np.ndarray:
    """Matrices ``(n, d)`` with ``||A||_2 <= R``, often structured and on the boundary."""
    _check_size("n", n)
    _check_size("d", d)
    _check_R(R)
    return _draw_matrix(draw, n, d, R)


@st.composite
def ball_vectors(draw: Any, d: int, R: float = 1.0, A: np.ndarray | None = None) -> np.ndarray:
    """Vectors ``(d,)`` with ``||x||_2 <= R``; with ``A``, often along its top singular vector."""
    _check_size("d", d)
    _check_R(R)
    if A is None:
        return _draw_point(draw, d, R, np.zeros((1, d)), st.sampled_from(("random", "zero")))
    return _draw_point(draw, d, R, A, _POINT_KIND)


@st.composite
def shapes(draw: Any, n: tuple[int, int] = (1, 8), d: tuple[int, int] = (1, 6)):
    """``(n, d)`` pairs in the inclusive ranges, small ones first."""
    for name, (lo, hi) in (("n", n), ("d", d)):
        if not 1 <= lo <= hi:
            raise ValueError(f"{name} must be a range (lo, hi) with 1 <= lo <= hi; got {(lo, hi)}")
    return draw(_ints(*n)), draw(_ints(*d))


def _draw_parameters(
    draw: Any, space: Space, n: int, d: int, gamma_max: float, w_max: float
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in space.vectors():
        size = n if p.shape == "n" else d
        if p.rule == "probability":
            out[p.name] = _draw_prob(draw, size)
        else:
            out[p.name] = build_vector(p.rule, draw(_VECTOR_KIND), draw(_arrays((size,))), w_max)
    for name in space.searched:
        lo, hi = space.scalar_range(name, gamma_max)
        value = draw(st.sampled_from((lo, hi, None)))
        out[name] = draw(_floats(lo, hi)) if value is None else value
    return out


@st.composite
def instances(
    draw: Any,
    n: tuple[int, int] = (1, 8),
    d: tuple[int, int] = (1, 6),
    *,
    R_max: float = 5.0,
    gamma_max: float = 4.0,
    w_max: float = 10.0,
    model: Any = None,
    space: Space | None = None,
) -> Instance:
    """Admissible :class:`Instance` objects of a spec, structured toward worst cases.

    ``model``: a generated module or spec name (None: the default spec), or
    ``space`` (a :class:`~creality_sym.audit.instance.Space`: which scalars
    are fixed). ``R`` is 1, ``R_max`` or in between; ``A``, ``x``, ``y`` and
    the parameters come from the builders above (vectors with entries at most
    ``w_max`` in size, the searched scalar in ``[0, gamma_max]``) and are
    projected onto the assumption set.
    """
    _check_R(R_max)
    if not (gamma_max >= 0 and w_max > 0):
        raise ValueError(f"gamma_max must be >= 0 and w_max > 0; got {gamma_max}, {w_max}")
    space = space if space is not None else space_of(model)
    nn, dd = draw(shapes(n, d))
    R = draw(st.sampled_from((1.0, float(R_max), None))) or draw(_floats(1.0, float(R_max)))
    A = _draw_matrix(draw, nn, dd, R)
    x = _draw_point(draw, dd, R, A, _POINT_KIND)
    y = build_second(draw(_SECOND_KIND), draw(_arrays((dd,))), x, A, R, draw(_STEP))
    params = _draw_parameters(draw, space, nn, dd, float(gamma_max), float(w_max))
    return project(A, x, y, params, R, space=space, R_max=R_max, gamma_max=gamma_max, w_max=w_max)
