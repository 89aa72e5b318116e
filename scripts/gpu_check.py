"""Accuracy and speed of the GPU paths against numpy on the CPU.

For the default spec (or --spec) at a few sizes, compares

* ``numpy``      -- the generated numpy module on the CPU (the reference),
* ``C kernels``  -- the CUDA source compiled as plain C (cuda_loader.load_host),
* ``CUDA``       -- the generated kernels on the GPU (cuda_loader.load, CuPy),
* ``array API``  -- the generated numpy module called with CuPy arrays,
* ``torch``      -- the generated numpy module called with PyTorch CUDA tensors,

printing, per path, the max relative error of the gradient and Hessian
(max |a - ref| / max |ref|) and the median time of several calls (GPU
timings synchronize the device). Without CuPy or a GPU it says so and runs
the CPU rows only.

Needs the project installed (``pip install -e .``) and, for the GPU rows,
CuPy matching the CUDA driver: ``pip install cupy-cuda12x`` or
``pip install cupy-cuda13x``. The C row needs gcc.

    python scripts/gpu_check.py [--spec creativity_reality] [--sizes 20000x400,200000x100]
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import statistics
import time
from collections.abc import Callable

import numpy as np
from creality_generated import cuda_loader

DEFAULT_SIZES = "20000x400,200000x100"


def instance(module, n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list]:
    """x (d,), A (n, d) and the spec's positional parameters, satisfying their rules.

    Parameters with defaults (keyword-only in the generated module) keep them.
    """
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d)) / np.sqrt(d)
    x = rng.standard_normal(d)
    params: list = []
    for name, (kind, rule) in module.RULES.items():
        if name in module.DEFAULTS:
            continue
        if kind == "vector":
            v = rng.random(n) + (0.5 if rule in ("positive", "nonnegative") else 0.0)
            params.append(v / v.sum() if rule == "probability" else v)
        else:
            params.append(0.5)
    return x, A, params


def median_seconds(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    fn()  # warm-up: compilation, caches, cuBLAS handles
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_cuda():
    """torch when it is installed and sees a CUDA device, else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def relative_error(actual, reference: np.ndarray) -> float:
    if hasattr(actual, "detach"):
        actual = actual.detach().cpu().numpy()
    actual = np.asarray(actual.get() if hasattr(actual, "get") else actual)
    return float(np.max(np.abs(actual - reference)) / np.max(np.abs(reference)))


def gpu() -> tuple[object | None, str]:
    """(cupy, device name), or (None, why not)."""
    try:
        import cupy
    except ImportError as exc:
        return None, f"CuPy is not installed ({exc})"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver / no device
        return None, f"CuPy found no usable CUDA device ({type(exc).__name__}: {exc})"
    if count < 1:
        return None, "CuPy found no CUDA device"
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    return cupy, name.decode() if isinstance(name, bytes) else str(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--spec", default="creativity_reality", help="spec name (default: %(default)s)"
    )
    parser.add_argument(
        "--sizes", default=DEFAULT_SIZES, help="comma-separated NxD (default: %(default)s)"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed calls per path (default: %(default)s)"
    )
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    module = importlib.import_module(f"creality_generated.{args.spec}")

    cupy, device = gpu()
    if cupy is None:
        print(f"GPU rows skipped: {device}.")
        print("  Install cupy-cuda12x or cupy-cuda13x (matching the CUDA driver) on a machine")
        print("  with an NVIDIA GPU to time the CUDA kernels and the array-API path.")
    else:
        print(f"GPU: {device} (CuPy {cupy.__version__})")
    host = None
    if shutil.which("gcc"):
        host = cuda_loader.load_host(args.spec)
    else:
        print("C-kernel rows skipped: gcc not on PATH.")
    cuda = cuda_loader.load(args.spec) if cupy is not None else None

    def cpu_sync() -> None:
        return None

    def gpu_sync() -> None:
        cupy.cuda.Device().synchronize()

    columns = ("grad err", "hess err", "grad ms", "hess ms")
    header = f"{'n':>8} {'d':>5}  {'path':<10} " + " ".join(f"{c:>9}" for c in columns)
    print(
        f"\nspec {args.spec}; errors relative to numpy on the CPU; median of {args.repeats} calls"
    )
    print(header)
    print("-" * len(header))
    for n, d in sizes:
        x, A, params = instance(module, n, d)
        reference = (module.gradient(x, A, *params), module.hessian(x, A, *params))
        paths: list[tuple[str, Callable, Callable, tuple, Callable[[], None]]] = [
            ("numpy", module.gradient, module.hessian, (x, A, *params), cpu_sync),
        ]
        if host is not None:
            paths.append(("C kernels", host.gradient, host.hessian, (x, A, *params), cpu_sync))
        if cupy is not None:
            on_gpu = (
                cupy.asarray(x),
                cupy.asarray(A),
                *(cupy.asarray(p) if isinstance(p, np.ndarray) else p for p in params),
            )
            paths.append(("CUDA", cuda.gradient, cuda.hessian, on_gpu, gpu_sync))
            paths.append(("array API", module.gradient, module.hessian, on_gpu, gpu_sync))
        torch = torch_cuda()
        if torch is not None:
            on_torch = (
                torch.as_tensor(x, device="cuda"),
                torch.as_tensor(A, device="cuda"),
                *(
                    torch.as_tensor(p, device="cuda") if isinstance(p, np.ndarray) else p
                    for p in params
                ),
            )
            paths.append(
                ("torch", module.gradient, module.hessian, on_torch, torch.cuda.synchronize)
            )
        for label, grad, hess, call_args, sync in paths:
            try:
                errors = [
                    relative_error(fn(*call_args, validate=False), ref)
                    for fn, ref in zip((grad, hess), reference, strict=True)
                ]
                times = [
                    median_seconds(
                        lambda fn=fn, a=call_args: fn(*a, validate=False), args.repeats, sync
                    )
                    * 1e3
                    for fn in (grad, hess)
                ]
            except Exception as exc:  # report the failing path, keep the others
                print(f"{n:>8} {d:>5}  {label:<10} failed: {type(exc).__name__}: {exc}")
                continue
            print(
                f"{n:>8} {d:>5}  {label:<10} {errors[0]:>9.1e} {errors[1]:>9.1e} "
                f"{times[0]:>9.2f} {times[1]:>9.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
