"""All-or-none test: are responses either failures or full spikes, with spike size independent of stimulus?"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

from . import _validate as v
from ._stats import wilson_interval
from .threshold import unit_of

__all__ = ["AllOrNone", "assess_all_or_none", "bimodality_coefficient", "ashman_d", "split_two_groups"]


def bimodality_coefficient(values: np.ndarray) -> float:
    """Sample bimodality coefficient ``BC = (g**2 + 1) / (k + 3 (n-1)**2 / ((n-2)(n-3)))``.

    ``g`` is the bias-corrected sample skewness and ``k`` the bias-corrected excess kurtosis. BC exceeds
    5/9 (its value for a uniform distribution) for bimodal or strongly skewed samples; a normal sample gives
    about 1/3 (Pfister R, Schwarz KA, Janczyk M, Dale R, Freeman JB (2013) Good things peak in pairs: a note on
    the bimodality coefficient. Front Psychol 4:700. doi:10.3389/fpsyg.2013.00700).

    Parameters
    ----------
    values : array_like
        At least 4 finite values.

    Returns
    -------
    float
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) < 4:
        raise ValueError(f"values must be a 1-D array of at least 4 numbers, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite (no NaN or inf)")
    n = len(x)
    if np.ptp(x) == 0:
        return float("nan")
    g = stats.skew(x, bias=False)
    k = stats.kurtosis(x, fisher=True, bias=False)
    return float((g**2 + 1.0) / (k + 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def ashman_d(a: np.ndarray, b: np.ndarray) -> float:
    """Ashman's D = sqrt(2) |mean_a - mean_b| / sqrt(sd_a**2 + sd_b**2) for two groups.

    D > 2 is needed for a clean separation of two Gaussian components (Ashman KM, Bird CM, Zepf SE (1994)
    Detecting bimodality in astronomical datasets. Astron J 108:2348-2361. doi:10.1086/117248).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    s = np.sqrt(a.var(ddof=1) + b.var(ddof=1))
    diff = abs(a.mean() - b.mean())
    return float(np.inf if s == 0 and diff > 0 else np.sqrt(2.0) * diff / s)


def split_two_groups(values: np.ndarray) -> float:
    """Split value that maximises the between-group variance of two groups (Otsu's criterion, exact in 1-D).

    Returns the midpoint between the largest value of the lower group and the smallest of the upper group
    (Otsu N (1979) A threshold selection method from gray-level histograms. IEEE Trans Syst Man Cybern
    9:62-66. doi:10.1109/TSMC.1979.4310076).
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n < 2 or x[0] == x[-1]:
        raise ValueError("values must contain at least two distinct numbers to split")
    c = np.cumsum(x)
    i = np.arange(1, n)  # lower group = x[:i]
    m1 = c[:-1] / i
    m2 = (c[-1] - c[:-1]) / (n - i)
    between = i * (n - i) * (m1 - m2) ** 2
    between[x[1:] == x[:-1]] = -1.0  # do not split between equal values
    j = int(np.argmax(between))
    return float(0.5 * (x[j] + x[j + 1]))


def _fit_two_gaussians(y: np.ndarray, split: float, n_iter: int = 500) -> tuple[float, float, float, float, float]:
    """Two-component Gaussian mixture by EM, started from the split: (weight_low, m_low, s_low, m_high, s_high).

    Dempster AP, Laird NM, Rubin DB (1977) J R Stat Soc B 39:1-38. doi:10.1111/j.2517-6161.1977.tb01600.x
    """
    low = y < split
    w = float(low.mean())
    m = np.array([y[low].mean(), y[~low].mean()])
    floor = 1e-3 * float(np.std(y)) + 1e-12
    s = np.array([max(y[low].std(), floor), max(y[~low].std(), floor)])
    for _ in range(n_iter):
        logp = np.stack([np.log(w) + stats.norm.logpdf(y, m[0], s[0]),
                         np.log1p(-w) + stats.norm.logpdf(y, m[1], s[1])])
        r = np.exp(logp - special.logsumexp(logp, axis=0))
        nk = r.sum(axis=1)
        if np.any(nk < 1e-9):
            break
        m_new = (r @ y) / nk
        s_new = np.sqrt(np.maximum((r * (y[None, :] - m_new[:, None]) ** 2).sum(axis=1) / nk, floor**2))
        w_new = float(nk[0] / len(y))
        done = np.allclose(m_new, m, rtol=0, atol=1e-10 * (1 + abs(m).max())) and abs(w_new - w) < 1e-12
        m, s, w = m_new, s_new, min(max(w_new, 1e-12), 1 - 1e-12)
        if done:
            break
    return w, float(m[0]), float(s[0]), float(m[1]), float(s[1])


@dataclass(frozen=True)
class AllOrNone:
    """Result of :func:`assess_all_or_none`.

    Attributes
    ----------
    bimodality_coefficient : float
        BC of all peak voltages (> 5/9 suggests bimodality).
    ashman_d : float
        Separation of the two components of a Gaussian mixture fitted to all peaks (> 2: clean). The mixture,
        not the hard split, is used because splitting even a unimodal normal sample in two gives D of about 2.6.
    split_mV : float
        Peak voltage separating failures from spikes (mV).
    n_failures, n_intermediate, n_spikes : int
    fraction_intermediate : float
        Fraction of trials with an intermediate response; ``fraction_intermediate_ci`` its Wilson interval.
    slope : float
        Slope of spike peak voltage against stimulus, in mV per unit of ``by`` (``slope_unit``); close to 0 for
        an all-or-none response. ``slope_ci`` is its t interval, ``slope_se`` its SE, from
        :func:`scipy.stats.linregress` on the spike class (intermediates excluded).
    spike_peak_mean_mV, spike_peak_sd_mV : float
        Mean and SD of spike peaks (mV).
    responses : pandas.DataFrame
        The input rows with a categorical ``response`` column: ``"failure"``, ``"intermediate"``, ``"spike"``.
    """

    bimodality_coefficient: float
    ashman_d: float
    split_mV: float
    n_failures: int
    n_intermediate: int
    n_spikes: int
    fraction_intermediate: float
    fraction_intermediate_ci: tuple[float, float]
    slope: float
    slope_se: float
    slope_ci: tuple[float, float]
    slope_unit: str
    spike_peak_mean_mV: float
    spike_peak_sd_mV: float
    confidence: float
    responses: pd.DataFrame


def _mixture_d(y: np.ndarray, split: float) -> float:
    _, m1, s1, m2, s2 = _fit_two_gaussians(y, split)
    return float(np.sqrt(2.0) * abs(m1 - m2) / np.sqrt(s1**2 + s2**2))


def _robust_centre_spread(x: np.ndarray) -> tuple[float, float]:
    med = float(np.median(x))
    mad = float(stats.median_abs_deviation(x, scale="normal")) if len(x) > 1 else 0.0
    if mad == 0.0 and len(x) > 1:
        mad = float(np.std(x, ddof=1))
    return med, mad


def assess_all_or_none(
    summary: pd.DataFrame,
    *,
    by: str = "amplitude_uA_cm2",
    peak: str = "peak_mV",
    split_mV: float | None = None,
    intermediate_sd: float = 4.0,
    confidence: float = 0.95,
) -> AllOrNone:
    """Quantify how all-or-none the peak response is across a stimulus sweep.

    Procedure:

    1. **Split** the peak voltages into a low (failure) and a high (spike) group at ``split_mV``, by default the
       Otsu split (the threshold maximising the between-group variance, exact in one dimension).
    2. **Bimodality**: the bimodality coefficient of all peaks (Pfister et al. 2013,
       doi:10.3389/fpsyg.2013.00700; > 5/9 suggests two modes) and Ashman's D (Ashman et al. 1994,
       doi:10.1086/117248; > 2 means cleanly separated) between the components of a two-Gaussian mixture fitted
       by EM from the split.
    3. **Intermediate responses**: a peak is intermediate when it lies between the two group medians and more
       than ``intermediate_sd`` robust SDs (1.4826 x median absolute deviation) away from both. Reported as a
       fraction with a Wilson interval.
    4. **Graded size**: the slope of spike peak voltage against the stimulus (least squares,
       :func:`scipy.stats.linregress`, t-based interval), spikes only. About 0 for all-or-none spikes.

    Parameters
    ----------
    summary : pandas.DataFrame
        One row per trial with the stimulus column ``by`` and ``peak`` (the largest V of the trial, whether or
        not it fired, in mV).
    by : str
        Stimulus column, default ``"amplitude_uA_cm2"``.
    peak : str
        Peak-voltage column, default ``"peak_mV"``.
    split_mV : float, optional
        Fixed failure/spike boundary (mV) instead of the Otsu split.
    intermediate_sd : float
        Distance (robust SDs) from both group centres beyond which a response is intermediate, default 4.
    confidence : float
        Level of the reported intervals, default 0.95.

    Returns
    -------
    AllOrNone
    """
    summary = v.require_frame(summary, name="summary")
    v.require_columns(summary, [by, peak], name="summary")
    v.require_finite(summary, [by, peak], name="summary")
    confidence = v.require_probability(confidence, name="confidence")
    k_sd = v.require_positive(intermediate_sd, name="intermediate_sd")
    x = summary[by].to_numpy(dtype=float)
    y = summary[peak].to_numpy(dtype=float)
    if len(y) < 4:
        raise ValueError(f"summary needs at least 4 trials, got {len(y)}")
    split = split_two_groups(y) if split_mV is None else float(split_mV)
    low, high = y < split, y >= split
    if low.sum() < 2 or high.sum() < 2:
        raise ValueError(
            f"the split at {split} mV leaves {int(low.sum())} failure(s) and {int(high.sum())} spike(s) in "
            f"column {peak!r}; each group needs at least 2 trials"
        )
    c_lo, s_lo = _robust_centre_spread(y[low])
    c_hi, s_hi = _robust_centre_spread(y[high])
    inter = (y > c_lo + k_sd * s_lo) & (y < c_hi - k_sd * s_hi)
    label = np.where(inter, "intermediate", np.where(low, "failure", "spike"))
    spike = (label == "spike")
    failure = (label == "failure")
    n = len(y)
    n_int = int(inter.sum())
    f_lo, f_hi = wilson_interval(np.array([n_int]), np.array([n]), confidence)
    if spike.sum() >= 3 and np.ptp(x[spike]) > 0:
        lr = stats.linregress(x[spike], y[spike])
        tq = float(stats.t.ppf(0.5 + confidence / 2, spike.sum() - 2))
        slope, se = float(lr.slope), float(lr.stderr)
        slope_ci = (slope - tq * se, slope + tq * se)
    else:
        slope, se, slope_ci = np.nan, np.nan, (np.nan, np.nan)
    responses = summary.copy()
    responses["response"] = pd.Categorical(label, categories=["failure", "intermediate", "spike"], ordered=True)
    return AllOrNone(
        bimodality_coefficient=bimodality_coefficient(y),
        ashman_d=_mixture_d(y, split),
        split_mV=split,
        n_failures=int(failure.sum()),
        n_intermediate=n_int,
        n_spikes=int(spike.sum()),
        fraction_intermediate=n_int / n,
        fraction_intermediate_ci=(float(f_lo[0]), float(f_hi[0])),
        slope=slope,
        slope_se=se,
        slope_ci=(float(slope_ci[0]), float(slope_ci[1])),
        slope_unit=f"mV_per_{unit_of(by)}",
        spike_peak_mean_mV=float(y[spike].mean()) if spike.any() else np.nan,
        spike_peak_sd_mV=float(y[spike].std(ddof=1)) if spike.sum() > 1 else np.nan,
        confidence=confidence,
        responses=responses,
    )
