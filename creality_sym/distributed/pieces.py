"""The generated z-space pieces on row chunks: a two-level evaluation with global sums.

A generated piece function ``fn(xp, sm, z, *vectors, *scalars)`` computes
per-entry values and, in stages, global sums ``xp.sum(...)`` over all ``n``
entries (``stage 1`` sums use entrywise values only, a later stage may use
earlier sums). On row chunks those sums must be global. Here every chunk
runs the *generated* functions with numpy, unchanged, through a namespace
whose ``sum`` returns the global value of that sum (by call order), known
from earlier passes, and records the chunk's own partial sum:

1. the dominant logit ``k = argmax t`` (``t`` the scaled logits) and the
   entries at ``k`` (``z_k``, ``b_k``, ...): one pass;
2. the softmax normalizer ``sum_{j != k} exp(t_j - t_k)``: one pass;
3. the stages of sums: a pass returns each chunk's partial sums; a sum not
   yet known is NaN inside the functions, so every sum that depends on an
   unknown one comes back NaN and waits for the next pass (the first unknown
   sum is always accepted, so each pass makes progress): one pass per stage;
4. the outputs (``g``, ``delta``, ``p``, ``ones``, low-rank columns) with all
   sums known: one pass, kept on the workers.

Each chunk carries one extra entry at its end, a copy of the dominant entry,
so that ``b[sm.k]`` and the dominant formulas of ``at_dominant`` see the
global dominant entry in every chunk; it is left out of every sum and every
output. The scalars (loss, ``c``, totals, core) are functions of the sums and
the dominant entry: the client evaluates them from an empty chunk.

The result is what :meth:`creality_sym.solve.oracle.Oracle.pieces` returns,
with the ``(n,)`` pieces as :class:`~creality_sym.distributed.rows.RowVector` s.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from creality_sym.solve.oracle import Pieces

from .rows import RowMatrix, RowVector

__all__ = ["ChunkPieces", "runtime_model"]

#: the per-entry outputs a piece function may return (besides ``lr{i}`` columns)
VECTOR_OUTPUTS = ("g", "delta", "p", "ones")


def runtime_model(model: ModuleType) -> Any:
    """The generated module's runtime :class:`Model` (its piece functions and logit scale)."""
    runtime = getattr(model, "_MODEL", None)
    if runtime is None or not hasattr(runtime, "z_functions"):
        raise ValueError(
            f"{model.__name__} has no runtime model (_MODEL): regenerate it (creality derive)"
        )
    return runtime


class GlobalSums:
    """numpy, except ``sum``: the global value of the ``i``-th sum called (NaN if not known).

    ``length`` entries of each argument are the chunk's own (the rest is the
    appended dominant entry); their sum is recorded in :attr:`partials`.
    """

    def __init__(self, known: dict[int, float], length: int) -> None:
        self.known = known
        self.length = length
        self.partials: list[float] = []

    def sum(self, a: Any, *args: Any, **kwargs: Any) -> np.float64:
        a = np.asarray(a, dtype=float)
        local = float(a) * self.length if a.ndim == 0 else float(np.sum(a[: self.length]))
        self.partials.append(local)
        return np.float64(self.known.get(len(self.partials) - 1, math.nan))

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


def _softmax(runtime_module: ModuleType, t: np.ndarray, is_k: np.ndarray, rest: float) -> Any:
    """The runtime's ``Softmax`` of the extended chunk ``t`` (dominant entry last)."""
    shifted = t - t[-1]
    logf = shifted - math.log1p(rest)
    return runtime_module.Softmax(np.exp(logf), logf, t.shape[0] - 1, rest / (1.0 + rest), is_k)


def evaluate(
    spec: str,
    term: str,
    order: int,
    scale: float,
    z: np.ndarray,
    vectors: Sequence[np.ndarray],
    scalars: Sequence[float],
    at_k: Sequence[float],
    k_local: int,
    rest: float,
    known: dict[int, float],
) -> tuple[list[float], dict[str, Any]]:
    """Run the piece functions of ``term`` up to ``order`` on one chunk.

    ``z`` and ``vectors`` are the chunk's entries, ``at_k`` the dominant
    entry's ``(z_k, *vectors_k)``, ``k_local`` its offset in this chunk (-1
    when elsewhere), ``rest`` the global softmax normalizer, ``known`` the
    global sums known by call index. Returns the chunk's partial sums and the
    outputs (entrywise outputs without the appended entry).
    """
    module = importlib.import_module(spec)
    runtime = runtime_model(module)
    runtime_module = importlib.import_module(type(runtime).__module__)
    m = z.shape[0]
    z_ext = np.append(z, at_k[0])
    v_ext = [np.append(v, vk) for v, vk in zip(vectors, at_k[1:], strict=True)]
    is_k = np.zeros(m + 1, dtype=bool)
    is_k[-1] = True
    if k_local >= 0:
        is_k[k_local] = True
    sm = _softmax(runtime_module, scale * z_ext, is_k, rest)
    xp = GlobalSums(known, m)
    outputs: dict[str, Any] = {}
    for fn in runtime.z_functions.get(term, (None, None, None))[: order + 1]:
        if fn is not None:
            outputs.update(fn(xp, sm, z_ext, *v_ext, *scalars))
    outputs["f"] = sm.f
    for key, value in list(outputs.items()):
        if np.ndim(value) == 1:
            outputs[key] = value[:m]
    return xp.partials, outputs


