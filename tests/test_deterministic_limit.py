"""The exact engine converges to the deterministic Hodgkin–Huxley equations as channels become many."""

import numpy as np
import pytest

import stochion as si


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_million_channels_reproduce_the_deterministic_spike(seed):
    """≥ 10⁶ channels under a 10 µA/cm² step: first spike time within 0.2 ms and peak within 2 mV of the HH
    equations (the issue's criterion). The stochastic spread at this size is ~0.02 ms and ~0.1 mV, so the
    bound is ten times the noise and still catches a systematic error of the engine (a wrong rate, Q10,
    conductance or voltage update each move the spike by more)."""
    patch = si.hh_patch(13000.0)  # 780 000 Na + 234 000 K
    assert sum(patch.channel_counts.values()) >= 1_000_000
    step = si.CurrentStep(amplitude_uA_cm2=10.0)
    exact = si.simulate(patch, step, t_stop_ms=12.0, seed=seed, record_dt_ms=0.05)
    det = si.simulate(patch, step, t_stop_ms=12.0, method="deterministic", record_dt_ms=0.05)
    assert len(exact.spikes) == len(det.spikes) == 1
    dt = exact.spikes["t_ms"].iloc[0] - det.spikes["t_ms"].iloc[0]
    dpeak = exact.spikes["peak_mV"].iloc[0] - det.spikes["peak_mV"].iloc[0]
    assert abs(dt) < 0.2 and abs(dpeak) < 2.0, (dt, dpeak)
    # the whole voltage trace follows too (2 mV outside the steep upstroke)
    V_e, V_d = exact.trace["V_mV"].to_numpy(), det.trace["V_mV"].to_numpy()
    slope = np.abs(np.gradient(V_d, 0.05))
    assert np.max(np.abs(V_e - V_d)[slope < 20]) < 2.0
    # open fractions follow the deterministic occupancies
    for name, n in patch.channel_counts.items():
        diff = (exact.trace[f"n_open_{name}"] - det.trace[f"n_open_{name}"]).abs().to_numpy() / n
        assert np.max(diff[slope < 20]) < 0.01


def test_deterministic_method_is_hodgkin_huxley_rest_and_rheobase():
    patch = si.hh_patch(100.0)
    quiet = si.simulate(patch, si.CurrentStep(amplitude_uA_cm2=2.0), t_stop_ms=50.0, method="deterministic")
    fires = si.simulate(patch, si.CurrentStep(amplitude_uA_cm2=2.5), t_stop_ms=50.0, method="deterministic")
    assert len(quiet.spikes) == 0 and len(fires.spikes) == 1
    rest = si.simulate(patch, None, t_stop_ms=5.0, method="deterministic")
    np.testing.assert_allclose(rest.trace["V_mV"], -65.0, atol=0.01)
