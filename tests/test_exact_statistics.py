"""Statistical tests of the exact engine against analytic answers.

Every check is a z-test (or KS / chi-square test) whose standard error is derived, not tuned: binomial
variances for independent channels, the deviation-matrix formula for time averages (see ``_analytic``).
Threshold: |z| < 4, two-sided p = 6.3e-5 per check; with about 60 checks in this file the family-wise false
alarm rate is below 0.4 % (Bonferroni). Seeds are fixed, so a run is reproducible; the thresholds are what
make the tests meaningful for any seed.
"""

import math

import numpy as np
import pytest
from scipy import stats

import stochion as si
from stochion.channels import hh_potassium, hh_sodium
from stochion.membrane import ChannelPopulation, Patch

from _analytic import integrated_autocovariance, open_probability_after_step, open_probability_along

Z = 4.0
P_MIN = 1e-4


def clamp_patch(n_na=1000, n_k=1000, **kw):
    chans = []
    if n_na:
        chans.append(ChannelPopulation(hh_sodium(**kw), count=n_na))
    if n_k:
        chans.append(ChannelPopulation(hh_potassium(**kw), count=n_k))
    return Patch(area_um2=10.0, channels=tuple(chans), g_leak_mS_per_cm2=0.3)


@pytest.mark.parametrize("V_clamp", [-60.0, -35.0, -10.0])
def test_clamp_open_fraction_and_binomial_variance(V_clamp):
    """Time-averaged open fractions equal m∞³h∞ and n∞⁴; open-count variance is binomial N p (1 - p)."""
    N, T, dt, M = 1000, 200.0, 0.05, 8
    patch = clamp_patch(N, N)
    means = {"Na": [], "K": []}
    variances = {"Na": [], "K": []}
    for trial in range(M):
        r = si.simulate(patch, si.VoltageStep(V_clamp, holding_mV=V_clamp), t_stop_ms=T, seed=[11, trial],
                        V0_mV=V_clamp, record_dt_ms=dt, record=("open",))
        for name in means:
            x = r.trace[f"n_open_{name}"].to_numpy(float)
            means[name].append(x.mean() / N)
            variances[name].append(x.var(ddof=1))
    for name, scheme in (("Na", hh_sodium()), ("K", hh_potassium())):
        Q = scheme.generator(V_clamp)
        pi, integral = integrated_autocovariance(Q, scheme.open_mask)
        p = pi[scheme.open_mask].sum()
        # closed form of the HH gates: m∞³h∞ and n∞⁴
        expected = _hh_open_probability(name, V_clamp)
        assert p == pytest.approx(expected, rel=1e-9)
        n_samples = int(T / dt) + 1
        var_mean = 2 * integral / (N * T)  # per trial, of the time-averaged open fraction
        se = math.sqrt(var_mean / M)
        z = (np.mean(means[name]) - p) / se
        assert abs(z) < Z, f"{name} at {V_clamp} mV: open fraction {np.mean(means[name]):.6g} vs {p:.6g} (z={z:.2f})"
        # E[sample variance] of an autocorrelated series: (n/(n-1)) (sigma² - Var(mean)) in count units
        sigma2 = N * p * (1 - p)
        expected_s2 = n_samples / (n_samples - 1) * (sigma2 - N * N * var_mean)
        v = np.asarray(variances[name])
        z = (v.mean() - expected_s2) / (v.std(ddof=1) / math.sqrt(M))
        assert abs(z) < Z, f"{name} at {V_clamp} mV: variance {v.mean():.4g} vs binomial {expected_s2:.4g} (z={z:.2f})"


def _hh_open_probability(name, V):
    """m∞³h∞ and n∞⁴ from the textbook HH rate formulas, typed independently of the package."""
    if name == "Na":
        am = 0.1 * (V + 40) / (1 - math.exp(-(V + 40) / 10))
        bm = 4 * math.exp(-(V + 65) / 18)
        ah = 0.07 * math.exp(-(V + 65) / 20)
        bh = 1 / (1 + math.exp(-(V + 35) / 10))
        return (am / (am + bm)) ** 3 * ah / (ah + bh)
    an = 0.01 * (V + 55) / (1 - math.exp(-(V + 55) / 10))
    bn = 0.125 * math.exp(-(V + 65) / 80)
    return (an / (an + bn)) ** 4


