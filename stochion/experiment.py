"""The simpy experiment layer: protocols are simpy processes; the kernel advances the membrane between them.

An :class:`Experiment` owns a ``simpy.Environment``, a membrane (:class:`~stochion.engine.PatchSimulation` for
``method="exact"``, :class:`~stochion.deterministic.DeterministicSimulation` for ``method="deterministic"``)
and a recorder (the membrane's records plus a table of protocol actions). Channel transitions are never simpy
events (DESIGN.md §3): simpy handles protocol time, the kernel everything in between.

Co-simulation
-------------
Protocol processes change the *conditions* of the membrane — the injected current (the exactly rounded sum of
all sources' contributions), a voltage clamp (which overrides the current), transmitter concentrations in
synaptic clefts. The membrane lags behind simpy and is advanced lazily:

1. all events at the present simulated time ``now`` are processed first (several changes at one instant act
   together);
2. before simpy moves past ``now``, changed conditions are *committed*: the kernel runs the membrane up to
   ``now`` under the old conditions, then the new ones apply from ``now`` on. Conditions that did not change
   cost no kernel call, so an open-loop protocol gives the kernel exactly the segments of its
   :class:`~stochion.protocols.Schedule` (and, for the same seed, bit-identical results);
3. while some process waits for a spike (``yield experiment.next_spike()``), the kernel is run to the next
   scheduled event time ``t_next`` with ``stop_on_spike=True``. If it stops at a crossing ``t_s < t_next``,
   simpy time is moved to ``t_s`` and the spike event fires with value ``t_s`` (the exact crossing time),
   so the waiting processes react at that instant; the loop then carries on from ``t_s``.

Because the channel process is Markov and the kernel's clock is memoryless, where the membrane is paused
changes no statistics (``tests/test_experiment.py`` checks it).

Records are right-continuous as in a one-call schedule run: a sample that falls exactly on a change of
conditions shows the new conditions.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import simpy

from .engine import PatchSimulation
from .membrane import Patch
from .protocols import (
    MODE_CURRENT,
    MODE_VOLTAGE,
    _action_row,
    _timeline,
    flatten,
    play_actions,
    protocol_seed_sequence,
    source_names,
)
from .rates import VALIDATION_RANGE_MV
from .results import Result, build_result, package_versions

__all__ = ["Experiment", "METHODS", "PROTOCOL_COLUMNS"]

METHODS = ("exact", "deterministic")
#: Columns of the ``protocol`` table: one row per protocol action.
PROTOCOL_COLUMNS = ("trial", "t_ms", "source", "action", "target", "value", "unit")
_RECORD = {"V", "open", "currents", "states"}


def _check_t_stop(t_stop_ms):
    try:
        t = float(t_stop_ms)
    except (TypeError, ValueError):
        t = math.nan
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"t_stop_ms must be finite and > 0, got {t_stop_ms!r}")
    return t


def _make_membrane(patch, *, method, seed_sequence, V0_mV, initial_states, track_agents, record_dt_ms,
                   spike_level_mV, rearm_mV):
    """The membrane of one run: the exact engine or its deterministic limit (checked arguments)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(patch, Patch):
        raise ValueError(f"patch must be a stochion.Patch, got {patch!r}")
    common = dict(V0_mV=V0_mV, record_dt_ms=record_dt_ms, spike_level_mV=spike_level_mV, rearm_mV=rearm_mV)
    if method == "exact":
        return PatchSimulation(patch, seed=seed_sequence, initial_states=initial_states, track_agents=track_agents,
                               **common)
    if track_agents:
        raise ValueError("track_agents needs method='exact': the deterministic limit has no channels")
    if initial_states is not None:
        raise ValueError("initial_states needs method='exact'; the deterministic method starts stationary")
    from .deterministic import DeterministicSimulation

    return DeterministicSimulation(patch, **common)


def _describe(obj):
    try:
        return asdict(obj)
    except TypeError:
        if isinstance(obj, (list, tuple)):
            return [_describe(o) for o in obj]
        return repr(obj)


