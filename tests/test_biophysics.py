"""Tests for stochion.biophysics.

Known answers are computed in the test from constants typed in here
(CODATA 2018 / SI 2019 exact values), never by calling the function under
test. All tests are deterministic.
"""

import dataclasses
import math

import numpy as np
import pytest

from stochion import biophysics as bp
from stochion.biophysics import (
    CONCENTRATION_SETS,
    MAMMALIAN_NEURON,
    SQUID_AXON,
    IonConcentrations,
    celsius_to_kelvin,
    ghk_voltage_mV,
    nernst_mV,
    q10_factor,
    thermal_voltage_mV,
)

# Typed independently of the module: R = k N_A and F = e N_A, with the
# defining constants of the 2019 SI (exact), so no rounding enters.
BOLTZMANN_J_PER_K = 1.380649e-23
ELEMENTARY_CHARGE_C = 1.602176634e-19
AVOGADRO_PER_MOL = 6.02214076e23
R_J_PER_MOL_K = BOLTZMANN_J_PER_K * AVOGADRO_PER_MOL  # 8.314462618...
F_C_PER_MOL = ELEMENTARY_CHARGE_C * AVOGADRO_PER_MOL  # 96485.33212...


def rt_over_f_mV(temperature_celsius):
    return 1e3 * R_J_PER_MOL_K * (temperature_celsius + 273.15) / F_C_PER_MOL


def nernst_reference_mV(z, c_out_mM, c_in_mM, temperature_celsius):
    return rt_over_f_mV(temperature_celsius) / z * math.log(c_out_mM / c_in_mM)


def ghk_reference_mV(p_K, p_Na, p_Cl, c, temperature_celsius):
    # c = (K_in, K_out, Na_in, Na_out, Cl_in, Cl_out)
    K_in, K_out, Na_in, Na_out, Cl_in, Cl_out = c
    num = p_K * K_out + p_Na * Na_out + p_Cl * Cl_in
    den = p_K * K_in + p_Na * Na_in + p_Cl * Cl_out
    return rt_over_f_mV(temperature_celsius) * math.log(num / den)


SQUID_NUMBERS = (400.0, 20.0, 50.0, 440.0, 40.0, 560.0)
MAMMAL_NUMBERS = (140.0, 5.0, 15.0, 145.0, 10.0, 110.0)


# --------------------------------------------------------------------------
# Constants and temperature
# --------------------------------------------------------------------------


def test_constants_match_codata():
    assert bp.FARADAY_C_PER_MOL == pytest.approx(96485.33212, rel=1e-10)
    assert bp.GAS_CONSTANT_J_PER_MOL_K == pytest.approx(8.314462618, rel=1e-10)


def test_celsius_to_kelvin():
    assert celsius_to_kelvin(0.0) == pytest.approx(273.15)
    assert celsius_to_kelvin(6.3) == pytest.approx(279.45)
    assert celsius_to_kelvin(-273.15) == pytest.approx(0.0)
    np.testing.assert_allclose(celsius_to_kelvin(np.array([0.0, 37.0])), [273.15, 310.15])


def test_thermal_voltage_at_20C_is_25_26_mV_per_e_fold():
    # RT/F at 293.15 K, worked by hand: 8.314462618 * 293.15 / 96485.33212 V.
    assert thermal_voltage_mV(20.0) == pytest.approx(25.2617, abs=1e-3)
    # One e-fold concentration ratio of a monovalent cation gives RT/F.
    assert nernst_mV(1, math.e, 1.0, temperature_celsius=20.0) == pytest.approx(25.2617, abs=1e-3)
    # and a decade about 58.17 mV
    assert nernst_mV(1, 10.0, 1.0, temperature_celsius=20.0) == pytest.approx(
        25.2617 * math.log(10.0), abs=1e-3
    )


