"""Engine behaviour: reproducibility, agents, conservation, recording, bad input."""

import math

import numpy as np
import pandas as pd
import pytest

import stochion as si
from stochion.membrane import ChannelPopulation, Patch, uA_per_cm2_to_pA


def test_hh_patch_parameters():
    p = si.hh_patch(100.0)
    assert p.channel_counts == {"Na": 6000, "K": 1800}
    assert p.capacitance_pF == pytest.approx(1.0) and p.g_leak_nS == pytest.approx(0.3)
    assert p.resting_potential_mV() == pytest.approx(-65.0, abs=0.01)
    agents = si.hh_patch(100.0, leak="agents")
    assert agents.g_leak_nS == 0 and agents.channel_counts["leak"] == 300  # 3 pS/µm² of 2 pS channels, p = 0.5
    assert agents.resting_potential_mV() == pytest.approx(-65.0, abs=0.01)
    warm = si.hh_patch(100.0, temperature_celsius=18.5)
    assert warm.temperature_celsius == 18.5


def test_same_seed_is_bit_identical_and_different_seed_differs():
    patch = si.hh_patch(30.0)
    runs = [si.simulate(patch, si.CurrentStep(amplitude_uA_cm2=8.0), t_stop_ms=30.0, seed=s) for s in (5, 5, 6)]
    pd.testing.assert_frame_equal(runs[0].trace, runs[1].trace, check_exact=True)
    pd.testing.assert_frame_equal(runs[0].spikes, runs[1].spikes, check_exact=True)
    assert not runs[0].trace["V_mV"].equals(runs[2].trace["V_mV"])


def test_agents_do_not_change_the_count_trajectory_and_stay_consistent():
    patch = si.hh_patch(10.0, leak="agents")
    plain = si.simulate(patch, si.CurrentStep(amplitude_uA_cm2=10.0), t_stop_ms=25.0, seed=9, record=("V", "states"))
    tracked = si.simulate(patch, si.CurrentStep(amplitude_uA_cm2=10.0), t_stop_ms=25.0, seed=9, record=("V", "states"),
                          track_agents=True)
    pd.testing.assert_frame_equal(plain.trace, tracked.trace, check_exact=True)
    ev = tracked.channel_events
    assert len(ev) == tracked.provenance["n_events"] > 1000
    assert set(ev.columns) == {"trial", "channel_type", "channel_id", "t_ms", "from_state", "to_state", "V_mV"}
    assert ev["t_ms"].is_monotonic_increasing
    # replaying the single-channel records from the initial states reproduces the recorded counts
    sim = si.PatchSimulation(patch, seed=9, track_agents=True)
    start = sim.counts.copy()
    sim.advance_to(25.0, current_pA=uA_per_cm2_to_pA(10.0, 10.0))
    np.testing.assert_array_equal(sim.agent_counts(), sim.counts)
    L = sim.lowered
    for k in range(len(L.type_names)):
        assert sim.counts[L.type_slice(k)].sum() == L.n_channels[k]  # conserved
    final_from_events = start.copy()
    label_index = {lab: i for i, lab in enumerate(L.state_labels)}
    for row in ev.itertuples():
        final_from_events[label_index[(row.channel_type, row.from_state)]] -= 1
        final_from_events[label_index[(row.channel_type, row.to_state)]] += 1
    np.testing.assert_array_equal(final_from_events, sim.counts)
    # every channel's events chain: each event leaves the state the previous one entered
    for _, g in ev.groupby(["channel_type", "channel_id"], observed=True):
        assert (g["from_state"].to_numpy()[1:] == g["to_state"].to_numpy()[:-1]).all()


def test_trace_columns_grid_and_currents():
    patch = si.hh_patch(50.0)
    r = si.simulate(patch, si.CurrentStep(amplitude_uA_cm2=10.0, start_ms=1.0, duration_ms=2.0), t_stop_ms=10.0,
                    seed=1, record_dt_ms=0.1)
    tr = r.trace
    assert list(tr.columns) == ["trial", "t_ms", "V_mV", "n_open_Na", "I_Na_pA", "n_open_K", "I_K_pA", "I_leak_pA",
                                "I_stim_pA"]
    np.testing.assert_allclose(tr["t_ms"], np.arange(101) * 0.1, atol=1e-12)
    on = (tr["t_ms"] >= 1.0) & (tr["t_ms"] < 3.0)
    assert (tr.loc[on, "I_stim_pA"] == 5.0).all() and (tr.loc[~on, "I_stim_pA"] == 0.0).all()
    np.testing.assert_allclose(tr["I_Na_pA"], tr["n_open_Na"] * 0.02 * (tr["V_mV"] - 50.0))
    np.testing.assert_allclose(tr["I_leak_pA"], 0.15 * (tr["V_mV"] + 54.387))
    prov = r.provenance
    for key in ("seed", "versions", "patch", "schedule", "n_events", "wall_s", "cpu_s"):
        assert key in prov
    assert prov["versions"]["stochion"] == si.__version__


