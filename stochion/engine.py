"""The patch engine: lowers a :class:`~stochion.membrane.Patch` to kernel arrays and runs it.

:func:`lower_patch` is the one seam where Python objects become the plain arrays of the compiled kernels.
:class:`PatchSimulation` holds the state of one run between kernel calls and advances it lazily
(``advance_to``), which is what the simpy experiment layer builds on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ._kernels import batch as K_batch
from ._kernels import patch_ssa as K
from ._kernels.rng import child_seeds, stream_state
from .membrane import Patch
from .rates import GRID_STEP_MV, KIND_TABULATED, VALIDATION_RANGE_MV, LigandBinding, voltage_grid_mV

__all__ = ["LoweredPatch", "lower_patch", "PatchSimulation", "VoltageRunawayError", "run_trials", "TrialsOutput"]


# single-channel events per kernel call before the buffer is handed back (24 bytes each)
_EVENT_BUFFER = 1 << 18


class VoltageRunawayError(ValueError):
    """The membrane voltage left the simulated range (``VALIDATION_RANGE_MV``)."""


@dataclass(frozen=True, eq=False)
class LoweredPatch:
    """A patch as the kernels see it: contiguous arrays over all states of all channel types.

    States of all channel types are concatenated in the order of ``patch.channels``; transitions are sorted by
    source state, ``state_ptr[s]:state_ptr[s+1]`` indexing those leaving ``s``.
    """

    type_names: tuple
    type_offsets: np.ndarray  # state index where each type starts; len n_types + 1
    n_channels: np.ndarray  # per type
    state_labels: tuple  # (type name, state name) per global state
    state_type: np.ndarray
    state_open: np.ndarray  # bool
    state_ptr: np.ndarray
    tr_src: np.ndarray
    tr_dst: np.ndarray
    tr_law: np.ndarray
    tr_factor: np.ndarray  # multiplicity * temperature factor
    tr_scale: np.ndarray  # per-transition factor: 1, or the ligand concentration (mM, initially 0) for binding
    tr_ligand_type: np.ndarray  # channel type whose cleft concentration scales the transition, or -1
    state_g: np.ndarray  # nS when a channel sits in the state
    state_gE: np.ndarray  # nS * mV
    g_leak: float  # nS, constant leak
    gE_leak: float
    C: float  # pF
    law_kind: np.ndarray
    law_par: np.ndarray
    law_table: np.ndarray  # (n_laws, n_edges): law values at the voltage-grid edges
    grid_lo: float
    grid_step: float
    reversal_mV: np.ndarray  # per type
    g_unit_nS: np.ndarray  # per type

    @property
    def n_states(self) -> int:
        return int(self.state_type.size)

    def type_slice(self, k: int) -> slice:
        return slice(int(self.type_offsets[k]), int(self.type_offsets[k + 1]))

    def open_counts(self, counts: np.ndarray) -> np.ndarray:
        """Open channels per type from state counts (last axis = states)."""
        c = np.asarray(counts)
        return np.stack([c[..., self.type_slice(k)][..., self.state_open[self.type_slice(k)]].sum(axis=-1)
                         for k in range(len(self.type_names))], axis=-1)


def lower_patch(patch: Patch) -> LoweredPatch:
    """Compile ``patch`` to kernel arrays (the single Python-object → array seam)."""
    grid = voltage_grid_mV()
    laws, law_index = [], {}

    def law_id(law):
        key = ("id", id(law)) if law.kind == KIND_TABULATED else (type(law).__name__, law.params)
        if key not in law_index:
            law_index[key] = len(laws)
            laws.append(law)
        return law_index[key]

    state_labels, state_type, state_open, state_g, state_gE = [], [], [], [], []
    tr_src, tr_dst, tr_law, tr_factor, tr_lig, state_ptr = [], [], [], [], [], [0]
    offsets, n_channels, reversal, g_unit = [0], [], [], []
    counts = patch.channel_counts
    for k, scheme in enumerate(patch.schemes):
        base = offsets[-1]
        phi = scheme.temperature_factor(patch.temperature_celsius)
        g_nS = scheme.g_unit_pS * 1e-3
        by_source = {s: [] for s in scheme.states}
        for tr in scheme.transitions:
            by_source[tr.source].append(tr)
        for i, s in enumerate(scheme.states):
            is_open = s in scheme.open_states
            state_labels.append((scheme.name, s))
            state_type.append(k)
            state_open.append(is_open)
            state_g.append(g_nS if is_open else 0.0)
            state_gE.append(g_nS * scheme.reversal_mV if is_open else 0.0)
            for tr in by_source[s]:
                tr_src.append(base + i)
                tr_dst.append(base + scheme.index(tr.target))
                tr_law.append(law_id(tr.rate))
                tr_factor.append(tr.multiplicity * phi)
                tr_lig.append(k if isinstance(tr.rate, LigandBinding) else -1)
            state_ptr.append(len(tr_src))
        offsets.append(base + scheme.n_states)
        n_channels.append(counts[scheme.name])
        reversal.append(scheme.reversal_mV)
        g_unit.append(g_nS)

    law_table = np.zeros((len(laws), grid.size))
    for i, law in enumerate(laws):
        law_table[i] = law.evaluate(grid)
    law_par = np.array([law.params for law in laws], dtype=float).reshape(len(laws), 3)

    def i64(x):
        return np.ascontiguousarray(np.asarray(x, dtype=np.int64))

    def f64(x):
        return np.ascontiguousarray(np.asarray(x, dtype=np.float64))

    return LoweredPatch(
        type_names=tuple(s.name for s in patch.schemes),
        type_offsets=i64(offsets),
        n_channels=i64(n_channels),
        state_labels=tuple(state_labels),
        state_type=i64(state_type),
        state_open=np.asarray(state_open, dtype=bool),
        state_ptr=i64(state_ptr),
        tr_src=i64(tr_src),
        tr_dst=i64(tr_dst),
        tr_law=i64(tr_law),
        tr_factor=f64(tr_factor),
        tr_scale=np.where(np.asarray(tr_lig, dtype=np.int64) >= 0, 0.0, 1.0),
        tr_ligand_type=i64(tr_lig),
        state_g=f64(state_g),
        state_gE=f64(state_gE),
        g_leak=float(patch.g_leak_nS),
        gE_leak=float(patch.g_leak_nS * patch.E_leak_mV),
        C=float(patch.capacitance_pF),
        law_kind=i64([law.kind for law in laws]),
        law_par=np.ascontiguousarray(law_par),
        law_table=law_table,
        grid_lo=float(VALIDATION_RANGE_MV[0]),
        grid_step=float(GRID_STEP_MV),
        reversal_mV=f64(reversal),
        g_unit_nS=f64(g_unit),
    )


def stationary_counts(patch: Patch, lowered: LoweredPatch, V_mV: float, rng: np.random.Generator) -> np.ndarray:
    """State counts drawn from the stationary distribution at ``V_mV`` (multinomial per channel type)."""
    counts = np.zeros(lowered.n_states, dtype=np.int64)
    for k, scheme in enumerate(patch.schemes):
        p = scheme.stationary(V_mV, patch.temperature_celsius)
        counts[lowered.type_slice(k)] = rng.multinomial(int(lowered.n_channels[k]), p)
    return counts


def _counts_from_states(patch: Patch, lowered: LoweredPatch, initial_states) -> np.ndarray:
    """Counts from ``{type name: {state: count}}`` (every channel of a mentioned type must be placed)."""
    counts = np.full(lowered.n_states, -1, dtype=np.int64)
    given = dict(initial_states)
    unknown = set(given) - set(lowered.type_names)
    if unknown:
        raise ValueError(f"initial_states names unknown channel types {sorted(unknown)}; types are "
                         f"{list(lowered.type_names)}")
    for k, scheme in enumerate(patch.schemes):
        sl = lowered.type_slice(k)
        if scheme.name not in given:
            raise ValueError(f"initial_states has no entry for channel type {scheme.name!r}; give counts for "
                             "every type, or leave initial_states out to draw them from the stationary distribution")
        c = np.zeros(scheme.n_states, dtype=np.int64)
        for state, n in dict(given[scheme.name]).items():
            if not (isinstance(n, (int, np.integer)) and n >= 0):
                raise ValueError(f"initial_states[{scheme.name!r}][{state!r}] must be an integer >= 0, got {n!r}")
            c[scheme.index(state)] = n
        if c.sum() != lowered.n_channels[k]:
            raise ValueError(f"initial_states[{scheme.name!r}] places {int(c.sum())} channels, but the patch has "
                             f"{int(lowered.n_channels[k])} of that type")
        counts[sl] = c
    return counts


def _initial_kernel_state(patch, L, V0_mV, spike_level_mV, seed_sequence, counts=None):
    """Counts, random streams and scalar state of a run starting at ``V0_mV`` (one trial).

    The three child seeds of ``seed_sequence`` are, in order: the initial stationary draw (when ``counts`` is
    not given), the channel stream and the agent stream.
    """
    init_ss, main_ss, agent_ss = child_seeds(seed_sequence, 3)
    if counts is None:
        counts = stationary_counts(patch, L, V0_mV, np.random.Generator(np.random.PCG64(init_ss)))
    fstate = np.zeros(K.N_FSTATE)
    fstate[K.F_V] = V0_mV
    fstate[K.F_EREM] = -1.0  # draw a fresh clock
    fstate[K.F_VMAX] = V0_mV
    istate = np.zeros(K.N_ISTATE, dtype=np.int64)
    istate[K.I_ARMED] = 1 if V0_mV < spike_level_mV else 0
    if not istate[K.I_ARMED]:  # started above the spike level: marked as not a spike of this run
        fstate[K.F_SPK_T] = -1.0
        fstate[K.F_SPK_PEAK] = V0_mV
    return counts, stream_state(main_ss), stream_state(agent_ss), fstate, istate


def _check_finite(name, value, lo=-math.inf, hi=math.inf):
    v = float(value)
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ValueError(f"{name} must be finite and in [{lo}, {hi}], got {value!r}")
    return v


class PatchSimulation:
    """One stochastic run of a patch, advanced piece by piece by the exact kernel.

    Parameters
    ----------
    patch : Patch
    seed : int or numpy.random.SeedSequence
        Root of all randomness of the run: initial states, the channel stream and the agent stream are three
        children of ``SeedSequence(seed)``.
    V0_mV : float, optional
        Initial voltage; default the patch's mean-field resting potential.
    initial_states : mapping, optional
        ``{type: {state: count}}``; default drawn from the stationary distribution at ``V0_mV``.
    track_agents : bool
        Keep every channel's identity and record single-channel events.
    record_dt_ms : float
        Output grid step; samples are taken at ``k * record_dt_ms`` exactly.
    spike_level_mV, rearm_mV : float
        Spikes are upward crossings of ``spike_level_mV``, re-armed once V falls below ``rearm_mV``.
    """

    def __init__(self, patch: Patch, *, seed=None, V0_mV=None, initial_states=None, track_agents=False,
                 record_dt_ms=0.025, spike_level_mV=0.0, rearm_mV=-20.0):
        if not isinstance(patch, Patch):
            raise ValueError(f"patch must be a stochion.Patch, got {patch!r}")
        lo, hi = VALIDATION_RANGE_MV
        self.record_dt_ms = _check_finite("record_dt_ms", record_dt_ms, 1e-6, 1e6)
        if self.record_dt_ms <= 0:
            raise ValueError(f"record_dt_ms must be > 0, got {record_dt_ms!r}")
        self.spike_level_mV = _check_finite("spike_level_mV", spike_level_mV, lo, hi)
        self.rearm_mV = _check_finite("rearm_mV", rearm_mV, lo, hi)
        if not self.rearm_mV < self.spike_level_mV:
            raise ValueError(f"rearm_mV ({rearm_mV!r}) must be below spike_level_mV ({spike_level_mV!r})")
        self.patch = patch
        self.lowered = L = lower_patch(patch)
        self.seed_sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        self.V0_mV = patch.resting_potential_mV() if V0_mV is None else _check_finite("V0_mV", V0_mV, lo, hi)
        given = None if initial_states is None else _counts_from_states(patch, L, initial_states)
        self.counts, self.rng, self.rng_agent, self.fstate, self.istate = _initial_kernel_state(
            patch, L, self.V0_mV, self.spike_level_mV, self.seed_sequence, given)
        self.track_agents = bool(track_agents)
        self.tr_scale = L.tr_scale.copy()
        self._bmax = np.zeros(L.tr_src.size)
        self._ratio = np.zeros(L.tr_src.size)
        self._exit = np.zeros((2, L.n_states))
        self._init_agents()
        self._rec_chunks = []  # (t, V, counts, value, mode)
        self._spk_chunks = []
        self._ev_chunks = []
        self.wall_s = 0.0

    # -- agents ---------------------------------------------------------------------------------------------
    def _init_agents(self):
        L = self.lowered
        if not self.track_agents:
            self.members = np.zeros((1, 1), dtype=np.int32)
            return
        cap = int(max(L.n_channels.max(initial=0), 1))
        n_total = int(L.n_channels.sum())
        self.members = np.zeros((L.n_states, cap), dtype=np.int32)
        c = 0
        for s in range(L.n_states):
            for k in range(int(self.counts[s])):
                self.members[s, k] = c
                c += 1
        # global channel id -> (type, id within type): channels are numbered type by type
        self.channel_type_of = np.repeat(np.arange(len(L.type_names)), L.n_channels)
        type_start = np.concatenate([[0], np.cumsum(L.n_channels)[:-1]])
        self.channel_local_id = np.arange(n_total) - type_start[self.channel_type_of] if n_total else np.zeros(0, int)

    # -- running --------------------------------------------------------------------------------------------
    @property
    def t_ms(self) -> float:
        return float(self.fstate[K.F_T])

    @property
    def V_mV(self) -> float:
        return float(self.fstate[K.F_V])

    @property
    def max_V_mV(self) -> float:
        """Largest voltage reached so far in current clamp (mV)."""
        return float(self.fstate[K.F_VMAX])

    @property
    def n_events(self) -> int:
        return int(self.istate[K.I_EVENTS])

    @property
    def n_candidates(self) -> int:
        return int(self.istate[K.I_CANDIDATES])

    def set_ligand_mM(self, concentrations: dict) -> None:
        """Set the transmitter concentration (mM) seen by ligand-gated populations, ``{type name: mM}``.

        Takes effect for the next ``advance_to``; advance to the present time first (the experiment layer
        does) so that the change happens exactly now.
        """
        L = self.lowered
        for name, conc in dict(concentrations).items():
            if name not in L.type_names:
                raise ValueError(f"set_ligand_mM: unknown channel type {name!r}; types are {list(L.type_names)}")
            k = L.type_names.index(name)
            sel = L.tr_ligand_type == k
            if not sel.any():
                raise ValueError(f"set_ligand_mM: channel type {name!r} has no ligand-binding transition")
            c = _check_finite(f"ligand concentration of {name!r} (mM)", conc, 0.0)
            self.tr_scale[sel] = c

    def advance_to(self, t_ms: float, *, current_pA: float = 0.0, clamp_mV: float | None = None,
                   stop_on_spike: bool = False) -> bool:
        """Run from the present time to ``t_ms`` under a constant current or voltage clamp.

        Returns True if the run stopped early at a spike (only with ``stop_on_spike``); ``t_ms`` then holds
        the exact crossing time.
        """
        t_ms = _check_finite("t_ms", t_ms)
        if t_ms < self.t_ms:
            raise ValueError(f"t_ms={t_ms!r} is before the present time {self.t_ms!r} ms; time only moves forward")
        if clamp_mV is None:
            mode, value = K.MODE_CURRENT, _check_finite("current_pA", current_pA)
        else:
            lo, hi = VALIDATION_RANGE_MV
            mode, value = K.MODE_VOLTAGE, _check_finite("clamp_mV", clamp_mV, lo, hi)
        return self.run_segments(np.array([t_ms]), np.array([mode]), np.array([value]), stop_on_spike=stop_on_spike)

    def run_segments(self, seg_t_end, seg_mode, seg_value, *, stop_on_spike=False) -> bool:
        """Run through piecewise-constant segments (absolute end times, ``MODE_*`` codes, pA or mV values)."""
        seg_t_end = np.ascontiguousarray(seg_t_end, dtype=np.float64)
        seg_mode = np.ascontiguousarray(seg_mode, dtype=np.int64)
        seg_value = np.ascontiguousarray(seg_value, dtype=np.float64)
        if seg_t_end.size == 0:
            return False
        if not (seg_t_end.ndim == seg_mode.ndim == seg_value.ndim == 1 and seg_t_end.size == seg_mode.size
                == seg_value.size):
            raise ValueError("seg_t_end, seg_mode and seg_value must be 1-D arrays of the same length")
        if not np.all(np.isfinite(seg_t_end)) or seg_t_end[0] < self.t_ms or np.any(np.diff(seg_t_end) < 0):
            raise ValueError(f"segment end times must be finite, non-decreasing and not before the present time "
                             f"{self.t_ms!r} ms, got {seg_t_end.tolist()}")
        if not np.all(np.isin(seg_mode, (K.MODE_CURRENT, K.MODE_VOLTAGE))):
            raise ValueError(f"seg_mode must hold {K.MODE_CURRENT} (current) or {K.MODE_VOLTAGE} (voltage clamp), "
                             f"got {np.unique(seg_mode).tolist()}")
        if not np.all(np.isfinite(seg_value)):
            raise ValueError(f"segment values (pA or mV) must be finite, got {seg_value.tolist()}")
        lo, hi = VALIDATION_RANGE_MV
        clamp = seg_value[seg_mode == K.MODE_VOLTAGE]
        if clamp.size and (clamp.min() < lo or clamp.max() > hi):
            raise ValueError(f"voltage-clamp levels must lie in {lo}..{hi} mV, got {clamp.min()}..{clamp.max()}")
        L = self.lowered
        self.istate[K.I_SEG] = 0
        self.istate[K.I_SEG_READY] = 0
        dt = self.record_dt_ms
        spiked = False
        start = time.perf_counter()
        t_target = float(seg_t_end[-1])
        rec_k0 = int(self.istate[K.I_REC_NEXT])
        n_rec = max(int(math.floor(t_target / dt + 1e-9)) + 1 - rec_k0, 0)
        rec_V = np.zeros(n_rec)
        rec_counts = np.zeros((n_rec, L.n_states), dtype=np.int64)
        rec_I = np.zeros(n_rec)
        spk_t, spk_peak, spk_peak_t = np.zeros(256), np.zeros(256), np.zeros(256)
        n_ev_cap = _EVENT_BUFFER if self.track_agents else 0

        def event_buffers():
            return (np.empty(n_ev_cap), np.empty(n_ev_cap, dtype=np.int32), np.empty(n_ev_cap, dtype=np.int16),
                    np.empty(n_ev_cap, dtype=np.int16), np.empty(n_ev_cap))

        ev_t, ev_ch, ev_from, ev_to, ev_V = event_buffers()
        while True:
            self.istate[K.I_N_SPK] = 0
            self.istate[K.I_N_EV] = 0
            status = K.run_patch(
                L.state_ptr, L.tr_dst, L.tr_law, L.tr_factor, self.tr_scale, L.state_g, L.state_gE, L.g_leak,
                L.gE_leak, L.C, L.law_kind, L.law_par, L.law_table, L.grid_lo, L.grid_step,
                seg_t_end, seg_mode, seg_value,
                self.counts, self.fstate, self.istate, self.rng, self.rng_agent, self._bmax, self._ratio, self._exit,
                self.track_agents, self.members,
                dt, rec_k0, rec_V, rec_counts, rec_I,
                self.spike_level_mV, self.rearm_mV, bool(stop_on_spike), spk_t, spk_peak, spk_peak_t,
                ev_t, ev_ch, ev_from, ev_to, ev_V,
            )
            n_spk = int(self.istate[K.I_N_SPK])
            if n_spk:
                self._spk_chunks.append((spk_t[:n_spk].copy(), spk_peak[:n_spk].copy(), spk_peak_t[:n_spk].copy()))
            n_ev = int(self.istate[K.I_N_EV])
            if n_ev:  # hand the filled buffers over (no copy) and take fresh ones
                self._ev_chunks.append((ev_t[:n_ev], ev_ch[:n_ev], ev_from[:n_ev], ev_to[:n_ev], ev_V[:n_ev]))
                ev_t, ev_ch, ev_from, ev_to, ev_V = event_buffers()
            if status in (K.STATUS_EVENTS_FULL, K.STATUS_SPIKES_FULL):
                continue
            if status == K.STATUS_V_OUT_OF_RANGE:
                lo, hi = VALIDATION_RANGE_MV
                seg = min(int(self.istate[K.I_SEG]), seg_t_end.size - 1)
                raise VoltageRunawayError(
                    f"the membrane voltage ran away: V = {self.V_mV:.3f} mV at t = {self.t_ms:.4f} ms left the "
                    f"simulated range {lo}..{hi} mV (segment value {seg_value[seg]!r} "
                    f"{'pA injected' if seg_mode[seg] == K.MODE_CURRENT else 'mV clamp'}); reduce the stimulus "
                    "or check the reversal potentials"
                )
            if status == K.STATUS_SPIKE:
                spiked = True
            break
        n_done = int(self.istate[K.I_REC_NEXT]) - rec_k0
        if n_done:
            k = np.arange(rec_k0, rec_k0 + n_done)
            seg_idx = np.minimum(np.searchsorted(seg_t_end, k * dt, side="right"), seg_t_end.size - 1)
            self._rec_chunks.append((k * dt, rec_V[:n_done], rec_counts[:n_done], rec_I[:n_done], seg_mode[seg_idx]))
        self.wall_s += time.perf_counter() - start
        return spiked

    def open_spike(self):
        """The spike in progress (crossed, not yet re-armed) as (t, peak, peak_t), or None."""
        if self.istate[K.I_ARMED]:
            return None
        return (float(self.fstate[K.F_SPK_T]), float(self.fstate[K.F_SPK_PEAK]), float(self.fstate[K.F_SPK_PEAK_T]))

    def agent_states(self) -> np.ndarray:
        """Each channel's present state (global state index), read from the agents' lists.

        Raises if the lists are not a partition of the channels (each channel in exactly one state, the lists
        as long as the counts): the bookkeeping invariant of agent tracking.
        """
        if not self.track_agents:
            raise ValueError("agent_states needs track_agents=True")
        n_total = int(self.lowered.n_channels.sum())
        state = np.full(n_total, -1, dtype=np.int64)
        for s in range(self.lowered.n_states):
            ids = self.members[s, : self.counts[s]]
            if np.any(state[ids] >= 0) or ids.size != np.unique(ids).size:
                raise AssertionError(f"a channel is listed twice (state {self.lowered.state_labels[s]})")
            state[ids] = s
        if np.any(state < 0):
            raise AssertionError(f"{int(np.sum(state < 0))} channels are in no state list")
        return state

    def agent_counts(self) -> np.ndarray:
        """State counts recomputed from the agents' individual states (for consistency checks)."""
        return np.bincount(self.agent_states(), minlength=self.lowered.n_states)


