"""Refractory periods from a synthetic paired-pulse sweep with a known threshold-recovery curve.

Second-pulse threshold ratio R(d) = 1 / (1 - exp(-(d - D_ABS) / TAU)) for d > D_ABS (infinite before), relative
spread 5 %. Then the interval at which R falls to a level L is D_ABS - TAU * ln(1 - 1/L). Seeds fixed.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import special

from stochion.analysis import refractory_periods, second_spike_probability, threshold_ratio_vs_interval

D_ABS, TAU, THETA1, SPREAD = 2.0, 2.0, 5.0, 0.05
INTERVALS = np.arange(1.0, 16.01, 0.5)
RATIOS = np.geomspace(0.85, 4.0, 30)


def true_ratio(d):
    d = np.asarray(d, dtype=float)
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(d > D_ABS, 1.0 / -np.expm1(-(d - D_ABS) / TAU), np.inf)


def period(level):
    return D_ABS - TAU * np.log(1 - 1 / level)


def paired_pulse_sweep(rng, n_per=20, ratio_column=False):
    d = np.repeat(INTERVALS, len(RATIOS) * n_per)
    r = np.tile(np.repeat(RATIOS, n_per), len(INTERVALS))
    theta = true_ratio(d)
    with np.errstate(invalid="ignore"):
        p = np.where(np.isinf(theta), 0.0, special.ndtr((r - theta) / (SPREAD * theta)))
    fired = rng.random(len(d)) < p
    df = pd.DataFrame({"interval_ms": d, "trial": np.arange(len(d)), "n_spikes": 1 + fired.astype(int)})
    if ratio_column:
        df["amplitude_ratio"] = r
    else:
        df["amplitude_uA_cm2"] = r * THETA1
    return df


@pytest.fixture(scope="module")
def sweep():
    return paired_pulse_sweep(np.random.default_rng(77))


def test_threshold_ratio_curve_within_intervals(sweep):
    table = threshold_ratio_vs_interval(sweep, single_pulse_threshold=THETA1)
    fitted = table[table["status"] == "ok"]
    assert len(fitted) >= 20
    truth = true_ratio(fitted["interval_ms"])
    inside = (fitted["threshold_ratio_ci_low"] < truth) & (truth < fitted["threshold_ratio_ci_high"])
    # 95 % intervals at ~25 intervals: expect ~1 miss; binomial P(more than 4 misses) < 1 %
    assert (~inside).sum() <= 4
    never = table[table["status"] == "never_fired"]
    assert np.all(never["interval_ms"] <= D_ABS + 0.5)  # R(2.5) = 4.5 > 4: at most one miss just past D_ABS
    assert np.all(np.isinf(never["threshold_ratio"])) and np.all(never["threshold_ratio_ci_low"] == 4.0)


def test_refractory_periods_recover_known_values(sweep):
    res = refractory_periods(sweep, single_pulse_threshold=THETA1)
    assert res.absolute_ratio == pytest.approx(4.0)
    t_abs, t_rel = period(4.0), period(1.05)  # 2.575 ms and 8.089 ms
    assert res.absolute_ci_ms[0] <= t_abs <= res.absolute_ci_ms[1]
    # the absolute period is bounded by the spacing of tested intervals where the curve is censored
    assert abs(res.absolute_ms - t_abs) <= 0.5
    assert res.relative_ci_ms[0] <= t_rel <= res.relative_ci_ms[1]
    # a 1 % threshold SE at R ~ 1.05, where dR/dd ~ 0.025 per ms, gives an SE of ~0.4 ms; allow 3 SE
    assert abs(res.relative_ms - t_rel) < 1.2
    assert res.relative_ci_ms[1] - res.relative_ci_ms[0] < 3.0
    assert res.notes == ()
    # the stated multiple is a parameter: at 2x threshold the period is D_ABS + TAU ln 2. The band ignores the
    # error of linear interpolation in 1/R, at most h^2/8 |g''| / g' = 0.016 ms here (h = 0.5 ms); allow 0.05
    res2 = refractory_periods(res.table, absolute_ratio=2.0)
    assert res2.absolute_ci_ms[0] - 0.05 <= period(2.0) <= res2.absolute_ci_ms[1] + 0.05
    assert abs(res2.absolute_ms - period(2.0)) < 0.5


def test_ratio_column_and_fired_second_column():
    rng = np.random.default_rng(5)
    df = paired_pulse_sweep(rng, n_per=10, ratio_column=True)
    df["fired_second"] = df.pop("n_spikes") >= 2
    table = threshold_ratio_vs_interval(df, by="amplitude_ratio")
    assert "threshold_ratio" in table.columns
    res = refractory_periods(table, relative_elevation=0.10)
    assert res.relative_ci_ms[0] <= period(1.10) <= res.relative_ci_ms[1]
    with pytest.raises(ValueError, match="single_pulse_threshold"):
        threshold_ratio_vs_interval(df.rename(columns={"amplitude_ratio": "amplitude_uA_cm2"}))


def test_second_spike_probability_counts():
    df = pd.DataFrame({
        "interval_ms": [2.0] * 4 + [5.0] * 4,
        "amplitude_uA_cm2": [10.0] * 8,
        "n_spikes": [1, 1, 1, 1, 1, 2, 2, 2],
    })
    out = second_spike_probability(df)
    assert out["interval_ms"].tolist() == [2.0, 5.0]
    assert out["n_fired"].tolist() == [0, 3]
    assert out["p_fired"].tolist() == [0.0, 0.75]
    by_amp = second_spike_probability(df, by="amplitude_uA_cm2")
    assert list(by_amp.columns[:2]) == ["interval_ms", "amplitude_uA_cm2"]
    with pytest.raises(ValueError, match="fired_second"):
        second_spike_probability(df.drop(columns="n_spikes"))


def test_periods_outside_tested_range_are_nan_with_note(sweep):
    late = sweep[sweep["interval_ms"] <= 5.0]  # R(5) = 1.29 > 1.05: relative period beyond the last interval
    res = refractory_periods(late, single_pulse_threshold=THETA1)
    assert np.isnan(res.relative_ms)
    assert np.isinf(res.relative_ci_ms[1])
    assert any("relative: beyond_last_interval" in n for n in res.notes)
