"""Membrane declarations: a :class:`Patch` of membrane with its channel populations.

Unit conversions used throughout (area ``A`` in µm²):

* capacitance ``C (pF) = Cm (µF/cm²) * A * 1e-2``,
* leak conductance ``g (nS) = g (mS/cm²) * A * 1e-2``,
* current ``I (pA) = I (µA/cm²) * A * 1e-2``,

so that ``tau = C / G`` is in ms and ``I / G`` in mV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq

from .channels import MarkovScheme, hh_potassium, hh_sodium, leak_channel
from .rates import VALIDATION_RANGE_MV

__all__ = ["ChannelPopulation", "Patch", "hh_patch", "uA_per_cm2_to_pA"]

# µm² * (µF/cm² or mS/cm² or µA/cm²) -> pF, nS, pA
_PER_CM2_TO_PER_UM2 = 1e-2


def uA_per_cm2_to_pA(current_uA_cm2: float, area_um2: float) -> float:
    """Current density (µA/cm²) on ``area_um2`` (µm²) as a current in pA."""
    return float(current_uA_cm2) * float(area_um2) * _PER_CM2_TO_PER_UM2


@dataclass(frozen=True)
class ChannelPopulation:
    """A population of identical channels: a scheme and either a density (per µm²) or a count."""

    scheme: MarkovScheme
    density_per_um2: float | None = None
    count: int | None = None

    def __post_init__(self):
        if not isinstance(self.scheme, MarkovScheme):
            raise ValueError(f"ChannelPopulation.scheme must be a MarkovScheme, got {self.scheme!r}")
        if (self.density_per_um2 is None) == (self.count is None):
            raise ValueError(
                f"ChannelPopulation {self.scheme.name!r}: give exactly one of density_per_um2 and count "
                f"(got density_per_um2={self.density_per_um2!r}, count={self.count!r})"
            )
        if self.density_per_um2 is not None and not (
            math.isfinite(self.density_per_um2) and self.density_per_um2 >= 0
        ):
            raise ValueError(
                f"ChannelPopulation {self.scheme.name!r}: density_per_um2 must be finite and >= 0, "
                f"got {self.density_per_um2!r}"
            )
        if self.count is not None and not (isinstance(self.count, (int, np.integer)) and self.count >= 0):
            raise ValueError(
                f"ChannelPopulation {self.scheme.name!r}: count must be an integer >= 0, got {self.count!r}"
            )

    def n_channels(self, area_um2: float) -> int:
        """Number of channels on ``area_um2``: the count, or the density times the area, rounded."""
        if self.count is not None:
            return int(self.count)
        return int(round(self.density_per_um2 * area_um2))


@dataclass(frozen=True)
class Patch:
    """An isopotential patch of membrane with stochastic channel populations and a constant leak.

    Parameters
    ----------
    area_um2 : float
        Membrane area, µm² (> 0).
    channels : tuple of ChannelPopulation
        The stochastic channel populations; channel type names must be unique.
    cm_uF_per_cm2 : float
        Specific capacitance, µF/cm².
    g_leak_mS_per_cm2 : float
        Constant (deterministic) leak conductance density, mS/cm²; 0 for none.
    E_leak_mV : float
        Leak reversal potential, mV.
    temperature_celsius : float
        Temperature; each scheme's rates are scaled by its Q10 from its reference temperature.
    """

    area_um2: float
    channels: tuple = ()
    cm_uF_per_cm2: float = 1.0
    g_leak_mS_per_cm2: float = 0.0
    E_leak_mV: float = -54.387
    temperature_celsius: float = 6.3
    _counts: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(self.channels))
        checks = (
            ("area_um2", self.area_um2, "finite and > 0", lambda v: math.isfinite(v) and v > 0),
            ("cm_uF_per_cm2", self.cm_uF_per_cm2, "finite and > 0", lambda v: math.isfinite(v) and v > 0),
            ("g_leak_mS_per_cm2", self.g_leak_mS_per_cm2, "finite and >= 0", lambda v: math.isfinite(v) and v >= 0),
            ("E_leak_mV", self.E_leak_mV, "finite", math.isfinite),
            ("temperature_celsius", self.temperature_celsius, "in -5..50 °C", lambda v: -5.0 <= v <= 50.0),
        )
        for name, value, allowed, ok in checks:
            try:
                good = ok(float(value))
            except (TypeError, ValueError):
                good = False
            if not good:
                raise ValueError(f"Patch.{name} must be {allowed}, got {value!r}")
        names = [c.scheme.name for c in self.channels]
        for c in self.channels:
            if not isinstance(c, ChannelPopulation):
                raise ValueError(f"Patch.channels must hold ChannelPopulation objects, got {c!r}")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"Patch.channels: channel type names must be unique, duplicated: {dup}")
        counts = tuple(c.n_channels(self.area_um2) for c in self.channels)
        object.__setattr__(self, "_counts", counts)
        if self.g_leak_mS_per_cm2 == 0 and sum(counts) == 0:
            raise ValueError("Patch has no conductance at all: no channels on this area and g_leak_mS_per_cm2 = 0")

    # -- derived quantities -------------------------------------------------------------------------------
    @property
    def capacitance_pF(self) -> float:
        return self.cm_uF_per_cm2 * self.area_um2 * _PER_CM2_TO_PER_UM2

    @property
    def g_leak_nS(self) -> float:
        return self.g_leak_mS_per_cm2 * self.area_um2 * _PER_CM2_TO_PER_UM2

    @property
    def channel_counts(self) -> dict:
        """Number of channels of each type, ``{name: count}``."""
        return {c.scheme.name: n for c, n in zip(self.channels, self._counts)}

    @property
    def schemes(self) -> tuple:
        return tuple(c.scheme for c in self.channels)

    def steady_state_current_pA(self, V_mV, I_stim_pA: float = 0.0):
        """Net outward membrane current (pA) at ``V_mV`` (scalar or array), channels at stationary occupancy."""
        total = self.g_leak_nS * (V_mV - self.E_leak_mV) - I_stim_pA
        for scheme, n in zip(self.schemes, self._counts):
            p_open = scheme.open_probability(V_mV, self.temperature_celsius)
            total += n * scheme.g_unit_pS * 1e-3 * p_open * (V_mV - scheme.reversal_mV)
        return total

    def resting_potential_mV(self, I_stim_pA: float = 0.0) -> float:
        """Mean-field resting potential: the most negative zero of the steady-state I–V curve (mV).

        For the HH patch this is -65.0 mV. Raises if the steady-state current has no zero in the simulated
        range.
        """
        lo, hi = VALIDATION_RANGE_MV
        grid = np.arange(lo, hi + 0.5, 0.5)
        f = self.steady_state_current_pA(grid, I_stim_pA)
        sign_change = np.nonzero(np.sign(f[:-1]) * np.sign(f[1:]) <= 0)[0]
        if sign_change.size == 0:
            raise ValueError(
                f"Patch has no steady state between {lo} and {hi} mV with I_stim_pA={I_stim_pA!r}: the "
                "steady-state current never changes sign"
            )
        i = sign_change[0]
        if f[i] == 0:
            return float(grid[i])
        return float(brentq(self.steady_state_current_pA, grid[i], grid[i + 1], args=(I_stim_pA,), xtol=1e-12))


def hh_patch(
    area_um2: float,
    *,
    temperature_celsius: float = 6.3,
    leak: str = "constant",
    na_density_per_um2: float = 60.0,
    k_density_per_um2: float = 18.0,
    g_unit_pS: float = 20.0,
    leak_g_unit_pS: float = 2.0,
    leak_p_open: float = 0.5,
) -> Patch:
    """The classic stochastic Hodgkin–Huxley membrane.

    60 Na+ and 18 K+ channels per µm², 20 pS each (120 and 36 mS/cm²), leak 0.3 mS/cm² at -54.387 mV,
    E_Na = +50 mV, E_K = -77 mV, Cm = 1 µF/cm², rates of Hodgkin & Huxley (1952) at 6.3 °C scaled with
    Q10 = 3 at other temperatures.

    Parameters
    ----------
    leak : {"constant", "agents"}
        ``"constant"`` (default, as in the stochastic HH literature) keeps the leak a deterministic conductance;
        ``"agents"`` makes it flickering two-state channels of ``leak_g_unit_pS`` with open probability
        ``leak_p_open``, at the density that gives the same mean 0.3 mS/cm².

    References
    ----------
    Hodgkin AL, Huxley AF (1952) doi:10.1113/jphysiol.1952.sp004764;
    Goldwyn JH, Shea-Brown E (2011) doi:10.1371/journal.pcbi.1002247
    """
    g_leak_mS_per_cm2 = 0.3
    channels = [
        ChannelPopulation(hh_sodium(g_unit_pS=g_unit_pS), density_per_um2=na_density_per_um2),
        ChannelPopulation(hh_potassium(g_unit_pS=g_unit_pS), density_per_um2=k_density_per_um2),
    ]
    if leak == "agents":
        # 0.3 mS/cm² = 3 pS/µm²
        density = g_leak_mS_per_cm2 * 10.0 / (leak_g_unit_pS * leak_p_open)
        channels.append(
            ChannelPopulation(leak_channel(p_open=leak_p_open, g_unit_pS=leak_g_unit_pS), density_per_um2=density)
        )
        g_leak_mS_per_cm2 = 0.0
    elif leak != "constant":
        raise ValueError(f"hh_patch: leak must be 'constant' or 'agents', got {leak!r}")
    return Patch(
        area_um2=area_um2,
        channels=tuple(channels),
        cm_uF_per_cm2=1.0,
        g_leak_mS_per_cm2=g_leak_mS_per_cm2,
        E_leak_mV=-54.387,
        temperature_celsius=temperature_celsius,
    )
