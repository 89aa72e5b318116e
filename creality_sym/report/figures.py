"""Figures of the report (matplotlib, Agg backend) and formulas as PNG images.

Every function takes plain data (lists, dicts, numpy arrays) and writes one
PNG file; the data itself is written beside it by :mod:`creality_sym.report.page`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import mathtext  # noqa: E402
from matplotlib.colors import SymLogNorm  # noqa: E402

#: dots per inch of every written image
DPI = 110

#: colours of the solver modes and the three gamma modes
COLORS = {
    "exact": "#1f77b4",
    "sampled": "#d62728",
    "precise": "#2ca02c",
    "balanced": "#ff7f0e",
    "creative": "#9467bd",
    "entropy": "#17becf",
    "distance": "#8c564b",
}
MODE_MARKERS = {"precise": "s", "balanced": "D", "creative": "^"}
#: where each mode's label sits relative to its point: (dx, dy) in points, alignment
LABEL_OFFSETS = {
    "precise": (12, 4, "left"),
    "balanced": (12, -14, "left"),
    "creative": (-12, -18, "right"),
}


def mathtext_source(latex: str) -> str:
    """``latex`` rewritten into the subset matplotlib's mathtext parses."""
    text = re.sub(r"\\[td]?frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", latex)
    return re.sub(r"\\[td]frac\b", r"\\frac", text)


def render_formula(latex: str, path: Path, *, dpi: int = 2 * DPI) -> tuple[int, int] | None:
    """Render one display formula to ``path`` (PNG) at ``dpi``.

    Returns the image's ``(width, height)`` in pixels, or None when mathtext
    cannot parse the formula (nothing is written then).
    """
    try:
        mathtext.math_to_image(f"${mathtext_source(latex)}$", str(path), dpi=dpi, format="png")
    except (ValueError, RuntimeError):
        Path(path).unlink(missing_ok=True)
        return None
    height, width = plt.imread(str(path)).shape[:2]
    return int(width), int(height)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def convergence_plot(histories: Mapping[str, Mapping[str, Sequence[float]]], path: Path) -> Path:
    """Gradient norm per iteration (log scale) and against wall time, one line per solver mode.

    ``histories`` maps a mode (``"exact"``, ``"sampled"``) to columns
    ``iteration``, ``grad_norm`` and ``seconds`` (wall time at which ``x_k`` was reached).
    """
    fig, (ax_it, ax_t) = plt.subplots(1, 2, figsize=(10, 4))
    for mode, h in histories.items():
        style = {"color": COLORS.get(mode), "marker": "o", "markersize": 4, "label": mode}
        g = np.maximum(np.asarray(h["grad_norm"], dtype=float), 1e-300)
        ax_it.semilogy(h["iteration"], g, **style)
        ax_t.semilogy(np.asarray(h["seconds"], dtype=float) * 1e3, g, **style)
    ax_it.set_xlabel("Newton iteration")
    ax_t.set_xlabel("wall time (ms)")
    for ax in (ax_it, ax_t):
        ax.set_ylabel(r"$\|\nabla L(x_k)\|_2$")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    ax_it.set_title("Newton convergence: exact vs sampled Hessian")
    ax_t.set_title("the same, against time")
    return _save(fig, path)


def _pieces(m: int, jumps: Sequence[int]) -> list[slice]:
    """Index ranges of the curve between its jumps (a jump ``i`` cuts between i and i + 1)."""
    cuts = [0, *sorted(i + 1 for i in jumps), m]
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]


