"""Interval-valued audit instances: the spec's quantities as enclosures.

:class:`IntervalInstance` is an :class:`~creality_sym.audit.instance.Instance`
whose arrays are numpy object arrays of balls (a point, every float64 input
exact, or a box); its methods (``f``, ``u``, ``z``, ``B_real``, ``B_cre``,
``z_hessian``, ``hessian``, ``jacobian``, ...) evaluate the spec's interval
module (:mod:`creality_sym.codegen.interval`, printed from the same derivation
as the generated numpy code) and return enclosures. :class:`LogitInstance` is
the same over a box of logits ``z`` instead of ``(A, x)``: for bounds that
depend on ``x`` only through ``z = A x``; touching ``A``, ``x`` or ``y``
otherwise raises :class:`NeedsFullDomain`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from creality_sym.codegen.interval import IntervalModel, load
from creality_sym.codegen.interval import runtime as ia
from creality_sym.codegen.interval.balls import ball, describe
from creality_sym.instance import Instance

__all__ = [
    "IntervalInstance",
    "LogitInstance",
    "BallZHessian",
    "NeedsFullDomain",
    "interval_model_for",
    "interval_model_of_spec",
    "from_instance",
    "TRACKED",
]

#: instance fields whose use is recorded (the prover branches on those it sees used), with
#: every spec parameter (by name)
TRACKED = frozenset({"A", "x", "y", "R"})


class NeedsFullDomain(LookupError):
    """A bound evaluated over logits used ``A``, ``x`` or ``y`` themselves."""


@functools.lru_cache(maxsize=16)
def _model_of(path: str, digest: str) -> IntervalModel:
    from creality_sym.derive import derive
    from creality_sym.spec import load_spec

    spec = load_spec(path)
    if spec.digest != digest:
        raise ValueError(f"{path} changed while it was read")
    return load(derive(spec))


def interval_model_of_spec(path: str | Path) -> IntervalModel:
    """The interval module of the spec file ``path`` (derived and rendered in memory)."""
    from creality_sym.spec import load_spec

    spec = load_spec(path)
    return _model_of(str(Path(path).resolve()), spec.digest)


def interval_model_for(model: Any, spec: str | Path | None = None) -> IntervalModel:
    """The interval module of the spec a generated model module was printed from.

    ``spec``: the spec file (default: ``derivations/<SPEC_NAME>.py`` of the
    embedded derivations). Raises ``ValueError`` when the module was generated
    from another version of the spec (its ``SPEC_SHA256`` differs).
    """
    from creality_sym.spec import embedded_derivations

    name = getattr(model, "SPEC_NAME", None)
    if spec is None:
        if not name:
            raise ValueError(f"{getattr(model, '__name__', model)!r} names no SPEC_NAME")
        spec = embedded_derivations() / f"{name}.py"
    imodel = interval_model_of_spec(spec)
    digest = getattr(model, "SPEC_SHA256", None)
    if digest is not None and digest != imodel.spec_sha256:
        raise ValueError(
            f"{getattr(model, '__name__', model)} was generated from another version of {spec} "
            "(SPEC_SHA256 differs); regenerate it"
        )
    return imodel


def _outer(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.array([[a * c for c in v] for a in u], dtype=object)


def _mirror_upper(n: int, entry: Any) -> np.ndarray:
    """A symmetric object matrix from ``entry(i, j)`` for ``i <= j``."""
    M = np.empty((n, n), dtype=object)
    for i in range(n):
        for j in range(i, n):
            M[i, j] = M[j, i] = entry(i, j)
    return M


@dataclass(frozen=True)
class BallZHessian:
    """``B = diag(delta) - p f^T - f p^T + c f f^T + U C U^T`` held by its pieces (balls),
    like the generated runtime's ``ZHessian``."""

    f: np.ndarray
    delta: np.ndarray
    p: np.ndarray
    c: Any
    columns: tuple[np.ndarray, ...]
    core: tuple[tuple[Any, ...], ...]

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.f), len(self.f))

    def matvec(self, u: Any) -> np.ndarray:
        """``B u`` (balls)."""
        u = ia.asballs(np.asarray(u, dtype=object))
        f, p = self.f, self.p
        fu, pu = ia.sum(f * u), ia.sum(p * u)
        out = self.delta * u - p * fu - f * pu + f * (self.c * fu)
        for a, col in enumerate(self.columns):
            for b, other in enumerate(self.columns):
                out = out + col * (self.core[a][b] * ia.sum(other * u))
        return out

    def dense(self) -> np.ndarray:
        """The symmetric ``(n, n)`` matrix (balls)."""
        f, delta, p, c = self.f, self.delta, self.p, self.c
        pairs = [
            (self.core[a][b], self.columns[a], self.columns[b])
            for a in range(len(self.columns))
            for b in range(len(self.columns))
        ]

        def entry(i: int, j: int) -> Any:
            v = (delta[i] if i == j else ball(0)) - p[i] * f[j] - f[i] * p[j] + c * f[i] * f[j]
            for k, u, w in pairs:
                v = v + k * u[i] * w[j]
            return v

        return _mirror_upper(len(f), entry)


