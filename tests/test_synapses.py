"""Synaptic input through ligand-gated channels: the AMPA scheme, transmitter release, summation.

The receptors of a synapse are independent and start unbound, so the open count at any time is binomial
``(N, p_open(t))`` with ``p_open`` from the master equation of the scheme under the square transmitter pulse:
the mean over M trials is tested with SE ``sqrt(N p (1-p) / M)`` at |z| < 4 (two-sided p = 6.3e-5 per check;
about 30 checks here, family-wise < 0.2 %). The rates in the reference generator are typed from the paper,
independently of the package.
"""

import math

import numpy as np
import pytest
from scipy.linalg import expm

import stochion as si
from stochion.membrane import ChannelPopulation, Patch
from stochion.protocols import protocol_seed_sequence

Z = 4.0
STATES = ("C0", "C1", "C2", "D1", "D2", "O")


def reference_generator(T_mM):
    """Q (1/ms) of the six-state AMPA scheme of Destexhe, Mainen & Sejnowski (1998) at transmitter T (mM)."""
    Rb, Ru1, Ru2, Rd, Rr, Ro, Rc = 13.0, 0.0059, 86.0, 0.9, 0.064, 2.7, 0.2
    i = {s: k for k, s in enumerate(STATES)}
    Q = np.zeros((6, 6))
    for a, b, r in [("C0", "C1", Rb * T_mM), ("C1", "C0", Ru1), ("C1", "C2", Rb * T_mM), ("C2", "C1", Ru2),
                    ("C1", "D1", Rd), ("D1", "C1", Rr), ("C2", "D2", Rd), ("D2", "C2", Rr), ("C2", "O", Ro),
                    ("O", "C2", Rc)]:
        Q[i[a], i[b]] = r
    Q[np.diag_indices(6)] = -Q.sum(axis=1)
    return Q


def p_open(t, releases, *, conc=1.0, pulse=1.0):
    """Open probability at times t after square pulses starting at ``releases`` (concentrations add)."""
    t = np.atleast_1d(np.asarray(t, float))
    edges = sorted({0.0, *releases, *[r + pulse for r in releases]})
    out = np.zeros(t.size)
    for k, tk in enumerate(t):
        p = np.eye(6)[0]
        for a, b in zip(edges, edges[1:] + [math.inf]):
            if tk <= a:
                break
            c = conc * sum(1 for r in releases if r <= a < r + pulse)
            p = p @ expm(reference_generator(c) * (min(b, tk) - a))
        out[k] = p[-1]
    return out


def synapse_patch(counts, *, area=100.0, extra=()):
    chans = tuple(extra) + tuple(ChannelPopulation(si.ampa_receptor(f"AMPA_{i + 1}"), count=n)
                                 for i, n in enumerate(counts))
    return Patch(area_um2=area, channels=chans, g_leak_mS_per_cm2=0.3, E_leak_mV=-65.0)


def test_ampa_scheme_matches_the_published_kinetics():
    s = si.ampa_receptor("AMPA_3")
    assert s.name == "AMPA_3" and s.states == STATES and s.open_states == ("O",)
    assert s.g_unit_pS == 10.0 and s.reversal_mV == 0.0 and s.ligands == ("glutamate",)
    for conc in (0.0, 0.3, 1.0):
        np.testing.assert_allclose(s.generator(-65.0, ligand_mM=conc), reference_generator(conc), rtol=1e-15)
        np.testing.assert_allclose(s.generator(20.0, ligand_mM=conc), reference_generator(conc), rtol=1e-15)
    np.testing.assert_array_equal(s.stationary(-65.0), np.eye(6)[0])  # no transmitter: all unbound
    assert "10.1152/jn.1994.71.6.2552" in s.reference
    two = si.ampa_receptor("A", kinetics="destexhe1994")
    assert two.states == ("C", "O")
    np.testing.assert_allclose(two.generator(0.0, ligand_mM=1.0), [[-1.1, 1.1], [0.19, -0.19]])
    assert "10.1162/neco.1994.6.1.14" in two.reference
    with pytest.raises(ValueError, match="kinetics must be one of"):
        si.ampa_receptor(kinetics="fast")
    with pytest.raises(ValueError, match="g_unit_pS must be finite and > 0, got -1.0"):
        si.ampa_receptor(g_unit_pS=-1.0)