def tradeoff_plot(
    distance: Sequence[float],
    entropy: Sequence[float],
    gammas: Sequence[float],
    modes: Mapping[str, int],
    path: Path,
    *,
    max_entropy: float | None = None,
    jumps: Sequence[int] = (),
    alternatives: Sequence[tuple[float, float, float]] = (),
    axes: tuple[str, str] = (r"reality distance $\|f(x^*) - b\|_2$", r"entropy $H(f(x^*))$"),
    tradeoff: str = "gamma",
) -> Path:
    """The trade-off curve: creativity (entropy) against reality (distance) as gamma sweeps.

    The curve is drawn in pieces: consecutive points are joined except across
    a jump (``jumps``: index ``i`` for a jump between points ``i`` and
    ``i + 1``), which is drawn as a dotted connector and labelled.
    ``alternatives`` are other local minima, ``(distance, entropy, gamma)``,
    drawn hollow. ``modes`` maps ``"precise"``, ``"balanced"``, ``"creative"``
    to an index; ``max_entropy`` (``log n``) is a reference line.
    """
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    dist = np.asarray(distance, dtype=float)
    ent = np.asarray(entropy, dtype=float)
    g = np.asarray(gammas, dtype=float)
    for k, piece in enumerate(_pieces(len(dist), jumps)):
        ax.plot(
            dist[piece],
            ent[piece],
            color="0.55",
            zorder=1,
            label=f"x*({tradeoff}), joined" if k == 0 else None,
        )
    for n_jump, i in enumerate(jumps):
        ax.plot(
            dist[i : i + 2],
            ent[i : i + 2],
            color=COLORS["sampled"],
            linestyle=":",
            linewidth=1.4,
            zorder=1,
            label="jump (not joined)" if n_jump == 0 else None,
        )
        ax.annotate(
            f"jump at {tradeoff} ≈ {math.sqrt(max(g[i], 1e-300) * g[i + 1]):.3g}",
            ((dist[i] + dist[i + 1]) / 2, (ent[i] + ent[i + 1]) / 2),
            textcoords="offset points",
            xytext=(12, -16),
            fontsize="small",
            color=COLORS["sampled"],
        )
    positive = g[g > 0]
    norm = SymLogNorm(
        linthresh=float(positive.min()) if positive.size else 1.0,
        vmin=float(g.min()),
        vmax=float(g.max()),
    )
    pts = ax.scatter(dist, ent, c=g, cmap="viridis", norm=norm, zorder=2, s=25)
    fig.colorbar(pts, ax=ax, label=f"{tradeoff} (symlog scale)")
    if len(alternatives):
        alt = np.asarray(alternatives, dtype=float)
        ax.scatter(
            alt[:, 0],
            alt[:, 1],
            s=40,
            facecolor="none",
            edgecolor="k",
            linewidth=1.0,
            zorder=2,
            label="other local minimum",
        )
    for name, i in modes.items():
        ax.scatter(
            dist[i],
            ent[i],
            s=140,
            marker=MODE_MARKERS[name],
            facecolor="none",
            edgecolor=COLORS[name],
            linewidth=2.2,
            zorder=3,
            label=f"{name} ({tradeoff} = {gammas[i]:.3g})",
        )
        dx, dy, ha = LABEL_OFFSETS[name]
        ax.annotate(
            name,
            (dist[i], ent[i]),
            textcoords="offset points",
            xytext=(dx, dy),
            ha=ha,
            color=COLORS[name],
            fontweight="bold",
        )
    if max_entropy is not None:
        ax.axhline(
            max_entropy, color="0.4", linestyle=":", linewidth=1, label=r"$\log n$ (uniform)"
        )
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(f"Creativity vs reality as {tradeoff} sweeps (points placed by arc length)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return _save(fig, path)


def tightness_plot(
    ids: Sequence[str],
    ratios: Sequence[float | None],
    verdicts: Sequence[str],
    labels: Sequence[str],
    path: Path,
) -> Path:
    """Worst ``observed / bound`` per lemma (1 = tight, > 1 = violated), each bar labelled.

    A lemma without a ratio (``None``: a difference bound, an infinite ratio)
    gets its label only. ``verdicts`` colour the bars and labels (violated in red).
    """
    r = np.array([np.nan if v is None else float(v) for v in ratios])
    shown = np.isfinite(r) & (r > 0)
    fig, ax = plt.subplots(figsize=(11, 0.38 * len(ids) + 1.4))
    bad = [v.lower().startswith("viol") for v in verdicts]
    colors = [COLORS["sampled"] if b else COLORS["exact"] for b in bad]
    y = np.arange(len(ids))
    lo = float(np.min(r[shown])) / 10 if np.any(shown) else 1e-3
    hi = max(10.0, float(np.max(r[shown])) * 10 if np.any(shown) else 10.0)
    ax.barh(y, np.where(shown, r, np.nan), color=colors)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    for yi, text, b in zip(y, labels, bad, strict=True):
        ax.text(
            1.02,
            yi,
            f"{'VIOLATED: ' if b else ''}{text}",
            va="center",
            fontsize="small",
            color=COLORS["sampled"] if b else "0.2",
            transform=ax.get_yaxis_transform(),
        )
    ax.set_yticks(y, ids)
    ax.invert_yaxis()
    ax.axvline(1.0, color="k", linewidth=1)
    ax.set_xlabel("worst observed / bound (1 = tight; right of the line = violated)")
    ax.set_title("Audit: how close each bound came to failing")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return _save(fig, path)
