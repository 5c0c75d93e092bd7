"""Sweeps: seeding, backends, agreement with single runs, checkpointing, validation, a physics sanity check."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

import stochion as si
from stochion import ensemble
from stochion.ensemble import SUMMARY_COLUMNS, sweep, trial_seed

PULSE = si.CurrentStep(amplitude_uA_cm2=0.0, start_ms=1.0, duration_ms=1.0)
# 2 amplitudes x 2 areas (a protocol field and a patch keyword), 12 trials in chunks of 5: 12 chunks, ~1 s
SMALL = dict(grid={"amplitude_uA_cm2": [3.0, 30.0], "area_um2": [4.0, 8.0]}, n_trials=12, t_stop_ms=8.0, seed=11,
             trials_per_chunk=5)


def small_sweep(**kw):
    return sweep(si.hh_patch, PULSE, **{**SMALL, **kw})


def assert_tables_equal(a, b):
    pd.testing.assert_frame_equal(a.summary, b.summary, check_exact=True)
    if a.traces is None:
        assert b.traces is None
    else:
        pd.testing.assert_frame_equal(a.traces, b.traces, check_exact=True)
    pd.testing.assert_frame_equal(a.points, b.points, check_exact=True)


@pytest.fixture(scope="module")
def reference():
    return small_sweep(traces=True, record_dt_ms=0.5)


def paired_pulse(amplitude_uA_cm2, interval_ms):
    """Two equal 1 ms pulses ``interval_ms`` apart (onset to onset): stochion's PairedPulse."""
    return si.PairedPulse(conditioning_uA_cm2=amplitude_uA_cm2, test_uA_cm2=amplitude_uA_cm2,
                          interval_ms=interval_ms, start_ms=1.0, duration_ms=1.0)


# -- seeding ------------------------------------------------------------------------------------------------
def test_trial_seed_is_the_stateless_grandchild_of_the_root():
    root = np.random.SeedSequence(7)
    spawned = root.spawn(3)[2].spawn(5)[4]
    assert trial_seed(7, 2, 4).generate_state(4).tolist() == spawned.generate_state(4).tolist()
    assert trial_seed(7, 2, 4).generate_state(4).tolist() == trial_seed(7, 2, 4).generate_state(4).tolist()


# -- tables ----------------------------------------------------------------------------------------------------
def test_summary_layout_and_points(reference):
    s = reference.summary
    assert list(s.columns) == ["amplitude_uA_cm2", "area_um2", *SUMMARY_COLUMNS]
    assert len(s) == 4 * 12 and (s["seed"] == 11).all()
    assert s.groupby("point")["trial"].apply(list).tolist() == [list(range(12))] * 4
    # product order: the last grid name varies fastest
    assert reference.points[["amplitude_uA_cm2", "area_um2"]].values.tolist() == \
        [[3.0, 4.0], [3.0, 8.0], [30.0, 4.0], [30.0, 8.0]]
    assert (s["n_spikes"] == s["spike_times_ms"].apply(len)).all()
    fired = s[s["n_spikes"] > 0]
    assert (fired["first_spike_ms"] == fired["spike_times_ms"].apply(lambda a: a[0])).all()
    assert s.loc[s["n_spikes"] == 0, "first_spike_ms"].isna().all()
    # peak_mV is the largest voltage: the highest spike peak when the trial spiked
    assert (fired["peak_mV"] == fired["spike_peaks_mV"].apply(np.max)).all()
    assert (s.loc[s["amplitude_uA_cm2"] == 30.0, "n_spikes"] >= 1).all()
    spikes = reference.spikes
    assert len(spikes) == s["n_spikes"].sum() and list(spikes.columns[-4:]) == ["point", "trial", "t_ms", "peak_mV"]
    tr = reference.traces
    assert list(tr.columns) == ["amplitude_uA_cm2", "area_um2", "point", "trial", "t_ms", "V_mV", "n_open_Na",
                                "n_open_K"]
    assert len(tr) == 4 * 12 * 17  # 0, 0.5, ..., 8 ms


