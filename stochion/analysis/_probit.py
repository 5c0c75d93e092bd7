"""Maximum-likelihood cumulative-Gaussian (probit) fit of Bernoulli data, with profile-likelihood intervals.

Private engine of :func:`stochion.analysis.fit_threshold`. Data are grouped: distinct stimulus values ``x``,
trials ``n`` and successes ``k`` at each; the model is ``P(fire | x) = Phi((x - theta) / sigma)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

__all__: list[str] = []  # private module


@dataclass(frozen=True)
class ProbitData:
    x: np.ndarray
    n: np.ndarray
    k: np.ndarray

    @property
    def scale(self) -> float:
        return float(np.ptp(self.x))

    @property
    def separated(self) -> bool:
        """True when every failure lies below every success (complete separation: the MLE has sigma -> 0)."""
        fail = self.x[self.k < self.n]
        fire = self.x[self.k > 0]
        return bool(fail.max() < fire.min())


def group(x: np.ndarray, fired: np.ndarray) -> ProbitData:
    xs, inv = np.unique(np.asarray(x, dtype=float), return_inverse=True)
    n = np.bincount(inv).astype(float)
    k = np.bincount(inv, weights=np.asarray(fired, dtype=float))
    return ProbitData(xs, n, k)


def nll(data: ProbitData, theta: float, sigma: float) -> float:
    z = (data.x - theta) / sigma
    return float(-(data.k * special.log_ndtr(z) + (data.n - data.k) * special.log_ndtr(-z)).sum())


def sigma_floor(data: ProbitData) -> float:
    return 1e-6 * max(data.scale, 1e-12)


def mle(data: ProbitData, start: tuple[float, float] | None = None) -> tuple[float, float, float]:
    """Return (theta, sigma, nll) at the maximum likelihood; sigma is floored at ``sigma_floor``.

    Damped Newton in the natural parameters ``z = a + b x`` (``b = 1/sigma``, ``a = -theta/sigma``), where the
    probit log-likelihood is concave (Finney 1971), started from the best point of a coarse grid.
    """
    s = max(data.scale, 1e-12)
    if start is None:
        thetas = np.linspace(data.x.min() - 0.5 * s, data.x.max() + 0.5 * s, 41)
        sigmas = s * np.logspace(-3, 0.5, 24)
        z = (data.x[None, None, :] - thetas[:, None, None]) / sigmas[None, :, None]
        grid = -(data.k * special.log_ndtr(z) + (data.n - data.k) * special.log_ndtr(-z)).sum(axis=2)
        i, j = np.unravel_index(np.argmin(grid), grid.shape)
        start = (thetas[i], sigmas[j])
    b_lo, b_hi = 1.0 / (100 * s), 1.0 / sigma_floor(data)
    b = min(max(1.0 / max(start[1], sigma_floor(data)), b_lo), b_hi)
    a = -start[0] * b
    x = data.x
    ll, g, h = _terms(data, a + b * x)
    for _ in range(200):
        G = np.array([g.sum(), g @ x])
        H = np.array([[h.sum(), h @ x], [h @ x, h @ x**2]])
        try:
            step = -np.linalg.solve(H, G)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)):
            break
        t = 1.0
        while True:
            bn = min(max(b + t * step[1], b_lo), b_hi)
            an = a + t * step[0]
            lln, gn, hn = _terms(data, an + bn * x)
            if lln >= ll - 1e-12 * (1 + abs(ll)) or t < 1e-10:
                break
            t *= 0.5
        done = lln - ll < 1e-13 * (1 + abs(ll)) and np.all(np.abs([an - a, bn - b]) <= 1e-9 * (1 + np.abs([a, b])))
        if lln >= ll:
            a, b, ll, g, h = an, bn, lln, gn, hn
        if done or t < 1e-10:
            break
    theta, sigma = -a / b, 1.0 / b
    return float(theta), float(sigma), nll(data, theta, sigma)


def _terms(data: ProbitData, z: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Log-likelihood and its first and second derivatives with respect to each z_i."""
    lp, lq = special.log_ndtr(z), special.log_ndtr(-z)
    logphi = -0.5 * z**2 - 0.5 * np.log(2 * np.pi)
    l1, l2 = np.exp(logphi - lp), np.exp(logphi - lq)  # inverse Mills ratios
    fail = data.n - data.k
    ll = float(np.sum(data.k * lp + fail * lq))
    g = data.k * l1 - fail * l2
    h = -data.k * l1 * (z + l1) - fail * l2 * (l2 - z)
    return ll, g, h


def _maximize_linear(data: ProbitData, z0: np.ndarray, dz: np.ndarray, p0: float, lo: float, hi: float) -> float:
    """Maximise the log-likelihood over p with z = z0 + p * dz (concave in p), by damped Newton; return -max.

    The probit log-likelihood is concave in any parameter that enters z linearly, so Newton with step halving
    converges from any start; the bounds keep sigma away from 0 under complete separation.
    """
    p = min(max(p0, lo), hi)
    ll, g, h = _terms(data, z0 + p * dz)
    for _ in range(100):
        G, H = float(g @ dz), float(h @ dz**2)
        if H >= 0 or not np.isfinite(H):
            break
        step = -G / H
        t = 1.0
        while True:
            pn = min(max(p + t * step, lo), hi)
            lln, gn, hn = _terms(data, z0 + pn * dz)
            if lln >= ll - 1e-12 * (1 + abs(ll)) or t < 1e-10:
                break
            t *= 0.5
        done = abs(pn - p) <= 1e-12 * (1 + abs(p)) or lln - ll < 1e-13 * (1 + abs(ll))
        p, ll, g, h = pn, max(lln, ll), gn, hn
        if done:
            break
    return -ll


