"""Stochastic and mean-field cable stepping: an unbranched axon of compartments, one compiled loop.

The axon is a chain of compartments ``i = 0 .. N-1`` with sealed ends. Each holds channel populations of the
same lowered schemes (``stochion.engine.lower_patch``; per-compartment counts, zero where a population is
absent), a constant leak, a capacitance, and is coupled to its neighbours by axial conductances. Time advances
in fixed steps ``[t_n, t_n + dt]`` with ``t_n = n * dt``. One step does, in this order:

1. **Stimuli.** The injected current of each compartment is the exact average over the step of its
   piecewise-constant schedules (so a pulse shorter than a step still delivers its charge). A compartment
   is clamped during the step if a voltage-clamp segment holds at the end of the step.
2. **Channels, compartment by compartment (0 .. N-1).** The rates are evaluated at the *predicted mid-step
   voltage* ``V* = V_n + (V_n - V_{n-1}) / 2`` (linear extrapolation; the clamp level if clamped), and held
   there for the whole step.
   - ``run_cable_ssa``: the channels of the compartment jump by the exact direct-method SSA of the
     Markov chain with those frozen rates (Gillespie 1977). Its unit-exponential clock ``E_rem[i]`` is
     carried across steps (random time change: a clock that did not ring in a step is decreased by the
     integrated total rate, not redrawn), which is exact for piecewise-constant rates. The time integral of
     the channel conductance over the step is accumulated exactly (counts are piecewise constant).
   - ``run_cable_meanfield``: the occupancy probabilities ``p`` of each type follow the master equation
     ``dp/dt = Q(V*)^T p`` by one Crank–Nicolson step (the (1,1) Padé approximant of ``expm(Q^T dt)``,
     second order, exactly probability-conserving); the step's conductance is the trapezoid average.
3. **Voltage.** The θ-method (θ = 1/2 Crank–Nicolson, θ = 1 backward Euler) for the cable equation with
   the step-averaged membrane conductances, ``C_i dV_i/dt = -G_i V_i + N_i + sum_j g_ij (V_j - V_i)``,
   is a tridiagonal system solved by the Thomas algorithm (Hines 1984, doi:10.1016/0020-7101(84)90008-4).
4. **Spikes and records.** An upward crossing of ``spike_level`` between ``V_n`` and ``V_{n+1}`` is located
   by linear interpolation within the step; the detector re-arms below ``rearm_level``. Records are the
   state at ``t_n`` for ``n`` a multiple of ``rec_every``.

The only approximations are the frozen mid-step voltage in the channel rates (error O(dt²) per step in the
integrated hazard) and the time discretisation of the cable (O(dt²) for Crank–Nicolson, O(dt) for backward
Euler; O(dx²) in space). With one compartment and no axial current, ``run_cable_ssa`` converges to the exact
patch kernel as ``dt -> 0``.

Random draws (``run_cable_ssa``, one ``xoshiro256**`` stream ``rng`` per run), in order: steps in time order;
within a step, compartments ``0 .. N-1`` (compartments without channels draw nothing); within a compartment,
whenever its clock is spent (``E_rem < 0``) and its total rate is positive a fresh unit exponential (``next_exponential``, ziggurat); at each event one
uniform (``next_double``) that picks the source state and the transition by residual, states in order, then
the transitions leaving that state in order. Nothing else draws. ``run_cable_meanfield`` draws nothing.

Everything lives in caller-allocated arrays (model, state, outputs and scratch); the kernels allocate nothing
and return a status code; calling again resumes exactly where they stopped.

References
----------
Gillespie DT (1977) J Phys Chem 81:2340-2361. doi:10.1021/j100540a008
Hines M (1984) Int J Biomed Comput 15:69-76. doi:10.1016/0020-7101(84)90008-4
Crank J, Nicolson P (1947) Proc Camb Phil Soc 43:50-67. doi:10.1017/S0305004100023197
"""

from __future__ import annotations

import numba

from ..rates import rate_at
from .rng import next_double, next_exponential

