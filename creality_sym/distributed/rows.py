"""Row-chunked data on a Dask cluster: the matrix ``A (n, d)`` and ``(n,)`` vectors beside it.

:class:`RowMatrix` keeps ``A`` in the workers' memory as one future per row
chunk (a chunk holds every column). Everything that touches ``A`` runs
there, one task per chunk (``client.submit``), and only ``d``-sized or
``d x d`` results come back:

- ``A @ v`` for ``v (d,)`` is a :class:`RowVector`: ``(n,)``, one future per
  row chunk of ``A``, kept on the workers;
- :meth:`RowMatrix.reduce` applies a numpy function to every chunk (with the
  matching chunks of some row vectors) and sums the results in a tree of
  fan-in :data:`FAN_IN` in chunk order: the sum does not depend on which
  worker ran what, so the same data give the same bits.

:class:`RowVector` supports the arithmetic the Newton loop does on logits
(``z + t * u``): linear combinations are kept symbolic and computed as one
task per chunk when something reads the blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["FAN_IN", "RowMatrix", "RowVector", "default_chunk_rows", "tree_sum"]

#: partial results summed per task of a tree reduction
FAN_IN = 8


def _add(*parts: Any) -> Any:
    """Sum of ``parts``: arrays (or tuples of arrays, entry by entry), left to right."""
    first = parts[0]
    if isinstance(first, tuple):
        return tuple(_add(*items) for items in zip(*parts, strict=True))
    out = np.array(first, dtype=float, copy=True)
    for part in parts[1:]:
        out += part
    return out


def _quietly(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` with numpy floating-point warnings off (the driver checks)."""
    with np.errstate(all="ignore"):
        return fn(*args, **kwargs)


def _combine(coefficients: Sequence[float], *blocks: np.ndarray) -> np.ndarray:
    """``sum_i coefficients[i] * blocks[i]`` for one chunk."""
    out = coefficients[0] * blocks[0]
    for c, block in zip(coefficients[1:], blocks[1:], strict=True):
        out = out + c * block
    return out