def _run_provenance(*, sim, method, seed_sequence, t_stop_ms, record_dt_ms, spike_level_mV, rearm_mV, track_agents,
                   patch, protocol, wall_s, cpu_s, **extra) -> dict:
    """The provenance dictionary shared by :func:`~stochion.simulate` and :meth:`Experiment.run`."""
    prov = {
        "method": method,
        "seed": {"entropy": seed_sequence.entropy, "spawn_key": list(seed_sequence.spawn_key)},
        "t_stop_ms": float(t_stop_ms),
        "record_dt_ms": float(record_dt_ms),
        "spike_level_mV": float(spike_level_mV),
        "rearm_mV": float(rearm_mV),
        "V0_mV": float(sim.V0_mV),
        "track_agents": bool(track_agents),
        "patch": _describe(patch),
        "channel_counts": dict(patch.channel_counts),
        "protocol": _describe(protocol) if protocol is not None else None,
        "n_events": int(sim.n_events),
        "n_candidates": int(sim.n_candidates),
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "versions": package_versions(),
    }
    prov.update(extra)
    return prov


def _protocol_table(rows, *, trial: int = 0) -> pd.DataFrame:
    """The ``protocol`` table from rows ``(t_ms, source, action, target, value, unit)``, in time order."""
    df = pd.DataFrame(list(rows), columns=list(PROTOCOL_COLUMNS[1:]))
    df["t_ms"] = df["t_ms"].astype(float)
    df["value"] = df["value"].astype(float)
    df.insert(0, "trial", np.full(len(df), trial, dtype=np.int64))
    return df.sort_values(["t_ms", "source"], kind="mergesort").reset_index(drop=True)


def _attach_protocol_table(result: Result, table: pd.DataFrame) -> Result:
    """Put the protocol table on ``result``."""
    return replace(result, protocol=table)