# -- status codes ------------------------------------------------------------------------------------------
STATUS_DONE = 0
STATUS_SPIKES_FULL = 2
STATUS_V_OUT_OF_RANGE = 4

# -- istate slots ------------------------------------------------------------------------------------------
I_STEP = 0  # index n of the present time t_n = n * dt
I_REC_NEXT = 1  # step index of the next record
I_REC_ROW = 2  # next row of the record buffers
I_N_SPK = 3  # spikes written into the spike buffer
I_EVENTS = 4  # accepted channel events (total, stochastic only)
I_BAD_COMP = 5  # compartment whose voltage left the range (when STATUS_V_OUT_OF_RANGE)
N_ISTATE = 6

MODE_CURRENT = 0
MODE_VOLTAGE = 1


@numba.njit(cache=True, inline="always")
def _stimuli(t0, t1, stim_comp, stim_ptr, seg_t_end, seg_mode, seg_value, stim_seg, I_avg, is_clamped, clamp_V):
    """Step-averaged injected current (pA) and clamp status of every compartment over ``[t0, t1]``.

    Each stimulus ``k`` acts on compartment ``stim_comp[k]`` through segments ``stim_ptr[k]:stim_ptr[k+1]``
    (absolute end times; after the last one nothing is injected). ``stim_seg[k]`` is a cursor that only moves
    forward. Currents of several stimuli on one compartment add; a clamp holding at ``t1`` wins.
    """
    n = I_avg.shape[0]
    for i in range(n):
        I_avg[i] = 0.0
        is_clamped[i] = 0
    h = t1 - t0
    for k in range(stim_comp.shape[0]):
        i = stim_comp[k]
        lo = stim_ptr[k]
        hi = stim_ptr[k + 1]
        s = stim_seg[k]
        if s < lo:
            s = lo
        while s < hi and seg_t_end[s] <= t0:
            s += 1
        stim_seg[k] = s
        q = 0.0
        a = t0
        j = s
        while j < hi and a < t1:
            b = seg_t_end[j]
            if b > t1:
                b = t1
            if seg_mode[j] == MODE_CURRENT:
                q += seg_value[j] * (b - a)
            a = b
            if seg_t_end[j] <= t1:
                j += 1
            else:
                break
        I_avg[i] += q / h
        # clamp status at the end of the step: the segment holding just before t1
        j = s
        while j < hi and seg_t_end[j] < t1:
            j += 1
        if j < hi and seg_mode[j] == MODE_VOLTAGE:
            is_clamped[i] = 1
            clamp_V[i] = seg_value[j]


@numba.njit(cache=True, inline="always")
def _predicted_V(i, V, V_prev, is_clamped, clamp_V, v_lo, v_hi):
    """Predicted mid-step voltage of compartment ``i`` (linear extrapolation), kept inside the rate grid."""
    if is_clamped[i]:
        return clamp_V[i]
    v = 1.5 * V[i] - 0.5 * V_prev[i]
    if v < v_lo:
        v = v_lo
    if v > v_hi:
        v = v_hi
    return v


@numba.njit(cache=True, inline="always")
def _rates_at(Vs, tr_law, tr_factor, tr_scale, law_kind, law_par, law_table, grid_lo, grid_step, law_val, rate):
    """Every transition's rate (1/ms) at voltage ``Vs``: each distinct law once, then factor × scale × law."""
    for law in range(law_kind.shape[0]):
        law_val[law] = rate_at(law_kind[law], law_par[law, 0], law_par[law, 1], law_par[law, 2], law_table[law],
                               Vs, grid_lo, grid_step)
    for j in range(tr_law.shape[0]):
        rate[j] = tr_factor[j] * tr_scale[j] * law_val[tr_law[j]]