def test_summary_agrees_with_single_simulate_runs(reference):
    """Batched trials reproduce single runs of their own seed bit for bit (spikes, peaks, events, traces)."""
    s = reference.summary.set_index(["point", "trial"])
    for p, k in [(0, 0), (0, 7), (1, 3), (2, 11), (3, 5)]:
        row = s.loc[(p, k)]
        patch = si.hh_patch(float(row["area_um2"]))
        protocol = dataclasses.replace(PULSE, amplitude_uA_cm2=float(row["amplitude_uA_cm2"]))
        single = si.simulate(patch, protocol, t_stop_ms=8.0, seed=trial_seed(11, p, k), record_dt_ms=0.5)
        np.testing.assert_array_equal(row["spike_times_ms"], single.spikes["t_ms"].to_numpy())
        np.testing.assert_array_equal(row["spike_peaks_mV"], single.spikes["peak_mV"].to_numpy())
        assert row["n_events"] == single.provenance["n_events"]
        assert row["peak_mV"] >= single.trace["V_mV"].max()  # the exact maximum, not a sample
        tr = reference.traces
        mine = tr[(tr["point"] == p) & (tr["trial"] == k)]
        np.testing.assert_array_equal(mine["V_mV"].to_numpy(), single.trace["V_mV"].to_numpy())
        np.testing.assert_array_equal(mine["n_open_Na"].to_numpy(), single.trace["n_open_Na"].to_numpy())


def test_per_trial_path_gives_the_same_spikes(reference):
    slow = small_sweep(batched=False, traces=True, record_dt_ms=0.5)
    assert slow.provenance["path"] == "per_trial"
    same = [c for c in reference.summary.columns if c not in ("peak_mV", "peak_t_ms")]
    pd.testing.assert_frame_equal(reference.summary[same], slow.summary[same], check_exact=True)
    pd.testing.assert_frame_equal(reference.traces, slow.traces, check_exact=True)
    fired = reference.summary["n_spikes"] > 0
    np.testing.assert_array_equal(reference.summary.loc[fired, "peak_mV"], slow.summary.loc[fired, "peak_mV"])
    assert (slow.summary["peak_mV"] <= reference.summary["peak_mV"]).all()  # samples never exceed the maximum


# -- backends ----------------------------------------------------------------------------------------------------
def test_inprocess_thread_counts_and_processes_give_identical_tables(reference):
    for backend, workers in [("inprocess", 1), ("processes", 1), ("processes", 2), ("processes", 4)]:
        got = small_sweep(traces=True, record_dt_ms=0.5, backend=backend, n_workers=workers)
        assert got.provenance["backend"] == backend
        assert_tables_equal(reference, got)


def test_dask_local_cluster_gives_identical_tables(reference):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as c, \
            distributed.Client(c) as client:
        got = small_sweep(traces=True, record_dt_ms=0.5, scheduler=client)
    assert got.provenance["backend"] == "dask"
    assert_tables_equal(reference, got)


@pytest.mark.slow
def test_dask_worker_processes_by_address_give_identical_tables(reference):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        got = small_sweep(traces=True, record_dt_ms=0.5, scheduler=c.scheduler_address)
    assert_tables_equal(reference, got)


def test_missing_dask_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'stochion\[distributed\]'"):
        small_sweep(backend="dask")


# -- checkpoints -----------------------------------------------------------------------------------------------
def chunk_files(out):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "chunks").glob("*.summary.parquet")}


def test_interrupted_sweep_resumes_without_recomputing(tmp_path, monkeypatch):
    out = tmp_path / "run"
    uninterrupted = small_sweep()
    real, calls = ensemble._run_chunk, []

    def failing(task):
        if len(calls) == 5:
            raise RuntimeError("injected failure after 5 chunks")
        calls.append(task)
        return real(task)

    monkeypatch.setattr(ensemble, "_run_chunk", failing)
    with pytest.raises(RuntimeError, match="injected"):
        small_sweep(out_dir=out)
    monkeypatch.setattr(ensemble, "_run_chunk", real)
    before = chunk_files(out)
    assert len(before) == 5 and not (out / "summary.parquet").exists()
    assert not [p for p in (out / "chunks").iterdir() if p.name.startswith(".")]  # no temporary files left
    resumed = small_sweep(out_dir=out)
    assert resumed.provenance["n_chunks_reused"] == 5 and resumed.provenance["n_chunks_computed"] == 7
    assert {k: v for k, v in chunk_files(out).items() if k in before} == before  # finished chunks untouched
    assert_tables_equal(uninterrupted, resumed)
    pd.testing.assert_frame_equal(pd.read_parquet(resumed.files["summary"]), uninterrupted.summary, check_exact=True)
    again = small_sweep(out_dir=out, backend="processes", n_workers=2)
    assert again.provenance["n_chunks_computed"] == 0
    assert_tables_equal(uninterrupted, again)