def _matvec(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    return a @ v


def _stack_times(a: np.ndarray, *vectors: np.ndarray) -> np.ndarray:
    """``V @ a`` (m, d) for the chunk ``a`` (rows, d) and the chunk's vectors ``V (m, rows)``."""
    return np.stack(vectors) @ a


def _take_row(a: np.ndarray, i: int) -> np.ndarray:
    return np.array(a[i], dtype=float)


def _as_float_rows(a: Any) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def tree_sum(client: Any, futures: Sequence[Any]) -> Any:
    """A future of the sum of ``futures``: a tree of fan-in :data:`FAN_IN`, in order."""
    level = list(futures)
    if len(level) == 1:
        return client.submit(_add, level[0], pure=False)
    while len(level) > 1:
        level = [
            client.submit(_add, *level[i : i + FAN_IN], pure=False)
            for i in range(0, len(level), FAN_IN)
        ]
    return level[0]


class RowVector:
    """An ``(n,)`` float64 vector on the cluster, in the row chunks of its :class:`RowMatrix`.

    Either materialized (one future per chunk) or a pending linear
    combination ``sum_i c_i v_i`` of materialized vectors, computed (one task
    per chunk) the first time :meth:`blocks` is read.
    """

    __array_ufunc__ = None  # numpy defers to our operators instead of converting

    def __init__(
        self,
        rows: RowMatrix,
        blocks: list[Any] | None = None,
        terms: list[tuple[float, RowVector]] | None = None,
    ) -> None:
        self.rows = rows
        self._blocks = blocks
        self._terms = terms

    @property
    def shape(self) -> tuple[int]:
        """``(n,)``."""
        return (self.rows.shape[0],)

    def blocks(self) -> list[Any]:
        """One future per row chunk (computing a pending combination once)."""
        if self._blocks is None:
            assert self._terms is not None
            coefficients = [c for c, _ in self._terms]
            columns = [v.blocks() for _, v in self._terms]
            self._blocks = [
                self.rows.client.submit(
                    _combine, coefficients, *[col[i] for col in columns], pure=False
                )
                for i in range(self.rows.nchunks)
            ]
            self._terms = None
        return self._blocks

    def compute(self) -> np.ndarray:
        """The whole vector on the client (``n`` floats; for tests and small ``n``)."""
        return np.concatenate(self.rows.client.gather(self.blocks()))

    def _as_terms(self) -> list[tuple[float, RowVector]]:
        return list(self._terms) if self._terms is not None else [(1.0, self)]

    def _linear(self, other: Any, sign: float) -> RowVector:
        if not isinstance(other, RowVector):
            return NotImplemented
        terms = self._as_terms() + [(sign * c, v) for c, v in other._as_terms()]
        return RowVector(self.rows, terms=terms)

    def __add__(self, other: Any) -> RowVector:
        return self._linear(other, 1.0)

    def __sub__(self, other: Any) -> RowVector:
        return self._linear(other, -1.0)

    def __mul__(self, other: Any) -> RowVector:
        if isinstance(other, RowVector) or np.ndim(other) != 0:
            return NotImplemented
        c = float(other)
        return RowVector(self.rows, terms=[(c * a, v) for a, v in self._as_terms()])

    __rmul__ = __mul__

    def __neg__(self) -> RowVector:
        return self * -1.0

    def __matmul__(self, other: Any) -> np.ndarray:
        """``u @ A`` (``A^T u``, ``(d,)``) for the :class:`RowMatrix` ``A``."""
        if isinstance(other, RowMatrix):
            return other.products([self])[0]
        return NotImplemented

    def __repr__(self) -> str:
        return f"RowVector(n={self.shape[0]}, chunks={self.rows.nchunks})"


class RowMatrix:
    """``A (n, d)`` float64 in the workers' memory, one future per row chunk.

    Build one with :meth:`from_array` (numpy or dask input) or
    :func:`creality_sym.distributed.store.open_store` (a Zarr store read by
    the workers).

    Parameters
    ----------
    client : distributed.Client
    blocks : list of Future
        The row chunks, each a ``(rows, d)`` float64 array.
    row_chunks : sequence of int
        Rows per chunk.
    d : int
        Columns.
    """

    __array_ufunc__ = None

    def __init__(self, client: Any, blocks: list[Any], row_chunks: Sequence[int], d: int) -> None:
        if not blocks or len(blocks) != len(row_chunks):
            raise ValueError("A needs one block per row chunk and at least one chunk")
        self.client = client
        self._blocks = list(blocks)
        self.row_chunks: tuple[int, ...] = tuple(int(c) for c in row_chunks)
        self.shape: tuple[int, int] = (int(sum(self.row_chunks)), int(d))
        #: first row of each chunk, and n at the end
        self.offsets = np.concatenate([[0], np.cumsum(self.row_chunks)]).astype(np.int64)

    @classmethod
    def from_array(cls, client: Any, A: Any, *, chunk_rows: int | None = None) -> RowMatrix:
        """``A (n, d)``: a numpy array (cut into ``chunk_rows`` rows, sent to the workers)
        or a dask array (its row chunks, computed on the workers)."""
        import dask.array as da

        if isinstance(A, da.Array):
            if A.ndim != 2:
                raise ValueError(f"A must be a 2-D array (n, d); got shape {A.shape}")
            _check_dtype("A", A.dtype)
            A = A.rechunk({1: -1})
            delayed = A.to_delayed().ravel()
            blocks = client.compute(list(delayed))
            blocks = [client.submit(_as_float_rows, b, pure=False) for b in blocks]
            return cls(client, blocks, A.chunks[0], A.shape[1])
        A = np.asarray(A)
        _check_dtype("A", A.dtype)
        if A.ndim != 2 or A.shape[0] < 1 or A.shape[1] < 1:
            raise ValueError(f"A must be a non-empty 2-D array (n, d); got shape {A.shape}")
        rows = chunk_rows or default_chunk_rows(A.shape[1])
        starts = range(0, A.shape[0], rows)
        parts = [np.ascontiguousarray(A[i : i + rows], dtype=np.float64) for i in starts]
        blocks = client.scatter(parts, hash=False)
        return cls(client, blocks, [p.shape[0] for p in parts], A.shape[1])

    @property
    def nbytes(self) -> int:
        """Bytes of ``A`` (held by the workers)."""
        return 8 * self.shape[0] * self.shape[1]

    @property
    def nchunks(self) -> int:
        return len(self.row_chunks)

    def blocks(self) -> list[Any]:
        """One future per row chunk."""
        return list(self._blocks)

    # -- vectors ---------------------------------------------------------------

    def vector(self, value: Any, name: str = "vector") -> RowVector:
        """``value (n,)`` (numpy, dask, or a :class:`RowVector`) in this matrix's row chunks."""
        import dask.array as da

        if isinstance(value, RowVector):
            return value
        n = self.shape[0]
        if isinstance(value, da.Array):
            if value.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},) to match A; got {value.shape}")
            _check_dtype(name, value.dtype)
            value = value.rechunk((self.row_chunks,))
            blocks = self.client.compute(list(value.to_delayed().ravel()))
            return RowVector(
                self, [self.client.submit(_as_float_rows, b, pure=False) for b in blocks]
            )
        value = np.asarray(value)
        _check_dtype(name, value.dtype)
        if value.shape != (n,):
            raise ValueError(
                f"{name} must have shape ({n},) to match A {self.shape}; got {value.shape}"
            )
        parts = [
            np.ascontiguousarray(value[lo:hi], dtype=np.float64)
            for lo, hi in zip(self.offsets[:-1], self.offsets[1:], strict=True)
        ]
        return RowVector(self, self.client.scatter(parts, hash=False))

    def locate(self, k: int) -> tuple[int, int]:
        """``(chunk, offset in the chunk)`` of row ``k``."""
        chunk = int(np.searchsorted(self.offsets, k, side="right") - 1)
        return chunk, int(k - self.offsets[chunk])

    def local_index(self, k: int) -> list[int]:
        """For every chunk, the offset of row ``k`` in it (-1 where the chunk does not hold it)."""
        chunk, offset = self.locate(k)
        return [offset if i == chunk else -1 for i in range(self.nchunks)]

    # -- passes over A -------------------------------------------------------------

    def map(
        self,
        fn: Callable[..., Any],
        vectors: Sequence[RowVector] = (),
        args: Sequence[Any] = (),
        chunk_args: Sequence[Sequence[Any]] | None = None,
        *,
        with_matrix: bool = True,
        kwargs: dict[str, Any] | None = None,
    ) -> list[Any]:
        """Futures of ``fn([A_c,] *vector chunks, *args, *chunk_args[c], **kwargs)``, per chunk."""
        columns = [v.blocks() for v in vectors]
        out = []
        for c, block in enumerate(self._blocks):
            extra = () if chunk_args is None else tuple(chunk_args[c])
            head = (block,) if with_matrix else ()
            out.append(
                self.client.submit(
                    _quietly,
                    fn,
                    *head,
                    *[col[c] for col in columns],
                    *args,
                    *extra,
                    pure=False,
                    **(kwargs or {}),
                )
            )
        return out

    def partial(
        self,
        fn: Callable[..., Any],
        vectors: Sequence[RowVector] = (),
        args: Sequence[Any] = (),
        chunk_args: Sequence[Sequence[Any]] | None = None,
    ) -> Any:
        """A future of ``sum_c fn(A_c, *vector chunks, *args, *chunk_args[c])`` (a tree)."""
        return tree_sum(self.client, self.map(fn, vectors, args, chunk_args))

    def reduce(
        self,
        fn: Callable[..., Any],
        vectors: Sequence[RowVector] = (),
        args: Sequence[Any] = (),
        chunk_args: Sequence[Sequence[Any]] | None = None,
    ) -> Any:
        """``sum_c fn(A_c, *vector chunks, *args, *chunk_args[c])`` on the client.

        ``fn`` is a numpy function of one chunk returning an array (or a tuple
        of arrays) of a fixed shape; the sum is a tree in chunk order.
        """
        return self.partial(fn, vectors, args, chunk_args).result()

    def __matmul__(self, v: Any) -> RowVector:
        """``A @ v`` for ``v (d,)``: a :class:`RowVector` (one task per chunk)."""
        v = np.asarray(v, dtype=float)
        return RowVector(self, self.map(_matvec, args=(v,)))

    def products(self, vectors: Sequence[RowVector]) -> np.ndarray:
        """``V @ A`` (``(m, d)``) for the rows ``V = [v_1, ..., v_m]``: one pass over ``A``."""
        if not vectors:
            return np.zeros((0, self.shape[1]))
        return np.asarray(self.reduce(_stack_times, vectors))

    def row(self, k: int) -> np.ndarray:
        """Row ``k`` of ``A`` (``(d,)``) on the client."""
        chunk, offset = self.locate(int(k))
        return self.client.submit(_take_row, self._blocks[chunk], offset, pure=False).result()

    def __repr__(self) -> str:
        n, d = self.shape
        return f"RowMatrix(n={n}, d={d}, chunks={self.nchunks})"


def _check_dtype(name: str, dtype: Any) -> None:
    kind = np.dtype(dtype).kind
    if kind == "c":
        raise ValueError(f"{name} must be real; got complex dtype {dtype}")
    if kind not in "biuf":
        raise ValueError(f"{name} must be a real array; got dtype {dtype}")


def default_chunk_rows(d: int, target_bytes: int = 1 << 25) -> int:
    """Rows per chunk so that a chunk of ``d`` float64 columns holds about ``target_bytes``."""
    return max(1, target_bytes // (8 * max(d, 1)))