@numba.njit(cache=True, inline="always")
def _voltage_step(dt, theta, C_pF, G, Nsrc, g_axial, V, V_prev, is_clamped, clamp_V, ta, tb, tc, td, cp, dp):
    """θ-method step of the cable: solve the tridiagonal system for ``V_{n+1}`` (Thomas algorithm).

    ``G[i]`` (nS) is the step-averaged membrane conductance and ``Nsrc[i]`` (pA) the step-averaged
    ``sum g E + I_stim`` of compartment ``i``; ``g_axial[i]`` (nS) couples ``i`` and ``i + 1``. On return ``V``
    holds ``V_{n+1}`` and ``V_prev`` the old ``V_n``.
    """
    n = V.shape[0]
    om = 1.0 - theta
    for i in range(n):
        if is_clamped[i]:
            ta[i] = 0.0
            tb[i] = 1.0
            tc[i] = 0.0
            td[i] = clamp_V[i]
            continue
        c_dt = C_pF[i] / dt
        gl = g_axial[i - 1] if i > 0 else 0.0
        gr = g_axial[i] if i < n - 1 else 0.0
        ta[i] = -theta * gl
        tc[i] = -theta * gr
        tb[i] = c_dt + theta * (G[i] + gl + gr)
        rhs = c_dt * V[i] - om * G[i] * V[i] + Nsrc[i]
        if i > 0:
            rhs += om * gl * (V[i - 1] - V[i])
        if i < n - 1:
            rhs += om * gr * (V[i + 1] - V[i])
        td[i] = rhs
    # forward sweep
    cp[0] = tc[0] / tb[0]
    dp[0] = td[0] / tb[0]
    for i in range(1, n):
        m = tb[i] - ta[i] * cp[i - 1]
        cp[i] = tc[i] / m
        dp[i] = (td[i] - ta[i] * dp[i - 1]) / m
    # back substitution; V_prev takes the old values
    for i in range(n):
        V_prev[i] = V[i]
    V[n - 1] = dp[n - 1]
    for i in range(n - 2, -1, -1):
        V[i] = dp[i] - cp[i] * V[i + 1]


@numba.njit(cache=True, inline="always")
def _detect(t0, dt, V, V_prev, detect, spike_level, rearm_level, armed, spk_cross, spk_peak_run, spk_comp, spk_t,
            spk_peak, n_spk):
    """Level crossings between ``V_prev`` (at ``t0``) and ``V`` (at ``t0 + dt``); returns the new ``n_spk``."""
    for i in range(V.shape[0]):
        if not detect[i]:
            continue
        v0 = V_prev[i]
        v1 = V[i]
        if armed[i]:
            if v0 < spike_level and v1 >= spike_level:
                armed[i] = 0
                spk_cross[i] = t0 + dt * (spike_level - v0) / (v1 - v0)
                spk_peak_run[i] = v1
        else:
            if v1 > spk_peak_run[i]:
                spk_peak_run[i] = v1
            elif v1 < rearm_level:
                spk_comp[n_spk] = i
                spk_t[n_spk] = spk_cross[i]
                spk_peak[n_spk] = spk_peak_run[i]
                n_spk += 1
                armed[i] = 1
    return n_spk


