"""Small-domain proofs: boxes over the assumption set, branch and bound, the CLI."""

from __future__ import annotations

import io

import numpy as np
import pytest

from creality_sym.audit import Bound, default_bounds
from creality_sym.audit.boxes import Domain
from creality_sym.audit.certify import level
from creality_sym.audit.instance import Space, violates_assumptions
from creality_sym.audit.interval import interval_model_for
from creality_sym.audit.prove import prove
from creality_sym.audit.rigor import verdict_levels

SPACE = Space.make(None)
BOUNDS = {b.id: b for b in default_bounds()}


@pytest.mark.parametrize("bound_id", ["softmax-floor", "alpha-range", "breal-norm"])
def test_registry_bounds_are_proved_at_n2_d1(bound_id: str) -> None:
    stream = io.StringIO()
    proof = prove(BOUNDS[bound_id], SPACE, n=2, d=1, R_max=2.0, budget=100, progress=stream)
    assert proof.status == "proved", proof.summary()
    assert proof.ok and proof.open_fraction == 0.0 and proof.boxes > 0
    assert proof.mode == "logit" and "z = A x over all ||z||_2 <= R^2" in proof.domain
    assert proof.worst_difference <= 0 and proof.worst_ratio <= 1.0
    assert proof.worst_seen <= proof.worst_ratio  # a float seen value never beats the bound
    assert f"prove {bound_id}:" in stream.getvalue()
    assert level(proof=proof) == "proved"


def test_bcre_psd_is_never_proved_its_counterexample_is_certified() -> None:
    proof = prove(BOUNDS["bcre-psd"], SPACE, n=2, d=1, R_max=2.0, budget=60)
    assert proof.status == "violated" and proof.ok
    assert proof.certificate is not None and proof.certificate.certified
    assert proof.certificate.lower > 0
    assert not violates_assumptions(proof.counterexample, SPACE, rtol=1e-12)
    assert level(proof=proof) == "certified"


def test_a_budget_stops_at_undecided_with_the_open_fraction() -> None:
    proof = prove(BOUNDS["alpha-range"], SPACE, n=2, d=1, R_max=2.0, max_boxes=600)
    assert proof.status == "undecided" and not proof.ok
    assert 0 < proof.open_fraction < 1 and proof.boxes <= 600
    assert "unresolved" in proof.summary()
    assert level(proof=proof) == "searched"


def test_a_bound_using_x_and_y_is_proved_over_the_full_domain_or_left_undecided() -> None:
    proof = prove(BOUNDS["f-lipschitz"], SPACE, n=2, d=1, R_max=1.5, budget=3)
    assert proof.mode == "full" and "||A||_2, ||x||_2, ||y||_2 <= R" in proof.domain
    assert proof.status in ("proved", "undecided")  # tight as y -> x: never "violated"


def test_a_false_bound_over_the_full_domain_gets_a_certified_counterexample() -> None:
    bound = Bound(
        "f-lipschitz-03",
        "||f(x) - f(y)|| <= 0.3 R ||x - y||",
        lhs=lambda i: float(np.linalg.norm(i.f(i.x) - i.f(i.y))),
        rhs=lambda i: 0.3 * i.R * float(np.linalg.norm(i.x - i.y)),
        expect="violated",
    )
    proof = prove(bound, SPACE, n=2, d=1, R_max=1.5, budget=60)
    assert proof.status == "violated" and proof.mode == "full", proof.summary()
    assert proof.certificate.certified


def test_a_true_but_tight_bound_is_not_called_violated() -> None:
    bound = Bound(
        "sum-one",
        "<f, 1> <= 1 (equality everywhere)",
        lhs=lambda i: float(np.sum(i.f(i.x))),
        rhs=lambda i: 1.0,
    )
    proof = prove(bound, SPACE, n=2, d=1, R_max=2.0, max_boxes=200)
    assert proof.status in ("proved", "undecided")


def test_statistical_claims_and_other_ranges_are_skipped() -> None:
    assert prove(BOUNDS["newton-rate"], SPACE).status == "skipped"
    tiny = Bound("tiny", "n = 1 only", lhs=lambda i: 0.0, rhs=lambda i: 1.0, n=(1, 1))
    skipped = prove(tiny, SPACE, n=2, d=1)
    assert skipped.status == "skipped" and "outside the bound's own ranges" in skipped.reason


