"""Stimulus protocols: declarations that run as simpy processes and, when open loop, compile to schedules.

A protocol is a frozen dataclass that says *what* is done to the membrane and *when*. It acts in two ways:

* as a **simpy process** inside an :class:`~stochion.experiment.Experiment` (``protocol.process(experiment,
  source=..., seed=...)`` is a generator function body); the experiment advances the membrane lazily with the
  exact kernel up to the present simulated time before every change;
* when it is **open loop** (its actions do not depend on what the membrane does), as a :class:`Schedule` of
  piecewise-constant segments (``protocol.schedule(t_stop_ms, area_um2, seed=...)``) that the kernels run
  directly, including the batched fast path :func:`stochion.engine.run_trials`.

Both ways play the same list of :class:`Action` s, so for the same seed they give the same segments.

Composition (``p1 + p2`` or a list of protocols, see :class:`Combined`): injected currents of several
protocols add; a voltage clamp overrides the injected current while it holds; two clamps holding at the same
time are an error. Every protocol is validated before anything runs (construction checks each field;
:meth:`Protocol.validate` checks it against the run: starts at or after ``t_stop_ms``, unknown synapses).

Randomness. Stochastic protocols (:class:`NoisyCurrent`, :class:`PoissonRelease`) draw from a stream of their
own, never from the channel streams, so adding a noisy stimulus does not change which channel events a seed
gives. For a run seeded with ``SeedSequence`` ``S`` the protocol at position ``i`` of the run's (flattened)
protocol list draws from ``SeedSequence(S.entropy, spawn_key=S.spawn_key + (3, i))`` — see
:func:`protocol_seed_sequence`; the channel streams of the engine are the children ``(0,)``, ``(1,)`` and
``(2,)``. A protocol given an explicit ``seed`` uses ``SeedSequence(seed)`` instead: the same noise in every
trial ("frozen noise").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .membrane import uA_per_cm2_to_pA
from .rates import VALIDATION_RANGE_MV

__all__ = [
    "Schedule",
    "Action",
    "Protocol",
    "Combined",
    "CurrentStep",
    "CurrentPulse",
    "PulseTrain",
    "PairedPulse",
    "CurrentRamp",
    "NoisyCurrent",
    "CurrentWaveform",
    "VoltageStep",
    "VoltageClamp",
    "activation_protocols",
    "inactivation_protocols",
    "recovery_protocols",
    "SpikeTriggeredPulse",
    "StopAfterSpikes",
    "TransmitterRelease",
    "RegularRelease",
    "PoissonRelease",
    "play_actions",
    "spike_triggered_pulses",
    "stop_after_spikes",
    "release_transmitter",
    "as_protocol",
    "flatten",
    "source_names",
    "compile_schedule",
    "protocol_seed_sequence",
    "MODE_CURRENT",
    "MODE_VOLTAGE",
    "PROTOCOL_STREAM_KEY",
]

MODE_CURRENT = 0
MODE_VOLTAGE = 1

#: Child index of a run's SeedSequence under which the protocol streams live (the engine uses 0, 1, 2).
PROTOCOL_STREAM_KEY = 3


@dataclass(frozen=True, eq=False)
class Schedule:
    """Segments ``[t_end[i-1], t_end[i])`` (``t_end[-1]`` is the stop time) with a mode and a value each.

    ``mode`` is ``MODE_CURRENT`` (value = injected current, pA) or ``MODE_VOLTAGE`` (value = clamp, mV).
    """

    t_end_ms: np.ndarray
    mode: np.ndarray
    value: np.ndarray

    def __post_init__(self):
        t = np.ascontiguousarray(self.t_end_ms, dtype=float)
        m = np.ascontiguousarray(self.mode, dtype=np.int64)
        v = np.ascontiguousarray(self.value, dtype=float)
        if not (t.ndim == m.ndim == v.ndim == 1 and t.size == m.size == v.size and t.size > 0):
            raise ValueError("Schedule: t_end_ms, mode and value must be 1-D arrays of the same non-zero length")
        if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0) or t[0] <= 0:
            raise ValueError(f"Schedule.t_end_ms must be finite, > 0 and strictly increasing, got {t.tolist()}")
        if not np.all(np.isin(m, (MODE_CURRENT, MODE_VOLTAGE))):
            raise ValueError(f"Schedule.mode must hold {MODE_CURRENT} (current) or {MODE_VOLTAGE} (voltage clamp)")
        if not np.all(np.isfinite(v)):
            bad = v[~np.isfinite(v)][0]
            raise ValueError(f"Schedule.value must be finite (pA or mV), got {bad!r}")
        lo, hi = VALIDATION_RANGE_MV
        clamp = v[m == MODE_VOLTAGE]
        if clamp.size and (clamp.min() < lo or clamp.max() > hi):
            raise ValueError(f"voltage-clamp levels must lie in {lo}..{hi} mV, got {clamp.min()}..{clamp.max()} mV")
        object.__setattr__(self, "t_end_ms", t)
        object.__setattr__(self, "mode", m)
        object.__setattr__(self, "value", v)

    @property
    def t_stop_ms(self) -> float:
        return float(self.t_end_ms[-1])

    @classmethod
    def from_breakpoints(cls, t_stop_ms: float, breakpoints) -> "Schedule":
        """Build from ``[(t_start_ms, mode, value), ...]`` (first at 0), cut at ``t_stop_ms``; merges repeats.

        Of breakpoints at the same time, the later in the list wins.
        """
        pts = sorted(((float(t), int(m), float(v)) for t, m, v in breakpoints), key=lambda p: p[0])
        starts = [p for p in pts if p[0] < t_stop_ms]
        t_end, mode, value = [], [], []
        for i, (t0, m, v) in enumerate(starts):
            t1 = starts[i + 1][0] if i + 1 < len(starts) else t_stop_ms
            if t1 <= t0:
                continue
            if mode and mode[-1] == m and value[-1] == v:
                t_end[-1] = t1
            else:
                t_end.append(t1)
                mode.append(m)
                value.append(v)
        return cls(np.array(t_end), np.array(mode), np.array(value))


# -- validation helpers -----------------------------------------------------------------------------------------

def _check_time(owner, name, value, allow_inf=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if math.isnan(v) or v < 0 or (math.isinf(v) and not allow_inf):
        allowed = ">= 0 (inf allowed)" if allow_inf else "finite and >= 0"
        raise ValueError(f"{owner}.{name} must be {allowed}, got {value!r}")
    return v


def _check_positive(owner, name, value, allow_inf=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if math.isnan(v) or v <= 0 or (math.isinf(v) and not allow_inf):
        allowed = "> 0 (inf allowed)" if allow_inf else "finite and > 0"
        raise ValueError(f"{owner}.{name} must be {allowed}, got {value!r}")
    return v


def _check_real(owner, name, value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v):
        raise ValueError(f"{owner}.{name} must be finite, got {value!r}")
    return v


def _check_clamp_level(owner, name, value):
    lo, hi = VALIDATION_RANGE_MV
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (lo <= v <= hi):
        raise ValueError(f"{owner}.{name} must lie in {lo}..{hi} mV, got {value!r}")
    return v


def _check_count(owner, name, value, minimum=1):
    if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum):
        raise ValueError(f"{owner}.{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _one_of(owner, obj, pA_name, density_name, *, required=True):
    """Exactly one of an amplitude in pA and a density in µA/cm² (both finite)."""
    a, b = getattr(obj, pA_name), getattr(obj, density_name)
    if (a is None) == (b is None):
        if a is None and not required:
            return
        raise ValueError(f"{owner}: give exactly one of {pA_name} and {density_name} "
                         f"(got {pA_name}={a!r}, {density_name}={b!r})")
    name = pA_name if a is not None else density_name
    _check_real(owner, name, a if a is not None else b)


def _in_pA(obj, pA_name, density_name, area_um2):
    a = getattr(obj, pA_name)
    if a is not None:
        return float(a)
    return uA_per_cm2_to_pA(getattr(obj, density_name), area_um2)


def _check_run(owner, t_stop_ms):
    try:
        t = float(t_stop_ms)
    except (TypeError, ValueError):
        t = math.nan
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"{owner}: t_stop_ms must be finite and > 0, got {t_stop_ms!r}")
    return t


def _check_starts_before_end(owner, what, t_ms, t_stop_ms):
    if t_ms >= t_stop_ms:
        raise ValueError(f"{owner}: {what} at {t_ms!r} ms is at or after the end of the run (t_stop_ms={t_stop_ms!r}); "
                         "it would never act")


def protocol_seed_sequence(seed, index: int) -> np.random.SeedSequence:
    """The stream of the protocol at position ``index`` of a run seeded with ``seed``.

    ``SeedSequence(S.entropy, spawn_key=S.spawn_key + (PROTOCOL_STREAM_KEY, index))`` with ``S`` the run's
    ``SeedSequence`` (an int or None is first made one). Deriving it from the key, not by ``spawn``, keeps it
    the same however often the run's seed is used.
    """
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + (PROTOCOL_STREAM_KEY, int(index)),
                                  pool_size=ss.pool_size)


# -- the protocol interface -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Action:
    """One change an open-loop protocol makes: from ``t_ms`` on, its current (pA) or its clamp (mV).

    ``kind`` is ``"current"`` (``value`` = this protocol's contribution to the injected current, pA) or
    ``"clamp"`` (``value`` = clamp level, mV; ``None`` releases the clamp).
    """

    t_ms: float
    kind: str
    value: float | None


class Protocol:
    """Base of all protocols.

    Attributes
    ----------
    open_loop : bool
        True if the protocol's actions are fixed in advance (it compiles to a :class:`Schedule`); False if it
        reacts to the membrane (spikes) or changes what a schedule cannot express (ligand concentrations).
    stochastic : bool
        True if it draws random numbers (from its own stream, see the module docstring).
    """

    open_loop: ClassVar[bool] = True
    stochastic: ClassVar[bool] = False
    seed = None  # explicit seed of a stochastic protocol (frozen noise); None: derived from the run's seed

    def validate(self, *, t_stop_ms: float, patch=None) -> None:
        """Check the protocol against a run of ``t_stop_ms`` on ``patch`` (optional); raise ValueError."""
        _check_run(type(self).__name__, t_stop_ms)

    def actions(self, *, t_stop_ms: float, area_um2: float, seed=None) -> list:
        """The :class:`Action` s of an open-loop protocol, in time order (``seed``: its own stream)."""
        raise ValueError(f"{type(self).__name__} is closed loop: it has no fixed list of actions and no schedule; "
                         "run it with stochion.Experiment or stochion.simulate")

    def schedule(self, t_stop_ms: float, area_um2: float, *, seed=None) -> Schedule:
        """Compile to a :class:`Schedule` over ``[0, t_stop_ms]`` (``seed``: the run's seed, for noise)."""
        return compile_schedule(self, t_stop_ms=t_stop_ms, area_um2=area_um2, seed=seed)

    def process(self, experiment, *, source: str, seed=None):
        """The simpy process body of this protocol in ``experiment`` (default: play its actions)."""
        acts = self.actions(t_stop_ms=experiment.t_stop_ms, area_um2=experiment.patch.area_um2,
                            seed=self._stream(seed))
        return play_actions(experiment, actions=acts, source=source)

    def _stream(self, seed):
        """The SeedSequence this protocol draws from: its own seed if given, else the one passed in."""
        if not self.stochastic:
            return None
        if self.seed is not None:
            return self.seed if isinstance(self.seed, np.random.SeedSequence) else np.random.SeedSequence(self.seed)
        if seed is None:
            raise ValueError(f"{type(self).__name__} draws random numbers: give the run's seed (schedule(..., "
                             "seed=...)) or a seed of its own")
        return seed

    def __add__(self, other):
        return Combined((self, other))

    def __radd__(self, other):
        return Combined((other, self))


@dataclass(frozen=True)
class Combined(Protocol):
    """Several protocols acting together (``p1 + p2`` builds one; nested combinations are flattened).

    Currents add, a voltage clamp overrides the current while it holds, and two clamps holding at once are an
    error. The protocol at position ``i`` draws from the run's protocol stream ``i``.
    """

    protocols: tuple = ()

    def __post_init__(self):
        parts = []
        for p in tuple(self.protocols):
            if isinstance(p, Combined):
                parts.extend(p.protocols)
            elif isinstance(p, Protocol):
                parts.append(p)
            else:
                raise ValueError(f"Combined.protocols must hold stochion protocols, got {p!r}")
        if not parts:
            raise ValueError("Combined.protocols is empty; give at least one protocol")
        object.__setattr__(self, "protocols", tuple(parts))

    @property
    def open_loop(self) -> bool:  # type: ignore[override]
        return all(p.open_loop for p in self.protocols)

    @property
    def stochastic(self) -> bool:  # type: ignore[override]
        return any(p.stochastic for p in self.protocols)

    def validate(self, *, t_stop_ms, patch=None):
        for p in self.protocols:
            p.validate(t_stop_ms=t_stop_ms, patch=patch)

    def process(self, experiment, *, source, seed=None):  # pragma: no cover - experiments flatten combinations
        raise ValueError("a Combined protocol is run part by part; add it to an Experiment with Experiment.add")


def flatten(protocol) -> tuple:
    """The parts of a protocol (a :class:`Combined`, a list or tuple, or one protocol), as a tuple."""
    p = as_protocol(protocol)
    if p is None:
        return ()
    return p.protocols if isinstance(p, Combined) else (p,)


def as_protocol(protocol):
    """None, a protocol, a :class:`Schedule`, or a list/tuple of them (→ :class:`Combined`); else an error."""
    if protocol is None or isinstance(protocol, Protocol):
        return protocol
    if isinstance(protocol, Schedule):
        return _ScheduleProtocol(protocol)
    if isinstance(protocol, (list, tuple)):
        return Combined(tuple(as_protocol(p) for p in protocol))
    raise ValueError(f"protocol must be a stochion protocol, a list of them, a Schedule or None, got {protocol!r}")


def source_names(parts) -> list:
    """Names of the parts in tables: the class name, with ``_1``, ``_2`` … for repeats (``PulseTrain_1``)."""
    seen, names = {}, []
    for p in parts:
        base = getattr(p, "source_name", None) or type(p).__name__
        k = seen.get(base, 0)
        seen[base] = k + 1
        names.append(base if k == 0 else f"{base}_{k}")
    return names


def _timeline(per_source, t_stop_ms, names):
    """Merge the actions of several sources into breakpoints ``(t, mode, value)`` and check clamp overlaps.

    ``per_source`` is one action list per source. The injected current is the exactly rounded sum
    (``math.fsum``) of the sources' contributions, as in :class:`~stochion.experiment.Experiment`.
    """
    events = sorted(((a.t_ms, i, j, a) for i, acts in enumerate(per_source) for j, a in enumerate(acts)),
                    key=lambda e: (e[0], e[1], e[2]))
    currents = [0.0] * len(per_source)
    clamps = [None] * len(per_source)
    pts = [(0.0, MODE_CURRENT, 0.0)]
    k = 0
    while k < len(events):
        t = events[k][0]
        if t >= t_stop_ms:
            break
        while k < len(events) and events[k][0] == t:
            _, i, _, a = events[k]
            if a.kind == "current":
                currents[i] = float(a.value)
            else:
                clamps[i] = None if a.value is None else float(a.value)
            k += 1
        holding = [i for i, c in enumerate(clamps) if c is not None]
        if len(holding) > 1:
            raise ValueError(f"overlapping voltage-clamp segments at t = {t!r} ms: {names[holding[0]]!r} and "
                             f"{names[holding[1]]!r} both clamp the membrane; only one clamp may hold at a time")
        if holding:
            pts.append((t, MODE_VOLTAGE, clamps[holding[0]]))
        else:
            pts.append((t, MODE_CURRENT, math.fsum(currents)))
    return pts


def compile_schedule(protocol, *, t_stop_ms: float, area_um2: float, seed=None) -> Schedule:
    """The :class:`Schedule` of an open-loop protocol (or combination) over ``[0, t_stop_ms]``.

    Parameters
    ----------
    protocol : Protocol, list of protocols, or None
    t_stop_ms : float
        End of the run, ms.
    area_um2 : float
        Membrane area, µm² (converts µA/cm² to pA).
    seed : int or numpy.random.SeedSequence, optional
        The run's seed; stochastic parts draw from :func:`protocol_seed_sequence` ``(seed, i)``.
    """
    t_stop = _check_run("compile_schedule", t_stop_ms)
    parts = flatten(protocol)
    names = source_names(parts)
    per_source = []
    for i, p in enumerate(parts):
        p.validate(t_stop_ms=t_stop)
        if not p.open_loop:
            raise ValueError(f"{names[i]} is closed loop (it reacts to spikes or releases transmitter) and has no "
                             "schedule; run it with stochion.Experiment or stochion.simulate")
        stream = protocol_seed_sequence(seed, i) if (p.stochastic and p.seed is None and seed is not None) else None
        per_source.append(p.actions(t_stop_ms=t_stop, area_um2=area_um2, seed=p._stream(stream)))
    return Schedule.from_breakpoints(t_stop, _timeline(per_source, t_stop, names))


def _protocol_rows(parts, *, t_stop_ms, area_um2, seed=None) -> list:
    """Rows ``(t_ms, source, action, value, unit)`` of the protocol table of open-loop parts (schedule path)."""
    names = source_names(parts)
    rows = []
    for i, p in enumerate(parts):
        stream = protocol_seed_sequence(seed, i) if (p.stochastic and p.seed is None and seed is not None) else None
        for a in p.actions(t_stop_ms=t_stop_ms, area_um2=area_um2, seed=p._stream(stream)):
            if a.t_ms < t_stop_ms:
                rows.append(_action_row(a.t_ms, names[i], a.kind, a.value))
    return rows


def _action_row(t_ms, source, kind, value, target="membrane"):
    if kind == "current":
        return (float(t_ms), source, "current", target, float(value), "pA")
    if kind == "clamp":
        if value is None:
            return (float(t_ms), source, "clamp_off", target, math.nan, "mV")
        return (float(t_ms), source, "clamp", target, float(value), "mV")
    if kind == "ligand":
        return (float(t_ms), source, "ligand", target, float(value), "mM")
    return (float(t_ms), source, kind, target, math.nan if value is None else float(value), "")


@dataclass(frozen=True)
class _ScheduleProtocol(Protocol):
    """A :class:`Schedule` played as a protocol (so that it can be combined and run in an Experiment)."""

    schedule_: Schedule
    source_name: ClassVar[str] = "Schedule"

    def validate(self, *, t_stop_ms, patch=None):
        t_stop = _check_run("Schedule", t_stop_ms)
        if not math.isclose(self.schedule_.t_stop_ms, t_stop):
            raise ValueError(f"the schedule ends at {self.schedule_.t_stop_ms} ms but t_stop_ms={t_stop_ms!r}")

    def actions(self, *, t_stop_ms, area_um2, seed=None):
        sch = self.schedule_
        starts = np.concatenate([[0.0], sch.t_end_ms[:-1]])
        acts, clamped = [], False
        for t, m, v in zip(starts, sch.mode, sch.value):
            if m == MODE_VOLTAGE:
                acts.append(Action(float(t), "clamp", float(v)))
            else:
                if clamped:
                    acts.append(Action(float(t), "clamp", None))
                acts.append(Action(float(t), "current", float(v)))
            clamped = m == MODE_VOLTAGE
        return acts


# -- simpy process bodies ---------------------------------------------------------------------------------------

def play_actions(experiment, *, actions, source: str):
    """simpy process: apply ``actions`` (time-ordered :class:`Action` s) at their times, as ``source``."""
    for a in actions:
        if a.t_ms > experiment.env.now:
            yield experiment.at(a.t_ms)
        if a.kind == "current":
            experiment.set_current(source=source, current_pA=a.value)
        else:
            experiment.set_clamp(source=source, clamp_mV=a.value)


def spike_triggered_pulses(experiment, *, amplitude_pA: float, delay_ms: float, duration_ms: float,
                           max_pulses: int | None = None, start_ms: float = 0.0,
                           source: str = "spike_triggered_pulses"):
    """simpy process: a current pulse ``delay_ms`` after the exact crossing time of each spike.

    Spikes from ``start_ms`` on trigger; after ``max_pulses`` triggers (None: no limit) it stops listening.
    Pulses that overlap (a spike during an earlier pulse's delay or pulse) add.
    """
    env = experiment.env
    if start_ms > env.now:
        yield experiment.at(start_ms)
    n = 0
    while max_pulses is None or n < max_pulses:
        t_spike = yield experiment.next_spike()
        env.process(_delayed_pulse(experiment, t_on_ms=t_spike + delay_ms, amplitude_pA=amplitude_pA,
                                   duration_ms=duration_ms, source=source, key=n))
        n += 1


def _delayed_pulse(experiment, *, t_on_ms, amplitude_pA, duration_ms, source, key):
    yield experiment.at(t_on_ms)
    experiment.set_current(source=source, current_pA=amplitude_pA, key=key)
    yield experiment.at(t_on_ms + duration_ms)
    experiment.set_current(source=source, current_pA=0.0, key=key)


def stop_after_spikes(experiment, *, n_spikes: int = 1, delay_ms: float = 0.0, source: str = "stop_after_spikes"):
    """simpy process: stop the experiment ``delay_ms`` after the exact crossing of the ``n_spikes``-th spike."""
    t_spike = None
    for _ in range(n_spikes):
        t_spike = yield experiment.next_spike()
    if delay_ms > 0:
        yield experiment.at(t_spike + delay_ms)
    experiment.stop(source=source)


def release_transmitter(experiment, *, synapse: str, times_ms, concentration_mM: float, pulse_ms: float,
                        source: str = "release_transmitter"):
    """simpy process: square transmitter pulses (``concentration_mM`` for ``pulse_ms``) in ``synapse``'s cleft.

    Each release raises the cleft concentration by ``concentration_mM`` and lowers it again ``pulse_ms``
    later; overlapping pulses add.
    """
    for k, t in enumerate(times_ms):
        if t > experiment.env.now:
            yield experiment.at(t)
        experiment.env.process(_transmitter_pulse(experiment, synapse=synapse, concentration_mM=concentration_mM,
                                                  pulse_ms=pulse_ms, source=source, key=k))


def _transmitter_pulse(experiment, *, synapse, concentration_mM, pulse_ms, source, key):
    t_on = experiment.env.now
    experiment.set_ligand(source=source, synapse=synapse, concentration_mM=concentration_mM, key=key)
    yield experiment.at(t_on + pulse_ms)
    experiment.set_ligand(source=source, synapse=synapse, concentration_mM=0.0, key=key)


# -- current clamp ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CurrentStep(Protocol):
    """A rectangular current step: ``amplitude`` from ``start_ms`` for ``duration_ms`` (default: to the end).

    Give the amplitude either as ``amplitude_pA`` or as a density ``amplitude_uA_cm2`` (scaled by the patch
    area), not both. ``holding_pA`` flows outside the step.
    """

    amplitude_pA: float | None = None
    amplitude_uA_cm2: float | None = None
    start_ms: float = 0.0
    duration_ms: float = math.inf
    holding_pA: float = 0.0

    def __post_init__(self):
        if (self.amplitude_pA is None) == (self.amplitude_uA_cm2 is None):
            raise ValueError("CurrentStep: give exactly one of amplitude_pA and amplitude_uA_cm2")
        amp = self.amplitude_pA if self.amplitude_pA is not None else self.amplitude_uA_cm2
        if not math.isfinite(float(amp)):
            name = "amplitude_pA" if self.amplitude_pA is not None else "amplitude_uA_cm2"
            raise ValueError(f"CurrentStep.{name} must be finite, got {amp!r}")
        if not math.isfinite(float(self.holding_pA)):
            raise ValueError(f"CurrentStep.holding_pA must be finite, got {self.holding_pA!r}")
        _check_time("CurrentStep", "start_ms", self.start_ms)
        _check_time("CurrentStep", "duration_ms", self.duration_ms, allow_inf=True)

    def amplitude_in_pA(self, area_um2: float) -> float:
        return _in_pA(self, "amplitude_pA", "amplitude_uA_cm2", area_um2)

    def validate(self, *, t_stop_ms, patch=None):
        t_stop = _check_run("CurrentStep", t_stop_ms)
        if self.start_ms > 0:
            _check_starts_before_end("CurrentStep", "the step starts", self.start_ms, t_stop)

    def actions(self, *, t_stop_ms, area_um2, seed=None):
        acts = [Action(0.0, "current", float(self.holding_pA)),
                Action(float(self.start_ms), "current", self.amplitude_in_pA(area_um2))]
        end = self.start_ms + self.duration_ms
        if end < t_stop_ms:
            acts.append(Action(float(end), "current", float(self.holding_pA)))
        return acts


@dataclass(frozen=True, kw_only=True)
class CurrentPulse(Protocol):
    """One rectangular current pulse of ``duration_ms`` from ``start_ms`` (amplitude in pA or µA/cm²)."""

    amplitude_pA: float | None = None
    amplitude_uA_cm2: float | None = None
    start_ms: float
    duration_ms: float

    def __post_init__(self):
        _one_of("CurrentPulse", self, "amplitude_pA", "amplitude_uA_cm2")
        _check_time("CurrentPulse", "start_ms", self.start_ms)
        _check_positive("CurrentPulse", "duration_ms", self.duration_ms)

    def validate(self, *, t_stop_ms, patch=None):
        t_stop = _check_run("CurrentPulse", t_stop_ms)
        _check_starts_before_end("CurrentPulse", "the pulse starts", self.start_ms, t_stop)

    def actions(self, *, t_stop_ms, area_um2, seed=None):
        amp = _in_pA(self, "amplitude_pA", "amplitude_uA_cm2", area_um2)
        return [Action(float(self.start_ms), "current", amp),
                Action(float(self.start_ms + self.duration_ms), "current", 0.0)]


@dataclass(frozen=True, kw_only=True)
class PulseTrain(Protocol):
    """``n_pulses`` rectangular pulses of ``duration_ms``, onsets ``interval_ms`` apart from ``start_ms``.

    Onset ``k`` is at ``start_ms + k * interval_ms`` (computed so, not accumulated). ``interval_ms`` must be
    at least ``duration_ms`` (pulses of one train do not overlap; combine trains to overlap them).
    """

    amplitude_pA: float | None = None
    amplitude_uA_cm2: float | None = None
    start_ms: float
    duration_ms: float
    interval_ms: float
    n_pulses: int

    def __post_init__(self):
        _one_of("PulseTrain", self, "amplitude_pA", "amplitude_uA_cm2")
        _check_time("PulseTrain", "start_ms", self.start_ms)
        _check_positive("PulseTrain", "duration_ms", self.duration_ms)
        _check_positive("PulseTrain", "interval_ms", self.interval_ms)
        _check_count("PulseTrain", "n_pulses", self.n_pulses)
        if self.interval_ms < self.duration_ms:
            raise ValueError(f"PulseTrain.interval_ms ({self.interval_ms!r}) must be >= duration_ms "
                             f"({self.duration_ms!r}): onsets are interval_ms apart and pulses may not overlap")

    def onsets_ms(self) -> np.ndarray:
        return self.start_ms + self.interval_ms * np.arange(self.n_pulses)

    def validate(self, *, t_stop_ms, patch=None):
        t_stop = _check_run("PulseTrain", t_stop_ms)
        _check_starts_before_end("PulseTrain", f"pulse {self.n_pulses} starts", float(self.onsets_ms()[-1]), t_stop)

    def actions(self, *, t_stop_ms, area_um2, seed=None):
        amp = _in_pA(self, "amplitude_pA", "amplitude_uA_cm2", area_um2)
        acts = []
        for t in self.onsets_ms():
            acts += [Action(float(t), "current", amp), Action(float(t + self.duration_ms), "current", 0.0)]
        return acts


@dataclass(frozen=True, kw_only=True)
class PairedPulse(Protocol):
    """A conditioning pulse and a test pulse whose onsets are ``interval_ms`` apart.

    Amplitudes in pA (``conditioning_pA``, ``test_pA``) or µA/cm² (``conditioning_uA_cm2``,
    ``test_uA_cm2``); ``duration_ms`` is the length of both pulses unless ``test_duration_ms`` is given. The
    classic use is the refractory period: the test-pulse threshold relative to the single-pulse threshold
    as a function of the interval (Hodgkin & Huxley 1952, doi:10.1113/jphysiol.1952.sp004764, Fig. 20).
    """

    conditioning_pA: float | None = None
    conditioning_uA_cm2: float | None = None
    test_pA: float | None = None
    test_uA_cm2: float | None = None
    interval_ms: float
    start_ms: float = 1.0
    duration_ms: float = 0.5
    test_duration_ms: float | None = None

    def __post_init__(self):
        _one_of("PairedPulse", self, "conditioning_pA", "conditioning_uA_cm2")
        _one_of("PairedPulse", self, "test_pA", "test_uA_cm2")
        _check_time("PairedPulse", "start_ms", self.start_ms)
        _check_positive("PairedPulse", "duration_ms", self.duration_ms)
        if self.test_duration_ms is not None:
            _check_positive("PairedPulse", "test_duration_ms", self.test_duration_ms)
        _check_positive("PairedPulse", "interval_ms", self.interval_ms)
        if self.interval_ms < self.duration_ms:
            raise ValueError(f"PairedPulse.interval_ms ({self.interval_ms!r}) is onset to onset and must be >= the "
                             f"conditioning duration_ms ({self.duration_ms!r})")

    @property
    def test_start_ms(self) -> float:
        return float(self.start_ms + self.interval_ms)

    def validate(self, *, t_stop_ms, patch=None):
        t_stop = _check_run("PairedPulse", t_stop_ms)
        _check_starts_before_end("PairedPulse", "the test pulse starts", self.test_start_ms, t_stop)

    def actions(self, *, t_stop_ms, area_um2, seed=None):
        cond = _in_pA(self, "conditioning_pA", "conditioning_uA_cm2", area_um2)
        test = _in_pA(self, "test_pA", "test_uA_cm2", area_um2)
        t_dur = self.duration_ms if self.test_duration_ms is None else self.test_duration_ms
        t1 = self.test_start_ms
        return [Action(float(self.start_ms), "current", cond),
                Action(float(self.start_ms + self.duration_ms), "current", 0.0),
                Action(t1, "current", test), Action(float(t1 + t_dur), "current", 0.0)]


@dataclass(frozen=True, kw_only=True)
class CurrentRamp(Protocol):
    """A current ramp from ``from_*`` to ``to_*`` over ``duration_ms``, declared as a staircase.

    The ramp is ``n = ceil(duration_ms / step_ms)`` stairs of ``step_ms`` (the last one shorter if
    ``step_ms`` does not divide the duration); stair ``k`` holds the ramp's value at its midpoint, so the
    staircase carries the same charge as the ramp. The current is 0 before and after. Amplitudes in pA
    (``from_pA``, ``to_pA``) or µA/cm² (``from_uA_cm2``, ``to_uA_cm2``), both ends in the same unit.
    """

    from_pA: float | None = None
    to_pA: float | None = None
    from_uA_cm2: float | None = None
    to_uA_cm2: float | None = None
    start_ms: float
    duration_ms: float
    step_ms: float

    def __post_init__(self):
        pa = (self.from_pA is not None, self.to_pA is not None)
        dens = (self.from_uA_cm2 is not None, self.to_uA_cm2 is not None)
        if not ((all(pa) and not any(dens)) or (all(dens) and not any(pa))):
            raise ValueError("CurrentRamp: give from_pA and to_pA, or from_uA_cm2 and to_uA_cm2 (both ends, one unit)"
                             f"; got from_pA={self.from_pA!r}, to_pA={self.to_pA!r}, "
                             f"from_uA_cm2={self.from_uA_cm2!r}, to_uA_cm2={self.to_uA_cm2!r}")
        for name in (("from_pA", "to_pA") if all(pa) else ("from_uA_cm2", "to_uA_cm2")):
            _check_real("CurrentRamp", name, getattr(self, name))
        _check_time("CurrentRamp", "start_ms", self.start_ms)
        _check_positive("CurrentRamp", "duration_ms", self.duration_ms)
        _check_positive("CurrentRamp", "step_ms", self.step_ms)

    def stair_edges_ms(self) -> np.ndarray:
        """Stair boundaries, from ``start_ms`` to ``start_ms + duration_ms`` (ms)."""
        n = max(int(math.ceil(self.duration_ms / self.step_ms - 1e-9)), 1)
        edges = self.start_ms + self.step_ms * np.arange(n + 1)
        edges[-1] = self.start_ms + self.duration_ms
        return edges

    def validate(self, *, t_stop_ms, patch=None):
        t_stop = _check_run("CurrentRamp", t_stop_ms)
        _check_starts_before_end("CurrentRamp", "the ramp starts", self.start_ms, t_stop)

    def actions(self, *, t_stop_ms, area_um2, seed=None):
        a = _in_pA(self, "from_pA", "from_uA_cm2", area_um2)
        b = _in_pA(self, "to_pA", "to_uA_cm2", area_um2)
        edges = self.stair_edges_ms()
        mid = 0.5 * (edges[:-1] + edges[1:])
        values = a + (b - a) * (mid - self.start_ms) / self.duration_ms
        acts = [Action(float(t), "current", float(v)) for t, v in zip(edges[:-1], values)]
        acts.append(Action(float(edges[-1]), "current", 0.0))
        return acts


@dataclass(frozen=True, kw_only=True)
class NoisyCurrent(Protocol):
    """Ornstein–Uhlenbeck current, piecewise constant on a grid of ``dt_ms``, from ``start_ms``.

    On ``[t_k, t_k + dt_ms)``, ``t_k = start_ms + k dt_ms``, the current is ``x_k``, the OU process sampled
    exactly at the grid points (no Euler error):

    .. math::

        x_0 = \\mu + \\sigma \\xi_0, \\qquad
        x_{k+1} = \\mu + (x_k - \\mu) e^{-dt/\\tau} + \\sigma \\sqrt{1 - e^{-2 dt/\\tau}}\\, \\xi_{k+1}

    with ``\\xi_k`` independent standard normals drawn in order by ``numpy.random.Generator(PCG64(stream))
    .standard_normal``; the process starts stationary (mean ``mean``, standard deviation ``sigma``,
    correlation time ``tau_ms``). The stream is the protocol's own (module docstring): for a run seeded with
    ``S`` and this protocol at position ``i``, ``SeedSequence(S.entropy, spawn_key=S.spawn_key + (3, i))``;
    with ``seed`` given, ``SeedSequence(seed)`` (frozen noise, the same in every trial).

    Amplitudes in pA (``mean_pA``, ``sigma_pA``) or µA/cm² (``mean_uA_cm2``, ``sigma_uA_cm2``).

    References
    ----------
    Uhlenbeck GE, Ornstein LS (1930) Phys Rev 36:823-841. doi:10.1103/PhysRev.36.823
    Gillespie DT (1996) Phys Rev E 54:2084-2091. doi:10.1103/PhysRevE.54.2084 (the exact update)
    """

    mean_pA: float | None = None
    sigma_pA: float | None = None
    mean_uA_cm2: float | None = None
    sigma_uA_cm2: float | None = None
    tau_ms: float
    dt_ms: float = 0.05
    start_ms: float = 0.0
    duration_ms: float = math.inf
    seed: int | None = None
    stochastic: ClassVar[bool] = True

    def __post_init__(self):
        pa = (self.mean_pA is not None, self.sigma_pA is not None)
        dens = (self.mean_uA_cm2 is not None, self.sigma_uA_cm2 is not None)
        if not ((all(pa) and not any(dens)) or (all(dens) and not any(pa))):
            raise ValueError("NoisyCurrent: give mean_pA and sigma_pA, or mean_uA_cm2 and sigma_uA_cm2 (one unit); "
                             f"got mean_pA={self.mean_pA!r}, sigma_pA={self.sigma_pA!r}, "
                             f"mean_uA_cm2={self.mean_uA_cm2!r}, sigma_uA_cm2={self.sigma_uA_cm2!r}")
        mean_name, sigma_name = ("mean_pA", "sigma_pA") if all(pa) else ("mean_uA_cm2", "sigma_uA_cm2")
        _check_real("NoisyCurrent", mean_name, getattr(self, mean_name))
        _check_time("NoisyCurrent", sigma_name, getattr(self, sigma_name))
        _check_positive("NoisyCurrent", "tau_ms", self.tau_ms)
        _check_positive("NoisyCurrent", "dt_ms", self.dt_ms)
        _check_time("NoisyCurrent", "start_ms", self.start_ms)
        _check_positive("NoisyCurrent", "duration_ms", self.duration_ms, allow_inf=True)
        if self.seed is not None and not isinstance(self.seed, (int, np.integer, np.random.SeedSequence)):
            raise ValueError(f"NoisyCurrent.seed must be None, an int or a SeedSequence, got {self.seed!r}")

    def validate(self, *, t_stop_ms, patch=None):
        t_stop = _check_run("NoisyCurrent", t_stop_ms)
        _check_starts_before_end("NoisyCurrent", "the noise starts", self.start_ms, t_stop)

    def grid_ms(self, t_stop_ms: float) -> np.ndarray:
        """Grid points ``start_ms + k dt_ms`` before the end of the noise (or of the run)."""
        end = min(self.start_ms + self.duration_ms, t_stop_ms)
        n = max(int(math.ceil((end - self.start_ms) / self.dt_ms - 1e-9)), 1)
        return self.start_ms + self.dt_ms * np.arange(n)

    def values_pA(self, *, t_stop_ms: float, area_um2: float, seed) -> np.ndarray:
        """The OU values ``x_k`` (pA) on :meth:`grid_ms`, from the stream ``seed`` (a SeedSequence)."""
        if self.mean_pA is not None:
            mu, sigma = float(self.mean_pA), float(self.sigma_pA)
        else:
            mu = uA_per_cm2_to_pA(self.mean_uA_cm2, area_um2)
            sigma = uA_per_cm2_to_pA(self.sigma_uA_cm2, area_um2)
        n = self.grid_ms(t_stop_ms).size
        xi = np.random.Generator(np.random.PCG64(seed)).standard_normal(n)
        rho = math.exp(-self.dt_ms / self.tau_ms)
        kick = sigma * math.sqrt(-math.expm1(-2.0 * self.dt_ms / self.tau_ms))
        x = np.empty(n)
        x[0] = mu + sigma * xi[0]
        for k in range(1, n):
            x[k] = mu + (x[k - 1] - mu) * rho + kick * xi[k]
        return x

    def actions(self, *, t_stop_ms, area_um2, seed=None):
        stream = self._stream(seed)
        grid = self.grid_ms(t_stop_ms)
        x = self.values_pA(t_stop_ms=t_stop_ms, area_um2=area_um2, seed=stream)
        acts = [Action(float(t), "current", float(v)) for t, v in zip(grid, x)]
        end = self.start_ms + self.duration_ms
        if end < t_stop_ms:
            acts.append(Action(float(end), "current", 0.0))
        return acts


@dataclass(frozen=True, kw_only=True)
class CurrentWaveform(Protocol):
    """An arbitrary piecewise-constant current from arrays.

    ``t_ms`` holds ``n + 1`` strictly increasing edges and the amplitude ``n`` values (``amplitude_pA`` or
    ``amplitude_uA_cm2``): value ``i`` flows on ``[t_ms[i], t_ms[i+1])``, and 0 before ``t_ms[0]`` and from
    ``t_ms[-1]`` on.
    """

    t_ms: tuple
    amplitude_pA: tuple | None = None
    amplitude_uA_cm2: tuple | None = None

    def __post_init__(self):
        if (self.amplitude_pA is None) == (self.amplitude_uA_cm2 is None):
            raise ValueError("CurrentWaveform: give exactly one of amplitude_pA and amplitude_uA_cm2")
        name = "amplitude_pA" if self.amplitude_pA is not None else "amplitude_uA_cm2"
        t = np.asarray(self.t_ms, dtype=float).reshape(-1)
        v = np.asarray(getattr(self, name), dtype=float).reshape(-1)
        if t.size < 2:
            raise ValueError(f"CurrentWaveform.t_ms needs at least 2 edges, got {t.size}")
        if not (np.all(np.isfinite(t)) and t[0] >= 0 and np.all(np.diff(t) > 0)):
            bad = np.flatnonzero(~(np.diff(t) > 0))
            where = (f" (t_ms[{bad[0]}] = {float(t[bad[0]])!r} >= t_ms[{bad[0] + 1}] = {float(t[bad[0] + 1])!r})"
                     if bad.size else "")
            raise ValueError(f"CurrentWaveform.t_ms must be finite, >= 0 and strictly increasing{where}; negative or "
                             "zero-length intervals are not allowed")
        if v.size != t.size - 1:
            raise ValueError(f"CurrentWaveform.{name} needs one value per interval: {t.size - 1} for {t.size} edges, "
                             f"got {v.size}")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"CurrentWaveform.{name} must be finite, got {float(v[~np.isfinite(v)][0])!r}")
        object.__setattr__(self, "t_ms", tuple(float(x) for x in t))
        object.__setattr__(self, name, tuple(float(x) for x in v))

    def validate(self, *, t_stop_ms, patch=None):
        t_stop = _check_run("CurrentWaveform", t_stop_ms)
        _check_starts_before_end("CurrentWaveform", "the waveform starts", self.t_ms[0], t_stop)

    def actions(self, *, t_stop_ms, area_um2, seed=None):
        if self.amplitude_pA is not None:
            v = [float(x) for x in self.amplitude_pA]
        else:
            v = [uA_per_cm2_to_pA(x, area_um2) for x in self.amplitude_uA_cm2]
        acts = [Action(t, "current", x) for t, x in zip(self.t_ms[:-1], v)]
        acts.append(Action(self.t_ms[-1], "current", 0.0))
        return acts


# -- voltage clamp ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VoltageStep(Protocol):
    """Voltage clamp: ``holding_mV``, then ``step_mV`` from ``start_ms`` for ``duration_ms``, then holding.

    The clamp holds for the whole run. The clamp current is the ``I_clamp_pA`` column of the trace.
    """

    step_mV: float
    holding_mV: float = -65.0
    start_ms: float = 0.0
    duration_ms: float = math.inf

    def __post_init__(self):
        lo, hi = VALIDATION_RANGE_MV
        for name in ("step_mV", "holding_mV"):
            v = float(getattr(self, name))
            if not (lo <= v <= hi):
                raise ValueError(f"VoltageStep.{name} must lie in {lo}..{hi} mV, got {v!r}")
        _check_time("VoltageStep", "start_ms", self.start_ms)
        _check_time("VoltageStep", "duration_ms", self.duration_ms, allow_inf=True)

    def validate(self, *, t_stop_ms, patch=None):
        t_stop = _check_run("VoltageStep", t_stop_ms)
        if self.start_ms > 0:
            _check_starts_before_end("VoltageStep", "the step starts", self.start_ms, t_stop)

    def actions(self, *, t_stop_ms, area_um2, seed=None):
        acts = [Action(0.0, "clamp", float(self.holding_mV)),
                Action(float(self.start_ms), "clamp", float(self.step_mV))]
        end = self.start_ms + self.duration_ms
        if end < t_stop_ms:
            acts.append(Action(float(end), "clamp", float(self.holding_mV)))
        return acts


@dataclass(frozen=True, kw_only=True)
class VoltageClamp(Protocol):
    """Voltage clamp through a sequence of levels: holding, ``levels_mV[i]`` for ``durations_ms[i]``, holding.

    From 0 to ``start_ms`` and after the last level the membrane is held at ``holding_mV``; with
    ``holding_mV=None`` it is not clamped there (current clamp), so the clamp covers only the levels. The
    last duration may be ``inf`` (to the end of the run).
    """

    levels_mV: tuple
    durations_ms: tuple
    holding_mV: float | None = -65.0
    start_ms: float = 0.0

    def __post_init__(self):
        levels = tuple(self.levels_mV) if np.ndim(self.levels_mV) else (self.levels_mV,)
        durs = tuple(self.durations_ms) if np.ndim(self.durations_ms) else (self.durations_ms,)
        if not levels or len(levels) != len(durs):
            raise ValueError(f"VoltageClamp: levels_mV and durations_ms must be non-empty and of equal length, got "
                             f"{len(levels)} levels and {len(durs)} durations")
        levels = tuple(_check_clamp_level("VoltageClamp", f"levels_mV[{i}]", v) for i, v in enumerate(levels))
        durs = tuple(_check_positive("VoltageClamp", f"durations_ms[{i}]", d, allow_inf=i == len(durs) - 1)
                     for i, d in enumerate(durs))
        if self.holding_mV is not None:
            _check_clamp_level("VoltageClamp", "holding_mV", self.holding_mV)
        _check_time("VoltageClamp", "start_ms", self.start_ms)
        object.__setattr__(self, "levels_mV", levels)
        object.__setattr__(self, "durations_ms", durs)

    def edges_ms(self) -> np.ndarray:
        """Start of each level and end of the last (ms)."""
        return self.start_ms + np.concatenate([[0.0], np.cumsum(self.durations_ms)])

    def validate(self, *, t_stop_ms, patch=None):
        t_stop = _check_run("VoltageClamp", t_stop_ms)
        edges = self.edges_ms()
        for i in range(len(self.levels_mV)):
            if self.start_ms > 0 or i > 0 or self.holding_mV is None:
                _check_starts_before_end("VoltageClamp", f"level {i} ({self.levels_mV[i]} mV) starts", float(edges[i]),
                                         t_stop)

    def actions(self, *, t_stop_ms, area_um2, seed=None):
        acts = []
        if self.holding_mV is not None:
            acts.append(Action(0.0, "clamp", float(self.holding_mV)))
        edges = self.edges_ms()
        for t, v in zip(edges[:-1], self.levels_mV):
            acts.append(Action(float(t), "clamp", float(v)))
        if edges[-1] < t_stop_ms:
            acts.append(Action(float(edges[-1]), "clamp", None if self.holding_mV is None else float(self.holding_mV)))
        return acts


def activation_protocols(*, test_mV, holding_mV: float = -65.0, start_ms: float = 1.0,
                         duration_ms: float = 10.0) -> list:
    """Activation family: from ``holding_mV`` a step to each of ``test_mV`` for ``duration_ms``.

    Returns one :class:`VoltageStep` per test level, in the given order. The peak (Na) or late (K) clamp
    current against the test level is the activation curve.
    """
    return [VoltageStep(float(v), holding_mV=holding_mV, start_ms=start_ms, duration_ms=duration_ms)
            for v in np.atleast_1d(test_mV)]


def inactivation_protocols(*, prepulse_mV, prepulse_ms: float = 50.0, test_mV: float = 0.0, test_ms: float = 5.0,
                           holding_mV: float = -65.0, start_ms: float = 1.0) -> list:
    """Steady-state inactivation family (prepulse protocol): ``prepulse_mV[i]`` for ``prepulse_ms``, then test.

    Returns one :class:`VoltageClamp` per prepulse level. The peak test current against the prepulse level,
    normalised, is the inactivation curve (``h∞`` for Hodgkin–Huxley when the prepulse is long against τ_h).

    References
    ----------
    Hodgkin AL, Huxley AF (1952) J Physiol 116:497-506. doi:10.1113/jphysiol.1952.sp004719
    """
    return [VoltageClamp(levels_mV=(float(v), float(test_mV)), durations_ms=(prepulse_ms, test_ms),
                         holding_mV=holding_mV, start_ms=start_ms) for v in np.atleast_1d(prepulse_mV)]


def recovery_protocols(*, intervals_ms, conditioning_mV: float = 0.0, conditioning_ms: float = 20.0,
                       test_mV: float = 0.0, test_ms: float = 5.0, holding_mV: float = -65.0,
                       recovery_mV: float | None = None, start_ms: float = 1.0) -> list:
    """Recovery-from-inactivation family: conditioning step, ``intervals_ms[i]`` at ``recovery_mV``, test step.

    ``recovery_mV`` defaults to ``holding_mV``. Returns one :class:`VoltageClamp` per interval (each > 0). The
    peak test current over the peak conditioning current against the interval is the recovery curve
    (``1 - exp(-t/τ_h)`` for Hodgkin–Huxley after complete inactivation).
    """
    rec = holding_mV if recovery_mV is None else recovery_mV
    return [VoltageClamp(levels_mV=(float(conditioning_mV), float(rec), float(test_mV)),
                         durations_ms=(conditioning_ms, float(dt), test_ms), holding_mV=holding_mV, start_ms=start_ms)
            for dt in np.atleast_1d(intervals_ms)]


# -- closed loop ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class SpikeTriggeredPulse(Protocol):
    """Closed loop: a current pulse ``delay_ms`` after the exact crossing time of every spike.

    Spikes from ``start_ms`` on trigger a pulse (at most ``max_pulses``; None: every spike). The pulse starts
    exactly at ``t_spike + delay_ms``. Amplitude in pA or µA/cm².
    """

    amplitude_pA: float | None = None
    amplitude_uA_cm2: float | None = None
    delay_ms: float
    duration_ms: float
    max_pulses: int | None = None
    start_ms: float = 0.0
    open_loop: ClassVar[bool] = False

    def __post_init__(self):
        _one_of("SpikeTriggeredPulse", self, "amplitude_pA", "amplitude_uA_cm2")
        _check_time("SpikeTriggeredPulse", "delay_ms", self.delay_ms)
        _check_positive("SpikeTriggeredPulse", "duration_ms", self.duration_ms)
        _check_time("SpikeTriggeredPulse", "start_ms", self.start_ms)
        if self.max_pulses is not None:
            _check_count("SpikeTriggeredPulse", "max_pulses", self.max_pulses)

    def validate(self, *, t_stop_ms, patch=None):
        t_stop = _check_run("SpikeTriggeredPulse", t_stop_ms)
        if self.start_ms > 0:
            _check_starts_before_end("SpikeTriggeredPulse", "listening starts", self.start_ms, t_stop)

    def process(self, experiment, *, source, seed=None):
        amp = _in_pA(self, "amplitude_pA", "amplitude_uA_cm2", experiment.patch.area_um2)
        return spike_triggered_pulses(experiment, amplitude_pA=amp, delay_ms=self.delay_ms,
                                      duration_ms=self.duration_ms, max_pulses=self.max_pulses,
                                      start_ms=self.start_ms, source=source)


@dataclass(frozen=True, kw_only=True)
class StopAfterSpikes(Protocol):
    """Closed loop: end the run ``delay_ms`` after the exact crossing time of the ``n_spikes``-th spike."""

    n_spikes: int = 1
    delay_ms: float = 0.0
    open_loop: ClassVar[bool] = False

    def __post_init__(self):
        _check_count("StopAfterSpikes", "n_spikes", self.n_spikes)
        _check_time("StopAfterSpikes", "delay_ms", self.delay_ms)

    def process(self, experiment, *, source, seed=None):
        return stop_after_spikes(experiment, n_spikes=self.n_spikes, delay_ms=self.delay_ms, source=source)


def _check_synapse(owner, synapse, patch):
    if patch is None:
        return
    names = [s.name for s in patch.schemes]
    if synapse not in names:
        raise ValueError(f"{owner}.synapse {synapse!r} is not a channel population of the patch; populations are "
                         f"{names}")
    scheme = patch.schemes[names.index(synapse)]
    if not scheme.ligands:
        raise ValueError(f"{owner}.synapse {synapse!r} has no ligand-binding transition, so transmitter cannot act "
                         "on it (build it with stochion.channels.ampa_receptor or LigandBinding rates)")


class _Release(Protocol):
    """Transmitter release into one synapse's cleft: square pulses of concentration (closed form below)."""

    open_loop: ClassVar[bool] = False  # ligand concentrations are not part of a Schedule

    def _check_common(self, owner):
        if not (isinstance(self.synapse, str) and self.synapse):
            raise ValueError(f"{owner}.synapse must be the (non-empty) name of a ligand-gated population, got "
                             f"{self.synapse!r}")
        _check_positive(owner, "concentration_mM", self.concentration_mM)
        _check_positive(owner, "pulse_ms", self.pulse_ms)

    def release_times_ms(self, *, t_stop_ms: float, seed=None) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def process(self, experiment, *, source, seed=None):
        times = self.release_times_ms(t_stop_ms=experiment.t_stop_ms, seed=self._stream(seed))
        return release_transmitter(experiment, synapse=self.synapse, times_ms=times,
                                   concentration_mM=self.concentration_mM, pulse_ms=self.pulse_ms, source=source)


@dataclass(frozen=True, kw_only=True)
class TransmitterRelease(_Release):
    """Presynaptic release at the given times: each a square pulse of ``concentration_mM`` for ``pulse_ms``.

    The default 1 mM for 1 ms is the pulse of Destexhe, Mainen & Sejnowski (1994),
    doi:10.1162/neco.1994.6.1.14. ``synapse`` is the name of a ligand-gated population of the patch.
    """

    synapse: str
    times_ms: tuple
    concentration_mM: float = 1.0
    pulse_ms: float = 1.0

    def __post_init__(self):
        self._check_common("TransmitterRelease")
        t = np.atleast_1d(np.asarray(self.times_ms, dtype=float))
        if t.size == 0 or not (np.all(np.isfinite(t)) and np.all(t >= 0) and np.all(np.diff(t) >= 0)):
            raise ValueError(f"TransmitterRelease.times_ms must be non-empty, finite, >= 0 and sorted, got "
                             f"{t.tolist()}")
        object.__setattr__(self, "times_ms", tuple(float(x) for x in t))

    def validate(self, *, t_stop_ms, patch=None):
        t_stop = _check_run("TransmitterRelease", t_stop_ms)
        _check_starts_before_end("TransmitterRelease", "the last release", self.times_ms[-1], t_stop)
        _check_synapse("TransmitterRelease", self.synapse, patch)

    def release_times_ms(self, *, t_stop_ms, seed=None):
        return np.asarray(self.times_ms)


@dataclass(frozen=True, kw_only=True)
class RegularRelease(_Release):
    """``n_releases`` releases ``interval_ms`` apart from ``start_ms`` (square pulses, see TransmitterRelease)."""

    synapse: str
    start_ms: float
    interval_ms: float
    n_releases: int
    concentration_mM: float = 1.0
    pulse_ms: float = 1.0

    def __post_init__(self):
        self._check_common("RegularRelease")
        _check_time("RegularRelease", "start_ms", self.start_ms)
        _check_positive("RegularRelease", "interval_ms", self.interval_ms)
        _check_count("RegularRelease", "n_releases", self.n_releases)

    def validate(self, *, t_stop_ms, patch=None):
        t_stop = _check_run("RegularRelease", t_stop_ms)
        last = float(self.start_ms + self.interval_ms * (self.n_releases - 1))
        _check_starts_before_end("RegularRelease", f"release {self.n_releases}", last, t_stop)
        _check_synapse("RegularRelease", self.synapse, patch)

    def release_times_ms(self, *, t_stop_ms, seed=None):
        return self.start_ms + self.interval_ms * np.arange(self.n_releases)


@dataclass(frozen=True, kw_only=True)
class PoissonRelease(_Release):
    """Releases at the events of a Poisson process of ``rate_hz`` on ``[start_ms, stop_ms)``.

    Inter-release intervals are exponential, drawn in order by ``numpy.random.Generator(PCG64(stream))
    .exponential`` from the protocol's own stream (module docstring); ``stop_ms`` defaults to the end of the
    run. With ``seed`` given, the release times are the same in every trial.
    """

    synapse: str
    rate_hz: float
    start_ms: float = 0.0
    stop_ms: float | None = None
    concentration_mM: float = 1.0
    pulse_ms: float = 1.0
    seed: int | None = None
    stochastic: ClassVar[bool] = True

    def __post_init__(self):
        self._check_common("PoissonRelease")
        _check_positive("PoissonRelease", "rate_hz", self.rate_hz)
        _check_time("PoissonRelease", "start_ms", self.start_ms)
        if self.stop_ms is not None:
            _check_positive("PoissonRelease", "stop_ms", self.stop_ms)
            if self.stop_ms <= self.start_ms:
                raise ValueError(f"PoissonRelease.stop_ms ({self.stop_ms!r}) must be after start_ms "
                                 f"({self.start_ms!r})")

    def validate(self, *, t_stop_ms, patch=None):
        t_stop = _check_run("PoissonRelease", t_stop_ms)
        _check_starts_before_end("PoissonRelease", "the release process starts", self.start_ms, t_stop)
        if self.stop_ms is not None and self.stop_ms > t_stop:
            raise ValueError(f"PoissonRelease.stop_ms ({self.stop_ms!r}) is after the end of the run "
                             f"(t_stop_ms={t_stop!r})")
        _check_synapse("PoissonRelease", self.synapse, patch)

    def release_times_ms(self, *, t_stop_ms, seed=None):
        stream = self._stream(seed)
        rng = np.random.Generator(np.random.PCG64(stream))
        stop = t_stop_ms if self.stop_ms is None else self.stop_ms
        mean_isi = 1000.0 / self.rate_hz
        times, t = [], float(self.start_ms)
        while True:
            t += rng.exponential(mean_isi)
            if t >= stop:
                break
            times.append(t)
        return np.asarray(times)
