"""Spike detection and AP features on analytic synthetic traces with known answers.

Expected values are computed from the analytic functions by root finding (scipy.optimize), never from the
code under test. Sampling step DT = 0.01 ms. Tolerances follow from the discretisation: linear interpolation of
a crossing time errs by at most dt**2 |f''| / (8 |f'|), central differences by dt**2 |V'''| / 6, a sampled
maximum by |V''| dt**2 / 8; for the shapes below (amplitude 100 mV, width 0.3 ms) these are below the
tolerances stated at each check.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize

from stochion.analysis import detect_spikes, spike_features

DT = 0.01
V0 = -65.0
A = 100.0  # spike amplitude above V0 (mV)
S = 0.3  # Gaussian spike width (ms)
B_AHP, TA, SA = 10.0, 2.0, 1.5  # AHP depth (mV), delay after peak (ms), width (ms)


class Shape:
    """Sum of Gaussian spikes (each with a Gaussian AHP) and alpha-function EPSPs; V and its derivatives."""

    def __init__(self, peaks, epsps=()):
        self.peaks = list(peaks)
        self.epsps = list(epsps)  # (onset, amplitude, tau)

    def _parts(self, t, order):
        t = np.asarray(t, dtype=float)
        total = np.zeros_like(t) + (V0 if order == 0 else 0.0)
        for tp in self.peaks:
            for amp, c, w in ((A, tp, S), (-B_AHP, tp + TA, SA)):
                u = (t - c) / w
                g = amp * np.exp(-0.5 * u**2)
                total += [g, -u / w * g, (u**2 - 1) / w**2 * g][order]
        for te, amp, tau in self.epsps:
            s = np.clip((t - te) / tau, 0, None)
            e = np.exp(1 - s)
            total += [amp * s * e, amp / tau * (1 - s) * e * (s > 0), amp / tau**2 * (s - 2) * e * (s > 0)][order]
        return total

    def V(self, t):
        return self._parts(t, 0)

    def dV(self, t):
        return self._parts(t, 1)

    def d2V(self, t):
        return self._parts(t, 2)

    def trace(self, t_end, trial=0):
        t = np.arange(0.0, t_end, DT)
        return pd.DataFrame({"trial": trial, "t_ms": t, "V_mV": self.V(t)})


def _last_root(f, a, b, n=20001):
    """Last root of f in [a, b] (found on a fine grid, refined by brentq)."""
    x = np.linspace(a, b, n)
    y = f(x)
    idx = np.flatnonzero(np.sign(y[:-1]) != np.sign(y[1:]))
    i = idx[-1]
    return optimize.brentq(f, x[i], x[i + 1], xtol=1e-12)


def _first_root(f, a, b, n=20001):
    x = np.linspace(a, b, n)
    y = f(x)
    i = np.flatnonzero(np.sign(y[:-1]) != np.sign(y[1:]))[0]
    return optimize.brentq(f, x[i], x[i + 1], xtol=1e-12)


def _argmin(f, a, b, n=20001):
    """Global minimiser of f on [a, b]: fine grid, then bounded Brent around the best grid point."""
    x = np.linspace(a, b, n)
    i = int(np.argmin(f(x)))
    lo, hi = x[max(i - 1, 0)], x[min(i + 1, n - 1)]
    return optimize.minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-11}).x


def expected(shape, tp, window_left, window_right, *, crit=10.0):
    """Analytic feature values of the spike peaking near tp, per the documented definitions."""
    t_peak = _argmin(lambda t: -shape.V(t), tp - 0.5, tp + 0.5)
    t_mr = _argmin(lambda t: -shape.dV(t), tp - 3 * S, tp)
    t_th = _last_root(lambda t: shape.dV(t) - crit, window_left, t_mr)
    v_th = float(shape.V(t_th))
    peak = float(shape.V(t_peak))
    half = v_th + (peak - v_th) / 2
    t_up = _last_root(lambda t: shape.V(t) - half, t_th, t_peak)
    t_down = _first_root(lambda t: shape.V(t) - half, t_peak, t_peak + 3)
    t_ahp = _argmin(shape.V, t_peak + 0.5, window_right)
    t_fall = _argmin(shape.dV, t_peak, t_peak + 3 * S)
    baseline = integrate.quad(shape.V, t_th - 5.0, t_th, limit=200)[0] / 5.0
    return dict(peak_t_ms=t_peak, peak_mV=peak, max_rise_t_ms=t_mr, max_rise_mV_ms=float(shape.dV(t_mr)),
                threshold_t_ms=t_th, threshold_mV=v_th, half_width_ms=t_down - t_up,
                max_fall_mV_ms=float(shape.dV(t_fall)), ahp_t_ms=t_ahp, ahp_trough_mV=float(shape.V(t_ahp)),
                baseline_mV=baseline)


# tolerances (see module docstring): times 2e-3 ms; voltages 0.02 mV; slopes 0.5 mV/ms (0.25 %)
TOL = dict(peak_t_ms=DT / 2 + 1e-9, peak_mV=0.02, max_rise_t_ms=DT / 2 + 1e-9, max_rise_mV_ms=0.5,
           threshold_t_ms=2e-3, threshold_mV=0.02, half_width_ms=2e-3, max_fall_mV_ms=0.5,
           ahp_t_ms=DT / 2 + 1e-9, ahp_trough_mV=0.02, baseline_mV=0.05)


def _check(row, exp):
    for key, val in exp.items():
        assert row[key] == pytest.approx(val, abs=TOL[key]), key


def test_detect_spikes_crossing_times_and_peaks():
    shape = Shape([10.0, 30.0])
    tr = shape.trace(50.0)
    sp = detect_spikes(tr)
    assert list(sp.columns) == ["trial", "t_ms", "peak_mV", "peak_t_ms"]
    assert len(sp) == 2
    for row, tp in zip(sp.itertuples(), shape.peaks):
        t_cross = _last_root(shape.V, tp - 2, tp)  # upward 0 mV crossing
        # interpolation error <= dt^2 |V''| / (8 |V'|) ~ 1e-4 * 1100 / (8 * 200) < 1e-4 ms
        assert row.t_ms == pytest.approx(t_cross, abs=1e-4)
        assert row.peak_mV == pytest.approx(shape.V(tp), abs=0.02)


def test_detect_spikes_rearm_hysteresis_and_trials():
    # piecewise-linear: crosses 0 twice while staying above -20 mV (one spike), then repolarises and fires again
    t = np.arange(0, 10.0, 0.5)
    V = np.array([-60, -60, 10, -5, 5, -10, -30, -60, -60, 20, -60, -60, -60, -60, -60, -60, -60, -60, -60, -60.0])
    tr = pd.DataFrame({"trial": 0, "t_ms": t, "V_mV": V})
    sp = detect_spikes(tr)
    assert len(sp) == 2
    assert sp["t_ms"].tolist() == pytest.approx([0.5 + 0.5 * 60 / 70, 4.0 + 0.5 * 60 / 80])
    assert sp["peak_mV"].tolist() == [10.0, 20.0]
    # with re-arm at -2 mV the wiggle counts as a second spike
    assert len(detect_spikes(tr, rearm_mV=-2.0)) == 3
    # second trial without spikes, trace without a trial column
    both = pd.concat([tr, tr.assign(trial=1, V_mV=-60.0)], ignore_index=True)
    sp2 = detect_spikes(both)
    assert sp2["trial"].tolist() == [0, 0]
    assert len(detect_spikes(tr.drop(columns="trial"))) == 2
    empty = detect_spikes(tr.assign(V_mV=-70.0))
    assert len(empty) == 0 and list(empty.columns) == ["trial", "t_ms", "peak_mV", "peak_t_ms"]
    with pytest.raises(ValueError, match="rearm_mV"):
        detect_spikes(tr, level_mV=0.0, rearm_mV=5.0)


def test_features_isolated_spike_match_analytic_values():
    shape = Shape([20.0])
    feats = spike_features(shape.trace(80.0))
    assert len(feats) == 1
    row = feats.iloc[0]
    exp = expected(shape, 20.0, 0.0, 70.0)
    _check(row, exp)
    assert row["amplitude_mV"] == pytest.approx(exp["peak_mV"] - exp["threshold_mV"], abs=0.04)
    assert row["overshoot_mV"] == pytest.approx(exp["peak_mV"], abs=0.02)
    # AHP relative to baseline, and its half-depth duration from the analytic function
    depth = exp["baseline_mV"] - exp["ahp_trough_mV"]
    assert row["ahp_depth_mV"] == pytest.approx(depth, abs=0.07)
    level = exp["baseline_mV"] - depth / 2
    t_fall = _first_root(lambda t: shape.V(t) - level, exp["peak_t_ms"], exp["ahp_t_ms"])
    t_rise = _first_root(lambda t: shape.V(t) - level, exp["ahp_t_ms"], 79.0)
    # the level has an uncertainty of 0.05 mV (baseline) over a slope >= 2 mV/ms at the crossings -> 0.03 ms
    assert row["ahp_duration_ms"] == pytest.approx(t_rise - t_fall, abs=0.03)
    # the threshold reference gives depth = threshold - trough
    f2 = spike_features(shape.trace(80.0), ahp_reference="threshold").iloc[0]
    assert f2["ahp_depth_mV"] == pytest.approx(exp["threshold_mV"] - exp["ahp_trough_mV"], abs=0.04)


def test_threshold_criterion_is_a_parameter():
    shape = Shape([20.0])
    row = spike_features(shape.trace(60.0), dvdt_threshold_mV_ms=20.0).iloc[0]
    exp = expected(shape, 20.0, 0.0, 55.0, crit=20.0)
    assert row["threshold_t_ms"] == pytest.approx(exp["threshold_t_ms"], abs=2e-3)
    assert row["threshold_mV"] > expected(shape, 20.0, 0.0, 55.0)["threshold_mV"]


@pytest.mark.parametrize("tau_epsp", [0.3, 1.0])
def test_threshold_not_fooled_by_preceding_epsp(tau_epsp):
    # EPSP with onset slope 8 e / tau = 72 or 22 mV/ms > 10 mV/ms criterion, starting 3 ms before the spike
    te = 17.0
    shape = Shape([20.0], epsps=[(te, 8.0, tau_epsp)])
    assert shape.dV(te + 1e-6) > 10.0  # a forward search from the window start would stop here
    row = spike_features(shape.trace(60.0)).iloc[0]
    # search for the analytic threshold after the EPSP has peaked (at te + tau)
    exp = expected(shape, 20.0, te + tau_epsp + 0.1, 55.0)
    assert row["threshold_t_ms"] > te + 1.0
    assert row["threshold_t_ms"] == pytest.approx(exp["threshold_t_ms"], abs=2e-3)
    assert row["threshold_mV"] == pytest.approx(exp["threshold_mV"], abs=0.02)
    assert row["half_width_ms"] == pytest.approx(exp["half_width_ms"], abs=2e-3)


def test_spontaneous_spike_train_windows_bounded_by_neighbours():
    peaks = [10.0, 22.0, 31.0, 38.0]
    shape = Shape(peaks)
    feats = spike_features(shape.trace(60.0))
    assert len(feats) == 4
    bounds = [0.0] + peaks[:-1]
    for k, tp in enumerate(peaks):
        right = peaks[k + 1] - 0.8 if k + 1 < len(peaks) else 55.0
        exp = expected(shape, tp, bounds[k] + 1.0, right)
        exp.pop("baseline_mV")  # the 5 ms baseline window would reach into the previous spike's AHP
        _check(feats.iloc[k], exp)
    # each AHP trough lies before the next spike's threshold
    assert np.all(feats["ahp_t_ms"].to_numpy()[:-1] < feats["threshold_t_ms"].to_numpy()[1:])


def test_curvature_threshold_finds_kink():
    # alpha-squared upstroke from a flat baseline: V = V0 + A s^2 exp(2(1-s)), s = (t - tk)/tau > 0.
    # kappa = V''/(1+V'^2)^1.5 is largest at s = 0+ (V'' falls and V' grows from there), i.e. the kink.
    tk, tau = 10.0, 0.5
    t = np.arange(0, 40, DT)
    s = np.clip((t - tk) / tau, 0, None)
    V = V0 + A * s**2 * np.exp(2 * (1 - s))
    tr = pd.DataFrame({"t_ms": t, "V_mV": V})
    row = spike_features(tr, method="curvature").iloc[0]
    # one-sample resolution; np.gradient smears the kink over two samples
    assert row["threshold_t_ms"] == pytest.approx(tk, abs=2 * DT)
    assert row["threshold_mV"] == pytest.approx(V0, abs=0.05)
    # peak at s = 1
    assert row["peak_mV"] == pytest.approx(V0 + A, abs=0.01)
    assert row["peak_t_ms"] == pytest.approx(tk + tau, abs=DT / 2 + 1e-9)


def test_curvature_threshold_on_smooth_spike_matches_analytic_maximum():
    shape = Shape([20.0])
    row = spike_features(shape.trace(60.0), method="curvature").iloc[0]
    exp = expected(shape, 20.0, 0.0, 55.0)
    kappa = lambda t: -shape.d2V(t) / (1 + shape.dV(t) ** 2) ** 1.5  # noqa: E731
    t_k = _argmin(kappa, exp["threshold_t_ms"] - 2.0, exp["max_rise_t_ms"])
    assert row["threshold_t_ms"] == pytest.approx(t_k, abs=DT)


def test_features_with_given_spike_table_keeps_extra_columns():
    shape = Shape([10.0, 30.0])
    tr = shape.trace(50.0)
    sp = detect_spikes(tr).assign(peak_mV=999.0, label=["a", "b"])
    feats = spike_features(tr, sp)
    assert feats["label"].tolist() == ["a", "b"]
    assert feats["peak_mV"].to_numpy() == pytest.approx(shape.V(np.array(shape.peaks)), abs=0.02)
    with pytest.raises(ValueError, match="trial"):
        spike_features(tr, sp.assign(trial=5))


def test_feature_nan_when_criterion_never_reached():
    # a slow bump (max slope ~ 2 mV/ms) crossing 0 mV: no dV/dt >= 10 mV/ms, threshold is NaN
    t = np.arange(0, 100, 0.1)
    V = V0 + 90 * np.exp(-0.5 * ((t - 50) / 20) ** 2)
    row = spike_features(pd.DataFrame({"t_ms": t, "V_mV": V})).iloc[0]
    assert np.isnan(row["threshold_mV"]) and np.isnan(row["amplitude_mV"])
    assert row["peak_mV"] == pytest.approx(25.0, abs=1e-9)
