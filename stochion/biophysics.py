"""Electrochemistry of the resting membrane: Nernst, Goldman-Hodgkin-Katz, Q10.

This module holds the physical constants and the closed-form equilibrium
relations that the rest of :mod:`stochion` builds on, together with two
documented sets of ionic concentrations (squid giant axon and a mammalian
neuron). It depends on numpy only.

Sign conventions
----------------
Membrane potentials are inside minus outside, in millivolts (mV).
Concentrations are free ionic concentrations in millimolar (mM).
Temperatures are given in degrees Celsius and converted to kelvin internally.

References
----------
.. [1] Hille B. (2001). *Ion Channels of Excitable Membranes*, 3rd ed.
   Sinauer, Sunderland MA. (Nernst and Goldman-Hodgkin-Katz equations.)
.. [2] Goldman D. E. (1943). Potential, impedance, and rectification in
   membranes. *J. Gen. Physiol.* 27, 37-60. doi:10.1085/jgp.27.1.37
.. [3] Hodgkin A. L. & Katz B. (1949). The effect of sodium ions on the
   electrical activity of the giant axon of the squid. *J. Physiol.* 108,
   37-77. doi:10.1113/jphysiol.1949.sp004310
.. [4] Hodgkin A. L. & Huxley A. F. (1952). A quantitative description of
   membrane current and its application to conduction and excitation in
   nerve. *J. Physiol.* 117, 500-544. doi:10.1113/jphysiol.1952.sp004764
.. [5] Purves D. et al., eds. (2012). *Neuroscience*, 5th ed. Sinauer,
   Sunderland MA. Table 2.1, "Extracellular and intracellular ion
   concentrations" (squid neuron and mammalian neuron).
.. [6] Tiesinga E. et al. (2021). CODATA recommended values of the fundamental
   physical constants: 2018. *Rev. Mod. Phys.* 93, 025010.
   doi:10.1103/RevModPhys.93.025010
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "AVOGADRO_PER_MOL",
    "ELEMENTARY_CHARGE_C",
    "FARADAY_C_PER_MOL",
    "GAS_CONSTANT_J_PER_MOL_K",
    "ABSOLUTE_ZERO_CELSIUS",
    "IONS",
    "celsius_to_kelvin",
    "thermal_voltage_mV",
    "nernst_mV",
    "ghk_voltage_mV",
    "q10_factor",
    "IonConcentrations",
    "SQUID_AXON",
    "MAMMALIAN_NEURON",
    "CONCENTRATION_SETS",
]

# ---------------------------------------------------------------------------
# Physical constants (SI 2019: e, N_A and k are exact, so F and R are exact).
# ---------------------------------------------------------------------------

ELEMENTARY_CHARGE_C: float = 1.602176634e-19
"""Elementary charge *e* in coulomb (exact in the 2019 SI) [6]_."""

AVOGADRO_PER_MOL: float = 6.02214076e23
"""Avogadro constant *N_A* in 1/mol (exact in the 2019 SI) [6]_."""

_BOLTZMANN_J_PER_K: float = 1.380649e-23

FARADAY_C_PER_MOL: float = ELEMENTARY_CHARGE_C * AVOGADRO_PER_MOL
"""Faraday constant *F* = e N_A = 96485.33212... C/mol [6]_."""

GAS_CONSTANT_J_PER_MOL_K: float = _BOLTZMANN_J_PER_K * AVOGADRO_PER_MOL
"""Molar gas constant *R* = k N_A = 8.314462618... J/(mol K) [6]_."""

ABSOLUTE_ZERO_CELSIUS: float = -273.15
"""Absolute zero in degrees Celsius (0 K); the lowest temperature accepted."""

IONS: tuple[str, ...] = ("K", "Na", "Cl")
"""Ion names understood by this module, in the order K+, Na+, Cl-."""

_VALENCE: dict[str, int] = {"K": +1, "Na": +1, "Cl": -1}


# ---------------------------------------------------------------------------
# Validation helpers (private). Each error names the parameter, the offending
# value and what would have been allowed.
# ---------------------------------------------------------------------------


def _first_offender(values: np.ndarray, bad: np.ndarray) -> str:
    """Describe the first element of ``values`` flagged in ``bad``."""
    if values.ndim == 0:
        return repr(float(values))
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    return f"{float(values[index])!r} at index {index}"


def _as_float_array(value: ArrayLike, name: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be a real number or an array of real numbers; got {name}={value!r}"
        ) from exc
    return array


def _check_concentration_mM(value: ArrayLike, name: str) -> np.ndarray:
    array = _as_float_array(value, name)
    bad = ~np.isfinite(array) | (array <= 0.0)
    if np.any(bad):
        raise ValueError(
            f"{name} must be a positive, finite concentration in mM (0 < {name} < inf); "
            f"got {name}={_first_offender(array, bad)}"
        )
    return array


def _check_temperature_celsius(value: ArrayLike, name: str = "temperature_celsius") -> np.ndarray:
    array = _as_float_array(value, name)
    bad = ~np.isfinite(array) | (array < ABSOLUTE_ZERO_CELSIUS)
    if np.any(bad):
        raise ValueError(
            f"{name} must be finite and not below absolute zero "
            f"({ABSOLUTE_ZERO_CELSIUS} <= {name} < inf, degrees Celsius); "
            f"got {name}={_first_offender(array, bad)}"
        )
    return array


def _check_scalar_real(value: Any, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number; got {name}={value!r}")
    return float(value)


def _check_valence(z: Any) -> int:
    if isinstance(z, (bool, np.bool_)) or not isinstance(z, numbers.Real):
        raise ValueError(f"z must be a non-zero integer valence (e.g. +1, -1, +2); got z={z!r}")
    if not math.isfinite(float(z)) or float(z) != round(float(z)) or float(z) == 0.0:
        raise ValueError(f"z must be a non-zero integer valence (e.g. +1, -1, +2); got z={z!r}")
    return int(round(float(z)))


def _check_ion(ion: Any) -> str:
    if ion not in _VALENCE:
        raise ValueError(f"ion must be one of {IONS!r}; got ion={ion!r}")
    return ion


def _maybe_scalar(array: np.ndarray) -> float | np.ndarray:
    """Return a Python float for 0-d results, the array otherwise."""
    return float(array) if array.ndim == 0 else array


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


def celsius_to_kelvin(temperature_celsius: ArrayLike) -> float | np.ndarray:
    """Convert a temperature from degrees Celsius to kelvin.

    Parameters
    ----------
    temperature_celsius : float or array_like
        Temperature in degrees Celsius; finite and >= -273.15.

    Returns
    -------
    float or numpy.ndarray
        Temperature in kelvin, ``temperature_celsius + 273.15``. A float for
        scalar input, an array of the input's shape otherwise.

    Raises
    ------
    ValueError
        If any temperature is non-finite or below absolute zero.

    Examples
    --------
    >>> celsius_to_kelvin(6.3)
    279.45
    """
    temperature = _check_temperature_celsius(temperature_celsius)
    return _maybe_scalar(temperature - ABSOLUTE_ZERO_CELSIUS)


def thermal_voltage_mV(temperature_celsius: ArrayLike) -> float | np.ndarray:
    """Thermal voltage RT/F in millivolts.

    The potential change for an e-fold concentration ratio of a monovalent
    ion; about 25.26 mV at 20 degrees Celsius and 26.73 mV at 37 degrees.

    Parameters
    ----------
    temperature_celsius : float or array_like
        Temperature in degrees Celsius; finite and >= -273.15.

    Returns
    -------
    float or numpy.ndarray
        RT/F in mV.

    Raises
    ------
    ValueError
        If any temperature is non-finite or below absolute zero.
    """
    temperature_K = np.asarray(celsius_to_kelvin(temperature_celsius))
    return _maybe_scalar(1e3 * GAS_CONSTANT_J_PER_MOL_K * temperature_K / FARADAY_C_PER_MOL)


def nernst_mV(
    z: int,
    c_out_mM: ArrayLike,
    c_in_mM: ArrayLike,
    *,
    temperature_celsius: ArrayLike,
) -> float | np.ndarray:
    r"""Nernst equilibrium (reversal) potential of one ion species.

    .. math::

        E = \frac{R T}{z F} \ln\frac{[c]_\mathrm{out}}{[c]_\mathrm{in}}

    with the potential defined as inside minus outside [1]_.

    Parameters
    ----------
    z : int
        Valence of the ion (e.g. +1 for K+ and Na+, -1 for Cl-, +2 for Ca2+).
        Must be a non-zero integer.
    c_out_mM : float or array_like
        Extracellular concentration in mM; positive and finite.
    c_in_mM : float or array_like
        Intracellular concentration in mM; positive and finite.
    temperature_celsius : float or array_like
        Temperature in degrees Celsius; finite and >= -273.15.

    Returns
    -------
    float or numpy.ndarray
        Equilibrium potential in mV. A float when all inputs are scalars,
        otherwise an array of the broadcast shape.

    Raises
    ------
    ValueError
        If ``z`` is zero or not an integer, if a concentration is not
        positive and finite, or if the temperature is non-finite or below
        absolute zero. The message names the offending parameter.

    Examples
    --------
    Potassium in the squid giant axon at 6.3 degrees Celsius:

    >>> round(nernst_mV(1, 20.0, 400.0, temperature_celsius=6.3), 2)
    -72.14
    """
    valence = _check_valence(z)
    c_out = _check_concentration_mM(c_out_mM, "c_out_mM")
    c_in = _check_concentration_mM(c_in_mM, "c_in_mM")
    rt_over_f_mV = np.asarray(thermal_voltage_mV(temperature_celsius))
    return _maybe_scalar(rt_over_f_mV / valence * np.log(c_out / c_in))


def _check_permeabilities(permeabilities: Any) -> dict[str, float]:
    """Validate a relative-permeability mapping; missing ions count as 0."""
    if not isinstance(permeabilities, Mapping):
        raise ValueError(
            "permeabilities must be a mapping from ion name to relative permeability, "
            f"e.g. {{'K': 1.0, 'Na': 0.04}}; got permeabilities={permeabilities!r}"
        )
    unknown = [ion for ion in permeabilities if ion not in _VALENCE]
    if unknown:
        raise ValueError(
            f"permeabilities has unknown ion name(s) {unknown!r}; allowed ions are {IONS!r}"
        )
    checked: dict[str, float] = {ion: 0.0 for ion in IONS}
    for ion, value in permeabilities.items():
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise ValueError(
                f"permeabilities[{ion!r}] must be a real, non-negative, finite number; "
                f"got permeabilities[{ion!r}]={value!r}"
            )
        p = float(value)
        if not math.isfinite(p) or p < 0.0:
            raise ValueError(
                f"permeabilities[{ion!r}] must be non-negative and finite (0 <= P < inf); "
                f"got permeabilities[{ion!r}]={p!r}"
            )
        checked[ion] = p
    if not any(p > 0.0 for p in checked.values()):
        raise ValueError(
            "permeabilities must give at least one ion a positive permeability; "
            f"got permeabilities={dict(permeabilities)!r}"
        )
    return checked


def ghk_voltage_mV(
    *,
    permeabilities: Mapping[str, float],
    concentrations: IonConcentrations,
    temperature_celsius: float | None = None,
) -> float:
    r"""Goldman-Hodgkin-Katz voltage equation for K+, Na+ and Cl-.

    The zero-current potential of a membrane permeable to the monovalent ions
    K+, Na+ and Cl- under the constant-field assumption [2]_, [3]_:

    .. math::

        V = \frac{R T}{F} \ln
            \frac{P_K [K]_o + P_{Na} [Na]_o + P_{Cl} [Cl]_i}
                 {P_K [K]_i + P_{Na} [Na]_i + P_{Cl} [Cl]_o}

    The anion Cl- enters with inside and outside swapped. Only ratios of
    permeabilities matter, so any common scale may be used. With a single
    permeable ion the equation reduces to that ion's Nernst potential.

    Parameters
    ----------
    permeabilities : Mapping[str, float]
        Relative permeabilities keyed by ion name, from ``("K", "Na", "Cl")``,
        e.g. ``{"K": 1.0, "Na": 0.04, "Cl": 0.45}`` (Hodgkin & Katz's values
        for the resting squid axon [3]_). Ions left out count as impermeant.
        Each value must be non-negative and finite and at least one positive.
    concentrations : IonConcentrations
        Intra- and extracellular concentrations in mM.
    temperature_celsius : float, optional
        Temperature in degrees Celsius, finite and >= -273.15. Defaults to
        ``concentrations.temperature_celsius``.

    Returns
    -------
    float
        Zero-current (resting) potential in mV, inside minus outside.

    Raises
    ------
    ValueError
        If a permeability is negative or non-finite, all are zero, an ion
        name is unknown, ``concentrations`` is not an
        :class:`IonConcentrations`, or the temperature is invalid.
    """
    if not isinstance(concentrations, IonConcentrations):
        raise ValueError(
            "concentrations must be an IonConcentrations instance; "
            f"got concentrations={concentrations!r}"
        )
    p = _check_permeabilities(permeabilities)
    if temperature_celsius is None:
        temperature_celsius = concentrations.temperature_celsius
    _check_scalar_real(temperature_celsius, "temperature_celsius")
    rt_over_f_mV = float(thermal_voltage_mV(temperature_celsius))
    c = concentrations
    numerator = p["K"] * c.K_out_mM + p["Na"] * c.Na_out_mM + p["Cl"] * c.Cl_in_mM
    denominator = p["K"] * c.K_in_mM + p["Na"] * c.Na_in_mM + p["Cl"] * c.Cl_out_mM
    return rt_over_f_mV * math.log(numerator / denominator)


def q10_factor(
    q10: float,
    temperature_celsius: ArrayLike,
    reference_celsius: ArrayLike,
) -> float | np.ndarray:
    r"""Temperature scaling factor of a rate constant.

    .. math::

        \phi = Q_{10}^{(T - T_\mathrm{ref}) / 10\,^\circ\mathrm{C}}

    Hodgkin & Huxley scaled their squid-axon rate constants, measured at
    6.3 degrees Celsius, with :math:`Q_{10} = 3` [4]_.

    Parameters
    ----------
    q10 : float
        Factor by which the rate changes per 10 degrees Celsius; positive and
        finite.
    temperature_celsius : float or array_like
        Temperature at which the rate is wanted, degrees Celsius; finite and
        >= -273.15.
    reference_celsius : float or array_like
        Temperature at which the rate was measured, degrees Celsius; finite
        and >= -273.15.

    Returns
    -------
    float or numpy.ndarray
        Dimensionless multiplicative factor.

    Raises
    ------
    ValueError
        If ``q10`` is not positive and finite, or a temperature is invalid.

    Examples
    --------
    >>> round(q10_factor(3.0, 18.5, 6.3), 4)  # 3 ** 1.22
    3.8202
    """
    _check_scalar_real(q10, "q10")
    if not math.isfinite(float(q10)) or float(q10) <= 0.0:
        raise ValueError(f"q10 must be positive and finite (0 < q10 < inf); got q10={q10!r}")
    temperature = _check_temperature_celsius(temperature_celsius, "temperature_celsius")
    reference = _check_temperature_celsius(reference_celsius, "reference_celsius")
    return _maybe_scalar(np.power(float(q10), (temperature - reference) / 10.0))


# ---------------------------------------------------------------------------
# Concentration sets
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IonConcentrations:
    """Free intra- and extracellular K+, Na+ and Cl- concentrations.

    A named, immutable set of ionic concentrations together with the
    temperature at which they apply. All fields after ``name`` are
    keyword-only, so that inside and outside cannot be swapped by position.

    Parameters
    ----------
    name : str
        Short, non-empty label, e.g. ``"squid_axon"``.
    K_in_mM, K_out_mM : float
        Intra- and extracellular K+ concentration in mM; positive and finite.
    Na_in_mM, Na_out_mM : float
        Intra- and extracellular Na+ concentration in mM; positive and finite.
    Cl_in_mM, Cl_out_mM : float
        Intra- and extracellular Cl- concentration in mM; positive and finite.
    temperature_celsius : float
        Temperature in degrees Celsius; finite and >= -273.15.

    Raises
    ------
    ValueError
        At construction, naming the field, its value and the allowed range.

    See Also
    --------
    SQUID_AXON, MAMMALIAN_NEURON : documented sets.

    Examples
    --------
    >>> warm = SQUID_AXON.with_temperature(18.5)
    >>> round(warm.reversal_mV("K"), 2)
    -75.29
    """

    name: str
    _: KW_ONLY
    K_in_mM: float
    K_out_mM: float
    Na_in_mM: float
    Na_out_mM: float
    Cl_in_mM: float
    Cl_out_mM: float
    temperature_celsius: float

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"name must be a non-empty string; got name={self.name!r}")
        for field_name in (
            "K_in_mM", "K_out_mM", "Na_in_mM", "Na_out_mM", "Cl_in_mM", "Cl_out_mM"
        ):
            value = getattr(self, field_name)
            _check_scalar_real(value, field_name)
            checked = float(_check_concentration_mM(value, field_name))
            # Stored as float so that instances compare and hash predictably.
            object.__setattr__(self, field_name, checked)
        _check_scalar_real(self.temperature_celsius, "temperature_celsius")
        temperature = float(_check_temperature_celsius(self.temperature_celsius))
        object.__setattr__(self, "temperature_celsius", temperature)

    def concentrations_mM(self, ion: str) -> tuple[float, float]:
        """Return ``(inside_mM, outside_mM)`` for ``ion`` in ``("K", "Na", "Cl")``."""
        ion = _check_ion(ion)
        return getattr(self, f"{ion}_in_mM"), getattr(self, f"{ion}_out_mM")

    def reversal_mV(self, ion: str) -> float:
        """Nernst potential of one ion at this set's temperature.

        Parameters
        ----------
        ion : {"K", "Na", "Cl"}
            Ion name.

        Returns
        -------
        float
            Equilibrium potential in mV, inside minus outside.

        Raises
        ------
        ValueError
            If ``ion`` is not one of ``("K", "Na", "Cl")``.
        """
        inside_mM, outside_mM = self.concentrations_mM(ion)
        return nernst_mV(
            _VALENCE[ion], outside_mM, inside_mM, temperature_celsius=self.temperature_celsius
        )

    def reversal_potentials_mV(self) -> dict[str, float]:
        """Nernst potentials of K+, Na+ and Cl- in mV, keyed by ion name."""
        return {ion: self.reversal_mV(ion) for ion in IONS}

    def resting_potential_mV(self, permeabilities: Mapping[str, float]) -> float:
        """Goldman-Hodgkin-Katz potential at this set's temperature.

        Parameters
        ----------
        permeabilities : Mapping[str, float]
            Relative permeabilities, see :func:`ghk_voltage_mV`.

        Returns
        -------
        float
            Zero-current potential in mV.
        """
        return ghk_voltage_mV(permeabilities=permeabilities, concentrations=self)

    def with_temperature(self, temperature_celsius: float) -> IonConcentrations:
        """Return a copy with another temperature (concentrations unchanged)."""
        return dataclasses.replace(self, temperature_celsius=temperature_celsius)

    def replace(self, **changes: Any) -> IonConcentrations:
        """Return a validated copy with the given fields changed."""
        return dataclasses.replace(self, **changes)


SQUID_AXON = IonConcentrations(
    "squid_axon",
    K_in_mM=400.0,
    K_out_mM=20.0,
    Na_in_mM=50.0,
    Na_out_mM=440.0,
    Cl_in_mM=40.0,
    Cl_out_mM=560.0,
    temperature_celsius=6.3,
)
"""Squid (*Loligo*) giant axon in sea water at 6.3 degrees Celsius.

