"""Slow pure-Python twin of the compiled patch kernel, for testing (the msprime / STUMPY "naive" reference).

:func:`run_patch` here has the signature, state and buffer semantics and status codes of
:func:`stochion._kernels.patch_ssa.run_patch`, and follows it line by line: the same random draws in the same
order (see that module's docstring), the same voltage-cell bounds, the same spike, record and agent logic, the
same periodic rebuild of the running totals, and the same floating-point operations in the same order. Given
identical inputs (the same seeded ``uint64[4]`` streams) it must reproduce the kernel's output bit for bit, up
to differences between libm and the compiled code that the tests bound.

Everything is plain Python: scalars are Python ``int``/``float``, transcendental functions come from
:mod:`math` (the same libm calls the compiled kernel makes, not numpy's vectorised ones), and xoshiro256** and
its ziggurat exponential are written with Python integers masked to 64 bits. Nothing here calls a compiled
function; only data is imported from the kernel modules (status codes, state slots, modes and refresh period
from ``patch_ssa``, the ziggurat tables from ``rng.ziggurat_tables``), so the two cannot disagree on what a
slot or a table entry means.

It is a testing aid and about a thousand times slower than the kernel; use it on small patches and short runs.

Reference: Blackman D, Vigna S (2021) Scrambled linear pseudorandom number generators. ACM Trans Math Softw
47:36. doi:10.1145/3460772 (xoshiro256**).
"""

from __future__ import annotations

import math

from .patch_ssa import (
    _REFRESH_EVERY,
    F_B,
    F_EREM,
    F_GCH,
    F_GECH,
    F_I,
    F_SPK_PEAK,
    F_SPK_PEAK_T,
    F_SPK_T,
    F_T,
    F_V,
    F_VMAX,
    F_VMAX_T,
    I_ARMED,
    I_CANDIDATES,
    I_CELL,
    I_CELL_CHANGES,
    I_CLAMPED,
    I_EVENTS,
    I_N_EV,
    I_N_SPK,
    I_REC_NEXT,
    I_SEG,
    I_SINCE_REFRESH,
    I_SEG_READY,
    MODE_VOLTAGE,
    STATUS_DONE,
    STATUS_EVENTS_FULL,
    STATUS_SPIKE,
    STATUS_SPIKES_FULL,
    STATUS_V_OUT_OF_RANGE,
)
from .rng import ziggurat_tables

__all__ = ["next_u64_py", "next_double_py", "next_exponential_py", "rate_at_py", "run_patch"]

_MASK64 = (1 << 64) - 1
_TWO_M53 = 1.0 / 9007199254740992.0  # 2**-53, exact


# -- xoshiro256** ---------------------------------------------------------------------------------------------
def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & _MASK64


def next_u64_py(state) -> int:
    """Advance the ``uint64[4]`` array ``state`` in place and return the next xoshiro256** output (an ``int``)."""
    s0 = int(state[0])
    s1 = int(state[1])
    s2 = int(state[2])
    s3 = int(state[3])
    result = (_rotl((s1 * 5) & _MASK64, 7) * 9) & _MASK64
    t = (s1 << 17) & _MASK64
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    state[0] = s0
    state[1] = s1
    state[2] = s2
    state[3] = s3
    return result


def next_double_py(state) -> float:
    """Uniform double in [0, 1) from the top 53 bits of the next output (as ``rng.next_double``)."""
    return float(next_u64_py(state) >> 11) * _TWO_M53


# Ziggurat tables of the unit exponential (256 layers, 53-bit), the same data the compiled sampler reads;
# computed by plain Python/numpy code in rng.py and held here as Python ints and floats.
_ke, _we, _fe, _r = ziggurat_tables()
_KE = [int(x) for x in _ke]  # layer i accepts at once when the 53-bit abscissa is below _KE[i]
_WE = [float(x) for x in _we]  # abscissa scale of layer i
_FE = [float(x) for x in _fe]  # exp(-x_i) at the layer edges
_ZIG_R = float(_r)  # start of the tail
del _ke, _we, _fe, _r


