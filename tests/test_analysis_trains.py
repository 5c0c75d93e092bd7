"""Spike-train statistics on Poisson, gamma-renewal and correlated-interval processes (fixed seeds).

Tolerances are multiples of the standard errors named at each check (3-3.5 SE: two-sided p <= 3e-3).
"""

import numpy as np
import pandas as pd
import pytest

from stochion.analysis import (
    fano_factor,
    firing_rate,
    first_spike_latency,
    inter_spike_intervals,
    isi_serial_correlation,
    isi_statistics,
    spontaneous_rate,
)

T_MS = 10_000.0


def renewal_spikes(rng, isi_sampler, n_trials, t_ms=T_MS):
    rows = []
    for trial in range(n_trials):
        isi = isi_sampler(rng, int(3 * t_ms / 10) + 100)
        # start in equilibrium for a Poisson process; for others the first interval is slightly off (harmless)
        t = np.cumsum(isi)
        t = t[t < t_ms]
        rows.append(pd.DataFrame({"trial": trial, "t_ms": t}))
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def poisson():
    rate_per_ms = 0.02  # 20 Hz
    return renewal_spikes(np.random.default_rng(1), lambda r, n: r.exponential(1 / rate_per_ms, n), 50)


def test_poisson_cv_and_fano_near_one(poisson):
    st = isi_statistics(poisson).iloc[0]
    # delta-method SE of the CV for exponential ISIs is 1/sqrt(n)
    assert st["cv_se"] == pytest.approx(1 / np.sqrt(st["n_isi"]), rel=0.15)
    assert abs(st["cv"] - 1.0) < 3 * st["cv_se"]
    assert abs(st["mean_isi_ms"] - 50.0) < 3 * st["sem_isi_ms"]
    ff = fano_factor(poisson, trials=50, window_ms=[100.0, 1000.0], t_start_ms=0.0, t_stop_ms=T_MS)
    assert ff["n_windows"].tolist() == [5000, 500]
    # Poisson-null SE sqrt(2/(n-1)): 0.02 and 0.063
    assert np.all(np.abs(ff["fano"] - 1.0) < 3 * ff["fano_se"])
    assert ff["mean_count"].tolist() == pytest.approx([2.0, 20.0], rel=0.05)


def test_poisson_serial_correlation_zero(poisson):
    sc = isi_serial_correlation(poisson, max_lag=5)
    assert sc["lag"].tolist() == [1, 2, 3, 4, 5]
    assert np.all(np.abs(sc["rho"]) < 3.5 * sc["se"])


def test_gamma_process_cv():
    k = 4.0  # gamma shape: CV = 1/sqrt(k) = 0.5
    spikes = renewal_spikes(np.random.default_rng(2), lambda r, n: r.gamma(k, 25.0 / k, n), 40)
    st = isi_statistics(spikes).iloc[0]
    # delta-method SE with gamma moments: skew 2/sqrt(k) = 1, kurtosis 3 + 6/k = 4.5 ->
    # var(cv) = cv^2/n ((4.5-1)/4 - 0.5*1 + 0.25) = 0.25 * 0.625 / n
    assert st["cv_se"] == pytest.approx(np.sqrt(0.25 * 0.625 / st["n_isi"]), rel=0.2)
    assert abs(st["cv"] - 0.5) < 3 * st["cv_se"]
    sc = isi_serial_correlation(spikes, max_lag=3)
    assert np.all(np.abs(sc["rho"]) < 3.5 * sc["se"])


def test_serial_correlation_of_ma1_intervals():
    # ISI_j = 10 + (z_j + z_{j-1}) (always > 0 in practice: 7 SD): lag-1 correlation 1/2, lag 2 zero.
    # Bartlett SE at lag 1 for an MA(1)
    # with rho = 0.5: sqrt((1 - 3 rho^2 + 4 rho^4)/n) = sqrt(0.5/n); at lag 2: sqrt((1 + 2 rho^2)/n)
    rng = np.random.default_rng(3)
    z = rng.normal(size=20_001)
    isi = 10 + (z[1:] + z[:-1])
    t = np.cumsum(isi)
    spikes = pd.DataFrame({"trial": np.repeat([0, 1], 10_000), "t_ms": np.concatenate([t[:10_000], t[10_000:]])})
    sc = isi_serial_correlation(spikes, max_lag=2).set_index("lag")
    n = sc.loc[1, "n_pairs"]
    assert sc.loc[1, "rho"] == pytest.approx(0.5, abs=3 * np.sqrt(0.5 / n))
    assert abs(sc.loc[2, "rho"]) < 3 * np.sqrt(1.5 / n)
    # pairs never straddle trials: 9999 ISIs per trial -> 9998 lag-1 pairs each
    assert n == 2 * 9998


