"""Benchmark instances of any spec: realistic scales, two curvature regimes.

``A = G / sqrt(d)`` with ``G`` i.i.d. ``N(0, 1)`` and ``x ~ N(0, I_d)``, so the
logits ``A x`` are of order 1 (the softmax is neither uniform nor one-hot);
vector parameters are drawn by their rules
(:meth:`creality_sym.instance.Instance.random`); the trade-off weight is 0.5
and other scalars take ``--param``, the spec's default or a stated choice.

Two cases differ in the positive per-logit weights (``w`` of the
regularizer) and hence in the sign of the diagonal ``delta`` of the
z-Hessian ``B = diag(delta) + low rank``:

- ``typical``: ``w ~ U(1/sqrt(n), 1)``, so ``w_i^2`` dominates and
  ``delta > 0`` everywhere (for the default spec);
- ``negative``: ``w ~ U(0.01, 0.1) / sqrt(n)``, so ``w_i^2 << f_i`` and the
  (nonconvex) creativity curvature makes about half of ``delta`` negative,
  the costliest mix for the sign-split path of the generated ``hessian``.

A spec without positive per-logit weights has one regime only: both cases
then draw the same instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from creality_sym.instance import Instance, load_model, resolve_scalars

CASES: tuple[str, ...] = ("typical", "negative")

#: the trade-off weight of every benchmark instance (unless --param sets it)
BENCH_TRADEOFF = 0.5


def weights(model: Any) -> list[str]:
    """Names of the positive per-logit vectors, the weights the cases scale."""
    return [
        p.name
        for p in model.PARAMETERS
        if p.kind == "vector" and p.shape == "n" and p.rule == "positive"
    ]


def bench_instance(
    n: int,
    d: int,
    *,
    case: str = "typical",
    seed: int = 0,
    model: Any = None,
    scalars: Mapping[str, float] | None = None,
) -> Instance:
    """A random instance of size ``(n, d)`` for ``case`` (see the module docstring).

    ``model``: a generated module or spec name (None: the default spec);
    ``scalars``: values by name (the trade-off weight defaults to
    :data:`BENCH_TRADEOFF`).
    """
    if case not in CASES:
        raise ValueError(f"case must be one of {CASES}; got {case!r}")
    if n < 1 or d < 1:
        raise ValueError(f"size must have n >= 1 and d >= 1; got {n}x{d}")
    model = load_model(model)
    values, _ = resolve_scalars(model, scalars, tradeoff=BENCH_TRADEOFF)
    rng = np.random.default_rng([seed, n, d])
    inst = Instance.random(model, n, d, rng, scalars=values)
    scale = {"typical": (1.0 / np.sqrt(n), 1.0), "negative": (0.01 / np.sqrt(n), 0.1 / np.sqrt(n))}
    lo, hi = scale[case]
    draws = {name: rng.uniform(lo, hi, n) for name in weights(model)}
    return inst.replace(**draws)


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
