"""Certified counterexamples: the interval backend, strict balls, enclosures, certify."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest
import sympy as sp

from creality_sym.audit import Bound, default_bounds, min_eig, spectral_norm
from creality_sym.audit.certify import certify, level, level_text
from creality_sym.audit.enclose import singular_values, sym_eigenvalues
from creality_sym.audit.enclose import spectral_norm as ball_norm
from creality_sym.audit.instance import Space, project
from creality_sym.audit.interval import from_instance, interval_model_for
from creality_sym.audit.rebind import rigorous
from creality_sym.codegen.interval.balls import (
    Undecided,
    ball,
    interval,
    is_ball,
    precision,
    use_backend,
)
from creality_sym.codegen.interval.printer import print_expr
from creality_sym.codegen.lower import XLogX
from creality_sym.errors import SpecError
from creality_sym.instance import Instance, load_model, spec_names
from creality_sym.spec import embedded_derivations, load_spec

SPACE = Space.make(None)
BOUNDS = {b.id: b for b in default_bounds()}


def point(A, x, y, b, w, gamma, R) -> Instance:  # noqa: ANN001 - test shorthand
    return project(A, x, y, {"b": b, "w": w, "gamma": gamma}, R, space=SPACE)


def contains(enclosure, value: float, slack: float = 1e-9) -> bool:  # noqa: ANN001
    """Whether ``value`` (a float computation) lies in the ball, up to float rounding."""
    return enclosure.flo() - slack <= value <= enclosure.fhi() + slack


# ----------------------------------------------------------------------------- printer


def test_printer_prints_numbers_exactly_and_refuses_what_it_cannot_enclose() -> None:
    x, y = sp.symbols("x y", real=True)
    assert print_expr(sp.Rational(1, 3) * x) == "(ia.q(1, 3))*x"
    assert print_expr(sp.Float(0.1) * x) == "ia.dyadic(3602879701896397, -55)*x"
    assert print_expr(1 / x) == "1/x"
    assert print_expr(x**2) == "x**2"
    assert print_expr(x**y) == "ia.power(x, y)"
    assert print_expr(sp.sqrt(x)) == "ia.sqrt(x)"
    assert print_expr(XLogX(x)) == "ia.xlogx(x)"
    with pytest.raises(SpecError):
        print_expr(sp.gamma(x))
    with pytest.raises(SpecError):
        print_expr(sp.Piecewise((x, x > 0), (y, True)))


@pytest.mark.parametrize("name", spec_names())
def test_interval_module_encloses_the_generated_module(name: str) -> None:
    """The interval module (printed from the derivation) contains the numpy values."""
    model = load_model(name)
    spec = load_spec(embedded_derivations() / f"{name}.py")
    if spec.digest != model.SPEC_SHA256:
        pytest.skip(f"generated/{name}.py is not in sync with its spec (creality check)")
    imodel = interval_model_for(model)
    assert imodel.spec_sha256 == model.SPEC_SHA256
    scalars = {"q": 2.0} if name in ("renyi", "tsallis") else None
    inst = Instance.random(model, 4, 3, np.random.default_rng(1), scalars=scalars)
    ball_inst = from_instance(inst, imodel)
    pairs = [
        (ball_inst.f(), inst.f()),
        (ball_inst.gradient(), inst.gradient()),
        (ball_inst.hessian(), inst.hessian()),
        (np.array([ball_inst.loss()], dtype=object), np.array([inst.loss()])),
    ]
    pairs += [(ball_inst.z_hessian(None, t), inst.z_hessian(None, t)) for t in inst.terms]
    for enclosure, value in pairs:
        scale = 1.0 + float(np.max(np.abs(value)))
        for e, v in zip(enclosure.flat, np.asarray(value).flat, strict=True):
            assert is_ball(e) and contains(e, float(v), 1e-9 * scale), (name, e, v)


# ----------------------------------------------------------------------------- balls


def test_balls_refuse_to_round_or_compare_uncertainly() -> None:
    third = ball(1) / 3
    with pytest.raises(Undecided):
        float(third)
    with pytest.raises(Undecided):
        bool(interval(-1.0, 1.0) > 0)
    assert float(ball(0.1)) == 0.1 and int(ball(3)) == 3
    assert third < 1 and not third > 1
    square = interval(-1.0, 2.0) ** 2
    assert square.flo() == 0.0 and square.fhi() >= 4.0
    with use_backend("mpmath"):
        t = ball(1) / 3
        assert t.backend == "mpmath" and t < 1
        with pytest.raises(Undecided):
            float(t)


def test_eigenvalue_enclosures_contain_the_float_eigenvalues() -> None:
    rng = np.random.default_rng(0)
    for k in (2, 3, 5):
        M = rng.standard_normal((k, k))
        S = M + M.T
        lam = np.linalg.eigvalsh(S)
        encl = sym_eigenvalues(S)
        assert all(contains(e, v, 1e-12) for e, v in zip(encl, lam, strict=True))
        assert all(e.fhi() - e.flo() < 1e-10 for e in encl)
        assert contains(ball_norm(M), np.linalg.norm(M, 2), 1e-12)
    clustered = np.diag([1.0, 1.0, 1.0 + 1e-14])
    assert all(contains(e, 1.0, 1e-12) for e in sym_eigenvalues(clustered))
    A = rng.standard_normal((4, 2))
    sv = np.linalg.svd(A, compute_uv=False)
    assert all(contains(e, v, 1e-10) for e, v in zip(singular_values(A), sv, strict=True))
    box = np.array([[interval(0.9, 1.1), ball(0)], [ball(0), interval(-2.1, -1.9)]], dtype=object)
    low, high = sym_eigenvalues(box)
    assert low.flo() <= -2.1 and low.fhi() >= -1.9 and high.flo() <= 0.9 and high.fhi() >= 1.1


# ----------------------------------------------------------------------------- rebinding


def _helper(inst: Instance) -> float:
    f = inst.f(inst.x)
    return float(np.max(f)) + max(math.exp(-(inst.R**2)), float(np.min(f)))


def test_rebinding_runs_plain_float_code_on_balls() -> None:
    inst = point([[1.0], [0.5]], [1.0], [0.5], [0.5, 0.5], [1.0, 1.0], 0.5, 1.5)
    balls = from_instance(inst, interval_model_for(SPACE.model))
    value = rigorous(_helper)(balls)
    assert is_ball(value) and contains(value, _helper(inst), 1e-12)
    norm = rigorous(lambda i: spectral_norm(i.B_cre(i.x)) + min_eig(i.hessian(i.x)))(balls)
    assert contains(norm, spectral_norm(inst.B_cre()) + min_eig(inst.hessian()), 1e-12)
    with pytest.raises(Undecided):  # an implicit float conversion is refused, not rounded
        rigorous(lambda i: float(np.asarray(i.f(i.x), dtype=np.float64)[0]))(balls)


# ----------------------------------------------------------------------------- certify

#: near-worst false variants of the registry's bounds, with counterexamples the search found
NEAR_WORST = [
    (
        Bound(
            "f-lipschitz-045",
            "||f(x) - f(y)|| <= 0.45 R ||x - y||",
            lhs=lambda i: float(np.linalg.norm(i.f(i.x) - i.f(i.y))),
            rhs=lambda i: 0.45 * i.R * float(np.linalg.norm(i.x - i.y)),
            expect="violated",
        ),
        ([[-0.707], [0.707]], [0.0], [0.002], [1.0, 0.0], [1.0, 1.0], 0.0, 1.0),
    ),
    (
        Bound(
            "bcre-norm-060",
            "||B_cre|| <= 0.6",
            lhs=lambda i: spectral_norm(i.B_cre(i.x)),
            rhs=lambda i: 0.6,
            expect="violated",
        ),
        (
            [[1.86], [1.85], [0.2], [-0.34], [0.23], [0.24], [0.23], [0.22]],
            [1.7],
            [1.7],
            [1.0] + [0.0] * 7,
            [1.0] * 8,
            0.0,
            2.7,
        ),
    ),
    (
        Bound(
            "breal-norm-0305",
            "||B_real|| <= 0.305",
            lhs=lambda i: spectral_norm(i.B_real(i.x)),
            rhs=lambda i: 0.305,
            expect="violated",
        ),
        ([[2.75], [2.88]], [-3.65], [-3.65], [1.0, 0.0], [1.0, 1.0], 0.0, 3.99),
    ),
]


@pytest.mark.parametrize("bound, data", NEAR_WORST, ids=[b.id for b, _ in NEAR_WORST])
def test_near_worst_false_bounds_are_certified(bound: Bound, data: tuple) -> None:
    inst = point(*data)
    lhs, rhs = bound.lhs(inst), bound.rhs(inst)
    cert = certify(bound, inst)
    assert cert.certified, cert.text()
    assert 0 < cert.lower <= lhs - rhs * (1 - 1e-12) and lhs - rhs <= cert.upper * (1 + 1e-9)
    assert level(certificate=cert) == "certified"
    assert level_text(certificate=cert).startswith("certified: lhs - rhs in")


def test_bcre_psd_counterexample_is_certified_and_a_holding_bound_is_float_only() -> None:
    inst = point([[1.0], [0.0]], [3.0], [3.0], [1.0, 0.0], [1.0, 1.0], 0.0, 3.0)
    cert = certify(BOUNDS["bcre-psd"], inst)
    assert cert.certified and 0.1549 < cert.lower < cert.upper < 0.1550
    held = certify(BOUNDS["breal-norm"], inst)
    assert held.label == "float only" and held.upper < 0 and "lhs <= rhs" in held.reason
    assert level(certificate=held) == "searched"


def test_a_rounding_sized_violation_is_float_only_with_its_enclosure() -> None:
    inst = point([[1.0], [0.0]], [3.0], [3.0], [1.0, 0.0], [1.0, 1.0], 0.0, 3.0)
    exact = Bound(
        "exact", "lhs = rhs exactly", lhs=lambda i: float(np.sum(i.f(i.x))), rhs=lambda i: 1.0
    )
    cert = certify(exact, inst, bits=(64, 128))
    assert cert.label == "float only" and cert.lower <= 0 <= cert.upper
    assert "contains 0" in cert.reason or "lhs <= rhs" in cert.reason


def test_an_instance_outside_the_set_by_rounding_is_repaired_and_named() -> None:
    inst = point([[1.0], [0.0]], [1.0], [1.0], [1.0, 0.0], [1.0, 1.0], 0.0, 3.0)
    inst = inst.replace(A=np.array([[math.nextafter(3.0, 4.0)], [0.0]]))  # ||A||_2 = R + ulp
    cert = certify(BOUNDS["bcre-psd"], inst)
    assert cert.certified, cert.text()
    assert any("||A||_2 <= R holds only up to rounding" in r for r in cert.repairs)
    far = inst.replace(A=inst.A * 1.01)
    outside = certify(BOUNDS["bcre-psd"], far)
    assert outside.label == "float only" and "outside the assumption set" in outside.reason


def test_certify_on_the_command_line(tmp_path, capsys) -> None:  # noqa: ANN001
    from creality_sym.cli import main

    code = main(
        ["audit", "--certify", "--lemma", "bcre-psd", "--budget", "3"] + ["--out", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "bcre-psd: certified  lhs - rhs in [" in out


def test_a_bounds_file_bound_is_certified_by_the_same_code(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "mine.py"
    path.write_text(
        textwrap.dedent(
            """
            import numpy as np
            from creality_sym.audit import Bound, spectral_norm

            def _big(inst):
                return spectral_norm(inst.jacobian(inst.x))

            BOUNDS = [Bound("jac", "||J|| <= 0.2", lhs=_big, rhs=lambda i: 0.2,
                            expect="violated")]
            """
        )
    )
    from creality_sym.audit import load_bounds

    (bound,) = load_bounds(path)
    inst = point([[0.0], [0.0]], [0.0], [0.0], [0.5, 0.5], [1.0, 1.0], 0.0, 1.0)
    with precision(64):
        cert = certify(bound, inst)
    assert cert.certified and abs(cert.lower - 0.3) < 1e-12  # ||J|| = 1/2 at f = (1/2, 1/2)


def test_mpmath_is_the_fallback_without_python_flint() -> None:
    import subprocess
    import sys

    code = textwrap.dedent(
        """
        import sys
        sys.modules["flint"] = None  # python-flint missing
        from creality_sym.audit import default_bounds
        from creality_sym.audit.certify import certify
        from creality_sym.audit.instance import Space, project
        from creality_sym.codegen.interval.balls import backend
        space = Space.make(None)
        inst = project([[1.0], [0.0]], [3.0], [3.0], {"b": [1.0, 0.0], "w": [1.0, 1.0],
                       "gamma": 0.0}, 3.0, space=space)
        bound = {b.id: b for b in default_bounds()}["bcre-psd"]
        print(backend(), certify(bound, inst).label)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["mpmath", "certified"], out.stdout + out.stderr