class _BallMethods:
    """The model methods of an instance whose values are balls (shared by both kinds).

    Like :class:`~creality_sym.instance.Instance`'s, every method takes a point
    ``x`` (default: the instance's own).
    """

    interval: IntervalModel
    params: Mapping[str, Any]
    _touched: set[str]
    _cache: dict[Any, Any]

    # --- subclasses provide
    def _logits(self, x: Any) -> np.ndarray:
        raise NotImplementedError

    def _x_point(self, x: Any) -> np.ndarray:
        raise NotImplementedError

    def _point(self, x: Any) -> Any:
        raise NotImplementedError

    # --- shared
    def _value(self, name: str) -> Any:
        params = object.__getattribute__(self, "params")
        object.__getattribute__(self, "_touched").add(name)
        if name in params:
            return params[name]
        for p in self.interval.parameters:
            if p.name == name and p.default is not None:
                return ball(float(p.default))
        raise ValueError(f"the instance gives no value for the spec parameter {name!r}")

    def _values(self, names: tuple[str, ...]) -> dict[str, Any]:
        wanted = set(names)
        return {
            p.name: (self._value(p.name) if p.name in wanted else None)
            for p in self.interval.parameters
        }

    def _cached(self, key: tuple[Any, ...], make: Any) -> Any:
        """``make()``, once per key; the point ``key[-1]`` is compared by identity."""
        point = key[-1]
        index = (*key[:-1], id(point))
        hit = self._cache.get(index)
        if hit is not None and hit[0] is point:
            return hit[1]
        value = make()
        self._cache[index] = (point, value)
        return value

    def _softmax(self, x: Any) -> ia.Softmax:
        x = self._point(x)

        def make() -> ia.Softmax:
            values = self._values(self.interval.logit_scale_uses)
            return self.interval.softmax(self._logits(x), values)

        return self._cached(("softmax", x), make)

    def _z_pieces(self, kind: str, term: str, x: Any) -> dict[str, Any]:
        x = self._point(x)
        fn = self.interval.function("z", kind, term)
        if fn is None:
            return {}
        names = self.interval.uses.get(fn.__name__, ())
        values = self._values(tuple(n for n in names if n not in ("z", "x")))
        sm = self._softmax(x)
        z = self._logits(x)
        return self._cached(
            ("z", kind, term, x), lambda: self.interval.z_pieces(kind, term, sm, z, values)
        )

    def _x_pieces(self, kind: str, term: str | None, x: Any) -> dict[str, Any]:
        fn = self.interval.function("x", kind, "total" if term is None else term)
        if fn is None:
            return {}
        names = self.interval.uses.get(fn.__name__, ())
        values = self._values(tuple(n for n in names if n not in ("z", "x")))
        return self.interval.x_pieces(
            kind, "total" if term is None else term, self._x_point(x), values
        )

    @property
    def logit_scale(self) -> Any:
        """The ball ``s`` with ``f = softmax(s A x)``."""
        return self.interval.logit_scale(self._values(self.interval.logit_scale_uses))

    @property
    def tradeoff(self) -> Any:
        """The trade-off scalar's ball (0 when the spec has none)."""
        name = getattr(self.model, "TRADEOFF", None) if self.model is not None else None
        return self._value(name) if name else ball(0)

    def z(self, x: Any = None) -> np.ndarray:
        """Logits ``A x`` ``(n,)`` (balls)."""
        return self._logits(self._point(x))

    def f(self, x: Any = None) -> np.ndarray:
        """Softmax probabilities ``(n,)`` (balls), the logit scale included."""
        return self._softmax(x).f

    def logf(self, x: Any = None) -> np.ndarray:
        """``log f`` ``(n,)`` (balls)."""
        return self._softmax(x).logf

    def u(self, x: Any = None) -> np.ndarray:
        """``exp(A x)`` ``(n,)`` (balls)."""
        return ia.exp(self.z(x))

    def alpha(self, x: Any = None) -> Any:
        """``<u(x), 1>`` (a ball)."""
        return ia.sum(self.u(x))

    def jacobian(self, x: Any = None) -> np.ndarray:
        """Softmax Jacobian ``diag(f) - f f^T`` ``(n, n)`` (balls)."""
        f = self.f(x)
        return _mirror_upper(len(f), lambda i, j: (f[i] if i == j else 0) - f[i] * f[j])

    def z_gradient(self, x: Any = None, term: str | None = None) -> np.ndarray:
        """``g (n,)`` with ``grad L = A^T g`` plus the x-space gradient (balls)."""
        g = self._z_pieces("gradient", "total" if term is None else term, x).get("g")
        return g if g is not None else ia.full(self.f(x), 0)

    def z_hessian_pieces(self, x: Any = None, term: str | None = None) -> BallZHessian:
        """The z-Hessian of ``term`` (None: the weighted total) held by its pieces (balls)."""
        pieces = self._z_pieces("hessian", "total" if term is None else term, x)
        f = self.f(x)

        def vec(key: str) -> np.ndarray:
            value = pieces.get(key, 0)
            return value if isinstance(value, np.ndarray) else ia.full(f, value)

        rank = sum(1 for k in pieces if k.startswith("lr"))
        core = tuple(
            tuple(ball(pieces.get(f"core{min(a, b)}_{max(a, b)}", 0)) for b in range(rank))
            for a in range(rank)
        )
        return BallZHessian(
            f=f,
            delta=vec("delta"),
            p=vec("p"),
            c=ball(pieces.get("c", 0)),
            columns=tuple(vec(f"lr{k}") for k in range(rank)),
            core=core,
        )

    def z_hessian(self, x: Any = None, term: str | None = None) -> np.ndarray:
        """Dense z-Hessian ``(n, n)`` of one unweighted term (``None``: total), balls."""
        return self.z_hessian_pieces(x, term).dense()

    def B_real(self, x: Any = None) -> np.ndarray:  # noqa: N802 - the paper's name
        """The paper's ``B_real`` ``(n, n)`` (balls)."""
        return self.z_hessian(x, "reality")

    def B_cre(self, x: Any = None) -> np.ndarray:  # noqa: N802
        """The paper's ``B_cre`` ``(n, n)`` (balls)."""
        return self.z_hessian(x, "creativity")

    def x_hessian_diag(self, x: Any = None, term: str | None = None) -> np.ndarray:
        """Hessian diagonal ``(d,)`` of the x-space terms (exact zeros when there are none)."""
        h = self._x_pieces("hessian", term, x).get("hessian_diag")
        return h if h is not None else ia.full(np.empty(self.d, dtype=object), 0)

    def x_gradient(self, x: Any = None, term: str | None = None) -> np.ndarray:
        """Gradient ``(d,)`` of the x-space terms (exact zeros when there are none)."""
        g = self._x_pieces("gradient", term, x).get("gradient")
        return g if g is not None else ia.full(np.empty(self.d, dtype=object), 0)

    def loss(self, x: Any = None, term: str | None = None) -> Any:
        """The total loss ``L(x)`` (or one unweighted ``term``), a ball."""
        name = "total" if term is None else term
        z_part = self._z_pieces("loss", name, x).get("loss", 0)
        return ball(z_part) + ball(self._x_pieces("loss", term, x).get("loss", 0))