@numba.njit(cache=True)
def _ssa_compartment(i, dt, Vs, counts, E_rem, rng, state_ptr, tr_dst, tr_law, tr_factor, tr_scale, state_g,
                     state_gE, law_kind, law_par, law_table, grid_lo, grid_step, law_val, rate, exit_rate):
    """Exact SSA of compartment ``i``'s channels over one step at frozen voltage ``Vs``.

    Returns ``(integral of G dt (nS ms), integral of g E dt (nS mV ms), events)``.
    """
    n_states = counts.shape[1]
    total = 0
    for s in range(n_states):
        total += counts[i, s]
    if total == 0:  # no channels here (an internode): no rates to evaluate, no draws
        return 0.0, 0.0, 0
    _rates_at(Vs, tr_law, tr_factor, tr_scale, law_kind, law_par, law_table, grid_lo, grid_step, law_val, rate)
    B = 0.0
    G = 0.0
    gE = 0.0
    for s in range(n_states):
        e = 0.0
        for j in range(state_ptr[s], state_ptr[s + 1]):
            e += rate[j]
        exit_rate[s] = e
        c = counts[i, s]
        B += c * e
        G += c * state_g[s]
        gE += c * state_gE[s]
    t = 0.0
    g_int = 0.0
    gE_int = 0.0
    events = 0
    E = E_rem[i]
    while True:
        rest = dt - t
        if not (B > 0.0):
            g_int += G * rest
            gE_int += gE * rest
            break
        if E < 0.0:
            E = next_exponential(rng)
        if B * rest <= E:  # the clock does not ring in the rest of the step: carry it over
            E -= B * rest
            g_int += G * rest
            gE_int += gE * rest
            break
        tau = E / B
        g_int += G * tau
        gE_int += gE * tau
        t += tau
        E = -1.0
        # one uniform picks the source state and the transition, by residual
        target = next_double(rng) * B
        src = -1
        for s in range(n_states):
            w = counts[i, s] * exit_rate[s]
            if w > 0.0:
                src = s
                if target < w:
                    break
                target -= w
        if src < 0:
            continue
        nsrc = counts[i, src]
        jsel = -1
        for j in range(state_ptr[src], state_ptr[src + 1]):
            w = nsrc * rate[j]
            if w > 0.0:
                jsel = j
                if target < w:
                    break
                target -= w
        if jsel < 0:
            continue
        dst = tr_dst[jsel]
        counts[i, src] -= 1
        counts[i, dst] += 1
        B += exit_rate[dst] - exit_rate[src]
        G += state_g[dst] - state_g[src]
        gE += state_gE[dst] - state_gE[src]
        events += 1
    E_rem[i] = E
    return g_int, gE_int, events


@numba.njit(cache=True, inline="always")
def _record_ssa(row, V, counts, rec_comp, state_open, state_type, rec_V, rec_open):
    for r in range(rec_comp.shape[0]):
        i = rec_comp[r]
        rec_V[row, r] = V[i]
        for k in range(rec_open.shape[2]):
            rec_open[row, r, k] = 0.0
        for s in range(counts.shape[1]):
            if state_open[s]:
                rec_open[row, r, state_type[s]] += counts[i, s]


@numba.njit(cache=True, nogil=True)
def run_cable_ssa(
    # channel model (lowered schemes, shared by all compartments; read-only)
    state_ptr, tr_dst, tr_law, tr_factor, tr_scale, state_g, state_gE, state_open, state_type,
    law_kind, law_par, law_table, grid_lo, grid_step, v_lo, v_hi,
    # cable (read-only): per compartment C (pF), leak (nS, nS mV); axial conductance (nS) between i and i+1
    C_pF, g_leak, gE_leak, g_axial, theta, dt,
    # stimuli (read-only but the cursors stim_seg)
    stim_comp, stim_ptr, seg_t_end, seg_mode, seg_value, stim_seg,
    # mutable state
    counts, V, V_prev, E_rem, rng, istate,
    # run to step index step_stop
    step_stop,
    # recording every rec_every steps, compartments rec_comp
    rec_every, rec_comp, rec_V, rec_open,
    # spikes
    detect, spike_level, rearm_level, armed, spk_cross, spk_peak_run, spk_comp, spk_t, spk_peak,
    # scratch
    law_val, rate, exit_rate, G, Nsrc, I_avg, is_clamped, clamp_V, ta, tb, tc, td, cp, dp,
):
    """Advance the stochastic cable to step ``step_stop`` (see the module docstring). Returns a status code."""
    n = V.shape[0]
    step = istate[I_STEP]
    rec_next = istate[I_REC_NEXT]
    row = istate[I_REC_ROW]
    n_spk = istate[I_N_SPK]
    events = istate[I_EVENTS]
    status = STATUS_DONE
    while True:
        if step == rec_next and row < rec_V.shape[0]:
            _record_ssa(row, V, counts, rec_comp, state_open, state_type, rec_V, rec_open)
            row += 1
            rec_next += rec_every
        if step >= step_stop:
            break
        if n_spk + n > spk_t.shape[0]:
            status = STATUS_SPIKES_FULL
            break
        t0 = step * dt
        t1 = (step + 1) * dt
        _stimuli(t0, t1, stim_comp, stim_ptr, seg_t_end, seg_mode, seg_value, stim_seg, I_avg, is_clamped, clamp_V)
        for i in range(n):
            Vs = _predicted_V(i, V, V_prev, is_clamped, clamp_V, v_lo, v_hi)
            g_int, gE_int, ev = _ssa_compartment(i, dt, Vs, counts, E_rem, rng, state_ptr, tr_dst, tr_law,
                                                 tr_factor, tr_scale, state_g, state_gE, law_kind, law_par,
                                                 law_table, grid_lo, grid_step, law_val, rate, exit_rate)
            events += ev
            G[i] = g_int / dt + g_leak[i]
            Nsrc[i] = gE_int / dt + gE_leak[i] + I_avg[i]
        _voltage_step(dt, theta, C_pF, G, Nsrc, g_axial, V, V_prev, is_clamped, clamp_V, ta, tb, tc, td, cp, dp)
        step += 1
        n_spk = _detect(t0, dt, V, V_prev, detect, spike_level, rearm_level, armed, spk_cross, spk_peak_run,
                        spk_comp, spk_t, spk_peak, n_spk)
        bad = -1
        for i in range(n):
            if not (V[i] >= v_lo and V[i] <= v_hi):
                bad = i
                break
        if bad >= 0:
            istate[I_BAD_COMP] = bad
            status = STATUS_V_OUT_OF_RANGE
            break
    istate[I_STEP] = step
    istate[I_REC_NEXT] = rec_next
    istate[I_REC_ROW] = row
    istate[I_N_SPK] = n_spk
    istate[I_EVENTS] = events
    return status


