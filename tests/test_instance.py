"""One data model for every spec: random instances by rule and shape, per-term z-Hessians."""

from __future__ import annotations

import numpy as np
import pytest

from creality_sym.instance import (
    DEFAULT_SPEC,
    Instance,
    load_model,
    parse_params,
    resolve_scalars,
    spec_names,
)

SPECS = spec_names()


def test_every_installed_spec_is_listed() -> None:
    assert DEFAULT_SPEC in SPECS and {"renyi", "cosine", "rescaled", "ridge_prior"} <= set(SPECS)
    with pytest.raises(ValueError, match="no generated spec 'nope'; installed: "):
        load_model("nope")


@pytest.mark.parametrize("spec", SPECS)
def test_random_instances_respect_rules_and_shapes(spec: str) -> None:
    model = load_model(spec)
    inst = Instance.random(model, 7, 3, np.random.default_rng(1), scalars={"q": 2.0})
    assert set(inst.params) == {p.name for p in model.PARAMETERS}
    for p in model.PARAMETERS:
        value = inst.params[p.name]
        if p.kind == "scalar":
            assert np.ndim(value) == 0
            continue
        assert np.shape(value) == ((7,) if p.shape == "n" else (3,)), p
        if p.rule == "probability":
            assert np.all(value >= 0) and abs(value.sum() - 1) < 1e-12
        elif p.rule == "positive":
            assert np.all(value > 0)
    # the parameters are attributes too; the model validates the instance
    assert inst.spec == spec and getattr(inst, model.PARAMETERS[0].name) is not None
    model.loss(inst.x, inst.A, **inst.params)


@pytest.mark.parametrize("spec", SPECS)
def test_term_z_hessians_assemble_the_hessian(spec: str) -> None:
    """hess = A^T B A + diag(h) for every term and the total (dense B, n x n)."""
    model = load_model(spec)
    inst = Instance.random(model, 6, 3, np.random.default_rng(2), scalars={"q": 2.0})
    for term in (*inst.terms, None):
        B = inst.z_hessian(inst.x, term)
        assert B.shape == (6, 6) and np.allclose(B, B.T)
        H = inst.A.T @ B @ inst.A + np.diag(inst.x_hessian_diag(inst.x, term))
        np.testing.assert_allclose(inst.hessian(inst.x, term), H, rtol=1e-9, atol=1e-11)
    with pytest.raises(ValueError, match="has no term 'nope'"):
        inst.z_hessian(inst.x, "nope")


def test_replace_changes_fields_and_parameters() -> None:
    inst = Instance.random(None, 4, 2, np.random.default_rng(0), scalars={"gamma": 0.3})
    other = inst.replace(gamma=1.0, x=np.zeros(2))
    assert other.gamma == 1.0 and inst.gamma == 0.3 and not np.any(other.x)
    assert other.tradeoff == 1.0 and other.logit_scale == 1.0
    with pytest.raises(ValueError, match="not a field or parameter"):
        inst.replace(q=2.0)
    with pytest.raises(AttributeError, match="parameters: b, w, gamma"):
        _ = inst.q
    temperature = Instance.random("temperature", 4, 2, np.random.default_rng(0))
    assert temperature.tau == 1.0 and temperature.replace(tau=0.25).logit_scale == 4.0


def test_scalars_take_given_then_default_then_a_stated_choice() -> None:
    renyi = load_model("renyi")
    values, notes = resolve_scalars(renyi, {}, tradeoff=0.5)
    assert values == {"gamma": 0.5, "q": 2.0}
    assert len(notes) == 1 and notes[0].startswith("q = 2 (spec renyi gives no default")
    values, notes = resolve_scalars(renyi, {"q": 3.0, "gamma": 0.1})
    assert values == {"gamma": 0.1, "q": 3.0} and notes == []
    assert resolve_scalars(load_model("temperature"), {})[0]["tau"] == 1.0
    for given, words in (
        ({"q": 1.0}, "--param q=1: spec renyi is singular there"),
        ({"q": -1.0}, "--param q must be > 0"),
        ({"zeta": 1.0}, "--param zeta: spec renyi has no parameter 'zeta' (scalars: gamma, q)"),
        ({"b": 1.0}, "--param b: b is a vector of spec renyi"),
    ):
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
            resolve_scalars(renyi, given)


def test_parse_params() -> None:
    assert parse_params(["q=2", " tau = 0.5"]) == {"q": 2.0, "tau": 0.5}
    with pytest.raises(ValueError, match="--param must be NAME=VALUE; got 'q'"):
        parse_params(["q"])
    with pytest.raises(ValueError, match="--param q: 'two' is not a number"):
        parse_params(["q=two"])