def _tracking(cls: type) -> type:
    """Record, in ``_touched``, every tracked field and parameter the instance is asked for."""

    def __getattribute__(self: Any, name: str) -> Any:  # noqa: N807
        if name in TRACKED:
            object.__getattribute__(self, "_touched").add(name)
        return object.__getattribute__(self, name)

    def __getattr__(self: Any, name: str) -> Any:  # noqa: N807
        params = object.__getattribute__(self, "params")
        if not name.startswith("__") and name in params:
            object.__getattribute__(self, "_touched").add(name)
            return params[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    cls.__getattribute__ = __getattribute__  # type: ignore[method-assign]
    cls.__getattr__ = __getattr__  # type: ignore[attr-defined]
    return cls


@_tracking
@dataclass(frozen=True, eq=False)
class IntervalInstance(_BallMethods, Instance):
    """An :class:`~creality_sym.instance.Instance` of balls: ``A (n, d)``, ``x, y (d,)``,
    ``params`` (balls and object arrays of balls), ``R`` a ball; ``interval`` the
    spec's interval module."""

    interval: Any = field(default=None, repr=False)
    _touched: set[str] = field(default_factory=set, repr=False)
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cache", {})  # never shared by dataclasses.replace copies

    def _point(self, x: Any) -> Any:
        return self.x if x is None else x

    def _logits(self, x: Any) -> np.ndarray:
        return self._cached(("z", x), lambda: np.asarray(self.A @ ia.asballs(np.asarray(x))))

    def _x_point(self, x: Any) -> np.ndarray:
        return ia.asballs(np.asarray(self._point(x), dtype=object))

    def gradient(self, x: Any = None, term: str | None = None) -> np.ndarray:
        """``grad L (d,)`` = ``A^T g`` + the x-space gradient (balls)."""
        return self.A.T @ self.z_gradient(x, term) + self.x_gradient(x, term)

    def hessian(self, x: Any = None, term: str | None = None) -> np.ndarray:
        """``hess L (d, d)`` = ``A^T B A`` + the x-space diagonal (balls)."""
        B = self.z_hessian(x, term)
        A = self.A
        BA = B @ A
        diag = self.x_hessian_diag(x, term)

        def entry(i: int, j: int) -> Any:
            v = ia.sum(A[:, i] * BA[:, j])
            return v + diag[i] if i == j else v

        return _mirror_upper(A.shape[1], entry)

    def with_model(self, model: Any) -> IntervalInstance:
        return self

    def describe(self, digits: int = 6) -> str:
        def show(a: Any) -> str:
            if isinstance(a, np.ndarray):
                return "[" + ", ".join(show(v) for v in a) + "]"
            return describe(a, digits)

        rows = [f"n={self.n} d={self.d} R={show(self.R)}", f"A={show(self.A)}"]
        rows += [f"x={show(self.x)}", f"y={show(self.y)}"]
        rows += [f"{k}={show(v)}" for k, v in self.params.items()]
        return "\n".join(rows)


class _LogitPoint:
    """Stands for ``x`` in a :class:`LogitInstance`: only its methods may take it."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise NeedsFullDomain("the bound uses x itself, not only z = A x")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse
    __truediv__ = __rtruediv__ = __matmul__ = __rmatmul__ = __neg__ = __len__ = _refuse
    __getitem__ = __iter__ = __array__ = __float__ = _refuse

    def __repr__(self) -> str:
        return "<x of a logit box>"


@_tracking
@dataclass(eq=False)
class LogitInstance(_BallMethods):
    """Balls over the logits: ``zbox (n,)``, ``params``, ``R``, the dimension ``d``.

    ``x`` stands for the point whose logits are ``zbox``; ``A``, ``y``, the
    gradient and the Hessian in x raise :class:`NeedsFullDomain`.
    """

    zbox: np.ndarray
    params: Mapping[str, Any]
    R: Any
    d: int
    interval: Any
    model: Any = None
    _touched: set[str] = field(default_factory=set)
    _cache: dict[Any, Any] = field(default_factory=dict)
    x: Any = field(default_factory=_LogitPoint)

    @property
    def n(self) -> int:
        return int(self.zbox.shape[0])

    @property
    def A(self) -> Any:  # noqa: N802
        raise NeedsFullDomain("the bound uses A itself, not only z = A x")

    @property
    def y(self) -> Any:
        raise NeedsFullDomain("the bound uses the second point y")

    @property
    def spec(self) -> str:
        return self.interval.spec_name

    @property
    def terms(self) -> tuple[str, ...]:
        return self.interval.terms

    def _point(self, x: Any) -> Any:
        own = object.__getattribute__(self, "x")
        if x is not None and x is not own:
            raise NeedsFullDomain("the bound evaluates the model away from x")
        return own

    def _logits(self, x: Any) -> np.ndarray:
        object.__getattribute__(self, "_touched").add("z")
        return self.zbox

    def _x_point(self, x: Any) -> np.ndarray:
        raise NeedsFullDomain("the spec has x-space terms")

    def gradient(self, x: Any = None, term: str | None = None) -> Any:
        raise NeedsFullDomain("the gradient in x needs A")

    def hessian(self, x: Any = None, term: str | None = None) -> Any:
        raise NeedsFullDomain("the Hessian in x needs A")


def from_instance(inst: Instance, imodel: IntervalModel) -> IntervalInstance:
    """The point ``inst`` as balls (every float64 exactly)."""
    params: dict[str, Any] = {}
    for name, value in inst.params.items():
        arr = np.asarray(value, dtype=np.float64)
        params[name] = ball(float(arr)) if arr.shape == () else ia.asballs(arr)
    y = None if inst.y is None else ia.asballs(np.asarray(inst.y, dtype=np.float64))
    R = float(inst.R)
    return IntervalInstance(
        A=ia.asballs(np.asarray(inst.A, dtype=np.float64)),
        x=ia.asballs(np.asarray(inst.x, dtype=np.float64)),
        params=params,
        model=inst.model,
        y=y,
        R=ball(R) if np.isfinite(R) else R,
        interval=imodel,
    )
