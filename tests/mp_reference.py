"""High-precision (mpmath) reference for the default spec, from the textbook formulas.

Dense n x n algebra at 60+ digits: independent of the derivation engine and of
the generated code's cancellation-avoiding layout. Small n only.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np

DPS = 60


def _digits(A, x):
    """Working digits: 60 beyond what 1 - f_max needs (f can sit within 1e-300 of one-hot)."""
    z = A @ x
    gap = float(np.max(z) - np.min(z))
    return DPS + int(gap / 2.3) + 10


def _mat(a):
    return mp.matrix([[mp.mpf(float(v)) for v in row] for row in np.atleast_2d(a)])


def _vec(a):
    return mp.matrix([mp.mpf(float(v)) for v in a])


def reference(x, A, b, w, gamma):
    """(loss, gradient (d,), hessian (d, d)) as float64 arrays, computed at high precision."""
    with mp.workdps(_digits(A, x)):
        n, d = A.shape
        Am, xm, bm, wm, g = _mat(A), _vec(x), _vec(b), _vec(w), mp.mpf(float(gamma))
        z = Am * xm
        zmax = max(z[j] for j in range(n))
        e = [mp.exp(z[j] - zmax) for j in range(n)]
        s = mp.fsum(e)
        f = [ej / s for ej in e]
        logf = [z[j] - zmax - mp.log(s) for j in range(n)]
        loss = (
            mp.fsum((f[j] - bm[j]) ** 2 for j in range(n)) / 2
            + g * mp.fsum(f[j] * logf[j] for j in range(n))
            + mp.fsum((wm[j] * z[j]) ** 2 for j in range(n)) / 2
        )
        # paper notation: c = f - b, s = <f, c>, q = f o (2f - b), m = <f, z>, v = f o (z - m)
        c = [f[j] - bm[j] for j in range(n)]
        s_ = mp.fsum(f[j] * c[j] for j in range(n))
        q = [f[j] * (2 * f[j] - bm[j]) for j in range(n)]
        m = mp.fsum(f[j] * z[j] for j in range(n))
        v = [f[j] * (z[j] - m) for j in range(n)]
        r = mp.fsum((3 * f[j] - 2 * bm[j]) * f[j] for j in range(n))
        gz = [f[j] * c[j] - s_ * f[j] + g * v[j] + wm[j] ** 2 * z[j] for j in range(n)]
        grad = [mp.fsum(Am[j, i] * gz[j] for j in range(n)) for i in range(d)]
        B = mp.matrix(n, n)
        for j in range(n):
            for k in range(n):
                real = -q[j] * f[k] - f[j] * q[k] + r * f[j] * f[k]
                cre = -f[j] * f[k] - v[j] * f[k] - f[j] * v[k]
                if j == k:
                    real += f[j] * (2 * f[j] - bm[j] - s_)
                    cre += f[j] + v[j]
                B[j, k] = real + g * cre + (wm[j] ** 2 if j == k else 0)
        H = Am.T * B * Am
        return (
            float(loss),
            np.array([float(v) for v in grad]),
            np.array([[float(H[i, k]) for k in range(d)] for i in range(d)]),
        )