def test_changed_configuration_never_reuses_chunks(tmp_path):
    out = tmp_path / "run"
    first = small_sweep(out_dir=out)
    assert first.provenance["n_chunks_computed"] == 12
    changes = [
        dict(seed=12),
        dict(n_trials=11),
        dict(trials_per_chunk=6),
        dict(grid={"amplitude_uA_cm2": [3.0, 30.0], "area_um2": [4.0, 9.0]}),
        dict(patch_kwargs={"temperature_celsius": 7.0}),
        dict(t_stop_ms=7.0),
        dict(spike_level_mV=-10.0),
    ]
    for change in changes:
        got = small_sweep(out_dir=out, **change)
        assert got.provenance["n_chunks_reused"] == 0, change
        assert got.provenance["config_hash"] != first.provenance["config_hash"]
    other_protocol = sweep(si.hh_patch, dataclasses.replace(PULSE, start_ms=1.5), out_dir=out, **SMALL)
    assert other_protocol.provenance["n_chunks_reused"] == 0
    # an equal configuration written differently (ints for floats) is the same sweep
    same = sweep(si.hh_patch, PULSE, out_dir=out, **{**SMALL, "grid": {"amplitude_uA_cm2": [3, 30],
                                                                        "area_um2": [4, 8]}})
    assert same.provenance["n_chunks_reused"] == 12


def test_damaged_checkpoint_is_recomputed(tmp_path):
    out = tmp_path / "run"
    first = small_sweep(out_dir=out)
    victim = sorted((out / "chunks").glob("*.summary.parquet"))[3]
    victim.write_bytes(b"not parquet")
    again = small_sweep(out_dir=out)
    assert again.provenance["n_chunks_reused"] == 11 and again.provenance["n_chunks_computed"] == 1
    assert_tables_equal(first, again)


# -- grids and protocols ---------------------------------------------------------------------------------------
def test_paired_pulse_interval_sweep_counts_spikes_after_the_test_pulse():
    protocol = paired_pulse(20.0, 4.0)
    res = sweep(si.hh_patch, protocol, patch_kwargs={"area_um2": 300.0}, grid={"interval_ms": [4.0, 20.0]},
                n_trials=8, t_stop_ms=30.0, seed=2)
    s = res.summary
    assert res.provenance["path"] == "batched"
    second = [int(np.sum(t >= protocol.start_ms + iv)) for t, iv in zip(s["spike_times_ms"], s["interval_ms"])]
    p_second = s.assign(second=np.array(second) > 0).groupby("interval_ms")["second"].mean()
    # 300 µm² is nearly deterministic: refractory at 4 ms, recovered at 20 ms (HH at 6.3 °C)
    assert p_second[4.0] <= 0.25 and p_second[20.0] >= 0.75
    assert (s["n_spikes"] >= 1).all()


def test_explicit_points_and_patch_fields():
    patch = si.hh_patch(6.0)
    points = [{"temperature_celsius": 6.3, "amplitude_uA_cm2": 20.0}, {"temperature_celsius": 15.0,
                                                                       "amplitude_uA_cm2": 40.0}]
    res = sweep(patch, PULSE, grid=points, n_trials=3, t_stop_ms=6.0, seed=4)
    assert res.points.to_dict(orient="list") == {"point": [0, 1], "temperature_celsius": [6.3, 15.0],
                                                 "amplitude_uA_cm2": [20.0, 40.0]}
    row = res.summary.iloc[4]  # point 1, trial 1
    warm = dataclasses.replace(patch, temperature_celsius=15.0)
    single = si.simulate(warm, dataclasses.replace(PULSE, amplitude_uA_cm2=40.0), t_stop_ms=6.0,
                         seed=trial_seed(4, 1, 1))
    np.testing.assert_array_equal(row["spike_times_ms"], single.spikes["t_ms"].to_numpy())


def test_voltage_clamp_sweep_traces():
    res = sweep(si.hh_patch, si.VoltageStep(-65.0, holding_mV=-65.0, start_ms=1.0), patch_kwargs={"area_um2": 5.0},
                grid={"step_mV": [-40.0, 0.0]}, n_trials=2, t_stop_ms=4.0, seed=5, traces=True, record_dt_ms=0.25)
    single = si.simulate(si.hh_patch(5.0), si.VoltageStep(0.0, holding_mV=-65.0, start_ms=1.0), t_stop_ms=4.0,
                         seed=trial_seed(5, 1, 1), record_dt_ms=0.25)
    tr = res.traces[(res.traces["point"] == 1) & (res.traces["trial"] == 1)]
    np.testing.assert_array_equal(tr["n_open_K"].to_numpy(), single.trace["n_open_K"].to_numpy())
    np.testing.assert_array_equal(tr["V_mV"].to_numpy(), single.trace["V_mV"].to_numpy())


