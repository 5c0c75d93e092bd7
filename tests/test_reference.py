"""The compiled patch kernel against its pure-Python twin (stochion._kernels.reference).

Layer one of the evidence (msprime's ``verification``, STUMPY's ``naive.py``): for the same seeded streams the
slow reference and the compiled kernel must make the same random draws and the same decisions, so the discrete
outputs (event sequence, channel ids, counts, spike counts, random-stream states, counters) are required to be
identical and the floating-point outputs (times, voltages) equal within 1e-9 relative. In practice they agree bit
for bit, since both make the same IEEE operations in the same order and the same libm calls.

Both are driven through the same call pattern as ``PatchSimulation.run_segments``: a ``PatchSimulation`` is
built (lowering, seeding, initial state, agents), its arrays are deep-copied twice and each copy is run by one
implementation with identical fresh buffers, resuming on full buffers as the engine does (see ``drive``). All
tests are deterministic (fixed seeds); the file runs in about ten seconds.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

from stochion._kernels import patch_ssa as K
from stochion._kernels import reference as R
from stochion._kernels.rng import next_double, next_exponential, next_u64, stream_state, ziggurat_tables
from stochion.channels import MarkovScheme, Transition, hh_potassium, hh_sodium
from stochion.engine import PatchSimulation
from stochion.membrane import ChannelPopulation, Patch, hh_patch, uA_per_cm2_to_pA
from stochion.rates import Constant, Exponential, Linoid, Sigmoid, TabulatedRate, rate_at, voltage_grid_mV

RTOL = 1e-9  # floating-point agreement asked of the reference (it is bit-exact in practice)
MASK64 = (1 << 64) - 1


# -- xoshiro256** -----------------------------------------------------------------------------------------------
def xoshiro256ss_c_reference(s):
    """Transliteration of Blackman & Vigna's xoshiro256starstar.c ``next()`` (doi:10.1145/3460772).

    Written independently of ``reference.next_u64_py``: a Python list as ``uint64_t s[4]``, every C operation
    reduced modulo 2**64 where C's unsigned arithmetic wraps.

        static inline uint64_t rotl(const uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
        uint64_t next(void) {
            const uint64_t result = rotl(s[1] * 5, 7) * 9;
            const uint64_t t = s[1] << 17;
            s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
            s[2] ^= t;
            s[3] = rotl(s[3], 45);
            return result;
        }
    """

    def rotl(x, k):
        return ((x << k) & MASK64) | (x >> (64 - k))

    result = (rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
    t = (s[1] << 17) & MASK64
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = rotl(s[3], 45)
    return result


# First ten outputs of xoshiro256** from the state {1, 2, 3, 4}, as produced by the reference C implementation
# (the test vector of rand_xoshiro's Xoshiro256StarStar and of other ports).
PUBLISHED_FROM_1234 = [
    11520, 0, 1509978240, 1215971899390074240, 1216172134540287360, 607988272756665600,
    16172922978634559625, 8476171486693032832, 10595114339597558777, 2904607092377533576,
]


def test_xoshiro_matches_published_reference_output():
    c_state = [1, 2, 3, 4]
    from_c = [xoshiro256ss_c_reference(c_state) for _ in range(len(PUBLISHED_FROM_1234))]
    assert from_c == PUBLISHED_FROM_1234

    py_state = np.array([1, 2, 3, 4], dtype=np.uint64)
    from_py = [R.next_u64_py(py_state) for _ in range(len(PUBLISHED_FROM_1234))]
    assert from_py == PUBLISHED_FROM_1234
    assert [int(x) for x in py_state] == c_state

    nb_state = np.array([1, 2, 3, 4], dtype=np.uint64)
    assert [int(next_u64(nb_state)) for _ in range(len(PUBLISHED_FROM_1234))] == PUBLISHED_FROM_1234


@numba.njit(cache=True)
def _numba_draws(state, n):
    u64 = np.empty(n, dtype=np.uint64)
    dbl = np.empty(n)
    for i in range(n):
        u64[i] = next_u64(state)
        dbl[i] = next_double(state)
    return u64, dbl


@pytest.mark.parametrize("seed", [0, 20240611])
def test_python_xoshiro_is_bit_identical_to_numba(seed):
    n = 10_000
    state0 = stream_state(np.random.SeedSequence(seed))
    nb_state = state0.copy()
    u64, dbl = _numba_draws(nb_state, n)

    py_state = state0.copy()
    py_u64 = np.empty(n, dtype=np.uint64)
    py_dbl = np.empty(n)
    for i in range(n):
        py_u64[i] = R.next_u64_py(py_state)
        py_dbl[i] = R.next_double_py(py_state)

    np.testing.assert_array_equal(py_u64, u64)
    assert py_dbl.tobytes() == dbl.tobytes()  # bit for bit, not merely close
    np.testing.assert_array_equal(py_state, nb_state)
    assert py_state.dtype == np.uint64
    assert np.all((py_dbl >= 0.0) & (py_dbl < 1.0))

    # and it agrees with the C transliteration on a random state (high bits set, unlike {1, 2, 3, 4})
    c_state = [int(x) for x in state0]
    c_out = []
    for _ in range(100):  # interleaved like _numba_draws: next_u64, then next_double's draw
        c_out.append(xoshiro256ss_c_reference(c_state))
        xoshiro256ss_c_reference(c_state)
    assert c_out == [int(x) for x in u64[:100]]


@numba.njit(cache=True)
def _numba_exponentials(state, n):
    out = np.empty(n)
    for i in range(n):
        out[i] = next_exponential(state)
    return out


def test_python_ziggurat_exponential_is_bit_identical_to_numba(monkeypatch):
    """200 000 unit exponentials: same values bit for bit, same number of 64-bit draws, every branch taken."""
    n = 200_000
    state0 = stream_state(np.random.SeedSequence(77))
    nb_state = state0.copy()
    nb = _numba_exponentials(nb_state, n)

    n_draws = 0
    plain_next_u64 = R.next_u64_py

    def counting_next_u64(state):
        nonlocal n_draws
        n_draws += 1
        return plain_next_u64(state)

    monkeypatch.setattr(R, "next_u64_py", counting_next_u64)
    py_state = state0.copy()
    py = np.array([R.next_exponential_py(py_state) for _ in range(n)])
    assert py.tobytes() == nb.tobytes()
    np.testing.assert_array_equal(py_state, nb_state)

    # the rare branches were taken: the tail beyond r (layer 0; the only values >= r, two draws each) and the
    # wedge tests (one extra draw each, more on rejection)
    _, _, _, r = ziggurat_tables()
    n_tail = int(np.sum(py >= r))
    assert n_tail >= 20  # expected n * exp(-r) = 91
    assert n_draws - n - n_tail >= 100  # wedge visits; expected about 1 % of n

    # and they are unit exponentials: Kolmogorov-Smirnov at p > 1e-3 (seed fixed, deterministic)
    from scipy import stats

    assert stats.kstest(py, "expon").pvalue > 1e-3


def test_next_double_py_uses_the_top_53_bits():
    state = np.array([1, 2, 3, 4], dtype=np.uint64)
    expected = [(x >> 11) / 2.0**53 for x in PUBLISHED_FROM_1234[:4]]
    assert [R.next_double_py(state) for _ in range(4)] == expected


# -- driving both implementations ---------------------------------------------------------------------------------
def kernel_state(sim: PatchSimulation) -> dict:
    """Deep copies of every mutable array a ``PatchSimulation`` hands to the kernel."""
    return {
        "counts": sim.counts.copy(), "fstate": sim.fstate.copy(), "istate": sim.istate.copy(),
        "rng": sim.rng.copy(), "rng_agent": sim.rng_agent.copy(),
        "bmax": sim._bmax.copy(), "ratio": sim._ratio.copy(), "exit_bound": sim._exit.copy(),
        "members": sim.members.copy(),
    }


def drive(run_patch, sim, state, seg_t_end, seg_mode, seg_value, *, stop_on_spike=False, ev_cap=1 << 16,
          spk_cap=256, ev_dtypes=(np.int32, np.int16), max_calls=10_000):
    """Run ``run_patch`` over the segments as ``PatchSimulation.run_segments`` does, on the arrays in ``state``.

    One record buffer for the whole call (``rec_k0`` fixed), spike and event buffers reused and emptied after
    every kernel call, calls repeated while a buffer is full. ``ev_dtypes`` are the channel-id and state dtypes
    of the event buffers (the engine stores them narrow). Returns the statuses and the records, spikes and
    events.
    """
    L = sim.lowered
    seg_t_end = np.ascontiguousarray(seg_t_end, dtype=np.float64)
    seg_mode = np.ascontiguousarray(seg_mode, dtype=np.int64)
    seg_value = np.ascontiguousarray(seg_value, dtype=np.float64)
    istate = state["istate"]
    istate[K.I_SEG] = 0
    istate[K.I_SEG_READY] = 0
    dt = sim.record_dt_ms
    rec_k0 = int(istate[K.I_REC_NEXT])
    n_rec = max(int(math.floor(float(seg_t_end[-1]) / dt + 1e-9)) + 1 - rec_k0, 0)
    rec_V = np.zeros(n_rec)
    rec_counts = np.zeros((n_rec, L.n_states), dtype=np.int64)
    rec_I = np.zeros(n_rec)
    spk_t, spk_peak, spk_peak_t = np.zeros(spk_cap), np.zeros(spk_cap), np.zeros(spk_cap)
    n_ev_cap = ev_cap if sim.track_agents else 0
    ev_t, ev_V = np.zeros(n_ev_cap), np.zeros(n_ev_cap)
    ev_ch = np.zeros(n_ev_cap, dtype=ev_dtypes[0])
    ev_from, ev_to = np.zeros(n_ev_cap, dtype=ev_dtypes[1]), np.zeros(n_ev_cap, dtype=ev_dtypes[1])
    statuses, spk, ev = [], [], []
    for _ in range(max_calls):
        istate[K.I_N_SPK] = 0
        istate[K.I_N_EV] = 0
        status = run_patch(
            L.state_ptr, L.tr_dst, L.tr_law, L.tr_factor, L.tr_scale, L.state_g, L.state_gE, L.g_leak,
            L.gE_leak, L.C, L.law_kind, L.law_par, L.law_table, L.grid_lo, L.grid_step,
            seg_t_end, seg_mode, seg_value,
            state["counts"], state["fstate"], istate, state["rng"], state["rng_agent"], state["bmax"],
            state["ratio"], state["exit_bound"],
            sim.track_agents, state["members"],
            dt, rec_k0, rec_V, rec_counts, rec_I,
            sim.spike_level_mV, sim.rearm_mV, bool(stop_on_spike), spk_t, spk_peak, spk_peak_t,
            ev_t, ev_ch, ev_from, ev_to, ev_V,
        )
        statuses.append(int(status))
        n = int(istate[K.I_N_SPK])
        spk.append((spk_t[:n].copy(), spk_peak[:n].copy(), spk_peak_t[:n].copy()))
        n = int(istate[K.I_N_EV])
        ev.append((ev_t[:n].copy(), ev_ch[:n].copy(), ev_from[:n].copy(), ev_to[:n].copy(), ev_V[:n].copy()))
        if status not in (K.STATUS_EVENTS_FULL, K.STATUS_SPIKES_FULL):
            break
    else:
        raise AssertionError(f"no end after {max_calls} kernel calls")

    def cat(chunks, n_fields):
        return tuple(np.concatenate([c[i] for c in chunks]) for i in range(n_fields))

    n = int(istate[K.I_REC_NEXT]) - rec_k0
    spk_t, spk_peak, spk_peak_t = cat(spk, 3)
    ev_t, ev_ch, ev_from, ev_to, ev_V = cat(ev, 5)
    return {
        "status": statuses,
        "rec_k": np.arange(rec_k0, rec_k0 + n), "rec_V": rec_V[:n], "rec_counts": rec_counts[:n],
        "rec_I": rec_I[:n],
        "spk_t": spk_t, "spk_peak": spk_peak, "spk_peak_t": spk_peak_t,
        "ev_t": ev_t, "ev_ch": ev_ch, "ev_from": ev_from, "ev_to": ev_to, "ev_V": ev_V,
    }


EXACT_OUTPUTS = ("status", "rec_k", "rec_counts", "rec_I", "ev_ch", "ev_from", "ev_to")
FLOAT_OUTPUTS = ("rec_V", "spk_t", "spk_peak", "spk_peak_t", "ev_t", "ev_V")
EXACT_STATE = ("counts", "istate", "rng", "rng_agent", "members")
FLOAT_STATE = ("fstate", "bmax", "ratio", "exit_bound")


def assert_same_run(out_k, st_k, out_r, st_r):
    for key in EXACT_OUTPUTS:
        np.testing.assert_array_equal(out_r[key], out_k[key], err_msg=f"output {key}")
    for key in FLOAT_OUTPUTS:
        assert out_r[key].shape == out_k[key].shape, f"output {key}: {out_r[key].shape} vs {out_k[key].shape}"
        np.testing.assert_allclose(out_r[key], out_k[key], rtol=RTOL, atol=0.0, err_msg=f"output {key}")
    for key in EXACT_STATE:
        assert st_r[key].dtype == st_k[key].dtype, key
        np.testing.assert_array_equal(st_r[key], st_k[key], err_msg=f"state {key}")
    for key in FLOAT_STATE:
        np.testing.assert_allclose(st_r[key], st_k[key], rtol=RTOL, atol=1e-12, err_msg=f"state {key}")


def run_both(sim, segments, **kw):
    st_k, st_r = kernel_state(sim), kernel_state(sim)
    out_k = drive(K.run_patch, sim, st_k, *segments, **kw)
    out_r = drive(R.run_patch, sim, st_r, *segments, **kw)
    assert_same_run(out_k, st_k, out_r, st_r)
    return out_k, st_k, out_r, st_r


def assert_agents_consistent(sim, st):
    """Agent bookkeeping: the state lists partition the channels (each exactly once) and match the counts."""
    counts, members = st["counts"], st["members"]
    ids = np.concatenate([members[s, : counts[s]] for s in range(counts.size)])
    np.testing.assert_array_equal(np.sort(ids), np.arange(ids.size))


def protocol(area_um2):
    """Current clamp near and above threshold, a rest, a voltage-clamp step and current clamp again (ms, pA/mV)."""
    pA = lambda uA_cm2: uA_per_cm2_to_pA(uA_cm2, area_um2)  # noqa: E731
    t_end = [15.0, 25.0, 32.0, 38.0, 45.0]
    mode = [K.MODE_CURRENT, K.MODE_CURRENT, K.MODE_VOLTAGE, K.MODE_VOLTAGE, K.MODE_CURRENT]
    value = [pA(10.0), pA(-2.0), -30.0, -70.0, pA(20.0)]
    return t_end, mode, value


# -- HH patches -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "area_um2, leak, seed",
    [(2.0, "constant", 11), (5.0, "agents", 12)],
    ids=["hh2_constant_leak", "hh5_agent_leak"],
)
def test_kernel_and_reference_agree_on_hh_patch(area_um2, leak, seed):
    sim = PatchSimulation(hh_patch(area_um2, leak=leak), seed=seed, track_agents=True)
    out_k, st_k, out_r, st_r = run_both(sim, protocol(area_um2))

    # the run exercised what it is meant to: events beyond a totals refresh, rejected candidates, cell
    # changes, spikes, both clamp modes, every segment to its end
    ist = st_k["istate"]
    assert out_k["status"] == [K.STATUS_DONE]
    assert ist[K.I_SEG] == 5 and st_k["fstate"][K.F_T] == 45.0
    assert ist[K.I_EVENTS] > 2 * K._REFRESH_EVERY
    assert ist[K.I_CANDIDATES] > ist[K.I_EVENTS]
    assert ist[K.I_CELL_CHANGES] > 100
    assert out_k["spk_t"].size >= 1
    assert out_k["ev_t"].size == ist[K.I_EVENTS]
    assert np.all(np.diff(out_k["ev_t"]) >= 0.0)
    assert out_k["rec_k"].size == int(round(45.0 / sim.record_dt_ms)) + 1
    assert_agents_consistent(sim, st_r)
    # the last record is at t = 45 ms and carries the final counts
    np.testing.assert_array_equal(out_r["rec_counts"][-1], st_r["counts"])


def test_reference_reproduces_the_engine():
    """The reference, driven as above, ends where ``PatchSimulation.run_segments`` itself ends."""
    area = 2.0
    segments = protocol(area)
    engine_sim = PatchSimulation(hh_patch(area), seed=17, track_agents=True)
    st_r = kernel_state(engine_sim)
    engine_sim.run_segments(*segments)
    drive(R.run_patch, engine_sim, st_r, *segments)
    np.testing.assert_array_equal(st_r["counts"], engine_sim.counts)
    np.testing.assert_array_equal(st_r["rng"], engine_sim.rng)
    np.testing.assert_array_equal(st_r["rng_agent"], engine_sim.rng_agent)
    np.testing.assert_array_equal(st_r["members"], engine_sim.members)
    np.testing.assert_array_equal(st_r["istate"][[K.I_EVENTS, K.I_CANDIDATES, K.I_CELL_CHANGES, K.I_REC_NEXT]],
                                  engine_sim.istate[[K.I_EVENTS, K.I_CANDIDATES, K.I_CELL_CHANGES, K.I_REC_NEXT]])
    np.testing.assert_allclose(st_r["fstate"], engine_sim.fstate, rtol=RTOL, atol=1e-12)


def test_kernel_and_reference_agree_when_buffers_fill():
    """Tiny event and spike buffers: both stop with the same status at the same point and resume alike."""
    area = 2.0
    sim = PatchSimulation(hh_patch(area), seed=5, track_agents=True)
    out_k, st_k, out_r, st_r = run_both(sim, protocol(area), ev_cap=997, spk_cap=1)
    assert K.STATUS_EVENTS_FULL in out_k["status"]
    assert K.STATUS_SPIKES_FULL in out_k["status"]
    assert out_k["status"][-1] == K.STATUS_DONE
    assert_agents_consistent(sim, st_r)


def test_kernel_and_reference_agree_stopping_on_spikes():
    area = 2.0
    sim = PatchSimulation(hh_patch(area), seed=8, track_agents=True)
    segments = ([30.0], [K.MODE_CURRENT], [uA_per_cm2_to_pA(15.0, area)])
    st_k, st_r = kernel_state(sim), kernel_state(sim)
    n_stops = 0
    while True:
        out_k = drive(K.run_patch, sim, st_k, *segments, stop_on_spike=True)
        out_r = drive(R.run_patch, sim, st_r, *segments, stop_on_spike=True)
        assert_same_run(out_k, st_k, out_r, st_r)
        if out_k["status"][-1] != K.STATUS_SPIKE:
            break
        n_stops += 1
        assert st_k["fstate"][K.F_V] == sim.spike_level_mV  # stopped exactly on the crossing
        assert st_k["fstate"][K.F_SPK_T] == st_k["fstate"][K.F_T]
    assert n_stops >= 2
    assert st_k["fstate"][K.F_T] == 30.0


def test_kernel_and_reference_agree_where_record_times_round_past_segment_ends():
    """With dt = 0.1 ms, 12 * dt and 23 * dt round just above 1.2 and 2.3 ms: the samples are still taken."""
    assert 12 * 0.1 > 1.2 and 23 * 0.1 > 2.3
    area = 2.0
    sim = PatchSimulation(hh_patch(area), seed=4, track_agents=True, record_dt_ms=0.1)
    out_k, _, _, _ = run_both(sim, ([1.2, 2.3], [K.MODE_CURRENT, K.MODE_VOLTAGE], [0.5, -20.0]))
    np.testing.assert_array_equal(out_k["rec_k"], np.arange(24))
    np.testing.assert_array_equal(out_k["rec_I"][12:], -20.0)  # the boundary sample shows the new segment
    np.testing.assert_array_equal(out_k["rec_V"][12:], -20.0)


def test_kernel_and_reference_agree_without_agents():
    """Without agent tracking the channel stream alone drives the run; the twins still agree."""
    area = 2.0
    sim = PatchSimulation(hh_patch(area), seed=21, track_agents=False)
    out_k, _, _, _ = run_both(sim, protocol(area))
    assert out_k["ev_t"].size == 0


def test_kernel_and_reference_agree_when_the_voltage_runs_away():
    area = 1.0
    sim = PatchSimulation(hh_patch(area), seed=3, track_agents=True)
    out_k, st_k, _, _ = run_both(sim, ([5.0], [K.MODE_CURRENT], [500.0]))
    assert out_k["status"] == [K.STATUS_V_OUT_OF_RANGE]
    assert st_k["fstate"][K.F_T] < 5.0


# -- rate laws beyond the HH families -------------------------------------------------------------------------------
def bell_rate(V_mV):
    """Bell-shaped (non-monotone) opening rate, 1/ms, peaking at -40 mV."""
    V = np.asarray(V_mV, dtype=float)
    return 0.02 + 1.5 * np.exp(-(((V + 40.0) / 20.0) ** 2))


def bell_channel_patch(area_um2=3.0):
    """HH Na+ and K+ plus a bell-gated channel closed <-> open -> inactivated -> closed."""
    bell = TabulatedRate(bell_rate, label="0.02 + 1.5 exp(-((V+40)/20)^2)")
    assert not bell.monotone
    scheme = MarkovScheme(
        name="bell",
        states=("C", "O", "I"),
        open_states=("O",),
        transitions=(
            Transition("C", "O", bell),
            Transition("O", "C", Exponential(0.3, -60.0, -30.0)),
            Transition("O", "I", Constant(0.2)),
            Transition("I", "C", Sigmoid(0.1, -70.0, -8.0)),
        ),
        g_unit_pS=10.0,
        reversal_mV=-80.0,
        q10=1.0,
    )
    return Patch(
        area_um2=area_um2,
        channels=(
            ChannelPopulation(hh_sodium(), density_per_um2=60.0),
            ChannelPopulation(hh_potassium(), density_per_um2=18.0),
            ChannelPopulation(scheme, density_per_um2=10.0),
        ),
        g_leak_mS_per_cm2=0.3,
    )


def test_kernel_and_reference_agree_with_a_tabulated_bell_shaped_rate():
    area = 3.0
    patch = bell_channel_patch(area)
    sim = PatchSimulation(patch, seed=31, track_agents=True)
    out_k, st_k, _, st_r = run_both(sim, protocol(area))
    assert out_k["status"] == [K.STATUS_DONE]
    # the bell channel actually moved, in both directions through its tabulated transition
    bell = sim.lowered.type_names.index("bell")
    sl = sim.lowered.type_slice(bell)
    c_state, o_state = sl.start, sl.start + 1
    moved = (out_k["ev_from"] == c_state) & (out_k["ev_to"] == o_state)
    assert moved.sum() > 20
    assert np.unique(np.round(out_k["ev_V"][moved])).size > 5  # opened at many different voltages
    assert_agents_consistent(sim, st_r)


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="with NUMBA_DISABLE_JIT=1 the kernel itself calls Python's "
                    "math.exp, which raises OverflowError where the compiled libm call returns inf")
def test_kernel_and_reference_agree_where_a_steep_rate_law_overflows():
    """A steep sigmoid far below its midpoint: exp overflows to inf in libm and the rate is a / (1 + inf) = 0.

    Python's ``math.exp`` raises OverflowError there; the reference must return what the compiled kernel gets.
    """
    with np.errstate(over="ignore"):  # numpy warns where it evaluates the same overflow (validation, tables)
        steep = MarkovScheme(
            name="steep",
            states=("C", "O"),
            open_states=("O",),
            transitions=(Transition("C", "O", Sigmoid(2.0, -40.0, 0.1)), Transition("O", "C", Constant(1.0))),
            g_unit_pS=5.0,
            reversal_mV=-80.0,
            q10=1.0,
        )
        patch = Patch(area_um2=2.0, channels=(ChannelPopulation(steep, count=20),), g_leak_mS_per_cm2=0.3)
        sim = PatchSimulation(patch, seed=2, V0_mV=-60.0, initial_states={"steep": {"C": 10, "O": 10}},
                              track_agents=True)
    segments = ([5.0, 10.0, 20.0], [K.MODE_VOLTAGE, K.MODE_VOLTAGE, K.MODE_CURRENT], [-130.0, -30.0, 0.0])
    out_k, st_k, _, _ = run_both(sim, segments)
    assert out_k["status"] == [K.STATUS_DONE]
    at_minus_130 = out_k["ev_t"] < 5.0
    assert np.all(out_k["ev_to"][at_minus_130] == 0)  # only closings: the opening rate is exactly 0 there
    assert np.any(out_k["ev_to"][~at_minus_130] == 1)


def test_rate_at_py_matches_the_compiled_rate_laws():
    """The reference's rate laws against the compiled ``rate_at`` at many voltages, every kind."""
    bell = TabulatedRate(bell_rate)
    laws = [Constant(0.7), Exponential(4.0, -65.0, -18.0), Sigmoid(1.0, -35.0, 10.0), Linoid(1.0, -40.0, 10.0),
            Linoid(0.1, -55.0, 10.0), bell]
    grid = voltage_grid_mV()
    rng = np.random.default_rng(0)
    V = np.concatenate([rng.uniform(grid[0], grid[-1], 500), grid[::37], [-40.0, -40.0 + 1e-6, -55.0, 100.0]])
    for law in laws:
        table = np.ascontiguousarray(np.asarray(law.evaluate(grid), dtype=float))
        a, vh, k = law.params
        for v in V:
            got = R.rate_at_py(law.kind, a, vh, k, table, float(v), float(grid[0]), float(grid[1] - grid[0]))
            want = rate_at(law.kind, a, vh, k, table, float(v), float(grid[0]), float(grid[1] - grid[0]))
            assert got == want, (law, v, got, want)
