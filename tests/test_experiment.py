"""The simpy experiment layer: lazy advancement, agreement with the schedule and batched paths, closed loops.

Statistical checks are two-sample z-tests with standard errors from the samples themselves (two-proportion
test for firing probabilities), plus KS tests, at |z| < 4 / p > 1e-4 (about 10 checks here: family-wise false
alarm < 0.1 %). Seeds are fixed; the thresholds make the tests meaningful for any seed.
"""

import math

import numpy as np
import pandas as pd
import pytest
import simpy
from scipy import stats

import stochion as si
from stochion.engine import run_trials

Z = 4.0
P_MIN = 1e-4


def two_sample_z(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    return (x.mean() - y.mean()) / math.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)


def two_proportion_z(k1, n1, k2, n2):
    p = (k1 + k2) / (n1 + n2)
    return (k1 / n1 - k2 / n2) / math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))


# -- the open-loop paths agree exactly ------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["exact", "deterministic"])
def test_experiment_reproduces_the_schedule_path_bit_for_bit(method):
    """Same seed, same segments: the simpy path gives the schedule path's spikes (bit for bit), trace and
    protocol table. Trace samples that fall exactly on a change of conditions may differ in the last bit: the
    kernel re-evaluates the relaxation at zero elapsed time there in a one-call run."""
    patch = si.hh_patch(30.0)
    protocol = [si.CurrentStep(amplitude_uA_cm2=2.0, start_ms=0.0),
                si.PulseTrain(amplitude_uA_cm2=15.0, start_ms=2.0, duration_ms=0.5, interval_ms=12.0, n_pulses=3),
                si.NoisyCurrent(mean_uA_cm2=0.0, sigma_uA_cm2=1.0, tau_ms=2.0, dt_ms=0.5, start_ms=5.0,
                                duration_ms=20.0),
                si.VoltageClamp(levels_mV=(-70.0, -20.0), durations_ms=(2.0, 1.0), holding_mV=None, start_ms=30.0)]
    fast = si.simulate(patch, protocol, t_stop_ms=40.0, seed=7, method=method, record_dt_ms=0.05)
    exp = si.Experiment(patch, protocol, seed=7, method=method, record_dt_ms=0.05)
    slow = exp.run(40.0)
    assert fast.provenance["path"] == "schedule" and slow.provenance["path"] == "experiment"
    assert len(fast.spikes) >= 2
    pd.testing.assert_frame_equal(fast.spikes, slow.spikes, check_exact=True)
    pd.testing.assert_frame_equal(fast.trace, slow.trace, check_exact=False, rtol=1e-13, atol=1e-11)
    pd.testing.assert_frame_equal(fast.protocol, slow.protocol, check_exact=True)
    # the kernel was called once per change of conditions (a segment of the schedule), not per event
    assert exp.n_kernel_calls == len(fast.provenance["schedule"]["t_end_ms"])
    assert set(slow.protocol["action"]) == {"current", "clamp", "clamp_off"}
    assert fast.provenance["protocol"] and fast.provenance["seed"] == slow.provenance["seed"]


def _probe(experiment, *, every_ms):
    """A process that reads the membrane voltage every ``every_ms``: forces the kernel to stop there."""
    while True:
        yield experiment.env.timeout(every_ms)
        experiment.V_mV


def test_lazy_advancement_in_many_pieces_has_the_statistics_of_one_segment():
    """A near-threshold constant current in one kernel call vs the same run cut into ~70 pieces by a probe
    process: spike counts, first-spike times, final voltages and event counts agree (two-sample z and KS)."""
    patch = si.hh_patch(20.0)
    step = si.CurrentStep(amplitude_uA_cm2=4.0)
    M, T = 100, 25.0
    whole, pieces, calls = [], [], []
    for k in range(M):
        r = si.simulate(patch, step, t_stop_ms=T, seed=[51, k], record=("V",), record_dt_ms=1.0)
        whole.append((len(r.spikes), r.spikes["t_ms"].min() if len(r.spikes) else T, r.trace["V_mV"].iloc[-1],
                      r.provenance["n_events"]))
        exp = si.Experiment(patch, step, seed=[52, k], record=("V",), record_dt_ms=1.0)
        exp.process(_probe, every_ms=0.37)
        r = exp.run(T)
        pieces.append((len(r.spikes), r.spikes["t_ms"].min() if len(r.spikes) else T, r.trace["V_mV"].iloc[-1],
                       r.provenance["n_events"]))
        calls.append(exp.n_kernel_calls)
    assert min(calls) >= 65
    whole, pieces = np.asarray(whole), np.asarray(pieces)
    assert whole[:, 0].std() > 0.3 and whole[:, 1].std() > 1.0  # spike count and latency really vary
    for j, what in enumerate(("spike count", "first spike", "final V", "events")):
        z = two_sample_z(whole[:, j], pieces[:, j])
        assert abs(z) < Z, f"{what}: {whole[:, j].mean():.4g} vs {pieces[:, j].mean():.4g} (z = {z:.2f})"
        assert stats.ks_2samp(whole[:, j], pieces[:, j]).pvalue > P_MIN, what


