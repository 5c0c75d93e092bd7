"""Tests for stochion.deterministic: the mean-field (infinite-channel) limit of a patch.

Known answers come from outside the module under test: the Hodgkin–Huxley (1952) equations typed in here and
integrated by scipy at tight tolerance, the closed-form gate solutions under voltage clamp, the matrix
exponential of a scheme's own generator, the kernel's rate function, and published facts of the HH model
(rest at -65 mV, tonic firing at 10 µA/cm², no firing at 2 µA/cm² for a long step). All tests are
deterministic (no random numbers).

Hodgkin AL, Huxley AF (1952) J Physiol 117:500-544. doi:10.1113/jphysiol.1952.sp004764
"""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm
from scipy.optimize import brentq

from stochion._kernels.patch_ssa import MODE_CURRENT, MODE_VOLTAGE
from stochion.channels import MarkovScheme, Transition
from stochion.deterministic import DeterministicSimulation, law_rates_per_ms
from stochion.engine import VoltageRunawayError, lower_patch
from stochion.membrane import ChannelPopulation, Patch, hh_patch
from stochion.rates import Constant, Exponential, Linoid, Sigmoid, TabulatedRate, rate_at

# 60 Na and 18 K channels per µm² times 37 µm² are whole numbers (2220, 666): the patch is exactly HH.
AREA_UM2 = 37.0


def uA_cm2_to_pA(j_uA_cm2, area_um2=AREA_UM2):
    # 1 µA/cm² = 1e-6 A / 1e8 µm² = 1e-2 pA/µm²
    return j_uA_cm2 * area_um2 * 1e-2


# --------------------------------------------------------------------------
# Hodgkin–Huxley (1952), modern convention, typed independently of stochion
# --------------------------------------------------------------------------
G_NA, G_K, G_L = 120.0, 36.0, 0.3  # mS/cm²
E_NA, E_K, E_L = 50.0, -77.0, -54.387  # mV
C_M = 1.0  # µF/cm²


def _x_over_1_minus_exp(num, den):
    # num / (1 - exp(-num/den)), with its limit den at num = 0
    x = num / den
    if abs(x) < 1e-8:
        return den * (1.0 + x / 2.0)
    return num / (1.0 - math.exp(-x))


def hh_rates(V, phi=1.0):
    alpha_m = 0.1 * _x_over_1_minus_exp(V + 40.0, 10.0)
    beta_m = 4.0 * math.exp(-(V + 65.0) / 18.0)
    alpha_h = 0.07 * math.exp(-(V + 65.0) / 20.0)
    beta_h = 1.0 / (1.0 + math.exp(-(V + 35.0) / 10.0))
    alpha_n = 0.01 * _x_over_1_minus_exp(V + 55.0, 10.0)
    beta_n = 0.125 * math.exp(-(V + 65.0) / 80.0)
    return tuple(phi * r for r in (alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n))


def hh_steady_gates(V):
    am, bm, ah, bh, an, bn = hh_rates(V)
    return am / (am + bm), ah / (ah + bh), an / (an + bn)


def hh_steady_current(V):
    m, h, n = hh_steady_gates(V)
    return G_NA * m**3 * h * (V - E_NA) + G_K * n**4 * (V - E_K) + G_L * (V - E_L)


HH_REST_MV = brentq(hh_steady_current, -70.0, -60.0, xtol=1e-13)


def hh_rhs(t, y, I_uA_cm2):
    V, m, h, n = y
    am, bm, ah, bh, an, bn = hh_rates(V)
    I_ion = G_NA * m**3 * h * (V - E_NA) + G_K * n**4 * (V - E_K) + G_L * (V - E_L)
    return [(I_uA_cm2 - I_ion) / C_M, am * (1 - m) - bm * m, ah * (1 - h) - bh * h, an * (1 - n) - bn * n]


def hh_reference(I_uA_cm2, t_end_ms):
    def crossing(t, y, I):
        return y[0]

    crossing.direction = 1
    return solve_ivp(hh_rhs, (0.0, t_end_ms), [HH_REST_MV, *hh_steady_gates(HH_REST_MV)], args=(I_uA_cm2,),
                     method="DOP853", rtol=1e-11, atol=1e-12, dense_output=True, events=crossing)


def records(sim):
    """Concatenated records: t, V, expected counts, value, mode."""
    return tuple(np.concatenate(parts) for parts in zip(*sim._rec_chunks))