# --------------------------------------------------------------------------
# Nernst
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "concentrations, numbers, temperature_celsius",
    [(SQUID_AXON, SQUID_NUMBERS, 6.3), (MAMMALIAN_NEURON, MAMMAL_NUMBERS, 37.0)],
    ids=["squid_axon", "mammalian_neuron"],
)
def test_named_set_reversal_potentials(concentrations, numbers, temperature_celsius):
    K_in, K_out, Na_in, Na_out, Cl_in, Cl_out = numbers
    assert concentrations.temperature_celsius == temperature_celsius
    expected = {
        "K": nernst_reference_mV(+1, K_out, K_in, temperature_celsius),
        "Na": nernst_reference_mV(+1, Na_out, Na_in, temperature_celsius),
        "Cl": nernst_reference_mV(-1, Cl_out, Cl_in, temperature_celsius),
    }
    for ion, value in expected.items():
        assert concentrations.reversal_mV(ion) == pytest.approx(value, abs=0.01)
    assert concentrations.reversal_potentials_mV() == pytest.approx(expected, abs=0.01)


def test_named_set_reversal_potentials_hand_values():
    # Worked by hand from RT/F (24.0811 mV at 279.45 K; 26.7267 mV at 310.15 K).
    assert SQUID_AXON.reversal_mV("K") == pytest.approx(-72.14, abs=0.01)
    assert SQUID_AXON.reversal_mV("Na") == pytest.approx(52.37, abs=0.01)
    assert SQUID_AXON.reversal_mV("Cl") == pytest.approx(-63.55, abs=0.01)
    assert MAMMALIAN_NEURON.reversal_mV("K") == pytest.approx(-89.06, abs=0.01)
    assert MAMMALIAN_NEURON.reversal_mV("Na") == pytest.approx(60.63, abs=0.01)
    assert MAMMALIAN_NEURON.reversal_mV("Cl") == pytest.approx(-64.09, abs=0.01)


def test_mammalian_set_is_in_textbook_ranges():
    assert MAMMALIAN_NEURON.reversal_mV("K") == pytest.approx(-90.0, abs=3.0)
    assert MAMMALIAN_NEURON.reversal_mV("Na") == pytest.approx(60.0, abs=5.0)
    v = MAMMALIAN_NEURON.resting_potential_mV({"K": 40.0, "Na": 1.0})
    assert v == pytest.approx(-70.0, abs=5.0)
    assert v == pytest.approx(ghk_reference_mV(40.0, 1.0, 0.0, MAMMAL_NUMBERS, 37.0), abs=1e-9)


def test_concentration_sets_registry():
    assert CONCENTRATION_SETS == {"squid_axon": SQUID_AXON, "mammalian_neuron": MAMMALIAN_NEURON}
    for key, value in CONCENTRATION_SETS.items():
        assert value.name == key


def test_nernst_scales_linearly_with_absolute_temperature():
    e_0 = nernst_mV(1, 20.0, 400.0, temperature_celsius=6.3)
    e_1 = nernst_mV(1, 20.0, 400.0, temperature_celsius=37.0)
    assert e_1 / e_0 == pytest.approx(310.15 / 279.45, rel=1e-12)
    # at absolute zero there is no thermal driving force
    assert nernst_mV(1, 20.0, 400.0, temperature_celsius=-273.15) == 0.0


def test_nernst_valence_and_symmetry():
    e_k = nernst_mV(1, 5.0, 140.0, temperature_celsius=37.0)
    assert nernst_mV(-1, 5.0, 140.0, temperature_celsius=37.0) == pytest.approx(-e_k)
    assert nernst_mV(2, 5.0, 140.0, temperature_celsius=37.0) == pytest.approx(e_k / 2)
    assert nernst_mV(1, 140.0, 5.0, temperature_celsius=37.0) == pytest.approx(-e_k)
    assert nernst_mV(1, 7.0, 7.0, temperature_celsius=37.0) == 0.0
    # Ca2+ 2 mM out, 100 nM in at 37 C
    assert nernst_mV(2, 2.0, 1e-4, temperature_celsius=37.0) == pytest.approx(
        nernst_reference_mV(2, 2.0, 1e-4, 37.0), abs=1e-6
    )