def test_simpy_path_agrees_with_the_batched_fast_path():
    """Near-threshold 0.5 ms pulse: run_trials (the protocol's schedule) vs Experiment with a closed-loop stop
    at the first spike. Same seeds: bit-identical first spikes. Other seeds: the same firing probability and
    latency distribution."""
    patch = si.hh_patch(30.0)
    pulse = si.CurrentPulse(amplitude_uA_cm2=14.0, start_ms=1.0, duration_ms=0.5)
    T, M = 12.0, 300
    sch = pulse.schedule(T, patch.area_um2)
    batch = run_trials(patch, sch.t_end_ms, sch.mode, sch.value, [np.random.SeedSequence([61, k]) for k in range(M)])
    b_fired = np.array([s.size > 0 for s in batch.spike_t_ms])
    b_lat = np.array([s[0] for s in batch.spike_t_ms if s.size])
    for k in range(20):
        r = si.simulate(patch, [pulse, si.StopAfterSpikes()], t_stop_ms=T, seed=np.random.SeedSequence([61, k]),
                        record=("V",))
        np.testing.assert_array_equal(r.spikes["t_ms"].to_numpy(), batch.spike_t_ms[k][:1])
    fired, lat = [], []
    for k in range(M // 2):
        r = si.simulate(patch, [pulse, si.StopAfterSpikes()], t_stop_ms=T, seed=[62, k], record=("V",),
                        record_dt_ms=0.5)
        fired.append(len(r.spikes) > 0)
        if len(r.spikes):
            lat.append(r.spikes["t_ms"].iloc[0])
            assert r.provenance["t_stop_ms"] == r.spikes["t_ms"].iloc[0]
    assert 0.2 < b_fired.mean() < 0.8
    z = two_proportion_z(b_fired.sum(), b_fired.size, sum(fired), len(fired))
    assert abs(z) < Z, f"firing probability {b_fired.mean():.3f} vs {np.mean(fired):.3f} (z = {z:.2f})"
    z = two_sample_z(b_lat, lat)
    assert abs(z) < Z, f"latency {b_lat.mean():.4f} vs {np.mean(lat):.4f} ms (z = {z:.2f})"
    assert stats.ks_2samp(b_lat, lat).pvalue > P_MIN


# -- closed loop ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["exact", "deterministic"])
def test_pulse_five_ms_after_each_spike_lands_exactly_there(method):
    """A train drives spikes; a spike-triggered pulse follows each exact crossing time by exactly 5 ms."""
    patch = si.hh_patch(50.0)
    drive = si.PulseTrain(amplitude_uA_cm2=30.0, start_ms=1.0, duration_ms=0.5, interval_ms=15.0, n_pulses=4)
    follow = si.SpikeTriggeredPulse(amplitude_uA_cm2=7.0, delay_ms=5.0, duration_ms=1.0)
    r = si.simulate(patch, [drive, follow], t_stop_ms=60.0, seed=3, method=method, record_dt_ms=0.05)
    assert r.provenance["path"] == "experiment"
    spikes = r.spikes["t_ms"].to_numpy()
    assert len(spikes) >= 3
    rows = r.protocol[r.protocol["source"] == "SpikeTriggeredPulse"]
    on = rows.loc[rows["value"] > 0, "t_ms"].to_numpy()
    off = rows.loc[rows["value"] == 0, "t_ms"].to_numpy()
    expected_on = spikes + 5.0
    np.testing.assert_array_equal(on, expected_on[expected_on < 60.0])  # exact float equality
    np.testing.assert_array_equal(off, (expected_on + 1.0)[expected_on + 1.0 < 60.0])
    # the trace carries the pulses: 7 µA/cm² on 50 µm² is 3.5 pA
    tr = r.trace
    for t in on:
        inside = (tr["t_ms"] >= t) & (tr["t_ms"] < t + 1.0)
        assert np.allclose(tr.loc[inside, "I_stim_pA"], 3.5)


def test_stop_after_the_first_spike_stops_at_the_crossing():
    patch = si.hh_patch(30.0)
    step = si.CurrentStep(amplitude_uA_cm2=10.0, start_ms=2.0)
    free = si.simulate(patch, step, t_stop_ms=40.0, seed=11)
    exp = si.Experiment(patch, [step, si.StopAfterSpikes(n_spikes=1)], seed=11)
    r = exp.run(40.0)
    t_cross = free.spikes["t_ms"].iloc[0]
    assert len(free.spikes) >= 2
    assert r.spikes["t_ms"].tolist() == [t_cross]  # the same crossing, bit for bit
    assert exp.membrane.t_ms == t_cross and exp.membrane.V_mV == 0.0 and exp.env.now == t_cross
    assert r.provenance["t_stop_ms"] == t_cross and r.provenance["stopped_by"] == "StopAfterSpikes"
    assert r.trace["t_ms"].max() < t_cross
    stop = r.protocol[r.protocol["action"] == "stop"]
    assert stop["t_ms"].tolist() == [t_cross]


def _count_until(experiment, *, n_spikes, quiet_ms, found):
    """Count spikes until ``n_spikes`` have been seen or none comes for ``quiet_ms``; then stop."""
    env = experiment.env
    while len(found) < n_spikes:
        spike = experiment.next_spike()
        timeout = env.timeout(quiet_ms)
        fired = yield spike | timeout
        if spike not in fired:
            break
        found.append(fired[spike])
    experiment.stop(source="count_until")


@pytest.mark.parametrize("amplitude,n_expected", [(10.0, 3), (0.0, 0)])
def test_count_spikes_until_a_condition(amplitude, n_expected):
    patch = si.hh_patch(30.0)
    step = si.CurrentStep(amplitude_uA_cm2=amplitude)
    found = []
    exp = si.Experiment(patch, step, seed=12)
    exp.process(_count_until, n_spikes=3, quiet_ms=25.0, found=found)
    r = exp.run(200.0)
    assert len(found) == n_expected
    free = si.simulate(patch, step, t_stop_ms=200.0, seed=12)
    np.testing.assert_array_equal(found, free.spikes["t_ms"].to_numpy()[:n_expected])
    t_end = found[-1] if found else 25.0
    assert r.provenance["t_stop_ms"] == t_end and exp.env.now == t_end
    assert r.provenance["stopped_by"] == "count_until" and r.provenance["processes"] == ["_count_until"]


def test_experiment_errors():
    patch = si.hh_patch(10.0)
    exp = si.Experiment(patch, si.CurrentStep(amplitude_pA=0.0), seed=1)
    exp.run(1.0)
    with pytest.raises(ValueError, match="an experiment runs once"):
        exp.run(2.0)
    with pytest.raises(ValueError, match="already run"):
        exp.add(si.CurrentStep(amplitude_pA=1.0))
    with pytest.raises(ValueError, match="method must be one of"):
        si.Experiment(patch, method="euler")
    with pytest.raises(ValueError, match="track_agents needs method='exact'"):
        si.Experiment(patch, method="deterministic", track_agents=True)
    with pytest.raises(ValueError, match="t_stop_ms must be finite and > 0"):
        si.Experiment(patch).run(-1.0)

    def two_clamps(experiment):
        experiment.set_clamp(source="a", clamp_mV=-20.0)
        yield experiment.env.timeout(1.0)
        experiment.set_clamp(source="b", clamp_mV=0.0)
        yield experiment.env.timeout(1.0)

    exp = si.Experiment(patch, seed=1)
    exp.process(two_clamps)
    with pytest.raises(ValueError, match=r"overlapping voltage-clamp segments at t = 1.0 ms: 'a' and 'b'"):
        exp.run(5.0)

    def bad(experiment):
        yield experiment.env.timeout(1.0)
        experiment.set_ligand(source="x", synapse="Na", concentration_mM=1.0)

    exp = si.Experiment(patch, seed=1)
    exp.process(bad)
    with pytest.raises(ValueError, match="'Na' is not a ligand-gated population"):
        exp.run(5.0)
    exp = si.Experiment(patch, seed=1)
    with pytest.raises(ValueError, match="before the present time"):
        exp.env.run(until=1.0)
        exp.at(0.5)


def test_at_lands_exactly_on_absolute_times():
    exp = si.Experiment(si.hh_patch(10.0), seed=1)
    env = exp.env
    seen = []

    def walker(experiment):
        for t in (0.1, 0.3, 0.7, 1.1, 2.9, 1e3 / 3):
            value = yield experiment.at(t)
            seen.append((env.now, value, t))

    env.process(walker(exp))
    env.run()
    assert all(now == t == v for now, v, t in seen) and len(seen) == 6
    assert isinstance(exp.next_spike(), simpy.Event)


def test_a_schedule_plays_as_a_protocol():
    """A ready-made Schedule runs in an Experiment (alone or with closed-loop parts) as in simulate."""
    patch = si.hh_patch(30.0)
    sch = si.Combined((si.CurrentStep(amplitude_uA_cm2=10.0, start_ms=1.0),
                       si.VoltageClamp(levels_mV=(-20.0,), durations_ms=(2.0,), holding_mV=None, start_ms=12.0)
                       )).schedule(20.0, 30.0)
    a = si.simulate(patch, sch, t_stop_ms=20.0, seed=3)
    b = si.Experiment(patch, sch, seed=3).run(20.0)
    c = si.simulate(patch, [sch, si.StopAfterSpikes(n_spikes=5)], t_stop_ms=20.0, seed=3)
    assert len(a.spikes) == 1
    pd.testing.assert_frame_equal(a.spikes, b.spikes, check_exact=True)
    pd.testing.assert_frame_equal(a.spikes, c.spikes, check_exact=True)
    pd.testing.assert_frame_equal(a.trace, b.trace, check_exact=False, rtol=1e-13, atol=1e-11)
    pd.testing.assert_frame_equal(a.protocol, b.protocol, check_exact=True)
    assert a.protocol["action"].tolist() == ["current", "current", "clamp", "clamp_off", "current"]
    with pytest.raises(ValueError, match="the schedule ends at 20.0 ms but t_stop_ms=25.0"):
        si.Experiment(patch, sch, seed=3).run(25.0)