def spike_table(sim):
    if not sim._spk_chunks:
        return np.zeros((0, 3))
    return np.column_stack([np.concatenate(parts) for parts in zip(*sim._spk_chunks)])


def state_fraction(sim, counts, type_name, state):
    L = sim.lowered
    k = L.type_names.index(type_name)
    return counts[:, L.state_labels.index((type_name, state))] / L.n_channels[k]


# --------------------------------------------------------------------------
# 1. The master equation is the HH model
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hh_step_run():
    sim = DeterministicSimulation(hh_patch(AREA_UM2))
    sim.advance_to(20.0, current_pA=uA_cm2_to_pA(10.0))
    return sim, hh_reference(10.0, 20.0)


def test_matches_hand_written_hodgkin_huxley(hh_step_run):
    sim, ref = hh_step_run
    t, V, counts, value, mode = records(sim)
    np.testing.assert_array_equal(t, np.arange(801) * 0.025)
    V_ref, m, h, n = ref.sol(t)
    assert np.max(np.abs(V - V_ref)) < 0.05
    # binomial occupancies are preserved: every one of the 8 + 5 states, not just the open ones
    for i in range(4):
        for j in range(2):
            expected = math.comb(3, i) * m**i * (1 - m) ** (3 - i) * h**j * (1 - h) ** (1 - j)
            np.testing.assert_allclose(state_fraction(sim, counts, "Na", f"m{i}h{j}"), expected, atol=1e-6)
    for i in range(5):
        expected = math.comb(4, i) * n**i * (1 - n) ** (4 - i)
        np.testing.assert_allclose(state_fraction(sim, counts, "K", f"n{i}"), expected, atol=1e-6)
    spikes = spike_table(sim)
    assert spikes.shape[0] == 2 == ref.t_events[0].size
    assert abs(spikes[0, 0] - ref.t_events[0][0]) < 0.01
    np.testing.assert_allclose(spikes[:, 0], ref.t_events[0], atol=1e-6)
    np.testing.assert_array_equal(value, uA_cm2_to_pA(10.0))
    np.testing.assert_array_equal(mode, MODE_CURRENT)


def test_spike_peak_is_the_maximum_of_V(hh_step_run):
    sim, ref = hh_step_run

    def dV(t, y, I):
        return hh_rhs(t, y, I)[0]

    dV.direction = -1
    fine = solve_ivp(hh_rhs, (0.0, 8.0), ref.sol(0.0), args=(10.0,), method="DOP853", rtol=1e-11, atol=1e-12,
                     events=dV)
    peak_t, peak_V = fine.t_events[0][0], fine.y_events[0][0][0]
    first = spike_table(sim)[0]
    assert first[1] == pytest.approx(peak_V, abs=1e-4)
    assert first[2] == pytest.approx(peak_t, abs=1e-4)
    assert peak_V > 40.0


def test_expected_counts_conserve_channels(hh_step_run):
    sim, _ = hh_step_run
    _, _, counts, _, _ = records(sim)
    L = sim.lowered
    for k in range(len(L.type_names)):
        np.testing.assert_allclose(counts[:, L.type_slice(k)].sum(axis=1), L.n_channels[k], rtol=1e-9)
        assert counts[:, L.type_slice(k)].min() > -1e-6


# --------------------------------------------------------------------------
# 2. Published facts of the HH model at 6.3 °C
# --------------------------------------------------------------------------
def test_resting_potential_is_minus_65_mV():
    # released from -60 mV with its gates stationary there, the membrane settles back without firing
    sim = DeterministicSimulation(hh_patch(AREA_UM2), V0_mV=-60.0)
    sim.advance_to(100.0)
    assert sim.V_mV == pytest.approx(-65.0, abs=0.05)
    assert spike_table(sim).shape[0] == 0 and sim.open_spike() is None
    # and rest is a fixed point of the mean-field equations
    rest = DeterministicSimulation(hh_patch(AREA_UM2))
    rest.advance_to(20.0)
    _, V, _, _, _ = records(rest)
    assert np.all(np.abs(V - (-65.0)) < 0.05)
    assert np.max(np.abs(V - HH_REST_MV)) < 1e-6


