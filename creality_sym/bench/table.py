"""Text tables and the JSON document of a benchmark run."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from creality_sym.process import allocator_setting

#: the generated Hessian must cost at most this many GEMM-form floors ...
HESSIAN_MAX_X_GEMM = 1.0
#: ... or this many for a spec whose global sums add a low-rank part (LOW_RANK_COLUMNS > 0)
HESSIAN_MAX_X_GEMM_LOW_RANK = 1.1
#: ... and, validation on, this many ``A.T @ A`` (SYRK) floors where d >= SYRK_WIDE_D ...
HESSIAN_MAX_X_SYRK_WIDE = 1.5
#: ... or this many for narrower A (memory passes weigh more against n d^2 flops)
HESSIAN_MAX_X_SYRK_NARROW = 1.8
SYRK_WIDE_D = 256
#: ... and allocate at most this many copies of A at its peak
HESSIAN_MAX_COPIES = 1.2
#: the validated gradient must cost at most this many pairs of mat-vecs (A @ x, A.T @ g)
GRADIENT_MAX_X_MATVEC = 1.25
#: ... at sizes with at least this many entries in A (below it, call overhead dominates)
TARGET_MIN_ENTRIES = 10**6

LEGEND = """\
columns: median and best wall time of the timed calls; x GEMM and x 2 mv: the median over
the median of (A*delta[:,None]).T @ A and of A @ x plus A.T @ g (a peer: over the GEMM-form
floor timed again beside it); peak/A: peak numpy allocation during one call / A.nbytes."""


def _ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{1e3 * seconds:.2f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"


def format_result(result: dict[str, Any]) -> str:
    """One size/case of :func:`creality_sym.bench.suite.bench_one` as a text table."""
    title = (
        f"{result['spec']}  {result['n']}x{result['d']}  case {result['case']}  "
        f"(delta < 0 on {100 * result['negative_fraction']:.1f}% of rows; "
        f"{result['low_rank_columns']} low-rank columns)"
    )
    head = (
        f"  {'':<32} {'median ms':>10} {'best ms':>10} {'x GEMM':>7} {'x 2 mv':>7} "
        f"{'peak/A':>7} {'samples':>7}  note"
    )
    lines = [title, head, "  " + "-" * (len(head) - 2)]
    for row in result["rows"]:
        note = row["note"]
        if row["rel_err"] is not None:
            note = f"|dH|/|H| {row['rel_err']:.1e}; set-up {row['setup_s'] or 0.0:.2f} s; {note}"
        lines.append(
            f"  {row['name']:<32} {_ms(row['median_s']):>10} {_ms(row['best_s']):>10} "
            f"{_ratio(row['x_gemm']):>7} {_ratio(row['x_matvec']):>7} "
            f"{_ratio(row['peak_copies_of_A']):>7} {row['samples']:>7}  {note}".rstrip()
        )
    for note in result["notes"]:
        lines.append(f"  note: {note}")
    lines.append("  " + headline(result))
    return "\n".join(lines)


def target(result: dict[str, Any]) -> float:
    """The Hessian's cost target in GEMM-form floors for the result's spec."""
    low_rank = result.get("low_rank_columns", 0)
    return HESSIAN_MAX_X_GEMM_LOW_RANK if low_rank else HESSIAN_MAX_X_GEMM


def syrk_target(result: dict[str, Any]) -> float:
    """The validated Hessian's cost target in ``A.T @ A`` floors at the result's width d."""
    return HESSIAN_MAX_X_SYRK_WIDE if result["d"] >= SYRK_WIDE_D else HESSIAN_MAX_X_SYRK_NARROW


def missed(result: dict[str, Any]) -> list[str]:
    """The targets a result misses (empty: all met), each named with its figure."""
    checks = [
        ("x GEMM", result["hessian_x_gemm"], target(result)),
        ("x A.T @ A", result["hessian_validated_x_syrk"], syrk_target(result)),
        ("copies of A", result["hessian_peak_copies_of_A"], HESSIAN_MAX_COPIES),
        ("gradient x 2 mv", result["gradient_validated_x_matvec"], GRADIENT_MAX_X_MATVEC),
    ]
    return [f"{name} {value:.2f} > {goal:g}" for name, value, goal in checks if not value <= goal]


def headline(result: dict[str, Any]) -> str:
    """The Hessian's and the gradient's cost (and memory) against the targets, in one line."""
    x_gemm, copies = result["hessian_x_gemm"], result["hessian_peak_copies_of_A"]
    if result["n"] * result["d"] < TARGET_MIN_ENTRIES:
        verdict = f"targets apply from n*d >= {TARGET_MIN_ENTRIES:.0e}"
    else:
        misses = missed(result)
        verdict = "ok" if not misses else "MISSED (" + "; ".join(misses) + ")"
    validated = result["hessian_validated_x_syrk"]
    return (
        f"generated hessian: {x_gemm:.2f}x the GEMM-form floor (target <= {target(result):g}), "
        f"{result['hessian_x_syrk']:.2f}x A.T @ A ({validated:.2f}x validated, target <= "
        f"{syrk_target(result):g}), peak {copies:.2f} copies of A (target <= "
        f"{HESSIAN_MAX_COPIES:g}); gradient {result['gradient_x_matvec']:.2f}x two mat-vecs "
        f"({result['gradient_validated_x_matvec']:.2f}x validated, target <= "
        f"{GRADIENT_MAX_X_MATVEC:g}): {verdict}"
    )


def environment() -> dict[str, Any]:
    """Python, numpy, BLAS and CPU facts that the timings depend on."""
    blas = "unknown"
    try:
        config = np.show_config(mode="dicts")
        info = config["Build Dependencies"]["blas"]  # type: ignore[index]
        blas = f"{info.get('name', '?')} {info.get('version', '')}".strip()
    except (AttributeError, KeyError, TypeError, ValueError):  # older numpy: no dicts mode
        pass
    return {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "blas": blas,
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
        "allocator": allocator_setting(),
    }


def write_json(path: str | Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` (NaN as null)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, np.generic):
            return clean(value.item())
        return value

    Path(path).write_text(json.dumps(clean(document), indent=1) + "\n")


def summary(results: Sequence[dict[str, Any]]) -> str:
    """One headline per size/case."""
    return "\n".join(f"{r['spec']} {r['n']}x{r['d']} {r['case']:<9} {headline(r)}" for r in results)
