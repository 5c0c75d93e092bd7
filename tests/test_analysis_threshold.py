"""Firing probability, probit threshold fits, strength-duration and threshold-voltage summaries.

Bernoulli data are simulated from a known cumulative Gaussian with fixed numpy seeds. Statistical checks state
their tolerance in standard errors (SE from the fitted profile interval: width / (2 * 1.96)).
"""

import numpy as np
import pandas as pd
import pytest
from scipy import special

from stochion.analysis import (
    firing_probability,
    fit_threshold,
    fit_thresholds,
    strength_duration,
    threshold_voltage_distribution,
)

THETA, SIGMA = 10.0, 0.8


def bernoulli_sweep(rng, levels, n_per_level, theta=THETA, sigma=SIGMA, by="amplitude_uA_cm2"):
    x = np.repeat(np.asarray(levels, dtype=float), n_per_level)
    fired = rng.random(len(x)) < special.ndtr((x - theta) / sigma)
    return pd.DataFrame({by: x, "trial": np.arange(len(x)), "n_spikes": fired.astype(int)})


def test_firing_probability_counts_and_wilson_interval():
    df = pd.DataFrame({"amplitude_uA_cm2": [1.0] * 10 + [2.0] * 10,
                       "fired": [False] * 10 + [True] * 5 + [False] * 5})
    out = firing_probability(df)
    assert out["n_trials"].tolist() == [10, 10]
    assert out["n_fired"].tolist() == [0, 5]
    assert out["p_fired"].tolist() == [0.0, 0.5]
    # Wilson 95 %: k=0, n=10 -> [0, z^2/(n+z^2)] = [0, 0.27753]; k=5, n=10 -> [0.23659, 0.76341]
    assert out["p_ci_low"].tolist() == pytest.approx([0.0, 0.23659], abs=1e-5)
    assert out["p_ci_high"].tolist() == pytest.approx([0.27753, 0.76341], abs=1e-5)
    # n_spikes is used when there is no 'fired' column
    out2 = firing_probability(df.assign(n_spikes=df["fired"].astype(int) * 3).drop(columns="fired"))
    assert out2["n_fired"].tolist() == [0, 5]


def test_probit_fit_recovers_known_parameters():
    rng = np.random.default_rng(7)
    df = bernoulli_sweep(rng, np.linspace(8, 12, 9), 60)
    fit = fit_threshold(df)
    assert fit.threshold_ci[0] < THETA < fit.threshold_ci[1]
    assert fit.sigma_ci[0] < SIGMA < fit.sigma_ci[1]
    r = SIGMA / THETA
    assert fit.relative_spread_ci[0] < r < fit.relative_spread_ci[1]
    se = (fit.threshold_ci[1] - fit.threshold_ci[0]) / (2 * 1.96)
    assert abs(fit.threshold - THETA) < 3 * se
    assert fit.relative_spread == pytest.approx(fit.sigma / fit.threshold)
    assert fit.unit == "uA_cm2" and fit.n_trials == 540 and not fit.separated
    assert fit.probability(fit.threshold) == pytest.approx(0.5)
    # the grouped table gives the same fit
    grouped = fit_threshold(firing_probability(df))
    assert grouped.threshold == pytest.approx(fit.threshold, rel=1e-6)
    assert grouped.sigma == pytest.approx(fit.sigma, rel=1e-5)
    assert grouped.threshold_ci == pytest.approx(fit.threshold_ci, rel=1e-5)


def test_profile_interval_coverage():
    # 100 data sets; 95 % intervals should cover the truth in ~95 % (binomial SE 2.2 %); accept >= 0.88
    rng = np.random.default_rng(123)
    # (an interval that is too wide would also pass this check; the next test bounds the width)
    hits = np.zeros(3, int)
    for _ in range(100):
        df = bernoulli_sweep(rng, np.linspace(8.5, 11.5, 7), 20)
        fit = fit_threshold(df)
        hits += [fit.threshold_ci[0] < THETA < fit.threshold_ci[1],
                 fit.sigma_ci[0] < SIGMA < fit.sigma_ci[1],
                 fit.relative_spread_ci[0] < SIGMA / THETA < fit.relative_spread_ci[1]]
    assert np.all(hits >= 88), hits