def test_ten_uA_fires_repetitively():
    sim = DeterministicSimulation(hh_patch(AREA_UM2))
    sim.advance_to(65.0, current_pA=uA_cm2_to_pA(10.0))
    spikes = spike_table(sim)
    assert spikes.shape[0] >= 4
    isi = np.diff(spikes[:, 0])
    # tonic firing near 68 Hz: the intervals settle to one period
    assert np.all((isi > 14.0) & (isi < 15.5))
    assert abs(isi[-1] - isi[-2]) < 0.01 * isi[-1]
    assert np.all(spikes[:, 1] > 25.0)


@pytest.mark.parametrize("I_uA_cm2, fires", [(2.0, False), (2.5, True)])
def test_rheobase_of_a_long_step(I_uA_cm2, fires):
    # the rheobase of a long step is about 2.24 µA/cm²
    sim = DeterministicSimulation(hh_patch(AREA_UM2))
    sim.advance_to(50.0, current_pA=uA_cm2_to_pA(I_uA_cm2))
    n = spike_table(sim).shape[0] + (sim.open_spike() is not None)
    assert (n > 0) == fires
    if not fires:
        assert records(sim)[1].max() < -40.0


# --------------------------------------------------------------------------
# 3 and 4. Voltage clamp: closed-form gates, temperature
# --------------------------------------------------------------------------
def gate_solution(t, x0, alpha, beta):
    tau = 1.0 / (alpha + beta)
    x_inf = alpha * tau
    return x_inf + (x0 - x_inf) * np.exp(-t / tau)


def clamp_run(temperature_celsius, record_dt_ms=0.025, t_end_ms=10.0):
    sim = DeterministicSimulation(hh_patch(AREA_UM2, temperature_celsius=temperature_celsius), V0_mV=-65.0,
                                  record_dt_ms=record_dt_ms)
    sim.advance_to(t_end_ms, clamp_mV=0.0)
    t, V, counts, value, mode = records(sim)
    return sim, t, V, counts, value, mode