def test_nernst_scalar_returns_float_and_arrays_broadcast():
    assert isinstance(nernst_mV(1, 5.0, 140.0, temperature_celsius=37.0), float)
    c_out = np.array([2.5, 5.0, 10.0, 20.0])
    result = nernst_mV(1, c_out, 140.0, temperature_celsius=37.0)
    assert isinstance(result, np.ndarray) and result.shape == (4,)
    expected = [nernst_reference_mV(1, c, 140.0, 37.0) for c in c_out]
    np.testing.assert_allclose(result, expected, atol=1e-9)
    temps = np.array([[6.3], [37.0]])
    grid = nernst_mV(1, c_out, 140.0, temperature_celsius=temps)
    assert grid.shape == (2, 4)
    np.testing.assert_allclose(grid[1], expected, atol=1e-9)


# --------------------------------------------------------------------------
# Goldman-Hodgkin-Katz
# --------------------------------------------------------------------------


@pytest.mark.parametrize("concentrations", [SQUID_AXON, MAMMALIAN_NEURON], ids=lambda c: c.name)
@pytest.mark.parametrize("ion", ["K", "Na", "Cl"])
def test_ghk_reduces_to_nernst_for_single_permeable_ion(concentrations, ion):
    c = dataclasses.astuple(concentrations)[1:7]
    index = {"K": 0, "Na": 1, "Cl": 2}[ion]
    c_in, c_out = c[2 * index], c[2 * index + 1]
    z = -1 if ion == "Cl" else +1
    t = concentrations.temperature_celsius
    expected = nernst_reference_mV(z, c_out, c_in, t)
    for scale in (1e-6, 1.0, 37.0):
        got = ghk_voltage_mV(
            permeabilities={ion: scale}, concentrations=concentrations, temperature_celsius=t
        )
        assert got == pytest.approx(expected, abs=1e-9)
    # explicit zeros for the other ions change nothing
    zeros = {other: 0.0 for other in ("K", "Na", "Cl") if other != ion}
    got = ghk_voltage_mV(permeabilities={ion: 1.0, **zeros}, concentrations=concentrations)
    assert got == pytest.approx(expected, abs=1e-9)


def test_ghk_hodgkin_katz_squid_value():
    # Hodgkin & Katz (1949) resting ratios P_K:P_Na:P_Cl = 1:0.04:0.45
    p = {"K": 1.0, "Na": 0.04, "Cl": 0.45}
    expected = ghk_reference_mV(1.0, 0.04, 0.45, SQUID_NUMBERS, 6.3)
    assert SQUID_AXON.resting_potential_mV(p) == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(-59.36, abs=0.01)


def test_ghk_is_scale_free():
    a = ghk_voltage_mV(permeabilities={"K": 1.0, "Na": 0.025, "Cl": 0.45}, concentrations=SQUID_AXON)
    b = ghk_voltage_mV(permeabilities={"K": 40.0, "Na": 1.0, "Cl": 18.0}, concentrations=SQUID_AXON)
    assert a == pytest.approx(b, abs=1e-12)


@pytest.mark.parametrize("concentrations", [SQUID_AXON, MAMMALIAN_NEURON], ids=lambda c: c.name)
def test_ghk_between_E_K_and_E_Na_and_monotone_in_P_Na(concentrations):
    e_k = concentrations.reversal_mV("K")
    e_na = concentrations.reversal_mV("Na")
    ratios = np.logspace(-4, 4, 41)  # P_Na / P_K
    v = np.array([concentrations.resting_potential_mV({"K": 1.0, "Na": r}) for r in ratios])
    assert np.all(v > e_k) and np.all(v < e_na)
    assert np.all(np.diff(v) > 0.0)
    # limits approach the Nernst potentials
    assert v[0] == pytest.approx(e_k, abs=0.5)
    assert v[-1] == pytest.approx(e_na, abs=0.5)


def test_ghk_temperature_defaults_to_concentrations_and_can_be_overridden():
    p = {"K": 1.0, "Na": 0.04}
    default = ghk_voltage_mV(permeabilities=p, concentrations=SQUID_AXON)
    assert default == pytest.approx(ghk_reference_mV(1.0, 0.04, 0.0, SQUID_NUMBERS, 6.3), abs=1e-9)
    warm = ghk_voltage_mV(permeabilities=p, concentrations=SQUID_AXON, temperature_celsius=18.5)
    assert warm == pytest.approx(ghk_reference_mV(1.0, 0.04, 0.0, SQUID_NUMBERS, 18.5), abs=1e-9)


