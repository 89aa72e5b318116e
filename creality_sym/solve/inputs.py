"""Argument checks of the solver: real arrays and scalars, named in every error.

numpy converts too eagerly for a solver's inputs: ``np.asarray(z, dtype=float)``
drops the imaginary part of a complex array (with a warning), and
``float("0.5")`` turns a string into a number. Here a complex, string or
non-numeric argument is a ``ValueError`` naming the argument, and data so
large that the solver's products would overflow float64 are refused up front
(naming the argument) instead of turning into inf/NaN later.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

#: the largest magnitude the solver accepts: its products (``A x``, ``A^T B A``,
#: squares in the loss) stay far below the float64 overflow threshold
_MAX = float(np.finfo(float).max)


def real_array(name: str, value: Any, *, ndim: int | None = None) -> np.ndarray:
    """``value`` as a float64 array; ``ValueError`` naming ``name`` when that would lose data.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : array_like
        Real numbers (bool, integer or floating dtype). Complex, string and
        object input is refused.
    ndim : int, optional
        Required number of dimensions.

    Returns
    -------
    numpy.ndarray
        ``value`` converted to float64 (a view when it already is).
    """
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a real array; got a string {value!r:.40}")
    try:
        a = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be a real array; got {type(value).__name__}: {exc}"
        ) from None
    if a.dtype.kind == "c":
        raise ValueError(
            f"{name} must be real; got complex dtype {a.dtype} (pass .real explicitly)"
        )
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real array; got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array; got shape {a.shape}")
    return a.astype(np.float64, copy=False)


def real_scalar(name: str, value: Any) -> float:
    """``value`` as a float; strings, complex numbers and arrays of size > 1 are refused.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : real number or 0-d real array

    Returns
    -------
    float
    """
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a real number; got the string {value!r:.40}")
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise ValueError(f"{name} must be a real number; got an array of shape {value.shape}")
        value = value[()]
    if isinstance(value, (complex, np.complexfloating)):
        raise ValueError(f"{name} must be a real number; got complex {value!r}")
    if not isinstance(value, (numbers.Real, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number; got {type(value).__name__}")
    return float(value)


def option(name: str, value: Any, *, rule: str, integer: bool = False) -> float:
    """A solver option checked against ``rule``: ``"positive"``, ``"nonnegative"`` or ``"(0, 1)"``.

    Returns the value as a float (an exact integer when ``integer``); the
    ``ValueError`` names ``name`` and the rule.
    """
    if integer and isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    v = real_scalar(name, value)
    if integer and (not math.isfinite(v) or v != int(v)):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    ok = {
        "positive": v > 0.0,
        "nonnegative": v >= 0.0,
        "(0, 1)": 0.0 < v < 1.0,
    }[rule]
    if not ok or math.isnan(v):
        raise ValueError(
            f"{name} must be {rule if rule != '(0, 1)' else 'in (0, 1)'}; got {value!r}"
        )
    return v


def _max_abs(a: np.ndarray) -> float:
    """``max |a|`` over the finite entries, in cache-sized blocks (no ``|a|`` temporary).

    Non-finite entries are left to the model's own validation (which names them).
    """
    flat = a.reshape(-1)
    out = 0.0
    step = 1 << 16
    for i in range(0, flat.size, step):
        block = flat[i : i + step]
        hi, lo = float(block.max()), float(block.min())
        if not (math.isfinite(hi) and math.isfinite(lo)):
            block = np.abs(block[np.isfinite(block)])
            hi, lo = (float(block.max()), 0.0) if block.size else (0.0, 0.0)
        out = max(out, hi, -lo)
    return out


def _frobenius_squared(A: np.ndarray) -> float:
    """``||A||_F^2`` in one pass (BLAS dot of the flat array; row blocks if not contiguous)."""
    if A.flags.c_contiguous:
        flat = A.reshape(-1)
        return float(np.dot(flat, flat))
    total = 0.0
    step = max(1, (1 << 22) // max(1, A.shape[1]))
    for i in range(0, A.shape[0], step):
        block = np.ascontiguousarray(A[i : i + step]).reshape(-1)
        total += float(np.dot(block, block))
    return total


def check_magnitudes(A: np.ndarray, x0: np.ndarray, params: dict[str, Any]) -> None:
    """Refuse data whose products would overflow float64, naming the argument.

    The solver forms ``A x`` (``|a_i . x| <= ||A||_F ||x||``), ``A^T B A``
    (entries at most ``max |B| ||A||_F^2``) and squares of the vector
    parameters (e.g. ``(w z)^2``). Each is bounded here; ``ValueError`` names
    the argument whose size makes a bound exceed the float64 range (with a
    margin of 1e-8 of it). Non-finite values are left to the model's own
    validation, which names them.

    Parameters
    ----------
    A : (n, d) float64 array
    x0 : (d,) float64 array
    params : dict
        The model's parameters (vectors ``(n,)`` or ``(d,)``, and scalars).
    """
    n, d = A.shape
    limit = 1e-8 * _MAX
    with np.errstate(over="ignore", invalid="ignore"):
        frobenius2 = _frobenius_squared(A)
    if math.isnan(frobenius2) or (math.isinf(frobenius2) and not np.all(np.isfinite(A))):
        return  # NaN or inf in A: the model's validation names it
    if frobenius2 > limit:
        a_max = _max_abs(A)
        raise ValueError(
            f"A has entries up to {a_max:.3g} (||A||_F^2 = {frobenius2:.3g}): the Hessian "
            "A^T B A would overflow float64; rescale A"
        )
    x_max = _max_abs(x0)
    x_norm = math.sqrt(float(np.dot(x0, x0))) if math.isfinite(x_max) else 0.0
    if math.sqrt(frobenius2) * x_norm > math.sqrt(limit):
        raise ValueError(
            f"x0 has entries up to {x_max:.3g}: the logits A @ x0 (||A||_F = "
            f"{math.sqrt(frobenius2):.3g}) would be too large for float64 squares; "
            "start closer to 0"
        )
    for name, value in params.items():
        if isinstance(value, np.ndarray):
            size = _max_abs(value)
        else:
            size = abs(float(value)) if math.isfinite(float(value)) else 0.0
        if size * size * max(n, d) > limit:
            raise ValueError(
                f"{name} has magnitude up to {size:.3g}: its squares in the loss and Hessian "
                "would overflow float64; rescale it"
            )
