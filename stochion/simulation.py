"""``simulate``: one run of a patch under a protocol, exact or deterministic, as a :class:`Result`."""

from __future__ import annotations

import math
import time

import numpy as np

from .experiment import (
    METHODS,
    Experiment,
    _attach_protocol_table,
    _check_t_stop,
    _make_membrane,
    _protocol_table,
    _run_provenance,
)
from .membrane import Patch
from .protocols import Schedule, _protocol_rows, as_protocol, compile_schedule, flatten
from .results import Result, build_result

__all__ = ["simulate", "METHODS"]


def simulate(
    patch: Patch,
    protocol=None,
    *,
    t_stop_ms: float,
    seed=None,
    method: str = "exact",
    record=("V", "open", "currents"),
    record_dt_ms: float = 0.025,
    track_agents: bool = False,
    spike_level_mV: float = 0.0,
    rearm_mV: float = -20.0,
    V0_mV: float | None = None,
    initial_states=None,
) -> Result:
    """Simulate ``patch`` under ``protocol`` from t = 0 to ``t_stop_ms``.

    Open-loop protocols (steps, pulses, trains, paired pulses, ramps, waveforms, noisy current, voltage clamps
    and their combinations) are compiled to one :class:`~stochion.protocols.Schedule` and run in a single
    kernel call; closed-loop protocols (spike-triggered actions, stops) and transmitter release run through
    an :class:`~stochion.experiment.Experiment`. For the same seed both paths give the same spikes.

    Parameters
    ----------
    patch : Patch
        The membrane (see :func:`stochion.hh_patch`).
    protocol : protocol, list of protocols, Schedule or None
        The stimulus (see :mod:`stochion.protocols`); a list acts as a combination (currents add, a clamp
        overrides current); None injects no current.
    t_stop_ms : float
        Duration of the run, ms (> 0).
    seed : int or numpy.random.SeedSequence, optional
        Seed of all randomness; the same seed reproduces the run bit for bit. None draws fresh entropy (kept
        in the provenance, so the run can still be repeated). Stochastic protocols draw from streams derived
        from it (:func:`~stochion.protocols.protocol_seed_sequence`).
    method : {"exact", "deterministic"}
        ``"exact"``: channel-by-channel stochastic simulation with no time step (thinning Gillespie algorithm,
        exact voltage between events). ``"deterministic"``: the mean-field master equation of the same
        schemes (the Hodgkin–Huxley equations for the HH patch), the infinite-channel limit.
    record : iterable of {"V", "open", "currents", "states"}
        Columns of the trace: voltage; open channels per type; currents; counts of every state.
    record_dt_ms : float
        Output grid step; samples are exact values at ``k * record_dt_ms``.
    track_agents : bool
        Keep each channel's identity and return single-channel events (exact method only).
    spike_level_mV, rearm_mV : float
        Spikes are upward crossings of ``spike_level_mV`` (exact times), re-armed below ``rearm_mV``.
    V0_mV : float, optional
        Initial voltage (default: the resting potential of the patch).
    initial_states : mapping, optional
        ``{type: {state: count}}``; default: drawn from the stationary distribution at ``V0_mV``.

    Returns
    -------
    Result
        ``trace``, ``spikes``, ``channel_events`` (with ``track_agents``), ``protocol`` (one row per protocol
        action) and ``provenance``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    t_stop = _check_t_stop(t_stop_ms)
    if not isinstance(patch, Patch):
        raise ValueError(f"patch must be a stochion.Patch, got {patch!r}")
    seed_seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    if isinstance(protocol, Schedule):
        if not math.isclose(protocol.t_stop_ms, t_stop):
            raise ValueError(f"the schedule ends at {protocol.t_stop_ms} ms but t_stop_ms={t_stop_ms!r}")
        rows = _protocol_rows([as_protocol(protocol)], t_stop_ms=t_stop, area_um2=patch.area_um2)
        schedule, described = protocol, protocol
    else:
        protocol = as_protocol(protocol)
        if protocol is not None and not protocol.open_loop:  # the Experiment validates before anything runs
            exp = Experiment(patch, protocol, method=method, seed=seed_seq, record=record, record_dt_ms=record_dt_ms,
                             track_agents=track_agents, spike_level_mV=spike_level_mV, rearm_mV=rearm_mV,
                             V0_mV=V0_mV, initial_states=initial_states)
            return exp.run(t_stop)
        if protocol is None:
            schedule = Schedule(np.array([t_stop]), np.array([0]), np.array([0.0]))
            rows = []
        else:
            schedule = compile_schedule(protocol, t_stop_ms=t_stop, area_um2=patch.area_um2, seed=seed_seq)
            rows = _protocol_rows(flatten(protocol), t_stop_ms=t_stop, area_um2=patch.area_um2, seed=seed_seq)
        described = list(flatten(protocol)) if protocol is not None and len(flatten(protocol)) > 1 else protocol
    sim = _make_membrane(patch, method=method, seed_sequence=seed_seq, V0_mV=V0_mV, initial_states=initial_states,
                         track_agents=track_agents, record_dt_ms=record_dt_ms, spike_level_mV=spike_level_mV,
                         rearm_mV=rearm_mV)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    sim.run_segments(schedule.t_end_ms, schedule.mode, schedule.value)
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    provenance = _run_provenance(
        sim=sim, method=method, seed_sequence=seed_seq, t_stop_ms=t_stop, record_dt_ms=record_dt_ms,
        spike_level_mV=spike_level_mV, rearm_mV=rearm_mV, track_agents=track_agents, patch=patch,
        protocol=described, wall_s=wall, cpu_s=cpu, path="schedule",
        schedule={"t_end_ms": schedule.t_end_ms.tolist(), "mode": schedule.mode.tolist(),
                  "value": schedule.value.tolist()})
    result = build_result(sim, record=record, provenance=provenance)
    return _attach_protocol_table(result, _protocol_table(rows))