# ----------------------------------------------------------------------------- chunk tasks


def _top_chunk(
    z: np.ndarray, *vectors: np.ndarray, scale: float
) -> tuple[float, int, float, tuple[float, ...]]:
    """``(t_max, offset, sum of exp(t - t_max) over the chunk's other entries, entries there)``.

    ``t = scale * z``; the entries are ``(z, *vectors)`` at the chunk's first maximum.
    """
    t = scale * z
    i = int(np.argmax(t))
    e = np.exp(t - t[i])
    e[i] = 0.0
    return float(t[i]), i, float(np.sum(e)), (float(z[i]), *[float(v[i]) for v in vectors])


def _stage_chunk(
    z: np.ndarray, *vectors: np.ndarray, setup: tuple[Any, ...], k_local: int, known: dict
) -> list[float]:
    spec, term, order, scale, scalars, at_k, rest = setup
    with np.errstate(all="ignore"):
        partials, _ = evaluate(
            spec, term, order, scale, z, vectors, scalars, at_k, k_local, rest, known
        )
    return partials


def _output_chunk(
    z: np.ndarray, *vectors: np.ndarray, setup: tuple[Any, ...], k_local: int, known: dict
) -> dict[str, Any]:
    """The chunk's entrywise outputs and, per output, its sum without the dominant entry."""
    spec, term, order, scale, scalars, at_k, rest = setup
    with np.errstate(all="ignore"):
        _, out = evaluate(spec, term, order, scale, z, vectors, scalars, at_k, k_local, rest, known)
        arrays = {k: np.ascontiguousarray(v, dtype=float) for k, v in out.items() if np.ndim(v)}
        others = {}
        for key, value in arrays.items():
            if k_local >= 0:
                value = np.where(np.arange(value.shape[0]) == k_local, 0.0, value)
            others[key] = float(np.sum(value))
    return {"arrays": arrays, "others": others}


def _pick(result: dict[str, Any], key: str) -> np.ndarray:
    return result["arrays"][key]


def _others(result: dict[str, Any]) -> dict[str, float]:
    return result["others"]


def _set_entry(block: np.ndarray, offset: int, value: float) -> np.ndarray:
    out = np.array(block, dtype=float, copy=True)
    out[offset] = value
    return out


# ----------------------------------------------------------------------------- the driver


