"""Analysis of stochion results: spikes, thresholds, refractoriness, spike trains and channel noise.

Everything here works on the tidy pandas tables of a ``Result`` (``trace``, ``spikes``, ``channel_events``,
sweep summaries) or on plain numpy arrays, and never calls the simulator. Column names carry units
(``t_ms``, ``V_mV``, ``amplitude_uA_cm2``); malformed tables raise :class:`ValueError` naming the column.

Modules: :mod:`.spikes` (detection, AP shape), :mod:`.resting` (resting potential), :mod:`.threshold`
(firing probability, probit threshold and relative spread, strength-duration), :mod:`.all_or_none`,
:mod:`.refractory` (paired pulses), :mod:`.trains` (rates, ISIs, Fano factor, latency), :mod:`.noise`
(binomial open counts, dwell times, spectra and Lorentzian predictions).
"""

from .all_or_none import AllOrNone, ashman_d, assess_all_or_none, bimodality_coefficient
from .noise import (
    BinomialComparison,
    compare_open_counts_to_binomial,
    dwell_times,
    fit_dwell_times,
    lorentzian_components,
    lorentzian_count_psd,
    lorentzian_psd,
    psd,
)
from .refractory import (
    RefractoryPeriods,
    refractory_periods,
    second_spike_probability,
    threshold_ratio_vs_interval,
)
from .resting import RestingPotential, compare_to_ghk, resting_potential
from .spikes import detect_spikes, spike_features
from .threshold import (
    StrengthDurationFit,
    ThresholdFit,
    firing_probability,
    fit_threshold,
    fit_thresholds,
    strength_duration,
    threshold_voltage_distribution,
)
from .trains import (
    fano_factor,
    first_spike_latency,
    firing_rate,
    inter_spike_intervals,
    isi_serial_correlation,
    isi_statistics,
    spontaneous_rate,
)

__all__ = [
    # spikes and AP shape
    "detect_spikes",
    "spike_features",
    # resting potential
    "RestingPotential",
    "resting_potential",
    "compare_to_ghk",
    # threshold
    "ThresholdFit",
    "StrengthDurationFit",
    "firing_probability",
    "fit_threshold",
    "fit_thresholds",
    "strength_duration",
    "threshold_voltage_distribution",
    # all-or-none
    "AllOrNone",
    "assess_all_or_none",
    "bimodality_coefficient",
    "ashman_d",
    # refractoriness
    "RefractoryPeriods",
    "second_spike_probability",
    "threshold_ratio_vs_interval",
    "refractory_periods",
    # spike trains
    "firing_rate",
    "spontaneous_rate",
    "inter_spike_intervals",
    "isi_statistics",
    "isi_serial_correlation",
    "fano_factor",
    "first_spike_latency",
    # channel noise
    "BinomialComparison",
    "compare_open_counts_to_binomial",
    "dwell_times",
    "fit_dwell_times",
    "psd",
    "lorentzian_psd",
    "lorentzian_count_psd",
    "lorentzian_components",
]


def _check_all() -> None:
    # like simpy: the curated list and the imported names must agree
    names = {k for k, v in globals().items() if not k.startswith("_") and callable(v)}
    missing = set(__all__) - names
    extra = names - set(__all__)
    assert not missing and not extra, (missing, extra)


_check_all()