@dataclass
class TrialsOutput:
    """What :func:`run_trials` returns: per-trial spikes, optional traces, final states and counters."""

    spike_t_ms: list  # one array per trial (exact crossing times)
    spike_peak_mV: list
    record_t_ms: np.ndarray  # (n_rec,)
    record_V_mV: np.ndarray | None  # (n_trials, n_rec)
    record_counts: np.ndarray | None  # (n_trials, n_rec, n_states)
    final_V_mV: np.ndarray
    max_V_mV: np.ndarray  # largest voltage of each trial (current clamp), whether it spiked or not
    max_V_t_ms: np.ndarray
    n_events: np.ndarray
    n_candidates: np.ndarray
    lowered: LoweredPatch


def run_trials(patch: Patch, seg_t_end, seg_mode, seg_value, seed_sequences, *, V0_mV=None, record=False,
               record_dt_ms=0.025, spike_level_mV=0.0, rearm_mV=-20.0, spike_capacity=64) -> TrialsOutput:
    """Run independent trials of ``patch`` in one parallel compiled call (the open-loop fast path).

    ``seg_*`` are ``(n_trials, n_seg)`` schedules (or 1-D, shared by all trials); zero-length segments are
    allowed so that schedules of different shapes can be padded. Trial ``k`` uses ``seed_sequences[k]``
    exactly as :class:`PatchSimulation` would (same three child streams), so it reproduces the single run of
    that seed bit for bit, whatever the number of threads or the order of execution.
    """
    seeds = list(seed_sequences)
    n = len(seeds)
    L = lower_patch(patch)
    seg_t_end = np.ascontiguousarray(np.broadcast_to(np.atleast_2d(seg_t_end), (n, np.shape(seg_t_end)[-1])),
                                     dtype=np.float64)
    seg_mode = np.ascontiguousarray(np.broadcast_to(np.atleast_2d(seg_mode), seg_t_end.shape), dtype=np.int64)
    seg_value = np.ascontiguousarray(np.broadcast_to(np.atleast_2d(seg_value), seg_t_end.shape), dtype=np.float64)
    if np.any(np.diff(seg_t_end, axis=1) < 0) or not np.all(np.isfinite(seg_t_end)) or np.any(seg_t_end[:, 0] < 0):
        raise ValueError("segment end times must be finite, >= 0 and non-decreasing within each trial")
    lo, hi = VALIDATION_RANGE_MV
    V0 = patch.resting_potential_mV() if V0_mV is None else _check_finite("V0_mV", V0_mV, lo, hi)
    level = _check_finite("spike_level_mV", spike_level_mV, lo, hi)
    rearm = _check_finite("rearm_mV", rearm_mV, lo, hi)
    if not rearm < level:
        raise ValueError(f"rearm_mV ({rearm_mV!r}) must be below spike_level_mV ({spike_level_mV!r})")
    counts = np.zeros((n, L.n_states), dtype=np.int64)
    rng = np.zeros((n, 4), dtype=np.uint64)
    rng_agent = np.zeros((n, 4), dtype=np.uint64)
    fstate = np.zeros((n, K.N_FSTATE))
    istate = np.zeros((n, K.N_ISTATE), dtype=np.int64)
    for k, ss in enumerate(seeds):
        ss = ss if isinstance(ss, np.random.SeedSequence) else np.random.SeedSequence(ss)
        counts[k], rng[k], rng_agent[k], fstate[k], istate[k] = _initial_kernel_state(patch, L, V0, level, ss)
    bmax = np.zeros((n, L.tr_src.size))
    ratio = np.zeros((n, L.tr_src.size))
    exit_bound = np.zeros((n, 2, L.n_states))
    dt = _check_finite("record_dt_ms", record_dt_ms, 1e-6, 1e6)
    t_stop = float(seg_t_end[:, -1].max())
    n_rec = int(math.floor(t_stop / dt + 1e-9)) + 1 if record else 0
    rec_V = np.zeros((n, n_rec))
    rec_counts = np.zeros((n, n_rec, L.n_states), dtype=np.int64)
    rec_I = np.zeros((n, n_rec))
    cap = max(int(spike_capacity), 1)
    spk_t, spk_peak, spk_peak_t = np.zeros((n, cap)), np.zeros((n, cap)), np.zeros((n, cap))
    status = np.zeros(n, dtype=np.int64)
    spikes_t = [[] for _ in range(n)]
    spikes_peak = [[] for _ in range(n)]
    active = np.arange(n, dtype=np.int64)
    while active.size:
        istate[active, K.I_N_SPK] = 0
        K_batch.run_batch(
            L.state_ptr, L.tr_dst, L.tr_law, L.tr_factor, L.tr_scale, L.state_g, L.state_gE, L.g_leak, L.gE_leak,
            L.C, L.law_kind, L.law_par, L.law_table, L.grid_lo, L.grid_step,
            seg_t_end, seg_mode, seg_value, counts, fstate, istate, rng, rng_agent, bmax, ratio, exit_bound,
            dt, 0, rec_V, rec_counts, rec_I, level, rearm, spk_t, spk_peak, spk_peak_t, active, status,
        )
        for i in active:
            m = int(istate[i, K.I_N_SPK])
            spikes_t[i].append(spk_t[i, :m].copy())
            spikes_peak[i].append(spk_peak[i, :m].copy())
        bad = active[status[active] == K.STATUS_V_OUT_OF_RANGE]
        if bad.size:
            i = int(bad[0])
            raise VoltageRunawayError(
                f"the membrane voltage ran away in trial {i}: V = {fstate[i, K.F_V]:.3f} mV at "
                f"t = {fstate[i, K.F_T]:.4f} ms left the simulated range {lo}..{hi} mV; reduce the stimulus")
        active = active[status[active] == K.STATUS_SPIKES_FULL]
    for i in range(n):  # a spike still in progress at the end counts, as in single runs
        if not istate[i, K.I_ARMED] and fstate[i, K.F_SPK_T] >= 0:
            spikes_t[i].append(np.array([fstate[i, K.F_SPK_T]]))
            spikes_peak[i].append(np.array([fstate[i, K.F_SPK_PEAK]]))
    return TrialsOutput(
        spike_t_ms=[np.concatenate(s) for s in spikes_t],
        spike_peak_mV=[np.concatenate(s) for s in spikes_peak],
        record_t_ms=np.arange(n_rec) * dt,
        record_V_mV=rec_V if record else None,
        record_counts=rec_counts if record else None,
        final_V_mV=fstate[:, K.F_V].copy(),
        max_V_mV=fstate[:, K.F_VMAX].copy(),
        max_V_t_ms=fstate[:, K.F_VMAX_T].copy(),
        n_events=istate[:, K.I_EVENTS].copy(),
        n_candidates=istate[:, K.I_CANDIDATES].copy(),
        lowered=L,
    )
