"""Channel noise: open-count distributions, dwell times, power spectra and their Markov-scheme predictions.

For ``N`` independent channels at a fixed voltage the number of open channels is binomial, each channel's
dwell in a state is exponential, and the current spectrum is a sum of Lorentzians whose time constants are the
inverse eigenvalues of the scheme's generator matrix (Colquhoun D, Hawkes AG (1977) Relaxation and fluctuations
of membrane currents that flow through drug-operated channels. Proc R Soc Lond B 199:231-262.
doi:10.1098/rspb.1977.0085; Neher E, Stevens CF (1977) Conductance fluctuations and ionic pores in membranes.
Annu Rev Biophys Bioeng 6:345-381. doi:10.1146/annurev.bb.06.060177.002021). These functions measure the
simulated quantities and compute the predictions to compare them with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import signal, stats

from . import _validate as v
from ._stats import correlation_time

__all__ = [
    "BinomialComparison",
    "compare_open_counts_to_binomial",
    "dwell_times",
    "fit_dwell_times",
    "psd",
    "lorentzian_psd",
    "lorentzian_count_psd",
    "lorentzian_components",
]


# --------------------------------------------------------------------------------------------------------------
# open-count distribution


@dataclass(frozen=True)
class BinomialComparison:
    """Result of :func:`compare_open_counts_to_binomial`.

    Attributes
    ----------
    table : pandas.DataFrame
        ``n_open``, ``observed`` (samples), ``expected`` (samples under Binomial(n_channels, p_open)).
    statistic : float
        Pearson chi-square or G statistic over bins pooled to an expected count >= ``min_expected``.
    dof : int
        Degrees of freedom: pooled bins - 1, minus 1 more when ``p_open`` was estimated.
    p_value : float
    test : str
        ``"chi2"`` or ``"g"``.
    p_open : float
        Open probability used; ``p_open_estimated`` tells whether it was estimated (mean / n_channels).
    p_open_estimated : bool
    n_channels : int
    n_samples : int
        Samples used after thinning.
    stride : int
        Thinning stride (samples).
    dispersion : float
        Observed variance / binomial variance ``N p (1 - p)``; 1 for independent channels, > 1 when channels
        open together.
    """

    table: pd.DataFrame
    statistic: float
    dof: int
    p_value: float
    test: str
    p_open: float
    p_open_estimated: bool
    n_channels: int
    n_samples: int
    stride: int
    dispersion: float


def _pool_bins(observed: np.ndarray, expected: np.ndarray, min_expected: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge adjacent bins left to right until each has expected >= min_expected (remainder joins the last)."""
    obs, exp = [], []
    o_acc = e_acc = 0.0
    for o, e in zip(observed, expected):
        o_acc += o
        e_acc += e
        if e_acc >= min_expected:
            obs.append(o_acc)
            exp.append(e_acc)
            o_acc = e_acc = 0.0
    if e_acc > 0 or o_acc > 0:
        if obs:
            obs[-1] += o_acc
            exp[-1] += e_acc
        else:
            obs.append(o_acc)
            exp.append(e_acc)
    return np.asarray(obs), np.asarray(exp)


