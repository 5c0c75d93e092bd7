"""``simulate``: one run of a patch under a protocol, exact or deterministic, as a :class:`Result`."""

from __future__ import annotations

import math
import time
from dataclasses import asdict

import numpy as np

from .engine import PatchSimulation
from .membrane import Patch
from .protocols import CurrentStep, Schedule, VoltageStep
from .results import Result, build_result, package_versions

__all__ = ["simulate", "METHODS"]

METHODS = ("exact", "deterministic")


def _schedule(protocol, t_stop_ms: float, area_um2: float) -> Schedule:
    if protocol is None:
        return Schedule(np.array([t_stop_ms]), np.array([0]), np.array([0.0]))
    if isinstance(protocol, Schedule):
        if not math.isclose(protocol.t_stop_ms, t_stop_ms):
            raise ValueError(f"the schedule ends at {protocol.t_stop_ms} ms but t_stop_ms={t_stop_ms!r}")
        return protocol
    if hasattr(protocol, "schedule"):
        return protocol.schedule(t_stop_ms, area_um2)
    raise ValueError(f"protocol must be None, a Schedule or a protocol with .schedule(), got {protocol!r}")


def _describe(obj):
    try:
        return asdict(obj)
    except TypeError:
        return repr(obj)


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

    Parameters
    ----------
    patch : Patch
        The membrane (see :func:`stochion.hh_patch`).
    protocol : CurrentStep, VoltageStep, Schedule or None
        The stimulus; None injects no current.
    t_stop_ms : float
        Duration of the run, ms (> 0).
    seed : int or numpy.random.SeedSequence, optional
        Seed of all randomness; the same seed reproduces the run bit for bit. None draws fresh entropy (kept
        in the provenance, so the run can still be repeated).
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
        ``trace``, ``spikes``, ``channel_events`` (with ``track_agents``) and ``provenance``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    try:
        t_stop = float(t_stop_ms)
    except (TypeError, ValueError):
        t_stop = float("nan")
    if not (math.isfinite(t_stop) and t_stop > 0):
        raise ValueError(f"t_stop_ms must be finite and > 0, got {t_stop_ms!r}")
    if not isinstance(patch, Patch):
        raise ValueError(f"patch must be a stochion.Patch, got {patch!r}")
    schedule = _schedule(protocol, t_stop, patch.area_um2)
    seed_seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    common = dict(V0_mV=V0_mV, record_dt_ms=record_dt_ms, spike_level_mV=spike_level_mV, rearm_mV=rearm_mV)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    if method == "exact":
        sim = PatchSimulation(patch, seed=seed_seq, initial_states=initial_states, track_agents=track_agents,
                              **common)
    else:
        if track_agents:
            raise ValueError("track_agents needs method='exact': the deterministic limit has no channels")
        if initial_states is not None:
            raise ValueError("initial_states needs method='exact'; the deterministic method starts stationary")
        from .deterministic import DeterministicSimulation

        sim = DeterministicSimulation(patch, **common)
    sim.run_segments(schedule.t_end_ms, schedule.mode, schedule.value)
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    provenance = {
        "method": method,
        "seed": {"entropy": seed_seq.entropy, "spawn_key": list(seed_seq.spawn_key)},
        "t_stop_ms": t_stop,
        "record_dt_ms": float(record_dt_ms),
        "spike_level_mV": float(spike_level_mV),
        "rearm_mV": float(rearm_mV),
        "V0_mV": float(sim.V0_mV),
        "track_agents": bool(track_agents),
        "patch": _describe(patch),
        "channel_counts": dict(patch.channel_counts),
        "protocol": _describe(protocol) if protocol is not None else None,
        "schedule": {"t_end_ms": schedule.t_end_ms.tolist(), "mode": schedule.mode.tolist(),
                     "value": schedule.value.tolist()},
        "n_events": int(sim.n_events),
        "n_candidates": int(sim.n_candidates),
        "wall_s": wall,
        "cpu_s": cpu,
        "versions": package_versions(),
    }
    return build_result(sim, record=record, provenance=provenance)
