"""Small statistical helpers shared by the analysis modules (private)."""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__: list[str] = []  # private module


def z_two_sided(confidence: float) -> float:
    """Standard-normal quantile for a two-sided interval of the given confidence."""
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def wilson_interval(k: np.ndarray, n: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion ``k / n``.

    Wilson EB (1927) Probable inference, the law of succession, and statistical inference.
    J Am Stat Assoc 22:209-212. doi:10.1080/01621459.1927.10502953
    """
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    z = z_two_sided(confidence)
    p = k / n
    denom = 1.0 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def poisson_interval(k: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Exact (Garwood) confidence interval for the mean of a Poisson count ``k``.

    Garwood F (1936) Fiducial limits for the Poisson distribution. Biometrika 28:437-442.
    doi:10.1093/biomet/28.3-4.437
    """
    k = np.asarray(k, dtype=float)
    alpha = 1.0 - confidence
    lo = np.where(k > 0, stats.chi2.ppf(alpha / 2, 2 * k) / 2, 0.0)
    hi = stats.chi2.ppf(1 - alpha / 2, 2 * k + 2) / 2
    return lo, hi


def batch_means(x: np.ndarray) -> tuple[float, float, int]:
    """Mean, its standard error by non-overlapping batch means, and the number of batches.

    The series is cut into ``b = floor(sqrt(n))`` consecutive batches of equal size (a trailing remainder is
    dropped from the SE only); the SE is the SD of the batch means over ``sqrt(b)``. This is consistent for
    autocorrelated stationary series when the batch size grows with ``n``.

    Flegal JM, Jones GL (2010) Batch means and spectral variance estimators in Markov chain Monte Carlo.
    Ann Stat 38:1034-1070. doi:10.1214/09-AOS735
    """
    x = np.asarray(x, dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    b = int(np.floor(np.sqrt(n)))
    if b < 2:
        return mean, float("nan"), b
    m = n // b
    means = x[: b * m].reshape(b, m).mean(axis=1)
    return mean, float(means.std(ddof=1) / np.sqrt(b)), b


def correlation_time(x: np.ndarray) -> float:
    """Integrated autocorrelation time (in samples) of a series, with Sokal's automatic window.

    ``tau_int = 1/2 + sum_{k=1}^{W} rho(k)``, with the smallest window ``W >= 5 tau_int(W)``; a constant series
    returns 0.5. Sokal AD (1997) Monte Carlo methods in statistical mechanics: foundations and new algorithms.
    In: Functional Integration, NATO ASI Ser B 361. doi:10.1007/978-1-4899-0319-8_6
    """
    x = np.asarray(x, dtype=float) - np.mean(x)
    n = len(x)
    var = float(np.dot(x, x))
    if n < 4 or var == 0.0:
        return 0.5
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(x, nfft)
    acov = np.fft.irfft(f * np.conj(f), nfft)[:n]
    rho = acov / acov[0]
    tau = 0.5 + np.cumsum(rho[1:])
    window = np.arange(1, n)
    ok = window >= 5 * tau
    w = int(np.argmax(ok)) if ok.any() else n - 2
    return float(max(tau[w], 0.5))
