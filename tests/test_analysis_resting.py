"""Resting potential on AR(1) voltage noise with known mean and known autocorrelation.

For an AR(1) series x_t = phi x_{t-1} + e_t with stationary SD s, the SE of the mean of n samples is
s * sqrt((1 + phi) / (1 - phi) / n) (for n >> 1/(1-phi)). Seeds are fixed; thresholds are stated per check.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import signal

from stochion.analysis import compare_to_ghk, resting_potential

MU = -65.0


def ar1(n, phi, sd, rng, n_series=1):
    e = rng.normal(0.0, sd * np.sqrt(1 - phi**2), size=(n_series, n))
    e[:, 0] = rng.normal(0.0, sd, n_series)  # x_0 drawn from the stationary distribution
    return signal.lfilter([1.0], [1.0, -phi], e, axis=1)


def make_trace(x, dt=0.1):
    n_trials, n = x.shape
    return pd.DataFrame({
        "trial": np.repeat(np.arange(n_trials), n),
        "t_ms": np.tile(np.arange(n) * dt, n_trials),
        "V_mV": MU + x.ravel(),
    })


def test_mean_and_autocorrelation_aware_sem():
    rng = np.random.default_rng(11)
    phi, sd, n = 0.95, 0.5, 40_000
    x = ar1(n, phi, sd, rng, n_series=3)
    res = resting_potential(make_trace(x), exclude_spikes_ms=0.0)
    N = 3 * n
    se_true = sd * np.sqrt((1 + phi) / (1 - phi) / N)
    # batch-means SE: ~600 batches in all -> relative SE ~3 %, bias ~ -5 % (batch size 200 vs correlation
    # length 39 samples); allow 20 %
    assert res.sem_mV == pytest.approx(se_true, rel=0.20)
    # a naive sd/sqrt(N) would be ~6x too small
    assert res.sem_mV > 3 * sd / np.sqrt(N)
    assert abs(res.mean_mV - MU) < 3.5 * se_true  # p ~ 5e-4
    assert res.sd_mV == pytest.approx(sd, rel=0.05)  # SD of the SD with ~N/39 effective samples ~ 1.3 %
    assert res.n_trials == 3 and res.n_samples == N
    assert list(res.per_trial.columns) == ["trial", "n_samples", "mean_mV", "sd_mV", "sem_mV", "n_batches"]


def test_spikes_and_initial_transient_are_excluded():
    rng = np.random.default_rng(5)
    dt = 0.05
    x = ar1(60_000, 0.9, 0.3, rng)
    tr = make_trace(x, dt=dt)
    t = tr["t_ms"].to_numpy()
    V = tr["V_mV"].to_numpy().copy()
    V += -20.0 * np.exp(-t / 5.0)  # start 20 mV below rest, relax with 5 ms
    spike_times = [300.0, 700.0, 1200.0, 1800.0, 2400.0, 2800.0]
    for ts in spike_times:
        V += 100.0 * np.exp(-0.5 * ((t - ts) / 0.3) ** 2) - 2.0 * np.exp(-0.5 * ((t - ts - 2.0) / 3.0) ** 2)
    tr["V_mV"] = V
    res = resting_potential(tr, exclude_spikes_ms=(5.0, 20.0), discard_initial_ms=50.01)
    assert abs(res.mean_mV - MU) < 3.5 * res.sem_mV
    # without excluding spikes the mean is biased by their net area (6 x 60 mV ms over 3 s = +0.12 mV),
    # without discarding the transient by its area (-100 mV ms over 3 s = -0.033 mV)
    raw = resting_potential(tr, exclude_spikes_ms=0.0, discard_initial_ms=50.01)
    assert raw.mean_mV - MU > 10 * res.sem_mV
    no_discard = resting_potential(tr, exclude_spikes_ms=(5.0, 20.0))
    assert no_discard.mean_mV - res.mean_mV < -0.02
    # exactly the excluded samples are missing: the first 1001 samples (t <= 50.00 ms) and 25 ms = 500 samples
    # around each detected crossing (which falls between samples, so each window holds exactly 500)
    expect = len(t) - 1001 - 6 * 500
    assert res.n_samples == expect


def test_sem_coverage():
    # 200 independent AR(1) trials (phi = 0.8, n = 4096): the 95 % interval mean +- 1.96 SE should cover MU in
    # about 95 % (slightly less: ~64 batches and a small batch-size bias). Binomial SE of the coverage 1.5 %;
    # accept [0.89, 0.995].
    rng = np.random.default_rng(2024)
    x = ar1(4096, 0.8, 1.0, rng, n_series=200)
    per = resting_potential(make_trace(x), exclude_spikes_ms=0.0).per_trial
    covered = np.abs(per["mean_mV"] - MU) <= 1.96 * per["sem_mV"]
    assert 0.89 <= covered.mean() <= 0.995


def test_compare_to_ghk():
    rng = np.random.default_rng(1)
    res = resting_potential(make_trace(ar1(10_000, 0.5, 0.2, rng)), exclude_spikes_ms=0.0)
    out = compare_to_ghk(res, E_ghk_mV=-70.0)
    assert out["difference_mV"].iloc[0] == pytest.approx(res.mean_mV + 70.0)
    assert out["z"].iloc[0] == pytest.approx((res.mean_mV + 70.0) / res.sem_mV)
    plain = compare_to_ghk(-64.0, E_ghk_mV=-66.0, sem_mV=0.5)
    assert plain[["difference_mV", "z"]].iloc[0].tolist() == pytest.approx([2.0, 4.0])
    with pytest.raises(ValueError, match="E_ghk_mV"):
        compare_to_ghk(-64.0, E_ghk_mV=float("nan"))


def test_everything_excluded_raises():
    rng = np.random.default_rng(0)
    tr = make_trace(ar1(100, 0.5, 0.2, rng))
    with pytest.raises(ValueError, match="no samples left"):
        resting_potential(tr, exclude_spikes_ms=0.0, discard_initial_ms=1000.0)