def test_single_release_conductance_follows_the_master_equation():
    """One release (1 mM, 1 ms): mean open count over trials vs N p_open(t), exact method; the deterministic
    method gives N p_open(t) to the solver tolerance; conductance is open count × 10 pS."""
    N, M = 400, 150
    patch = synapse_patch([N])
    release = si.TransmitterRelease(synapse="AMPA_1", times_ms=(1.0,))
    t_check = np.array([1.2, 1.6, 2.0, 3.0, 5.0, 8.0])
    rows = []
    for k in range(M):
        r = si.simulate(patch, release, t_stop_ms=8.0, seed=[101, k], record_dt_ms=0.2, record=("open", "V"))
        tr = r.trace.set_index(np.round(r.trace["t_ms"].to_numpy(), 6))
        rows.append(tr.loc[t_check, "n_open_AMPA_1"].to_numpy(float))
    p = p_open(t_check, [1.0])
    z = (np.mean(rows, axis=0) - N * p) / np.sqrt(N * p * (1 - p) / M)
    assert np.all(np.abs(z) < Z), np.round(z, 2)
    assert p.max() > 0.1  # a real response: peak open probability 0.17
    det = si.simulate(patch, release, t_stop_ms=8.0, method="deterministic", record_dt_ms=0.1)
    tr = det.trace
    np.testing.assert_allclose(tr["n_open_AMPA_1"], N * p_open(tr["t_ms"].to_numpy(), [1.0]), rtol=1e-6, atol=1e-6)
    g_nS = tr["n_open_AMPA_1"] * 0.01
    np.testing.assert_allclose(tr["I_AMPA_1_pA"], g_nS * tr["V_mV"], rtol=1e-12)  # E_rev = 0 mV
    rel = det.protocol
    assert rel[["t_ms", "action", "target", "value", "unit"]].values.tolist() == [
        [1.0, "ligand", "AMPA_1", 1.0, "mM"], [2.0, "ligand", "AMPA_1", 0.0, "mM"]]


def test_several_synapses_and_releases_sum():
    """Three synapses with their own clefts: single release at 1 ms; two releases 3 ms apart (temporal
    summation); overlapping pulses 0.5 ms apart (concentrations add). Each follows its own master equation
    and the total open count is their sum (exact method, binomial SEs)."""
    N, M = (200, 200, 200), 150
    patch = synapse_patch(N)
    protocol = [si.TransmitterRelease(synapse="AMPA_1", times_ms=(1.0,)),
                si.RegularRelease(synapse="AMPA_2", start_ms=2.0, interval_ms=3.0, n_releases=2),
                si.TransmitterRelease(synapse="AMPA_3", times_ms=(1.0, 1.5))]
    releases = ([1.0], [2.0, 5.0], [1.0, 1.5])
    t_check = np.array([1.4, 1.8, 2.4, 3.0, 5.6, 7.0, 9.0])
    counts = []
    for k in range(M):
        r = si.simulate(patch, protocol, t_stop_ms=9.0, seed=[102, k], record_dt_ms=0.2, record=("open",))
        tr = r.trace.set_index(np.round(r.trace["t_ms"].to_numpy(), 6))
        counts.append(tr.loc[t_check, ["n_open_AMPA_1", "n_open_AMPA_2", "n_open_AMPA_3"]].to_numpy(float))
    counts = np.asarray(counts)  # trial, time, synapse
    p = np.stack([p_open(t_check, rel) for rel in releases], axis=-1)
    var = np.asarray(N) * p * (1 - p)
    silent = p == 0  # AMPA_2 before its first release: nothing may open
    assert silent.sum() == 2 and np.all(counts[:, silent] == 0)
    z = (counts.mean(axis=0)[~silent] - (np.asarray(N) * p)[~silent]) / np.sqrt(var[~silent] / M)
    assert np.all(np.abs(z) < Z), np.round(z, 2)
    total = counts.sum(axis=-1)
    z = (total.mean(axis=0) - (np.asarray(N) * p).sum(axis=-1)) / np.sqrt(var.sum(axis=-1) / M)
    assert np.all(np.abs(z) < Z), np.round(z, 2)
    # the overlapping pulses reached 2 mM in AMPA_3's cleft and came back to 0 exactly
    lig = r.protocol[r.protocol["target"] == "AMPA_3"]
    assert lig["value"].tolist() == [1.0, 2.0, 1.0, 0.0] and lig["t_ms"].tolist() == [1.0, 1.5, 2.0, 2.5]


