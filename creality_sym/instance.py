"""One numeric data model for every spec: ``A``, ``x`` and the parameters by name.

An :class:`Instance` holds ``A (n, d)``, a point ``x (d,)`` and a value for
every entry of a generated module's ``PARAMETERS``, by name; its methods
evaluate the model there, for any spec (the ``(d, d)`` Hessian, the dense
``(n, n)`` z-Hessian of one term for small ``n``...).

    >>> import numpy as np
    >>> from creality_sym.instance import Instance, load_model
    >>> model = load_model("renyi")
    >>> inst = Instance.random(model, 6, 3, np.random.default_rng(0), scalars={"q": 2.0})
    >>> inst.z_hessian(inst.x, "creativity").shape
    (6, 6)

The parameters are also attributes (``inst.b``, ``inst.gamma``); they never
shadow a field. :func:`resolve_scalars` gives every scalar a value
(``--param``, the spec's default, or a stated choice by rule).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_SPEC",
    "PACKAGE",
    "SCALAR_CHOICES",
    "Instance",
    "spec_names",
    "load_model",
    "model_name",
    "resolve_scalars",
    "parse_params",
    "draw_vector",
    "draw_scalar",
    "check_value",
    "add_spec_arguments",
]

#: the spec every command runs unless told otherwise
DEFAULT_SPEC = "creativity_reality"
#: the package of the generated modules
PACKAGE = "creality_generated"

#: the value a scalar without a spec default gets, by rule, when none is given
SCALAR_CHOICES = {"nonnegative": 0.5, "positive": 2.0, "real": 0.0}

FIELDS = ("A", "x", "y", "R", "params", "model")


def spec_names() -> tuple[str, ...]:
    """Names of the installed generated specs (``creality_generated.SPECS``)."""
    package = importlib.import_module(PACKAGE)
    return tuple(getattr(package, "SPECS", ()))


def load_model(spec: str | ModuleType | None = None) -> ModuleType:
    """The generated module of ``spec``: a spec name (``"renyi"``), a dotted module name,
    a module, or None (:data:`DEFAULT_SPEC`); ``ValueError`` (one line, naming the
    installed specs) when it cannot be imported."""
    if isinstance(spec, ModuleType):
        return spec
    name = DEFAULT_SPEC if spec is None else str(spec)
    dotted = name if "." in name else f"{PACKAGE}.{name}"
    if "." not in name and name not in spec_names():
        known = ", ".join(spec_names())
        raise ValueError(f"no generated spec {name!r}; installed: {known}")
    try:
        return importlib.import_module(dotted)
    except ImportError as exc:
        raise ValueError(f"cannot import {dotted!r} ({exc})") from exc


def model_name(model: Any) -> str:
    """The spec name of a generated module (its ``SPEC_NAME``), else its module name."""
    return str(getattr(model, "SPEC_NAME", getattr(model, "__name__", model)))


def check_value(name: str, rule: str, value: float) -> float:
    """``value`` as a float obeying ``rule``; ``ValueError`` naming ``name`` otherwise."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite; got {value!r}")
    if rule == "positive" and not out > 0:
        raise ValueError(f"{name} must be > 0 (rule positive); got {out:g}")
    if rule == "nonnegative" and not out >= 0:
        raise ValueError(f"{name} must be >= 0 (rule nonnegative); got {out:g}")
    return out


def parse_params(items: list[str] | None) -> dict[str, float]:
    """``["q=2", "tau=0.5"]`` -> ``{"q": 2.0, "tau": 0.5}``; ``ValueError`` names the item."""
    out: dict[str, float] = {}
    for item in items or ():
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ValueError(f"--param must be NAME=VALUE; got {item!r}")
        try:
            out[name] = float(text)
        except ValueError:
            raise ValueError(f"--param {name}: {text.strip()!r} is not a number") from None
    return out


def add_spec_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """Add ``--spec NAME`` and repeatable ``--param NAME=VALUE`` to a command's parser."""
    parser.add_argument(
        "--spec",
        metavar="NAME",
        default=None,
        help=f"the {what} spec, a module of {PACKAGE} (default {DEFAULT_SPEC})",
    )
    parser.add_argument(
        "--param",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="set a scalar parameter of the spec (repeatable); a scalar without a value takes "
        "the spec's default, or a choice by rule that the command states",
    )


