"""Runtime shared by the generated modules: arguments, softmax, Hessian assembly.

Every generated spec module computes, for logits ``z = A x``, a handful of
per-entry *pieces* (:class:`ZPieces`) from its own printed formulas; this
module turns them into the gradient ``A^T g``, the Hessian ``A^T B A`` and the
Hessian-vector product without any n x n matrix, with

    B = diag(delta) - p f^T - f p^T + c f f^T + U C U^T

(``U`` a few n-vector columns, ``C`` a small symmetric core; both empty for a
loss without global sums). Arrays may come from numpy or, through
``array_api_compat``, from CuPy, PyTorch or JAX: nothing here assigns into an
array of the caller's library (JAX arrays are immutable). Inputs are computed
in float64 (float32 and integer input is converted; see the dtype policy in
the package documentation). Imports numpy only (array_api_compat lazily).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: tolerance on sum(b) - 1 for float64 probability vectors (scaled up for lower precision input)
PROBABILITY_TOLERANCE = 1e-9
#: largest logit for which the unnormalized exp(z) (and its square) stays finite in float64
EXP_LOGIT_LIMIT = 354.0

Array = Any


@dataclass(frozen=True)
class Parameter:
    """One parameter of a generated function, after ``x, A``.

    ``kind`` is ``"vector"`` or ``"scalar"``; ``shape`` is ``"n"`` (one entry
    per logit), ``"d"`` (one per coordinate of x) or ``"scalar"``; ``rule`` is
    checked when ``validate=True``; ``name`` is the argument's name in code.
    """

    name: str
    kind: str
    rule: str
    shape: str
    default: float | None = None


# ----------------------------------------------------------------------------- arguments


def namespace(*arrays: Any) -> Any:
    """numpy for numpy input; otherwise the array_api_compat namespace of the arrays."""
    if all(isinstance(a, (np.ndarray, np.generic, float, int, list, tuple)) for a in arrays):
        return np
    from array_api_compat import array_namespace

    try:
        return array_namespace(*[a for a in arrays if hasattr(a, "shape")])
    except TypeError as exc:
        raise ValueError(
            f"x, A and the vector arguments must come from one array library: {exc}"
        ) from None


def as_array(xp: Any, name: str, value: Any) -> Array:
    """``value`` as a float64 array of ``xp``; complex or non-numeric input is an error."""
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a real array; got {type(value).__name__} {value!r:.40}")
    try:
        a = xp.asarray(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(
            f"{name} must be a real array; got {type(value).__name__}: {exc}"
        ) from None
    if not xp.isdtype(a.dtype, ("bool", "integral", "real floating")):
        raise ValueError(f"{name} must be a real array; got dtype {a.dtype}")
    return a if a.dtype == xp.float64 else xp.astype(a, xp.float64)


def input_eps(value: Any) -> float:
    """Machine epsilon of ``value``'s floating dtype (float64's for anything else)."""
    dtype = getattr(value, "dtype", None)
    try:
        return max(float(np.finfo(np.dtype(str(dtype).split(".")[-1])).eps), 2.0**-52)
    except TypeError:
        return 2.0**-52


def check_finite(xp: Any, name: str, a: Array) -> None:
    """Raise ``ValueError`` naming ``name`` when ``a`` has a non-finite entry."""
    if not bool(xp.all(xp.isfinite(a))):
        bad = int(xp.sum(xp.astype(~xp.isfinite(a), xp.int64)))
        plural = "y" if bad == 1 else "ies"
        raise ValueError(f"{name} must be finite; got {bad} non-finite entr{plural}")


def check_shape(name: str, a: Array, shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` when ``a`` does not have exactly ``shape``."""
    if tuple(a.shape) != shape:
        want = "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{name} must have shape {want}; got {tuple(a.shape)}")


def check_vector_rule(
    xp: Any, name: str, a: Array, rule: str, *, tolerance: float = PROBABILITY_TOLERANCE
) -> None:
    """Raise ``ValueError`` when the vector ``a`` breaks its ``rule``."""
    if rule == "probability":
        if bool(xp.any(a < 0)):
            low = float(xp.min(a))
            raise ValueError(f"{name} must be a probability vector (entries >= 0); got min {low!r}")
        total = float(xp.sum(a))
        if abs(total - 1.0) > tolerance:
            raise ValueError(
                f"{name} must be a probability vector (sum 1.0 ± {tolerance:g}); got sum {total!r}"
            )
    elif rule == "positive" and bool(xp.any(a <= 0)):
        raise ValueError(f"{name} must be > 0 entrywise; got min {float(xp.min(a))!r}")
    elif rule == "nonnegative" and bool(xp.any(a < 0)):
        raise ValueError(f"{name} must be >= 0 entrywise; got min {float(xp.min(a))!r}")


def check_scalar(name: str, value: Any, rule: str, validate: bool) -> float:
    """``value`` as a float; with ``validate``, finite and obeying ``rule``."""
    if isinstance(value, (str, bytes, bool, complex)) or (
        hasattr(value, "dtype") and getattr(value, "ndim", 0) != 0
    ):
        raise ValueError(f"{name} must be a real scalar; got {type(value).__name__} {value!r:.40}")
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real scalar; got {type(value).__name__}") from None
    if validate:
        if not math.isfinite(s):
            raise ValueError(f"{name} must be finite; got {s!r}")
        if rule == "positive" and not s > 0:
            raise ValueError(f"{name} must be > 0; got {s!r}")
        if rule == "nonnegative" and not s >= 0:
            raise ValueError(f"{name} must be >= 0; got {s!r}")
    return s


def scalar_of(xp: Any, value: float) -> Any:
    """A scalar parameter as the generated formulas use it with namespace ``xp``.

    numpy float64 for numpy, so that scalar arithmetic follows IEEE rules like
    the arrays (``1 / (q - 1)`` at ``q = 1`` is inf, which :func:`finish`
    reports as a singular value); a Python float for other libraries (strict
    array-API namespaces accept no numpy scalars), where :class:`quiet` turns
    the ``ZeroDivisionError`` into the same ``ValueError``.
    """
    return np.float64(value) if xp is np else value


@dataclass(frozen=True)
class Arguments:
    """Converted arguments of one call: namespace, x (d,), A (n, d), parameters, v."""

    xp: Any
    x: Array
    A: Array
    values: tuple[Any, ...]
    v: Array | None = None
    validate: bool = True