def test_rates_count_trials_without_spikes():
    spikes = pd.DataFrame({"trial": [0, 0, 0, 2], "t_ms": [10.0, 500.0, 999.0, 20.0]})
    per = firing_rate(spikes, trials=4, t_start_ms=0.0, t_stop_ms=1000.0)
    assert per["trial"].tolist() == [0, 1, 2, 3]
    assert per["n_spikes"].tolist() == [3, 0, 1, 0]
    assert per["rate_Hz"].tolist() == [3.0, 0.0, 1.0, 0.0]
    window = firing_rate(spikes, trials=[0, 2], t_start_ms=0.0, t_stop_ms=100.0)
    assert window["n_spikes"].tolist() == [1, 1]
    sp = spontaneous_rate(spikes, trials=4, t_start_ms=0.0, t_stop_ms=1000.0).iloc[0]
    assert sp["n_spikes"] == 4 and sp["total_time_s"] == 4.0 and sp["rate_Hz"] == 1.0
    # exact Garwood 95 % interval for k = 4: [1.0899, 10.2416] counts
    assert sp["rate_ci_low_Hz"] == pytest.approx(1.0899 / 4, abs=1e-4)
    assert sp["rate_ci_high_Hz"] == pytest.approx(10.2416 / 4, abs=1e-4)
    zero = spontaneous_rate(spikes.iloc[:0], trials=10, t_start_ms=0.0, t_stop_ms=1000.0).iloc[0]
    assert zero["rate_ci_low_Hz"] == 0.0 and zero["rate_ci_high_Hz"] == pytest.approx(3.6889 / 10, abs=1e-4)


def test_spontaneous_rate_poisson_interval_covers(poisson):
    sp = spontaneous_rate(poisson, trials=50, t_start_ms=0.0, t_stop_ms=T_MS).iloc[0]
    assert sp["rate_ci_low_Hz"] < 20.0 < sp["rate_ci_high_Hz"]


def test_first_spike_latency_and_jitter():
    rng = np.random.default_rng(4)
    n = 400
    lat = 5.0 + rng.normal(0, 0.5, n)
    onset = 100.0
    spikes = pd.DataFrame({
        "trial": np.repeat(np.arange(n), 3),
        "t_ms": np.column_stack([np.full(n, 50.0), onset + lat, onset + lat + 20.0]).ravel(),
    })
    spikes = spikes[spikes["trial"] != 7]  # trial 7 did not fire at all
    out = first_spike_latency(spikes, trials=n, stimulus_onset_ms=onset).iloc[0]
    assert out["n_trials"] == n and out["n_responding"] == n - 1
    assert abs(out["latency_mean_ms"] - 5.0) < 3 * out["latency_sem_ms"]
    # SE of a normal SD is sd / sqrt(2 (n - 1))
    assert abs(out["latency_sd_ms"] - 0.5) < 3 * 0.5 / np.sqrt(2 * (n - 2))
    per = first_spike_latency(spikes, trials=n, stimulus_onset_ms=onset, per_trial=True)
    assert np.isnan(per.loc[7, "latency_ms"])
    assert per.loc[0, "latency_ms"] == pytest.approx(lat[0])


def test_isi_within_trials_only():
    spikes = pd.DataFrame({"trial": [0, 0, 1, 1, 1], "t_ms": [1.0, 4.0, 2.0, 3.0, 7.0]})
    isi = inter_spike_intervals(spikes)
    assert isi["isi_ms"].tolist() == [3.0, 1.0, 4.0]
    assert isi["index"].tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="t_ms"):
        inter_spike_intervals(spikes.assign(t_ms=[4.0, 1.0, 2.0, 3.0, 7.0]))
    with pytest.raises(ValueError, match="at least 2"):
        isi_statistics(spikes.iloc[:2])