class ChunkPieces:
    """Evaluate a generated model's z-space pieces at logits on a :class:`RowMatrix`'s chunks.

    Parameters
    ----------
    model : module
        A generated model (with its runtime ``_MODEL``).
    rows : RowMatrix
        Gives the chunking and the client.
    vectors : dict
        The ``(n,)`` parameters as :class:`RowVector`, by name.
    scalars : dict
        The scalar parameters, by name.
    """

    def __init__(
        self,
        model: ModuleType,
        rows: RowMatrix,
        vectors: dict[str, RowVector],
        scalars: dict[str, float],
    ) -> None:
        self.model = model
        self.runtime = runtime_model(model)
        self.rows = rows
        order = [p for p in model.PARAMETERS if p.shape == "n" and p.kind == "vector"]
        self.vector_names = [p.name for p in order]
        self.vectors = [vectors[name] for name in self.vector_names]
        names = [p.name for p in model.PARAMETERS if p.kind == "scalar"]
        self.scalars = tuple(float(scalars[name]) for name in names)
        scale = self.runtime.logit_scale
        self.scale = 1.0 if scale is None else float(scale(*self.scalars))
        #: the sums' call indices accepted in each pass of the last evaluation
        self.passes: list[list[int]] = []

    def top(self, z: RowVector) -> tuple[int, tuple[float, ...], float]:
        """``(k, (z_k, *vectors_k), rest)`` in one pass over the chunks.

        ``k`` is the first index of the largest scaled logit ``t`` (or the
        first NaN: ``numpy.argmax`` over the chunks' maxima, as over all of
        ``t``); ``rest = sum_{j != k} exp(t_j - t_k)``, combined from each
        chunk's sum about its own maximum without a subtraction (accurate
        when ``rest`` is tiny, i.e. ``f`` nearly one-hot).
        """
        client = self.rows.client
        tops = client.gather(
            self.rows.map(
                _top_chunk, [z, *self.vectors], with_matrix=False, kwargs={"scale": self.scale}
            )
        )
        values = np.array([top[0] for top in tops])
        chunk = int(np.argmax(values))
        t_k, offset, _, at_k = tops[chunk]
        parts = [
            s if c == chunk else math.exp(t - t_k) * (1.0 + s)
            for c, (t, _, s, _) in enumerate(tops)
        ]
        rest = math.fsum(parts) if all(map(math.isfinite, parts)) else math.nan
        return int(self.rows.offsets[chunk]) + int(offset), tuple(at_k), rest

    def evaluate(self, z: RowVector, order: int, term: str = "total") -> Pieces:
        """The pieces at logits ``z``: loss (order 0), ``g`` (1), the Hessian pieces (2)."""
        client = self.rows.client
        k, at_k, rest = self.top(z)
        k_local = self.rows.local_index(k)
        setup = (self.model.__name__, term, order, self.scale, self.scalars, at_k, rest)
        known: dict[int, float] = {}
        self.passes = []
        inputs = self._chunk_inputs(z)
        while True:
            parts = client.gather(
                [
                    client.submit(
                        _stage_chunk, *blocks, setup=setup, k_local=kl, known=known, pure=False
                    )
                    for blocks, kl in zip(inputs, k_local, strict=True)
                ]
            )
            unknown = [i for i in range(len(parts[0])) if i not in known]
            if not unknown:
                break
            accepted = [
                i for i in unknown if i == unknown[0] or all(math.isfinite(p[i]) for p in parts)
            ]
            known = {**known, **{i: math.fsum(p[i] for p in parts) for i in accepted}}
            self.passes.append(accepted)
            if len(accepted) == len(unknown):
                break
        scalars = self._scalars(setup, known)
        out = Pieces(float(scalars.get("loss", 0.0) or 0.0), k, None)
        if order == 0:
            return out
        results = [
            client.submit(_output_chunk, *blocks, setup=setup, k_local=kl, known=known, pure=False)
            for blocks, kl in zip(inputs, k_local, strict=True)
        ]
        others = client.gather([client.submit(_others, r, pure=False) for r in results])
        names = list(others[0])

        def vector(name: str, total: float | None = None) -> RowVector:
            if name not in names:
                return self._zeros()
            blocks = [client.submit(_pick, r, name, pure=False) for r in results]
            if total is not None:  # entry k set so that the vector sums to ``total``
                chunk, offset = self.rows.locate(k)
                value = float(total) - math.fsum(o[name] for o in others)
                blocks[chunk] = client.submit(_set_entry, blocks[chunk], offset, value, pure=False)
            return RowVector(self.rows, blocks)

        out.f = vector("f")
        out.g = vector("g", scalars.get("g_total", 0.0))
        if order >= 2:
            out.delta, out.p, out.ones = vector("delta"), vector("p"), vector("ones")
            out.c = float(scalars.get("c", 0.0))
            out.ones_total = float(scalars.get("ones_total", 0.0))
            rank = sum(1 for key in names if key.startswith("lr"))
            out.columns = tuple(
                vector(f"lr{i}", scalars.get(f"lr{i}_total", 0.0)) for i in range(rank)
            )
            out.core = np.array(
                [
                    [float(scalars.get(f"core{min(i, j)}_{max(i, j)}", 0.0)) for j in range(rank)]
                    for i in range(rank)
                ],
                dtype=float,
            ).reshape(rank, rank)
        return out

    def _chunk_inputs(self, z: RowVector) -> list[list[Any]]:
        columns = [z.blocks(), *[v.blocks() for v in self.vectors]]
        return [list(col) for col in zip(*columns, strict=True)]

    def _zeros(self) -> RowVector:
        return RowVector(self.rows, self.rows.map(_zeros_chunk, with_matrix=True))

    def _scalars(self, setup: tuple[Any, ...], known: dict[int, float]) -> dict[str, float]:
        """The scalar outputs, evaluated on the client from an empty chunk and the sums."""
        spec, term, order, scale, scalars, at_k, rest = setup
        empty = np.zeros(0)
        with np.errstate(all="ignore"):
            _, out = evaluate(
                spec,
                term,
                order,
                scale,
                empty,
                [empty for _ in self.vectors],
                scalars,
                at_k,
                -1,
                rest,
                known,
            )
        return {k: float(v) for k, v in out.items() if np.ndim(v) == 0 and v is not None}


def _zeros_chunk(a: np.ndarray) -> np.ndarray:
    return np.zeros(a.shape[0])