@numba.njit(cache=True)
def _meanfield_compartment(i, dt, Vs, p, n_chan, type_offsets, state_ptr, tr_dst, tr_law, tr_factor, tr_scale,
                           state_g, state_gE, law_kind, law_par, law_table, grid_lo, grid_step, law_val, rate, A, b):
    """Crank–Nicolson step of the master equation of compartment ``i`` at frozen ``Vs``.

    ``p[i]`` holds the occupancy probabilities (each type's block sums to 1); ``n_chan[i, k]`` the number of
    channels of type ``k``. Returns the trapezoid averages ``(G (nS), sum g E (nS mV))`` over the step.
    """
    half = 0.5 * dt
    any_channels = False
    for k in range(type_offsets.shape[0] - 1):
        if n_chan[i, k] != 0.0:
            any_channels = True
    if not any_channels:
        return 0.0, 0.0
    _rates_at(Vs, tr_law, tr_factor, tr_scale, law_kind, law_par, law_table, grid_lo, grid_step, law_val, rate)
    G = 0.0
    gE = 0.0
    for k in range(type_offsets.shape[0] - 1):
        lo = type_offsets[k]
        m = type_offsets[k + 1] - lo
        N = n_chan[i, k]
        if N == 0.0:  # no channels of this type here (an internode): nothing to conduct, nothing to advance
            continue
        # (I - dt/2 Q^T) p_new = (I + dt/2 Q^T) p_old ; Q^T[d, s] = rate s -> d
        for r in range(m):
            b[r] = p[i, lo + r]
            for c in range(m):
                A[r, c] = 0.0
            A[r, r] = 1.0
        for r in range(m):
            s = lo + r
            ps = p[i, s]
            for j in range(state_ptr[s], state_ptr[s + 1]):
                d = tr_dst[j] - lo
                q = half * rate[j]
                b[r] -= q * ps
                b[d] += q * ps
                A[r, r] += q
                A[d, r] -= q
        # Gaussian elimination without pivoting: I - dt/2 Q^T is strictly column diagonally dominant
        for c in range(m):
            piv = A[c, c]
            for r in range(c + 1, m):
                f = A[r, c] / piv
                if f != 0.0:
                    for cc in range(c, m):
                        A[r, cc] -= f * A[c, cc]
                    b[r] -= f * b[c]
        for r in range(m - 1, -1, -1):
            acc = b[r]
            for cc in range(r + 1, m):
                acc -= A[r, cc] * b[cc]
            b[r] = acc / A[r, r]
        for r in range(m):
            s = lo + r
            avg = 0.5 * (p[i, s] + b[r])
            G += N * avg * state_g[s]
            gE += N * avg * state_gE[s]
            p[i, s] = b[r]
    return G, gE