def resolve_scalars(
    model: Any, given: Mapping[str, float] | None = None, *, tradeoff: float | None = None
) -> tuple[dict[str, float], list[str]]:
    """A value for every scalar of ``model`` and notes on the chosen ones: ``given``
    (``--param``), else ``tradeoff`` for ``model.TRADEOFF``, the spec's default, or
    :data:`SCALAR_CHOICES` by rule (noted). ``ValueError``, one line naming the
    parameter: not the spec's, a vector, breaking its rule, or the loss singular there.
    """
    given = dict(given or {})
    by_name = {p.name: p for p in model.PARAMETERS}
    spec = model_name(model)
    scalar_params = [p for p in model.PARAMETERS if p.kind == "scalar"]
    for name in given:
        if name not in by_name:
            scalars = ", ".join(p.name for p in scalar_params) or "none"
            raise ValueError(
                f"--param {name}: spec {spec} has no parameter {name!r} (scalars: {scalars})"
            )
        if by_name[name].kind != "scalar":
            raise ValueError(
                f"--param {name}: {name} is a vector of spec {spec}; only scalars can be set"
            )
    values: dict[str, float] = {}
    notes: list[str] = []
    trade = getattr(model, "TRADEOFF", None)
    for p in scalar_params:
        if p.name in given:
            values[p.name] = check_value(f"--param {p.name}", p.rule, given[p.name])
        elif p.name == trade and tradeoff is not None:
            values[p.name] = float(tradeoff)
        elif p.default is not None:
            values[p.name] = float(p.default)
        else:
            values[p.name] = SCALAR_CHOICES.get(p.rule, 0.0)
            notes.append(
                f"{p.name} = {values[p.name]:g} (spec {spec} gives no default; chosen "
                f"for {p.rule} scalars; --param {p.name}=VALUE to set it)"
            )
    _probe(model, values, given)
    return values, notes


def _probe(model: Any, scalars: Mapping[str, float], given: Mapping[str, float]) -> None:
    """Evaluate the loss on a small random instance: singular scalar values fail here."""
    inst = Instance.random(model, 5, 2, np.random.default_rng(0), scalars=scalars)
    try:
        value = float(model.loss(inst.x, inst.A, **inst.params))
    except ValueError as exc:
        value, why = math.nan, str(exc)
    else:
        why = f"the loss is {value}"
    if not math.isfinite(value):
        names = [n for n in scalars if n in given] or list(scalars)
        shown = ", ".join(f"{n}={scalars[n]:g}" for n in names)
        raise ValueError(f"--param {shown}: spec {model_name(model)} is singular there ({why})")