def test_boxes_drop_what_misses_the_set_and_points_are_admissible() -> None:
    imodel = interval_model_for(SPACE.model)
    for mode in ("logit", "full"):
        dom = Domain.make(mode, 2, 1, 2.0, SPACE, imodel, w_max=10.0, gamma_max=4.0)
        lo, hi = dom.root()
        assert not dom.infeasible(lo, hi)
        corner_lo, corner_hi = lo.copy(), hi.copy()
        for k, v in enumerate(dom.vars):
            if v.group in ("zeta", "Ahat"):
                corner_lo[k] = 0.8  # every such entry >= 0.8: the norm exceeds 1
        assert dom.infeasible(corner_lo, corner_hi)
        rng = np.random.default_rng(0)
        for _ in range(5):
            a, b = np.sort(rng.uniform(lo, hi, (2, lo.size)), axis=0)
            inst = dom.point(a, b)
            assert not violates_assumptions(inst, SPACE, rtol=1e-12)


def test_parallel_workers_prove_the_same() -> None:
    proof = prove(BOUNDS["breal-norm"], SPACE, n=2, d=1, R_max=2.0, budget=100, workers=2)
    assert proof.status == "proved"


def test_verdict_levels_for_the_report() -> None:
    from creality_sym.audit import audit

    verdicts = audit([BOUNDS["bcre-psd"], BOUNDS["softmax-floor"]], budget=2, seed=0)
    proof = prove(BOUNDS["softmax-floor"], SPACE, n=2, d=1, R_max=2.0)
    levels = verdict_levels(verdicts, proofs=[proof])
    assert levels["bcre-psd"][0] == "certified"
    assert levels["softmax-floor"][0] == "proved" and levels["softmax-floor"][1].startswith(
        "proved"
    )


def test_prove_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    from creality_sym.cli import main

    def cli(*args: str) -> tuple[int, str, str]:
        code = main(["audit", "--prove", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, err = cli("--lemma", "softmax-floor", "breal-norm", "--n", "2", "--d", "1")
    assert code == 0, out + err
    assert "every outcome matches its expectation" in out
    assert out.count(" proved ") >= 2 and "prove breal-norm:" in err
    code, out, _ = cli("--lemma", "bcre-psd", "--R-max", "2")
    assert code == 0 and "violated" in out and " proved " not in out
    code, _, err = cli("--lemma", "bcre-psd", "--R-max", "0.5")
    assert code == 2 and "--R-max" in err
    code, out, _ = cli("--lemma", "alpha-range", "--prove-boxes", "10")
    assert code == 1 and "undecided" in out and "MISMATCH" in out


@pytest.mark.slow
def test_prove_the_three_at_n3() -> None:
    for bound_id in ("softmax-floor", "breal-norm"):
        proof = prove(BOUNDS[bound_id], SPACE, n=3, d=1, R_max=1.5, budget=600)
        assert proof.status == "proved", proof.summary()


def _floor(c: float) -> Bound:
    return Bound("floor", "c <= min f", lhs=lambda i: c, rhs=lambda i: float(np.min(i.f(i.x))))


#: min f over n = 2, ||A||_2, ||x||_2 <= R <= 2: at z = 2 sqrt(2) (1, -1)
F_MIN = 1.0 / (1.0 + np.exp(4.0 * np.sqrt(2.0)))


def test_a_constant_0_1_percent_above_the_true_floor_is_violated_not_proved() -> None:
    proof = prove(_floor(F_MIN * 1.001), SPACE, n=2, d=1, R_max=2.0, budget=120)
    assert proof.status == "violated" and proof.certificate.certified


@pytest.mark.slow
def test_a_constant_0_1_percent_below_the_true_floor_is_proved() -> None:
    proof = prove(_floor(F_MIN * 0.999), SPACE, n=2, d=1, R_max=2.0, budget=300)
    assert proof.status == "proved" and proof.worst_ratio <= 1.0