# --------------------------------------------------------------------------
# Q10
# --------------------------------------------------------------------------


def test_q10_factor_hodgkin_huxley():
    assert q10_factor(3.0, 18.5, 6.3) == pytest.approx(3.0**1.22, rel=1e-12)
    assert q10_factor(3.0, 18.5, 6.3) == pytest.approx(3.8202, abs=1e-4)
    assert q10_factor(3.0, 6.3, 6.3) == 1.0
    assert q10_factor(2.0, 16.0, 26.0) == pytest.approx(0.5)
    np.testing.assert_allclose(q10_factor(3.0, np.array([6.3, 16.3, 26.3]), 6.3), [1.0, 3.0, 9.0])


# --------------------------------------------------------------------------
# IonConcentrations
# --------------------------------------------------------------------------


def test_ion_concentrations_is_frozen_and_keyword_only():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SQUID_AXON.K_in_mM = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        IonConcentrations("x", 400.0, 20.0, 50.0, 440.0, 40.0, 560.0, 6.3)  # type: ignore[misc]


def test_with_temperature_and_replace():
    warm = SQUID_AXON.with_temperature(18.5)
    assert warm.temperature_celsius == 18.5
    assert warm.K_in_mM == SQUID_AXON.K_in_mM and warm.name == SQUID_AXON.name
    assert warm.reversal_mV("K") == pytest.approx(nernst_reference_mV(1, 20.0, 400.0, 18.5), abs=1e-9)
    high_k = MAMMALIAN_NEURON.replace(K_out_mM=10.0)
    assert high_k.reversal_mV("K") == pytest.approx(nernst_reference_mV(1, 10.0, 140.0, 37.0), abs=1e-9)
    with pytest.raises(ValueError, match="K_out_mM"):
        MAMMALIAN_NEURON.replace(K_out_mM=0.0)
    with pytest.raises(ValueError, match="temperature_celsius"):
        SQUID_AXON.with_temperature(-300.0)


def test_ion_concentrations_values_stored_as_float():
    c = IonConcentrations(
        "ints", K_in_mM=140, K_out_mM=5, Na_in_mM=15, Na_out_mM=145,
        Cl_in_mM=10, Cl_out_mM=110, temperature_celsius=37,
    )
    assert all(isinstance(v, float) for v in dataclasses.astuple(c)[1:])
    assert c == MAMMALIAN_NEURON.replace(name="ints")
    assert hash(c) == hash(MAMMALIAN_NEURON.replace(name="ints"))


# --------------------------------------------------------------------------
# Bad input: every error is a ValueError that names the parameter
# --------------------------------------------------------------------------


@pytest.mark.parametrize("z", [0, 0.0, 1.5, float("nan"), True, "1", None])
def test_nernst_rejects_bad_valence(z):
    with pytest.raises(ValueError, match=r"\bz\b"):
        nernst_mV(z, 5.0, 140.0, temperature_celsius=37.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), np.array([5.0, -2.0]), "five"])
@pytest.mark.parametrize("which", ["c_out_mM", "c_in_mM"])
def test_nernst_rejects_bad_concentration(which, bad):
    kwargs = {"c_out_mM": 5.0, "c_in_mM": 140.0, which: bad}
    with pytest.raises(ValueError, match=which):
        nernst_mV(1, kwargs["c_out_mM"], kwargs["c_in_mM"], temperature_celsius=37.0)


@pytest.mark.parametrize("bad", [-273.16, -1000.0, float("nan"), float("inf"), -float("inf")])
def test_nernst_rejects_bad_temperature(bad):
    with pytest.raises(ValueError, match="temperature_celsius"):
        nernst_mV(1, 5.0, 140.0, temperature_celsius=bad)


def test_error_message_names_value_and_range():
    with pytest.raises(ValueError) as info:
        nernst_mV(1, np.array([5.0, -2.0]), 140.0, temperature_celsius=37.0)
    message = str(info.value)
    assert "c_out_mM" in message and "-2.0" in message and "positive" in message
    with pytest.raises(ValueError) as info:
        celsius_to_kelvin(-300.0)
    assert "-273.15" in str(info.value) and "-300.0" in str(info.value)