def prepare(
    x: Any,
    A: Any,
    data: Mapping[str, Any],
    parameters: Sequence[Parameter],
    *,
    validate: bool = True,
    v: Any = None,
) -> Arguments:
    """Convert and (with ``validate``) check the arguments of a generated function.

    Costs O(n + d) beyond the conversion: ``A`` is never scanned here. A
    non-finite ``A`` shows in the logits or the result, and :func:`finish`
    then names it (see :func:`check_logits`).
    """
    vectors = [data[p.name] for p in parameters if p.kind == "vector"]
    xp = namespace(x, A, *vectors, *([] if v is None else [v]))
    A = as_array(xp, "A", A)
    x = as_array(xp, "x", x)
    if A.ndim != 2 or A.shape[0] < 1 or A.shape[1] < 1:
        raise ValueError(f"A must be a non-empty 2-D array (n, d); got shape {tuple(A.shape)}")
    n, d = A.shape
    check_shape("x", x, (d,))
    if validate:
        check_finite(xp, "x", x)
    values = []
    for p in parameters:
        raw = data[p.name]
        if p.kind == "scalar":
            values.append(scalar_of(xp, check_scalar(p.name, raw, p.rule, validate)))
            continue
        a = as_array(xp, p.name, raw)
        check_shape(p.name, a, (n,) if p.shape == "n" else (d,))
        if validate:
            check_finite(xp, p.name, a)
            tol = PROBABILITY_TOLERANCE + a.shape[0] * input_eps(raw)
            check_vector_rule(xp, p.name, a, p.rule, tolerance=tol)
        values.append(a)
    if v is not None:
        v = as_array(xp, "v", v)
        check_shape("v", v, (d,))
        if validate:
            check_finite(xp, "v", v)
    return Arguments(xp, x, A, tuple(values), v, validate)


def check_logits(args: Arguments, z: Array, *, uses_exp: bool) -> None:
    """Diagnose non-finite or overflowing logits ``z = A x`` (n,), naming the argument."""
    if not args.validate:
        return
    xp = args.xp
    if not bool(xp.all(xp.isfinite(z))):
        check_finite(xp, "A", args.A)
        raise ValueError(
            "x and A must give finite logits A @ x; the product overflows float64 "
            f"(max |x| = {float(xp.max(xp.abs(args.x))):.3g}, max |A| = "
            f"{float(xp.max(xp.abs(args.A))):.3g})"
        )
    if uses_exp:
        top = float(xp.max(z))
        if top > EXP_LOGIT_LIMIT:
            raise ValueError(
                f"x: the logits A @ x reach {top:.6g}, and this spec uses the unnormalized "
                f"exp(z), which overflows float64 beyond z = {EXP_LOGIT_LIMIT:g}; "
                "scale x or A down"
            )


#: why a result of arguments that obey their rules is not finite
SINGULAR = (
    "is not finite at these arguments although they obey their rules; "
    "a parameter is at a singular value of the loss (e.g. a division by zero)"
)


def finish(args: Arguments, what: str, value: Array) -> Array:
    """Return ``value`` after checking it is finite (with ``validate``), naming the cause."""
    if args.validate and not bool(args.xp.all(args.xp.isfinite(value))):
        check_finite(args.xp, "A", args.A)
        raise ValueError(f"the {what} {SINGULAR}")
    return value


class quiet:
    """Context: numpy floating-point warnings off (results are checked by :func:`finish`),
    also for a namespace that computes with numpy underneath (array-api-strict);
    a ``ZeroDivisionError`` or ``OverflowError`` of Python-float scalar arithmetic
    (array libraries other than numpy, see :func:`scalar_of`) becomes that
    ``ValueError``."""

    def __init__(self) -> None:
        self._state = np.errstate(all="ignore")

    def __enter__(self) -> None:
        self._state.__enter__()

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        self._state.__exit__(kind, error, trace)
        if kind is not None and issubclass(kind, (ZeroDivisionError, OverflowError)):
            raise ValueError(f"the result {SINGULAR}") from error


# ----------------------------------------------------------------------------- softmax


@dataclass(frozen=True)
class Softmax:
    """Softmax of logits t (n,): f, log f, the dominant index k, fc = 1 - f[k], is_k mask."""

    f: Array
    logf: Array
    k: int
    fc: Array
    is_k: Array


def softmax(xp: Any, t: Array) -> Softmax:
    """Max-shifted softmax of the logits ``t`` (n,).

    With r = sum_{j != k} exp(t_j - t_k), log f = t - t_k - log1p(r) stays
    finite where f underflows, and fc = r / (1 + r) keeps 1 - f[k] accurate
    when f is nearly one-hot (where 1.0 - f[k] would be 0).
    """
    k = int(xp.argmax(t))
    shifted = t - t[k]
    in_place = xp is np  # numpy sets entry k in place: no index vector, no where
    if in_place:
        is_k = np.zeros(t.shape[0], dtype=bool)
        is_k[k] = True
        e = np.exp(shifted)
        e[k] = 0.0
    else:
        is_k = xp.arange(t.shape[0]) == k
        e = xp.where(is_k, xp.zeros_like(shifted), xp.exp(shifted))
    rest = xp.sum(e)
    logf = shifted - xp.log1p(rest)
    scale = 1.0 / (1.0 + rest)
    if in_place:
        e *= scale
        e[k] = scale
        f = e
    else:
        f = at_dominant(xp, is_k, scale, e * scale)
    return Softmax(f, logf, k, rest * scale, is_k)


def at_dominant(xp: Any, is_k: Array, value_k: Any, values: Array) -> Array:
    """``values`` (n,) with entry k replaced by ``value_k`` (a fresh array, no assignment)."""
    return xp.where(is_k, xp.astype(xp.asarray(value_k), values.dtype), values)


def full(xp: Any, like: Array, value: Any) -> Array:
    """A fresh array shaped like ``like`` holding ``value`` everywhere."""
    return xp.zeros_like(like) + value


# ----------------------------------------------------------------------------- pieces


@dataclass
class ZPieces:
    """What a spec module computes at logits z: loss, gradient and Hessian pieces.

    ``None`` stands for zero. ``g`` (n,) has ``g_total = <1, g>`` known
    exactly; the z-Hessian is ``diag(delta) - p f^T - f p^T + c f f^T`` with
    ``ones`` = its row sums (``ones_total`` their sum), plus ``U C U^T`` with
    ``columns`` (each (n,), sum ``totals[i]``) and the symmetric ``core``.
    """

    softmax: Softmax
    loss: Any = None
    g: Array | None = None
    g_total: Any = 0.0
    delta: Array | None = None
    p: Array | None = None
    c: Any = 0.0
    ones: Array | None = None
    ones_total: Any = 0.0
    columns: tuple[Array, ...] = ()
    totals: tuple[Any, ...] = ()
    core: tuple[tuple[Any, ...], ...] = field(default=())

    @property
    def f(self) -> Array:
        return self.softmax.f


@dataclass
class XPieces:
    """x-space pieces: loss, gradient (d,) and Hessian diagonal (d,); ``None`` is zero."""

    loss: Any = None
    gradient: Array | None = None
    hessian_diag: Array | None = None


