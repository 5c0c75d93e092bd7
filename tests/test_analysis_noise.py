"""Channel-noise statistics against closed forms and against exactly simulated two-state channels.

The two-state (telegraph) channel is simulated in continuous time inside the tests (exponential dwells with
numpy, fixed seeds) and sampled onto a grid, so grid values are exact samples of the Markov process.
Rates: closed -> open ALPHA, open -> closed BETA (1/ms); p_open = ALPHA/(ALPHA+BETA) = 1/3,
tau = 1/(ALPHA+BETA) = 2/3 ms.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from stochion.analysis import (
    compare_open_counts_to_binomial,
    dwell_times,
    fit_dwell_times,
    lorentzian_components,
    lorentzian_count_psd,
    lorentzian_psd,
    psd,
)

ALPHA, BETA = 0.5, 1.0
P_OPEN = ALPHA / (ALPHA + BETA)
TAU_MS = 1.0 / (ALPHA + BETA)
Q2 = np.array([[-ALPHA, ALPHA], [BETA, -BETA]])  # state 0 closed, state 1 open


def telegraph(rng, t_end_ms):
    """Initial state (True = open) and switching times of one stationary two-state channel."""
    open0 = rng.random() < P_OPEN
    n = int(t_end_ms * 2 * ALPHA * BETA / (ALPHA + BETA) * 1.3) + 100
    rates = np.where((np.arange(n) % 2 == 0) == open0, BETA, ALPHA)  # dwell k is open iff k even == open0
    times = np.cumsum(rng.exponential(1.0, n) / rates)
    assert times[-1] > t_end_ms
    return open0, times[times < t_end_ms]


def simulate(rng, n_channels, t_end_ms, dt_ms):
    t = np.arange(0.0, t_end_ms, dt_ms)
    n_open = np.zeros(len(t), dtype=np.int64)
    events = []
    for ch in range(n_channels):
        open0, times = telegraph(rng, t_end_ms)
        k = np.searchsorted(times, t, side="right")
        n_open += (open0 ^ (k % 2 == 1)).astype(np.int64)
        is_open_before = open0 ^ (np.arange(len(times)) % 2 == 1)
        events.append(pd.DataFrame({
            "trial": 0, "channel_type": "K", "channel_id": ch, "t_ms": times,
            "from_state": np.where(is_open_before, "O", "C"), "to_state": np.where(is_open_before, "C", "O"),
        }))
    ev = pd.concat(events, ignore_index=True).sort_values(["t_ms"], kind="stable").reset_index(drop=True)
    for c in ("from_state", "to_state"):
        ev[c] = pd.Categorical(ev[c], categories=["C", "O"], ordered=True)
    ev["channel_type"] = pd.Categorical(ev["channel_type"])
    return t, n_open, ev


@pytest.fixture(scope="module")
def patch():
    return simulate(np.random.default_rng(2718), 10, 20_000.0, 0.05)


def two_state_closed_form(f_hz, n, i_pa):
    tau_s = TAU_MS * 1e-3
    return 4 * n * i_pa**2 * P_OPEN * (1 - P_OPEN) * tau_s / (1 + (2 * np.pi * f_hz * tau_s) ** 2)


def test_lorentzian_two_state_closed_form():
    f = np.array([0.0, 1.0, 10.0, 100.0, 239.0, 1000.0, 1e4])
    # 10 pS at -100 mV driving force = -1 pA
    s = lorentzian_psd(Q2, [0.0, 10.0], 25, -100.0, f)
    assert s == pytest.approx(two_state_closed_form(f, 25, -1.0), rel=1e-10)
    c = lorentzian_count_psd(Q2, [1], 25, f)
    assert c == pytest.approx(two_state_closed_form(f, 25, 1.0), rel=1e-10)
    assert lorentzian_count_psd(Q2, np.array([False, True]), 25, f) == pytest.approx(c, rel=1e-12)


@pytest.mark.parametrize("Q, g", [
    # C1 <-> C2 <-> O (reversible)
    (np.array([[-0.3, 0.3, 0.0], [0.2, -1.2, 1.0], [0.0, 2.0, -2.0]]), np.array([0.0, 0.0, 20.0])),
    # cyclic scheme with net flux (non-reversible; complex eigenvalues) and a sub-conductance state
    (np.array([[-1.0, 1.0, 0.0], [0.0, -1.0, 1.0], [1.0, 0.0, -1.0]]) * 2.0, np.array([0.0, 5.0, 20.0])),
])
def test_lorentzian_integral_equals_variance(Q, g):
    # Parseval: the one-sided spectrum integrates to the current variance N (sum pi i^2 - (sum pi i)^2)
    n, df_mV = 7, -80.0
    i = g * df_mV * 1e-3
    w, vl = np.linalg.eig(Q.T)
    pi = np.real(vl[:, np.argmin(np.abs(w))])
    pi /= pi.sum()
    var = n * (pi @ i**2 - (pi @ i) ** 2)
    total = integrate.quad(lambda f: lorentzian_psd(Q, g, n, df_mV, f), 0, np.inf, limit=200)[0]
    assert total == pytest.approx(var, rel=1e-6)
    comp = lorentzian_components(Q, i)
    assert comp["amplitude"].sum() == pytest.approx(var / n, rel=1e-9)


def test_lorentzian_components_hh_potassium():
    # n^4 scheme: state j (open gates) -> j+1 at (4-j) a, -> j-1 at j b; eigenvalues -j (a + b), j = 1..4
    a, b = 0.3, 0.2
    Q = np.zeros((5, 5))
    for j in range(5):
        if j < 4:
            Q[j, j + 1] = (4 - j) * a
        if j > 0:
            Q[j, j - 1] = j * b
    Q -= np.diag(Q.sum(axis=1))
    tau_n = 1 / (a + b)
    comp = lorentzian_components(Q, [0, 0, 0, 0, 1])
    assert comp["tau_ms"].to_numpy() == pytest.approx(tau_n / np.arange(1, 5), rel=1e-9)
    assert np.all(comp["oscillation_Hz"] < 1e-6)
    p = (a / (a + b)) ** 4
    assert comp["amplitude"].sum() == pytest.approx(p * (1 - p), rel=1e-9)
    s0 = lorentzian_count_psd(Q, [4], 100, 0.0)
    assert s0 == pytest.approx(100 * comp["plateau_per_Hz"].sum(), rel=1e-9)


def test_welch_of_simulated_telegraph_matches_lorentzian(patch):
    t, n_open, _ = patch
    n = 10
    trace = pd.DataFrame({"trial": 0, "t_ms": t, "I_K_pA": -1.0 * n_open})  # -1 pA per open channel
    spec = psd(trace, "I_K_pA", segment_ms=204.8)
    assert spec.attrs["nperseg"] == 4096 and spec.attrs["fs_Hz"] == pytest.approx(20_000.0)
    band = spec[(spec["f_Hz"] >= 10.0) & (spec["f_Hz"] <= 1000.0)]
    theory = lorentzian_psd(Q2, [0.0, 10.0], n, -100.0, band["f_Hz"].to_numpy())
    z = (band["psd_pA2_Hz"].to_numpy() - theory) / band["psd_se_pA2_Hz"].to_numpy()
    # per-bin SE is the Welch SE (~7 %); the mean of ~200 z-scores of neighbouring (Hann-correlated, at most a
    # factor 2 in variance) bins has SE <= sqrt(2/n_bins): accept 3 of those. Aliasing from above Nyquist
    # (10 kHz) is < 0.5 % of S at 1 kHz, a negligible bias in z.
    assert abs(z.mean()) < 3 * np.sqrt(2 / len(z))
    assert np.abs(z).max() < 5
    # the per-bin z-scores have unit spread if the reported SE is right (0.8 .. 1.25 allows for correlation)
    assert 0.8 < z.std() < 1.25


def test_psd_averages_trials_and_names_count_columns(patch):
    t, n_open, _ = patch
    half = len(t) // 2
    trace = pd.DataFrame(
        {"trial": np.repeat([0, 1], half), "t_ms": np.tile(t[:half], 2), "n_open_K": n_open[: 2 * half]}
    )
    spec = psd(trace, "n_open_K", nperseg=2048)
    assert spec.attrs["n_trials"] == 2 and list(spec.columns) == ["f_Hz", "psd_per_Hz", "psd_se_per_Hz"]
    # near the low-frequency plateau 4 N p (1-p) tau: 9.8 Hz bins, ~390 segments -> ~5 % per-bin SE; the mean
    # of the 5 bins in 5-50 Hz has an SE of ~3.2 % (x sqrt(2) for bin correlation): allow 3 SE = 10 %
    band = spec[(spec["f_Hz"] >= 5) & (spec["f_Hz"] <= 50)]
    assert len(band) == 5
    ratio = band["psd_per_Hz"] / lorentzian_count_psd(Q2, [1], 10, band["f_Hz"].to_numpy())
    assert ratio.mean() == pytest.approx(1.0, abs=0.1)


def test_open_counts_binomial(patch):
    t, n_open, _ = patch
    trace = pd.DataFrame({"trial": 0, "t_ms": t, "n_open_K": n_open})
    res = compare_open_counts_to_binomial(trace, channel_type="K", n_channels=10)
    # stride ~ 5 tau_int with tau_int ~ tau/dt = 13 samples -> ~67
    assert 45 <= res.stride <= 95
    assert res.p_value > 1e-3  # stated threshold; the null is true
    assert res.p_open == pytest.approx(P_OPEN, abs=0.02)
    # dispersion SE ~ sqrt(2 / n_samples) ~ 0.024 for ~3000 thinned samples; allow 4 SE
    assert res.dispersion == pytest.approx(1.0, abs=4 * np.sqrt(2 / res.n_samples))
    known = compare_open_counts_to_binomial(trace, channel_type="K", n_channels=10, p_open=P_OPEN, test="g")
    assert known.p_value > 1e-3 and known.dof == res.dof + 1
    assert known.table["expected"].sum() == pytest.approx(known.n_samples)


def test_open_counts_overdispersed_rejected():
    # channels gating in clusters of 5: count = 5 x (sum of 4 independent channels), variance 5x binomial
    t, n_open4, _ = simulate(np.random.default_rng(5), 4, 20_000.0, 0.1)
    trace = pd.DataFrame({"t_ms": t, "n_open_K": 5 * n_open4})
    res = compare_open_counts_to_binomial(trace, channel_type="K", n_channels=20)
    assert res.p_value < 1e-10
    assert res.dispersion > 3


def test_dwell_times_exponential_fit(patch):
    _, _, ev = patch
    dw = dwell_times(ev)
    assert isinstance(dw["channel_type"].dtype, pd.CategoricalDtype)
    # censoring: each channel loses its first and last dwell -> events - 1 dwells per channel
    assert len(dw) == len(ev) - ev["channel_id"].nunique()
    fit = fit_dwell_times(dw).set_index("state")
    for state, tau in (("O", 1 / BETA), ("C", 1 / ALPHA)):
        row = fit.loc[state]
        assert abs(row["tau_ms"] - tau) < 3 * row["tau_se_ms"]
        assert row["tau_ci_low_ms"] < tau < row["tau_ci_high_ms"]
        assert row["ks_p"] > 1e-3
        assert row["cv"] == pytest.approx(1.0, abs=4 * np.sqrt(1 / row["n"]))  # SE of an exponential's CV
    # a shifted (non-exponential) sample is rejected by the KS test
    shifted = dw.assign(dwell_ms=dw["dwell_ms"] + 0.5)
    assert fit_dwell_times(shifted).set_index("state").loc["O", "ks_p"] < 1e-6
    # ... and the dead-time correction undoes the shift exactly
    dead = fit_dwell_times(shifted, min_dwell_ms=0.5).set_index("state")
    assert dead.loc["O", "tau_ms"] == pytest.approx(fit.loc["O", "tau_ms"], rel=1e-9)


def test_dwell_times_state_classes_and_chain_check():
    ev = pd.DataFrame({
        "trial": 0, "channel_type": "Na", "channel_id": 3,
        "t_ms": [1.0, 2.0, 3.5, 4.0, 6.0, 6.5, 9.0],
        "from_state": ["C1", "C2", "O", "C2", "C1", "C2", "O"],
        "to_state": ["C2", "O", "C2", "C1", "C2", "O", "C2"],
        "V_mV": -20.0,
    })
    dw = dwell_times(ev)
    assert dw["state"].astype(str).tolist() == ["C2", "O", "C2", "C1", "C2", "O"]
    assert dw["dwell_ms"].tolist() == pytest.approx([1.0, 1.5, 0.5, 2.0, 0.5, 2.5])
    assert dw["V_enter_mV"].tolist() == [-20.0] * 6
    classes = dwell_times(ev, state_map={"C1": "closed", "C2": "closed", "O": "open"})
    assert classes["state"].astype(str).tolist() == ["open", "closed", "open"]
    assert classes["dwell_ms"].tolist() == pytest.approx([1.5, 3.0, 2.5])
    with pytest.raises(ValueError, match="state_map"):
        dwell_times(ev, state_map={"C1": "closed", "O": "open"})
    broken = ev.copy()
    broken.loc[3, "from_state"] = "O"
    with pytest.raises(ValueError, match="do not chain"):
        dwell_times(broken)
    with pytest.raises(ValueError, match="channel_type"):
        dwell_times(ev, channel_type="K")


def test_generator_validation():
    f = np.array([1.0])
    with pytest.raises(ValueError, match="sum to 0"):
        lorentzian_psd(np.array([[-1.0, 0.5], [1.0, -1.0]]), [0, 1], 1, -50, f)
    with pytest.raises(ValueError, match=">= 0"):
        lorentzian_psd(np.array([[1.0, -1.0], [1.0, -1.0]]), [0, 1], 1, -50, f)
    with pytest.raises(ValueError, match="square"):
        lorentzian_psd(np.zeros((2, 3)), [0, 1], 1, -50, f)
    with pytest.raises(ValueError, match="one per state"):
        lorentzian_psd(Q2, [0, 1, 2], 1, -50, f)
    with pytest.raises(ValueError, match="n_channels"):
        lorentzian_count_psd(Q2, [1], 0, f)
    with pytest.raises(ValueError, match="irreducible"):
        lorentzian_count_psd(np.zeros((3, 3)), [1], 1, f)
