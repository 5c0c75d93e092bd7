"""All-or-none assessment on synthetic mixtures with known composition (fixed seeds)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stochion.analysis import ashman_d, assess_all_or_none, bimodality_coefficient


def test_bimodality_coefficient_known_values():
    # BC -> 1/3 for a normal distribution (skew 0, excess kurtosis 0); sampling SD at n = 20000 is ~0.005
    rng = np.random.default_rng(0)
    assert bimodality_coefficient(rng.normal(size=20_000)) == pytest.approx(1 / 3, abs=0.02)
    # uniform: skew 0, excess kurtosis -1.2 -> 1/1.8 = 5/9 (the usual cut-off)
    assert bimodality_coefficient(rng.uniform(size=20_000)) == pytest.approx(5 / 9, abs=0.02)
    # exact small sample against scipy's bias-corrected moments
    x = np.array([1.0, 2.0, 2.5, 7.0, 8.0, 9.5])
    g, k, n = stats.skew(x, bias=False), stats.kurtosis(x, bias=False), 6
    assert bimodality_coefficient(x) == pytest.approx((g**2 + 1) / (k + 3 * 25 / 12))
    with pytest.raises(ValueError, match="at least 4"):
        bimodality_coefficient([1.0, 2.0])


def test_ashman_d_formula():
    a = np.array([0.0, 2.0])  # mean 1, var 2
    b = np.array([5.0, 9.0])  # mean 7, var 8
    assert ashman_d(a, b) == pytest.approx(np.sqrt(2) * 6 / np.sqrt(10))


def mixture(rng, n=300, n_intermediate=6):
    x = rng.uniform(0, 20, n)
    fail = x < 10
    # failures: graded subthreshold response; spikes: size independent of stimulus
    peak = np.where(fail, -65 + 1.5 * x + rng.normal(0, 1, n), rng.normal(40, 1.5, n))
    peak[:n_intermediate] = -10.0 + rng.normal(0, 1, n_intermediate)
    return pd.DataFrame({"amplitude_uA_cm2": x, "peak_mV": peak})


def test_all_or_none_mixture():
    rng = np.random.default_rng(42)
    df = mixture(rng)
    res = assess_all_or_none(df)
    assert res.bimodality_coefficient > 5 / 9
    assert res.ashman_d > 2
    assert res.n_intermediate == 6
    assert res.fraction_intermediate == pytest.approx(6 / 300)
    assert res.fraction_intermediate_ci[0] < 6 / 300 < res.fraction_intermediate_ci[1]
    n_fail_true = int(((df["amplitude_uA_cm2"] < 10) & (np.arange(300) >= 6)).sum())
    assert res.n_failures == n_fail_true
    assert res.n_spikes == 300 - 6 - n_fail_true
    # the true slope is 0: |slope| < 3.5 SE (two-sided p ~ 5e-4)
    assert abs(res.slope) < 3.5 * res.slope_se
    assert res.slope_ci[0] < res.slope < res.slope_ci[1]
    assert abs(res.spike_peak_mean_mV - 40) < 3.5 * 1.5 / np.sqrt(res.n_spikes)
    assert res.slope_unit == "mV_per_uA_cm2"
    assert res.responses["response"].value_counts()["intermediate"] == 6


def test_graded_response_is_not_all_or_none():
    # peak linear in a normally distributed stimulus: unimodal (BC ~ 1/3) with slope 5 mV per unit
    rng = np.random.default_rng(1)
    x = rng.normal(10, 2, 400)
    df = pd.DataFrame({"amplitude_uA_cm2": x, "peak_mV": -65 + 5 * x + rng.normal(0, 2, 400)})
    res = assess_all_or_none(df)
    assert res.bimodality_coefficient < 5 / 9
    assert res.ashman_d < 2
    # within the upper group the slope stays far from 0 (attenuated by selecting on the response)
    assert res.slope > 3.5 * res.slope_se


def test_slope_recovered_for_graded_spike_size():
    rng = np.random.default_rng(3)
    df = mixture(rng, n_intermediate=0)
    spikes = df["amplitude_uA_cm2"] >= 10
    df.loc[spikes, "peak_mV"] += 0.8 * (df.loc[spikes, "amplitude_uA_cm2"] - 10)
    res = assess_all_or_none(df, split_mV=0.0)
    assert res.split_mV == 0.0
    assert abs(res.slope - 0.8) < 3.5 * res.slope_se


def test_all_or_none_input_errors():
    df = pd.DataFrame({"amplitude_uA_cm2": [1.0, 2, 3, 4], "peak_mV": [1.0, np.nan, 3, 4]})
    with pytest.raises(ValueError, match="peak_mV"):
        assess_all_or_none(df)
    with pytest.raises(ValueError, match="each group needs"):
        assess_all_or_none(df.fillna(2.0), split_mV=100.0)