def _dwells(events, channel_type, state):
    """Complete dwell times in ``state`` and the state entered next, from single-channel events."""
    ev = events[events["channel_type"] == channel_type].sort_values(["channel_id", "t_ms"], kind="stable")
    durations, nxt = [], []
    for _, g in ev.groupby("channel_id", observed=True):
        t = g["t_ms"].to_numpy()
        to = g["to_state"].astype(str).to_numpy()
        fr = g["from_state"].astype(str).to_numpy()
        entered = np.nonzero(to[:-1] == state)[0]
        for i in entered:
            assert fr[i + 1] == state  # the next event of the channel leaves the state it entered
            durations.append(t[i + 1] - t[i])
            nxt.append(to[i + 1])
    return np.asarray(durations), np.asarray(nxt)


@pytest.mark.parametrize("channel_type,state,V_clamp", [("K", "n2", -30.0), ("Na", "m1h1", -45.0),
                                                        ("Na", "m3h1", -40.0)])
def test_dwell_times_exponential_and_branching_ratios(channel_type, state, V_clamp):
    """Dwell times are exponential with the summed exit rate (KS); exits split in rate ratios (chi-square)."""
    patch = clamp_patch(1000 if channel_type == "Na" else 0, 300 if channel_type == "K" else 0)
    r = si.simulate(patch, si.VoltageStep(V_clamp, holding_mV=V_clamp), t_stop_ms=150.0, seed=7, V0_mV=V_clamp,
                    track_agents=True, record=("open",))
    d, nxt = _dwells(r.channel_events, channel_type, state)
    scheme = hh_sodium() if channel_type == "Na" else hh_potassium()
    rates = {tr.target: tr.rate_per_ms(V_clamp) for tr in scheme.transitions if tr.source == state}
    exit_rate = sum(rates.values())
    assert d.size > 1000
    ks = stats.kstest(d, "expon", args=(0, 1 / exit_rate))
    assert ks.pvalue > P_MIN, f"dwell in {state}: KS p = {ks.pvalue:.2e}, mean {d.mean():.4g} vs {1 / exit_rate:.4g}"
    targets = sorted(rates)
    observed = np.array([(nxt == s).sum() for s in targets])
    expected = observed.sum() * np.array([rates[s] for s in targets]) / exit_rate
    chi = stats.chisquare(observed, expected)
    assert chi.pvalue > P_MIN, f"exits from {state}: {dict(zip(targets, observed))} vs {expected}"


def test_mean_open_count_follows_master_equation_after_voltage_step():
    """After a step from -65 to -20 mV, the mean open counts equal N p(t), p(t) = p0 expm(Q t)."""
    N, M = 1000, 60
    patch = clamp_patch(N, N)
    t_rec = np.array([0.25, 0.5, 1.0, 2.0, 4.0, 8.0])
    protocol = si.VoltageStep(-20.0, holding_mV=-65.0, start_ms=1.0)
    rows = []
    for trial in range(M):
        r = si.simulate(patch, protocol, t_stop_ms=10.0, seed=[21, trial], V0_mV=-65.0, record_dt_ms=0.25,
                        record=("open",))
        tr = r.trace.set_index("t_ms")
        rows.append([tr.loc[1.0 + t, ["n_open_Na", "n_open_K"]].to_numpy(float) for t in t_rec])
    counts = np.asarray(rows)  # trial, time, type
    for k, scheme in enumerate((hh_sodium(), hh_potassium())):
        p0 = scheme.stationary(-65.0)
        p = open_probability_after_step(scheme.generator(-20.0), p0, t_rec, scheme.open_mask)
        se = np.sqrt(N * p * (1 - p) / M)
        z = (counts[:, :, k].mean(axis=0) - N * p) / se
        assert np.all(np.abs(z) < Z), f"{scheme.name}: z = {np.round(z, 2)}"


def _passive_driven_patch(schemes, count):
    """Channels too small to move V (1e-9 pS): V is the exact passive relaxation, the channels feel it."""
    chans = tuple(ChannelPopulation(s, count=count) for s in schemes)
    return Patch(area_um2=100.0, channels=chans, g_leak_mS_per_cm2=1.0, E_leak_mV=-65.0)  # C = 1 pF, g = 1 nS