def test_spike_times_are_exact_level_crossings():
    r = si.simulate(si.hh_patch(2000.0), si.CurrentStep(amplitude_uA_cm2=10.0), t_stop_ms=30.0, seed=2,
                    record_dt_ms=0.01)
    assert len(r.spikes) >= 2
    tr = r.trace
    for t, peak in zip(r.spikes["t_ms"], r.spikes["peak_mV"]):
        before = tr[tr["t_ms"] <= t].iloc[-1]
        after = tr[tr["t_ms"] > t].iloc[0]
        assert before["V_mV"] < 0.0 <= after["V_mV"]
        assert peak >= tr[(tr["t_ms"] > t) & (tr["t_ms"] < t + 2)]["V_mV"].max() - 1e-9
    # the exact crossing with the re-arm rule: another level gives later crossings
    r2 = si.simulate(si.hh_patch(2000.0), si.CurrentStep(amplitude_uA_cm2=10.0), t_stop_ms=30.0, seed=2,
                     record_dt_ms=0.01, spike_level_mV=20.0, rearm_mV=-30.0)
    assert len(r2.spikes) == len(r.spikes) and (r2.spikes["t_ms"] > r.spikes["t_ms"]).all()


def test_voltage_clamp_current_and_given_initial_states():
    patch = si.hh_patch(100.0)
    init = {"Na": {"m0h1": 6000}, "K": {"n0": 1800}}
    r = si.simulate(patch, si.VoltageStep(-10.0, holding_mV=-80.0, start_ms=1.0), t_stop_ms=5.0, seed=3,
                    initial_states=init, V0_mV=-80.0)
    tr = r.trace
    assert tr.loc[0, "n_open_Na"] == 0 and tr.loc[0, "n_open_K"] == 0
    assert set(tr.loc[tr["t_ms"] < 1.0, "V_mV"]) == {-80.0}
    ionic = tr["I_Na_pA"] + tr["I_K_pA"] + tr["I_leak_pA"]
    np.testing.assert_allclose(tr["I_clamp_pA"], ionic)
    assert tr.loc[(tr["t_ms"] > 1.2) & (tr["t_ms"] < 2.0), "I_clamp_pA"].min() < -100  # inward Na current


def test_save_parquet_and_csv(tmp_path):
    r = si.simulate(si.hh_patch(5.0), si.VoltageStep(0.0, start_ms=1.0), t_stop_ms=3.0, seed=1, track_agents=True)
    paths = r.save(tmp_path / "run.parquet")
    back = pd.read_parquet(paths[0])
    pd.testing.assert_frame_equal(back, r.trace)
    assert pd.read_parquet(tmp_path / "run_channel_events.parquet").shape == r.channel_events.shape
    r.save(tmp_path / "run.csv")
    assert (tmp_path / "run_provenance.json").exists() and (tmp_path / "run_spikes.csv").exists()
    with pytest.raises(ValueError, match=r"\.parquet or \.csv"):
        r.save(tmp_path / "run.txt")


@pytest.mark.parametrize("make,match", [
    (lambda: si.hh_patch(0.0), "area_um2 must be finite and > 0, got 0.0"),
    (lambda: si.hh_patch(-5.0), "area_um2"),
    (lambda: si.hh_patch(math.nan), "area_um2"),
    (lambda: si.hh_patch(10.0, na_density_per_um2=-1.0), "density_per_um2 must be finite and >= 0, got -1.0"),
    (lambda: si.hh_patch(10.0, leak="none"), "leak must be 'constant' or 'agents'"),
    (lambda: si.hh_patch(10.0, temperature_celsius=80.0), "temperature_celsius"),
    (lambda: ChannelPopulation(si.hh_sodium(), density_per_um2=1.0, count=3), "exactly one"),
    (lambda: si.CurrentStep(amplitude_pA=math.inf), "amplitude_pA must be finite"),
    (lambda: si.CurrentStep(amplitude_uA_cm2=1.0, duration_ms=-1.0), "duration_ms"),
    (lambda: si.VoltageStep(500.0), "step_mV must lie in"),
    (lambda: si.simulate(si.hh_patch(10.0), t_stop_ms=0.0, seed=1), "t_stop_ms must be finite and > 0, got 0.0"),
    (lambda: si.simulate(si.hh_patch(10.0), t_stop_ms=-3.0, seed=1), "t_stop_ms"),
    (lambda: si.simulate(si.hh_patch(10.0), t_stop_ms=1.0, method="euler"), "method must be one of"),
    (lambda: si.simulate(si.hh_patch(10.0), t_stop_ms=1.0, record=("V", "gates")), "record may contain"),
    (lambda: si.simulate(si.hh_patch(10.0), t_stop_ms=1.0, record_dt_ms=0.0), "record_dt_ms"),
    (lambda: si.simulate(si.hh_patch(10.0), t_stop_ms=1.0, initial_states={"Na": {"m0h0": 1}, "K": {"n0": 180}}),
     "places 1 channels, but the patch has 600"),
    (lambda: si.simulate(si.hh_patch(10.0), t_stop_ms=1.0, initial_states={"Na": {"zz": 600}, "K": {"n0": 180}}),
     "unknown state 'zz'"),
    (lambda: si.PatchSimulation(si.hh_patch(10.0), seed=1).advance_to(math.nan), "t_ms must be finite"),
    (lambda: si.PatchSimulation(si.hh_patch(10.0), seed=1).advance_to(1.0, current_pA=math.inf), "current_pA"),
    (lambda: si.PatchSimulation(si.hh_patch(10.0), seed=1, spike_level_mV=-30.0, rearm_mV=-20.0), "rearm_mV"),
])
def test_bad_input_raises_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_time_cannot_go_backwards():
    sim = si.PatchSimulation(si.hh_patch(10.0), seed=1)
    sim.advance_to(2.0)
    with pytest.raises(ValueError, match="before the present time"):
        sim.advance_to(1.0)