def set_pieces(pieces: ZPieces, outputs: Mapping[str, Any]) -> None:
    """Store a piece function's outputs; ``lr{i}``, ``lr{i}_total``, ``core{i}_{j}`` (i <= j)
    become ``columns``, ``totals`` and the symmetric ``core``."""
    rank = sum(1 for key in outputs if key.startswith("lr") and not key.endswith("_total"))
    for key, value in outputs.items():
        if not key.startswith(("lr", "core")):
            setattr(pieces, key, value)
    if rank:
        pieces.columns = tuple(outputs[f"lr{i}"] for i in range(rank))
        pieces.totals = tuple(outputs.get(f"lr{i}_total", 0.0) for i in range(rank))
        pieces.core = tuple(
            tuple(outputs.get(f"core{min(i, j)}_{max(i, j)}", 0.0) for j in range(rank))
            for i in range(rank)
        )


def set_dominant_total(xp: Any, g: Array, is_k: Array, total: Any) -> Array:
    """``g`` with entry k set so that ``sum(g)`` equals the exactly known ``total``.

    Then A^T g = (A - 1 a_k^T)^T g + a_k total: the rows are effectively
    shifted by the dominant row without forming the shift, and the dominant
    entry's rounding (large when f is nearly one-hot) drops out.
    """
    others = xp.sum(xp.where(is_k, xp.zeros_like(g), g))
    return at_dominant(xp, is_k, total - others, g)


def zero_if_none(xp: Any, a: Array | None, like: Array) -> Array:
    return xp.zeros_like(like) if a is None else a


def z_gradient_vector(xp: Any, zp: ZPieces) -> Array:
    """g (n,) with its dominant entry set from ``g_total``."""
    g = zero_if_none(xp, zp.g, zp.f)
    return set_dominant_total(xp, g, zp.softmax.is_k, zp.g_total)


def gradient_from(xp: Any, A: Array, zp: ZPieces) -> Array:
    """``A^T g`` (d,), accurate when f is one-hot."""
    return A.T @ z_gradient_vector(xp, zp)


def _low_rank_factors(xp: Any, A: Array, zp: ZPieces) -> tuple[Array, Array] | None:
    """``(A^T U (d, K), C (K, K))`` of the low-rank part, or None when there is none."""
    if not zp.columns:
        return None
    is_k = zp.softmax.is_k
    cols = [
        set_dominant_total(xp, u, is_k, total)
        for u, total in zip(zp.columns, zp.totals, strict=True)
    ]
    AU = A.T @ xp.stack(cols, axis=1)
    core = xp.asarray([[float(c) for c in row] for row in zp.core], dtype=AU.dtype)
    return AU, core


# ----------------------------------------------------------------------------- Hessian

#: bytes of the shifted-and-scaled row block handed to one syrk (a fraction of the last-level cache)
_BLOCK_BYTES = 12 << 20
#: bytes of the row chunk gathered, shifted and scaled in one go (about the core's L2 cache:
#: smaller chunks cost more in per-call overhead than they gain in locality)
_CHUNK_BYTES = 1 << 20
#: bytes of the row block of A that one Hessian-vector product reuses from cache
_PASS_BYTES = 4 << 20
#: the same on the worker threads (one core's share of the cache each)
_WORKER_PASS_BYTES = 2 << 20


#: bytes of A below which the blocked passes run in the calling thread only
_PARALLEL_BYTES = 256 << 20
#: the same where BLAS parks its idle threads promptly (:func:`blas_parks_promptly`): then
#: the workers pay from a few MB on (below, thread hand-offs cost more than they gain)
_PARKED_PARALLEL_BYTES = 8 << 20
#: largest ``OPENBLAS_THREAD_TIMEOUT`` (idle threads spin ``2**value`` cycles) taken as prompt
PROMPT_THREAD_TIMEOUT = 24
#: most worker threads of one blocked pass (each runs single-threaded BLAS)
MAX_WORKERS = 16


def blas_parks_promptly(controllers: Sequence[Any]) -> bool:
    """Whether every BLAS in ``controllers`` (threadpoolctl's) is an OpenBLAS whose idle
    threads stop spinning within ``2**PROMPT_THREAD_TIMEOUT`` cycles (a few ms).

    After a multi-threaded call, OpenBLAS's threads spin ``2**t`` cycles before
    they sleep, ``t`` from ``OPENBLAS_THREAD_TIMEOUT`` as it was when OpenBLAS
    loaded (default 28: about 0.1 s). A spinning thread takes a core from the
    workers; a blocked pass then runs slower than the serial one up to a few
    hundred MB of A. The ``creality`` command sets the variable (unless it is
    set) before numpy loads; a program of its own may set it the same way.
    """
    try:
        timeout = int(os.environ.get("OPENBLAS_THREAD_TIMEOUT", ""))
    except ValueError:
        return False
    apis = {getattr(c, "internal_api", None) for c in controllers}
    return bool(controllers) and apis == {"openblas"} and timeout <= PROMPT_THREAD_TIMEOUT


#: seconds :func:`idle_blas_threads_park` sleeps after a two-thread product
PARK_PROBE_SECONDS = 0.02


def idle_blas_threads_park(controller: Any) -> bool:
    """Whether BLAS's idle threads really stop spinning promptly: measured, once per process.

    ``OPENBLAS_THREAD_TIMEOUT`` counts only as OpenBLAS saw it when it loaded;
    a program that sets it after ``import numpy`` changes the variable, not
    OpenBLAS. So after one product on two BLAS threads (``controller``,
    threadpoolctl's) the process's CPU time over a sleep of
    :data:`PARK_PROBE_SECONDS` is read: a thread still spinning adds about
    the whole sleep, parked threads nothing. Busy threads of the caller's own
    read as spinning too, which only keeps the workers for larger ``A``.
    """
    a = np.ones((256, 256))
    with controller.limit(limits=2, user_api="blas"):
        a @ a
    start = time.process_time()
    time.sleep(PARK_PROBE_SECONDS)
    return time.process_time() - start < 0.5 * PARK_PROBE_SECONDS


