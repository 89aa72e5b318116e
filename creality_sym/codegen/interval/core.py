"""What both ball backends share: the exception, the unary function names, number checks."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Undecided", "UNARY", "NUMPY_ALIASES", "plain", "check_number"]


class Undecided(ArithmeticError):
    """A question about balls that interval arithmetic cannot answer with certainty."""


#: unary functions every backend offers as methods (numpy's ufunc names are aliases)
UNARY = ("exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "atan", "sinh", "cosh")
UNARY += ("tanh", "asin", "acos", "asinh", "acosh", "atanh")
NUMPY_ALIASES = {"arctan": "atan", "arcsin": "asin", "arccos": "acos", "arcsinh": "asinh"}
NUMPY_ALIASES |= {"arccosh": "acosh", "arctanh": "atanh"}


def plain(value: Any) -> Any:
    """numpy scalars as Python numbers (exact); anything else unchanged."""
    if isinstance(value, np.generic) and not isinstance(value, np.object_):
        return value.item()
    return value


def check_number(value: Any) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float)):
        raise TypeError(f"cannot make a ball of {type(value).__name__} {value!r:.40}")
