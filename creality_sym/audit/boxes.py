"""Boxes over the assumption set of one bound, for a proof by branch and bound.

For fixed ``n`` and ``d`` the assumption set is parametrised by normalised
coordinates, so that the norm constraints do not depend on ``R``:

* ``full`` domain: ``A = R Â``, ``x = R x̂``, ``y = R ŷ`` with every entry of
  ``Â, x̂, ŷ`` in ``[-1, 1]`` and ``||Â||_2, ||x̂||_2, ||ŷ||_2 <= 1``;
* ``logit`` domain, for bounds that depend on ``x`` only through ``z = A x``:
  ``z = R^2 ζ`` with ``ζ`` in ``[-1, 1]^n``, ``||ζ||_2 <= 1``. The set of such
  ``z`` is exactly ``{A x : ||A||_2 <= R, ||x||_2 <= R}`` (take
  ``A = R ζ e_1^T``, ``x = R e_1``), so nothing is lost;

and in both ``1 <= R <= R_max``, every vector parameter by its rule (a
probability vector by its first ``n - 1`` entries in ``[0, 1]`` with sum at
most 1, the last one ``1 - sum``; positive and nonnegative ones in
``[0, w_max]``, the closure of ``(0, w_max]``; real ones in ``[-w_max, w_max]``),
the searched scalar in its range, fixed scalars at their values. A box that
meets the set only partly is enclosed whole: a proof over it is a proof over
its part of the set (a superset), and a counterexample is only ever taken at
an admissible point (then certified by :mod:`creality_sym.audit.certify`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from creality_sym.audit import enclose
from creality_sym.audit.instance import Instance, Space, project
from creality_sym.audit.interval import IntervalInstance, LogitInstance
from creality_sym.codegen.interval import IntervalModel
from creality_sym.codegen.interval.balls import Undecided, ball, interval

__all__ = ["Var", "Domain", "MODES"]

MODES = ("logit", "full")


@dataclass(frozen=True)
class Var:
    """One coordinate of the box: ``group`` (``R``, ``zeta``, ``Ahat``, ``xhat``, ``yhat``
    or a parameter name), its ``index`` in the group, its root range."""

    group: str
    index: tuple[int, ...]
    lo: float
    hi: float

    @property
    def name(self) -> str:
        return self.group + ("[" + ",".join(map(str, self.index)) + "]" if self.index else "")


@dataclass
class Domain:
    """The normalised parametrisation of one bound's assumption set at fixed ``n``, ``d``."""

    mode: str
    n: int
    d: int
    R_max: float
    space: Space
    interval: IntervalModel
    w_max: float = 10.0
    gamma_max: float = 4.0
    vars: list[Var] = field(default_factory=list)

    @classmethod
    def make(
        cls,
        mode: str,
        n: int,
        d: int,
        R_max: float,
        space: Space,
        imodel: IntervalModel,
        *,
        w_max: float,
        gamma_max: float,
    ) -> Domain:
        dom = cls(mode, n, d, R_max, space, imodel, w_max, gamma_max)
        out = [Var("R", (), 1.0, float(R_max))]
        if mode == "logit":
            out += [Var("zeta", (j,), -1.0, 1.0) for j in range(n)]
        else:
            out += [Var("Ahat", (i, j), -1.0, 1.0) for i in range(n) for j in range(d)]
            out += [Var("xhat", (j,), -1.0, 1.0) for j in range(d)]
            out += [Var("yhat", (j,), -1.0, 1.0) for j in range(d)]
        for p in space.parameters():
            size = n if p.shape == "n" else d
            if p.kind == "vector":
                if p.rule == "probability":
                    out += [Var(p.name, (j,), 0.0, 1.0) for j in range(size - 1)]
                else:
                    lo = -w_max if p.rule == "real" else 0.0
                    out += [Var(p.name, (j,), lo, w_max) for j in range(size)]
            elif p.name in space.searched:
                lo, hi = space.scalar_range(p.name, gamma_max)
                out.append(Var(p.name, (), lo, hi))
        dom.vars = out
        return dom

    # ------------------------------------------------------------------ boxes
    def root(self) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.array([v.lo for v in self.vars], dtype=np.float64),
            np.array([v.hi for v in self.vars], dtype=np.float64),
        )

    def widths(self) -> np.ndarray:
        """Root widths (1 for a degenerate coordinate, which is never split)."""
        lo, hi = self.root()
        w = hi - lo
        return np.where(w > 0, w, 1.0)

    def groups_of(self, touched: set[str]) -> set[str]:
        """The box groups a set of touched instance names depends on."""
        groups = set()
        for name in touched:
            if name in ("z", "A", "x", "y"):
                groups.add("R")
                groups.add({"z": "zeta", "A": "Ahat", "x": "xhat", "y": "yhat"}[name])
            else:
                groups.add(name)
        if self.mode == "logit" and "zeta" in groups:
            groups.discard("Ahat")
        return groups

    def describe(self) -> str:
        """The covered set in words."""
        parts = [f"n={self.n}", f"d={self.d}", f"1 <= R <= {self.R_max:g}"]
        if self.mode == "logit":
            parts.append("z = A x over all ||z||_2 <= R^2 (logit domain)")
        else:
            parts.append("||A||_2, ||x||_2, ||y||_2 <= R (full domain)")
        for p in self.space.parameters():
            if p.kind == "vector":
                parts.append(
                    {
                        "probability": f"{p.name} in the simplex",
                        "positive": f"0 < {p.name} <= {self.w_max:g}",
                        "nonnegative": f"0 <= {p.name} <= {self.w_max:g}",
                    }.get(p.rule, f"|{p.name}| <= {self.w_max:g}")
                )
            elif p.name in self.space.searched:
                lo, hi = self.space.scalar_range(p.name, self.gamma_max)
                parts.append(f"{lo:g} <= {p.name} <= {hi:g}")
            else:
                parts.append(f"{p.name} = {self.space.fixed[p.name]:g}")
        return ", ".join(parts)

    def _group(self, lo: np.ndarray, hi: np.ndarray, group: str, shape: tuple[int, ...]) -> Any:
        out = np.empty(shape, dtype=object)
        for k, v in enumerate(self.vars):
            if v.group == group:
                out[v.index] = interval(lo[k], hi[k])
        return out

    def _params(self, lo: np.ndarray, hi: np.ndarray) -> dict[str, Any]:
        params: dict[str, Any] = {}
        index = {v.group: k for k, v in enumerate(self.vars) if not v.index}
        for p in self.space.parameters():
            size = self.n if p.shape == "n" else self.d
            if p.kind == "vector":
                if p.rule == "probability":
                    head = self._group(lo, hi, p.name, (size - 1,))
                    rest = ball(1) - enclose.ball_sum(head)
                    last = rest.bmax(0).bmin(1)  # the same value wherever the point is admissible
                    params[p.name] = np.array([*head, last], dtype=object)
                else:
                    params[p.name] = self._group(lo, hi, p.name, (size,))
            elif p.name in index:
                k = index[p.name]
                params[p.name] = interval(lo[k], hi[k])
            else:
                params[p.name] = ball(float(self.space.fixed[p.name]))
        return params

    def instance(self, lo: np.ndarray, hi: np.ndarray) -> IntervalInstance | LogitInstance:
        """Balls enclosing every point of the box ``[lo, hi]``."""
        R = interval(lo[0], hi[0])
        params = self._params(lo, hi)
        if self.mode == "logit":
            zbox = self._group(lo, hi, "zeta", (self.n,)) * (R * R)
            return LogitInstance(
                zbox=zbox,
                params=params,
                R=R,
                d=self.d,
                interval=self.interval,
                model=self.space.model,
            )
        return IntervalInstance(
            A=self._group(lo, hi, "Ahat", (self.n, self.d)) * R,
            x=self._group(lo, hi, "xhat", (self.d,)) * R,
            y=self._group(lo, hi, "yhat", (self.d,)) * R,
            params=params,
            model=self.space.model,
            R=R,
            interval=self.interval,
        )

    def infeasible(self, lo: np.ndarray, hi: np.ndarray) -> bool:
        """Whether the box certainly misses the assumption set."""

        def outside(group: str, shape: tuple[int, ...], matrix: bool = False) -> bool:
            if not any(v.group == group for v in self.vars):
                return False
            M = self._group(lo, hi, group, shape)
            norm = enclose.spectral_norm(M) if matrix else enclose.vector_norm(M)
            try:
                return bool(norm > 1)
            except Undecided:
                return False

        try:
            if self.mode == "logit":
                if outside("zeta", (self.n,)):
                    return True
            else:
                if outside("xhat", (self.d,)) or outside("yhat", (self.d,)):
                    return True
                if outside("Ahat", (self.n, self.d), matrix=True):
                    return True
        except Undecided:
            return False
        for p in self.space.parameters():
            if p.kind == "vector" and p.rule == "probability":
                total = sum(lo[k] for k, v in enumerate(self.vars) if v.group == p.name)
                if total > 1.0 + 1e-12 * len(self.vars):
                    return True
        return False

    def point(self, lo: np.ndarray, hi: np.ndarray) -> Instance:
        """A float instance of the assumption set near the middle of the box."""
        mid = 0.5 * (lo + hi)
        R = float(min(max(mid[0], 1.0), self.R_max))

        def group(name: str, shape: tuple[int, ...]) -> np.ndarray:
            out = np.zeros(shape)
            for k, v in enumerate(self.vars):
                if v.group == name:
                    out[v.index] = mid[k]
            return out

        if self.mode == "logit":
            zeta = group("zeta", (self.n,))
            norm = float(np.linalg.norm(zeta))
            zeta = zeta / norm if norm > 1.0 else zeta
            A = np.zeros((self.n, self.d))
            A[:, 0] = R * zeta
            x = np.zeros(self.d)
            x[0] = R
            y = x.copy()
        else:
            A = R * group("Ahat", (self.n, self.d))
            x = R * group("xhat", (self.d,))
            y = R * group("yhat", (self.d,))
        params: dict[str, Any] = {}
        index = {v.group: k for k, v in enumerate(self.vars) if not v.index}
        for p in self.space.parameters():
            size = self.n if p.shape == "n" else self.d
            if p.kind == "vector":
                v = group(p.name, (size,))
                if p.rule == "probability":
                    v[-1] = max(1.0 - float(np.sum(v[:-1])), 0.0)
                elif p.rule == "positive":
                    v = np.maximum(v, 1e-6)
                params[p.name] = v
            elif p.name in index:
                params[p.name] = float(mid[index[p.name]])
        return project(
            A,
            x,
            y,
            params,
            R,
            space=self.space,
            R_max=self.R_max,
            gamma_max=self.gamma_max,
            w_max=self.w_max,
        )


def volume(lo: np.ndarray, hi: np.ndarray, widths: np.ndarray) -> float:
    """The box's volume as a fraction of the root box."""
    return float(np.prod(np.where(widths > 0, (hi - lo) / widths, 1.0)))


def split(
    lo: np.ndarray, hi: np.ndarray, axis: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The two halves of the box along ``axis``."""
    m = 0.5 * (lo[axis] + hi[axis])
    left_hi, right_lo = hi.copy(), lo.copy()
    left_hi[axis] = m
    right_lo[axis] = m
    return (lo.copy(), left_hi), (right_lo, hi.copy())


def choose_axis(
    lo: np.ndarray, hi: np.ndarray, widths: np.ndarray, active: np.ndarray
) -> int | None:
    """The active coordinate with the largest relative width (None: nothing left to split)."""
    rel = np.where(active, (hi - lo) / widths, -1.0)
    k = int(np.argmax(rel))
    return k if rel[k] > 1e-12 and math.isfinite(rel[k]) else None