def next_exponential_py(state) -> float:
    """Unit exponential variate by the ziggurat, drawing as ``rng.next_exponential`` does.

    One 64-bit output gives 3 discarded bits, the layer ``idx`` (8 bits) and a 53-bit abscissa ``ri``; below
    the layer's inner edge the value is accepted at once. Otherwise layer 0 samples the tail beyond ``r``
    (``r - log1p(-u)``, one more uniform) and the other layers test the wedge with one more uniform, drawing
    again on rejection. Marsaglia G, Tsang WW (2000) J Stat Softw 5(8). doi:10.18637/jss.v005.i08
    """
    while True:
        ri = next_u64_py(state) >> 3
        idx = ri & 0xFF
        ri >>= 8
        x = float(ri) * _WE[idx]
        if ri < _KE[idx]:
            return x
        if idx == 0:
            return _ZIG_R - math.log1p(-next_double_py(state))
        if (_FE[idx - 1] - _FE[idx]) * next_double_py(state) + _FE[idx] < _exp(-x):
            return x


# -- libm without Python's overflow exceptions ----------------------------------------------------------------
# math.exp and math.expm1 raise OverflowError where the C functions return +inf (and set ERANGE); the compiled
# kernel gets +inf, which the rate laws rely on (a steep Sigmoid far below its midpoint is a / (1 + inf) = 0).
def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _expm1(x: float) -> float:
    try:
        return math.expm1(x)
    except OverflowError:
        return math.inf


# -- rate laws ------------------------------------------------------------------------------------------------
def rate_at_py(kind, a, vh, k, table_col, V, grid_lo, grid_step) -> float:
    """Value (1/ms) of one rate law at ``V`` (mV), as :func:`stochion.rates.rate_at` computes it."""
    if kind == 0:
        return a
    if kind == 1:
        return a * _exp((V - vh) / k)
    if kind == 2:
        return a / (1.0 + _exp(-(V - vh) / k))
    if kind == 3:
        x = (V - vh) / k
        if abs(x) < 1e-4:
            return a * (1.0 + x / 2.0 + x * x / 12.0)
        return a * x / -_expm1(-x)
    # tabulated: linear interpolation between grid edges
    pos = (V - grid_lo) / grid_step
    i = int(pos)  # truncation toward zero, as the compiled float -> int conversion
    if i < 0:
        i = 0
    if i > len(table_col) - 2:
        i = len(table_col) - 2
    w = pos - i
    return float(table_col[i]) * (1.0 - w) + float(table_col[i + 1]) * w


# -- helpers (twins of the kernel's) --------------------------------------------------------------------------
def _decay(x):
    """exp(-x): the 4th-order Taylor polynomial below x = 1e-3, as the kernel."""
    if x < 1e-3:
        return 1.0 + x * (-1.0 + x * (0.5 + x * (-1.0 / 6.0 + x * (1.0 / 24.0))))
    return _exp(-x)


def _relax(V, s, G, num, invC):
    """V after ``s`` ms of relaxation with conductance G (nS), ``num = sum g E + I`` (pA), ``invC = 1/C``."""
    if G > 0.0:
        Vinf = num / G
        return Vinf + (V - Vinf) * _decay(s * G * invC)
    return V + num * invC * s


def _time_to(V, target, G, num, C, s_max):
    """Time (ms) for the relaxation from V to reach ``target``; clipped to [0, s_max]."""
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


def _set_cell_bounds(cell, tr_law, tr_factor, tr_scale, law_table, bmax, ratio):
    for j in range(len(tr_law)):
        law = int(tr_law[j])
        a = float(law_table[law, cell])
        b = float(law_table[law, cell + 1])
        hi = a if a > b else b
        lo = b if a > b else a
        f = float(tr_factor[j]) * float(tr_scale[j])
        bmax[j] = f * hi
        ratio[j] = lo / hi if hi > 0.0 else 1.0


def _set_exact_rates(V, tr_law, tr_factor, tr_scale, law_kind, law_par, law_table, grid_lo, grid_step, bmax,
                     ratio):
    for j in range(len(tr_law)):
        law = int(tr_law[j])
        r = rate_at_py(int(law_kind[law]), float(law_par[law, 0]), float(law_par[law, 1]), float(law_par[law, 2]),
                       law_table[law], V, grid_lo, grid_step)
        bmax[j] = float(tr_factor[j]) * float(tr_scale[j]) * r
        ratio[j] = 1.0