def test_noisy_current_draws_each_trials_noise_from_its_seed():
    """A stochastic protocol's schedule comes from the trial's seed, as in simulate (bit for bit)."""
    noise = si.NoisyCurrent(mean_uA_cm2=2.0, sigma_uA_cm2=1.0, tau_ms=1.0, dt_ms=0.1, start_ms=0.5)
    res = sweep(si.hh_patch, noise, patch_kwargs={"area_um2": 5.0}, grid={"sigma_uA_cm2": [1.0, 8.0]}, n_trials=4,
                t_stop_ms=10.0, seed=3, trials_per_chunk=3)
    assert res.provenance["path"] == "batched"
    s = res.summary.set_index(["point", "trial"])
    for p, k in [(0, 1), (1, 3)]:
        single = si.simulate(si.hh_patch(5.0), dataclasses.replace(noise, sigma_uA_cm2=[1.0, 8.0][p]),
                             t_stop_ms=10.0, seed=trial_seed(3, p, k))
        np.testing.assert_array_equal(s.loc[(p, k), "spike_times_ms"], single.spikes["t_ms"].to_numpy())
        assert s.loc[(p, k), "n_events"] == single.provenance["n_events"]


def test_closed_loop_combination_runs_trial_by_trial_with_part_names():
    stim = [si.CurrentStep(amplitude_uA_cm2=20.0, start_ms=1.0, duration_ms=1.0),
            si.SpikeTriggeredPulse(amplitude_uA_cm2=30.0, delay_ms=8.0, duration_ms=1.0, max_pulses=1)]
    grid = {"SpikeTriggeredPulse.delay_ms": [3.0, 12.0], "CurrentStep.amplitude_uA_cm2": [20.0]}
    res = sweep(si.hh_patch, stim, patch_kwargs={"area_um2": 20.0}, grid=grid, n_trials=2, t_stop_ms=20.0, seed=3)
    assert res.provenance["path"] == "per_trial"
    assert list(res.summary.columns[:2]) == list(grid)
    row = res.summary.iloc[3]  # point 1, trial 1
    single = si.simulate(si.hh_patch(20.0), [stim[0], dataclasses.replace(stim[1], delay_ms=12.0)], t_stop_ms=20.0,
                         seed=trial_seed(3, 1, 1))
    np.testing.assert_array_equal(row["spike_times_ms"], single.spikes["t_ms"].to_numpy())
    stopped = sweep(si.hh_patch, [stim[0], si.StopAfterSpikes(n_spikes=1, delay_ms=1.0)],
                    patch_kwargs={"area_um2": 20.0}, n_trials=3, t_stop_ms=15.0, seed=3, traces=True, record_dt_ms=0.5)
    ends = stopped.traces.groupby("trial")["t_ms"].max()  # each run stops 1 ms after its spike
    np.testing.assert_allclose(ends, (stopped.summary["first_spike_ms"] + 1.0) // 0.5 * 0.5)
    with pytest.raises(ValueError, match="closed loop and runs trial by trial"):
        sweep(si.hh_patch, stim, patch_kwargs={"area_um2": 20.0}, n_trials=1, t_stop_ms=2.0, seed=1, batched=True)
    with pytest.raises(ValueError, match=r"unknown grid parameter 'delay'.*SpikeTriggeredPulse.delay_ms"):
        sweep(si.hh_patch, stim, patch_kwargs={"area_um2": 20.0}, grid={"delay": [1.0]}, n_trials=1, t_stop_ms=2.0,
              seed=1)


# -- validation ----------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _WarmPulse(si.CurrentStep):
    temperature_celsius: float = 6.3  # also a keyword of hh_patch: ambiguous in a grid


@pytest.mark.parametrize("kwargs, message", [
    (dict(grid={"amplitude_mA": [1.0]}),
     r"unknown grid parameter 'amplitude_mA'.*hh_patch: area_um2, temperature_celsius.*na_density_per_um2.*"
     r"CurrentStep: amplitude_pA, amplitude_uA_cm2, start_ms, duration_ms, holding_pA"),
    (dict(grid={"protocol.area_um2": [1.0]}), r"unknown grid parameter 'protocol.area_um2'"),
    (dict(n_trials=0), r"n_trials must be an integer >= 1, got 0"),
    (dict(n_trials=-3), r"n_trials must be an integer >= 1, got -3"),
    (dict(n_trials=2.5), r"n_trials must be an integer >= 1, got 2.5"),
    (dict(n_trials=True), r"n_trials must be an integer >= 1, got True"),
    (dict(trials_per_chunk=0), r"trials_per_chunk must be an integer >= 1, got 0"),
    (dict(seed=-1), r"seed must be an integer >= 0 and < 9223372036854775808, got -1"),
    (dict(t_stop_ms=0.0), r"t_stop_ms must be finite and > 0, got 0.0"),
    (dict(backend="gpu"), r"backend must be one of \('inprocess', 'processes', 'dask'\), got 'gpu'"),
    (dict(n_workers=0, backend="processes"), r"n_workers must be an integer >= 1, got 0"),
    (dict(grid={"amplitude_uA_cm2": []}), r"grid\['amplitude_uA_cm2'\] is empty"),
    (dict(grid={"amplitude_uA_cm2": 3.0}), r"grid\['amplitude_uA_cm2'\] must be a list of values"),
    (dict(grid={"amplitude_uA_cm2": [[1.0]]}), r"values must be numbers, strings or booleans, got \[1.0\]"),
    (dict(grid={"amplitude_uA_cm2": [1.0, math.inf]}),
     r"grid point 1 \{'amplitude_uA_cm2': inf\}: CurrentStep.amplitude_uA_cm2 must be finite"),
    (dict(grid={"area_um2": [1.0, -2.0]}), r"grid point 1 \{'area_um2': -2.0\}: Patch.area_um2 must be finite and > 0"),
    (dict(grid={"trial": [1]}), r"grid parameter 'trial' clashes with a summary column"),
    (dict(patch_kwargs={"area": 1.0}), r"patch_kwargs: unknown parameter\(s\) \['area'\] of hh_patch"),
])
def test_bad_sweeps_fail_before_anything_runs(monkeypatch, kwargs, message):
    monkeypatch.setattr(ensemble, "_run_chunk", lambda task: pytest.fail("a chunk ran"))
    with pytest.raises(ValueError, match=message):
        sweep(si.hh_patch, PULSE, **{**dict(patch_kwargs={"area_um2": 4.0}, n_trials=2, t_stop_ms=2.0, seed=1),
                                     **kwargs})


def test_patch_factory_arguments_and_ambiguous_names(monkeypatch):
    monkeypatch.setattr(ensemble, "_run_chunk", lambda task: pytest.fail("a chunk ran"))
    with pytest.raises(ValueError, match=r"hh_patch needs \['area_um2'\]: give them in patch_kwargs or in the grid"):
        sweep(si.hh_patch, PULSE, n_trials=1, t_stop_ms=1.0, seed=1)
    warm = _WarmPulse(amplitude_uA_cm2=1.0)
    with pytest.raises(ValueError, match=r"'temperature_celsius' is both a patch keyword and a protocol field; "
                                         r"write 'patch.temperature_celsius' or 'protocol.temperature_celsius'"):
        sweep(si.hh_patch, warm, patch_kwargs={"area_um2": 4.0}, grid={"temperature_celsius": [6.3]}, n_trials=1,
              t_stop_ms=1.0, seed=1)
    monkeypatch.undo()
    res = sweep(si.hh_patch, warm, patch_kwargs={"area_um2": 4.0}, grid={"patch.temperature_celsius": [6.3, 10.0]},
                n_trials=1, t_stop_ms=1.0, seed=1)
    assert list(res.summary.columns[:1]) == ["patch.temperature_celsius"]


def test_progress_bar_is_opt_in_off_a_terminal(capsys):
    small_sweep(n_trials=2, trials_per_chunk=2)
    assert capsys.readouterr().err == ""  # not a terminal: no bar by default
    small_sweep(n_trials=2, trials_per_chunk=2, progress=True)
    err = capsys.readouterr().err
    assert "sweep" in err and "8/8" in err and "trial" in err


# -- physics -------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_large_patch_is_all_or_none_below_and_above_threshold():
    """hh_patch(1e4) is nearly deterministic: the 1 ms threshold is ~6.9 µA/cm² (HH equations); 3 µA/cm²
    never fires and 12 µA/cm² always does (p = 0 and p = 1 exactly in 5 trials each, seed 1)."""
    res = sweep(si.hh_patch, PULSE, patch_kwargs={"area_um2": 1e4}, grid={"amplitude_uA_cm2": [3.0, 12.0]},
                n_trials=5, t_stop_ms=3.5, seed=1)
    p = res.summary.assign(fired=res.summary["n_spikes"] > 0).groupby("amplitude_uA_cm2")["fired"].mean()
    assert p[3.0] == 0.0 and p[12.0] == 1.0
    sub = res.summary[res.summary["amplitude_uA_cm2"] == 3.0]
    assert ((sub["peak_mV"] > -64.0) & (sub["peak_mV"] < -50.0)).all()  # a subthreshold bump, no spike