@numba.njit(cache=True, inline="always")
def _record_meanfield(row, V, p, n_chan, rec_comp, state_open, state_type, rec_V, rec_open):
    for r in range(rec_comp.shape[0]):
        i = rec_comp[r]
        rec_V[row, r] = V[i]
        for k in range(rec_open.shape[2]):
            rec_open[row, r, k] = 0.0
        for s in range(p.shape[1]):
            if state_open[s]:
                rec_open[row, r, state_type[s]] += n_chan[i, state_type[s]] * p[i, s]


@numba.njit(cache=True, nogil=True)
def run_cable_meanfield(
    # channel model
    state_ptr, tr_dst, tr_law, tr_factor, tr_scale, state_g, state_gE, state_open, state_type, type_offsets,
    law_kind, law_par, law_table, grid_lo, grid_step, v_lo, v_hi,
    # cable
    C_pF, g_leak, gE_leak, g_axial, n_chan, theta, dt,
    # stimuli
    stim_comp, stim_ptr, seg_t_end, seg_mode, seg_value, stim_seg,
    # mutable state
    p, V, V_prev, istate,
    step_stop,
    rec_every, rec_comp, rec_V, rec_open,
    detect, spike_level, rearm_level, armed, spk_cross, spk_peak_run, spk_comp, spk_t, spk_peak,
    # scratch
    law_val, rate, A, bvec, G, Nsrc, I_avg, is_clamped, clamp_V, ta, tb, tc, td, cp, dp,
):
    """Advance the mean-field (infinite-channel) cable to step ``step_stop``; same steps as the stochastic one."""
    n = V.shape[0]
    step = istate[I_STEP]
    rec_next = istate[I_REC_NEXT]
    row = istate[I_REC_ROW]
    n_spk = istate[I_N_SPK]
    status = STATUS_DONE
    while True:
        if step == rec_next and row < rec_V.shape[0]:
            _record_meanfield(row, V, p, n_chan, rec_comp, state_open, state_type, rec_V, rec_open)
            row += 1
            rec_next += rec_every
        if step >= step_stop:
            break
        if n_spk + n > spk_t.shape[0]:
            status = STATUS_SPIKES_FULL
            break
        t0 = step * dt
        t1 = (step + 1) * dt
        _stimuli(t0, t1, stim_comp, stim_ptr, seg_t_end, seg_mode, seg_value, stim_seg, I_avg, is_clamped, clamp_V)
        for i in range(n):
            Vs = _predicted_V(i, V, V_prev, is_clamped, clamp_V, v_lo, v_hi)
            g, gE = _meanfield_compartment(i, dt, Vs, p, n_chan, type_offsets, state_ptr, tr_dst, tr_law, tr_factor,
                                           tr_scale, state_g, state_gE, law_kind, law_par, law_table, grid_lo,
                                           grid_step, law_val, rate, A, bvec)
            G[i] = g + g_leak[i]
            Nsrc[i] = gE + gE_leak[i] + I_avg[i]
        _voltage_step(dt, theta, C_pF, G, Nsrc, g_axial, V, V_prev, is_clamped, clamp_V, ta, tb, tc, td, cp, dp)
        step += 1
        n_spk = _detect(t0, dt, V, V_prev, detect, spike_level, rearm_level, armed, spk_cross, spk_peak_run,
                        spk_comp, spk_t, spk_peak, n_spk)
        bad = -1
        for i in range(n):
            if not (V[i] >= v_lo and V[i] <= v_hi):
                bad = i
                break
        if bad >= 0:
            istate[I_BAD_COMP] = bad
            status = STATUS_V_OUT_OF_RANGE
            break
    istate[I_STEP] = step
    istate[I_REC_NEXT] = rec_next
    istate[I_REC_ROW] = row
    istate[I_N_SPK] = n_spk
    return status

