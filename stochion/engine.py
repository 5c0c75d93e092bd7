"""The patch engine: lowers a :class:`~stochion.membrane.Patch` to kernel arrays and runs it.

:func:`lower_patch` is the one seam where Python objects become the plain arrays of the compiled kernels.
:class:`PatchSimulation` holds the state of one run between kernel calls and advances it lazily
(``advance_to``), which is what the simpy experiment layer builds on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._kernels import patch_ssa as K
from ._kernels.rng import stream_state
from .membrane import Patch
from .rates import GRID_STEP_MV, KIND_TABULATED, VALIDATION_RANGE_MV, voltage_grid_mV

__all__ = ["LoweredPatch", "lower_patch", "PatchSimulation", "VoltageRunawayError"]


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
    tr_scale: np.ndarray  # extra per-transition factor (ligand concentration later); 1 here
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
    tr_src, tr_dst, tr_law, tr_factor, state_ptr = [], [], [], [], [0]
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
            state_ptr.append(len(tr_src))
        offsets.append(base + scheme.n_states)
        n_channels.append(counts[scheme.name])
        reversal.append(scheme.reversal_mV)
        g_unit.append(g_nS)

    law_table = np.ascontiguousarray(np.stack([np.asarray(law.evaluate(grid), dtype=float) for law in laws]))
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
        tr_scale=np.ones(len(tr_src)),
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
        init_ss, main_ss, agent_ss = self.seed_sequence.spawn(3)
        self.V0_mV = patch.resting_potential_mV() if V0_mV is None else _check_finite("V0_mV", V0_mV, lo, hi)
        if initial_states is None:
            counts = stationary_counts(patch, L, self.V0_mV, np.random.Generator(np.random.PCG64(init_ss)))
        else:
            counts = _counts_from_states(patch, L, initial_states)
        self.counts = counts
        self.track_agents = bool(track_agents)
        self.rng = stream_state(main_ss)
        self.rng_agent = stream_state(agent_ss)
        self.fstate = np.zeros(K.N_FSTATE)
        self.fstate[K.F_V] = self.V0_mV
        self.fstate[K.F_EREM] = -1.0
        self.istate = np.zeros(K.N_ISTATE, dtype=np.int64)
        self.istate[K.I_ARMED] = 1 if self.V0_mV < self.spike_level_mV else 0
        if not self.istate[K.I_ARMED]:  # started above the spike level: not a spike of this run
            self.fstate[K.F_SPK_T] = -1.0
            self.fstate[K.F_SPK_PEAK] = self.V0_mV
        self._bmax = np.zeros(L.tr_src.size)
        self._ratio = np.zeros(L.tr_src.size)
        self._exit = np.zeros(L.n_states)
        self._init_agents()
        self._rec_chunks = []  # (t, V, counts, value, mode)
        self._spk_chunks = []
        self._ev_chunks = []
        self._segments = []  # (t_start, t_end, mode, value) actually run
        self.wall_s = 0.0

    # -- agents ---------------------------------------------------------------------------------------------
    def _init_agents(self):
        L = self.lowered
        if not self.track_agents:
            self.members = np.zeros((1, 1), dtype=np.int64)
            self.pos = np.zeros(1, dtype=np.int64)
            self.chan_state = np.zeros(1, dtype=np.int64)
            return
        cap = int(max(L.n_channels.max(initial=0), 1))
        n_total = int(L.n_channels.sum())
        self.members = np.zeros((L.n_states, cap), dtype=np.int64)
        self.pos = np.zeros(n_total, dtype=np.int64)
        self.chan_state = np.zeros(n_total, dtype=np.int64)
        c = 0
        for s in range(L.n_states):
            for k in range(int(self.counts[s])):
                self.members[s, k] = c
                self.pos[c] = k
                self.chan_state[c] = s
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
    def n_events(self) -> int:
        return int(self.istate[K.I_EVENTS])

    @property
    def n_candidates(self) -> int:
        return int(self.istate[K.I_CANDIDATES])

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
        import time

        seg_t_end = np.ascontiguousarray(seg_t_end, dtype=np.float64)
        seg_mode = np.ascontiguousarray(seg_mode, dtype=np.int64)
        seg_value = np.ascontiguousarray(seg_value, dtype=np.float64)
        if seg_t_end.size == 0:
            return False
        L = self.lowered
        self.istate[K.I_SEG] = 0
        self.istate[K.I_SEG_READY] = 0
        dt = self.record_dt_ms
        t0 = self.t_ms
        spiked = False
        start = time.perf_counter()
        while True:
            t_target = float(seg_t_end[-1])
            rec_k0 = int(self.istate[K.I_REC_NEXT])
            n_rec = max(int(math.floor(t_target / dt + 1e-9)) + 1 - rec_k0, 0)
            rec_V = np.zeros(n_rec)
            rec_counts = np.zeros((n_rec, L.n_states), dtype=np.int64)
            rec_I = np.zeros(n_rec)
            spk_t, spk_peak, spk_peak_t = np.zeros(256), np.zeros(256), np.zeros(256)
            n_ev_cap = (1 << 16) if self.track_agents else 0
            ev_t, ev_V = np.zeros(n_ev_cap), np.zeros(n_ev_cap)
            ev_ch, ev_from, ev_to = (np.zeros(n_ev_cap, dtype=np.int64) for _ in range(3))
            self.istate[K.I_N_SPK] = 0
            self.istate[K.I_N_EV] = 0
            status = K.run_patch(
                L.state_ptr, L.tr_dst, L.tr_law, L.tr_factor, L.tr_scale, L.state_g, L.state_gE, L.g_leak,
                L.gE_leak, L.C, L.law_kind, L.law_par, L.law_table, L.grid_lo, L.grid_step,
                seg_t_end, seg_mode, seg_value,
                self.counts, self.fstate, self.istate, self.rng, self.rng_agent, self._bmax, self._ratio, self._exit,
                self.track_agents, self.members, self.pos, self.chan_state,
                dt, rec_k0, rec_V, rec_counts, rec_I,
                self.spike_level_mV, self.rearm_mV, bool(stop_on_spike), spk_t, spk_peak, spk_peak_t,
                ev_t, ev_ch, ev_from, ev_to, ev_V,
            )
            n_done = int(self.istate[K.I_REC_NEXT]) - rec_k0
            if n_done:
                k = np.arange(rec_k0, rec_k0 + n_done)
                seg_idx = np.minimum(np.searchsorted(seg_t_end, k * dt, side="left"), seg_t_end.size - 1)
                self._rec_chunks.append((k * dt, rec_V[:n_done], rec_counts[:n_done], rec_I[:n_done],
                                         seg_mode[seg_idx]))
            n_spk = int(self.istate[K.I_N_SPK])
            if n_spk:
                self._spk_chunks.append((spk_t[:n_spk].copy(), spk_peak[:n_spk].copy(), spk_peak_t[:n_spk].copy()))
            n_ev = int(self.istate[K.I_N_EV])
            if n_ev:
                self._ev_chunks.append((ev_t[:n_ev].copy(), ev_ch[:n_ev].copy(), ev_from[:n_ev].copy(),
                                        ev_to[:n_ev].copy(), ev_V[:n_ev].copy()))
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
        self.wall_s += time.perf_counter() - start
        seg_start = np.concatenate([[t0], seg_t_end[:-1]])
        for a, b, m, v in zip(seg_start, seg_t_end, seg_mode, seg_value):
            if a >= self.t_ms:
                break
            self._segments.append((float(a), float(min(b, self.t_ms)), int(m), float(v)))
        return spiked

    def open_spike(self):
        """The spike in progress (crossed, not yet re-armed) as (t, peak, peak_t), or None."""
        if self.istate[K.I_ARMED]:
            return None
        return (float(self.fstate[K.F_SPK_T]), float(self.fstate[K.F_SPK_PEAK]), float(self.fstate[K.F_SPK_PEAK_T]))

    def agent_counts(self) -> np.ndarray:
        """State counts recomputed from the agents' individual states (for consistency checks)."""
        return np.bincount(self.chan_state, minlength=self.lowered.n_states) if self.track_agents else None