class Experiment:
    """A simulated experiment: protocols as simpy processes acting on one membrane.

    Parameters
    ----------
    patch : Patch
        The membrane.
    protocol : protocol, list of protocols, or None
        Added with :meth:`add`; more can be added (and custom processes started with :meth:`process`)
        before :meth:`run`.
    method : {"exact", "deterministic"}
        The exact stochastic kernel or the mean-field (infinite-channel) limit.
    seed : int or numpy.random.SeedSequence, optional
        Root of all randomness: the channel streams (as in :class:`~stochion.engine.PatchSimulation`) and the
        protocol streams (:func:`~stochion.protocols.protocol_seed_sequence`).
    record : iterable of {"V", "open", "currents", "states"}
        Trace columns (see :func:`~stochion.simulate`).
    record_dt_ms, track_agents, spike_level_mV, rearm_mV, V0_mV, initial_states
        As in :func:`~stochion.simulate`.

    Notes
    -----
    Protocol processes act through :meth:`set_current`, :meth:`set_clamp`, :meth:`set_ligand` and
    :meth:`stop`, wait with :meth:`at` (an absolute time) or ``env.timeout``, and listen for spikes with
    :meth:`next_spike`. See the module docstring for how simpy and the kernel take turns.

    Examples
    --------
    Stimulate 5 ms after every spike, and stop after the third::

        exp = Experiment(hh_patch(100.0), seed=1)
        exp.add(CurrentPulse(amplitude_uA_cm2=20.0, start_ms=1.0, duration_ms=0.5))
        exp.add(SpikeTriggeredPulse(amplitude_uA_cm2=20.0, delay_ms=5.0, duration_ms=0.5))
        exp.add(StopAfterSpikes(n_spikes=3))
        result = exp.run(100.0)
    """

    def __init__(self, patch: Patch, protocol=None, *, method: str = "exact", seed=None,
                 record=("V", "open", "currents"), record_dt_ms: float = 0.025, track_agents: bool = False,
                 spike_level_mV: float = 0.0, rearm_mV: float = -20.0, V0_mV: float | None = None,
                 initial_states=None):
        self.record = tuple(record)
        if not set(self.record) <= _RECORD:
            raise ValueError(f"record may contain {sorted(_RECORD)}, got {sorted(self.record)}")
        self.seed_sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        self.membrane = _make_membrane(patch, method=method, seed_sequence=self.seed_sequence, V0_mV=V0_mV,
                                       initial_states=initial_states, track_agents=track_agents,
                                       record_dt_ms=record_dt_ms, spike_level_mV=spike_level_mV, rearm_mV=rearm_mV)
        self.patch = patch
        self.method = method
        self.track_agents = bool(track_agents)
        self.env = simpy.Environment()
        self.t_stop_ms: float | None = None
        self._parts = []  # declared protocols, flattened, in the order added
        self._entries = []  # ("protocol", index) or ("process", function, kwargs), in the order added
        self._currents = {}  # (source, key) -> pA
        self._clamps = {}  # source -> mV
        self._ligand = {}  # synapse -> {(source, key): mM}
        self._applied = (MODE_CURRENT, 0.0)  # conditions the membrane runs under from membrane.t_ms on
        self._applied_ligand = {}
        self._rows = []
        self._spike_event = self.env.event()
        self._stopped_by = None
        self._ran = False
        self.n_kernel_calls = 0
        self._ligand_types = {s.name for s in patch.schemes if s.ligands}
        if protocol is not None:
            self.add(protocol)

    # -- setting up -------------------------------------------------------------------------------------------
    def add(self, protocol) -> None:
        """Add a protocol (or a list / :class:`~stochion.protocols.Combined` of them) to run from t = 0."""
        if self._ran:
            raise ValueError("Experiment.add: the experiment has already run")
        for p in flatten(protocol):
            self._entries.append(("protocol", len(self._parts)))
            self._parts.append(p)

    def process(self, generator_function, /, **kwargs) -> None:
        """Start ``generator_function(self, **kwargs)`` as a simpy process when the experiment runs.

        The function is a protocol written by hand: a generator taking the experiment and keyword-only,
        unit-suffixed arguments, acting through :meth:`set_current`, :meth:`set_clamp`, :meth:`set_ligand`,
        :meth:`stop` and waiting on :meth:`at`, ``env.timeout`` or :meth:`next_spike`.
        """
        if self._ran:
            raise ValueError("Experiment.process: the experiment has already run")
        if not callable(generator_function):
            raise ValueError(f"Experiment.process needs a generator function, got {generator_function!r}")
        self._entries.append(("process", generator_function, kwargs))

    # -- what processes see and do ------------------------------------------------------------------------------
    @property
    def t_ms(self) -> float:
        """Present simulated time (ms)."""
        return float(self.env.now)

    @property
    def V_mV(self) -> float:
        """Membrane voltage now (mV); advances the membrane to the present time first."""
        self._advance(self.env.now)
        return self.membrane.V_mV

    def at(self, t_ms: float) -> simpy.events.Timeout:
        """A simpy event that fires exactly at the absolute time ``t_ms`` (value ``t_ms``).

        ``env.timeout(t - now)`` lands at ``now + (t - now)``, which in floating point need not be ``t``; this
        picks the delay so that it is.
        """
        now = self.env.now
        t = float(t_ms)
        if not (t >= now):
            raise ValueError(f"Experiment.at: t_ms={t_ms!r} is before the present time {now!r} ms")
        d = t - now
        while now + d < t:
            d = math.nextafter(d, math.inf)
        while now + d > t:
            d = math.nextafter(d, -math.inf)
        return self.env.timeout(d, value=t)

    def next_spike(self) -> simpy.Event:
        """An event that fires at the next spike (upward crossing of the spike level) with its exact time (ms).

        Only spikes after the present time count. While a process waits on it the kernel stops at every
        crossing, so the waiting process resumes at the crossing time itself.
        """
        self._advance(self.env.now)  # spikes before now are not this waiter's
        return self._spike_event

    def set_current(self, *, source: str, current_pA: float, key=None) -> None:
        """Set ``source``'s contribution to the injected current from now on (pA; all sources add).

        ``key`` tells apart several overlapping contributions of one source (pulses that overlap).
        """
        v = float(current_pA)
        if not math.isfinite(v):
            raise ValueError(f"set_current: current_pA of {source!r} must be finite, got {current_pA!r}")
        if v == 0.0:
            self._currents.pop((source, key), None)
        else:
            self._currents[(source, key)] = v
        self._rows.append(_action_row(self.env.now, source, "current", v))

    def set_clamp(self, *, source: str, clamp_mV: float | None) -> None:
        """Clamp the membrane at ``clamp_mV`` from now on (None: release ``source``'s clamp).

        A clamp overrides the injected current; two sources clamping at once are an error.
        """
        if clamp_mV is None:
            self._clamps.pop(source, None)
        else:
            lo, hi = VALIDATION_RANGE_MV
            v = float(clamp_mV)
            if not (lo <= v <= hi):
                raise ValueError(f"set_clamp: clamp_mV of {source!r} must lie in {lo}..{hi} mV, got {clamp_mV!r}")
            self._clamps[source] = v
        self._rows.append(_action_row(self.env.now, source, "clamp", clamp_mV))

    def set_ligand(self, *, source: str, synapse: str, concentration_mM: float, key=None) -> None:
        """Set ``source``'s contribution to the transmitter concentration in ``synapse``'s cleft (mM).

        Contributions add (overlapping release pulses); the population's binding rates scale with the total.
        """
        if synapse not in self._ligand_types:
            raise ValueError(f"set_ligand: {synapse!r} is not a ligand-gated population of the patch; ligand-gated "
                             f"populations are {sorted(self._ligand_types)}")
        c = float(concentration_mM)
        if not (math.isfinite(c) and c >= 0):
            raise ValueError(f"set_ligand: concentration_mM must be finite and >= 0, got {concentration_mM!r}")
        contrib = self._ligand.setdefault(synapse, {})
        if c == 0.0:
            contrib.pop((source, key), None)
        else:
            contrib[(source, key)] = c
        self._rows.append(_action_row(self.env.now, source, "ligand", math.fsum(contrib.values()), target=synapse))

    def stop(self, *, source: str = "stop") -> None:
        """End the run now (the result ends at the present time)."""
        self._advance(self.env.now)
        self._stopped_by = source
        self._rows.append(_action_row(self.env.now, source, "stop", None))

    # -- the co-simulation --------------------------------------------------------------------------------------
    def _effective(self):
        if len(self._clamps) > 1:
            a, b = list(self._clamps)[:2]
            raise ValueError(f"overlapping voltage-clamp segments at t = {self.env.now!r} ms: {a!r} and {b!r} both "
                             "clamp the membrane; only one clamp may hold at a time")
        if self._clamps:
            return (MODE_VOLTAGE, next(iter(self._clamps.values())))
        return (MODE_CURRENT, math.fsum(self._currents.values()))

    def _commit(self):
        """Let the conditions set at the present time take effect (advancing under the old ones first)."""
        cond = self._effective()
        ligand = {s: math.fsum(c.values()) for s, c in self._ligand.items()}
        changed = {s: c for s, c in ligand.items() if self._applied_ligand.get(s, 0.0) != c}
        if cond != self._applied or changed:
            self._advance(self.env.now)
            self._applied = cond
            if changed:
                self.membrane.set_ligand_mM(changed)
                self._applied_ligand.update(changed)

    def _advance(self, t_ms: float, *, stop_on_spike: bool = False) -> bool:
        """Run the membrane to ``t_ms`` under the applied conditions; True if it stopped at a spike."""
        m = self.membrane
        if not t_ms > m.t_ms:
            return False
        self._fix_boundary_sample()
        mode, value = self._applied
        self.n_kernel_calls += 1
        if mode == MODE_VOLTAGE:
            return bool(m.advance_to(t_ms, clamp_mV=value, stop_on_spike=stop_on_spike))
        return bool(m.advance_to(t_ms, current_pA=value, stop_on_spike=stop_on_spike))

    def _fix_boundary_sample(self):
        """A sample exactly at a change of conditions shows the new ones (right-continuous, as one kernel call).

        The exact kernel records the end of each call under the conditions of that call; when the next call
        starts at the same instant under other conditions, the sample belongs to the new ones (the kernel's
        rule within one call). The deterministic method records segment ends left-continuously in any case.
        """
        m = self.membrane
        if not isinstance(m, PatchSimulation) or not m._rec_chunks:
            return
        t, V, counts, value, mode = m._rec_chunks[-1]
        if t.size == 0 or t[-1] < m.t_ms:
            return
        new_mode, new_value = self._applied
        if mode[-1] == new_mode and value[-1] == new_value:
            return
        V, value, mode = V.copy(), value.copy(), mode.copy()
        value[-1], mode[-1] = new_value, new_mode
        if new_mode == MODE_VOLTAGE:
            V[-1] = new_value
        m._rec_chunks[-1] = (t, V, counts, value, mode)

    def _watching(self) -> bool:
        return bool(self._spike_event.callbacks)

    def _deliver_spike(self, t_spike: float):
        """Move simpy to the crossing time and fire the spike event with it."""
        if t_spike > self.env.now:
            self.env.run(until=self.at(t_spike))
        if self._stopped_by is not None:
            return
        event, self._spike_event = self._spike_event, self.env.event()
        event.succeed(t_spike)

    def _prepare(self, t_stop: float):
        """Validate every declared protocol against the run and start all processes (nothing runs yet)."""
        names = source_names(self._parts)
        streams = [protocol_seed_sequence(self.seed_sequence, i) for i in range(len(self._parts))]
        actions = {}
        for p in self._parts:
            p.validate(t_stop_ms=t_stop, patch=self.patch)
        for i, p in enumerate(self._parts):
            if p.open_loop:
                actions[i] = p.actions(t_stop_ms=t_stop, area_um2=self.patch.area_um2, seed=p._stream(streams[i]))
        # clamps of open-loop protocols may not overlap: check the whole timeline before anything runs
        _timeline([actions.get(i, []) for i in range(len(self._parts))], t_stop, names)
        for entry in self._entries:
            if entry[0] == "protocol":
                i = entry[1]
                p = self._parts[i]
                if i in actions:
                    gen = play_actions(self, actions=actions[i], source=names[i])
                else:
                    gen = p.process(self, source=names[i], seed=streams[i])
            else:
                gen = entry[1](self, **entry[2])
            self.env.process(gen)

    def run(self, t_stop_ms: float) -> Result:
        """Run from t = 0 to ``t_stop_ms`` (or until a protocol stops it) and return the :class:`Result`.

        The result has the tables of :func:`~stochion.simulate` (``trace``, ``spikes``, ``channel_events``)
        and a ``protocol`` table: one row per protocol action (``trial``, ``t_ms``, ``source``, ``action`` in
        {current, clamp, clamp_off, ligand, stop}, ``target``, ``value``, ``unit``).
        """
        if self._ran:
            raise ValueError("Experiment.run: an experiment runs once; make a new one")
        t_stop = _check_t_stop(t_stop_ms)
        self.t_stop_ms = t_stop
        self._prepare(t_stop)
        self._ran = True
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        env = self.env
        while self._stopped_by is None:
            t_peek = env.peek()
            if t_peek <= env.now:
                env.step()  # another event at the present instant
                continue
            self._commit()  # time is about to move on: the changes made now take effect
            t_target = min(t_peek, t_stop)
            if self._watching():
                self._advance(env.now)
                if self._advance(t_target, stop_on_spike=True):
                    self._deliver_spike(self.membrane.t_ms)
                    continue
            if t_peek >= t_stop:
                break
            env.step()
        if self._stopped_by is None:
            self._commit()
            self._advance(t_stop)
        t_end = self.membrane.t_ms
        wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
        provenance = _run_provenance(
            sim=self.membrane, method=self.method, seed_sequence=self.seed_sequence, t_stop_ms=t_end,
            record_dt_ms=self.membrane.record_dt_ms, spike_level_mV=self.membrane.spike_level_mV,
            rearm_mV=self.membrane.rearm_mV, track_agents=self.track_agents, patch=self.patch,
            protocol=list(self._parts) or None, wall_s=wall, cpu_s=cpu, path="experiment",
            t_stop_requested_ms=t_stop, stopped_by=self._stopped_by, n_kernel_calls=self.n_kernel_calls,
            processes=[getattr(e[1], "__name__", repr(e[1])) for e in self._entries if e[0] == "process"])
        result = build_result(self.membrane, record=self.record, provenance=provenance)
        return _attach_protocol_table(result, _protocol_table(self._rows))