def compare_open_counts_to_binomial(
    trace: pd.DataFrame,
    *,
    channel_type: str,
    n_channels: int,
    p_open: float | None = None,
    test: str = "chi2",
    stride: int | None = None,
    t_start_ms: float | None = None,
    t_stop_ms: float | None = None,
    min_expected: float = 5.0,
) -> BinomialComparison:
    """Compare the distribution of the open-channel count with the binomial distribution.

    For ``N`` independent, identical channels in equilibrium the open count is Binomial(N, p). Use a stretch at
    constant voltage (voltage clamp, or rest) in equilibrium: restrict it with ``t_start_ms``/``t_stop_ms``.

    Successive samples are strongly correlated, which would make any goodness-of-fit p-value far too small.
    The samples are therefore thinned: every ``stride``-th sample of each trial is used, by default
    ``stride = ceil(5 tau_int)`` where ``tau_int`` is the integrated autocorrelation time (samples) of the count
    (Sokal's window, largest over trials). The slowest relaxation of independent channels is that of the count
    itself, so at this spacing the residual correlation is about exp(-5) ~ 0.7 %.

    Bins are pooled left to right to an expected count of at least ``min_expected`` and compared with
    :func:`scipy.stats.power_divergence`: Pearson's chi-square (``test="chi2"``, Pearson K (1900) Phil Mag
    50:157-175. doi:10.1080/14786440009463897) or the G (log-likelihood ratio) test (``test="g"``).

    Parameters
    ----------
    trace : pandas.DataFrame
        ``trial``, ``t_ms`` and ``n_open_<channel_type>``.
    channel_type : str
        E.g. ``"Na"`` for column ``n_open_Na``.
    n_channels : int
        Number of channels of that type.
    p_open : float, optional
        Open probability; estimated as mean / N when None (costing one degree of freedom).
    test : {"chi2", "g"}
    stride : int, optional
        Thinning stride in samples (default automatic, see above).
    t_start_ms, t_stop_ms : float, optional
        Analysed window within each trial (ms).
    min_expected : float
        Minimum expected count per pooled bin, default 5.

    Returns
    -------
    BinomialComparison
    """
    column = f"n_open_{channel_type}"
    trace = v.validate_trace(trace, [column])
    v.require_choice(test, ("chi2", "g"), name="test")
    N = int(n_channels)
    if N < 1 or N != n_channels:
        raise ValueError(f"n_channels must be a positive integer, got {n_channels!r}")
    min_expected = v.require_positive(min_expected, name="min_expected")
    t = trace["t_ms"].to_numpy(dtype=float)
    keep = np.ones(len(trace), bool)
    if t_start_ms is not None:
        keep &= t >= float(t_start_ms)
    if t_stop_ms is not None:
        keep &= t < float(t_stop_ms)
    sub = trace[keep]
    if len(sub) == 0:
        raise ValueError(f"trace has no samples in the window t_start_ms={t_start_ms}, t_stop_ms={t_stop_ms}")
    counts = sub[column].to_numpy(dtype=float)
    if np.any(counts != np.round(counts)) or counts.min() < 0 or counts.max() > N:
        raise ValueError(
            f"trace column {column!r} must hold integers between 0 and n_channels={N}, "
            f"got values from {counts.min()} to {counts.max()}"
        )
    series = [g[column].to_numpy(dtype=float) for _, g in sub.groupby("trial", sort=False)]
    if stride is None:
        tau = max(correlation_time(x) for x in series)
        stride = int(np.ceil(5 * tau))
    else:
        stride = int(stride)
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
    x = np.concatenate([s[::stride] for s in series]).astype(np.int64)
    n = len(x)
    if p_open is None:
        p = float(x.mean() / N)
        estimated = True
    else:
        p = float(p_open)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p_open must lie in [0, 1], got {p_open!r}")
        estimated = False
    k = np.arange(N + 1)
    observed = np.bincount(x, minlength=N + 1).astype(float)
    expected = n * stats.binom.pmf(k, N, p)
    obs_p, exp_p = _pool_bins(observed, expected, min_expected)
    ddof = 1 if estimated else 0
    dof = len(obs_p) - 1 - ddof
    if dof < 1:
        raise ValueError(
            f"only {len(obs_p)} bin(s) remain after pooling to min_expected={min_expected} from {n} samples "
            f"(stride {stride}); use more samples, a shorter stride, or a smaller min_expected"
        )
    lam = "pearson" if test == "chi2" else "log-likelihood"
    res = stats.power_divergence(obs_p, exp_p, ddof=ddof, lambda_=lam)
    var_binom = N * p * (1 - p)
    return BinomialComparison(
        table=pd.DataFrame({"n_open": k, "observed": observed, "expected": expected}),
        statistic=float(res.statistic),
        dof=int(dof),
        p_value=float(res.pvalue),
        test=test,
        p_open=p,
        p_open_estimated=estimated,
        n_channels=N,
        n_samples=n,
        stride=stride,
        dispersion=float(x.var(ddof=1) / var_binom) if var_binom > 0 and n > 1 else np.nan,
    )


# --------------------------------------------------------------------------------------------------------------
# dwell times

