"""Exact stochastic simulation of an isopotential membrane patch (DESIGN.md §2).

State: channel counts ``n[s]`` over all states of all channel types (concatenated), voltage ``V``, time ``t``.
Between two channel events the conductances are constant and ``V`` relaxes with the closed form
``V(t+s) = Vinf + (V - Vinf) exp(-s G / C)``. Channel transitions are sampled exactly by **thinning** a
bounding Poisson process:

* the voltage axis is cut into cells (``grid_step`` mV); inside a cell each rate is bounded by the larger of
  its values at the two cell edges (every law is monotone inside a cell) and from below by the smaller;
* the bounding process has total intensity ``B = sum_s n[s] * sum_{j from s} bmax[j]`` and is followed by a
  unit-exponential clock ``E_rem``: the next candidate is at ``t + E_rem / B`` unless ``V`` leaves the cell,
  a segment ends or a spike level is crossed first, in which case ``E_rem -= B * elapsed`` carries over (the
  clock is memoryless, so stopping anywhere and resuming changes nothing);
* a candidate picks transition ``j`` with probability ``n[src_j] bmax[j] / B`` and is accepted with probability
  ``rate_j(V_candidate) / bmax[j]``, first tested against the lower bound (squeeze) so the exact rate is
  evaluated only for the few candidates that fall between the bounds.

Under voltage clamp ``V`` is fixed, the bounds are the exact rates and every candidate is accepted (the
direct method).

Random draws, in order (the pure-Python reference ``stochion._kernels.reference`` follows the same order):
a unit exponential ``E_rem`` from ``rng`` by the ziggurat (``rng.next_exponential``) when a fresh clock is
needed; per candidate ``u2`` from ``rng``
selects state and transition (one uniform for both, by residual); in current clamp ``u3`` from ``rng`` decides
acceptance; with agent tracking, ``ua`` from ``rng_agent`` picks which channel of the source state moves.
Agent identity has a stream of its own, so the count trajectory is the same with and without agents.

Everything lives in caller-allocated arrays; the kernel returns a status code and can be called again to
resume (buffers full, spike stop, or end of the given segments).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ..rates import rate_at
from .rng import next_double, next_exponential

# -- status codes -----------------------------------------------------------------------------------------
STATUS_DONE = 0
STATUS_EVENTS_FULL = 1
STATUS_SPIKES_FULL = 2
STATUS_SPIKE = 3
STATUS_V_OUT_OF_RANGE = 4

# -- fstate slots -----------------------------------------------------------------------------------------
F_T = 0
F_V = 1
F_EREM = 2  # unit-exponential clock of the bounding process; < 0 means "draw a fresh one"
F_I = 3  # injected current (pA) of the current segment
F_SPK_T = 4  # crossing time of the spike in progress
F_SPK_PEAK = 5
F_SPK_PEAK_T = 6
F_VMAX = 7  # largest V reached so far (at a step end: V is monotone within steps) and when
F_VMAX_T = 8
F_B = 9  # running totals, carried across calls so that where a run pauses changes nothing, not even rounding
F_GCH = 10
F_GECH = 11
N_FSTATE = 12

# -- istate slots -----------------------------------------------------------------------------------------
I_CELL = 0
I_SEG = 1
I_SEG_READY = 2
I_REC_NEXT = 3  # absolute index of the next record time (k * rec_dt)
I_N_SPK = 4  # spikes written into the current spike buffer
I_N_EV = 5  # events written into the current event buffer
I_ARMED = 6
I_EVENTS = 7  # accepted channel events (total)
I_CANDIDATES = 8
I_CELL_CHANGES = 9
I_CLAMPED = 10
I_SINCE_REFRESH = 11
N_ISTATE = 12

MODE_CURRENT = 0
MODE_VOLTAGE = 1

# Bounds, conductances and the total are updated incrementally at each event; rebuild them from the counts
# this often so rounding cannot accumulate over long runs.
_REFRESH_EVERY = 1024


@numba.njit(cache=True, inline="always")
def _decay(x):
    """exp(-x) for x >= 0. Between channel events x = s G / C is tiny (~1e-4 in a 100 µm² patch); below 1e-3
    the 4th-order Taylor polynomial is exact to double precision (truncation < x^5/120 < 8.4e-18) and costs
    four multiply-adds instead of a libm call."""
    if x < 1e-3:
        return 1.0 + x * (-1.0 + x * (0.5 + x * (-1.0 / 6.0 + x * (1.0 / 24.0))))
    return math.exp(-x)


@numba.njit(cache=True, inline="always")
def _relax(V, s, G, num, invC):
    """V after ``s`` ms of relaxation with conductance G (nS), ``num = sum g E + I`` (pA), ``invC = 1/C`` (1/pF)."""
    if G > 0.0:
        Vinf = num / G
        return Vinf + (V - Vinf) * _decay(s * G * invC)
    return V + num * invC * s


@numba.njit(cache=True, inline="always")
def _time_to(V, target, G, num, C, s_max):
    """Time (ms) for the relaxation from V to reach ``target``, assumed to be on the way; clipped to [0, s_max]."""
    if G > 0.0:
        Vinf = num / G
        if target == Vinf:  # approached asymptotically, never reached
            return s_max
        ratio = (V - Vinf) / (target - Vinf)
        s = C / G * math.log(ratio) if ratio > 0.0 else s_max
    else:
        slope = num / C
        s = (target - V) / slope if slope != 0.0 else s_max
    if not (s >= 0.0):
        s = 0.0
    if s > s_max:
        s = s_max
    return s


@numba.njit(cache=True)
def set_cell_bounds(cell, tr_law, tr_factor, tr_scale, law_table, bmax, ratio):
    """Per-transition upper bounds and lower/upper ratios inside voltage cell ``cell``."""
    for j in range(tr_law.shape[0]):
        law = tr_law[j]
        a = law_table[law, cell]
        b = law_table[law, cell + 1]
        hi = a if a > b else b
        lo = b if a > b else a
        f = tr_factor[j] * tr_scale[j]
        bmax[j] = f * hi
        ratio[j] = lo / hi if hi > 0.0 else 1.0


@numba.njit(cache=True)
def set_exact_rates(V, tr_law, tr_factor, tr_scale, law_kind, law_par, law_table, grid_lo, grid_step, bmax, ratio):
    """Exact per-transition rates at a fixed voltage (voltage clamp: bounds are the rates)."""
    for j in range(tr_law.shape[0]):
        law = tr_law[j]
        r = rate_at(law_kind[law], law_par[law, 0], law_par[law, 1], law_par[law, 2], law_table[law], V,
                    grid_lo, grid_step)
        bmax[j] = tr_factor[j] * tr_scale[j] * r
        ratio[j] = 1.0


@numba.njit(cache=True)
def refresh_totals(counts, state_ptr, bmax, exit_bound, state_g, state_gE):
    """Rebuild per-state exit bounds ``exit_bound[0]`` and selection weights ``exit_bound[1] = n * bound``;
    return (B, G_channels, gE_channels) from the counts."""
    B = 0.0
    G = 0.0
    gE = 0.0
    for s in range(counts.shape[0]):
        e = 0.0
        for j in range(state_ptr[s], state_ptr[s + 1]):
            e += bmax[j]
        exit_bound[0, s] = e
        w = counts[s] * e
        exit_bound[1, s] = w
        B += w
        G += counts[s] * state_g[s]
        gE += counts[s] * state_gE[s]
    return B, G, gE


@numba.njit(cache=True)
def run_patch(
    # model (read-only)
    state_ptr, tr_dst, tr_law, tr_factor, tr_scale, state_g, state_gE, g_leak, gE_leak, C,
    law_kind, law_par, law_table, grid_lo, grid_step,
    # protocol segments (absolute end times, mode, value: pA or mV)
    seg_t_end, seg_mode, seg_value,
    # mutable state
    counts, fstate, istate, rng, rng_agent, bmax, ratio, exit_bound,  # exit_bound: (2, n_states) work array
    # agents: members[s, :counts[s]] are the ids of the channels in state s (any order); unless track_agents,
    # ignored. A moving channel is picked by its index in that list, so no id -> position map is needed.
    track_agents, members,
    # recording: record times are k * rec_dt for absolute k = rec_k0 + row
    rec_dt, rec_k0, rec_V, rec_counts, rec_I,
    # spikes
    spike_level, rearm_level, stop_on_spike, spk_t, spk_peak, spk_peak_t,
    # single-channel events
    ev_t, ev_ch, ev_from, ev_to, ev_V,
):
    """Run the patch from ``fstate[F_T]`` through the given segments; see the module docstring.

    Returns a status code (``STATUS_*``); the state arrays always describe a consistent point of the run.
    """
    n_states = counts.shape[0]
    n_cells = law_table.shape[1] - 1
    invC = 1.0 / C
    ebound = exit_bound[0]  # per-state sum of the transition bounds
    weight = exit_bound[1]  # counts[s] * ebound[s]: the selection weight of each state
    n_seg = seg_t_end.shape[0]
    n_rec = rec_V.shape[0]

    t = fstate[F_T]
    V = fstate[F_V]
    E_rem = fstate[F_EREM]
    I = fstate[F_I]
    cell = istate[I_CELL]
    seg = istate[I_SEG]
    rec_next = istate[I_REC_NEXT]
    n_spk = istate[I_N_SPK]
    n_ev = istate[I_N_EV]
    armed = istate[I_ARMED]
    n_events = istate[I_EVENTS]
    n_cand = istate[I_CANDIDATES]
    n_cellch = istate[I_CELL_CHANGES]
    clamped = istate[I_CLAMPED]
    status = STATUS_DONE

    B = fstate[F_B]
    Gch = fstate[F_GCH]
    gEch = fstate[F_GECH]
    since_refresh = istate[I_SINCE_REFRESH]

    while seg < n_seg:
        t_end = seg_t_end[seg]
        if t_end < t:  # a segment that ended before the present time is empty; time never runs backwards
            t_end = t
        if istate[I_SEG_READY] == 0:
            if seg_mode[seg] == MODE_VOLTAGE:
                clamped = 1
                V = seg_value[seg]
                I = 0.0
                set_exact_rates(V, tr_law, tr_factor, tr_scale, law_kind, law_par, law_table, grid_lo, grid_step,
                                bmax, ratio)
            else:
                clamped = 0
                I = seg_value[seg]
                pos_v = (V - grid_lo) / grid_step
                if not (pos_v >= 0.0 and pos_v <= n_cells):
                    status = STATUS_V_OUT_OF_RANGE
                    break
                cell = int(pos_v)
                if cell >= n_cells:
                    cell = n_cells - 1
                set_cell_bounds(cell, tr_law, tr_factor, tr_scale, law_table, bmax, ratio)
            B, Gch, gEch = refresh_totals(counts, state_ptr, bmax, exit_bound, state_g, state_gE)
            since_refresh = 0
            istate[I_SEG_READY] = 1

        while True:
            if track_agents and n_ev >= ev_t.shape[0]:
                status = STATUS_EVENTS_FULL
                break
            if n_spk >= spk_t.shape[0]:
                status = STATUS_SPIKES_FULL
                break
            if since_refresh >= _REFRESH_EVERY:
                B, Gch, gEch = refresh_totals(counts, state_ptr, bmax, exit_bound, state_g, state_gE)
                since_refresh = 0
            if E_rem < 0.0:
                E_rem = next_exponential(rng)

            G = Gch + g_leak
            num = gEch + gE_leak + I
            # tentative end of this step: candidate or segment end
            if B > 0.0:
                t_c = t + E_rem / B
            else:
                t_c = math.inf
            is_candidate = t_c < t_end
            t_new = t_c if is_candidate else t_end
            leave = 0
            edge = 0.0
            if clamped:
                V_new = V
            else:
                V_new = _relax(V, t_new - t, G, num, invC)
                lo_edge = grid_lo + cell * grid_step
                hi_edge = lo_edge + grid_step
                if V_new > hi_edge:
                    leave = 1
                    edge = hi_edge
                elif V_new < lo_edge:
                    leave = -1
                    edge = lo_edge
                if leave != 0:
                    # the voltage leaves the cell first: stop at the edge, carry the clock over, re-bound
                    t_new = t + _time_to(V, edge, G, num, C, t_new - t)
                    V_new = edge
                    is_candidate = False
            # spike-level crossing inside this (monotone) step: stop exactly there
            crossed = False
            if not clamped and armed and V < spike_level and V_new >= spike_level:
                t_new = t + _time_to(V, spike_level, G, num, C, t_new - t)
                V_new = spike_level
                is_candidate = False
                leave = 0
                crossed = True
            # record samples on the output grid inside [t, t_new); the very end of the last segment is
            # included, a sample at a segment boundary otherwise shows the new segment (right-continuous)
            seg_end_step = (not is_candidate) and leave == 0 and not crossed
            last_end = seg_end_step and seg == n_seg - 1
            while rec_next - rec_k0 < n_rec:
                tr = rec_next * rec_dt
                # k * dt may round just past the end time it stands for (3 * 0.1 > 0.3): the caller sizes the
                # buffer with floor(t_end / dt + 1e-9), and the last segment takes those samples
                if tr < t_new or (last_end and tr <= t_new + 1e-9 * rec_dt):
                    row = rec_next - rec_k0
                    rec_V[row] = V if clamped else _relax(V, tr - t, G, num, invC)
                    for s in range(n_states):
                        rec_counts[row, s] = counts[s]
                    rec_I[row] = seg_value[seg]
                    rec_next += 1
                else:
                    break
            if not is_candidate and B > 0.0:
                E_rem -= B * (t_new - t)
            t = t_new
            V = V_new
            if not clamped:
                if V > fstate[F_VMAX]:
                    fstate[F_VMAX] = V
                    fstate[F_VMAX_T] = t
                if crossed:
                    armed = 0
                    fstate[F_SPK_T] = t
                    fstate[F_SPK_PEAK] = V
                    fstate[F_SPK_PEAK_T] = t
                elif not armed:
                    if V > fstate[F_SPK_PEAK]:
                        fstate[F_SPK_PEAK] = V
                        fstate[F_SPK_PEAK_T] = t
                    elif V < rearm_level:
                        spk_t[n_spk] = fstate[F_SPK_T]
                        spk_peak[n_spk] = fstate[F_SPK_PEAK]
                        spk_peak_t[n_spk] = fstate[F_SPK_PEAK_T]
                        n_spk += 1
                        armed = 1
                if leave != 0:
                    cell += leave
                    n_cellch += 1
                    if cell < 0 or cell >= n_cells:
                        status = STATUS_V_OUT_OF_RANGE
                        break
                    set_cell_bounds(cell, tr_law, tr_factor, tr_scale, law_table, bmax, ratio)
                    B, Gch, gEch = refresh_totals(counts, state_ptr, bmax, exit_bound, state_g, state_gE)
                    since_refresh = 0
            if crossed and stop_on_spike:
                status = STATUS_SPIKE
                break
            if not is_candidate:
                if seg_end_step:
                    break  # segment finished
                continue

            # -- a candidate: pick (state, transition) with one uniform, by residual --------------------------
            n_cand += 1
            E_rem = -1.0
            target = next_double(rng) * B
            src = -1
            for s in range(n_states):
                w = weight[s]
                if w > 0.0:
                    src = s
                    if target < w:
                        break
                    target -= w
            if src < 0:
                continue
            nsrc = counts[src]
            j = -1
            for jj in range(state_ptr[src], state_ptr[src + 1]):
                w = nsrc * bmax[jj]
                if w > 0.0:
                    j = jj
                    if target < w:
                        break
                    target -= w
            if j < 0:
                continue
            if not clamped:
                u3 = next_double(rng)
                if u3 >= ratio[j]:
                    law = tr_law[j]
                    r = tr_factor[j] * tr_scale[j] * rate_at(
                        law_kind[law], law_par[law, 0], law_par[law, 1], law_par[law, 2], law_table[law], V,
                        grid_lo, grid_step)
                    if u3 * bmax[j] >= r:
                        continue  # rejected
            # -- accepted: apply the event ------------------------------------------------------------------
            dst = tr_dst[j]
            if track_agents:
                k = int(next_double(rng_agent) * nsrc)
                c = members[src, k]
                members[src, k] = members[src, nsrc - 1]
                members[dst, counts[dst]] = c
                ev_t[n_ev] = t
                ev_ch[n_ev] = c
                ev_from[n_ev] = src
                ev_to[n_ev] = dst
                ev_V[n_ev] = V
                n_ev += 1
            counts[src] -= 1
            counts[dst] += 1
            Gch += state_g[dst] - state_g[src]
            gEch += state_gE[dst] - state_gE[src]
            B += ebound[dst] - ebound[src]
            weight[src] -= ebound[src]
            weight[dst] += ebound[dst]
            n_events += 1
            since_refresh += 1

        if status != STATUS_DONE:
            break
        seg += 1
        istate[I_SEG_READY] = 0

    fstate[F_B] = B
    fstate[F_GCH] = Gch
    fstate[F_GECH] = gEch
    istate[I_SINCE_REFRESH] = since_refresh
    fstate[F_T] = t
    fstate[F_V] = V
    fstate[F_EREM] = E_rem
    fstate[F_I] = I
    istate[I_CELL] = cell
    istate[I_SEG] = seg
    istate[I_REC_NEXT] = rec_next
    istate[I_N_SPK] = n_spk
    istate[I_N_EV] = n_ev
    istate[I_ARMED] = armed
    istate[I_EVENTS] = n_events
    istate[I_CANDIDATES] = n_cand
    istate[I_CELL_CHANGES] = n_cellch
    istate[I_CLAMPED] = clamped
    return status
