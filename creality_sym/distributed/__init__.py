"""Beyond one machine: the audit and the Newton solver on a Dask cluster.

- :mod:`~creality_sym.distributed.cluster`: ``--scheduler ADDR`` (``local:K``,
  ``tcp://HOST:PORT``, a scheduler file) and the scheduler's task count;
- :mod:`~creality_sym.distributed.audit`: one Dask task per bound, merged in
  order (``creality audit --scheduler``; ``--workers K`` is ``local:K``);
- :mod:`~creality_sym.distributed.store`: ``A``, ``b``, ``w``, ... in a Zarr
  store, ``A`` and the ``(n,)`` vectors in row chunks;
- :mod:`~creality_sym.distributed.rows`, :mod:`~creality_sym.distributed.pieces`,
  :mod:`~creality_sym.distributed.oracle`, :mod:`~creality_sym.distributed.steps`,
  :mod:`~creality_sym.distributed.solve`: Newton's method (exact, sketch-PCG,
  the paper's sampled Hessian) with every pass over ``A`` on the workers
  (``creality solve --data STORE.zarr --scheduler ADDR``).

Nothing here is imported by ``creality_sym`` itself: Dask and Zarr load only
when a command asks for a cluster or a store.
"""

from __future__ import annotations

from typing import Any

__all__ = ["connect", "newton", "open_store", "read_store", "write_store"]


def __getattr__(name: str) -> Any:
    if name == "connect":
        from .cluster import connect

        return connect
    if name == "newton":
        from .solve import newton

        return newton
    if name in ("open_store", "read_store", "write_store"):
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