def _profile_theta(data: ProbitData, theta: float, sigma_hat: float) -> float:
    # over b = 1/sigma: z = (x - theta) * b
    s = max(data.scale, 1e-12)
    return _maximize_linear(data, np.zeros_like(data.x), data.x - theta, 1.0 / sigma_hat,
                            1.0 / (100 * s), 1.0 / sigma_floor(data))


def _profile_sigma(data: ProbitData, sigma: float, theta_hat: float) -> float:
    # over theta: z = x/sigma - theta/sigma
    s = max(data.scale, 1e-12)
    width = 5 * s + 10 * sigma
    return _maximize_linear(data, data.x / sigma, np.full_like(data.x, -1.0 / sigma), theta_hat,
                            theta_hat - width, theta_hat + width)


def _profile_ratio(data: ProbitData, ratio: float, theta_hat: float) -> float:
    # over w = 1/theta: z = (x - theta) / (ratio * theta) = (x * w - 1) / ratio
    s = max(data.scale, 1e-12)
    hi = max(theta_hat, data.x.max()) + 5 * s
    return _maximize_linear(data, np.full_like(data.x, -1.0 / ratio), data.x / ratio, 1.0 / theta_hat,
                            1.0 / hi, 1e9 / hi)


def _crossing(profile, target: float, start: float, step: float, limit: float, direction: int,
              max_doublings: int = 60) -> float:
    """Where ``profile`` rises to ``target`` moving from ``start`` in ``direction``; ``limit`` if it never does."""
    a = start
    for _ in range(max_doublings):
        b = a + direction * step
        if (direction > 0 and b >= limit) or (direction < 0 and b <= limit):
            b = limit
            if profile(b) < target:
                return limit
        if profile(b) >= target:
            lo, hi = (a, b) if a < b else (b, a)
            return float(optimize.brentq(lambda u: profile(u) - target, lo, hi, xtol=1e-9 * max(1.0, abs(start))))
        a = b
        step *= 2.0
    return limit


def profile_intervals(data: ProbitData, theta: float, sigma: float, nll_min: float, confidence: float):
    """Profile-likelihood intervals for theta, sigma and sigma/theta (the last only when theta > 0)."""
    target = nll_min + 0.5 * float(stats.chi2.ppf(confidence, 1))
    s = max(data.scale, 1e-12)
    step = max(sigma, 1e-3 * s) * 0.5
    th_lo = _crossing(lambda u: _profile_theta(data, u, sigma), target, theta, step, -np.inf, -1)
    th_hi = _crossing(lambda u: _profile_theta(data, u, sigma), target, theta, step, np.inf, +1)

    ls_hat = np.log(sigma)
    ls_floor = np.log(sigma_floor(data))
    prof_ls = lambda u: _profile_sigma(data, np.exp(u), theta)  # noqa: E731
    ls_lo = _crossing(prof_ls, target, ls_hat, 0.25, ls_floor, -1)
    ls_hi = _crossing(prof_ls, target, ls_hat, 0.25, np.log(100 * s), +1)
    sg_lo = 0.0 if ls_lo <= ls_floor else float(np.exp(ls_lo))
    sg_hi = np.inf if ls_hi >= np.log(100 * s) else float(np.exp(ls_hi))

    if theta > 0:
        lr_hat = np.log(sigma / theta)
        lr_floor = np.log(sigma_floor(data) / max(theta, 1e-300))
        prof_lr = lambda u: _profile_ratio(data, np.exp(u), theta)  # noqa: E731
        lr_lo = _crossing(prof_lr, target, lr_hat, 0.25, lr_floor, -1)
        lr_hi = _crossing(prof_lr, target, lr_hat, 0.25, lr_hat + 20.0, +1)
        r_ci = (0.0 if lr_lo <= lr_floor else float(np.exp(lr_lo)),
                np.inf if lr_hi >= lr_hat + 20.0 else float(np.exp(lr_hi)))
    else:
        r_ci = (np.nan, np.nan)
    return (th_lo, th_hi), (sg_lo, sg_hi), r_ci


def bootstrap_intervals(data: ProbitData, theta: float, sigma: float, confidence: float,
                        n_bootstrap: int, rng: np.random.Generator):
    """Parametric-bootstrap percentile intervals; replicates without both outcomes are dropped."""
    p = special.ndtr((data.x - theta) / sigma)
    est = np.full((n_bootstrap, 3), np.nan)
    for b in range(n_bootstrap):
        k = rng.binomial(data.n.astype(np.int64), p).astype(float)
        if k.sum() == 0 or k.sum() == data.n.sum():
            continue
        th, sg, _ = mle(ProbitData(data.x, data.n, k), start=(theta, sigma))
        est[b] = th, sg, sg / th if th > 0 else np.nan
    alpha = 1.0 - confidence
    n_used = int(np.isfinite(est[:, 0]).sum())
    if n_used == 0:
        nan2 = (np.nan, np.nan)
        return nan2, nan2, nan2, 0
    q = np.nanquantile(est, [alpha / 2, 1 - alpha / 2], axis=0)
    return (q[0, 0], q[1, 0]), (q[0, 1], q[1, 1]), (q[0, 2], q[1, 2]), n_used
