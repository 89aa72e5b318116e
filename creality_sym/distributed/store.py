"""A solver instance in a Zarr store: ``A`` and the ``(n,)`` vectors in row chunks.

Layout (a Zarr group; format 3, no compression: float64 data of this kind
does not compress)::

    STORE.zarr/
      A        (n, d)  float64, chunks (chunk_rows, d)
      b, w     (n,)    float64, chunks (chunk_rows,)   -- every (n,) parameter by name
      x0       (d,)    float64 (optional start)        -- and every (d,) parameter
      attrs:   {"creality": {"format": 1}, "scalars": {"gamma": 0.5, ...}}

Scalars are attributes (or 0-d arrays). Any parameter of a spec's
``PARAMETERS`` is stored under its own name, so one store serves every spec
whose parameters it holds. The workers read ``A`` and the ``(n,)`` vectors
chunk by chunk from the store's path (which they must see at that path); the
client reads the metadata, the scalars and the ``(d,)`` arrays only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from creality_sym.solve.oracle import parameters

from .rows import RowMatrix, RowVector, default_chunk_rows

__all__ = ["FORMAT", "StoreInfo", "is_store", "load", "open_store", "read_store", "write_store"]

#: version of the layout written by :func:`write_store`
FORMAT = 1
#: gamma when a store has none (as :func:`creality_sym.solve.instance.load_instance`)
DEFAULT_GAMMA = 0.5


def _real(name: str, value: Any) -> np.ndarray:
    kind = np.asarray(value).dtype.kind if not hasattr(value, "dtype") else value.dtype.kind
    if kind == "c":
        raise ValueError(f"{name} must be real; got complex data")
    if kind not in "biuf":
        raise ValueError(f"{name} must be a real array")
    return np.asarray(value, dtype=np.float64)


def write_store(
    path: str | Path,
    A: Any,
    b: Any = None,
    w: Any = None,
    *,
    chunk_rows: int | None = None,
    x0: Any = None,
    overwrite: bool = False,
    **params: Any,
) -> Path:
    """Write ``A (n, d)``, the parameters and an optional start ``x0 (d,)`` to a Zarr store.

    Parameters
    ----------
    path : str or Path
        The store (a folder, conventionally ``NAME.zarr``).
    A : (n, d) array
        numpy, dask or anything sliced by rows (written ``chunk_rows`` rows at a time).
    b, w : (n,) arrays, optional
        The default spec's vectors (any other parameter goes in ``params``).
    chunk_rows : int, optional
        Rows per chunk of ``A`` and of the ``(n,)`` arrays (default: about 32 MB of ``A``).
    x0 : (d,) array, optional
    overwrite : bool
        Replace an existing store at ``path``.
    **params
        Further parameters by name: ``(n,)`` or ``(d,)`` arrays, or scalars.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        For shapes that do not fit ``A``, complex or non-numeric data, or an
        existing store without ``overwrite``.
    """
    import zarr

    path = Path(path)
    if path.exists() and not overwrite:
        raise ValueError(f"{path}: exists (pass overwrite=True to replace it)")
    if len(getattr(A, "shape", ())) != 2:
        raise ValueError(f"A must be a 2-D array (n, d); got shape {getattr(A, 'shape', None)}")
    n, d = (int(s) for s in A.shape)
    if n < 1 or d < 1:
        raise ValueError(f"A must be non-empty; got shape {(n, d)}")
    rows = int(chunk_rows or default_chunk_rows(d))
    if rows < 1:
        raise ValueError(f"chunk_rows must be >= 1; got {chunk_rows}")
    rows = min(rows, n)
    named = {k: v for k, v in {"b": b, "w": w, "x0": x0, **params}.items() if v is not None}
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, float] = {}
    for name, value in named.items():
        if np.ndim(value) == 0:
            scalars[name] = float(_real(name, value))
            continue
        arr = _real(name, value)
        if arr.shape not in ((n,), (d,)):
            raise ValueError(f"{name} must have shape ({n},) or ({d},) to match A; got {arr.shape}")
        arrays[name] = arr
    group = zarr.open_group(str(path), mode="w")
    group.attrs["creality"] = {"format": FORMAT}
    group.attrs["scalars"] = scalars
    out = group.create_array("A", shape=(n, d), chunks=(rows, d), dtype="float64", compressors=None)
    for lo in range(0, n, rows):
        out[lo : lo + rows] = _real("A", np.asarray(A[lo : lo + rows]))
    for name, arr in arrays.items():
        chunks = (rows,) if arr.shape == (n,) else arr.shape
        target = group.create_array(
            name, shape=arr.shape, chunks=chunks, dtype="float64", compressors=None
        )
        target[:] = arr
    return path


@dataclass(frozen=True)
class StoreInfo:
    """What a store holds: ``A``'s shape and row chunks, the other arrays' shapes, the scalars."""

    path: Path
    n: int
    d: int
    row_chunks: tuple[int, ...]
    arrays: dict[str, tuple[int, ...]] = field(default_factory=dict)
    scalars: dict[str, float] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of ``A``."""
        return 8 * self.n * self.d


def is_store(path: Any) -> bool:
    """Whether ``path`` names a Zarr store (a folder with ``zarr.json``, or ``*.zarr``)."""
    if path is None:
        return False
    p = Path(path)
    return p.suffix == ".zarr" or (p.is_dir() and (p / "zarr.json").is_file())


