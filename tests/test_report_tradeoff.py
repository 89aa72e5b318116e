"""The trade-off sweep: points by arc length, warm starts from both sides, jumps not joined."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from creality_sym.instance import Instance
from creality_sym.report import tradeoff
from creality_sym.report.numeric import verdict_counts
from creality_sym.report.study import Settings
from creality_sym.report.sweep import sweep_section


@dataclass
class Result:
    x: np.ndarray
    loss: float
    iterations: int = 1
    converged: bool = True
    seconds: float = 0.0
    reason: str = "fake"


def fake_solver(g_star: float, lo: float, hi: float):  # noqa: ANN201
    """Two basins: x = -e (precise) and x = +e (creative), each best on its side of g_star;
    between lo and hi both are minima and the start decides which one is found."""

    def solve(model, x0, /, *, A, method, max_iter, gamma, **data):  # noqa: ANN001, ANN202
        t = 1.0 + 3.0 * gamma / (gamma + 1e-2)  # x moves smoothly within each basin
        side = -1.0 if gamma < lo else (1.0 if gamma > hi else math.copysign(1.0, x0[0] + 1e-9))
        x = side * t * np.ones(A.shape[1])
        return Result(x=x, loss=-side * (gamma - g_star))

    return solve


def small_instance() -> Instance:
    inst = Instance.random(None, 5, 2, np.random.default_rng(0), scalars={"gamma": 0.0})
    A = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [0.5, 0.5]])
    return inst.replace(A=A, x=-np.ones(2))


def test_a_jump_is_found_marked_and_its_other_minima_kept() -> None:
    curve = tradeoff.sweep(
        small_instance(), fake_solver(0.03, 0.02, 0.05), gamma_max=2.0, points=30, first=8
    )
    g = curve.gammas
    assert g[0] == 0.0 and np.all(np.diff(g) > 0) and len(g) == 30
    assert len(curve.jumps) == 1
    i = curve.jumps[0]
    assert g[i] < 0.03 < g[i + 1] and g[i + 1] / g[i] <= tradeoff.MIN_RATIO
    assert np.sign(curve.points[i].x[0]) != np.sign(curve.points[i + 1].x[0])
    # both sides were tried: where both basins are minima, the other one is kept
    assert curve.alternatives and all(0.02 <= p.gamma <= 0.05 for p in curve.alternatives)
    # the lowest loss wins on either side of the switch
    assert all(p.loss <= 0 for p in curve.points)


def test_points_follow_arc_length_not_a_log_grid() -> None:
    """Away from the jump the curve is flat: few points go there."""
    curve = tradeoff.sweep(
        small_instance(), fake_solver(0.03, 0.02, 0.05), gamma_max=2.0, points=30, first=6
    )
    chords = curve.chords()
    assert np.max(chords[np.arange(len(chords)) != curve.jumps[0]]) < 0.2
    assert np.sum(curve.gammas > 0.5) <= 2  # the flat, saturated end


def test_no_tradeoff_no_sweep(tmp_path: Path) -> None:
    section = sweep_section(tmp_path, Settings.make(quick=True, spec="rescaled"), update=print)
    assert "declares no trade-off weight" in section.summary and section.status == "ok"
    assert "TRADEOFF is None" in section.intro and not section.figures
    with pytest.raises(ValueError, match="has no trade-off weight"):
        tradeoff.sweep(
            Instance.random("rescaled", 3, 2, np.random.default_rng(0)),
            print,
            gamma_max=1.0,
            points=3,
            first=2,
        )


def test_the_audit_summary_counts_every_verdict() -> None:
    @dataclass
    class V:
        id: str
        verdict: str
        ok: bool

    vs = [
        V("a", "holds", True),
        V("b", "undecided", False),
        V("c", "error", False),
        V("d", "violated", True),
        V("e", "skipped", True),
    ]
    text = verdict_counts(vs)
    assert text == (
        "1 hold, 1 violated (d), 1 undecided (b), 1 error (c), 1 skipped; UNEXPECTED: b, c"
    )
    assert verdict_counts(vs[:1]) == "1 hold, all as expected"
