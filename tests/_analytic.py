"""Closed-form answers for the statistical tests: stationary moments, time-average errors, master equations.

For a single channel with generator ``Q`` and stationary distribution ``pi``, the deviation matrix
``D = (Pi - Q)^-1 - Pi`` (``Pi = 1 pi``) gives ``int_0^inf Cov(1_A(0), 1_A(t)) dt = sum_{i,j in A} pi_i D_ij``.
N independent channels then have, for the time average of the open fraction over a long window T,
``Var = 2 * I_A / (N T)`` (Kemeny & Snell 1960; Whitt 1992 doi:10.1287/opre.40.2.279).
"""

import numpy as np
from scipy.integrate import solve_ivp
from scipy.linalg import expm


def integrated_autocovariance(Q, mask):
    n = Q.shape[0]
    A = np.vstack([Q.T[:-1], np.ones(n)])
    b = np.zeros(n)
    b[-1] = 1.0
    pi = np.linalg.solve(A, b)
    Pi = np.outer(np.ones(n), pi)
    D = np.linalg.inv(Pi - Q) - Pi
    m = np.asarray(mask, dtype=bool)
    return pi, float(pi[m] @ D[np.ix_(m, m)].sum(axis=1))


def open_probability_after_step(Q, p0, t_ms, mask):
    """Open probability ``t_ms`` after a step, from ``p(t) = p0 expm(Q t)``."""
    return np.array([float((p0 @ expm(Q * t))[np.asarray(mask, bool)].sum()) for t in np.atleast_1d(t_ms)])


def open_probability_along(scheme, temperature, V_of_t, p0, t_eval, mask):
    """Master equation ``dp/dt = p Q(V(t))`` along a prescribed voltage path, solved tightly."""

    def rhs(t, p):
        return p @ scheme.generator(V_of_t(t), temperature)

    sol = solve_ivp(rhs, (0.0, float(np.max(t_eval))), p0, t_eval=t_eval, rtol=1e-10, atol=1e-13, method="DOP853")
    return sol.y[np.asarray(mask, bool)].sum(axis=0)
