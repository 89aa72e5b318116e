"""Benchmark instances of the default model: realistic scales, two curvature regimes.

``A = G / sqrt(d)`` with ``G`` i.i.d. ``N(0, 1)`` and ``x ~ N(0, I_d)``, so the
logits ``A x`` are of order 1 (the softmax is neither uniform nor one-hot);
``b`` is a random probability vector, ``gamma = 0.5``.

Two cases differ in the regularizer weight ``w`` and hence in the sign of the
diagonal ``delta`` of the z-Hessian ``B = diag(delta) + low rank``:

- ``typical``: ``w ~ U(1/sqrt(n), 1)``, so ``w_i^2`` dominates and
  ``delta > 0`` everywhere;
- ``negative``: ``w ~ U(0.01, 0.1) / sqrt(n)``, so ``w_i^2 << f_i`` and the
  (nonconvex) creativity curvature makes about half of ``delta`` negative,
  the costliest mix for the sign-split path of the generated ``hessian``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CASES: tuple[str, ...] = ("typical", "negative")


@dataclass(frozen=True)
class BenchInstance:
    """Data of one benchmark run: ``x (d,)``, ``A (n, d)``, ``b (n,)``, ``w (n,)``, ``gamma``."""

    case: str
    x: np.ndarray
    A: np.ndarray
    b: np.ndarray
    w: np.ndarray
    gamma: float

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, d)``."""
        n, d = self.A.shape
        return int(n), int(d)

    @property
    def args(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
        """``(x, A, b, w, gamma)``: the positional arguments of the generated functions."""
        return self.x, self.A, self.b, self.w, self.gamma


def bench_instance(n: int, d: int, *, case: str = "typical", seed: int = 0) -> BenchInstance:
    """A random instance of size ``(n, d)`` for ``case`` (see the module docstring)."""
    if case not in CASES:
        raise ValueError(f"case must be one of {CASES}; got {case!r}")
    if n < 1 or d < 1:
        raise ValueError(f"size must have n >= 1 and d >= 1; got {n}x{d}")
    rng = np.random.default_rng([seed, n, d])
    A = rng.standard_normal((n, d)) / np.sqrt(d)
    x = rng.standard_normal(d)
    b = rng.random(n)
    b /= b.sum()
    if case == "typical":
        w = rng.uniform(1.0 / np.sqrt(n), 1.0, n)
    else:
        w = rng.uniform(0.01, 0.1, n) / np.sqrt(n)
    return BenchInstance(case=case, x=x, A=A, b=b, w=w, gamma=0.5)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"20000x400,2000x50"`` -> ``[(20000, 400), (2000, 50)]``; ``ValueError`` names the item."""
    sizes = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        n_text, sep, d_text = item.lower().partition("x")
        try:
            if not sep:
                raise ValueError
            n, d = int(n_text), int(d_text)
        except ValueError:
            raise ValueError(
                f"--sizes must be NxD items separated by commas; got {item!r}"
            ) from None
        if n < 1 or d < 1:
            raise ValueError(f"--sizes needs n >= 1 and d >= 1; got {item!r}")
        sizes.append((n, d))
    if not sizes:
        raise ValueError(f"--sizes must name at least one NxD size; got {text!r}")
    return sizes
