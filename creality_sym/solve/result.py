"""What :func:`creality_sym.solve.newton` returns: the iterate, its history and why it stopped."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: the ways a solve can end (``NewtonResult.status``)
STATUSES = ("converged", "max-iter", "stagnated", "overflow", "non-finite")


@dataclass
class Iteration:
    """One row of the history: the iterate ``x_k`` and the step taken from it.

    ``step`` is the line-search factor ``t``, ``step_norm`` is ``||x_{k+1} - x_k||``,
    ``seconds`` the wall time of the iteration, ``damping`` the ``mu`` added to
    the Hessian (0 when it was positive definite), ``rows`` the distinct rows
    of ``A`` in the (sampled) Hessian or preconditioner (``n`` in exact mode),
    ``products`` the Hessian-vector products of the step (sketch-PCG) and
    ``error`` the measured spectral error of its preconditioner (NaN if none).
    ``seconds`` splits into ``gradient_seconds`` (the gradient at ``x_k``),
    ``step_seconds`` (the Hessian or preconditioner and the linear solve) and
    ``search_seconds`` (the line search, with the pieces it prepares for the
    next gradient); the rest is bookkeeping.
    """

    iteration: int
    loss: float
    grad_norm: float
    step: float = 0.0
    step_norm: float = 0.0
    seconds: float = 0.0
    damping: float = 0.0
    rows: int = 0
    products: int = 0
    error: float = math.nan
    note: str = ""
    gradient_seconds: float = 0.0
    step_seconds: float = 0.0
    search_seconds: float = 0.0


#: the parts of a solve's wall time that :attr:`NewtonResult.phases` reports
PHASES = ("start", "gradient", "step", "line search")


@dataclass
class NewtonResult:
    """Result of :func:`~creality_sym.solve.newton`: ``x (d,)``, status and ``history``.

    ``status`` is one of :data:`STATUSES` and ``reason`` says it in words
    (with the numbers behind it); ``converged`` is ``status == "converged"``.
    ``variant`` names the step that ran (``"exact"``, ``"paper"`` or
    ``"sketch-pcg"``). ``grad_norm`` is ``||model.gradient(x)||`` recomputed at
    the returned ``x`` by a direct call to the model. ``start_seconds`` is the
    wall time before the first iteration (checking the data, the start's
    logits and pieces).
    """

    x: np.ndarray
    converged: bool
    iterations: int
    reason: str
    method: str
    loss: float
    grad_norm: float
    history: list[Iteration] = field(default_factory=list)
    variant: str = "exact"
    status: str = "converged"
    start_seconds: float = 0.0

    @property
    def seconds(self) -> float:
        """Total wall time of the iterations."""
        return float(sum(row.seconds for row in self.history))

    @property
    def phases(self) -> dict[str, float]:
        """Wall time by part of the solve (:data:`PHASES`), seconds: where the time went."""
        return {
            "start": self.start_seconds,
            "gradient": float(sum(row.gradient_seconds for row in self.history)),
            "step": float(sum(row.step_seconds for row in self.history)),
            "line search": float(sum(row.search_seconds for row in self.history)),
        }

    @property
    def products(self) -> int:
        """Hessian-vector products over the whole solve."""
        return int(sum(row.products for row in self.history))

    def history_table(self) -> dict[str, np.ndarray]:
        """The history as columns, one array per :class:`Iteration` field except ``note``."""
        names = [name for name in Iteration.__dataclass_fields__ if name != "note"]
        return {name: np.array([getattr(row, name) for row in self.history]) for name in names}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (``x`` as a list; NaN and inf as strings)."""
        return {
            "method": self.method,
            "variant": self.variant,
            "status": self.status,
            "converged": self.converged,
            "iterations": self.iterations,
            "reason": self.reason,
            "loss": _json_float(self.loss),
            "grad_norm": _json_float(self.grad_norm),
            "seconds": self.seconds,
            "phases": self.phases,
            "products": self.products,
            "x": [_json_float(v) for v in self.x.tolist()],
            "history": [
                {k: _json_float(v) if isinstance(v, float) else v for k, v in asdict(row).items()}
                for row in self.history
            ],
        }


def _json_float(value: float) -> float | str:
    """``value`` itself when finite, else ``"nan"``, ``"inf"`` or ``"-inf"`` (valid JSON)."""
    return value if math.isfinite(value) else str(value)
