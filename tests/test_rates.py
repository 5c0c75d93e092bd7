import math

import numpy as np
import pytest

from stochion import rates
from stochion.rates import Constant, Exponential, Linoid, Sigmoid, TabulatedRate, rate_at, voltage_grid_mV

V = np.linspace(-150, 100, 1001)


def test_hh_formulas():
    am = Linoid(1.0, -40.0, 10.0).evaluate(V)
    with np.errstate(invalid="ignore", divide="ignore"):
        textbook = 0.1 * (V + 40) / (1 - np.exp(-(V + 40) / 10))
    ok = np.abs(V + 40) > 1e-6
    np.testing.assert_allclose(am[ok], textbook[ok], rtol=1e-12)
    np.testing.assert_allclose(Exponential(4.0, -65.0, -18.0).evaluate(V), 4 * np.exp(-(V + 65) / 18), rtol=1e-14)
    np.testing.assert_allclose(Sigmoid(1.0, -35.0, 10.0).evaluate(V), 1 / (1 + np.exp(-(V + 35) / 10)), rtol=1e-14)


def test_linoid_removable_singularity_is_continuous():
    law = Linoid(0.1, -55.0, 10.0)
    x = np.array([-1e-3, -1e-4, -1e-5, 0.0, 1e-5, 1e-4, 1e-3]) * 10 - 55.0
    vals = law.evaluate(x)
    assert vals[3] == pytest.approx(0.1)
    # the limit x/(1-e^-x) = 1 + x/2 + x²/12: smooth to 1e-12 around the singularity
    xs = (x + 55.0) / 10
    np.testing.assert_allclose(vals, 0.1 * (1 + xs / 2 + xs**2 / 12), rtol=1e-12)


@pytest.mark.parametrize("law", [Constant(0.3), Exponential(4.0, -65.0, -18.0), Sigmoid(1.0, -35.0, 10.0),
                                 Linoid(1.0, -40.0, 10.0), Linoid(0.1, -55.0, 10.0),
                                 TabulatedRate(lambda v: 1 / (np.exp((v + 30) / 8) + np.exp(-(v + 30) / 12)))])
def test_kernel_evaluation_matches_numpy(law):
    table = np.asarray(law.evaluate(voltage_grid_mV()), dtype=float)
    lo, step = rates.VALIDATION_RANGE_MV[0], rates.GRID_STEP_MV
    for v in np.linspace(-149.9, 99.9, 257):
        got = rate_at(law.kind, *law.params, table, v, lo, step)
        assert got == pytest.approx(float(law.evaluate(v)), rel=1e-12, abs=1e-300)


def test_builtin_families_are_monotone_on_the_grid():
    for law in (Exponential(4.0, -65.0, -18.0), Sigmoid(1.0, -35.0, 10.0), Linoid(1.0, -40.0, 10.0)):
        d = np.diff(law.evaluate(voltage_grid_mV()))
        assert np.all(d >= 0) or np.all(d <= 0)


def test_tabulated_reports_interpolation_error_and_rejects_coarse():
    smooth = TabulatedRate(lambda v: np.exp(-((v + 30) / 20) ** 2))
    assert 0 < smooth.interpolation_error < 1e-4
    with pytest.raises(ValueError, match="max_relative_error"):
        TabulatedRate(lambda v: np.exp(-((v + 30) / 0.3) ** 2))
    with pytest.raises(ValueError, match="vectorised"):
        TabulatedRate(lambda v: 1.0)
    with pytest.raises(ValueError, match="callable"):
        TabulatedRate(3.0)


@pytest.mark.parametrize("make,match", [
    (lambda: Constant(-1.0), "rate_per_ms"),
    (lambda: Constant(math.nan), "rate_per_ms"),
    (lambda: Exponential(1.0, 0.0, 0.0), "slope_mV"),
    (lambda: Sigmoid(1.0, math.inf, 5.0), "V_half_mV"),
    (lambda: Linoid(math.nan, 0.0, 5.0), "rate_per_ms"),
])
def test_bad_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()
