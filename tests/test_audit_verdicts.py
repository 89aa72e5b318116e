"""Honest verdicts: errors are errors, small budgets decide honestly, --max-evals repeats."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import creality_generated.creativity_reality as model
import numpy as np
import pytest

from creality_sym.audit import Bound, EvaluationError, audit, default_bounds, select
from creality_sym.audit.bounds import real_value
from creality_sym.audit.command import format_table
from creality_sym.audit.statistical import decide, min_trials
from creality_sym.cli import main

one = lambda i: 1.0  # noqa: E731


def _bound(bound_id: str, lhs, rhs=one, **kw) -> Bound:  # noqa: ANN001
    return Bound(bound_id, f"{bound_id} (test)", lhs=lhs, rhs=rhs, **kw)


def test_real_value_accepts_numbers_only() -> None:
    assert real_value(np.float32(0.5), "lhs") == 0.5
    assert real_value(np.array(3), "lhs") == 3.0 and real_value(2, "rhs") == 2.0
    for bad, words in (
        ("0.5", "returned str"),
        (True, "returned bool"),
        (1 + 2j, "returned complex"),
        (np.ones(2), "returned ndarray"),
        (None, "returned NoneType"),
        (math.nan, "lhs is nan"),
        (-math.inf, "lhs is -inf"),
        (10**400, "too large"),
    ):
        with pytest.raises(EvaluationError, match=words):
            real_value(bad, "lhs")


def test_a_bound_whose_lhs_is_always_nan_is_an_error_not_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (v,) = audit([_bound("nan-lhs", lambda i: math.nan)], model=model, budget=0.5)
    assert v.verdict == "error" and not v.ok and v.instances == 0
    assert v.errors > 0 and "lhs is nan" in v.message
    f = tmp_path / "nan.py"
    f.write_text(
        "import math\nfrom creality_sym.audit import Bound\n"
        "BOUNDS = [Bound('nan-lhs', 's', lhs=lambda i: math.nan, rhs=lambda i: 1.0)]\n"
    )
    rc = main(["audit", "--bounds", str(f), "--budget", "0.5", "--out", str(tmp_path / "o")])
    text = capsys.readouterr().out
    assert rc == 1
    assert re.search(r"^nan-lhs\s+holds\s+error !", text, re.M), text
    assert "MISMATCH: nan-lhs (expected holds, got error)" in text


@pytest.mark.parametrize(
    ("lhs", "words"),
    [
        (lambda i: "0.5", "lhs returned str"),
        (lambda i: math.inf, "lhs is inf"),
        (lambda i: np.ones(2), "lhs returned ndarray"),
    ],
)
def test_non_numbers_are_evaluation_errors(lhs, words: str) -> None:  # noqa: ANN001
    (v,) = audit([_bound("odd", lhs)], model=model, budget=0.3)
    assert v.verdict == "error" and words in v.message


def test_a_bound_that_fails_sometimes_holds_with_a_note() -> None:
    b = _bound("flaky", lambda i: math.nan if i.n == 1 else 0.5, n=(1, 3))
    (v,) = audit([b], model=model, budget=0.5)
    assert v.verdict == "holds" and v.errors > 0 and v.instances > 0
    assert any("evaluation error(s)" in note for note in v.notes)


def test_a_premise_that_rejects_everything_is_an_error() -> None:
    (v,) = audit([_bound("never", lambda i: 0.0, assume=lambda i: None)], model=model, budget=0.3)
    assert v.verdict == "error" and any("rejected all" in note for note in v.notes)


def test_a_slow_lhs_times_out_and_does_not_stall_the_audit() -> None:
    def slow(inst: object) -> float:
        time.sleep(30)
        return 0.0

    start = time.monotonic()
    v, w = audit(
        [_bound("slow", slow), *select(default_bounds(), ["breal-norm"])],
        model=model,
        budget=1.0,
        eval_timeout=0.2,
    )
    assert time.monotonic() - start < 10
    assert v.verdict == "error" and v.timeouts >= 3
    assert "longer than the 0.2 s limit" in v.message
    assert w.verdict == "holds" and w.instances > 0


def test_a_sometimes_slow_lhs_counts_timeouts_as_errors() -> None:
    def sometimes(inst) -> float:  # noqa: ANN001
        if inst.n == 4:
            time.sleep(30)
        return 0.0

    (v,) = audit(
        [_bound("sometimes", sometimes, n=(1, 4))], model=model, budget=2, eval_timeout=0.1
    )
    assert v.verdict == "holds" and v.timeouts >= 1 and v.instances > 0
    assert any("past the time limit" in note for note in v.notes)


def test_statistical_claims_need_a_deciding_interval() -> None:
    assert min_trials(0.1) == 35 and decide(0, 34, 0.1)[0] == "undecided"
    assert decide(0, 35, 0.1)[0] == "holds"
    assert decide(2, 35, 0.1)[0] == "undecided"
    assert decide(30, 35, 0.1)[0] == "violated" and decide(0, 0, 0.1)[0] == "error"
    coin = Bound(
        "coin",
        "a fair coin fails with probability <= 0.5",
        kind="statistical",
        trial=lambda m, rng: bool(rng.random() < 0.5),
        delta=0.5,
        max_trials=200,
    )
    (v,) = audit([coin], model=model, budget=0.5)
    assert v.verdict == "undecided" and not v.ok and v.ci[0] <= 0.5 <= v.ci[1]
    assert any("cannot decide" in note for note in v.notes)
    wrong = Bound("bad-trial", "s", kind="statistical", trial=lambda m, rng: "no", delta=0.1)
    (w,) = audit([wrong], model=model, budget=0.3)
    assert w.verdict == "error" and "not a bool" in w.message


def test_a_small_budget_gives_honest_verdicts() -> None:
    """--budget 0.3 for the whole registry: nothing is an error, bcre-psd is still found."""
    vs = audit(default_bounds(), model=model, budget=0.3)
    got = {v.id: v for v in vs}
    assert all(v.verdict != "error" for v in vs), [(v.id, v.notes) for v in vs]
    assert got["bcre-psd"].verdict == "violated"
    for v in vs:
        if v.kind == "deterministic":
            assert v.instances > 0 and v.verdict == v.expect, v.id
        else:  # holds only when the interval says so
            assert v.verdict in ("holds", "undecided") and v.instances >= 35, v.id
            if v.verdict == "holds":
                assert v.ci[1] <= v.delta


def test_the_table_states_the_searched_domain() -> None:
    premise = _bound("premise", lambda i: 0.0, assume=lambda i: i, d=(2, 3))
    bounds = [*select(default_bounds(), ["hessian-pd", "sampling-spectral"]), premise]
    vs = audit(bounds, budget=0.6)
    table = format_table(vs)
    assert "searched" in table.splitlines()[0]
    assert "n 1-8, d 1-4, R 1-5, gamma 0-4" in table
    assert "n 400, d 2-6, R 1-2, random, gamma 0-1" in table  # the trials draw gamma in [0, 1]
    assert "n 1-8, d 2-3, R 1-5, premise, gamma 0-4" in table
    (v,) = audit(select(default_bounds(), ["f-lipschitz"]), model="renyi", budget=0.3)
    assert v.domain == "n 1-8, d 1-6, R 1-5, gamma 0-4, q = 2" and v.spec == "renyi"


def _table_without_times(text: str) -> list[str]:
    lines = text.split("\n\n")[0].splitlines()
    return [re.sub(r"\s+\d+\.\d+s$", "", line) for line in lines]


def test_max_evals_repeats_exactly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ids = ["f-lipschitz", "bcre-psd", "hessian-pd", "sampling-spectral"]
    args = ["audit", "--lemma", *ids, "--max-evals", "150", "--seed", "4"]
    outputs, files = [], []
    for k, extra in enumerate((["--workers", "1"], ["--workers", "1"], ["--workers", "2"])):
        out = tmp_path / f"run{k}"
        assert main([*args, *extra, "--out", str(out)]) == 0
        outputs.append(capsys.readouterr().out)
        with np.load(out / "bcre-psd.npz") as data:
            files.append({k: data[k].tobytes() for k in data.files})
    tables = [_table_without_times(o) for o in outputs]
    assert tables[0] == tables[1] == tables[2]
    assert files[0] == files[1] == files[2]
    assert "max-evals 150 per bound" in outputs[0]
    counts = {line.split()[0]: line.split()[3] for line in tables[0][2:]}
    assert counts["sampling-spectral"] == "150" and int(counts["f-lipschitz"]) >= 140


def test_counted_search_ignores_the_modules_loaded(tmp_path: Path, monkeypatch) -> None:
    """Hypothesis draws literal constants from local modules in ``sys.modules``; the
    audit's search must give the same counted result whatever the process imported."""
    bounds = select(default_bounds(), ["f-lipschitz", "hessian-pd"])

    def counted() -> list[tuple]:
        return [(v.verdict, v.instances, v.tightness) for v in audit(bounds, seed=4, max_evals=80)]

    before = counted()
    constants = ", ".join(repr(0.0137 * k + 1e-3 / k) for k in range(1, 400))
    (tmp_path / "user_constants_module.py").write_text(f"VALUES = [{constants}]\nN = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import user_constants_module  # noqa: F401  (a local module: its floats join the pool)

    assert counted() == before == counted()
