"""A plain, dense numpy implementation of the default spec, for cross-checks.

Independent of the derivation engine and of ``generated/``: written from
the formulas of docs/mathematics.md by hand, forming n x n matrices freely (small n only).
It mirrors the generated module's API for ``creativity_reality``.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

TERMS = ("reality", "creativity", "regularizer")
PARAMETERS = ("b", "w", "gamma")


def probabilities(x, A, b, w, gamma, *, validate=True):
    z = A @ x
    e = np.exp(z - z.max())
    return e / e.sum()


def _logf(x, A):
    z = A @ x
    zmax = z.max()
    return z - zmax - np.log(np.exp(z - zmax).sum())


def loss(x, A, b, w, gamma, *, validate=True):
    f = probabilities(x, A, b, w, gamma)
    z = A @ x
    return 0.5 * np.sum((f - b) ** 2) + gamma * np.sum(f * _logf(x, A)) + 0.5 * np.sum((w * z) ** 2)


def _jacobian(f):
    return np.diag(f) - np.outer(f, f)


def z_gradient(x, A, b, w, gamma, *, term=None, validate=True):
    f = probabilities(x, A, b, w, gamma)
    z = A @ x
    J = _jacobian(f)
    parts = {
        "reality": J @ (f - b),
        "creativity": J @ (_logf(x, A) + 1.0),
        "regularizer": w**2 * z,
    }
    if term is not None:
        return parts[term]
    return parts["reality"] + gamma * parts["creativity"] + parts["regularizer"]


def gradient(x, A, b, w, gamma, *, validate=True):
    return A.T @ z_gradient(x, A, b, w, gamma)


def z_hessian_dense(x, A, b, w, gamma, *, term=None):
    """n x n z-Hessian by the textbook formulas (docs/mathematics.md)."""
    f = probabilities(x, A, b, w, gamma)
    z = A @ x
    c = f - b
    s = f @ c
    q = f * (2 * f - b)
    m = f @ z
    v = f * (z - m)
    B_real = (
        np.diag(f * (2 * f - b - s))
        - np.outer(q, f)
        - np.outer(f, q)
        + ((3 * f - 2 * b) @ f) * np.outer(f, f)
    )
    B_cre = np.diag(f + v) - np.outer(f, f) - np.outer(v, f) - np.outer(f, v)
    parts = {"reality": B_real, "creativity": B_cre, "regularizer": np.diag(w**2)}
    if term is not None:
        return parts[term]
    return B_real + gamma * B_cre + np.diag(w**2)


def hessian(x, A, b, w, gamma, *, validate=True):
    return A.T @ z_hessian_dense(x, A, b, w, gamma) @ A


def hvp(x, v, A, b, w, gamma, *, validate=True):
    return hessian(x, A, b, w, gamma) @ v


def z_hessian(x, A, b, w, gamma, *, term=None, validate=True):
    B = z_hessian_dense(x, A, b, w, gamma, term=term)
    return SimpleNamespace(dense=lambda: B, matvec=lambda u: B @ u)
