"""The generated modules on every array library, the dtype policy, the standalone package.

numpy is the reference; array-api-strict (the standard's strict namespace),
PyTorch CPU tensors and JAX CPU arrays (x64 enabled; JAX arrays cannot be
assigned into, so this also checks that nothing writes into an array) must
give the same gradient, Hessian and Hessian-vector product. PyTorch and JAX
tests skip when the library is absent.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest
from creality_generated import SPECS

from tests.test_every_spec import call, random_values

ROOT = Path(__file__).resolve().parents[1]
RTOL = 1e-12


def _instance(module, seed=0):
    rng = np.random.default_rng(seed)
    n, d = 40, 5
    A = rng.normal(size=(n, d)) * (0.3 if module.USES_EXP else 1.0)
    return rng.normal(size=d), A, random_values(module, n, d, rng), rng.normal(size=d)


def _convert(values, to):
    return {k: to(v) if isinstance(v, np.ndarray) else v for k, v in values.items()}


def _agree(module, to, back):
    x, A, values, v = _instance(module)
    other = _convert(values, to)
    for name in ("gradient", "hessian"):
        want = call(getattr(module, name), module, values, x, A)
        got = back(call(getattr(module, name), module, other, to(x), to(A)))
        assert np.abs(got - want).max() <= RTOL * max(1.0, np.abs(want).max()), name
    want = call(module.hvp, module, values, x, v, A)
    got = back(call(module.hvp, module, other, to(x), to(v), to(A)))
    assert np.abs(got - want).max() <= RTOL * max(1.0, np.abs(want).max()), "hvp"
    loss = call(module.loss, module, values, x, A)
    assert float(back(call(module.loss, module, other, to(x), to(A)))) == pytest.approx(
        float(loss), rel=RTOL
    )


@pytest.fixture(params=SPECS)
def module(request):
    return importlib.import_module(f"creality_generated.{request.param}")


def test_array_api_strict(module):
    xps = pytest.importorskip("array_api_strict")
    _agree(module, xps.asarray, np.asarray)


def test_pytorch_cpu(module):
    torch = pytest.importorskip("torch")
    _agree(module, lambda a: torch.asarray(a, dtype=torch.float64), lambda t: t.numpy())


def test_jax_cpu(module):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    _agree(module, jnp.asarray, np.asarray)


def test_float32_input_is_computed_in_float64():
    import creality_generated.creativity_reality as m

    x, A, values, _ = _instance(m)

    def as32(v):
        return v.astype(np.float32) if isinstance(v, np.ndarray) else v

    single = {k: as32(v) for k, v in values.items()}
    got = call(m.gradient, m, single, as32(x), as32(A))  # float32 b: checked at its precision
    assert got.dtype == np.float64
    upcast = {k: np.asarray(v, dtype=float) for k, v in single.items()}
    want = call(m.gradient, m, upcast, as32(x).astype(float), as32(A).astype(float), validate=False)
    assert np.array_equal(got, want)
    with pytest.raises(ValueError, match="b must be a probability vector"):
        call(m.gradient, m, upcast, x, A)  # the same b as float64 is off by more than 1e-9


@pytest.mark.slow
def test_standalone_package_installs_without_sympy(tmp_path):
    """`pip install ./generated` in a fresh environment: creality_generated without SymPy."""
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / ("Scripts" if os.name == "nt" else "bin") / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(ROOT / "generated")],
        check=True,
        capture_output=True,
    )
    code = (
        "import sys, numpy as np\n"
        "import creality_generated.creativity_reality as m\n"
        "assert 'sympy' not in sys.modules\n"
        "print(float(m.loss(np.zeros(2), np.eye(2), np.array([.5, .5]), np.ones(2), 0.1)))\n"
    )
    out = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True)
    assert float(out.stdout) == pytest.approx(np.log(0.5) * 0.1)
    listed = subprocess.run(
        [str(python), "-m", "pip", "list"], check=True, capture_output=True, text=True
    ).stdout.lower()
    assert "sympy" not in listed and "creality-generated" in listed
