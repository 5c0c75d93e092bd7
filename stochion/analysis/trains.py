"""Spike-train statistics: rates, inter-spike intervals, count variability, latency.

All functions take a ``spikes`` table (``trial``, ``t_ms``; one row per spike) and, where trials without spikes
matter, a ``trials`` argument: an int (trials ``0 .. n-1``), a sequence of trial ids, or a DataFrame with a
``trial`` column (the trace or the sweep summary). ISIs are only formed within a trial, never across trials.
General reference: Perkel DH, Gerstein GL, Moore GP (1967) Neuronal spike trains and stochastic point
processes. I. The single spike train. Biophys J 7:391-418. doi:10.1016/S0006-3495(67)86596-2
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from . import _validate as v
from ._stats import poisson_interval

__all__ = [
    "firing_rate",
    "spontaneous_rate",
    "inter_spike_intervals",
    "isi_statistics",
    "isi_serial_correlation",
    "fano_factor",
    "first_spike_latency",
]


def _spikes(spikes: pd.DataFrame) -> pd.DataFrame:
    """Validate a spike table; an empty table is allowed (no spikes at all)."""
    if not isinstance(spikes, pd.DataFrame):
        raise ValueError(f"spikes must be a pandas DataFrame, got {type(spikes).__name__}")
    spikes = v.with_trial(spikes)
    v.require_columns(spikes, ["trial", "t_ms"], name="spikes")
    if len(spikes):
        v.require_finite(spikes, ["t_ms"], name="spikes")
        v.require_sorted_time(spikes, name="spikes", strict=False)
    return spikes


def _window(t_start_ms: float, t_stop_ms: float) -> tuple[float, float]:
    a, b = float(t_start_ms), float(t_stop_ms)
    if not (np.isfinite(a) and np.isfinite(b)) or b <= a:
        raise ValueError(f"t_stop_ms must be finite and greater than t_start_ms, got t_start_ms={a}, t_stop_ms={b}")
    return a, b


def _select(spikes: pd.DataFrame, a: float | None, b: float | None) -> pd.DataFrame:
    keep = np.ones(len(spikes), bool)
    t = spikes["t_ms"].to_numpy(dtype=float)
    if a is not None:
        keep &= t >= a
    if b is not None:
        keep &= t < b
    return spikes[keep]


def firing_rate(
    spikes: pd.DataFrame, *, trials: object, t_start_ms: float, t_stop_ms: float, confidence: float = 0.95
) -> pd.DataFrame:
    """Spike count and rate per trial in the window ``[t_start_ms, t_stop_ms)``.

    Parameters
    ----------
    spikes : pandas.DataFrame
        ``trial``, ``t_ms``.
    trials : int, sequence or DataFrame
        The trials to report, including those without spikes.
    t_start_ms, t_stop_ms : float
        Counting window (ms).
    confidence : float
        Level of the exact Poisson interval on each trial's rate (Garwood 1936, doi:10.1093/biomet/28.3-4.437).

    Returns
    -------
    pandas.DataFrame
        One row per trial: ``trial``, ``n_spikes``, ``rate_Hz``, ``rate_ci_low_Hz``, ``rate_ci_high_Hz``.
    """
    spikes = _spikes(spikes)
    ids = v.trial_ids(trials)
    a, b = _window(t_start_ms, t_stop_ms)
    confidence = v.require_probability(confidence, name="confidence")
    counts = _select(spikes, a, b).groupby("trial").size()
    n = counts.reindex(ids, fill_value=0).to_numpy()
    T_s = (b - a) / 1000.0
    lo, hi = poisson_interval(n, confidence)
    return pd.DataFrame(
        {"trial": ids, "n_spikes": n, "rate_Hz": n / T_s, "rate_ci_low_Hz": lo / T_s, "rate_ci_high_Hz": hi / T_s}
    )


def spontaneous_rate(
    spikes: pd.DataFrame, *, trials: object, t_start_ms: float, t_stop_ms: float, confidence: float = 0.95
) -> pd.DataFrame:
    """Pooled spontaneous firing rate over trials, with an exact Poisson confidence interval.

    The count over all trials is treated as Poisson with mean ``rate * total time``; the interval is Garwood's
    exact chi-square interval (Garwood F (1936) Biometrika 28:437-442. doi:10.1093/biomet/28.3-4.437), which
    is valid for zero counts too (rare spontaneous spikes). It assumes spikes are a Poisson process; for a
    more regular or more bursty process compare with the Fano factor.

    Parameters
    ----------
    spikes : pandas.DataFrame
        ``trial``, ``t_ms``.
    trials : int, sequence or DataFrame
        All trials observed, including those without spikes.
    t_start_ms, t_stop_ms : float
        Observation window in each trial (ms).
    confidence : float
        Interval level, default 0.95.

    Returns
    -------
    pandas.DataFrame
        One row: ``n_trials``, ``n_spikes``, ``total_time_s``, ``rate_Hz``, ``rate_ci_low_Hz``,
        ``rate_ci_high_Hz``.
    """
    per = firing_rate(spikes, trials=trials, t_start_ms=t_start_ms, t_stop_ms=t_stop_ms, confidence=confidence)
    k = int(per["n_spikes"].sum())
    T_s = len(per) * (float(t_stop_ms) - float(t_start_ms)) / 1000.0
    lo, hi = poisson_interval(np.array([k]), confidence)
    return pd.DataFrame(
        [{
            "n_trials": len(per), "n_spikes": k, "total_time_s": T_s, "rate_Hz": k / T_s,
            "rate_ci_low_Hz": float(lo[0]) / T_s, "rate_ci_high_Hz": float(hi[0]) / T_s,
        }]
    )


def inter_spike_intervals(
    spikes: pd.DataFrame, *, t_start_ms: float | None = None, t_stop_ms: float | None = None
) -> pd.DataFrame:
    """Inter-spike intervals within each trial (Perkel et al. 1967, doi:10.1016/S0006-3495(67)86596-2).

    Returns
    -------
    pandas.DataFrame
        ``trial``, ``t_ms`` (time of the spike that ends the interval), ``isi_ms``, ``index`` (position of the
        interval within its trial, from 0). Spikes outside ``[t_start_ms, t_stop_ms)`` are dropped first.
    """
    spikes = _select(_spikes(spikes), t_start_ms, t_stop_ms)
    t = spikes["t_ms"].to_numpy(dtype=float)
    tr = spikes["trial"].to_numpy()
    same = tr[1:] == tr[:-1]
    isi = np.diff(t)[same]
    trial = tr[1:][same]
    out = pd.DataFrame({"trial": trial, "t_ms": t[1:][same], "isi_ms": isi})
    out["index"] = out.groupby("trial", sort=False).cumcount()
    return out


def isi_statistics(
    spikes: pd.DataFrame, *, t_start_ms: float | None = None, t_stop_ms: float | None = None
) -> pd.DataFrame:
    """Mean, SD and coefficient of variation of inter-spike intervals, pooled over trials.

    ``cv = sd / mean``. Its standard error ``cv_se`` is the delta-method value
    ``sqrt(cv**2 / n * ((kurt - 1)/4 - cv * skew + cv**2))`` with the sample skewness and (non-excess)
    kurtosis of the ISIs, ``n`` the number of ISIs; for a Poisson process (exponential ISIs, cv = 1) this is
    ``1/sqrt(n)``. It treats ISIs as independent (a renewal process); check with
    :func:`isi_serial_correlation`. Perkel et al. (1967) doi:10.1016/S0006-3495(67)86596-2.

    Returns
    -------
    pandas.DataFrame
        One row: ``n_isi``, ``mean_isi_ms``, ``sd_isi_ms``, ``sem_isi_ms``, ``cv``, ``cv_se``,
        ``median_isi_ms``.
    """
    isi = inter_spike_intervals(spikes, t_start_ms=t_start_ms, t_stop_ms=t_stop_ms)["isi_ms"].to_numpy()
    n = len(isi)
    if n < 2:
        raise ValueError(f"spikes gives {n} inter-spike interval(s) within trials; at least 2 are needed")
    mean = float(isi.mean())
    sd = float(isi.std(ddof=1))
    cv = sd / mean
    if n > 3 and sd > 0:
        skew = float(stats.skew(isi))
        kurt = float(stats.kurtosis(isi, fisher=False))
        var_cv = cv**2 / n * ((kurt - 1.0) / 4.0 - cv * skew + cv**2)
        cv_se = float(np.sqrt(max(var_cv, 0.0)))
    else:
        cv_se = np.nan
    return pd.DataFrame(
        [{
            "n_isi": n, "mean_isi_ms": mean, "sd_isi_ms": sd, "sem_isi_ms": sd / np.sqrt(n), "cv": cv,
            "cv_se": cv_se, "median_isi_ms": float(np.median(isi)),
        }]
    )


def isi_serial_correlation(
    spikes: pd.DataFrame,
    *,
    max_lag: int = 5,
    t_start_ms: float | None = None,
    t_stop_ms: float | None = None,
) -> pd.DataFrame:
    """Serial correlation coefficients of successive ISIs at lags 1..``max_lag``.

    ``rho_k = sum (I_j - m)(I_{j+k} - m) / sum (I_j - m)**2`` with ``m`` the pooled mean; pairs are taken within
    trials only and the numerator is normalised per pair (``n / n_pairs_k``). For a renewal process
    ``rho_k = 0`` and its standard error is about ``1/sqrt(n_pairs_k)`` (reported as ``se``). Perkel et al.
    (1967) doi:10.1016/S0006-3495(67)86596-2.

    Returns
    -------
    pandas.DataFrame
        ``lag``, ``rho``, ``n_pairs``, ``se``.
    """
    max_lag = int(max_lag)
    if max_lag < 1:
        raise ValueError(f"max_lag must be >= 1, got {max_lag}")
    isi = inter_spike_intervals(spikes, t_start_ms=t_start_ms, t_stop_ms=t_stop_ms)
    x = isi["isi_ms"].to_numpy(dtype=float)
    tr = isi["trial"].to_numpy()
    if len(x) < 3:
        raise ValueError(f"spikes gives {len(x)} inter-spike interval(s); at least 3 are needed")
    d = x - x.mean()
    var = float(np.mean(d**2))
    rows = []
    for k in range(1, max_lag + 1):
        same = tr[k:] == tr[:-k] if k < len(x) else np.zeros(0, bool)
        n_pairs = int(same.sum())
        if n_pairs == 0 or var == 0:
            rows.append({"lag": k, "rho": np.nan, "n_pairs": n_pairs, "se": np.nan})
            continue
        cov = float(np.mean((d[:-k] * d[k:])[same]))
        rows.append({"lag": k, "rho": cov / var, "n_pairs": n_pairs, "se": 1.0 / np.sqrt(n_pairs)})
    return pd.DataFrame(rows)


def fano_factor(
    spikes: pd.DataFrame,
    *,
    trials: object,
    window_ms: float | Sequence[float],
    t_start_ms: float,
    t_stop_ms: float,
) -> pd.DataFrame:
    """Fano factor (variance / mean) of spike counts in non-overlapping windows.

    Each trial's ``[t_start_ms, t_stop_ms)`` is cut into ``floor(T / window_ms)`` windows (a remainder at the end
    is dropped); counts from all windows of all trials are pooled. A Poisson process has F = 1 at every window.
    ``fano_se`` is the standard error under the Poisson null, ``sqrt(2 / (n_windows - 1))`` (Eden UT, Kramer MA
    (2010) Drawing inferences from Fano factor calculations. J Neurosci Methods 190:149-152.
    doi:10.1016/j.jneumeth.2010.04.012); it is only a guide for non-Poisson trains.

    Parameters
    ----------
    spikes : pandas.DataFrame
        ``trial``, ``t_ms``.
    trials : int, sequence or DataFrame
        All trials, including those without spikes.
    window_ms : float or sequence of float
        Counting window(s) (ms); one output row per window.
    t_start_ms, t_stop_ms : float
        Analysed part of each trial (ms).

    Returns
    -------
    pandas.DataFrame
        ``window_ms``, ``n_windows``, ``mean_count``, ``var_count``, ``fano``, ``fano_se``.
    """
    spikes = _spikes(spikes)
    ids = v.trial_ids(trials)
    a, b = _window(t_start_ms, t_stop_ms)
    windows = np.atleast_1d(np.asarray(window_ms, dtype=float))
    sel = _select(spikes, a, b)
    rows = []
    for w in windows:
        if not np.isfinite(w) or w <= 0:
            raise ValueError(f"window_ms must be > 0, got {w}")
        n_w = int(np.floor((b - a) / w + 1e-9))
        if n_w < 1:
            raise ValueError(f"window_ms={w} is longer than the analysed time {b - a} ms")
        edges = a + w * np.arange(n_w + 1)
        counts = np.zeros((len(ids), n_w))
        index = {tid: i for i, tid in enumerate(ids)}
        for tid, g in sel.groupby("trial", sort=False):
            if tid in index:
                counts[index[tid]] = np.histogram(g["t_ms"].to_numpy(dtype=float), bins=edges)[0]
        c = counts.ravel()
        n = len(c)
        mean = float(c.mean())
        var = float(c.var(ddof=1)) if n > 1 else np.nan
        rows.append({
            "window_ms": float(w), "n_windows": n, "mean_count": mean, "var_count": var,
            "fano": var / mean if mean > 0 else np.nan,
            "fano_se": float(np.sqrt(2.0 / (n - 1))) if n > 1 else np.nan,
        })
    return pd.DataFrame(rows)


def first_spike_latency(
    spikes: pd.DataFrame,
    *,
    trials: object,
    stimulus_onset_ms: float = 0.0,
    t_stop_ms: float | None = None,
    per_trial: bool = False,
) -> pd.DataFrame:
    """Latency of the first spike after stimulus onset, and its jitter (SD) across trials.

    Jitter as the across-trial SD of spike times, as in Mainen ZF, Sejnowski TJ (1995) Reliability of spike
    timing in neocortical neurons. Science 268:1503-1506. doi:10.1126/science.7770778.

    Parameters
    ----------
    spikes : pandas.DataFrame
        ``trial``, ``t_ms``.
    trials : int, sequence or DataFrame
        All trials stimulated (trials without a spike count in ``n_trials`` but have no latency).
    stimulus_onset_ms : float
        Stimulus onset (ms); spikes before it are ignored.
    t_stop_ms : float, optional
        Ignore spikes at or after this time (ms).
    per_trial : bool
        Return the per-trial latencies instead of the summary.

    Returns
    -------
    pandas.DataFrame
        Summary (default), one row: ``n_trials``, ``n_responding``, ``latency_mean_ms``, ``latency_sd_ms`` (the
        jitter), ``latency_sem_ms``, ``latency_median_ms``, ``latency_iqr_ms``. With ``per_trial=True``: one
        row per trial, ``trial`` and ``latency_ms`` (NaN without a spike).
    """
    spikes = _spikes(spikes)
    ids = v.trial_ids(trials)
    onset = float(stimulus_onset_ms)
    sel = _select(spikes, onset, t_stop_ms)
    sel = sel[sel["trial"].isin(ids)]
    first = sel.groupby("trial", sort=False)["t_ms"].min() - onset
    if per_trial:
        return pd.DataFrame({"trial": ids, "latency_ms": first.reindex(ids).to_numpy(dtype=float)})
    lat = first.to_numpy(dtype=float)
    n = len(lat)
    row = {
        "n_trials": len(ids),
        "n_responding": n,
        "latency_mean_ms": float(lat.mean()) if n else np.nan,
        "latency_sd_ms": float(lat.std(ddof=1)) if n > 1 else np.nan,
        "latency_sem_ms": float(lat.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan,
        "latency_median_ms": float(np.median(lat)) if n else np.nan,
        "latency_iqr_ms": float(stats.iqr(lat)) if n else np.nan,
    }
    return pd.DataFrame([row])
