"""Spike detection and action-potential shape features from sampled voltage traces.

Both functions work trial by trial on a ``trace`` table (``trial``, ``t_ms``, ``V_mV``, sorted by trial then
time). Times are interpolated linearly between samples; slopes are central differences
(:func:`numpy.gradient`), whose error is of order ``dt**2 * |V'''|``, so sample finely enough (0.01 ms is
typical) for the upstroke.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import _validate as v

__all__ = ["detect_spikes", "spike_features"]

_SPIKE_COLUMNS = ["trial", "t_ms", "peak_mV", "peak_t_ms"]

_FEATURE_COLUMNS = [
    "peak_t_ms",
    "peak_mV",
    "threshold_mV",
    "threshold_t_ms",
    "amplitude_mV",
    "overshoot_mV",
    "half_width_ms",
    "max_rise_mV_ms",
    "max_rise_t_ms",
    "max_fall_mV_ms",
    "baseline_mV",
    "ahp_trough_mV",
    "ahp_t_ms",
    "ahp_depth_mV",
    "ahp_duration_ms",
]


def _crossing_indices(V: np.ndarray, level_mV: float, rearm_mV: float) -> np.ndarray:
    """Indices ``i`` with ``V[i-1] < level <= V[i]`` accepted under the re-arm rule."""
    up = np.flatnonzero((V[:-1] < level_mV) & (V[1:] >= level_mV)) + 1
    rearm = np.flatnonzero(V <= rearm_mV)
    accepted = []
    armed_after = -1  # first index from which a crossing is accepted
    for i in up:
        if i < armed_after:
            continue
        accepted.append(i)
        j = np.searchsorted(rearm, i)
        armed_after = rearm[j] + 1 if j < len(rearm) else len(V) + 1
    return np.asarray(accepted, dtype=np.int64)


def _interp_time(t: np.ndarray, y: np.ndarray, a: int, level: float) -> tuple[float, float]:
    """Time and linear-interpolation fraction at which ``y`` crosses ``level`` between samples a and a+1."""
    dy = y[a + 1] - y[a]
    frac = 0.0 if dy == 0 else (level - y[a]) / dy
    return t[a] + frac * (t[a + 1] - t[a]), frac


def detect_spikes(trace: pd.DataFrame, *, level_mV: float = 0.0, rearm_mV: float = -20.0) -> pd.DataFrame:
    """Detect spikes as upward crossings of a voltage level, with hysteresis.

    A spike is an upward crossing of ``level_mV`` (``V[i-1] < level_mV <= V[i]``). After a spike, detection is
    disarmed until ``V`` falls to ``rearm_mV`` or below, so noise on the peak or the repolarisation does not
    count twice. Detection starts armed (a trial that begins above ``level_mV`` has no spike until it crosses
    again from below). The crossing time is interpolated linearly between the two samples.

    Parameters
    ----------
    trace : pandas.DataFrame
        Columns ``trial`` (optional: absent means one trial, numbered 0), ``t_ms`` (ms) and ``V_mV`` (mV);
        rows sorted by trial then ``t_ms``.
    level_mV : float
        Detection level (mV). Default 0 mV, so every detected spike overshoots.
    rearm_mV : float
        Re-arm level (mV), must be below ``level_mV``. Default -20 mV.

    Returns
    -------
    pandas.DataFrame
        One row per spike: ``trial``, ``t_ms`` (interpolated crossing time, ms), ``peak_mV`` (largest sample
        between the crossing and re-arm, mV), ``peak_t_ms`` (its time, ms); sorted by trial and time. Trials
        without spikes have no rows.

    Raises
    ------
    ValueError
        If columns are missing or non-finite, time is not increasing within a trial, or
        ``rearm_mV >= level_mV``.
    """
    trace = v.validate_trace(trace, ["V_mV"])
    level_mV = float(level_mV)
    rearm_mV = float(rearm_mV)
    if not rearm_mV < level_mV:
        raise ValueError(f"rearm_mV must be below level_mV={level_mV}, got rearm_mV={rearm_mV}")
    rows: dict[str, list] = {c: [] for c in _SPIKE_COLUMNS}
    for trial, g in trace.groupby("trial", sort=False):
        t = g["t_ms"].to_numpy(dtype=float)
        V = g["V_mV"].to_numpy(dtype=float)
        idx = _crossing_indices(V, level_mV, rearm_mV)
        bounds = np.append(idx[1:], len(V))
        for i, end in zip(idx, bounds):
            tc, _ = _interp_time(t, V, i - 1, level_mV)
            p = i + int(np.argmax(V[i:end]))
            rows["trial"].append(trial)
            rows["t_ms"].append(tc)
            rows["peak_mV"].append(V[p])
            rows["peak_t_ms"].append(t[p])
    out = pd.DataFrame(rows)
    out["trial"] = out["trial"].astype(trace["trial"].dtype)
    for c in _SPIKE_COLUMNS[1:]:
        out[c] = out[c].astype(float)
    return out


def spike_features(
    trace: pd.DataFrame,
    spikes: pd.DataFrame | None = None,
    *,
    level_mV: float = 0.0,
    rearm_mV: float = -20.0,
    method: str = "dvdt",
    dvdt_threshold_mV_ms: float = 10.0,
    curvature_lookback_ms: float = 2.0,
    ahp_reference: str = "baseline",
    baseline_ms: float = 5.0,
    ahp_window_ms: float = 50.0,
) -> pd.DataFrame:
    """Measure threshold, amplitude, width, slopes and after-hyperpolarisation of every spike.

    Spikes are those of :func:`detect_spikes` (or the given ``spikes`` table, anchored at its ``t_ms``
    crossing times). Each spike's search windows are bounded by its neighbours, so spontaneous or repetitive
    spikes do not contaminate each other: the window of spike *k* starts at the peak of spike *k-1* and ends at
    the crossing of spike *k+1* (or the trial ends).

    Definitions (V in mV, t in ms, slopes in mV/ms):

    - **pre-spike trough**: the minimum of V between the previous peak (or trial start) and the crossing. All
      threshold searches start there, i.e. *after* any depolarising ramp or EPSP that decayed before the spike.
    - **max rise** ``max_rise_mV_ms``: maximum dV/dt between the trough and the peak, at ``max_rise_t_ms``.
    - **peak** ``peak_mV`` at ``peak_t_ms``: the largest sample between the crossing and the next spike.
    - **threshold** ``threshold_mV`` at ``threshold_t_ms``, ``method="dvdt"`` (default): walking back from the
      point of maximum rise, the last time dV/dt was below ``dvdt_threshold_mV_ms`` (default 10 mV/ms),
      interpolated linearly; the threshold voltage is V at that time. Walking *back* from the upstroke, instead of forward from the window start, keeps an
      EPSP whose own slope exceeded the criterion from being taken as the onset, as long as dV/dt dipped below
      the criterion between the EPSP and the spike. Sekerli M, Del Negro CA, Lee RH, Butera RJ (2004)
      Estimating action potential thresholds from neuronal time-series: new metrics and evaluation of
      methodologies. IEEE Trans Biomed Eng 51:1665-1672. doi:10.1109/TBME.2004.827531
    - **threshold**, ``method="curvature"``: the sample of maximum curvature
      ``kappa = V'' / (1 + V'**2)**1.5`` (V in mV, t in ms: the value depends on these units) between
      ``curvature_lookback_ms`` before the dV/dt onset (not before the trough) and the point of maximum rise;
      one of the alternatives compared by Sekerli et al. (2004). Resolution: one sample.
    - **amplitude** ``amplitude_mV`` = peak - threshold; **overshoot** ``overshoot_mV`` = peak - 0 mV.
    - **half-width** ``half_width_ms``: duration at threshold + amplitude/2, between linearly interpolated
      up- and down-crossings (Bean BP (2007) The action potential in mammalian central neurons. Nat Rev
      Neurosci 8:451-465. doi:10.1038/nrn2148).
    - **max fall** ``max_fall_mV_ms``: the minimum (most negative, signed) dV/dt between the peak and the end of
      the spike's window.
    - **baseline** ``baseline_mV``: mean V over ``baseline_ms`` before the threshold time (not before the
      previous peak).
    - **AHP**: ``ahp_trough_mV`` is the minimum V within ``ahp_window_ms`` after the peak (and before the next
      spike), at ``ahp_t_ms``. ``ahp_depth_mV`` = reference - trough, positive when the trough lies below the
      reference, where the reference is ``baseline_mV`` (``ahp_reference="baseline"``, default) or
      ``threshold_mV`` (``"threshold"``). ``ahp_duration_ms`` is the width of the AHP at half its depth: from
      the down-crossing of ``reference - depth/2`` before the trough to its up-crossing after it (NaN when V
      has not recovered that far before the next spike or the trial end, or the depth is not positive).

    A feature that cannot be measured (e.g. dV/dt never reaches the criterion) is NaN.

    Parameters
    ----------
    trace : pandas.DataFrame
        ``trial`` (optional), ``t_ms``, ``V_mV``; sorted by trial then time.
    spikes : pandas.DataFrame, optional
        ``trial`` and ``t_ms`` (upward level-crossing times, ms). Other columns are kept; feature columns of
        the same name are replaced. Default: :func:`detect_spikes` with ``level_mV`` and ``rearm_mV``.
    level_mV, rearm_mV : float
        Passed to :func:`detect_spikes` when ``spikes`` is None.
    method : {"dvdt", "curvature"}
        Threshold criterion (see above).
    dvdt_threshold_mV_ms : float
        dV/dt criterion (mV/ms), default 10 mV/ms.
    curvature_lookback_ms : float
        How far before the dV/dt onset the curvature search may start (ms), default 2 ms.
    ahp_reference : {"baseline", "threshold"}
        Reference voltage for the AHP depth and duration.
    baseline_ms : float
        Length of the pre-threshold baseline window (ms), default 5 ms.
    ahp_window_ms : float
        Window after the peak in which the AHP trough is sought (ms), default 50 ms.

    Returns
    -------
    pandas.DataFrame
        One row per spike: ``trial``, ``t_ms`` and the feature columns named above.
    """
    trace = v.validate_trace(trace, ["V_mV"])
    v.require_choice(method, ("dvdt", "curvature"), name="method")
    v.require_choice(ahp_reference, ("baseline", "threshold"), name="ahp_reference")
    crit = v.require_positive(dvdt_threshold_mV_ms, name="dvdt_threshold_mV_ms")
    lookback = v.require_positive(curvature_lookback_ms, name="curvature_lookback_ms")
    baseline_ms = v.require_positive(baseline_ms, name="baseline_ms")
    ahp_window_ms = v.require_positive(ahp_window_ms, name="ahp_window_ms")
    if spikes is None:
        spikes = detect_spikes(trace, level_mV=level_mV, rearm_mV=rearm_mV)
        base = spikes[["trial", "t_ms"]]
    else:
        spikes = v.with_trial(v.require_frame(spikes, name="spikes"))
        v.require_columns(spikes, ["trial", "t_ms"], name="spikes")
        v.require_finite(spikes, ["t_ms"], name="spikes")
        base = spikes.drop(columns=[c for c in _FEATURE_COLUMNS if c in spikes.columns])
        base = base.sort_values(["trial", "t_ms"], kind="stable").reset_index(drop=True)
        unknown = set(pd.unique(base["trial"])) - set(pd.unique(trace["trial"]))
        if unknown:
            raise ValueError(f"spikes has trial(s) {sorted(unknown)[:5]} that are not in trace")
    features = {c: np.full(len(base), np.nan) for c in _FEATURE_COLUMNS}
    traces = {trial: g for trial, g in trace.groupby("trial", sort=False)}
    positions = np.arange(len(base))
    for trial, rows in base.groupby("trial", sort=False).indices.items():
        g = traces[trial]
        t = g["t_ms"].to_numpy(dtype=float)
        V = g["V_mV"].to_numpy(dtype=float)
        t_cross = base["t_ms"].to_numpy(dtype=float)[rows]
        out = _trial_features(
            t, V, t_cross, method, crit, lookback, ahp_reference, baseline_ms, ahp_window_ms
        )
        for c in _FEATURE_COLUMNS:
            features[c][positions[rows]] = out[c]
    result = base.copy()
    for c in _FEATURE_COLUMNS:
        result[c] = features[c]
    result.attrs["threshold_method"] = method
    result.attrs["dvdt_threshold_mV_ms"] = crit
    result.attrs["ahp_reference"] = ahp_reference
    return result


def _trial_features(
    t: np.ndarray,
    V: np.ndarray,
    t_cross: np.ndarray,
    method: str,
    crit: float,
    lookback_ms: float,
    ahp_reference: str,
    baseline_ms: float,
    ahp_window_ms: float,
) -> dict[str, np.ndarray]:
    n = len(V)
    k_spikes = len(t_cross)
    out = {c: np.full(k_spikes, np.nan) for c in _FEATURE_COLUMNS}
    if n < 3:
        return out
    dV = np.gradient(V, t)
    d2V = np.gradient(dV, t)
    # anchor: first sample at or after each crossing time
    anchor = np.clip(np.searchsorted(t, t_cross, side="left"), 1, n - 1)
    nxt = np.append(anchor[1:], n)
    peaks = np.array([a + int(np.argmax(V[a:max(b, a + 1)])) for a, b in zip(anchor, nxt)])
    for k in range(k_spikes):
        a, p = anchor[k], peaks[k]
        left = peaks[k - 1] if k > 0 else 0
        right = nxt[k] if k + 1 < k_spikes else n  # exclusive end of this spike's window
        trough = left + int(np.argmin(V[left : a + 1]))
        r = trough + int(np.argmax(dV[trough : p + 1]))
        out["peak_t_ms"][k] = t[p]
        out["peak_mV"][k] = V[p]
        out["overshoot_mV"][k] = V[p] - 0.0
        out["max_rise_mV_ms"][k] = dV[r]
        out["max_rise_t_ms"][k] = t[r]

        # dV/dt criterion: walk back from the maximum rise to the last sample below the criterion
        th_t = th_V = np.nan
        onset_idx = None
        if dV[r] >= crit:
            below = np.flatnonzero(dV[trough : r + 1] < crit)
            if len(below):
                j = trough + int(below[-1])
                th_t, frac = _interp_time(t, dV, j, crit)
                th_V = V[j] + frac * (V[j + 1] - V[j])
                onset_idx = j
        if method == "curvature":
            if onset_idx is None:
                th_t = th_V = np.nan
            else:
                w0 = max(trough, int(np.searchsorted(t, t[onset_idx] - lookback_ms)))
                kappa = d2V[w0 : r + 1] / (1.0 + dV[w0 : r + 1] ** 2) ** 1.5
                c = w0 + int(np.argmax(kappa))
                th_t, th_V = t[c], V[c]
        out["threshold_mV"][k] = th_V
        out["threshold_t_ms"][k] = th_t
        amp = V[p] - th_V
        out["amplitude_mV"][k] = amp

        # half-width at threshold + amplitude/2
        if np.isfinite(amp) and amp > 0:
            half = th_V + amp / 2.0
            up = np.flatnonzero(V[trough : p + 1] < half)
            down = np.flatnonzero(V[p:right] < half)
            if len(up) and len(down):
                j = trough + int(up[-1])
                t_up, _ = _interp_time(t, V, j, half)
                j = p + int(down[0]) - 1
                t_down, _ = _interp_time(t, V, j, half)
                out["half_width_ms"][k] = t_down - t_up

        out["max_fall_mV_ms"][k] = float(np.min(dV[p:right])) if right > p else np.nan

        # baseline before threshold (or before the trough when no threshold was found)
        t_ref = th_t if np.isfinite(th_t) else t[trough]
        b0 = max(left, int(np.searchsorted(t, t_ref - baseline_ms, side="left")))
        b1 = max(b0 + 1, int(np.searchsorted(t, t_ref, side="right")))
        baseline = float(np.mean(V[b0:b1]))
        out["baseline_mV"][k] = baseline

        # after-hyperpolarisation
        e = min(right, int(np.searchsorted(t, t[p] + ahp_window_ms, side="right")))
        if e > p + 1:
            m = p + int(np.argmin(V[p:e]))
            trough_V = V[m]
            out["ahp_trough_mV"][k] = trough_V
            out["ahp_t_ms"][k] = t[m]
            ref = baseline if ahp_reference == "baseline" else th_V
            depth = ref - trough_V
            out["ahp_depth_mV"][k] = depth
            if np.isfinite(depth) and depth > 0:
                level = ref - depth / 2.0
                fall = np.flatnonzero(V[p : m + 1] > level)
                rise = np.flatnonzero(V[m:right] > level)
                if len(fall) and len(rise):
                    j = p + int(fall[-1])
                    t_fall, _ = _interp_time(t, V, j, level)
                    j = m + int(rise[0]) - 1
                    t_rise, _ = _interp_time(t, V, j, level)
                    out["ahp_duration_ms"][k] = t_rise - t_fall
    return out