def test_graded_potentials_sum_to_threshold():
    """HH patch with five synapses of 10 receptors (deterministic limit): the conductance of k synapses
    released together is k times one synapse's; EPSPs grow with k and three reach threshold, two do not."""
    hh = si.hh_patch(100.0)
    patch = Patch(area_um2=100.0, channels=hh.channels + tuple(
        ChannelPopulation(si.ampa_receptor(f"AMPA_{i + 1}"), count=10) for i in range(5)),
        g_leak_mS_per_cm2=0.3, E_leak_mV=-54.387)
    peaks, spikes, g = [], [], []
    for k in range(1, 5):
        protocol = [si.TransmitterRelease(synapse=f"AMPA_{i + 1}", times_ms=(2.0,)) for i in range(k)]
        r = si.simulate(patch, protocol, t_stop_ms=15.0, method="deterministic", record_dt_ms=0.05)
        tr = r.trace
        peaks.append(tr["V_mV"].max() - tr["V_mV"].iloc[0])
        spikes.append(len(r.spikes))
        g.append(sum(tr[f"n_open_AMPA_{i + 1}"] for i in range(5)).to_numpy() * 0.01)
        for i in range(k, 5):
            assert (tr[f"n_open_AMPA_{i + 1}"] == 0).all()  # clefts are separate
    for k in range(2, 5):
        np.testing.assert_allclose(g[k - 1], k * g[0], rtol=1e-6, atol=1e-9)
    assert spikes == [0, 0, 1, 1]
    assert 0.5 < peaks[0] < peaks[1] < 10.0 < peaks[2]  # measured 1.5 and 3.3 mV, then a spike


def test_poisson_release_uses_its_documented_stream():
    patch = synapse_patch([50])
    protocol = [si.CurrentStep(amplitude_pA=0.0), si.PoissonRelease(synapse="AMPA_1", rate_hz=100.0, pulse_ms=0.5)]
    r = si.simulate(patch, protocol, t_stop_ms=200.0, seed=5, record_dt_ms=1.0, record=("open",))
    expected = protocol[1].release_times_ms(t_stop_ms=200.0, seed=protocol_seed_sequence(5, 1))
    assert 5 < expected.size < 40
    rows = r.protocol[(r.protocol["source"] == "PoissonRelease") & (r.protocol["value"] > 0)]
    np.testing.assert_array_equal(rows["t_ms"].to_numpy(), expected)
    assert r.trace["n_open_AMPA_1"].max() > 0
    again = si.simulate(patch, protocol, t_stop_ms=200.0, seed=6, record_dt_ms=1.0, record=("open",))
    assert not np.array_equal(again.protocol["t_ms"], r.protocol["t_ms"])


def test_deterministic_set_ligand_mirrors_the_engine():
    patch = synapse_patch([10], extra=(ChannelPopulation(si.hh_sodium(), count=10),))
    for sim in (si.PatchSimulation(patch, seed=1), si.DeterministicSimulation(patch)):
        with pytest.raises(ValueError, match="set_ligand_mM: unknown channel type 'X'"):
            sim.set_ligand_mM({"X": 1.0})
        with pytest.raises(ValueError, match="channel type 'Na' has no ligand-binding transition"):
            sim.set_ligand_mM({"Na": 1.0})
        with pytest.raises(ValueError, match=r"ligand concentration of 'AMPA_1' \(mM\) must be finite and in"):
            sim.set_ligand_mM({"AMPA_1": -1.0})
        sim.set_ligand_mM({"AMPA_1": 1.0})
        sim.advance_to(1.0, clamp_mV=-65.0)
        sim.set_ligand_mM({"AMPA_1": 0.0})
        sim.advance_to(3.0, clamp_mV=-65.0)
    det = sim  # the clamp segments are solved exactly (matrix exponential): compare with the reference
    p = det.occupancy[det.lowered.type_slice(det.lowered.type_names.index("AMPA_1"))]
    np.testing.assert_allclose(p, np.eye(6)[0] @ expm(reference_generator(1.0)) @ expm(reference_generator(0.0) * 2),
                               rtol=1e-9, atol=1e-12)