class _Workers:
    """Worker threads for the blocked passes over A, each with one BLAS thread.

    The row preparation of the signed Gram (shift, scale) is numpy work in one
    thread while BLAS runs the syrk on all cores; with BLAS limited to one
    thread (through ``threadpoolctl``) per worker, each core prepares and adds
    its own blocks instead, and the per-worker results are summed in a fixed
    order (deterministic). A whole Hessian runs under one such limit
    (:meth:`hold`): OpenBLAS's own threads keep spinning for a while after a
    multi-threaded call and would take a core from the workers. Without
    ``threadpoolctl``, with a BLAS it cannot limit, on one core, or while
    another thread holds the workers (the BLAS thread count is process-wide),
    everything runs in the calling thread as before.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: int | None = None
        self._pool: Any = None
        self._pid = os.getpid()
        self._controller: Any = None
        self._usable: bool | None = None
        self._parks = False

    @property
    def count(self) -> int:
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cpus = os.cpu_count() or 1
        return max(1, min(cpus, MAX_WORKERS))

    def _ready(self) -> bool:
        if self._usable is None:
            self._usable = False
            if self.count > 1:
                try:
                    from threadpoolctl import ThreadpoolController
                except ImportError:
                    return False
                self._controller = ThreadpoolController()
                blas = self._controller.select(user_api="blas").lib_controllers
                self._usable = bool(blas)
                self._parks = blas_parks_promptly(blas) and idle_blas_threads_park(self._controller)
        return self._usable

    @property
    def threshold(self) -> int:
        """Bytes of A from which a blocked pass uses the workers: :data:`_PARALLEL_BYTES`,
        or at most :data:`_PARKED_PARALLEL_BYTES` where BLAS parks its threads promptly
        (:func:`blas_parks_promptly`, confirmed by :func:`idle_blas_threads_park`)."""
        if self._ready() and self._parks:
            return min(_PARALLEL_BYTES, _PARKED_PARALLEL_BYTES)
        return _PARALLEL_BYTES

    def for_array(self, A: Any) -> int:
        """Workers a blocked pass over ``A`` gets: one per core for a numpy ``A`` of
        :attr:`threshold` bytes or more when BLAS can be limited, else 1."""
        if not isinstance(A, np.ndarray) or not self._ready() or A.nbytes < self.threshold:
            return 1
        return self.count

    @property
    def held(self) -> bool:
        """Whether the calling thread holds the workers."""
        return self._holder == threading.get_ident()

    @contextmanager
    def hold(self, A: Any = None) -> Iterator[bool]:
        """Hold the workers (and BLAS at one thread) for a call on a large numpy ``A``
        (any size when None).

        Yields whether they are held; nested or concurrent holds yield False.
        """
        if (
            (A is not None and self.for_array(A) < 2)
            or not self._ready()
            or not self._lock.acquire(blocking=False)
        ):
            yield False
            return
        try:
            if self._pool is None or self._pid != os.getpid():  # none yet, or a forked child
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.count, thread_name_prefix="creality")
                self._pid = os.getpid()
            with self._controller.limit(limits=1, user_api="blas"):
                self._holder = threading.get_ident()
                yield True
        finally:
            self._holder = None
            self._lock.release()

    def map(self, fn: Any, parts: Sequence[Any]) -> list[Any] | None:
        """``[fn(part) for part in parts]`` on the workers, or None (run it serially)."""
        if len(parts) < 2:
            return None
        if self.held:
            return list(self._pool.map(fn, parts))
        with self.hold() as held:
            return list(self._pool.map(fn, parts)) if held else None


def _summed_runs(
    blocks: Callable[[Sequence[int]], np.ndarray], starts: Sequence[int], workers: int
) -> np.ndarray | None:
    """``sum(blocks(run))`` over ``workers`` contiguous runs of ``starts``, one run per worker,
    the partial sums added in a fixed order (the same bits on every call); None when the
    workers are not available (the caller runs ``blocks(starts)`` itself)."""
    per = -(-len(starts) // workers)
    found = _WORKERS.map(blocks, [starts[w * per : (w + 1) * per] for w in range(workers)])
    if found is None:
        return None
    out = found[0]
    for part in found[1:]:
        out += part
    return out


def on_workers(fn: Callable[[Any], Any], parts: Sequence[Any]) -> list[Any]:
    """``[fn(part) for part in parts]``, on the workers where the calling thread holds them
    (:func:`hold_workers`), else serially in the calling thread.

    For independent pieces of work a caller splits itself (each ``fn`` call
    runs with BLAS at one thread while the workers are held); the results are
    in the order of ``parts`` whichever thread computed them.
    """
    found = _WORKERS.map(fn, parts) if _WORKERS.held else None
    return [fn(part) for part in parts] if found is None else found


def matvec(A: Array, x: Array) -> Array:
    """``A @ x`` (n,); on the held workers (:class:`_Workers`) by blocks of rows."""
    if not _WORKERS.held or not isinstance(A, np.ndarray):
        return A @ x
    n, workers = A.shape[0], _WORKERS.count
    step = max(64, -(-n // (4 * workers)))
    out = np.empty(n, dtype=np.result_type(A, x))
    starts = list(range(0, n, step))
    parts = [starts[w::workers] for w in range(workers)]

    def rows(starts: Sequence[int]) -> None:
        for i in starts:
            np.matmul(A[i : i + step], x, out=out[i : i + step])

    if _WORKERS.map(rows, parts) is None:
        return A @ x
    return out


_WORKERS = _Workers()


def hold_workers(A: Any = None) -> AbstractContextManager[bool]:
    """Hold the worker threads (BLAS at one thread each) for the blocked passes over ``A``.

    Yields whether they are held (see :meth:`_Workers.hold`); the generated
    ``hessian`` holds them around its Gram, and a caller that computes the
    Hessian from its own pieces (:func:`hessian_from`) does the same.
    """
    return _WORKERS.hold(A)


class _Workspaces(threading.local):
    """Work arrays of the blocked passes, kept per thread from one call to the next.

    A fresh buffer of a few MB costs a page fault per 4 KB page on first
    touch (thousands per Hessian, measurable beside the syrks); the row
    buffers are therefore reused. Each thread keeps one array per name, at
    most two row blocks and a chunk (about 10 MB per worker thread, up to
    25 MB in the serial path), replaced when a call needs more or far less.
    """

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        """An uninitialized float64 array of ``shape`` (C order), this thread's for ``name``."""
        size = shape[0] * shape[1]
        flat = self.arrays.get(name)
        if flat is None or not size <= flat.shape[0] <= 4 * size:
            flat = self.arrays[name] = np.empty(size)
        return flat[:size].reshape(shape)


_WORKSPACES = _Workspaces()


#: largest |rows / sqrt|delta|| carried as a Gram column: its square, summed over any n < 2**64
#: rows, stays finite (a row beyond it, or with delta = 0, adds its thin product on its own)
_THIN_LIMIT = 2.0**480