def draw_vector(rule: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``(size,)`` vector by ``rule``: flat Dirichlet (probability), U(0.5, 1.5)
    (positive), U(0, 1) (nonnegative), N(0, 1) (real)."""
    if rule == "probability":
        return rng.dirichlet(np.ones(size))
    if rule == "positive":
        return rng.uniform(0.5, 1.5, size)
    if rule == "nonnegative":
        return rng.uniform(0.0, 1.0, size)
    return rng.standard_normal(size)


def draw_scalar(rule: str, rng: np.random.Generator) -> float:
    """A random scalar obeying ``rule``: U(0.5, 2), U(0.2, 1.5) or N(0, 1)."""
    if rule == "positive":
        return float(rng.uniform(0.5, 2.0))
    if rule == "nonnegative":
        return float(rng.uniform(0.2, 1.5))
    return float(rng.standard_normal())


#: the only syntax :func:`arithmetic` evaluates
_ARITHMETIC = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Name, ast.Load)
_ARITHMETIC += (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)


def arithmetic(text: str, names: Mapping[str, float]) -> float:
    """Value of a plain arithmetic expression (``"1/tau"``) over ``names``; ``ValueError``
    for anything else (calls, attributes, unknown names)."""
    tree = ast.parse(text, mode="eval")
    for node in ast.walk(tree):
        bad = not isinstance(node, _ARITHMETIC) or (
            isinstance(node, ast.Name) and node.id not in names
        )
        if bad or (isinstance(node, ast.Constant) and not isinstance(node.value, (int, float))):
            raise ValueError(f"not plain arithmetic in the scalars: {text!r}")
    return float(eval(compile(tree, "<logit scale>", "eval"), {"__builtins__": {}}, dict(names)))


def _scalar(p: Any, scalars: Mapping[str, float], rng: np.random.Generator) -> float:
    """``scalars[p.name]``, else the spec's default, else :func:`draw_scalar`."""
    value = scalars.get(p.name, p.default)
    return draw_scalar(p.rule, rng) if value is None else float(value)


@dataclass(frozen=True, eq=False)
class Instance:
    """Data of one generated model: ``A (n, d)``, ``x (d,)``, parameters by name.

    ``params``: every name of ``model.PARAMETERS`` -> ``(n,)``/``(d,)`` array or
    float; ``y (d,)`` a second point and ``R`` a radius (for the auditor);
    ``model`` the generated module (None: the default spec). Methods take a
    point ``x (d,)`` (default ``self.x``); dense ``(n, n)`` results are for small n.
    """

    A: np.ndarray
    x: np.ndarray
    params: Mapping[str, Any]
    model: Any = field(default=None, repr=False)
    y: np.ndarray | None = None
    R: float = math.nan

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("params")
        if params is not None and not name.startswith("__") and name in params:
            return params[name]
        raise AttributeError(
            f"{type(self).__name__} has no attribute {name!r}"
            + (f" (parameters: {', '.join(params)})" if params is not None else "")
        )

    # -- construction ------------------------------------------------------
    @classmethod
    def random(
        cls,
        model: Any,
        n: int,
        d: int,
        rng: np.random.Generator,
        *,
        scalars: Mapping[str, float] | None = None,
        vectors: Mapping[str, np.ndarray] | None = None,
        logit_std: float = 1.0,
    ) -> Instance:
        """``A`` with N(0, logit_std^2 / d) entries and ``x ~ N(0, I_d)`` (logits of size
        ``logit_std``); vectors from ``vectors`` or :func:`draw_vector` at their shape,
        scalars from ``scalars``, the spec's default or :func:`draw_scalar`."""
        model = load_model(model)
        A = rng.standard_normal((n, d)) * (logit_std / math.sqrt(d))
        x = rng.standard_normal(d)
        scalars, vectors = dict(scalars or {}), dict(vectors or {})
        params: dict[str, Any] = {}
        for p in model.PARAMETERS:
            if p.kind == "scalar":
                params[p.name] = _scalar(p, scalars, rng)
            elif p.name in vectors:
                params[p.name] = np.asarray(vectors[p.name], dtype=np.float64)
            else:
                params[p.name] = draw_vector(p.rule, n if p.shape == "n" else d, rng)
        return cls(A=A, x=x, params=params, model=model)

    @classmethod
    def problem(
        cls,
        model: Any,
        n: int,
        d: int,
        rng: np.random.Generator,
        *,
        scalars: Mapping[str, float] | None = None,
        w_scale: float = 0.3,
        condition: float = 100.0,
    ) -> Instance:
        """A well-scaled optimization problem; ``x (d,)`` is the start ``N(0, I_d)``.

        ``A = G diag(c) / sqrt(d)``, ``G`` i.i.d. ``N(0, 1)``, column scales ``c``
        geometric from 1 to ``1 / condition`` (mean ``c^2 = 1``): logits of order
        1. Then, in parameter order: probability vectors flat Dirichlet,
        positive and nonnegative ones weights ``w_scale / sqrt(n) U(0.5, 1.5)``
        (shape ``n``) or ``w_scale U(0.5, 1.5)`` (shape ``d``), real ones
        ``N(0, 1)``; scalars as in :meth:`random`. For the default spec, the
        solver's ``random_instance`` draw for draw.
        """
        model = load_model(model)
        A = rng.standard_normal((n, d))
        c = condition ** -np.linspace(0.0, 1.0, d)
        A *= c / np.sqrt(np.mean(c**2) * d)
        scalars = dict(scalars or {})
        params: dict[str, Any] = {}
        for p in model.PARAMETERS:
            size = n if p.shape == "n" else d
            if p.kind == "scalar":
                params[p.name] = _scalar(p, scalars, rng)
            elif p.rule == "probability":
                v = rng.exponential(size=size)
                params[p.name] = v / v.sum()
            elif p.rule in ("positive", "nonnegative"):
                scale = w_scale / math.sqrt(n) if p.shape == "n" else w_scale
                params[p.name] = scale * rng.uniform(0.5, 1.5, size=size)
            else:
                params[p.name] = rng.standard_normal(size)
        return cls(A=A, x=rng.standard_normal(d), params=params, model=model)

    def replace(self, **changes: Any) -> Instance:
        """A copy with fields (``A``, ``x``, ``y``, ``R``, ``model``) or parameters changed."""
        fields_ = {k: v for k, v in changes.items() if k in FIELDS}
        extra = {k: v for k, v in changes.items() if k not in FIELDS}
        unknown = [k for k in extra if k not in self.params]
        if unknown:
            raise ValueError(
                f"not a field or parameter: {unknown}; parameters: {list(self.params)}"
            )
        if extra:
            fields_["params"] = {**self.params, **extra}
        return _replace(self, **fields_)

    def with_model(self, model: Any) -> Instance:
        """The same data with another model (None drops it, e.g. before pickling)."""
        return _replace(self, model=model)

    # -- shapes and metadata -------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.A.shape[0])

    @property
    def d(self) -> int:
        return int(self.A.shape[1])

    @property
    def _m(self) -> Any:
        if self.model is None:
            object.__setattr__(self, "model", load_model(None))
        return self.model

    @property
    def spec(self) -> str:
        """The spec's name."""
        return model_name(self._m)

    @property
    def terms(self) -> tuple[str, ...]:
        """The spec's term names."""
        return tuple(self._m.TERMS)

    @property
    def tradeoff(self) -> float:
        """Value of the trade-off scalar (``model.TRADEOFF``), 0 when the spec has none."""
        name = getattr(self._m, "TRADEOFF", None)
        return float(self.params[name]) if name else 0.0

    @property
    def logit_scale(self) -> float | None:
        """The value of ``model.LOGIT_SCALE`` (the softmax is of ``scale * A x``); None
        when that text is not plain arithmetic in the scalars."""
        scalars = {k: v for k, v in self.params.items() if np.ndim(v) == 0}
        try:
            return arithmetic(str(getattr(self._m, "LOGIT_SCALE", "1")), scalars)
        except (SyntaxError, ValueError, ZeroDivisionError, OverflowError):
            return None

    # -- evaluation ----------------------------------------------------------
    def _x(self, x: np.ndarray | None) -> np.ndarray:
        return self.x if x is None else x

    def _call(self, name: str, x: np.ndarray | None, term: str | None = None) -> Any:
        fn = getattr(self._m, name)
        extra = {} if term is None else {"term": term}
        return fn(self._x(x), self.A, **self.params, validate=False, **extra)

    def z(self, x: np.ndarray | None = None) -> np.ndarray:
        """Logits ``A x`` ``(n,)``."""
        return self.A @ self._x(x)

    def u(self, x: np.ndarray | None = None) -> np.ndarray:
        """``exp(A x)`` ``(n,)`` (no shift)."""
        return np.exp(self.z(x))

    def alpha(self, x: np.ndarray | None = None) -> float:
        """``<u(x), 1>``."""
        return float(np.sum(self.u(x)))

    def f(self, x: np.ndarray | None = None) -> np.ndarray:
        """Softmax probabilities ``(n,)`` of the spec (its logit scale included)."""
        return np.asarray(self._call("probabilities", x))

    def logf(self, x: np.ndarray | None = None) -> np.ndarray:
        """``log f`` ``(n,)``, finite where ``f`` underflows."""
        return np.asarray(self._call("log_probabilities", x))

    def loss(self, x: np.ndarray | None = None, term: str | None = None) -> float:
        """The total loss (or one unweighted ``term``)."""
        return float(self._call("loss", x, term=term))

    def gradient(self, x: np.ndarray | None = None, term: str | None = None) -> np.ndarray:
        """``grad L (d,)`` (or of one unweighted ``term``)."""
        return np.asarray(self._call("gradient", x, term=term))

    def hessian(self, x: np.ndarray | None = None, term: str | None = None) -> np.ndarray:
        """``hess L (d, d)`` (or of one unweighted ``term``)."""
        return np.asarray(self._call("hessian", x, term=term))

    def x_hessian_diag(self, x: np.ndarray | None = None, term: str | None = None) -> np.ndarray:
        """Hessian diagonal ``(d,)`` of the x-space terms (zeros when there are none)."""
        return np.asarray(self._call("x_hessian_diag", x, term=term))

    def z_gradient(self, x: np.ndarray | None = None, term: str | None = None) -> np.ndarray:
        """``g (n,)`` with ``grad L = A^T g`` plus the x-space gradient."""
        return np.asarray(self._call("z_gradient", x, term=term))

    def z_hessian_pieces(self, x: np.ndarray | None = None, term: str | None = None) -> Any:
        """The z-Hessian of ``term`` (None: the weighted total) as a ``ZHessian``."""
        self._check_term(term)
        return self._call("z_hessian", x, term=term)

    def z_hessian(self, x: np.ndarray | None = None, term: str | None = None) -> np.ndarray:
        """Dense z-Hessian ``B (n, n)`` of ``term`` (None: the total): hess = A^T B A + x-part."""
        return np.asarray(self.z_hessian_pieces(x, term).dense())

    def B_real(self, x: np.ndarray | None = None) -> np.ndarray:
        """z-Hessian ``(n, n)`` of the term ``reality``."""
        return self.z_hessian(x, "reality")

    def B_cre(self, x: np.ndarray | None = None) -> np.ndarray:
        """z-Hessian ``(n, n)`` of the term ``creativity``."""
        return self.z_hessian(x, "creativity")

    def jacobian(self, x: np.ndarray | None = None) -> np.ndarray:
        """Softmax Jacobian ``diag(f) - f f^T`` ``(n, n)`` in the softmax's own logits."""
        f = self.f(x)
        return np.diag(f) - np.outer(f, f)

    def _check_term(self, term: str | None) -> None:
        if term is not None and term not in self.terms:
            raise ValueError(f"spec {self.spec} has no term {term!r}; terms: {self.terms}")

    # -- files and text ------------------------------------------------------
    def arrays(self) -> dict[str, Any]:
        """Fields and parameters for ``.npz``: ``A, x, [y, R], n, d``, each parameter by name,
        ``spec`` and ``parameters`` (the names, comma-separated)."""
        out: dict[str, Any] = {"A": self.A, "x": self.x}
        if self.y is not None:
            out["y"] = self.y
        if not math.isnan(self.R):
            out["R"] = np.float64(self.R)
        out.update(n=np.int64(self.n), d=np.int64(self.d))
        for name, value in self.params.items():
            out[name] = np.asarray(value, dtype=np.float64)
        out["spec"] = np.str_(self.spec)
        out["parameters"] = np.str_(",".join(self.params))
        return out

    def describe(self, digits: int = 6) -> str:
        """A readable multi-line rendering of every field and parameter."""
        scalars = [f"{k}={float(v)!r}" for k, v in self.params.items() if np.ndim(v) == 0]
        head = f"spec {self.spec}: n={self.n} d={self.d}"
        if not math.isnan(self.R):
            head += f" R={self.R!r}"
        rows = [" ".join([head, *scalars])]
        with np.printoptions(precision=digits, suppress=False, linewidth=100):
            rows += [f"A=\n{self.A}", f"x={self.x}"]
            if self.y is not None:
                rows.append(f"y={self.y}")
            rows += [f"{k}={v}" for k, v in self.params.items() if np.ndim(v) != 0]
        return "\n".join(rows)