@pytest.mark.parametrize(
    "permeabilities, fragment",
    [
        ({"K": 1.0, "Ca": 0.1}, "Ca"),
        ({"k": 1.0}, "'K', 'Na', 'Cl'"),
        ({"K": -1.0}, "permeabilities"),
        ({"K": 1.0, "Na": float("nan")}, "permeabilities"),
        ({"K": float("inf")}, "permeabilities"),
        ({"K": 0.0, "Na": 0.0}, "permeabilities"),
        ({}, "permeabilities"),
        ({"K": "1"}, "permeabilities"),
        ([("K", 1.0)], "permeabilities"),
    ],
)
def test_ghk_rejects_bad_permeabilities(permeabilities, fragment):
    with pytest.raises(ValueError, match=fragment):
        ghk_voltage_mV(permeabilities=permeabilities, concentrations=SQUID_AXON)


def test_ghk_rejects_bad_concentrations_and_temperature():
    with pytest.raises(ValueError, match="concentrations"):
        ghk_voltage_mV(permeabilities={"K": 1.0}, concentrations={"K_in_mM": 400.0})
    with pytest.raises(ValueError, match="temperature_celsius"):
        ghk_voltage_mV(permeabilities={"K": 1.0}, concentrations=SQUID_AXON, temperature_celsius=-280.0)


@pytest.mark.parametrize(
    "args, name",
    [
        ((0.0, 18.5, 6.3), "q10"),
        ((-3.0, 18.5, 6.3), "q10"),
        ((float("inf"), 18.5, 6.3), "q10"),
        ((float("nan"), 18.5, 6.3), "q10"),
        (("3", 18.5, 6.3), "q10"),
        ((3.0, float("nan"), 6.3), "temperature_celsius"),
        ((3.0, -274.0, 6.3), "temperature_celsius"),
        ((3.0, 18.5, float("inf")), "reference_celsius"),
        ((3.0, 18.5, -274.0), "reference_celsius"),
    ],
)
def test_q10_factor_rejects_bad_input(args, name):
    with pytest.raises(ValueError, match=name):
        q10_factor(*args)


def test_reversal_rejects_unknown_ion():
    with pytest.raises(ValueError, match=r"ion.*'K', 'Na', 'Cl'"):
        SQUID_AXON.reversal_mV("Ca")


GOOD_FIELDS = dict(
    K_in_mM=140.0, K_out_mM=5.0, Na_in_mM=15.0, Na_out_mM=145.0,
    Cl_in_mM=10.0, Cl_out_mM=110.0, temperature_celsius=37.0,
)


@pytest.mark.parametrize(
    "field, bad",
    [
        (field, bad)
        for field in ("K_in_mM", "K_out_mM", "Na_in_mM", "Na_out_mM", "Cl_in_mM", "Cl_out_mM")
        for bad in (0.0, -5.0, float("nan"), float("inf"), "5", None, np.array([1.0, 2.0]))
    ]
    + [("temperature_celsius", bad) for bad in (-273.2, float("nan"), float("inf"), None, "37")],
)
def test_ion_concentrations_rejects_bad_field(field, bad):
    with pytest.raises(ValueError, match=field):
        IonConcentrations("bad", **{**GOOD_FIELDS, field: bad})


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_ion_concentrations_rejects_bad_name(bad):
    with pytest.raises(ValueError, match="name"):
        IonConcentrations(bad, **GOOD_FIELDS)


def test_public_names_are_exported():
    for name in bp.__all__:
        assert hasattr(bp, name), name
    for name in (
        "FARADAY_C_PER_MOL", "GAS_CONSTANT_J_PER_MOL_K", "celsius_to_kelvin", "nernst_mV",
        "ghk_voltage_mV", "q10_factor", "IonConcentrations", "SQUID_AXON",
        "MAMMALIAN_NEURON", "CONCENTRATION_SETS",
    ):
        assert name in bp.__all__