Textbook values for axoplasm and sea water as tabulated for the "squid
neuron" in Purves et al., *Neuroscience*, Table 2.1 [5]_: K+ 400 in / 20 out,
Na+ 50 in / 440 out, Cl- 40-150 in / 560 out (mM).
Of the tabulated Cl- range the lower end, 40 mM, is used; it puts E_Cl close
to the resting potential. 6.3 degrees Celsius is the reference temperature of
Hodgkin & Huxley's model [4]_.

Computed here (RT/F = 24.081 mV at 279.45 K):
E_K = -72.14 mV, E_Na = +52.37 mV, E_Cl = -63.55 mV; GHK with Hodgkin & Katz's
resting ratios P_K:P_Na:P_Cl = 1:0.04:0.45 [3]_ gives -59.36 mV.
"""

MAMMALIAN_NEURON = IonConcentrations(
    "mammalian_neuron",
    K_in_mM=140.0,
    K_out_mM=5.0,
    Na_in_mM=15.0,
    Na_out_mM=145.0,
    Cl_in_mM=10.0,
    Cl_out_mM=110.0,
    temperature_celsius=37.0,
)
"""Typical mammalian central neuron at 37 degrees Celsius.

Values from Purves et al., *Neuroscience*, Table 2.1 ("mammalian neuron")
[5]_: K+ 140 in / 5 out, Na+ 5-15 in / 145 out, Cl- 4-30 in / 110 out (mM).
Na_in = 15 mM (upper end of the range) gives E_Na near +60 mV;
Cl_in = 10 mM is chosen inside the tabulated range to give the E_Cl of about
-65 mV usual for mature neurons.

Computed here (RT/F = 26.727 mV at 310.15 K):
E_K = -89.06 mV, E_Na = +60.63 mV, E_Cl = -64.09 mV; GHK with
P_K:P_Na = 40:1 and no Cl- permeability gives -74.56 mV
(P_K:P_Na = 25:1 gives -68.59 mV).
"""

CONCENTRATION_SETS: dict[str, IonConcentrations] = {
    "squid_axon": SQUID_AXON,
    "mammalian_neuron": MAMMALIAN_NEURON,
}
"""The documented concentration sets, keyed by their ``name``."""