_EVENT_COLUMNS = ["trial", "channel_type", "channel_id", "t_ms", "from_state", "to_state"]


def dwell_times(
    channel_events: pd.DataFrame,
    *,
    channel_type: str | None = None,
    state_map: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Dwell times of each channel in each state, from single-channel event records.

    For each channel (``trial``, ``channel_type``, ``channel_id``) the events are ordered in time; the dwell
    that starts at one event (in its ``to_state``) ends at the channel's next event. The first dwell of a
    channel (entered before recording began) and its last (still running when recording ended) are censored
    and dropped, so every reported dwell is complete. With ``state_map`` the states are first mapped to classes
    (e.g. every state to ``"closed"`` except ``{"m3h1": "open"}``); transitions within a class are then not
    boundaries and the dwell is the sojourn in the class (its distribution is in general a sum of exponentials;
    Colquhoun D, Hawkes AG (1981) On the stochastic properties of single ion channels. Proc R Soc Lond B
    211:205-235. doi:10.1098/rspb.1981.0003).

    Parameters
    ----------
    channel_events : pandas.DataFrame
        ``trial``, ``channel_type``, ``channel_id``, ``t_ms``, ``from_state``, ``to_state`` (and optionally
        ``V_mV``). Consecutive events of a channel must chain (``from_state`` = the previous ``to_state``).
    channel_type : str, optional
        Keep only this channel type.
    state_map : mapping of str to str, optional
        Class of every state; must cover every state that occurs.

    Returns
    -------
    pandas.DataFrame
        ``trial``, ``channel_type``, ``channel_id``, ``state`` (categorical), ``t_enter_ms``, ``dwell_ms``, and
        ``V_enter_mV`` when ``V_mV`` is present.
    """
    ev = v.with_trial(v.require_frame(channel_events, name="channel_events"))
    v.require_columns(ev, _EVENT_COLUMNS, name="channel_events")
    v.require_finite(ev, ["t_ms"], name="channel_events")
    v.require_no_missing(ev, ["channel_type", "channel_id", "from_state", "to_state"], name="channel_events")
    if channel_type is not None:
        ev = ev[ev["channel_type"].astype(str) == str(channel_type)]
        if len(ev) == 0:
            raise ValueError(f"channel_events has no events of channel_type={channel_type!r}")
    has_v = "V_mV" in ev.columns
    ev = ev.sort_values(["trial", "channel_type", "channel_id", "t_ms"], kind="stable").reset_index(drop=True)
    src = ev["from_state"].astype(str).to_numpy()
    dst = ev["to_state"].astype(str).to_numpy()
    key = ev[["trial", "channel_type", "channel_id"]]
    same = np.ones(len(ev), bool)
    for c in key.columns:
        a = key[c].to_numpy()
        same[1:] &= a[1:] == a[:-1]
    same[0] = False  # same[j]: event j belongs to the same channel as event j-1
    broken = same[1:] & (src[1:] != dst[:-1])
    if broken.any():
        j = int(np.flatnonzero(broken)[0]) + 1
        r = ev.iloc[j]
        raise ValueError(
            f"channel_events do not chain for channel {r['channel_type']}:{r['channel_id']} in trial {r['trial']}: "
            f"event at t_ms={r['t_ms']} leaves {src[j]!r} but the previous event entered {dst[j - 1]!r}"
        )
    if state_map is not None:
        states = set(src) | set(dst)
        missing = sorted(states - set(state_map))
        if missing:
            raise ValueError(f"state_map has no class for state(s) {missing}; it must cover every state")
        src = np.array([state_map[s] for s in src], dtype=object)
        dst = np.array([state_map[s] for s in dst], dtype=object)
        categories = list(dict.fromkeys(state_map.values()))
    else:
        col = ev["to_state"]
        if isinstance(col.dtype, pd.CategoricalDtype):
            categories = [str(c) for c in col.cat.categories]
        else:
            categories = sorted(set(src) | set(dst))
    # drop events that do not change the class (only possible with a state_map)
    real = src != dst
    ev, dst = ev[real].reset_index(drop=True), dst[real]
    same = np.ones(len(ev), bool)
    for c in ["trial", "channel_type", "channel_id"]:
        a = ev[c].to_numpy()
        same[1:] &= a[1:] == a[:-1]
    same[0] = False
    t = ev["t_ms"].to_numpy(dtype=float)
    start = np.flatnonzero(same[1:])  # event j starts a complete dwell ended by event j+1
    out = pd.DataFrame(
        {
            "trial": ev["trial"].iloc[start].to_numpy(),
            "channel_type": ev["channel_type"].iloc[start].reset_index(drop=True),  # keeps a categorical dtype
            "channel_id": ev["channel_id"].iloc[start].to_numpy(),
            "state": pd.Categorical(dst[start].astype(str), categories=categories, ordered=True),
            "t_enter_ms": t[start],
            "dwell_ms": t[start + 1] - t[start],
        }
    )
    if has_v:
        out["V_enter_mV"] = ev["V_mV"].to_numpy(dtype=float)[start]
    return out


def fit_dwell_times(
    dwells: pd.DataFrame,
    *,
    by: Sequence[str] = ("channel_type", "state"),
    min_dwell_ms: float = 0.0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Exponential maximum-likelihood fit and Kolmogorov-Smirnov test of dwell times, per state.

    At constant voltage a channel leaves a single state after an exponential time with rate equal to the
    sum of the exit rates. The MLE of the mean is ``tau = mean(dwell - min_dwell_ms)`` over dwells longer than
    ``min_dwell_ms`` (exact for a left-truncated exponential, e.g. a dead time). Its exact interval uses
    ``2 n tau_hat / tau ~ chi2(2n)``; ``tau_se_ms = tau / sqrt(n)``. The KS test against the fitted exponential
    (:func:`scipy.stats.kstest`) uses the estimated mean, which makes its p-value conservative (too large; the
    correct null distribution is Lilliefors': Lilliefors HW (1969) On the Kolmogorov-Smirnov test for the
    exponential distribution with mean unknown. J Am Stat Assoc 64:387-389. doi:10.1080/01621459.1969.10500983).
    Pool dwells only over stretches at one voltage, and use a class's dwells (``state_map``) knowing they may
    be sums of exponentials.

    Parameters
    ----------
    dwells : pandas.DataFrame
        Output of :func:`dwell_times` (``dwell_ms`` and the ``by`` columns).
    by : sequence of str
        Grouping columns, default ``("channel_type", "state")``.
    min_dwell_ms : float
        Dwells at or below this are dropped and the rest shifted by it (ms), default 0.
    confidence : float
        Level of the interval on ``tau_ms``.

    Returns
    -------
    pandas.DataFrame
        One row per group: ``by`` columns, ``n``, ``tau_ms``, ``tau_se_ms``, ``tau_ci_low_ms``,
        ``tau_ci_high_ms``, ``rate_per_ms`` (1/tau), ``cv`` (1 for an exponential), ``ks_statistic``, ``ks_p``.
    """
    dwells = v.require_frame(dwells, name="dwells")
    by = [by] if isinstance(by, str) else list(by)
    v.require_columns(dwells, [*by, "dwell_ms"], name="dwells")
    v.require_finite(dwells, ["dwell_ms"], name="dwells")
    m0 = v.require_positive(min_dwell_ms, name="min_dwell_ms", allow_zero=True)
    confidence = v.require_probability(confidence, name="confidence")
    if (dwells["dwell_ms"] < 0).any():
        raise ValueError("dwells column 'dwell_ms' has negative values; dwell times must be >= 0")
    alpha = 1 - confidence
    rows = []
    for key, g in dwells.groupby(by, sort=True, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        x = g["dwell_ms"].to_numpy(dtype=float)
        x = x[x > m0] - m0
        n = len(x)
        row = dict(zip(by, key))
        if n == 0:
            row.update(n=0, tau_ms=np.nan, tau_se_ms=np.nan, tau_ci_low_ms=np.nan, tau_ci_high_ms=np.nan,
                       rate_per_ms=np.nan, cv=np.nan, ks_statistic=np.nan, ks_p=np.nan)
            rows.append(row)
            continue
        tau = float(x.mean())
        ks = stats.kstest(x, "expon", args=(0.0, tau)) if n >= 2 and tau > 0 else None
        row.update(
            n=n,
            tau_ms=tau,
            tau_se_ms=tau / np.sqrt(n),
            tau_ci_low_ms=2 * n * tau / stats.chi2.ppf(1 - alpha / 2, 2 * n),
            tau_ci_high_ms=2 * n * tau / stats.chi2.ppf(alpha / 2, 2 * n),
            rate_per_ms=1.0 / tau if tau > 0 else np.inf,
            cv=float(x.std(ddof=1) / tau) if n > 1 and tau > 0 else np.nan,
            ks_statistic=float(ks.statistic) if ks else np.nan,
            ks_p=float(ks.pvalue) if ks else np.nan,
        )
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------------------
# power spectra

_UNITS = ("pA", "nA", "uA", "mV", "nS", "pS")


def _psd_names(column: str) -> tuple[str, str]:
    for u in _UNITS:
        if column.endswith("_" + u):
            return f"psd_{u}2_Hz", f"psd_se_{u}2_Hz"
    return "psd_per_Hz", "psd_se_per_Hz"


def psd(
    trace: pd.DataFrame,
    column: str,
    *,
    segment_ms: float | None = None,
    nperseg: int | None = None,
    window: str = "hann",
    detrend: str = "constant",
    t_start_ms: float | None = None,
    t_stop_ms: float | None = None,
) -> pd.DataFrame:
    """One-sided power spectral density of a trace column by Welch's method, averaged over trials.

    Each trial is analysed with :func:`scipy.signal.welch` (segments of ``nperseg`` samples overlapping by half,
    the given window, mean removed per segment, density scaling); the per-trial spectra are averaged with
    weights equal to their numbers of segments. Units: (column unit)**2 / Hz, frequency in Hz (the sampling
    rate is ``1000 / dt_ms``). The spectrum of the *sampled* signal includes aliased power from above the
    Nyquist frequency; compare with continuous-time predictions well below it.

    The standard error is ``psd * sqrt(xi / K)`` with ``K`` the total number of segments and
    ``xi = 1 + 2 sum_j c(j)**2`` the overlap correction of Welch (1967), ``c(j)`` the window's normalised
    overlap correlation at a shift of ``j`` steps (doubled at 0 Hz and at Nyquist). It assumes a Gaussian-like
    process and well-separated frequency bins (Welch PD (1967) The use of fast Fourier transform for the
    estimation of power spectra. IEEE Trans Audio Electroacoust 15:70-73. doi:10.1109/TAU.1967.1161901).

    Parameters
    ----------
    trace : pandas.DataFrame
        ``trial``, ``t_ms`` and ``column``; uniformly sampled with one step for all trials.
    column : str
        E.g. ``"I_Na_pA"``, ``"V_mV"``, ``"n_open_K"``.
    segment_ms : float, optional
        Segment length (ms); or give ``nperseg``. Default: the largest power of two not above 1/8 of the
        shortest trial.
    nperseg : int, optional
        Segment length in samples.
    window, detrend : str
        Passed to :func:`scipy.signal.welch`.
    t_start_ms, t_stop_ms : float, optional
        Analysed window within each trial (ms).

    Returns
    -------
    pandas.DataFrame
        ``f_Hz``, ``psd_<unit>2_Hz`` and ``psd_se_<unit>2_Hz`` (``psd_per_Hz`` for dimensionless columns
        such as counts). ``attrs`` holds ``fs_Hz``, ``nperseg``, ``n_segments``, ``n_trials``.
    """
    trace = v.validate_trace(trace, [column], uniform=True)
    dt_ms = v.sampling_step_ms(trace, name="trace")
    fs = 1000.0 / dt_ms
    t = trace["t_ms"].to_numpy(dtype=float)
    keep = np.ones(len(trace), bool)
    if t_start_ms is not None:
        keep &= t >= float(t_start_ms)
    if t_stop_ms is not None:
        keep &= t < float(t_stop_ms)
    series = [g[column].to_numpy(dtype=float) for _, g in trace[keep].groupby("trial", sort=False)]
    if not series:
        raise ValueError(f"trace has no samples in the window t_start_ms={t_start_ms}, t_stop_ms={t_stop_ms}")
    n_min = min(len(s) for s in series)
    if nperseg is not None and segment_ms is not None:
        raise ValueError("give segment_ms or nperseg, not both")
    if segment_ms is not None:
        nperseg = int(round(v.require_positive(segment_ms, name="segment_ms") / dt_ms))
    elif nperseg is None:
        nperseg = max(8, 2 ** int(np.floor(np.log2(max(n_min / 8, 1)))))
        nperseg = min(nperseg, n_min)
    nperseg = int(nperseg)
    if nperseg < 8 or nperseg > n_min:
        raise ValueError(
            f"segment length must be between 8 samples and the shortest trial ({n_min} samples), got {nperseg}"
        )
    step = nperseg - nperseg // 2
    total = None
    k_total = 0
    for x in series:
        f, p = signal.welch(x, fs=fs, window=window, nperseg=nperseg, noverlap=nperseg // 2,
                            detrend=detrend, scaling="density", return_onesided=True)
        k = 1 + (len(x) - nperseg) // step
        total = p * k if total is None else total + p * k
        k_total += k
    mean = total / k_total
    w = signal.get_window(window, nperseg)
    c = [np.dot(w[: nperseg - j * step], w[j * step:]) / np.dot(w, w) for j in range(1, nperseg // step + 1)]
    xi = 1.0 + 2.0 * float(np.sum(np.square(c)))
    rel = np.full(len(f), np.sqrt(xi / k_total))
    rel[0] *= np.sqrt(2.0)
    if nperseg % 2 == 0:
        rel[-1] *= np.sqrt(2.0)
    name, se_name = _psd_names(column)
    out = pd.DataFrame({"f_Hz": f, name: mean, se_name: mean * rel})
    out.attrs.update(fs_Hz=fs, nperseg=nperseg, n_segments=k_total, n_trials=len(series))
    return out


# --------------------------------------------------------------------------------------------------------------
# Markov-scheme predictions


def _generator(Q: np.ndarray, name: str = "Q_per_ms") -> np.ndarray:
    Q = np.asarray(Q, dtype=float)
    if Q.ndim != 2 or Q.shape[0] != Q.shape[1] or Q.shape[0] < 2:
        raise ValueError(f"{name} must be a square matrix with at least 2 states, got shape {Q.shape}")
    if not np.all(np.isfinite(Q)):
        raise ValueError(f"{name} must be finite")
    off = Q - np.diag(np.diag(Q))
    if np.any(off < 0):
        i, j = np.argwhere(off < 0)[0]
        raise ValueError(f"{name} off-diagonal rates must be >= 0; {name}[{i}, {j}] = {Q[i, j]}")
    scale = float(np.abs(Q).max())
    rows = Q.sum(axis=1)
    if np.any(np.abs(rows) > 1e-9 * max(scale, 1e-300)):
        i = int(np.argmax(np.abs(rows)))
        raise ValueError(f"{name} rows must sum to 0 (a generator matrix); row {i} sums to {rows[i]}")
    return Q


def _stationary(Q: np.ndarray) -> np.ndarray:
    k = Q.shape[0]
    A = np.vstack([Q.T, np.ones(k)])
    b = np.zeros(k + 1)
    b[-1] = 1.0
    pi, *_ = np.linalg.lstsq(A, b, rcond=None)
    if np.any(pi < -1e-10) or np.abs(Q.T @ pi).max() > 1e-8 * np.abs(Q).max():
        raise ValueError("Q_per_ms has no unique stationary distribution (is the scheme irreducible?)")
    return np.clip(pi, 0.0, None) / np.clip(pi, 0.0, None).sum()


def _components(Q: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eigenvalues (1/ms) and amplitudes a_j of C(t) = sum_j a_j exp(lambda_j t), zero mode removed."""
    lam, R = np.linalg.eig(Q)
    tol = 1e-10 * max(float(np.abs(Q).max()), np.finfo(float).tiny)
    if np.sum(np.abs(lam) <= tol) != 1:
        raise ValueError(
            "Q_per_ms must have exactly one zero eigenvalue (an irreducible scheme); "
            f"it has {int(np.sum(np.abs(lam) <= tol))}"
        )
    pi = _stationary(Q)
    L = np.linalg.inv(R)
    a = ((pi * weights) @ R) * (L @ weights)
    zero = int(np.argmin(np.abs(lam)))
    keep = np.arange(len(lam)) != zero
    return lam[keep], a[keep], pi


def _spectrum(Q: np.ndarray, weights: np.ndarray, n_channels: float, f_Hz: np.ndarray) -> np.ndarray:
    lam_ms, a, _ = _components(Q, weights)
    lam_s = lam_ms * 1000.0  # 1/s
    w = 2.0 * np.pi * np.asarray(f_Hz, dtype=float)[..., None]
    # one-sided: S(f) = 4 Re sum_j a_j (-lambda_j) / (lambda_j**2 + w**2); = 4 a tau / (1 + (w tau)**2) if real
    terms = a * (-lam_s) / (lam_s**2 + w**2)
    return 4.0 * n_channels * np.real(terms.sum(axis=-1))


def _check_common(n_channels: float, f_Hz: np.ndarray) -> tuple[float, np.ndarray]:
    n = v.require_positive(n_channels, name="n_channels")
    f = np.asarray(f_Hz, dtype=float)
    if not np.all(np.isfinite(f)) or np.any(f < 0):
        raise ValueError("f_Hz must be finite and >= 0")
    return n, f


def lorentzian_psd(
    Q_per_ms: np.ndarray,
    conductance_per_state_pS: np.ndarray,
    n_channels: float,
    driving_force_mV: float,
    f_Hz: np.ndarray,
) -> np.ndarray:
    """Analytic one-sided current power spectrum of N independent channels at a fixed voltage.

    Each channel is a continuous-time Markov chain with generator ``Q`` (``Q[i, j]`` the rate from state i to
    j in 1/ms, rows summing to 0) and carries the current ``i_s = g_s (V - E)`` in state ``s``
    (``pS * mV * 1e-3 = pA``). With the spectral expansion ``Q = sum_j lambda_j A_j`` the current's
    autocovariance is ``C(t) = sum_{j>=2} a_j exp(lambda_j t)``, ``a_j = (pi * i) A_j i`` with the stationary
    distribution ``pi``, and the one-sided spectrum (Wiener-Khinchin, ``S(f) = 4 int_0^inf C(t) cos(2 pi f t) dt``)
    is a sum of Lorentzians

        S(f) = 4 N sum_j a_j tau_j / (1 + (2 pi f tau_j)**2),   tau_j = -1 / lambda_j  (s),

    in pA**2/Hz (Colquhoun D, Hawkes AG (1977) Proc R Soc Lond B 199:231-262. doi:10.1098/rspb.1977.0085).
    For a two-state channel with open current ``i``, open probability ``p`` and ``tau = 1/(alpha + beta)``:
    ``S(f) = 4 N i**2 p (1 - p) tau / (1 + (2 pi f tau)**2)``. Complex eigenvalue pairs of non-reversible
    schemes give the corresponding damped-oscillation terms (the real part of the same formula). Its integral
    over f from 0 to infinity is the current variance ``N Var(i)``.

    Parameters
    ----------
    Q_per_ms : (k, k) array_like
        Generator matrix (1/ms), irreducible.
    conductance_per_state_pS : (k,) array_like
        Conductance of each state (pS), 0 for closed states.
    n_channels : float
        Number of channels N.
    driving_force_mV : float
        ``V - E_rev`` (mV).
    f_Hz : array_like
        Frequencies (Hz).

    Returns
    -------
    numpy.ndarray
        S(f) in pA**2/Hz, shaped like ``f_Hz``.
    """
    Q = _generator(Q_per_ms)
    g = np.asarray(conductance_per_state_pS, dtype=float)
    if g.shape != (Q.shape[0],) or not np.all(np.isfinite(g)):
        raise ValueError(
            f"conductance_per_state_pS must be {Q.shape[0]} finite numbers (one per state), got shape {g.shape}"
        )
    df = float(driving_force_mV)
    if not np.isfinite(df):
        raise ValueError(f"driving_force_mV must be finite, got {driving_force_mV!r}")
    n, f = _check_common(n_channels, f_Hz)
    return _spectrum(Q, g * df * 1e-3, n, f)


def lorentzian_count_psd(
    Q_per_ms: np.ndarray, open_states: np.ndarray, n_channels: float, f_Hz: np.ndarray
) -> np.ndarray:
    """Analytic one-sided power spectrum of the open-channel count of N independent channels (1/Hz).

    The same sum of Lorentzians as :func:`lorentzian_psd` with the current replaced by the indicator of the
    open states (Colquhoun & Hawkes 1977, doi:10.1098/rspb.1977.0085); its integral is ``N p (1 - p)``.

    Parameters
    ----------
    Q_per_ms : (k, k) array_like
        Generator matrix (1/ms).
    open_states : array_like
        Boolean mask of length k, or indices of the open states.
    n_channels : float
        Number of channels N.
    f_Hz : array_like
        Frequencies (Hz).

    Returns
    -------
    numpy.ndarray
        S(f) in counts**2/Hz.
    """
    Q = _generator(Q_per_ms)
    n, f = _check_common(n_channels, f_Hz)
    return _spectrum(Q, _open_indicator(open_states, Q.shape[0]), n, f)


def _open_indicator(open_states: np.ndarray, k: int) -> np.ndarray:
    o = np.asarray(open_states)
    if o.dtype == bool:
        if o.shape != (k,):
            raise ValueError(f"open_states as a mask must have {k} entries, got shape {o.shape}")
        return o.astype(float)
    idx = o.astype(int).ravel()
    if np.any(idx < 0) or np.any(idx >= k) or np.any(idx != o.ravel()):
        raise ValueError(f"open_states indices must be integers in 0..{k - 1}, got {o.tolist()}")
    w = np.zeros(k)
    w[idx] = 1.0
    return w


def lorentzian_components(Q_per_ms: np.ndarray, weights: np.ndarray) -> pd.DataFrame:
    """The Lorentzian components of one channel's fluctuation in ``weights`` (a current or an indicator).

    The spectral expansion of :func:`lorentzian_psd` (Colquhoun D, Hawkes AG (1977) Proc R Soc Lond B
    199:231-262. doi:10.1098/rspb.1977.0085), one row per non-zero eigenvalue of ``Q``.

    Parameters
    ----------
    Q_per_ms : (k, k) array_like
        Generator matrix (1/ms).
    weights : (k,) array_like
        Value of the observed quantity in each state (pA for a current, 1/0 for the open indicator).

    Returns
    -------
    pandas.DataFrame
        One row per non-zero eigenvalue, slowest first: ``tau_ms`` (-1/Re lambda), ``corner_Hz``
        (1/(2 pi tau)), ``oscillation_Hz`` (Im lambda / 2 pi; 0 for reversible schemes), ``amplitude``
        (``a_j``, weights**2; real part) and ``plateau_per_Hz`` (the component's level at 0 Hz for one
        channel, ``4 a_j tau_j`` with tau in s for real eigenvalues; weights**2/Hz). The amplitudes sum to the
        variance of ``weights`` under the stationary distribution.
    """
    Q = _generator(Q_per_ms)
    w = np.asarray(weights, dtype=float)
    if w.shape != (Q.shape[0],):
        raise ValueError(f"weights must have one entry per state ({Q.shape[0]}), got shape {w.shape}")
    lam, a, _ = _components(Q, w)
    tau_ms = -1.0 / lam.real
    out = pd.DataFrame(
        {
            "tau_ms": tau_ms,
            "corner_Hz": 1.0 / (2 * np.pi * tau_ms * 1e-3),
            "oscillation_Hz": np.abs(lam.imag) * 1000.0 / (2 * np.pi),
            "amplitude": a.real,
            "plateau_per_Hz": 4.0 * np.real(-a / (lam * 1000.0)),
        }
    )
    return out.sort_values("tau_ms", ascending=False, kind="stable").reset_index(drop=True)