def open_store(path: str | Path) -> StoreInfo:
    """Read a store's metadata (no data); ``ValueError`` naming ``path`` when it is not one."""
    import zarr

    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such store")
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as exc:  # zarr raises several kinds for a folder that is not a store
        raise ValueError(f"{path}: not a Zarr store ({type(exc).__name__}: {exc})") from None
    keys = set(group.array_keys())
    if "A" not in keys:
        raise ValueError(f"{path}: no array 'A' in the store (has {sorted(keys)})")
    A = group["A"]
    if len(A.shape) != 2 or A.shape[0] < 1 or A.shape[1] < 1:
        raise ValueError(f"{path}: A must be a non-empty 2-D array (n, d); got shape {A.shape}")
    n, d = (int(s) for s in A.shape)
    step = int(A.chunks[0])
    row_chunks = tuple(min(step, n - lo) for lo in range(0, n, step))
    arrays: dict[str, tuple[int, ...]] = {}
    scalars = {}
    for name, value in dict(group.attrs.get("scalars", {})).items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{path}: scalar {name!r} must be a number; got {value!r}")
        scalars[str(name)] = float(value)
    for name in sorted(keys - {"A"}):
        shape = tuple(int(s) for s in group[name].shape)
        if shape == ():
            scalars[name] = float(group[name][()])
        elif shape in ((n,), (d,)):
            arrays[name] = shape
        else:
            raise ValueError(f"{path}: {name} must have shape ({n},) or ({d},); got {shape}")
    return StoreInfo(path, n, d, row_chunks, arrays, scalars)


def read_store(path: str | Path) -> dict[str, Any]:
    """Everything in the store as numpy arrays and floats (in this process's memory)."""
    import zarr

    info = open_store(path)
    group = zarr.open_group(str(info.path), mode="r")
    out: dict[str, Any] = {"A": np.asarray(group["A"][:], dtype=np.float64)}
    for name in info.arrays:
        out[name] = np.asarray(group[name][:], dtype=np.float64)
    out.update(info.scalars)
    return out


def _read_rows(path: str, name: str, lo: int, hi: int) -> np.ndarray:
    """Rows ``[lo, hi)`` of array ``name`` in the store at ``path`` (run on a worker)."""
    import zarr

    block = zarr.open_array(str(Path(path) / name), mode="r")[lo:hi]
    return np.ascontiguousarray(block, dtype=np.float64)


def select(model: ModuleType, info: StoreInfo, overrides: dict[str, float]) -> dict[str, str]:
    """Where each parameter of ``model`` comes from: ``"n"``, ``"d"`` (arrays) or ``"scalar"``.

    Raises
    ------
    ValueError
        Naming the store and the parameter that is missing or has the wrong shape.
    """
    where: dict[str, str] = {}
    for p in parameters(model):
        if p.kind == "scalar":
            if p.name in overrides or p.name in info.scalars:
                where[p.name] = "scalar"
            elif p.name == "gamma":
                where[p.name] = "scalar"
            elif p.required:
                raise ValueError(f"{info.path}: no scalar {p.name!r} (store it or pass --param)")
            continue
        want = (info.n,) if p.shape == "n" else (info.d,)
        if p.name not in info.arrays:
            if p.required:
                raise ValueError(f"{info.path}: no array {p.name!r} of shape {want}")
            continue
        if info.arrays[p.name] != want:
            raise ValueError(
                f"{info.path}: {p.name} must have shape {want}; got {info.arrays[p.name]}"
            )
        where[p.name] = p.shape
    return where


def load(
    client: Any,
    path: str | Path,
    model: ModuleType,
    overrides: dict[str, float] | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """``(data, x0)`` for :func:`creality_sym.distributed.solve.newton` from a store.

    ``data["A"]`` is a :class:`RowMatrix` and the ``(n,)`` parameters
    :class:`RowVector` s, read by the workers chunk by chunk; the ``(d,)``
    parameters and the scalars (``overrides`` first, then the store's; gamma
    defaults to 0.5) are read here. ``x0`` is the store's or zeros.
    """
    import zarr

    overrides = dict(overrides or {})
    info = open_store(path)
    where = select(model, info, overrides)
    root = str(info.path.resolve())
    lows = np.concatenate([[0], np.cumsum(info.row_chunks)])
    spans = list(zip(lows[:-1].tolist(), lows[1:].tolist(), strict=True))
    blocks = [client.submit(_read_rows, root, "A", lo, hi, pure=False) for lo, hi in spans]
    A = RowMatrix(client, blocks, info.row_chunks, info.d)
    data: dict[str, Any] = {"A": A}
    group = zarr.open_group(root, mode="r")
    for name, kind in where.items():
        if kind == "n":
            parts = [client.submit(_read_rows, root, name, lo, hi, pure=False) for lo, hi in spans]
            data[name] = RowVector(A, parts)
        elif kind == "d":
            data[name] = np.asarray(group[name][:], dtype=np.float64)
        else:
            value = overrides.get(name, info.scalars.get(name, DEFAULT_GAMMA))
            if not math.isfinite(float(value)) and name not in overrides:
                raise ValueError(f"{info.path}: scalar {name!r} is not finite")
            data[name] = float(value)
    if "x0" in info.arrays and info.arrays["x0"] == (info.d,) and "x0" not in data:
        x0 = np.asarray(group["x0"][:], dtype=np.float64)
    else:
        x0 = np.zeros(info.d)
    return data, x0
