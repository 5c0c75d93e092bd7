"""The deterministic (infinite-channel) limit of a patch: the mean-field master equation.

With ``N`` channels of a type the fraction of them in each state obeys, as ``N -> infinity``, the master
equation of one channel (Fox & Lu 1994). For the whole patch the state is the occupancy probabilities ``p`` over
all states of all channel types (concatenated as in :class:`~stochion.engine.LoweredPatch`, each type's block
summing to 1) and the voltage ``V``:

.. math::

    \\frac{dp_s}{dt} = \\sum_{j: dst_j = s} f_j - \\sum_{j: src_j = s} f_j, \\qquad
    f_j = p_{src_j}\\, \\mathrm{factor}_j\\, \\mathrm{scale}_j\\, r_{law_j}(V)

    C \\frac{dV}{dt} = I_{stim} - \\sum_s N_{type(s)}\\, p_s\\, g_s (V - E_s) - g_{leak} (V - E_{leak})

with ``C`` in pF, conductances in nS, currents in pA and time in ms (``C / G`` is in ms). The equations are built
from the lowered arrays of :func:`~stochion.engine.lower_patch`, so the deterministic and the stochastic runs
use literally the same declarations. For schemes made of independent gate particles
(:func:`~stochion.channels.gate_scheme`) the binomial occupancies (``m^3 h`` and ``n^4`` for Hodgkin–Huxley) are
an invariant manifold of the master equation, so starting from the stationary distribution this *is* the
Hodgkin–Huxley model (Keener 2009).

:class:`DeterministicSimulation` has the interface of :class:`~stochion.engine.PatchSimulation`
(``advance_to``, ``run_segments``, ``open_spike`` and the same recorded chunks) so that one result builder
serves both; its recorded "counts" are the *expected* counts ``N_type * p_s`` (floats).

References
----------
Hodgkin AL, Huxley AF (1952) J Physiol 117:500-544. doi:10.1113/jphysiol.1952.sp004764
Fox RF, Lu Y (1994) Phys Rev E 49:3421-3431. doi:10.1103/PhysRevE.49.3421
Keener JP (2009) J Math Biol 58:447-457. doi:10.1007/s00285-008-0202-4
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from ._kernels.patch_ssa import MODE_CURRENT, MODE_VOLTAGE
from .engine import LoweredPatch, VoltageRunawayError, lower_patch
from .membrane import Patch
from .rates import (
    KIND_CONSTANT,
    KIND_EXPONENTIAL,
    KIND_LINOID,
    KIND_SIGMOID,
    KIND_TABULATED,
    VALIDATION_RANGE_MV,
)

__all__ = ["DeterministicSimulation", "law_rates_per_ms"]

# Same series threshold as stochion.rates.rate_at (the removable singularity of the linoid).
_LINOID_SERIES_X = 1e-4
# A record time k * dt counts as "at or before" t if k * dt <= t + _REC_SLACK * dt: k * dt is rounded, and a
# record at a segment's end must not slip into the next segment (same slack as the engine's buffer sizing).
_REC_SLACK = 1e-9
# Block sums of a user-given occupancy must be 1 to within this.
_SUM_TOL = 1e-9
# Voltage clamp: compute a record directly from the segment start every this many records.
_REANCHOR_EVERY = 256
_SOLVERS = ("LSODA", "DOP853", "RK45", "Radau", "BDF")


def _check_finite(name, value, lo=-math.inf, hi=math.inf):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ValueError(f"{name} must be finite and in [{lo}, {hi}], got {value!r}")
    return v


def law_rates_per_ms(lowered: LoweredPatch, V_mV) -> np.ndarray:
    """Every distinct rate law of a lowered patch at ``V_mV``, vectorised (1/ms).

    Mirrors :func:`stochion.rates.rate_at` law by law (kinds: 0 constant ``a``; 1 ``a exp((V-vh)/k)``;
    2 ``a / (1 + exp(-(V-vh)/k))``; 3 linoid ``a x / (1 - exp(-x))``, ``x = (V-vh)/k``, by its series
    ``1 + x/2 + x^2/12`` for ``|x| < 1e-4``; 4 tabulated, linear interpolation on the voltage grid), without the
    temperature factor, multiplicity or scale of the transitions.

    Parameters
    ----------
    lowered : LoweredPatch
    V_mV : float or array
        Membrane voltage(s), mV.

    Returns
    -------
    numpy.ndarray
        Shape ``V.shape + (n_laws,)``, rates in 1/ms.
    """
    return _LawTable(lowered)(V_mV)


class _LawTable:
    """Vectorised evaluation of the lowered rate laws, grouped by kind (precomputed once per patch)."""

    def __init__(self, L: LoweredPatch):
        kinds = np.asarray(L.law_kind)
        known = {KIND_CONSTANT, KIND_EXPONENTIAL, KIND_SIGMOID, KIND_LINOID, KIND_TABULATED}
        bad = sorted(set(kinds.tolist()) - known)
        if bad:
            raise ValueError(f"lowered patch has rate-law kinds {bad} that the mean-field equations do not know; "
                             f"known kinds are {sorted(known)}")
        self.n_laws = kinds.size
        self.groups = []
        for kind in sorted(known):
            idx = np.flatnonzero(kinds == kind)
            if idx.size:
                a, vh, k = (np.ascontiguousarray(L.law_par[idx, c]) for c in range(3))
                self.groups.append((kind, idx, a, vh, k, np.ascontiguousarray(L.law_table[idx])))
        self.grid_lo = float(L.grid_lo)
        self.grid_step = float(L.grid_step)
        # scalar fast path (the ODE right-hand side): one tuple per law, evaluated with math as rate_at does
        self.scalar_laws = [(int(kinds[i]), *map(float, L.law_par[i]), L.law_table[i]) for i in range(self.n_laws)]
        self.n_edges = L.law_table.shape[1]

    def scalar(self, V: float) -> np.ndarray:
        """All laws at one voltage (1/ms); the same arithmetic as :func:`stochion.rates.rate_at`."""
        out = np.empty(self.n_laws)
        for i, (kind, a, vh, k, col) in enumerate(self.scalar_laws):
            if kind == KIND_CONSTANT:
                r = a
            elif kind == KIND_EXPONENTIAL:
                r = a * math.exp((V - vh) / k)
            elif kind == KIND_SIGMOID:
                r = a / (1.0 + math.exp(-(V - vh) / k))
            elif kind == KIND_LINOID:
                x = (V - vh) / k
                r = a * (1.0 + x / 2.0 + x * x / 12.0) if abs(x) < _LINOID_SERIES_X else a * x / -math.expm1(-x)
            else:
                pos = (V - self.grid_lo) / self.grid_step
                j = min(max(int(pos), 0), self.n_edges - 2)
                w = pos - j
                r = col[j] * (1.0 - w) + col[j + 1] * w
            out[i] = r
        return out

    def __call__(self, V_mV) -> np.ndarray:
        if isinstance(V_mV, (float, int)):
            return self.scalar(float(V_mV))
        V = np.asarray(V_mV, dtype=float)
        Vb = V[..., None]
        out = np.empty(V.shape + (self.n_laws,))
        for kind, idx, a, vh, k, table in self.groups:
            if kind == KIND_CONSTANT:
                val = np.broadcast_to(a, Vb.shape[:-1] + a.shape)
            elif kind == KIND_EXPONENTIAL:
                val = a * np.exp((Vb - vh) / k)
            elif kind == KIND_SIGMOID:
                val = a / (1.0 + np.exp(-(Vb - vh) / k))
            elif kind == KIND_LINOID:
                x = (Vb - vh) / k
                small = np.abs(x) < _LINOID_SERIES_X
                safe = np.where(small, 1.0, x)
                val = np.where(small, a * (1.0 + x / 2.0 + x * x / 12.0), a * safe / -np.expm1(-safe))
            else:  # tabulated: as rate_at, cell index truncated and clipped, weight not clipped
                pos = (V - self.grid_lo) / self.grid_step
                i = np.clip(np.trunc(pos), 0, table.shape[1] - 2).astype(np.int64)
                w = (pos - i)[..., None]
                val = np.moveaxis(table[:, i], 0, -1) * (1.0 - w) + np.moveaxis(table[:, i + 1], 0, -1) * w
            out[..., idx] = val
        return out


class _MeanField:
    """Right-hand side, voltage derivative and clamp generators of the mean-field equations."""

    def __init__(self, L: LoweredPatch):
        self.L = L
        self.laws = _LawTable(L)
        self.n = L.n_states
        self.src = np.asarray(L.tr_src, dtype=np.int64)
        self.dst = np.asarray(L.tr_dst, dtype=np.int64)
        self.law = np.asarray(L.tr_law, dtype=np.int64)
        self.k_tr = np.asarray(L.tr_factor, dtype=float) * np.asarray(L.tr_scale, dtype=float)
        N_state = np.asarray(L.n_channels, dtype=float)[np.asarray(L.state_type)]
        # rows: total channel conductance (nS) and conductance x reversal (nS mV) per unit occupancy
        self.gN_gEN = np.ascontiguousarray(np.stack([N_state * L.state_g, N_state * L.state_gE]))
        self.g_leak = float(L.g_leak)
        self.gE_leak = float(L.gE_leak)
        self.C = float(L.C)
        # incidence matrix: dp = inc @ flux is bincount(dst, flux) - bincount(src, flux) as one small matvec
        cols = np.arange(self.src.size)
        self.inc = np.zeros((self.n, self.src.size))
        np.add.at(self.inc, (self.dst, cols), 1.0)
        np.add.at(self.inc, (self.src, cols), -1.0)

    def transition_rates(self, V: float) -> np.ndarray:
        """Per-transition rate (1/ms) at ``V``: multiplicity × temperature factor × scale × law."""
        return self.laws.scalar(float(V))[self.law] * self.k_tr

    def dVdt(self, y: np.ndarray, I_pA: float) -> float:
        """dV/dt (mV/ms) of state ``y = (p, V)`` under injected current ``I_pA``."""
        V = float(y[-1])
        g, gE = self.gN_gEN @ y[:-1]
        return (I_pA - V * (g + self.g_leak) + (gE + self.gE_leak)) / self.C

    def rhs(self, t: float, y: np.ndarray, I_pA: float) -> np.ndarray:
        """Time derivative of ``y = (p, V)``: the master equation and the membrane equation."""
        out = np.empty(self.n + 1)
        out[:-1] = self.inc @ (y[:-1][self.src] * self.transition_rates(y[-1]))
        out[-1] = self.dVdt(y, I_pA)
        return out

    def generator_block(self, k: int, V: float) -> np.ndarray:
        """Generator ``Q`` (1/ms) of channel type ``k`` at fixed ``V``: ``Q[i, j]`` rate i -> j, rows sum to 0."""
        sl = self.L.type_slice(k)
        lo = sl.start
        Q = np.zeros((sl.stop - sl.start,) * 2)
        sel = (self.src >= sl.start) & (self.src < sl.stop)
        np.add.at(Q, (self.src[sel] - lo, self.dst[sel] - lo), self.transition_rates(V)[sel])
        Q[np.diag_indices_from(Q)] = -Q.sum(axis=1)
        return Q


class DeterministicSimulation:
    """One deterministic (mean-field, infinite-channel) run of a patch, with the engine's interface.

    The channel populations are described by their occupancy probabilities and evolve by the master equation
    of the patch's lowered schemes (module docstring); ``V`` follows the membrane equation with the expected
    conductances. Current-clamp segments are integrated with :func:`scipy.integrate.solve_ivp`; voltage-clamp
    segments are solved exactly with the matrix exponential of each channel type's generator.

    Parameters
    ----------
    patch : Patch
    V0_mV : float, optional
        Initial voltage, mV; default the patch's mean-field resting potential
        (:meth:`Patch.resting_potential_mV`).
    initial_occupancy : mapping or array, optional
        ``{type: {state: probability}}`` for every channel type (unnamed states 0), or an array over all
        states of the lowered patch; each type's probabilities must be >= 0 and sum to 1. Default: each
        scheme's stationary distribution at ``V0_mV``.
    record_dt_ms : float
        Output grid step, ms; samples are taken at ``k * record_dt_ms`` exactly.
    spike_level_mV, rearm_mV : float
        Spikes are upward crossings of ``spike_level_mV`` (located by the solver's event root finding), re-armed
        once ``V`` falls below ``rearm_mV``; the peak is the largest ``V`` between the two, found as the zero of
        ``dV/dt``.
    rtol, atol : float
        Tolerances of the ODE solver (relative; absolute, in probability and mV).
    method : str
        ``solve_ivp`` method: "DOP853" (default: explicit, 8th order, with an accurate dense output for the
        records and the event location; HH is not stiff at these step sizes), "LSODA", "RK45", "Radau" or
        "BDF".
    max_step_ms : float
        Largest solver step, ms (keeps steps well below the width of a spike).

    Notes
    -----
    The equations involve the channel *counts* of the patch (rounded from densities by
    :meth:`ChannelPopulation.n_channels`), not the densities, so that the deterministic limit of a patch is the
    limit of exactly that patch. ``n_events`` and ``n_candidates`` are 0 and ``_ev_chunks`` stays empty: there
    are no channel events.

    Records follow the kernel's rules: times ``k * record_dt_ms`` with an absolute index ``k`` that only moves
    forward (no time is recorded twice), a record at a segment's end belongs to that segment, and a run stopped
    at a spike records only the times before the crossing. A record time that rounding puts a hair above a
    segment's end (``3 * 0.1 > 0.3``) still belongs to that segment and takes the state at the end.

    References
    ----------
    Fox RF, Lu Y (1994) Phys Rev E 49:3421-3431. doi:10.1103/PhysRevE.49.3421
    """

    n_events = 0
    n_candidates = 0
    track_agents = False
    seed_sequence = None

    def __init__(self, patch: Patch, *, V0_mV=None, initial_occupancy=None, record_dt_ms=0.025,
                 spike_level_mV=0.0, rearm_mV=-20.0, rtol=1e-8, atol=1e-10, method="DOP853", max_step_ms=0.05):
        if not isinstance(patch, Patch):
            raise ValueError(f"patch must be a stochion.Patch, got {patch!r}")
        lo, hi = VALIDATION_RANGE_MV
        self.record_dt_ms = _check_finite("record_dt_ms", record_dt_ms, 1e-6, 1e6)
        self.spike_level_mV = _check_finite("spike_level_mV", spike_level_mV, lo, hi)
        self.rearm_mV = _check_finite("rearm_mV", rearm_mV, lo, hi)
        if not self.rearm_mV < self.spike_level_mV:
            raise ValueError(f"rearm_mV ({rearm_mV!r}) must be below spike_level_mV ({spike_level_mV!r})")
        self.rtol = _check_finite("rtol", rtol, 0.0, 1.0)
        self.atol = _check_finite("atol", atol, 0.0, 1.0)
        if self.rtol <= 0.0 or self.atol <= 0.0:
            raise ValueError(f"rtol and atol must be > 0, got rtol={rtol!r}, atol={atol!r}")
        if method not in _SOLVERS:
            raise ValueError(f"method must be one of {list(_SOLVERS)}, got {method!r}")
        self.method = method
        self.max_step_ms = _check_finite("max_step_ms", max_step_ms, 0.0, math.inf)
        if self.max_step_ms <= 0.0:
            raise ValueError(f"max_step_ms must be > 0, got {max_step_ms!r}")
        self.patch = patch
        self.lowered = L = lower_patch(patch)
        self._mf = _MeanField(L)
        self._tr_scale = np.asarray(L.tr_scale, dtype=float).copy()  # ligand concentrations (mM) of binding steps
        self.V0_mV = patch.resting_potential_mV() if V0_mV is None else _check_finite("V0_mV", V0_mV, lo, hi)
        if initial_occupancy is None:
            p0 = np.concatenate([s.stationary(self.V0_mV, patch.temperature_celsius) for s in patch.schemes]
                                or [np.zeros(0)])
        else:
            p0 = self._occupancy_from(initial_occupancy)
        self._y = np.concatenate([p0, [self.V0_mV]])
        self._t = 0.0
        self._rec_next = 0  # absolute index k of the next record time k * record_dt_ms
        self._armed = self.V0_mV < self.spike_level_mV
        # spike in progress (crossing time, peak, peak time), as the kernel initialises it
        self._spk = (0.0, self.V0_mV, 0.0)
        self._rec_chunks = []  # (t, V, expected counts, value, mode)
        self._spk_chunks = []  # (t_cross, peak_mV, peak_t_ms)
        self._ev_chunks = []
        self._segments = []  # (t_start, t_end, mode, value) actually run
        self._rec = []  # record pieces of the run_segments call in progress
        self.wall_s = 0.0

    def _occupancy_from(self, initial_occupancy) -> np.ndarray:
        L = self.lowered
        if isinstance(initial_occupancy, Mapping):
            given = dict(initial_occupancy)
            unknown = set(given) - set(L.type_names)
            if unknown:
                raise ValueError(f"initial_occupancy names unknown channel types {sorted(unknown)}; types are "
                                 f"{list(L.type_names)}")
            p = np.zeros(L.n_states)
            for k, scheme in enumerate(self.patch.schemes):
                if scheme.name not in given:
                    raise ValueError(f"initial_occupancy has no entry for channel type {scheme.name!r}; give "
                                     "probabilities for every type, or leave initial_occupancy out for the "
                                     "stationary distribution")
                block = np.zeros(scheme.n_states)
                for state, value in dict(given[scheme.name]).items():
                    block[scheme.index(state)] = _check_finite(
                        f"initial_occupancy[{scheme.name!r}][{state!r}]", value, 0.0, 1.0)
                p[L.type_slice(k)] = block
        else:
            p = np.array(initial_occupancy, dtype=float).reshape(-1)
            if p.shape != (L.n_states,):
                raise ValueError(f"initial_occupancy must be a mapping or an array of {L.n_states} probabilities "
                                 f"(one per state of the lowered patch), got shape {np.shape(initial_occupancy)}")
            if not (np.all(np.isfinite(p)) and np.all(p >= 0.0)):
                raise ValueError(f"initial_occupancy must be finite and >= 0, got {p!r}")
        for k, name in enumerate(L.type_names):
            total = float(p[L.type_slice(k)].sum())
            if abs(total - 1.0) > _SUM_TOL:
                raise ValueError(f"initial_occupancy of channel type {name!r} sums to {total!r}; the probabilities "
                                 "of each type must sum to 1")
        return p

    # -- state ------------------------------------------------------------------------------------------------
    @property
    def t_ms(self) -> float:
        return float(self._t)

    @property
    def V_mV(self) -> float:
        return float(self._y[-1])

    @property
    def occupancy(self) -> np.ndarray:
        """Occupancy probabilities over all states of the lowered patch (each type's block sums to 1)."""
        return self._y[:-1].copy()

    @property
    def counts(self) -> np.ndarray:
        """Expected channel counts per state, ``N_type * p_s`` (floats)."""
        return self._y[:-1] * np.asarray(self.lowered.n_channels, dtype=float)[self.lowered.state_type]

    def open_spike(self):
        """The spike in progress (crossed, not yet re-armed) as (t, peak, peak_t), or None."""
        if self._armed:
            return None
        return tuple(float(x) for x in self._spk)

    def agent_counts(self):
        """None: the deterministic limit has no agents (interface parity with the engine)."""
        return None

    def set_ligand_mM(self, concentrations: Mapping) -> None:
        """Set the transmitter concentration (mM) seen by ligand-gated populations, ``{type name: mM}``.

        As :meth:`stochion.engine.PatchSimulation.set_ligand_mM`: the binding transitions of that type
        (:class:`~stochion.rates.LigandBinding`) are scaled by the concentration from the next ``advance_to``
        on; advance to the present time first so that the change happens exactly now.
        """
        L = self.lowered
        scale = self._tr_scale.copy()
        for name, conc in dict(concentrations).items():
            if name not in L.type_names:
                raise ValueError(f"set_ligand_mM: unknown channel type {name!r}; types are {list(L.type_names)}")
            k = L.type_names.index(name)
            sel = np.asarray(L.tr_ligand_type) == k
            if not sel.any():
                raise ValueError(f"set_ligand_mM: channel type {name!r} has no ligand-binding transition")
            scale[sel] = _check_finite(f"ligand concentration of {name!r} (mM)", conc, 0.0)
        self._tr_scale = scale
        self._mf.k_tr = np.asarray(L.tr_factor, dtype=float) * scale

    # -- running ----------------------------------------------------------------------------------------------
    def advance_to(self, t_ms: float, *, current_pA: float = 0.0, clamp_mV: float | None = None,
                   stop_on_spike: bool = False) -> bool:
        """Run from the present time to ``t_ms`` under a constant current (pA) or voltage clamp (mV).

        Returns True if the run stopped early at a spike (only with ``stop_on_spike``); ``t_ms`` then holds
        the crossing time.
        """
        t_ms = _check_finite("t_ms", t_ms)
        if t_ms < self.t_ms:
            raise ValueError(f"t_ms={t_ms!r} is before the present time {self.t_ms!r} ms; time only moves forward")
        if clamp_mV is None:
            mode, value = MODE_CURRENT, _check_finite("current_pA", current_pA)
        else:
            lo, hi = VALIDATION_RANGE_MV
            mode, value = MODE_VOLTAGE, _check_finite("clamp_mV", clamp_mV, lo, hi)
        return self.run_segments(np.array([t_ms]), np.array([mode]), np.array([value]), stop_on_spike=stop_on_spike)

    def run_segments(self, seg_t_end, seg_mode, seg_value, *, stop_on_spike=False) -> bool:
        """Run through piecewise-constant segments (absolute end times, ``MODE_*`` codes, pA or mV values).

        Returns True if the run stopped early at a spike crossing (only with ``stop_on_spike``).
        """
        seg_t_end = np.atleast_1d(np.asarray(seg_t_end, dtype=np.float64))
        seg_mode = np.atleast_1d(np.asarray(seg_mode, dtype=np.int64))
        seg_value = np.atleast_1d(np.asarray(seg_value, dtype=np.float64))
        self._check_segments(seg_t_end, seg_mode, seg_value)
        if seg_t_end.size == 0:
            return False
        start = time.perf_counter()
        t0 = self._t
        self._rec = []  # record pieces of this call: (t, V, counts, value, mode)
        spiked = False
        try:
            for end, mode, value in zip(seg_t_end, seg_mode, seg_value):
                if mode == MODE_VOLTAGE:
                    self._run_clamp(float(end), float(value))
                elif self._run_current(float(end), float(value), bool(stop_on_spike)):
                    spiked = True
                    break
        finally:
            if self._rec:
                self._rec_chunks.append(tuple(np.concatenate(parts) for parts in zip(*self._rec)))
            self._rec = []
            self.wall_s += time.perf_counter() - start
            seg_start = np.concatenate([[t0], seg_t_end[:-1]])
            for a, b, m, v in zip(seg_start, seg_t_end, seg_mode, seg_value):
                if a >= self._t:
                    break
                self._segments.append((float(a), float(min(b, self._t)), int(m), float(v)))
        return spiked

    def _check_segments(self, seg_t_end, seg_mode, seg_value):
        if not (seg_t_end.ndim == seg_mode.ndim == seg_value.ndim == 1
                and seg_t_end.size == seg_mode.size == seg_value.size):
            raise ValueError(f"seg_t_end, seg_mode and seg_value must be 1-d of equal length, got shapes "
                             f"{seg_t_end.shape}, {seg_mode.shape}, {seg_value.shape}")
        if seg_t_end.size == 0:
            return
        if not np.all(np.isfinite(seg_t_end)) or not np.all(np.isfinite(seg_value)):
            raise ValueError("seg_t_end and seg_value must be finite")
        if seg_t_end[0] < self._t or np.any(np.diff(seg_t_end) < 0):
            raise ValueError(f"seg_t_end must be non-decreasing and start at or after the present time "
                             f"{self._t!r} ms, got {seg_t_end!r}")
        bad = ~np.isin(seg_mode, (MODE_CURRENT, MODE_VOLTAGE))
        if bad.any():
            raise ValueError(f"seg_mode must be MODE_CURRENT ({MODE_CURRENT}) or MODE_VOLTAGE ({MODE_VOLTAGE}), "
                             f"got {seg_mode[bad][0]!r}")
        lo, hi = VALIDATION_RANGE_MV
        clamp = seg_value[seg_mode == MODE_VOLTAGE]
        if clamp.size and not np.all((clamp >= lo) & (clamp <= hi)):
            raise ValueError(f"clamp voltages must be in [{lo}, {hi}] mV, got {clamp!r}")

    def _record_ks(self, t_limit: float, inclusive: bool) -> np.ndarray:
        """Absolute record indices from the next one up to ``t_limit`` (inclusive: with the rounding slack)."""
        dt = self.record_dt_ms
        if inclusive:
            k_hi = int(math.floor(t_limit / dt + _REC_SLACK))
        else:
            k_hi = int(math.ceil(t_limit / dt)) - 1
            while k_hi >= 0 and k_hi * dt >= t_limit:
                k_hi -= 1
            while (k_hi + 1) * dt < t_limit:
                k_hi += 1
        ks = np.arange(self._rec_next, k_hi + 1, dtype=np.int64)
        if ks.size:
            self._rec_next = int(ks[-1]) + 1
        return ks

    def _store(self, ks, V, p, value, mode):
        L = self.lowered
        counts = p * np.asarray(L.n_channels, dtype=float)[L.state_type]
        self._rec.append((ks * self.record_dt_ms, np.asarray(V, dtype=float), counts,
                          np.full(ks.size, value), np.full(ks.size, mode, dtype=np.int64)))

    def _run_clamp(self, t_end: float, V_clamp: float):
        """Voltage clamp to ``t_end``: p(t) = p(t0) expm(Q (t - t0)) per channel type, exactly."""
        L = self.lowered
        t0 = self._t
        self._y[-1] = V_clamp
        p0 = self._y[:-1].copy()
        ks = self._record_ks(t_end, inclusive=True)
        times = np.clip(ks * self.record_dt_ms, t0, max(t_end, t0))
        p_rec = np.empty((ks.size, L.n_states))
        p_end = p0.copy()
        dt = self.record_dt_ms
        for k in range(len(L.type_names)):
            sl = L.type_slice(k)
            Q = self._mf.generator_block(k, V_clamp)
            step = expm(Q * dt)
            p, t_prev = p0[sl], t0
            for row, t in enumerate(times):
                # one record step further is a product with expm(Q dt); re-anchor now and then so that
                # rounding cannot accumulate over very long clamps
                if row % _REANCHOR_EVERY and abs((t - t_prev) - dt) <= 1e-12 * dt:
                    p = p @ step
                elif t > t0:
                    p = p0[sl] @ expm(Q * (t - t0))
                else:
                    p = p0[sl]
                p_rec[row, sl] = p
                t_prev = t
            if t_end > t0:
                p_end[sl] = p0[sl] @ expm(Q * (t_end - t0))
        if ks.size:
            self._store(ks, np.full(ks.size, V_clamp), p_rec, V_clamp, MODE_VOLTAGE)
        self._y[:-1] = p_end
        self._t = max(t_end, t0)

    def _run_current(self, t_end: float, I_pA: float, stop_on_spike: bool) -> bool:
        """Current clamp to ``t_end``, in pieces between spike crossings and re-arms; True on a spike stop."""
        mf = self._mf
        lo, hi = VALIDATION_RANGE_MV
        level, rearm = self.spike_level_mV, self.rearm_mV

        def rhs(t, y):
            return mf.rhs(t, y, I_pA)

        def up(t, y):
            return y[-1] - level

        def down(t, y):
            return y[-1] - rearm

        def vmax(t, y):
            return mf.dVdt(y, I_pA)

        def below(t, y):
            return y[-1] - lo

        def above(t, y):
            return y[-1] - hi

        up.terminal, up.direction = True, 1
        down.terminal, down.direction = True, -1
        vmax.terminal, vmax.direction = False, -1
        below.terminal, below.direction = True, -1
        above.terminal, above.direction = True, 1

        while True:
            t0, y0 = self._t, self._y.copy()
            if t_end <= t0:
                ks = self._record_ks(t0, inclusive=True)
                if ks.size:
                    self._store(ks, np.full(ks.size, y0[-1]), np.tile(y0[:-1], (ks.size, 1)), I_pA, MODE_CURRENT)
                return False
            events = [below, above] + ([up] if self._armed else [down, vmax])
            sol = solve_ivp(rhs, (t0, t_end), y0, method=self.method, rtol=self.rtol, atol=self.atol,
                            max_step=self.max_step_ms, dense_output=True, events=events)
            if sol.status == -1:
                raise RuntimeError(f"the ODE solver failed at t = {sol.t[-1]!r} ms: {sol.message}")
            hit = None
            for i, ev in enumerate(events):
                if ev.terminal and sol.t_events[i].size:
                    hit = i
            if hit is None:
                t1, y1 = float(sol.t[-1]), sol.y[:, -1].copy()
                ks = self._record_ks(t_end, inclusive=True)
            else:
                t1, y1 = float(sol.t_events[hit][0]), sol.y_events[hit][0].copy()
                ks = self._record_ks(t1, inclusive=False)
            if ks.size:
                Y = sol.sol(np.clip(ks * self.record_dt_ms, t0, t1))
                self._store(ks, Y[-1], Y[:-1].T, I_pA, MODE_CURRENT)
            # keep each type's block on the simplex: the solver conserves the sums only to its tolerance
            for k in range(len(self.lowered.type_names)):
                sl = self.lowered.type_slice(k)
                block = np.clip(y1[:-1][sl], 0.0, None)
                y1[:-1][sl] = block / block.sum()
            self._t, self._y = t1, y1
            if not self._armed:
                cand_t = [t0, t1] + list(sol.t_events[3])
                cand_V = [y0[-1], y1[-1]] + [float(y[-1]) for y in sol.y_events[3]]
                j = int(np.argmax(cand_V))
                if cand_V[j] > self._spk[1]:
                    self._spk = (self._spk[0], float(cand_V[j]), float(cand_t[j]))
            if hit is None:
                return False
            name = events[hit]
            if name is below or name is above:
                raise VoltageRunawayError(
                    f"the membrane voltage ran away: V = {self.V_mV:.3f} mV at t = {self.t_ms:.4f} ms left the "
                    f"simulated range {lo}..{hi} mV (segment value {I_pA!r} pA injected); reduce the stimulus "
                    "or check the reversal potentials")
            if name is up:
                self._armed = False
                self._spk = (t1, float(y1[-1]), t1)
                if stop_on_spike:
                    return True
            else:  # re-armed: the spike is complete
                self._spk_chunks.append(tuple(np.array([x]) for x in self._spk))
                self._armed = True