def test_runaway_voltage_is_a_clear_error():
    with pytest.raises(si.VoltageRunawayError, match=r"left the simulated range -150.0..100.0 mV.*pA injected"):
        si.simulate(si.hh_patch(10.0), si.CurrentStep(amplitude_uA_cm2=5000.0), t_stop_ms=5.0, seed=1)
    with pytest.raises(si.VoltageRunawayError):
        si.simulate(si.hh_patch(10.0), si.CurrentStep(amplitude_uA_cm2=-5000.0), t_stop_ms=5.0, seed=1)


def test_zero_channels_on_tiny_area_still_runs_with_leak():
    patch = Patch(area_um2=0.001, channels=(ChannelPopulation(si.hh_sodium(), density_per_um2=60.0),),
                  g_leak_mS_per_cm2=0.3)
    r = si.simulate(patch, si.CurrentStep(amplitude_pA=0.0), t_stop_ms=1.0, seed=1)
    np.testing.assert_allclose(r.trace["V_mV"], -54.387, atol=1e-9)
    with pytest.raises(ValueError, match="no conductance"):
        Patch(area_um2=0.001, channels=(ChannelPopulation(si.hh_sodium(), density_per_um2=60.0),))


def test_results_do_not_depend_on_buffer_size_bit_for_bit(monkeypatch):
    """Pausing the kernel (full event buffer) carries every running total over: the run is bit-identical."""
    import stochion.engine as engine

    patch = si.hh_patch(10.0)
    runs = []
    for cap in (1000, 1 << 18):
        monkeypatch.setattr(engine, "_EVENT_BUFFER", cap)
        runs.append(si.simulate(patch, si.CurrentStep(amplitude_uA_cm2=9.0), t_stop_ms=20.0, seed=4,
                                track_agents=True))
    assert len(runs[0].channel_events) > 5000
    pd.testing.assert_frame_equal(runs[0].channel_events, runs[1].channel_events, check_exact=True)
    pd.testing.assert_frame_equal(runs[0].trace, runs[1].trace, check_exact=True)


def test_voltage_settling_exactly_on_the_spike_level():
    from stochion.channels import leak_channel

    patch = Patch(area_um2=1.0, channels=(ChannelPopulation(leak_channel(reversal_mV=0.0, tau_ms=1e6), count=1),),
                  g_leak_mS_per_cm2=0.3, E_leak_mV=0.0)
    sim = si.PatchSimulation(patch, seed=1, V0_mV=-10.0)
    sim.advance_to(5000.0)
    assert -1e-9 < sim.V_mV <= 0.0


def test_batched_trials_equal_single_runs_bit_for_bit():
    """run_trials (parallel, one compiled call) reproduces PatchSimulation trial by trial, whatever the order."""
    from stochion.engine import run_trials

    patch = si.hh_patch(60.0)
    seeds = [np.random.SeedSequence(77, spawn_key=(k,)) for k in range(6)]
    t_end, mode, value = np.array([2.0, 3.0, 15.0]), np.array([0, 0, 0]), np.array([0.0, 6.0, 0.0])
    out = run_trials(patch, t_end, mode, value, seeds, record=True, record_dt_ms=0.05, spike_capacity=1)
    rev = run_trials(patch, t_end, mode, value, seeds[::-1], record=False)
    for k, ss in enumerate(seeds):
        sim = si.PatchSimulation(patch, seed=ss, record_dt_ms=0.05)
        sim.run_segments(t_end, mode, value)
        V = np.concatenate([c[1] for c in sim._rec_chunks])
        np.testing.assert_array_equal(V, out.record_V_mV[k])
        spikes = np.concatenate([c[0] for c in sim._spk_chunks] + [np.zeros(0)])
        if sim.open_spike() is not None:
            spikes = np.append(spikes, sim.open_spike()[0])
        np.testing.assert_array_equal(spikes, out.spike_t_ms[k])
        np.testing.assert_array_equal(out.spike_t_ms[k], rev.spike_t_ms[len(seeds) - 1 - k])
        assert sim.n_events == out.n_events[k] and sim.max_V_mV == out.max_V_mV[k]
    assert sum(len(s) for s in out.spike_t_ms) >= 2  # the resumed spike buffer (capacity 1) was exercised
