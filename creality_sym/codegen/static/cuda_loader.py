"""Load and run the generated CUDA kernels (cuda/<spec>.cu).


``load(spec)`` compiles ``cuda/<spec>.cu`` with CuPy (NVRTC) and returns a
:class:`Kernels` whose ``loss``, ``gradient`` and ``hessian`` run the products
with A on the GPU's BLAS (cuBLAS) and the O(n) work in the generated kernels;
arrays may be CuPy or numpy (copied to the device) and results are CuPy
arrays. ``load_host(spec)`` compiles the same source as plain C
(``gcc -x c -std=c99 -O2 -shared -fPIC``) and calls it through ctypes on
numpy arrays: the same algorithm on the CPU.

Each call mirrors the generated numpy module of the spec: z = A x, the
softmax statistics (logits, shifted exponentials, softmax kernels; the caller
takes t_max and the log-sum), one kernel per lowered stage (reduction stages
write per-entry summands that the caller sums), then A^T g for the gradient
and the shifted SYRK assembly for the Hessian.

The specs are the ``cuda/*.json`` descriptions beside this file. Imports
numpy, and CuPy inside ``load``; nothing else.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ._runtime import (
    Arguments,
    Softmax,
    ZPieces,
    check_finite,
    check_logits,
    check_scalar,
    check_vector_rule,
    finish,
    gradient_from,
    hessian_from,
    set_pieces,
)

CUDA_DIR = Path(__file__).resolve().parent / "cuda"
#: the specs whose kernels are here (one description cuda/<spec>.json each)
SPECS = tuple(sorted(p.stem for p in CUDA_DIR.glob("*.json")))
#: threads per block; the grid is capped and the kernels loop grid-stride.
BLOCK = 256
MAX_BLOCKS = 8192
#: how the host path compiles a .cu file (followed by -o LIB SOURCE -lm).
HOST_FLAGS = ("-x", "c", "-std=c99", "-O2", "-shared", "-fPIC")


def description(spec_name, *, folder=None):
    """The parsed kernel description ``<folder>/<spec>.json`` (default: this package's cuda/)."""
    if folder is None:
        if spec_name not in SPECS:
            raise ValueError(f"spec_name must be one of {SPECS}; got {spec_name!r}")
        folder = CUDA_DIR
    path = Path(folder) / f"{spec_name}.json"
    if not path.is_file():
        raise ValueError(f"no kernel description for spec {spec_name!r}: {path} is missing")
    desc = json.loads(path.read_text())
    desc["folder"] = str(Path(folder).resolve())
    return desc


def source_path(spec_name, *, folder=None):
    """Path of the kernel source ``<folder>/<spec>.cu``."""
    desc = description(spec_name, folder=folder)
    return Path(desc["folder"]) / desc["source"]


def _kernel_entries(desc):
    entries = list(desc["softmax"].values())
    entries += [stage for program in desc["programs"].values() for stage in program["stages"]]
    return entries


def _require_cupy():
    try:
        import cupy
    except ImportError as exc:
        reason = f"cannot import cupy ({exc})"
    else:
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # no driver, no device: CuPy raises its own error types
            reason = f"CuPy found no usable CUDA device ({type(exc).__name__}: {exc})"
        else:
            if count > 0:
                return cupy
            reason = "CuPy found no CUDA device"
    raise RuntimeError(
        f"CuPy with a CUDA GPU is required for cuda_loader.load(): {reason}. Install "
        "cupy-cuda12x or cupy-cuda13x (matching the CUDA driver) on a machine with an NVIDIA "
        "GPU, or use cuda_loader.load_host() to run the same kernels on the CPU."
    )


class _GpuLauncher:
    """Launches kernels of a CuPy RawModule with a capped grid (kernels loop grid-stride)."""

    where = "gpu"

    def __init__(self, cupy, source, names):
        self.xp = cupy
        module = cupy.RawModule(code=source)
        self._functions = {name: module.get_function(name) for name in names}

    def __call__(self, name, size, arguments):
        values = []
        for kind, value in arguments:
            if kind in ("size", "index"):
                values.append(np.int64(value))
            elif kind == "scalar":
                values.append(np.float64(value))
            else:
                values.append(value)
        blocks = max(1, min(-(-size // BLOCK), MAX_BLOCKS))
        self._functions[name]((blocks,), (BLOCK,), tuple(values))


class _HostLauncher:
    """Calls the kernels of the source compiled as plain C, through ctypes."""

    where = "host"

    def __init__(self, source, entries, compiler):
        self.xp = np
        cc = shutil.which(compiler)
        if cc is None:
            raise RuntimeError(
                f"host compiler {compiler!r} not found on PATH; install gcc or pass compiler="
            )
        with tempfile.TemporaryDirectory(prefix="creality-cuda-") as folder:
            library = Path(folder) / (Path(source).stem + ".so")
            command = [cc, *HOST_FLAGS, "-o", str(library), str(source), "-lm"]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr}")
            self._library = ctypes.CDLL(str(library))
        self._functions = {}
        for entry in entries:
            fn = getattr(self._library, entry["kernel"])
            fn.restype = None
            fn.argtypes = [
                ctypes.c_longlong
                if a["kind"] in ("size", "index")
                else ctypes.c_double
                if a["kind"] == "scalar"
                else ctypes.c_void_p
                for a in entry["arguments"]
            ]
            self._functions[entry["kernel"]] = fn

    def __call__(self, name, size, arguments):
        values = []
        for kind, value in arguments:
            if kind in ("size", "index"):
                values.append(int(value))
            elif kind == "scalar":
                values.append(float(value))
            else:
                if not (value.dtype == np.float64 and value.flags.c_contiguous):
                    raise TypeError(f"{name}: array arguments must be C-contiguous float64")
                values.append(value.ctypes.data)
        self._functions[name](*values)


class Kernels:
    """The generated kernels of one spec behind the generated module's calls.

    ``loss``, ``gradient`` and ``hessian`` take ``(x, A, *parameters)`` like
    the generated numpy module (keywords and defaults too), with
    ``x (d,)``, ``A (n, d)``; ``validate=False`` skips the rule checks.
    ``softmax``, ``z_pieces`` and ``x_pieces`` expose the kernels' results.
    """

    def __init__(self, desc, launcher):
        self.description = desc
        self.spec = desc["spec"]
        self.where = launcher.where
        self.xp = launcher.xp
        self._launcher = launcher
        self._parameters = desc["parameters"]
        self.parameters = tuple(p["name"] for p in self._parameters)

    def __repr__(self):
        return f"<creality kernels {self.spec!r} on the {self.where}>"

    # -- arguments ---------------------------------------------------------
    def _array(self, name, value):
        try:
            return self.xp.ascontiguousarray(self.xp.asarray(value, dtype=self.xp.float64))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{name} must be a real array; got {type(value).__name__}: {exc}"
            ) from None

    def _bind(self, args, kwargs, n, validate, shapes=("n", "d", "scalar"), d=None):
        params = [p for p in self._parameters if p.get("shape", "n") in shapes]
        names = tuple(p["name"] for p in params)
        if len(args) > len(names):
            raise TypeError(
                f"{self.spec}: expected at most {len(names)} parameters {names}; got {len(args)}"
            )
        given = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"{self.spec}: unknown parameter {key!r}; expected one of {names}")
            if key in given:
                raise TypeError(f"{self.spec}: parameter {key!r} given twice")
            given[key] = value
        values = {}
        for p in params:
            name = p["name"]
            if name not in given and "default" not in p:
                raise TypeError(f"{self.spec}: missing parameter {name!r}")
            value = given.get(name, p.get("default"))
            if p["kind"] == "vector":
                value = self._array(name, value)
                size = d if p.get("shape") == "d" else n
                if size is not None and tuple(value.shape) != (size,):
                    raise ValueError(f"{name} must have shape ({size},); got {tuple(value.shape)}")
            else:
                value = float(value)
            if validate:
                self._check_rule(name, p["kind"], p["rule"], value)
            values[name] = value
        return values

    def _check_rule(self, name, kind, rule, value):
        if kind == "scalar":
            check_scalar(name, value, rule, True)
        else:
            check_finite(self.xp, name, value)
            check_vector_rule(self.xp, name, value, rule)

    def _inputs(self, x, A, args, kwargs, validate):
        x = self._array("x", x)
        A = self._array("A", A)
        if x.ndim != 1:
            raise ValueError(f"x must have shape (d,); got {tuple(x.shape)}")
        if A.ndim != 2 or A.shape[1] != x.shape[0]:
            raise ValueError(f"A must have shape (n, {x.shape[0]}); got {tuple(A.shape)}")
        if validate:  # O(d); a non-finite A shows in the logits (see _logits)
            check_finite(self.xp, "x", x)
        return x, A, self._bind(args, kwargs, A.shape[0], validate, d=A.shape[1])

    def _arguments(self, x, A, validate):
        """The runtime's view of a call, for its checks (check_logits, finish)."""
        return Arguments(self.xp, x, A, (), None, validate)

    def _logits(self, x, A, validate):
        """``z = A x`` (n,), diagnosed like the numpy module: a non-finite A, an overflow,
        and for a spec that keeps the unnormalized exp(z), logits beyond its float64 range."""
        z = A @ x
        uses_exp = bool(self.description.get("uses_exp", False))
        check_logits(self._arguments(x, A, validate), z, uses_exp=uses_exp)
        return z

    # -- kernels -----------------------------------------------------------
    def _launch(self, entry, size, values):
        arguments = [
            (a["kind"], size if a["kind"] == "size" else values[a["name"]])
            for a in entry["arguments"]
        ]
        self._launcher(entry["kernel"], size, arguments)

    def _softmax(self, z, values):
        xp = self.xp
        n = z.shape[0]
        kernels = self.description["softmax"]
        t = xp.empty(n)
        self._launch(kernels["logits"], n, {**values, "z": z, "t": t})
        k = int(xp.argmax(t))
        stats = xp.zeros(2)
        stats[0] = t[k]
        e = xp.empty(n)
        self._launch(kernels["shifted_exp"], n, {**values, "z": z, "stats": stats, "e": e})
        e[k] = 0.0
        rest = float(xp.sum(e))  # sum over j != k: lse = log1p(rest), 1 - f[k] = rest/(1+rest)
        stats[1] = np.log1p(rest)
        f, logf = xp.empty(n), xp.empty(n)
        self._launch(
            kernels["softmax"], n, {**values, "z": z, "stats": stats, "f": f, "logf": logf}
        )
        return f, logf, k, rest / (1.0 + rest)

    def _run(self, program, size, values):
        """Every stage of one program; returns its outputs by name (scalars as 0-d)."""
        xp = self.xp
        spec = self.description["programs"][program]
        stages = spec["stages"]
        r = xp.zeros(0)
        for stage in stages[:-1]:
            m = stage["reductions"]
            red = xp.empty(m * size)
            self._launch(stage, size, {**values, "r": r, "red": red})
            r = xp.concatenate([r, xp.sum(red.reshape(m, size), axis=1)])
        outputs = {name: xp.empty(size) for name in spec["vector_outputs"]}
        scalars = xp.empty(max(1, len(spec["scalar_outputs"])))
        self._launch(stages[-1], size, {**values, **outputs, "r": r, "scalars": scalars})
        for j, name in enumerate(spec["scalar_outputs"]):
            outputs[name] = scalars[j]
        return outputs

    def softmax(self, z, *args, validate=True, **kwargs):
        """``(f, logf, k, fc)`` of the logits z (n,): probabilities, log-probabilities,
        the dominant entry and 1 - f[k] (accurate when f is nearly one-hot)."""
        z = self._array("z", z)
        values = self._bind(args, kwargs, z.shape[0], validate, shapes=("n", "scalar"))
        return self._softmax(z, values)

    def z_pieces(self, kind, f, logf, z, *args, k, fc, validate=True, **kwargs):
        """Outputs of the z-space program ``kind`` ("loss", "gradient", "hessian") by name.

        ``k`` is the dominant entry and ``fc`` = 1 - f[k], as :meth:`softmax` returns them.
        """
        f, logf, z = (self._array(name, a) for name, a in (("f", f), ("logf", logf), ("z", z)))
        values = self._bind(args, kwargs, z.shape[0], validate, shapes=("n", "scalar"))
        return self._run(
            kind, z.shape[0], {**values, "f": f, "logf": logf, "z": z, "k": k, "fc": fc}
        )

    def x_pieces(self, kind, x, *args, validate=True, **kwargs):
        """Outputs of the x-space program ``kind``; ``args`` are the x-space vectors and scalars."""
        if not self.description["has_x"]:
            raise ValueError(f"spec {self.spec!r} has no x-space terms")
        x = self._array("x", x)
        values = self._bind(args, kwargs, None, validate, shapes=("d", "scalar"), d=x.shape[0])
        return self._run(f"x_{kind}", x.shape[0], {**values, "x": x})

    # -- the generated module's calls ---------------------------------------
    def _pieces(self, x, A, values, kind, validate):
        """ZPieces of the total (``kind``: loss, gradient or hessian) at x."""
        xp = self.xp
        z = self._logits(x, A, validate)
        f, logf, k, fc = self._softmax(z, values)
        outputs = self._run(
            kind, z.shape[0], {**values, "f": f, "logf": logf, "z": z, "k": k, "fc": fc}
        )
        sm = Softmax(f, logf, k, fc, xp.arange(z.shape[0]) == k)
        pieces = ZPieces(sm)
        set_pieces(pieces, outputs)
        return pieces

    def _x_outputs(self, x, values, kind):
        if not self.description["has_x"]:
            return None
        return self._run(f"x_{kind}", x.shape[0], {**values, "x": x})

    def probabilities(self, x, A, *args, validate=True, **kwargs):
        """Softmax probabilities f (n,)."""
        x, A, values = self._inputs(x, A, args, kwargs, validate)
        return self._softmax(self._logits(x, A, validate), values)[0]

    def loss(self, x, A, *args, validate=True, **kwargs):
        """Loss value (float)."""
        x, A, values = self._inputs(x, A, args, kwargs, validate)
        value = self._pieces(x, A, values, "loss", validate).loss
        extra = self._x_outputs(x, values, "loss")
        if extra is not None:
            value = value + extra["loss"]
        args = self._arguments(x, A, validate)
        return float(finish(args, "loss", self.xp.asarray(value)))

    def gradient(self, x, A, *args, validate=True, **kwargs):
        """Gradient (d,): A^T g with the dominant entry of g set from its known total."""
        x, A, values = self._inputs(x, A, args, kwargs, validate)
        out = gradient_from(self.xp, A, self._pieces(x, A, values, "gradient", validate))
        extra = self._x_outputs(x, values, "gradient")
        if extra is not None:
            out = out + extra["gradient"]
        return finish(self._arguments(x, A, validate), "gradient", out)

    def hessian(self, x, A, *args, validate=True, **kwargs):
        """Hessian (d, d) = A^T B A by rows shifted by a_k, a sign-split SYRK, low-rank terms."""
        xp = self.xp
        x, A, values = self._inputs(x, A, args, kwargs, validate)
        H = hessian_from(xp, A, self._pieces(x, A, values, "hessian", validate))
        extra = self._x_outputs(x, values, "hessian")
        if extra is not None:
            H = H + xp.eye(H.shape[0], dtype=H.dtype) * extra["hessian_diag"][None, :]
        return finish(self._arguments(x, A, validate), "Hessian", H)


def load(spec_name, *, folder=None):
    """Compile ``cuda/<spec>.cu`` for the GPU (CuPy, NVRTC) and return its :class:`Kernels`.

    Raises RuntimeError when CuPy or a CUDA GPU is missing.
    """
    desc = description(spec_name, folder=folder)
    cupy = _require_cupy()
    source = (Path(desc["folder"]) / desc["source"]).read_text()
    launcher = _GpuLauncher(cupy, source, [e["kernel"] for e in _kernel_entries(desc)])
    return Kernels(desc, launcher)


def load_host(spec_name, *, folder=None, compiler="gcc"):
    """Compile ``cuda/<spec>.cu`` as plain C and return its :class:`Kernels` on numpy arrays."""
    desc = description(spec_name, folder=folder)
    source = Path(desc["folder"]) / desc["source"]
    return Kernels(desc, _HostLauncher(source, _kernel_entries(desc), compiler))
