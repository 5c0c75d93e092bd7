"""Many independent trials of one patch in one compiled call, in parallel over trials.

Every trial owns a row of each state array (counts, scalar state, random streams, bound work arrays) and its
own schedule row, and runs :func:`~stochion._kernels.patch_ssa.run_patch` unchanged, so a batched trial is the
same computation as a single run with the same stream. Only the trials listed in ``active`` are run, which
lets the caller resume the trials whose spike buffer filled up.
"""

from __future__ import annotations

import numba
import numpy as np

from .patch_ssa import run_patch


@numba.njit(cache=True, parallel=True)
def run_batch(
    state_ptr, tr_dst, tr_law, tr_factor, tr_scale, state_g, state_gE, g_leak, gE_leak, C,
    law_kind, law_par, law_table, grid_lo, grid_step,
    seg_t_end, seg_mode, seg_value,  # (n_trials, n_seg) each
    counts, fstate, istate, rng, rng_agent, bmax, ratio, exit_bound,  # (n_trials, ...)
    rec_dt, rec_k0, rec_V, rec_counts, rec_I,  # (n_trials, n_rec[, n_states]); n_rec may be 0
    spike_level, rearm_level, spk_t, spk_peak, spk_peak_t,  # (n_trials, cap)
    active, status,
):
    """Run the trials ``active`` through their schedules; ``status[i]`` gets each trial's status code."""
    members = np.zeros((1, 1), dtype=np.int32)
    ev_f = np.zeros(0)
    ev_i = np.zeros(0, dtype=np.int32)
    ev_s = np.zeros(0, dtype=np.int16)
    for a in numba.prange(active.shape[0]):
        i = active[a]
        status[i] = run_patch(
            state_ptr, tr_dst, tr_law, tr_factor, tr_scale, state_g, state_gE, g_leak, gE_leak, C,
            law_kind, law_par, law_table, grid_lo, grid_step,
            seg_t_end[i], seg_mode[i], seg_value[i],
            counts[i], fstate[i], istate[i], rng[i], rng_agent[i], bmax[i], ratio[i], exit_bound[i],
            False, members,
            rec_dt, rec_k0, rec_V[i], rec_counts[i], rec_I[i],
            spike_level, rearm_level, False, spk_t[i], spk_peak[i], spk_peak_t[i],
            ev_f, ev_i, ev_s, ev_s, ev_f,
        )