@pytest.mark.parametrize("I_pA", [65.0, -25.0])
def test_thinning_under_moving_voltage_matches_master_equation(I_pA):
    """Current clamp: V relaxes from -65 mV towards -65 + I/g (tau = 1 ms) through hundreds of grid cells;
    the mean open counts must follow dp/dt = p Q(V(t)) along that path (exactness of the thinning)."""
    N, M = 1000, 40
    schemes = (hh_sodium(g_unit_pS=1e-9), hh_potassium(g_unit_pS=1e-9))
    patch = _passive_driven_patch(schemes, N)
    t_step, t_rec = 1.0, np.array([0.3, 0.7, 1.5, 3.0, 6.0])
    V_inf = -65.0 + I_pA / 1.0
    rows = []
    for trial in range(M):
        r = si.simulate(patch, si.CurrentStep(amplitude_pA=I_pA, start_ms=t_step), t_stop_ms=8.0,
                        seed=[31, trial], V0_mV=-65.0, record_dt_ms=0.1, record=("V", "open"))
        tr = r.trace.set_index(np.round(r.trace["t_ms"].to_numpy(), 6))
        v_check = tr.loc[np.round(t_step + t_rec, 6), "V_mV"].to_numpy()
        np.testing.assert_allclose(v_check, V_inf + (-65.0 - V_inf) * np.exp(-t_rec), atol=1e-6)
        rows.append(tr.loc[np.round(t_step + t_rec, 6), ["n_open_Na", "n_open_K"]].to_numpy(float))
    counts = np.asarray(rows)
    for k, scheme in enumerate(schemes):
        p0 = scheme.stationary(-65.0)
        p = open_probability_along(scheme, 6.3, lambda t: V_inf + (-65.0 - V_inf) * math.exp(-t), p0, t_rec,
                                   scheme.open_mask)
        se = np.sqrt(N * p * (1 - p) / M)
        z = (counts[:, :, k].mean(axis=0) - N * p) / se
        assert np.all(np.abs(z) < Z), f"{scheme.name}, I={I_pA}: z = {np.round(z, 2)}"


def test_nonmonotone_tabulated_rate_under_moving_voltage():
    """A bell-shaped (non-monotone) tabulated rate law is sampled exactly along a voltage path."""
    bell = si.TabulatedRate(lambda V: 2.0 / (np.exp((V + 30) / 8) + np.exp(-(V + 30) / 12)) + 0.05, label="bell")
    scheme = si.MarkovScheme(
        name="X", states=("C", "O"), open_states=("O",),
        transitions=(si.Transition("C", "O", bell), si.Transition("O", "C", si.Constant(0.4))),
        g_unit_pS=1e-9, reversal_mV=0.0, q10=1.0)
    N, M = 2000, 40
    patch = _passive_driven_patch((scheme,), N)
    t_rec = np.array([0.5, 1.0, 2.0, 4.0])
    rows = []
    for trial in range(M):
        r = si.simulate(patch, si.CurrentStep(amplitude_pA=60.0), t_stop_ms=4.0, seed=[41, trial], V0_mV=-65.0,
                        record_dt_ms=0.5, record=("open",))
        rows.append(r.trace.set_index(np.round(r.trace["t_ms"].to_numpy(), 6)).loc[t_rec, "n_open_X"].to_numpy(float))
    p = open_probability_along(scheme, 6.3, lambda t: -5.0 - 60.0 * math.exp(-t), scheme.stationary(-65.0), t_rec,
                               scheme.open_mask)
    z = (np.mean(rows, axis=0) - N * p) / np.sqrt(N * p * (1 - p) / M)
    assert np.all(np.abs(z) < Z), f"z = {np.round(z, 2)}"


def test_split_runs_have_the_same_statistics():
    """advance_to in many pieces gives the same distribution as one piece (two-sample z and KS tests)."""
    patch = si.hh_patch(20.0)
    I = si.membrane.uA_per_cm2_to_pA(4.0, 20.0)
    M = 120
    whole, pieces = [], []
    for trial in range(M):
        a = si.PatchSimulation(patch, seed=[51, trial])
        a.advance_to(30.0, current_pA=I)
        whole.append((a.V_mV, a.n_events))
        b = si.PatchSimulation(patch, seed=[52, trial])
        for t in np.linspace(0.37, 30.0, 81):
            b.advance_to(float(t), current_pA=I)
        pieces.append((b.V_mV, b.n_events))
    whole, pieces = np.asarray(whole), np.asarray(pieces)
    for k, what in enumerate(("final V", "event count")):
        x, y = whole[:, k], pieces[:, k]
        z = (x.mean() - y.mean()) / math.sqrt(x.var(ddof=1) / M + y.var(ddof=1) / M)
        assert abs(z) < Z, f"{what}: {x.mean():.4g} vs {y.mean():.4g} (z = {z:.2f})"
        assert stats.ks_2samp(x, y).pvalue > P_MIN, what