def _refresh_totals(counts, state_ptr, bmax, exit_bound, state_g, state_gE):
    B = 0.0
    G = 0.0
    gE = 0.0
    for s in range(len(counts)):
        e = 0.0
        for j in range(int(state_ptr[s]), int(state_ptr[s + 1])):
            e += float(bmax[j])
        exit_bound[0, s] = e
        n = int(counts[s])
        w = n * e
        exit_bound[1, s] = w
        B += w
        G += n * float(state_g[s])
        gE += n * float(state_gE[s])
    return B, G, gE


# -- the kernel's twin ----------------------------------------------------------------------------------------
def run_patch(
    # model (read-only)
    state_ptr, tr_dst, tr_law, tr_factor, tr_scale, state_g, state_gE, g_leak, gE_leak, C,
    law_kind, law_par, law_table, grid_lo, grid_step,
    # protocol segments (absolute end times, mode, value: pA or mV)
    seg_t_end, seg_mode, seg_value,
    # mutable state
    counts, fstate, istate, rng, rng_agent, bmax, ratio, exit_bound,
    # agents
    track_agents, members,
    # recording
    rec_dt, rec_k0, rec_V, rec_counts, rec_I,
    # spikes
    spike_level, rearm_level, stop_on_spike, spk_t, spk_peak, spk_peak_t,
    # single-channel events
    ev_t, ev_ch, ev_from, ev_to, ev_V,
):
    """Pure-Python :func:`stochion._kernels.patch_ssa.run_patch`: same arguments, effects and status code."""
    g_leak = float(g_leak)
    gE_leak = float(gE_leak)
    C = float(C)
    grid_lo = float(grid_lo)
    grid_step = float(grid_step)
    rec_dt = float(rec_dt)
    rec_k0 = int(rec_k0)
    spike_level = float(spike_level)
    rearm_level = float(rearm_level)
    track_agents = bool(track_agents)
    stop_on_spike = bool(stop_on_spike)

    n_states = len(counts)
    n_cells = law_table.shape[1] - 1
    invC = 1.0 / C
    n_seg = len(seg_t_end)
    n_rec = len(rec_V)
    ev_cap = len(ev_t)
    spk_cap = len(spk_t)

    t = float(fstate[F_T])
    V = float(fstate[F_V])
    E_rem = float(fstate[F_EREM])
    I = float(fstate[F_I])
    cell = int(istate[I_CELL])
    seg = int(istate[I_SEG])
    rec_next = int(istate[I_REC_NEXT])
    n_spk = int(istate[I_N_SPK])
    n_ev = int(istate[I_N_EV])
    armed = int(istate[I_ARMED])
    n_events = int(istate[I_EVENTS])
    n_cand = int(istate[I_CANDIDATES])
    n_cellch = int(istate[I_CELL_CHANGES])
    clamped = int(istate[I_CLAMPED])
    status = STATUS_DONE

    # running totals carry over from the previous call (resuming inside a segment)
    B = float(fstate[F_B])
    Gch = float(fstate[F_GCH])
    gEch = float(fstate[F_GECH])
    since_refresh = int(istate[I_SINCE_REFRESH])

    while seg < n_seg:
        t_end = float(seg_t_end[seg])
        if t_end < t:  # a segment that ended before the present time is empty
            t_end = t
        if istate[I_SEG_READY] == 0:
            if int(seg_mode[seg]) == MODE_VOLTAGE:
                clamped = 1
                V = float(seg_value[seg])
                I = 0.0
                _set_exact_rates(V, tr_law, tr_factor, tr_scale, law_kind, law_par, law_table, grid_lo, grid_step,
                                 bmax, ratio)
            else:
                clamped = 0
                I = float(seg_value[seg])
                pos_v = (V - grid_lo) / grid_step
                if not (pos_v >= 0.0 and pos_v <= n_cells):
                    status = STATUS_V_OUT_OF_RANGE
                    break
                cell = int(pos_v)
                if cell >= n_cells:
                    cell = n_cells - 1
                _set_cell_bounds(cell, tr_law, tr_factor, tr_scale, law_table, bmax, ratio)
            B, Gch, gEch = _refresh_totals(counts, state_ptr, bmax, exit_bound, state_g, state_gE)
            since_refresh = 0
            istate[I_SEG_READY] = 1

        while True:
            if track_agents and n_ev >= ev_cap:
                status = STATUS_EVENTS_FULL
                break
            if n_spk >= spk_cap:
                status = STATUS_SPIKES_FULL
                break
            if since_refresh >= _REFRESH_EVERY:
                B, Gch, gEch = _refresh_totals(counts, state_ptr, bmax, exit_bound, state_g, state_gE)
                since_refresh = 0
            if E_rem < 0.0:
                E_rem = next_exponential_py(rng)  # a fresh unit-exponential clock (ziggurat)

            G = Gch + g_leak
            num = gEch + gE_leak + I
            # tentative end of this step: the next candidate of the bounding process, or the segment end
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
                    t_new = t + _time_to(V, edge, G, num, C, t_new - t)
                    V_new = edge
                    is_candidate = False
            crossed = False
            if not clamped and armed and V < spike_level and V_new >= spike_level:
                t_new = t + _time_to(V, spike_level, G, num, C, t_new - t)
                V_new = spike_level
                is_candidate = False
                leave = 0
                crossed = True
            # output-grid samples inside [t, t_new); t_new itself only at the end of the last segment (a sample
            # on a segment boundary belongs to the segment that starts there: records are right-continuous)
            seg_end_step = (not is_candidate) and leave == 0 and not crossed
            last_end = seg_end_step and seg == n_seg - 1
            while rec_next - rec_k0 < n_rec:
                tr = rec_next * rec_dt
                # k * dt may round just past the end time it stands for (3 * 0.1 > 0.3); the caller sizes the
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
                E_rem -= B * (t_new - t)  # the clock carries over: no candidate in [t, t_new)
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
                    _set_cell_bounds(cell, tr_law, tr_factor, tr_scale, law_table, bmax, ratio)
                    B, Gch, gEch = _refresh_totals(counts, state_ptr, bmax, exit_bound, state_g, state_gE)
                    since_refresh = 0
            if crossed and stop_on_spike:
                status = STATUS_SPIKE
                break
            if not is_candidate:
                if seg_end_step:
                    break  # segment finished
                continue

            # -- a candidate: draw u2, pick (state, transition) by residual -----------------------------------
            n_cand += 1
            E_rem = -1.0
            target = next_double_py(rng) * B
            src = -1
            for s in range(n_states):
                w = float(exit_bound[1, s])
                if w > 0.0:
                    src = s
                    if target < w:
                        break
                    target -= w
            if src < 0:
                continue
            nsrc = int(counts[src])
            j = -1
            for jj in range(int(state_ptr[src]), int(state_ptr[src + 1])):
                w = nsrc * float(bmax[jj])
                if w > 0.0:
                    j = jj
                    if target < w:
                        break
                    target -= w
            if j < 0:
                continue
            if not clamped:
                u3 = next_double_py(rng)  # draw u3: accept with probability rate / bound
                if u3 >= ratio[j]:
                    law = int(tr_law[j])
                    r = float(tr_factor[j]) * float(tr_scale[j]) * rate_at_py(
                        int(law_kind[law]), float(law_par[law, 0]), float(law_par[law, 1]), float(law_par[law, 2]),
                        law_table[law], V, grid_lo, grid_step)
                    if u3 * float(bmax[j]) >= r:
                        continue  # rejected
            # -- accepted: apply the event ------------------------------------------------------------------
            dst = int(tr_dst[j])
            if track_agents:
                k = int(next_double_py(rng_agent) * nsrc)  # draw ua: which channel of the source state moves
                c = int(members[src, k])
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
            Gch += float(state_g[dst]) - float(state_g[src])
            gEch += float(state_gE[dst]) - float(state_gE[src])
            B += float(exit_bound[0, dst]) - float(exit_bound[0, src])
            exit_bound[1, src] = float(exit_bound[1, src]) - float(exit_bound[0, src])
            exit_bound[1, dst] = float(exit_bound[1, dst]) + float(exit_bound[0, dst])
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