def test_profile_interval_width_matches_fisher_information():
    # for a large sample the profile interval is +- 1.96 / sqrt(I) with I the expected Fisher information of
    # theta (sigma known): I = sum n_i phi(z_i)^2 / (sigma^2 p_i (1 - p_i)). Allow 15 %.
    rng = np.random.default_rng(8)
    levels = np.linspace(8, 12, 9)
    fit = fit_threshold(bernoulli_sweep(rng, levels, 400))
    z = (levels - THETA) / SIGMA
    p = special.ndtr(z)
    phi = np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
    info_theta = np.sum(400 * phi**2 / (SIGMA**2 * p * (1 - p)))
    # sigma is estimated too; theta and sigma are nearly orthogonal for a design symmetric about theta
    half = (fit.threshold_ci[1] - fit.threshold_ci[0]) / 2
    assert half == pytest.approx(1.96 / np.sqrt(info_theta), rel=0.15)


def test_bootstrap_interval_is_seeded_and_covers():
    rng = np.random.default_rng(3)
    df = bernoulli_sweep(rng, np.linspace(8, 12, 9), 30)
    a = fit_threshold(df, ci="bootstrap", n_bootstrap=200, seed=42)
    b = fit_threshold(df, ci="bootstrap", n_bootstrap=200, seed=42)
    c = fit_threshold(df, ci="bootstrap", n_bootstrap=200, seed=43)
    assert a.threshold_ci == b.threshold_ci and a.threshold_ci != c.threshold_ci
    assert a.threshold_ci[0] < THETA < a.threshold_ci[1]
    assert a.n_bootstrap_used > 190
    # bootstrap and profile intervals agree roughly (same asymptotics): widths within 30 %
    p = fit_threshold(df)
    w_b, w_p = np.diff(a.threshold_ci)[0], np.diff(p.threshold_ci)[0]
    assert w_b == pytest.approx(w_p, rel=0.3)


def test_complete_separation_is_flagged():
    df = pd.DataFrame({"amplitude_uA_cm2": [1, 2, 3, 4, 5, 6.0], "fired": [0, 0, 0, 1, 1, 1]})
    fit = fit_threshold(df)
    assert fit.separated and fit.sigma == 0.0 and fit.threshold == 3.5
    assert fit.threshold_ci[0] <= 3.0 and fit.threshold_ci[1] >= 4.0
    assert fit.probability([3.0, 4.0]).tolist() == [0.0, 1.0]


def test_threshold_outside_range_raises():
    df = pd.DataFrame({"amplitude_uA_cm2": [1, 2, 3.0], "fired": [True, True, True]})
    with pytest.raises(ValueError, match="every trial fired"):
        fit_threshold(df)
    with pytest.raises(ValueError, match="fired"):
        fit_threshold(df.drop(columns="fired"))
    with pytest.raises(ValueError, match="amplitude_uA_cm2"):
        fit_threshold(df.rename(columns={"amplitude_uA_cm2": "a"}))


