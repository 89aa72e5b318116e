"""Random and saved problem instances for the solver, the report and the benchmarks.

The random instance is scaled so that the problem is neither trivial nor
degenerate at any ``n``:

- ``A = G diag(c) / sqrt(d)`` with ``G`` i.i.d. ``N(0, 1)`` and column scales
  ``c_j`` geometric from 1 down to ``1 / condition``, normalized to mean
  ``c_j^2 = 1``: rows have norm about 1 and the start ``x0 ~ N(0, I_d)`` gives
  logits ``A x0`` of order 1, where the softmax is far from uniform and the
  creativity term is nonconvex. ``condition`` (``kappa(A)``, about) leaves
  Newton's method unchanged (it is affine invariant) but not first-order ones;
- ``b`` is a random probability vector (flat Dirichlet);
- ``w = w_scale / sqrt(n) * U(0.5, 1.5)``: ``w_i^2`` is of order ``w_scale^2 / n``,
  against ``gamma f_i ~ gamma / n`` for the softmax curvature, so for
  ``w_scale^2 < gamma`` the softmax curvature dominates the regularizer.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .inputs import real_array

DEFAULT_W_SCALE = 0.3
DEFAULT_CONDITION = 100.0


@dataclass
class Instance:
    """Data ``A (n, d)``, ``b (n,)``, ``w (n,)``, ``gamma``, a start ``x0 (d,)``, extra scalars."""

    A: np.ndarray
    b: np.ndarray
    w: np.ndarray
    gamma: float
    x0: np.ndarray
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, d)``."""
        return self.A.shape  # type: ignore[return-value]

    def data(self, parameters: tuple[Any, ...] = ("b", "w", "gamma")) -> dict[str, Any]:
        """Keyword data for a model whose ``PARAMETERS`` are ``parameters``.

        ``parameters`` holds names or ``Parameter`` records (with ``.name``).
        Includes ``A``; parameters this instance does not hold are left out
        (the model's defaults apply).
        """
        known: dict[str, Any] = {"b": self.b, "w": self.w, "gamma": self.gamma, **self.extra}
        out: dict[str, Any] = {"A": self.A}
        names = [getattr(p, "name", p) for p in parameters]
        out.update({name: known[name] for name in names if name in known})
        return out

    def save(self, path: str | Path) -> None:
        """Write the instance to ``path`` (``.npz``)."""
        extra = {f"extra_{k}": np.float64(v) for k, v in self.extra.items()}
        np.savez(path, A=self.A, b=self.b, w=self.w, gamma=self.gamma, x0=self.x0, **extra)


def random_instance(
    n: int,
    d: int,
    *,
    gamma: float,
    seed: int | None,
    w_scale: float = DEFAULT_W_SCALE,
    x0_scale: float = 1.0,
    condition: float = DEFAULT_CONDITION,
) -> Instance:
    """A random instance of size ``(n, d)`` (see the module docstring for the scaling).

    ``x0 ~ x0_scale * N(0, I_d)``; larger ``x0_scale`` starts deeper in the
    nonconvex region. Deterministic for a given ``seed``.
    """
    if n < 2 or d < 1:
        raise ValueError(f"need n >= 2 and d >= 1; got n={n}, d={d}")
    if gamma < 0:
        raise ValueError(f"gamma must be nonnegative; got {gamma!r}")
    if not condition >= 1:
        raise ValueError(f"condition must be >= 1; got {condition!r}")
    if not w_scale > 0:
        raise ValueError(f"w_scale must be positive; got {w_scale!r}")
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d))
    scales = condition ** -np.linspace(0.0, 1.0, d)
    A *= scales / np.sqrt(np.mean(scales**2) * d)
    b = rng.exponential(size=n)
    b /= b.sum()
    w = (w_scale / np.sqrt(n)) * rng.uniform(0.5, 1.5, size=n)
    x0 = x0_scale * rng.standard_normal(d)
    return Instance(A=A, b=b, w=w, gamma=float(gamma), x0=x0)


def load_instance(path: str | Path) -> Instance:
    """Read an instance from ``.npz`` with arrays ``A, b, w`` and optional ``gamma, x0``.

    Missing ``gamma`` defaults to 0.5, missing ``x0`` to zeros; arrays named
    ``extra_NAME`` become extra scalar parameters (e.g. ``extra_tau``).

    Parameters
    ----------
    path : str or Path
        An ``.npz`` archive (``numpy.savez``); never unpickled.

    Returns
    -------
    Instance

    Raises
    ------
    ValueError
        One line naming ``path`` and what is wrong: missing or unreadable file,
        not an ``.npz`` archive, missing arrays, complex or non-numeric arrays,
        or shapes that do not fit together (``A (n, d)``, ``b, w (n,)``,
        ``x0 (d,)``, scalars).
    """
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, not an .npz file") from None
    except PermissionError:
        raise ValueError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (ValueError, EOFError, zipfile.BadZipFile) as exc:
        why = "empty file" if isinstance(exc, EOFError) else _one_line(exc)
        if "pickle" in why:
            why = "neither a zip of .npy arrays nor a .npy file; pickles are never loaded"
        raise ValueError(f"{path}: not an .npz archive of arrays ({why})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: a single .npy array, not an .npz archive with A, b, w")
    try:
        with archive:
            return _instance_from(path, archive)
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: cannot read the archive ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _member(path: str | Path, archive: Any, key: str) -> np.ndarray:
    """Array ``key`` of the archive as float64, refusing complex and non-numeric data."""
    try:
        value = archive[key]
    except ValueError as exc:  # object arrays with allow_pickle=False
        raise ValueError(f"{path}: array {key!r} cannot be loaded ({_one_line(exc)})") from None
    try:
        return real_array(key, value)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _instance_from(path: str | Path, archive: Any) -> Instance:
    missing = [key for key in ("A", "b", "w") if key not in archive.files]
    if missing:
        raise ValueError(f"{path}: missing array(s) {missing}; need A, b, w")
    A = _member(path, archive, "A")
    if A.ndim != 2 or A.shape[0] < 2 or A.shape[1] < 1:
        raise ValueError(f"{path}: A must be a 2-D array (n, d) with n >= 2; got shape {A.shape}")
    n, d = A.shape
    vectors = {key: _member(path, archive, key) for key in ("b", "w")}
    vectors["x0"] = _member(path, archive, "x0") if "x0" in archive.files else np.zeros(d)
    for key, want in (("b", (n,)), ("w", (n,)), ("x0", (d,))):
        if vectors[key].shape != want:
            raise ValueError(
                f"{path}: {key} must have shape ({want[0]},) to match A {A.shape}; "
                f"got {vectors[key].shape}"
            )
    scalars: dict[str, float] = {}
    for key in ["gamma"] + [k for k in archive.files if k.startswith("extra_")]:
        if key not in archive.files:
            continue
        value = _member(path, archive, key)
        if value.size != 1:
            raise ValueError(f"{path}: {key} must be a scalar; got shape {value.shape}")
        scalars[key] = float(value.reshape(()))
    return Instance(
        A=A,
        b=vectors["b"],
        w=vectors["w"],
        gamma=scalars.pop("gamma", 0.5),
        x0=vectors["x0"],
        extra={k[6:]: v for k, v in scalars.items()},
    )
