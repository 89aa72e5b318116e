"""Outer functions of log-sum-exp: evaluated in log space, finite at any logit."""

from __future__ import annotations

import warnings
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

from creality_sym.cli import main
from creality_sym.codegen.logspace import log_space
from creality_sym.spec import f, z
from creality_sym.vector import Total, vector_symbol
from tests.test_pipeline import _import_generated

LSE_SPEC = '''"""log-sum-exp minus <b, Ax>, a b-weighted log-partition, weighted ridge."""

import sympy as sp

from creality_sym.spec import Spec, Term, total, vector, z

b = vector("b", "probability")
w = vector("w", "positive")
u = sp.exp(z)

SPEC = Spec(
    name="lse",
    description="log sum exp(Ax) - <b, Ax> + log <b, exp(Ax)>/2 + weighted ridge.",
    terms=[
        Term("partition", sp.log(total(u)), summed=False),
        Term("linear", -b * z),
        Term("mixed", sp.log(total(b * u)) / 2, summed=False),
        Term("regularizer", sp.Rational(1, 2) * w**2 * z**2),
    ],
    vectors=[b, w],
)
'''

MIXED_SPEC = '''"""log-sum-exp plus a term that grows like exp(z): stays in the exp form."""

import sympy as sp

from creality_sym.spec import Spec, Term, total, vector, z

b = vector("b", "real")

SPEC = Spec(
    name="grows",
    terms=[
        Term("partition", sp.log(total(sp.exp(z))), summed=False),
        Term("fit", sp.Rational(1, 2) * (sp.exp(z) - b) ** 2),
    ],
    vectors=[b],
)
'''

LSE = sp.Symbol("z_k") - sp.Symbol("logf_k")


def test_log_sum_exp_and_its_derivatives_become_softmax_quantities():
    S = Total(sp.exp(z))
    out, exp_left = log_space(
        {
            "loss": sp.log(S),
            "g": sp.exp(z) / S,
            "core0_0": -1 / S**2,
            "lr0": sp.exp(z),
            "lr0_total": S,
        },
        softmax=True,
        lse=LSE,
    )
    assert not exp_left
    assert out == {"loss": LSE, "g": f, "core0_0": -1, "lr0": f, "lr0_total": 1}


def test_powers_and_weighted_sums_factor_through_the_log_sum_exp():
    b = vector_symbol("b", "positive", "z")
    out, exp_left = log_space(
        {"loss": sp.log(Total(b * sp.exp(2 * z))) - 2 * sp.log(Total(sp.exp(z)))},
        softmax=True,
        lse=LSE,
    )
    assert not exp_left
    assert out["loss"] == sp.log(Total(b * f**2))


@pytest.mark.parametrize(
    "outputs, softmax",
    [
        ({"loss": Total((sp.exp(z) - 1) ** 2)}, True),  # grows like exp(2 z)
        ({"g": sp.exp(-z)}, True),  # exp of a negative multiple overflows below
        ({"loss": sp.log(Total(sp.exp(z)))}, False),  # f = softmax(s z): exp(z) is not exp(L) f
    ],
)
def test_programs_that_keep_exp_are_left_as_derived(outputs, softmax):
    out, exp_left = log_space(outputs, softmax=softmax, lse=LSE)
    assert exp_left
    assert out == outputs


def test_specs_without_exp_are_untouched():
    outputs = {"loss": Total(f * sp.log(f)), "g": f - z}
    assert log_space(outputs, softmax=True, lse=LSE) == (outputs, False)


def _mp_loss(z_values, b, w):
    mp.mp.dps = 60
    zz = [mp.mpf(float(v)) for v in z_values]
    bb = [mp.mpf(float(v)) for v in b]
    partition = mp.log(mp.fsum(mp.exp(v) for v in zz))
    mixed = mp.log(mp.fsum(bj * mp.exp(v) for bj, v in zip(bb, zz, strict=True))) / 2
    linear = -mp.fsum(bj * v for bj, v in zip(bb, zz, strict=True))
    ridge = mp.fsum(mp.mpf(float(wj)) ** 2 * v**2 for wj, v in zip(w, zz, strict=True)) / 2
    return partition + mixed + linear + ridge, zz, bb


def _mp_z_gradient(zz, bb, w):
    top = max(zz)
    e = [mp.exp(v - top) for v in zz]
    s, sb = mp.fsum(e), mp.fsum(bj * ej for bj, ej in zip(bb, e, strict=True))
    return [
        e[j] / s - bb[j] + bb[j] * e[j] / (2 * sb) + mp.mpf(float(w[j])) ** 2 * zz[j]
        for j in range(len(zz))
    ]


@pytest.fixture(scope="module")
def lse_module(tmp_path_factory):
    root: Path = tmp_path_factory.mktemp("lse")
    (root / "derivations").mkdir()
    (root / "derivations" / "__init__.py").write_text("")
    (root / "derivations" / "lse.py").write_text(LSE_SPEC)
    (root / "derivations" / "grows.py").write_text(MIXED_SPEC)
    # a verifying derive: every method (the emitted code and its C kernels included) passes
    assert main(["derive", "--quiet", "--root", str(root)]) == 0
    return root


@pytest.mark.parametrize("top", [3.0, 300.0, 1000.0, -1000.0])
def test_generated_log_space_code_matches_mpmath_at_any_logit(lse_module, top):
    mod = _import_generated(lse_module / "generated" / "lse.py", "lse")
    assert mod.USES_EXP is False
    rng = np.random.default_rng(7)
    n, d = 40, 5
    A = rng.standard_normal((n, d))
    x = rng.standard_normal(d)
    x *= abs(top) / np.max(np.abs(A @ x)) * np.sign(top)
    b = rng.dirichlet(np.ones(n))
    w = rng.uniform(0.5, 1.0, n) / np.sqrt(n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = mod.loss(x, A, b, w)
        grad = mod.gradient(x, A, b, w)
        hess = mod.hessian(x, A, b, w)
    ref, zz, bb = _mp_loss(A @ x, b, w)
    assert abs(loss - float(ref)) <= 1e-12 * max(1.0, abs(float(ref)))
    gz = _mp_z_gradient(zz, bb, w)
    g_ref = np.array([float(mp.fsum(A[j, i] * gz[j] for j in range(n))) for i in range(d)])
    np.testing.assert_allclose(grad, g_ref, rtol=1e-10, atol=1e-13 * np.abs(A).sum())
    assert np.all(np.isfinite(hess))
    np.testing.assert_allclose(hess, hess.T, rtol=1e-12, atol=1e-15)
    eps = 1e-6 * max(1.0, np.linalg.norm(x))
    fd = np.array(
        [
            (mod.gradient(x + eps * e, A, b, w) - mod.gradient(x - eps * e, A, b, w)) / (2 * eps)
            for e in np.eye(d)
        ]
    )
    np.testing.assert_allclose(hess, fd, rtol=1e-5, atol=1e-7 * np.abs(hess).max())


def test_a_spec_that_keeps_exp_still_refuses_overflowing_logits(lse_module):
    mod = _import_generated(lse_module / "generated" / "grows.py", "grows")
    assert mod.USES_EXP is True
    A = np.eye(3)
    b = np.zeros(3)
    assert np.isfinite(mod.loss(np.array([1.0, 2.0, 3.0]), A, b))
    with pytest.raises(ValueError, match="x: the logits"):
        mod.loss(np.array([400.0, 0.0, 0.0]), A, b)
