"""Voltage-dependent rate laws of Markov channel schemes.

Every rate law is a frozen dataclass with a numpy ``evaluate(V_mV)`` (used for validation, bound tables and the
deterministic limit) and an encoding as a *kind code* plus three parameters that the compiled kernels evaluate
with :func:`rate_at`. Rates are in 1/ms, voltages in mV.

The built-in families (constant, exponential, sigmoid, HH linoid) are monotone in ``V``, which is what makes the
exact thinning of the kernels possible (the maximum of a rate over a voltage interval is at one end).
:class:`TabulatedRate` accepts any callable; it is simulated as its piecewise-linear interpolant on the
kernel's voltage grid (exact for the interpolant, which is linear and so monotone inside each grid cell); the
interpolation error against the callable is measured at construction and reported.

References
----------
Hodgkin AL, Huxley AF (1952) J Physiol 117:500-544. doi:10.1113/jphysiol.1952.sp004764
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numba
import numpy as np

__all__ = [
    "RateLaw",
    "Constant",
    "Exponential",
    "Sigmoid",
    "Linoid",
    "TabulatedRate",
    "LigandBinding",
    "VALIDATION_RANGE_MV",
    "GRID_STEP_MV",
]

#: Voltage range over which schemes are validated and the kernels simulate (mV).
VALIDATION_RANGE_MV = (-150.0, 100.0)
#: Spacing of the voltage grid that carries the thinning bounds and tabulated rates (mV).
GRID_STEP_MV = 0.25

KIND_CONSTANT = 0
KIND_EXPONENTIAL = 1
KIND_SIGMOID = 2
KIND_LINOID = 3
KIND_TABULATED = 4

# Below this |x| the linoid x / (1 - exp(-x)) is evaluated by its Taylor series: the removable singularity at
# x = 0 would otherwise lose all precision to cancellation. At 1e-4 the series' truncation error (x^4/720) is
# 1e-19, far below double rounding.
_LINOID_SERIES_X = 1e-4


def _check_finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _check_slope(name: str, value: float) -> float:
    value = _check_finite(name, value)
    if value == 0.0:
        raise ValueError(f"{name} must be non-zero (mV per e-fold), got {value!r}")
    return value


class RateLaw:
    """Base of all rate laws: ``evaluate(V_mV)`` in 1/ms and a kernel encoding ``(kind, params)``."""

    kind: int = -1
    monotone: bool = True

    def evaluate(self, V_mV):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def params(self) -> tuple[float, float, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, V_mV):
        return self.evaluate(V_mV)


@dataclass(frozen=True)
class Constant(RateLaw):
    """Voltage-independent rate ``r = rate_per_ms``."""

    rate_per_ms: float
    kind = KIND_CONSTANT

    def __post_init__(self):
        if not (math.isfinite(self.rate_per_ms) and self.rate_per_ms >= 0.0):
            raise ValueError(f"Constant.rate_per_ms must be finite and >= 0, got {self.rate_per_ms!r}")

    def evaluate(self, V_mV):
        return np.full_like(np.asarray(V_mV, dtype=float), self.rate_per_ms)

    @property
    def params(self):
        return (float(self.rate_per_ms), 0.0, 1.0)


@dataclass(frozen=True)
class Exponential(RateLaw):
    """``r = rate_per_ms * exp((V - V_half_mV) / slope_mV)``; a negative slope makes it fall with V."""

    rate_per_ms: float
    V_half_mV: float
    slope_mV: float
    kind = KIND_EXPONENTIAL

    def __post_init__(self):
        _check_finite("Exponential.rate_per_ms", self.rate_per_ms)
        _check_finite("Exponential.V_half_mV", self.V_half_mV)
        _check_slope("Exponential.slope_mV", self.slope_mV)

    def evaluate(self, V_mV):
        V = np.asarray(V_mV, dtype=float)
        return self.rate_per_ms * np.exp((V - self.V_half_mV) / self.slope_mV)

    @property
    def params(self):
        return (float(self.rate_per_ms), float(self.V_half_mV), float(self.slope_mV))


@dataclass(frozen=True)
class Sigmoid(RateLaw):
    """``r = rate_per_ms / (1 + exp(-(V - V_half_mV) / slope_mV))``."""

    rate_per_ms: float
    V_half_mV: float
    slope_mV: float
    kind = KIND_SIGMOID

    def __post_init__(self):
        _check_finite("Sigmoid.rate_per_ms", self.rate_per_ms)
        _check_finite("Sigmoid.V_half_mV", self.V_half_mV)
        _check_slope("Sigmoid.slope_mV", self.slope_mV)

    def evaluate(self, V_mV):
        V = np.asarray(V_mV, dtype=float)
        return self.rate_per_ms / (1.0 + np.exp(-(V - self.V_half_mV) / self.slope_mV))

    @property
    def params(self):
        return (float(self.rate_per_ms), float(self.V_half_mV), float(self.slope_mV))


@dataclass(frozen=True)
class Linoid(RateLaw):
    """Hodgkin–Huxley's ``r = rate_per_ms * x / (1 - exp(-x))`` with ``x = (V - V_half_mV) / slope_mV``.

    At ``x = 0`` the removable singularity takes its limit ``rate_per_ms``. HH's
    ``alpha_m = 0.1 (V+40) / (1 - exp(-(V+40)/10))`` is ``Linoid(1.0, -40, 10)``.
    """

    rate_per_ms: float
    V_half_mV: float
    slope_mV: float
    kind = KIND_LINOID

    def __post_init__(self):
        _check_finite("Linoid.rate_per_ms", self.rate_per_ms)
        _check_finite("Linoid.V_half_mV", self.V_half_mV)
        _check_slope("Linoid.slope_mV", self.slope_mV)

    def evaluate(self, V_mV):
        x = (np.asarray(V_mV, dtype=float) - self.V_half_mV) / self.slope_mV
        small = np.abs(x) < _LINOID_SERIES_X
        safe = np.where(small, 1.0, x)
        out = safe / -np.expm1(-safe)
        out = np.where(small, 1.0 + x / 2.0 + x * x / 12.0, out)
        return self.rate_per_ms * out

    @property
    def params(self):
        return (float(self.rate_per_ms), float(self.V_half_mV), float(self.slope_mV))


@dataclass(frozen=True)
class LigandBinding(RateLaw):
    """Binding of a ligand: ``r = k_on_per_mM_ms * [ligand]``, voltage-independent.

    ``evaluate`` gives the rate per mM; the concentration (mM) is applied per channel population (each
    synapse has its own cleft) by the engine, and is 0 unless a protocol releases transmitter.
    """

    k_on_per_mM_ms: float
    ligand: str = "glutamate"
    kind = KIND_CONSTANT

    def __post_init__(self):
        if not (math.isfinite(self.k_on_per_mM_ms) and self.k_on_per_mM_ms >= 0.0):
            raise ValueError(f"LigandBinding.k_on_per_mM_ms must be finite and >= 0, got {self.k_on_per_mM_ms!r}")
        if not (isinstance(self.ligand, str) and self.ligand):
            raise ValueError(f"LigandBinding.ligand must be a non-empty name, got {self.ligand!r}")

    def evaluate(self, V_mV):
        return np.full_like(np.asarray(V_mV, dtype=float), self.k_on_per_mM_ms)

    @property
    def params(self):
        return (float(self.k_on_per_mM_ms), 0.0, 1.0)


@dataclass(frozen=True)
class TabulatedRate(RateLaw):
    """Any rate law ``r = function(V_mV)``, simulated as its piecewise-linear interpolant.

    The interpolant's knots are the kernel's voltage grid (``GRID_STEP_MV`` apart over
    ``VALIDATION_RANGE_MV``), so inside each grid cell the simulated rate is linear, hence monotone, and the
    kernel's thinning is exact *for the interpolant*. ``interpolation_error`` is the largest relative
    difference between the interpolant and ``function`` at the cell midpoints; construction fails if it
    exceeds ``max_relative_error``. Non-monotone laws (bell-shaped rates) are fine.

    Parameters
    ----------
    function : callable
        Vectorised ``f(V_mV) -> rate (1/ms)``; must be finite and >= 0 over the validation range.
    label : str
        A name for reports and provenance (for example the formula).
    max_relative_error : float
        Largest accepted interpolation error relative to the rate scale (max |f| over the range).
    """

    function: Callable = field(compare=False)
    label: str = "tabulated"
    max_relative_error: float = 1e-4
    kind = KIND_TABULATED
    monotone = False

    def __post_init__(self):
        if not callable(self.function):
            raise ValueError(f"TabulatedRate.function must be callable, got {self.function!r}")
        grid = voltage_grid_mV()
        values = np.asarray(self.function(grid), dtype=float)
        if values.shape != grid.shape:
            raise ValueError(
                f"TabulatedRate.function must be vectorised: f(V) for {grid.size} voltages returned shape "
                f"{values.shape}"
            )
        mid = 0.5 * (grid[1:] + grid[:-1])
        exact_mid = np.asarray(self.function(mid), dtype=float)
        scale = max(float(np.max(np.abs(values))), 1e-300)
        err = float(np.max(np.abs(0.5 * (values[1:] + values[:-1]) - exact_mid))) / scale
        object.__setattr__(self, "_table", values)
        object.__setattr__(self, "interpolation_error", err)
        if np.all(np.isfinite(values)) and err > self.max_relative_error:
            raise ValueError(
                f"TabulatedRate {self.label!r}: piecewise-linear interpolation on a {GRID_STEP_MV} mV grid is off "
                f"by {err:.2e} of the rate scale, more than max_relative_error={self.max_relative_error:.1e}; "
                "the function varies too fast for the grid (or raise max_relative_error knowingly)"
            )

    def evaluate(self, V_mV):
        return np.interp(np.asarray(V_mV, dtype=float), voltage_grid_mV(), self._table)

    @property
    def params(self):
        return (0.0, 0.0, 1.0)


def voltage_grid_mV() -> np.ndarray:
    """The kernel's voltage grid: cell edges ``GRID_STEP_MV`` apart over ``VALIDATION_RANGE_MV`` (mV)."""
    lo, hi = VALIDATION_RANGE_MV
    n = int(round((hi - lo) / GRID_STEP_MV))
    return lo + GRID_STEP_MV * np.arange(n + 1, dtype=float)


@numba.njit(cache=True, inline="always")
def rate_at(kind, a, vh, k, table_col, V, grid_lo, grid_step):
    """Exact value (1/ms) of one rate law at ``V`` (mV), as the kernels evaluate it.

    ``table_col`` holds the law's values at the grid edges; it is used only by ``KIND_TABULATED`` (linear
    interpolation, exact for that law by definition).
    """
    if kind == 0:
        return a
    if kind == 1:
        return a * math.exp((V - vh) / k)
    if kind == 2:
        return a / (1.0 + math.exp(-(V - vh) / k))
    if kind == 3:
        x = (V - vh) / k
        if abs(x) < 1e-4:
            return a * (1.0 + x / 2.0 + x * x / 12.0)
        return a * x / -math.expm1(-x)
    # tabulated
    pos = (V - grid_lo) / grid_step
    i = int(pos)
    if i < 0:
        i = 0
    if i > table_col.shape[0] - 2:
        i = table_col.shape[0] - 2
    w = pos - i
    return table_col[i] * (1.0 - w) + table_col[i + 1] * w
