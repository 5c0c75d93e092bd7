import math

import numpy as np
import pytest

import stochion as si
from stochion.channels import hh_potassium, hh_sodium, leak_channel
from stochion.rates import Constant, Exponential


def _gates(V):
    am = 0.1 * (V + 40) / (1 - math.exp(-(V + 40) / 10))
    bm = 4 * math.exp(-(V + 65) / 18)
    ah = 0.07 * math.exp(-(V + 65) / 20)
    bh = 1 / (1 + math.exp(-(V + 35) / 10))
    an = 0.01 * (V + 55) / (1 - math.exp(-(V + 55) / 10))
    bn = 0.125 * math.exp(-(V + 65) / 80)
    return am / (am + bm), ah / (ah + bh), an / (an + bn)


def test_hh_schemes_structure():
    na, k = hh_sodium(), hh_potassium()
    assert na.states == ("m0h0", "m0h1", "m1h0", "m1h1", "m2h0", "m2h1", "m3h0", "m3h1")
    assert na.open_states == ("m3h1",) and len(na.transitions) == 20
    assert k.states == ("n0", "n1", "n2", "n3", "n4") and k.open_states == ("n4",) and len(k.transitions) == 8
    assert na.g_unit_pS == 20.0 and na.reversal_mV == 50.0 and k.reversal_mV == -77.0


@pytest.mark.parametrize("V", [-90.0, -65.0, -40.5, 0.0, 40.0])
def test_stationary_distribution_is_binomial(V):
    m, h, n = _gates(V)
    p = hh_sodium().stationary(V)
    for i, s in enumerate(hh_sodium().states):
        j, g = int(s[1]), int(s[3])
        expected = math.comb(3, j) * m**j * (1 - m) ** (3 - j) * (h if g else 1 - h)
        assert p[i] == pytest.approx(expected, rel=1e-9, abs=1e-15)
    pk = hh_potassium().stationary(V)
    np.testing.assert_allclose(pk, [math.comb(4, j) * n**j * (1 - n) ** (4 - j) for j in range(5)], rtol=1e-9,
                               atol=1e-15)


def test_q10_scaling():
    na = hh_sodium()
    assert na.temperature_factor(18.5) == pytest.approx(3 ** 1.22)
    np.testing.assert_allclose(na.generator(-20.0, 18.5), 3 ** 1.22 * na.generator(-20.0, 6.3), rtol=1e-12)


def test_leak_channel_open_probability():
    leak = leak_channel(p_open=0.3, tau_ms=2.0)
    assert leak.open_probability(-50.0) == pytest.approx(0.3)
    Q = leak.generator(0.0)
    assert -Q[0, 0] - Q[1, 1] == pytest.approx(0.5)  # relaxation rate 1 / tau


def test_coupled_inactivation_scheme_written_state_by_state():
    """A Na channel whose inactivation is coupled to activation (Patlak 1991 style), declared by hand."""
    a, b = Exponential(1.5, -40.0, 15.0), Exponential(0.8, -40.0, -15.0)
    T = si.Transition
    scheme = si.MarkovScheme(
        name="NaCI", states=("C1", "C2", "C3", "O", "I"), open_states=("O",),
        transitions=(T("C1", "C2", a, 3), T("C2", "C1", b), T("C2", "C3", a, 2), T("C3", "C2", b, 2),
                     T("C3", "O", a), T("O", "C3", b, 3), T("O", "I", Constant(2.0)), T("I", "C3", Constant(0.05)),
                     T("C3", "I", Constant(0.3))),
        g_unit_pS=15.0, reversal_mV=55.0, ion="Na", reference="Patlak J (1991) doi:10.1152/physrev.1991.71.4.1047")
    p = scheme.stationary(-30.0)
    assert p.sum() == pytest.approx(1.0) and np.all(p > 0)
    assert np.allclose(p @ scheme.generator(-30.0), 0.0, atol=1e-12)


T = si.Transition
C = Constant(1.0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(states=("A", "A"), open_states=("A",), transitions=(T("A", "B", C),)), "duplicate states"),
    (dict(states=("A", "B"), open_states=("A",), transitions=(T("A", "Z", C), T("B", "A", C))), "unknown state 'Z'"),
    (dict(states=("A", "B"), open_states=("X",), transitions=(T("A", "B", C), T("B", "A", C))), "open state 'X'"),
    (dict(states=("A", "B"), open_states=(), transitions=(T("A", "B", C), T("B", "A", C))), "open_states is empty"),
    (dict(states=("A", "B", "C"), open_states=("A",), transitions=(T("A", "B", C), T("B", "A", C))),
     r"states \['C'\] cannot be reached"),
    (dict(states=("A", "B"), open_states=("A",), transitions=(T("A", "B", C), T("B", "A", C), T("A", "B", C))),
     "duplicate transition"),
    (dict(states=("A", "B"), open_states=("A",),
          transitions=(T("A", "B", Exponential(1.0, 0.0, 0.1)), T("B", "A", C))), "finite and >= 0 over"),
    (dict(states=("A", "B"), open_states=("A",), transitions=(T("A", "B", C), T("B", "A", C)), g_unit_pS=-1.0),
     "g_unit_pS"),
])
def test_invalid_schemes_raise_clear_errors(kwargs, match):
    base = dict(name="X", g_unit_pS=10.0, reversal_mV=0.0)
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        si.MarkovScheme(**base)


def test_negative_rate_and_bad_transition():
    with pytest.raises(ValueError, match="multiplicity"):
        T("A", "B", C, 0.0)
    with pytest.raises(ValueError, match="source and target"):
        T("A", "A", C)
    from stochion.rates import TabulatedRate
    neg = TabulatedRate(lambda v: v / 100.0)  # negative below 0 mV
    with pytest.raises(ValueError, match="rate of A->B is -1.5 at V = -150.0 mV"):
        si.MarkovScheme(name="X", states=("A", "B"), open_states=("A",), transitions=(T("A", "B", neg), T("B", "A", C)),
                        g_unit_pS=1.0, reversal_mV=0.0)