def test_fit_thresholds_per_group_with_statuses():
    rng = np.random.default_rng(9)
    parts = []
    for d, theta in [(0.5, 12.0), (1.0, 8.0), (2.0, 6.0)]:
        parts.append(bernoulli_sweep(rng, theta + np.linspace(-2, 2, 9), 40, theta=theta).assign(duration_ms=d))
    parts.append(pd.DataFrame({"duration_ms": 0.1, "amplitude_uA_cm2": [1.0, 2.0], "n_spikes": [0, 0]}))
    parts.append(pd.DataFrame({"duration_ms": 5.0, "amplitude_uA_cm2": [10.0, 20.0], "n_spikes": [1, 2]}))
    out = fit_thresholds(pd.concat(parts, ignore_index=True))
    assert out["duration_ms"].tolist() == [0.1, 0.5, 1.0, 2.0, 5.0]
    assert out["status"].tolist() == ["never_fired", "ok", "ok", "ok", "always_fired"]
    assert out.loc[0, "threshold_ci_low_uA_cm2"] == 2.0 and np.isinf(out.loc[0, "threshold_ci_high_uA_cm2"])
    assert out.loc[4, "threshold_ci_high_uA_cm2"] == 10.0
    for i, theta in zip([1, 2, 3], [12.0, 8.0, 6.0]):
        assert out.loc[i, "threshold_ci_low_uA_cm2"] < theta < out.loc[i, "threshold_ci_high_uA_cm2"]


D_MS = np.array([0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0])


@pytest.mark.parametrize("model", ["hyperbola", "weiss"])
def test_strength_duration_exact_hyperbola(model):
    i_rh, t_ch = 2.5, 0.35
    df = pd.DataFrame({"duration_ms": D_MS, "threshold_uA_cm2": i_rh * (1 + t_ch / D_MS)})
    fit = strength_duration(df, model=model)
    assert fit.rheobase == pytest.approx(i_rh, rel=1e-8)
    assert fit.chronaxie_ms == pytest.approx(t_ch, rel=1e-8)
    assert fit.predict(t_ch) == pytest.approx(2 * i_rh)
    assert fit.unit == "uA_cm2" and fit.residual_sd < 1e-8


def test_strength_duration_exact_exponential():
    i_rh, tau = 1.5, 0.8
    df = pd.DataFrame({"duration_ms": D_MS, "threshold_uA_cm2": i_rh / (1 - np.exp(-D_MS / tau))})
    fit = strength_duration(df, model="exponential")
    assert fit.rheobase == pytest.approx(i_rh, rel=1e-8)
    assert fit.chronaxie_ms == pytest.approx(tau * np.log(2), rel=1e-8)


def test_strength_duration_noisy_within_standard_errors():
    rng = np.random.default_rng(21)
    i_rh, t_ch = 2.5, 0.35
    d = np.repeat(D_MS, 3)
    true = i_rh * (1 + t_ch / d)
    sd = 0.02 * true  # 2 % threshold noise, as from a probit fit
    df = pd.DataFrame({"duration_ms": d, "threshold_uA_cm2": true + rng.normal(0, sd), "se": sd})
    for model in ("hyperbola", "weiss"):
        fit = strength_duration(df, model=model, sigma="se")
        assert abs(fit.rheobase - i_rh) < 3 * fit.rheobase_se
        assert abs(fit.chronaxie_ms - t_ch) < 3 * fit.chronaxie_se_ms
    with pytest.raises(ValueError, match="duration_ms"):
        strength_duration(df.assign(duration_ms=0.0))


def test_threshold_voltage_distribution():
    rng = np.random.default_rng(4)
    n = 500
    th = rng.normal(-55.0, 1.5, n)
    feats = pd.DataFrame({"trial": np.repeat(np.arange(n // 2), 2), "t_ms": np.tile([5.0, 15.0], n // 2),
                          "threshold_mV": th})
    feats.loc[3, "threshold_mV"] = np.nan
    out = threshold_voltage_distribution(feats).iloc[0]
    assert out["n"] == n - 1 and out["n_missing"] == 1
    assert abs(out["mean_mV"] + 55.0) < 3 * out["sem_mV"]
    assert out["sd_mV"] == pytest.approx(1.5, rel=4 * np.sqrt(1 / (2 * (n - 1))))
    assert out["normality_p"] > 1e-3
    first = threshold_voltage_distribution(feats, first_spike_only=True).iloc[0]
    assert first["n"] == n // 2
    assert first["mean_mV"] == pytest.approx(np.nanmean(th[::2]))