@pytest.mark.parametrize("temperature_celsius, phi", [(6.3, 1.0), (18.5, 3.0**1.22)])
def test_voltage_clamp_open_fractions_are_closed_form(temperature_celsius, phi):
    sim, t, V, counts, value, mode = clamp_run(temperature_celsius)
    m0, h0, n0 = hh_steady_gates(-65.0)
    am, bm, ah, bh, an, bn = hh_rates(0.0, phi)
    m = gate_solution(t, m0, am, bm)
    h = gate_solution(t, h0, ah, bh)
    n = gate_solution(t, n0, an, bn)
    np.testing.assert_allclose(state_fraction(sim, counts, "Na", "m3h1"), m**3 * h, rtol=0, atol=1e-8)
    np.testing.assert_allclose(state_fraction(sim, counts, "K", "n4"), n**4, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(V, 0.0)
    np.testing.assert_array_equal(value, 0.0)
    np.testing.assert_array_equal(mode, MODE_VOLTAGE)
    assert sim.V_mV == 0.0 and sim.t_ms == 10.0


def test_temperature_compresses_time_by_q10_factor():
    phi = 3.0**1.22  # Q10 = 3 from 6.3 to 18.5 °C
    warm, _, _, c_warm, _, _ = clamp_run(18.5, record_dt_ms=0.025, t_end_ms=5.0)
    cold, t_cold, _, c_cold, _, _ = clamp_run(6.3, record_dt_ms=0.025 * phi, t_end_ms=5.0 * phi)
    n = min(c_warm.shape[0], c_cold.shape[0])
    assert n == 201
    np.testing.assert_allclose(c_warm[:n], c_cold[:n], rtol=0, atol=1e-8 * 2220)
    # and the time course really is different: peak Na opening comes phi times earlier
    na_w = state_fraction(warm, c_warm, "Na", "m3h1")
    na_c = state_fraction(cold, c_cold, "Na", "m3h1")
    assert np.argmax(na_w) == np.argmax(na_c) and 0 < np.argmax(na_w) < n - 1


def test_clamp_of_a_general_scheme_is_the_matrix_exponential_of_its_generator():
    scheme = MarkovScheme(
        name="X",
        states=("C1", "C2", "O", "I"),
        open_states=("O",),
        transitions=(
            Transition("C1", "C2", Exponential(0.8, -30.0, 15.0), 2.0),
            Transition("C2", "C1", Exponential(0.5, -30.0, -20.0)),
            Transition("C2", "O", Sigmoid(3.0, -20.0, 8.0)),
            Transition("O", "C2", Constant(0.4)),
            Transition("O", "I", Linoid(0.2, -10.0, 12.0)),
            Transition("I", "C1", Constant(0.05)),
        ),
        g_unit_pS=10.0,
        reversal_mV=0.0,
        q10=2.5,
        reference_celsius=20.0,
    )
    patch = Patch(area_um2=10.0, channels=(ChannelPopulation(scheme, count=500),), g_leak_mS_per_cm2=0.3,
                  temperature_celsius=30.0)
    p0 = np.array([0.4, 0.3, 0.2, 0.1])
    sim = DeterministicSimulation(patch, V0_mV=-50.0, initial_occupancy={"X": dict(zip(scheme.states, p0))},
                                  record_dt_ms=0.1)
    sim.advance_to(3.0, clamp_mV=-5.0)
    t, _, counts, _, _ = records(sim)
    Q = scheme.generator(-5.0, 30.0)
    expected = np.array([p0 @ expm(Q * tk) for tk in t])
    np.testing.assert_allclose(counts / 500.0, expected, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------
# Rate laws, recording and interface
# --------------------------------------------------------------------------
def test_law_rates_mirror_the_kernel_rate_function():
    bell = TabulatedRate(lambda V: 0.5 * np.exp(-(((V + 40.0) / 30.0) ** 2)), label="bell")
    scheme = MarkovScheme(
        name="Y", states=("A", "B", "C"), open_states=("C",),
        transitions=(
            Transition("A", "B", Linoid(1.0, -40.0, 10.0), 3.0),
            Transition("B", "A", Exponential(4.0, -65.0, -18.0)),
            Transition("B", "C", Sigmoid(1.0, -35.0, 10.0)),
            Transition("C", "B", bell),
            Transition("C", "A", Constant(0.3)),
        ),
        g_unit_pS=10.0, reversal_mV=0.0,
    )
    patch = Patch(area_um2=10.0, channels=(ChannelPopulation(scheme, count=10),), g_leak_mS_per_cm2=0.3)
    L = lower_patch(patch)
    # -40 puts the linoid on its removable singularity; the others straddle it and the grid ends
    V = np.concatenate([np.linspace(-150.0, 100.0, 1001), [-40.0, -40.0 + 3e-4, -40.0 - 2e-4, -149.99]])
    got = law_rates_per_ms(L, V)
    expected = np.array([[rate_at(L.law_kind[j], *L.law_par[j], L.law_table[j], v, L.grid_lo, L.grid_step)
                          for j in range(L.law_kind.size)] for v in V])
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-300)
    assert sorted(set(L.law_kind.tolist())) == [0, 1, 2, 3, 4]
    # the scalar path used inside the ODE agrees with the vectorised one
    scalar = np.array([law_rates_per_ms(L, float(v)) for v in V])
    np.testing.assert_allclose(scalar, expected, rtol=1e-13, atol=1e-300)


def test_records_on_grid_inclusive_of_segment_ends_never_twice():
    sim = DeterministicSimulation(hh_patch(AREA_UM2), record_dt_ms=0.1)
    sim.advance_to(0.3)  # 3 * 0.1 rounds to 0.30000000000000004 > 0.3; it still belongs here
    sim.advance_to(0.3)
    sim.advance_to(0.7, clamp_mV=-30.0)
    sim.run_segments([1.05, 1.05, 2.0], [MODE_CURRENT, MODE_VOLTAGE, MODE_CURRENT], [5.0, -40.0, 1.0])
    t, V, _, value, mode = records(sim)
    k = np.arange(21)
    np.testing.assert_array_equal(t, k * 0.1)
    np.testing.assert_array_equal(mode[:4], MODE_CURRENT)
    np.testing.assert_array_equal(value[:4], 0.0)
    np.testing.assert_array_equal(value[4:8], -30.0)
    np.testing.assert_array_equal(V[4:8], -30.0)
    np.testing.assert_array_equal(value[8:11], 5.0)
    np.testing.assert_array_equal(value[11:], 1.0)
    assert sim.t_ms == 2.0
    # as in the engine, a zero-length segment is listed (and a zero-length clamp still sets V)
    assert sim._segments == [(0.0, 0.3, MODE_CURRENT, 0.0), (0.3, 0.7, MODE_VOLTAGE, -30.0),
                             (0.7, 1.05, MODE_CURRENT, 5.0), (1.05, 1.05, MODE_VOLTAGE, -40.0),
                             (1.05, 2.0, MODE_CURRENT, 1.0)]
    assert sim._ev_chunks == [] and sim.n_events == 0 and sim.n_candidates == 0


def test_splitting_a_run_changes_nothing(hh_step_run):
    whole, _ = hh_step_run
    parts = DeterministicSimulation(hh_patch(AREA_UM2))
    for t_end in (0.013, 1.9, 2.5, 7.77, 7.77, 12.0, 20.0):
        parts.advance_to(t_end, current_pA=uA_cm2_to_pA(10.0))
    t1, V1, c1, _, _ = records(whole)
    t2, V2, c2, _, _ = records(parts)
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_allclose(V2, V1, rtol=0, atol=1e-4)
    np.testing.assert_allclose(spike_table(parts), spike_table(whole), rtol=0, atol=1e-6)


def test_stop_on_spike_stops_at_the_crossing(hh_step_run):
    whole, ref = hh_step_run
    sim = DeterministicSimulation(hh_patch(AREA_UM2))
    assert sim.advance_to(20.0, current_pA=uA_cm2_to_pA(10.0), stop_on_spike=True) is True
    t_cross = ref.t_events[0][0]
    assert sim.t_ms == pytest.approx(t_cross, abs=1e-6)
    assert sim.V_mV == pytest.approx(0.0, abs=1e-6)
    spk = sim.open_spike()
    assert spk[0] == sim.t_ms and spk[2] == sim.t_ms
    assert sim._segments == [(0.0, sim.t_ms, MODE_CURRENT, uA_cm2_to_pA(10.0))]
    t, _, _, _, _ = records(sim)
    assert t[-1] < t_cross and t[-1] + 0.025 >= t_cross
    # resuming gives the uninterrupted run
    assert sim.advance_to(20.0, current_pA=uA_cm2_to_pA(10.0)) is False
    np.testing.assert_allclose(spike_table(sim), spike_table(whole), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(records(sim)[0], records(whole)[0])


def test_flickering_leak_agents_have_the_constant_leak_as_their_mean(hh_step_run):
    whole, _ = hh_step_run
    sim = DeterministicSimulation(hh_patch(AREA_UM2, leak="agents"))
    assert "leak" in sim.lowered.type_names
    sim.advance_to(20.0, current_pA=uA_cm2_to_pA(10.0))
    np.testing.assert_allclose(records(sim)[1], records(whole)[1], rtol=0, atol=1e-4)


def test_runaway_voltage_raises():
    sim = DeterministicSimulation(hh_patch(AREA_UM2))
    with pytest.raises(VoltageRunawayError, match="ran away"):
        sim.advance_to(5.0, current_pA=1e5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rearm_mV=10.0), "rearm_mV"),
        (dict(record_dt_ms=0.0), "record_dt_ms"),
        (dict(method="Euler"), "method"),
        (dict(initial_occupancy={"Na": {"m0h0": 1.0}}), "no entry for channel type 'K'"),
        (dict(initial_occupancy={"Na": {"m0h0": 1.0}, "K": {"n0": 0.5}, "Ca": {}}), "unknown channel types"),
        (dict(initial_occupancy={"Na": {"m0h0": 1.0}, "K": {"n0": 0.5}}), "sums to 0.5"),
        (dict(initial_occupancy=np.ones(3)), "array of 13 probabilities"),
    ],
)
def test_invalid_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeterministicSimulation(hh_patch(AREA_UM2), **kwargs)


def test_invalid_runs_are_named():
    sim = DeterministicSimulation(hh_patch(AREA_UM2))
    sim.advance_to(1.0)
    with pytest.raises(ValueError, match="before the present time"):
        sim.advance_to(0.5)
    with pytest.raises(ValueError, match="seg_mode"):
        sim.run_segments([2.0], [7], [0.0])
    with pytest.raises(ValueError, match="non-decreasing"):
        sim.run_segments([3.0, 2.0], [0, 0], [0.0, 0.0])
    with pytest.raises(ValueError, match="clamp"):
        sim.advance_to(2.0, clamp_mV=500.0)