def _thin_columns(
    rows: Sequence[np.ndarray], delta: np.ndarray, root: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(C (m, n), special)``: the columns that make the Gram carry ``rows @ A~``.

    A buffer row ``[sqrt|delta_i| a~_i, C[:, i]]`` adds ``sign_i sqrt|delta_i| a~_i
    C[:, i]^T = a~_i rows_i^T`` to the Gram's off-diagonal block when ``C[:, i] =
    rows_i / (sign_i sqrt|delta_i|)``. Rows where that is not finite or beyond
    :data:`_THIN_LIMIT` get ``C[:, i] = 0`` and are listed in ``special`` (their
    thin products are added directly); row k (a~_k = 0) gets 0 and adds nothing.
    """
    signed = np.copysign(root, delta)  # sign_i sqrt|delta_i| (no branch on the sign)
    C = np.empty((len(rows), root.shape[0]))
    with np.errstate(all="ignore"):
        for row, out in zip(rows, C, strict=True):
            np.divide(row, signed, out=out)
    C[:, k] = 0.0
    largest = np.max(np.abs(C), axis=0)
    if bool(largest.max() <= _THIN_LIMIT):  # the common case: every row carried
        return C, np.zeros(0, dtype=np.intp)
    special = np.flatnonzero(~(largest <= _THIN_LIMIT))  # NaN is special too
    C[:, special] = 0.0
    return C, special


def _special_thin(
    A: np.ndarray, k: int, rows: Sequence[np.ndarray], special: np.ndarray
) -> np.ndarray:
    """``rows[:, special] @ (A[special] - a_k)`` (m, d), gathered a block at a time."""
    out = np.zeros((len(rows), A.shape[1]))
    step = max(64, _BLOCK_BYTES // (8 * A.shape[1]))
    for lo in range(0, special.shape[0], step):
        part = special[lo : lo + step]
        block = A[part]
        block -= A[k]
        out += np.stack([row[part] for row in rows]) @ block
    return out


def _signed_gram_numpy(
    A: np.ndarray, k: int, delta: np.ndarray, rows: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """(A - 1 a_k^T)^T diag(delta) (A - 1 a_k^T) by blocks of rows, no n x d work array;
    and the thin product ``rows @ (A - 1 a_k^T)`` (m, d) for ``m`` rows (n,) in the same syrks.

    A is read once, block by block of contiguous rows. The rows of a block
    are shifted by the dominant row and scaled by sqrt|delta| chunk by chunk
    (each chunk while it sits in cache) into a reused buffer for their sign
    (a block holding both signs is gathered by sign while it stays in the
    last-level cache); a full buffer is added by one symmetric rank-k update
    (syrk) into the Gram of its sign. n d^2 flops for any mix of signs,
    memory for two blocks per worker. The buffer rows carry ``m`` more
    columns (:func:`_thin_columns`), so the same syrks give the thin product
    in the Gram's off-diagonal block: no second product over the rows (a
    product with a few rows is bound by copying them, not by its flops).
    With several cores the blocks are dealt out to worker threads in turn
    (:class:`_Workers`), each with its own Grams.
    """
    n, d = A.shape
    root = np.sqrt(np.abs(delta))
    negative = delta < 0
    columns, special = _thin_columns(rows, delta, root, k)
    workers = _WORKERS.for_array(A)
    step = max(64, _BLOCK_BYTES // (8 * d))
    if workers > 1:  # at least four blocks per worker, each at most a third of the serial one
        step = max(64, min(step // 3, -(-n // (4 * workers))))
    starts = list(range(0, n, step))
    parts = [starts[w::workers] for w in range(workers)]

    def blocks(part: Sequence[int]) -> np.ndarray:
        return _gram_blocks(A, k, root, negative, columns, part, step)

    found = _WORKERS.map(blocks, parts)
    if found is None:
        found = [blocks(starts)]
    G = found[0]
    for other in found[1:]:
        G += other
    m = len(rows)
    H = np.ascontiguousarray(G[:d, :d])
    thin = np.ascontiguousarray(G[:d, d : d + m].T)
    if special.shape[0]:
        thin += _special_thin(A, k, rows, special)
    return H, thin


def _gram_blocks(
    A: np.ndarray,
    k: int,
    root: np.ndarray,
    negative: np.ndarray,
    columns: np.ndarray,
    starts: Sequence[int],
    step: int,
) -> np.ndarray:
    """The signed Gram of the rows ``[sqrt|delta_i| (a_i - a_k), columns[:, i]]`` of the row blocks
    ``[i, i + step)``, ``i`` in ``starts``: (w, w), w >= d + m.

    Rows are shifted and scaled into one buffer per sign of delta (``step``
    rows each), and a buffer is added to its sign's Gram by one syrk when it
    is full (and at the end): every syrk has a full block of rows whatever
    the mix of signs (two half-size syrks cost a fifth more than one). The
    buffer's width is rounded up to whole cache lines (zero columns), and
    each chunk is prepared in a contiguous scratch array first (numpy's
    loops into strided rows are much slower); the buffers are this thread's
    :class:`_Workspaces`.
    """
    n, d = A.shape
    m = columns.shape[0]
    width = -(-(d + m) // 8) * 8
    a_k = A[k]
    sub = max(16, _CHUNK_BYTES // (8 * d))
    cap = min(step, n)
    scratch = _WORKSPACES.get("chunk", (min(sub, cap), d))
    buffers: dict[bool, np.ndarray] = {}  # keyed by "delta >= 0", taken when first needed
    fill = {True: 0, False: 0}
    grams = {True: np.zeros((width, width)), False: np.zeros((width, width))}

    def flush(positive: bool) -> None:
        if fill[positive]:  # rows were put, so the buffer exists
            part = buffers[positive][: fill[positive]]
            grams[positive] += part.T @ part
        fill[positive] = 0

    def put(positive: bool, which: range | np.ndarray) -> None:
        """The rows ``which`` of A (a range of consecutive rows, or an index array), shifted
        and scaled, with their columns, into the buffer of their sign, chunk by chunk."""
        buffer = buffers.get(positive)
        if buffer is None:
            name = "rows >= 0" if positive else "rows < 0"
            buffer = buffers[positive] = _WORKSPACES.get(name, (cap, width))
            buffer[:, d + m :] = 0.0
        done, count = 0, len(which)
        while done < count:
            at = fill[positive]
            take = min(sub, count - done, cap - at)
            out = buffer[at : at + take]
            work = scratch[:take]
            if isinstance(which, range):
                lo = which.start + done
                np.subtract(A[lo : lo + take], a_k, out=work)
                np.multiply(work, root[lo : lo + take, None], out=out[:, :d])
                out[:, d : d + m] = columns[:, lo : lo + take].T
            else:
                part = which[done : done + take]
                np.take(A, part, axis=0, out=work, mode="clip")
                work -= a_k
                np.multiply(work, root[part, None], out=out[:, :d])
                out[:, d : d + m] = columns[:, part].T
            done += take
            fill[positive] = at + take
            if fill[positive] == cap:
                flush(positive)

    for i in starts:
        j = min(i + step, n)
        signs = negative[i:j]
        below = int(np.count_nonzero(signs))  # rows of the block with delta < 0
        if below in (0, j - i):
            put(below == 0, range(i, j))
        else:
            put(True, i + np.flatnonzero(~signs))
            put(False, i + np.flatnonzero(signs))
    flush(True)
    flush(False)
    G = grams[True]
    G -= grams[False]
    return G


def shifted_row_pass(
    A: np.ndarray, v: np.ndarray, k: int, weights: np.ndarray
) -> tuple[np.ndarray, float, np.ndarray]:
    """One pass over A (numpy) for the shifted product with ``v (d,)``.

    Returns ``(s, u_k, y)``: ``u_k = a_k . v``, ``s = A v - u_k`` (n,) with
    ``s_k = 0`` exactly and ``y = A~^T (weights * s)`` (d,), A~ = A - 1 a_k^T.
    Each block of rows serves ``A v`` and then, still in cache, the
    transposed product; the shift is applied as ``- a_k sum(weights * s)`` at
    the end. Half the memory traffic of two separate products: the solver's
    Hessian-vector products at one point use it (with the thin products
    ``A~^T p``, ``A~^T f``, ``A~^T B1`` computed once for all of them). Where
    the Gram uses worker threads (:meth:`_Workers.for_array`), the blocks are
    dealt out to them too (smaller blocks, one BLAS thread each; the partial
    sums are added in a fixed order).
    """
    n, d = A.shape
    a_k = A[k]
    u_k = float(a_k @ v)
    s = np.empty(n)
    workers = _WORKERS.for_array(A)
    step = max(16, (_PASS_BYTES if workers < 2 else _WORKER_PASS_BYTES) // (8 * d))
    starts = list(range(0, n, step))

    def blocks(part: Sequence[int]) -> np.ndarray:
        # as few numpy calls per block as possible: on the workers every call that holds
        # the GIL delays the other thread's next BLAS call (a per-block sum cost 20%)
        out = np.zeros(d)
        term = np.empty(d)
        t = np.empty(step)
        for i in part:
            j = min(i + step, n)
            block = A[i:j]
            shifted = np.matmul(block, v, out=s[i:j])
            shifted -= u_k
            if i <= k < j:
                shifted[k - i] = 0.0
            np.multiply(shifted, weights[i:j], out=t[: j - i])
            out += np.matmul(t[: j - i], block, out=term)
        return out

    out = _summed_runs(blocks, starts, workers) if workers > 1 else None
    if out is None:
        out = blocks(starts)
    out -= float(weights @ s) * a_k
    return s, u_k, out


#: fewest columns of A and rows of V for which :func:`row_products` deals its blocks to the
#: workers: a small-``m`` GEMM on one thread is inefficient for narrow blocks (at d = 100,
#: 1.3x the two-thread BLAS call), and one row is a GEMV that BLAS's own call streams as
#: fast; from d = 128 and three rows on the workers take 0.7-0.8x its time
_WORKER_PRODUCT_COLUMNS = 128
_WORKER_PRODUCT_ROWS = 3


def row_products(rows: Sequence[np.ndarray], A: np.ndarray) -> np.ndarray:
    """``V @ A`` (m, d) for a few vectors ``rows`` (each (n,)) stacked as ``V``, and ``A (n, d)``.

    One pass over ``A``. Where the blocked passes use worker threads
    (:meth:`_Workers.for_array`), ``A`` has at least
    :data:`_WORKER_PRODUCT_COLUMNS` columns and ``V`` at least
    :data:`_WORKER_PRODUCT_ROWS` rows, ``V`` is stacked once and each
    worker multiplies a contiguous run of row blocks (one BLAS thread each,
    partial sums added in a fixed order); otherwise BLAS multiplies row blocks
    of about :data:`_BLOCK_BYTES`, each block of ``V`` stacked on the fly (no
    ``(m, n)`` array; BLAS's one-call product would also pack all of ``A``
    first, slower for ``m`` this small).
    """
    n, d = A.shape
    m = len(rows)
    wide = d >= _WORKER_PRODUCT_COLUMNS and m >= _WORKER_PRODUCT_ROWS
    workers = _WORKERS.for_array(A) if wide else 1
    if workers > 1:
        V = np.stack(rows)
        step = max(16, _WORKER_PASS_BYTES // (8 * d))
        starts = list(range(0, n, step))

        def blocks(part: Sequence[int]) -> np.ndarray:
            out = np.zeros((m, d))
            term = np.empty((m, d))
            for i in part:
                j = min(i + step, n)
                out += np.matmul(V[:, i:j], A[i:j], out=term)
            return out

        summed = _summed_runs(blocks, starts, workers)
        if summed is not None:
            return summed
    step = max(1, _BLOCK_BYTES // (8 * d))
    out = np.zeros((m, d))
    block = np.empty((m, min(step, n)))
    for i in range(0, n, step):
        j = min(i + step, n)
        V = block[:, : j - i]
        for r, row in enumerate(rows):
            V[r] = row[i:j]
        out += V @ A[i:j]
    return out


def _signed_gram(
    xp: Any, A: Array, k: int, delta: Array, rows: Sequence[Array]
) -> tuple[Array, Array]:
    """(A - 1 a_k^T)^T diag(delta) (A - 1 a_k^T) as symmetric rank-n updates (syrk), and
    ``rows @ (A - 1 a_k^T)`` (m, d) for ``m`` rows (n,) (entry k of a row is ignored;
    one pass over A for both with numpy)."""
    if xp is np:
        return _signed_gram_numpy(A, k, delta, rows)
    shifted = A - A[k, :]
    thin = xp.stack(rows) @ shifted
    S = shifted * xp.sqrt(xp.abs(delta))[:, None]
    return signed_gram(xp, S, delta < 0), thin  # the same two updates as the numpy path


def signed_gram(xp: Any, S: Array, negative: Array) -> Array:
    """``S^T diag(sign) S`` (d, d) for rows ``S (m, d)``, ``sign = -1`` where ``negative (m,)``.

    One symmetric rank-k update (syrk) per sign, ``S_+^T S_+ - S_-^T S_-``:
    ``m d^2`` flops for any mix of signs (the GEMM form ``S^T (sign * S)``
    costs twice that). The result has the dtype of ``S``.
    """
    n_negative = int(xp.count_nonzero(negative))
    if not n_negative:
        return S.T @ S
    if n_negative == S.shape[0]:
        return -(S.T @ S)
    S_pos, S_neg = S[~negative], S[negative]
    return S_pos.T @ S_pos - S_neg.T @ S_neg


def _sum_zero_rows(xp: Any, V: Array, is_k: Array) -> Array:
    """Rows of V (m, n) with entry k set to minus the sum of the others (rows sum to 0)."""
    others = xp.sum(xp.where(is_k[None, :], xp.zeros_like(V), V), axis=1)
    return xp.where(is_k[None, :], -others[:, None], V)


def hessian_from(xp: Any, A: Array, zp: ZPieces) -> Array:
    """``A^T B A`` (d, d) for the pieces' z-Hessian, never forming B.

    With A~ = A - 1 a_k^T (k the dominant logit) and ``ones`` = B 1_n:
    A^T B A = A~^T B A~ + A~^T(B1) a_k^T + a_k (B1)^T A~ + <1, B1> a_k a_k^T.
    The diagonal part is one symmetric rank-n update per sign of delta over
    the scaled rows of A~; the thin products with A~ (``p``, ``f``, ``B1`` and
    the low-rank columns) come from the same syrks as the Gram (with numpy);
    the rank-2 part and the shift corrections are one d x 2 by 2 x d product
    added as L + L^T, so the result is exactly symmetric (with numpy). Cost:
    n (d + 3 + K)^2 flops (the syrks) and one pass over A. Accurate relative
    to the result when f is one-hot: row k of A~ is zero, so the dominant
    entries (whose rounding is large there) drop out, and only the exactly
    known totals enter (``A^T u = A~^T u + <1, u> a_k``). The low-rank part
    adds ``(A^T U) C (A^T U)^T``.
    """
    f = zp.f
    k = zp.softmax.k
    d = A.shape[1]
    a_k = A[k, :]
    present = [v for v in (zp.p, zp.ones) if v is not None]
    rows = [f, *present, *zp.columns]  # f, then p and B1 where not zero
    if zp.delta is None:
        H = xp.zeros((d, d), dtype=A.dtype)
        thin = _sum_zero_rows(xp, xp.stack(rows), zp.softmax.is_k) @ A  # = rows @ A~
    else:  # the thin products come from the Gram's syrks
        H, thin = _signed_gram(xp, A, k, zp.delta, rows)
    F = thin[0, :]
    at = 1
    P = M = xp.zeros_like(F)
    if zp.p is not None:
        P, at = thin[at, :], at + 1
    if zp.ones is not None:
        M, at = thin[at, :], at + 1
    U = xp.stack([0.5 * float(zp.c) * F - P, M + 0.5 * float(zp.ones_total) * a_k], axis=1)
    L = U @ xp.stack([F, a_k])
    if zp.columns:
        totals = xp.asarray([float(t) for t in zp.totals], dtype=A.dtype)
        AU = thin[at:, :].T + a_k[:, None] * totals[None, :]
        core = xp.asarray([[float(c) for c in row] for row in zp.core], dtype=A.dtype)
        L = L + 0.5 * (AU @ core) @ AU.T
    return H + (L + L.T)


def hvp_from(xp: Any, A: Array, v: Array, zp: ZPieces) -> Array:
    """``A^T B A v`` (d,) in O(n d): two passes over A.

    u = A v is shifted by its dominant entry (B u = B (u - u_k 1) + u_k B 1),
    and the dominant entry of the result is set from its exactly known total.
    (A one-off product needs no thin products this way; the solver, which
    makes many at one point, uses :func:`shifted_row_pass` instead.)
    """
    f = zp.f
    is_k = zp.softmax.is_k
    u = A @ v
    u_k = u[zp.softmax.k]
    u = u - u_k
    delta = zero_if_none(xp, zp.delta, f)
    p = zero_if_none(xp, zp.p, f)
    ones = zero_if_none(xp, zp.ones, f)
    fu = xp.sum(f * u)
    pu = xp.sum(p * u)
    y = delta * u - p * fu + f * (float(zp.c) * fu - pu) + u_k * ones
    y = set_dominant_total(xp, y, is_k, xp.sum(ones * u) + u_k * float(zp.ones_total))
    out = A.T @ y
    factors = _low_rank_factors(xp, A, zp)
    if factors is not None:
        AU, core = factors
        out = out + AU @ (core @ (AU.T @ v))
    return out


class ZHessian:
    """The n x n z-Hessian ``diag(delta) - p f^T - f p^T + c f f^T + U C U^T`` by its pieces.

    ``matvec(u)`` costs O(n K); ``dense()`` forms the n x n matrix (small n only).
    """

    def __init__(self, pieces: ZPieces, xp: Any = np) -> None:
        self._xp = xp
        f = pieces.f
        self.f = f
        self.delta = zero_if_none(xp, pieces.delta, f)
        self.p = zero_if_none(xp, pieces.p, f)
        self.c = float(pieces.c)
        self.columns = tuple(pieces.columns)
        self.core = tuple(tuple(float(c) for c in row) for row in pieces.core)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.f.shape[0], self.f.shape[0])

    def matvec(self, u: Array) -> Array:
        """B u for u (n,)."""
        xp = self._xp
        fu = xp.sum(self.f * u)
        out = self.delta * u - self.p * fu + self.f * (self.c * fu - xp.sum(self.p * u))
        if self.columns:
            coeffs = [xp.sum(col * u) for col in self.columns]
            for i, col in enumerate(self.columns):
                out = out + col * sum(self.core[i][j] * coeffs[j] for j in range(len(coeffs)))
        return out

    def dense(self) -> Array:
        """The explicit n x n matrix."""
        xp = self._xp
        n = self.f.shape[0]
        f, p = self.f[:, None], self.p[:, None]
        out = (
            xp.eye(n, dtype=self.delta.dtype) * self.delta[None, :]
            - p * f.T
            - f * p.T
            + self.c * (f * f.T)
        )
        for i, ci in enumerate(self.columns):
            for j, cj in enumerate(self.columns):
                if self.core[i][j]:
                    out = out + self.core[i][j] * (ci[:, None] * cj[None, :])
        return out

    def __repr__(self) -> str:
        return f"ZHessian(n={self.f.shape[0]}, low_rank={len(self.columns)})"


# ----------------------------------------------------------------------------- model


ZFunction = Any  # (xp, softmax, z, *values) -> ZPieces fields (dict)
XFunction = Any  # (xp, x, *values) -> XPieces fields (dict)


@dataclass(frozen=True)
class Model:
    """The public API of one generated spec module, driven by its printed pieces.

    ``z_functions[term]`` holds the (loss, gradient, hessian) piece functions
    of a term (``"total"`` for the weighted sum; None where a piece is zero),
    ``x_functions`` the same for x-space terms (absent terms have none).
    ``z_all[term]``, where a term has one, computes the pieces of every order
    at once (one CSE over the three programs, so what they share is computed
    once): :meth:`z_pieces` uses it for ``order=2`` unless ``only``.
    ``logit_scale(*scalars)`` gives the softmax scale (None: scale 1).
    """

    name: str
    parameters: tuple[Parameter, ...]
    terms: tuple[str, ...]
    z_functions: Mapping[str, tuple[ZFunction | None, ZFunction | None, ZFunction | None]]
    x_functions: Mapping[str, tuple[XFunction | None, XFunction | None, XFunction | None]]
    logit_scale: Any = None
    uses_exp: bool = False
    z_all: Mapping[str, ZFunction] = field(default_factory=dict)

    # -- arguments --------------------------------------------------------
    def term_name(self, term: str | None) -> str:
        if term is None:
            return "total"
        if term not in self.terms:
            raise ValueError(f"term must be None or one of {self.terms}; got {term!r}")
        return term

    def _split(self, values: Sequence[Any]) -> tuple[list[Any], list[Any], list[Any]]:
        """(z-space values, x-space values, scalars) in parameter order."""
        zv, xv, sv = [], [], []
        for p, value in zip(self.parameters, values, strict=True):
            if p.kind == "scalar":
                sv.append(value)
            elif p.shape == "n":
                zv.append(value)
            else:
                xv.append(value)
        return zv, xv, sv

    def prepare(
        self, x: Any, A: Any, data: Mapping[str, Any], validate: bool, v: Any = None
    ) -> Arguments:
        return prepare(x, A, data, self.parameters, validate=validate, v=v)

    # -- pieces -----------------------------------------------------------
    def softmax(self, xp: Any, z: Array, scalars: Sequence[Any]) -> Softmax:
        t = z if self.logit_scale is None else self.logit_scale(*scalars) * z
        return softmax(xp, t)

    def z_pieces(
        self,
        xp: Any,
        z: Array,
        values: Sequence[Any],
        term: str,
        order: int,
        *,
        only: bool = False,
    ) -> ZPieces:
        """Loss (order 0), gradient (1) and Hessian (2) pieces of ``term`` at logits z.

        All orders up to ``order``, or with ``only`` just that one (each piece
        function computes its own reductions); all three from the term's
        combined function (:attr:`z_all`) where it has one.
        """
        zv, _, sv = self._split(values)
        sm = self.softmax(xp, z, sv)
        out = ZPieces(sm)
        combined = self.z_all.get(term) if order == 2 and not only else None
        if combined is not None:
            set_pieces(out, combined(xp, sm, z, *zv, *sv))
            return out
        functions = self.z_functions.get(term, (None, None, None))
        for fn in functions[order if only else 0 : order + 1]:
            if fn is not None:
                set_pieces(out, fn(xp, sm, z, *zv, *sv))
        return out

    def x_pieces(self, xp: Any, x: Array, values: Sequence[Any], term: str, order: int) -> XPieces:
        _, xv, sv = self._split(values)
        out = XPieces()
        for fn in self.x_functions.get(term, (None, None, None))[: order + 1]:
            if fn is not None:
                for key, value in fn(xp, x, *xv, *sv).items():
                    setattr(out, key, value)
        return out

    def _logits(self, args: Arguments) -> Array:
        z = matvec(args.A, args.x)
        check_logits(args, z, uses_exp=self.uses_exp)
        return z

    # -- the public calls ---------------------------------------------------
    def probabilities(self, args: Arguments, *, log: bool = False) -> Array:
        with quiet():
            sm = self.softmax(args.xp, self._logits(args), self._split(args.values)[2])
        return sm.logf if log else sm.f

    def loss(self, args: Arguments, term: str | None) -> Any:
        name = self.term_name(term)
        xp = args.xp
        with quiet():
            value = self.z_pieces(xp, self._logits(args), args.values, name, 0).loss
            value = 0.0 if value is None else value
            x_value = self.x_pieces(xp, args.x, args.values, name, 0).loss
            if x_value is not None:
                value = value + x_value
            value = np.float64(value) if xp is np else xp.asarray(value, dtype=xp.float64)
        return finish(args, "loss", value)

    def z_gradient(self, args: Arguments, term: str | None) -> Array:
        xp = args.xp
        with quiet():
            zp = self.z_pieces(
                xp, self._logits(args), args.values, self.term_name(term), 1, only=True
            )
            g = z_gradient_vector(xp, zp)
        return finish(args, "z-gradient", g)

    def x_gradient(self, args: Arguments, term: str | None) -> Array:
        xp = args.xp
        with quiet():
            xg = self.x_pieces(xp, args.x, args.values, self.term_name(term), 1).gradient
        return finish(args, "x-gradient", zero_if_none(xp, xg, args.x))

    def gradient(self, args: Arguments, term: str | None) -> Array:
        name = self.term_name(term)
        xp = args.xp
        with quiet():
            zp = self.z_pieces(xp, self._logits(args), args.values, name, 1, only=True)
            out = gradient_from(xp, args.A, zp)
            xg = self.x_pieces(xp, args.x, args.values, name, 1).gradient
            if xg is not None:
                out = out + xg
        return finish(args, "gradient", out)

    def z_hessian(self, args: Arguments, term: str | None) -> ZHessian:
        xp = args.xp
        with quiet():
            zp = self.z_pieces(
                xp, self._logits(args), args.values, self.term_name(term), 2, only=True
            )
        return ZHessian(zp, xp)

    def x_hessian_diag(self, args: Arguments, term: str | None) -> Array:
        xp = args.xp
        with quiet():
            xh = self.x_pieces(xp, args.x, args.values, self.term_name(term), 2).hessian_diag
        return finish(args, "x-Hessian", zero_if_none(xp, xh, args.x))

    def hessian(self, args: Arguments, term: str | None) -> Array:
        name = self.term_name(term)
        xp = args.xp
        with quiet(), hold_workers(args.A):
            zp = self.z_pieces(xp, self._logits(args), args.values, name, 2, only=True)
            H = hessian_from(xp, args.A, zp)
            xh = self.x_pieces(xp, args.x, args.values, name, 2).hessian_diag
            if xh is not None:
                d = H.shape[0]
                H = H + xp.eye(d, dtype=H.dtype) * xh[None, :]
        return finish(args, "Hessian", H)

    def hvp(self, args: Arguments, term: str | None) -> Array:
        name = self.term_name(term)
        xp = args.xp
        with quiet():
            zp = self.z_pieces(xp, self._logits(args), args.values, name, 2, only=True)
            out = hvp_from(xp, args.A, args.v, zp)
            xh = self.x_pieces(xp, args.x, args.values, name, 2).hessian_diag
            if xh is not None:
                out = out + xh * args.v
        return finish(args, "Hessian-vector product", out)


def prepare_z(
    z: Any, data: Mapping[str, Any], parameters: Sequence[Parameter], *, validate: bool = True
) -> tuple[Any, Array, tuple[Any, ...]]:
    """``(xp, z, values)`` for a z-level call: logits z (n,), z-space vectors, scalars."""
    vectors = [data[p.name] for p in parameters if p.kind == "vector"]
    xp = namespace(z, *vectors)
    z = as_array(xp, "z", z)
    if z.ndim != 1 or z.shape[0] < 1:
        raise ValueError(f"z must be a non-empty 1-D array (n,); got shape {tuple(z.shape)}")
    if validate:
        check_finite(xp, "z", z)
    values = []
    for p in parameters:
        raw = data[p.name]
        if p.kind == "scalar":
            values.append(scalar_of(xp, check_scalar(p.name, raw, p.rule, validate)))
            continue
        a = as_array(xp, p.name, raw)
        check_shape(p.name, a, (z.shape[0],))
        if validate:
            check_finite(xp, p.name, a)
            tol = PROBABILITY_TOLERANCE + a.shape[0] * input_eps(raw)
            check_vector_rule(xp, p.name, a, p.rule, tolerance=tol)
        values.append(a)
    return xp, z, tuple(values)
