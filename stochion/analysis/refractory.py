"""Refractoriness from paired-pulse sweeps: recovery of the second-spike threshold with the pulse interval.

Input is a per-trial paired-pulse summary: the interval between the two pulses (``interval_ms``), the second
pulse's amplitude (in stimulus units, e.g. ``amplitude_uA_cm2``, or already as a ratio to the single-pulse
threshold, e.g. ``amplitude_ratio``) and whether the second pulse fired (a bool ``fired_second`` column, or
``n_spikes >= 2``, which assumes the conditioning pulse always fired).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import _validate as v
from .threshold import firing_probability, fit_thresholds, unit_of

__all__ = [
    "RefractoryPeriods",
    "second_spike_probability",
    "threshold_ratio_vs_interval",
    "refractory_periods",
]


def _fired_second(summary: pd.DataFrame, fired_second: str | None) -> np.ndarray:
    if fired_second is None:
        if "fired_second" in summary.columns:
            fired_second = "fired_second"
        elif "n_spikes" in summary.columns:
            v.require_finite(summary, ["n_spikes"], name="summary")
            return summary["n_spikes"].to_numpy(dtype=float) >= 2
        else:
            raise ValueError(
                "summary needs a 'fired_second' (bool) or an 'n_spikes' column to tell whether the second pulse "
                f"fired; it has: {', '.join(map(str, summary.columns))}"
            )
    return v.fired_flags(summary, fired_second, name="summary")


def second_spike_probability(
    summary: pd.DataFrame,
    *,
    interval: str = "interval_ms",
    by: str | None = None,
    fired_second: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Probability that the second pulse fires, per interval (and per amplitude if ``by`` is given).

    Proportions with Wilson score intervals (Wilson EB (1927) J Am Stat Assoc 22:209-212.
    doi:10.1080/01621459.1927.10502953).

    Parameters
    ----------
    summary : pandas.DataFrame
        One row per trial: ``interval`` (ms), optionally ``by``, and ``fired_second`` (bool) or ``n_spikes``.
    interval : str
        Interval column (ms), default ``"interval_ms"``.
    by : str, optional
        Second-pulse amplitude column to group by as well.
    fired_second : str, optional
        Bool column; default ``"fired_second"`` if present, else ``n_spikes >= 2``.
    confidence : float
        Level of the Wilson intervals.

    Returns
    -------
    pandas.DataFrame
        As :func:`~stochion.analysis.firing_probability`: ``interval`` (, ``by``), ``n_trials``, ``n_fired``,
        ``p_fired``, ``p_ci_low``, ``p_ci_high``.
    """
    summary = v.require_frame(summary, name="summary")
    flags = _fired_second(summary, fired_second)
    groups = [interval] + ([by] if by else [])
    return firing_probability(summary.assign(_fired2=flags), by=groups, fired="_fired2", confidence=confidence)


def threshold_ratio_vs_interval(
    summary: pd.DataFrame,
    *,
    interval: str = "interval_ms",
    by: str = "amplitude_uA_cm2",
    single_pulse_threshold: float | None = None,
    fired_second: str | None = None,
    ci: str = "profile",
    confidence: float = 0.95,
    seed: int | None = None,
) -> pd.DataFrame:
    """Second-pulse threshold at each interval, as a ratio to the single-pulse threshold.

    At each interval the second pulse's firing is fitted with :func:`~stochion.analysis.fit_threshold` (probit
    maximum likelihood); the threshold and its interval are divided by ``single_pulse_threshold`` (treated as
    exact: put its own uncertainty aside or propagate it yourself). The recovery of threshold after a spike is
    the relative refractory period of Hodgkin AL, Huxley AF (1952) J Physiol 117:500-544.
    doi:10.1113/jphysiol.1952.sp004764.

    Parameters
    ----------
    summary : pandas.DataFrame
        Paired-pulse summary, one row per trial (see module docstring).
    interval : str
        Interval column (ms).
    by : str
        Second-pulse amplitude column. If its unit part is ``"ratio"`` (e.g. ``"amplitude_ratio"``) amplitudes
        are already ratios and ``single_pulse_threshold`` defaults to 1.
    single_pulse_threshold : float, optional
        Threshold of a single pulse, in the unit of ``by`` (e.g. from :func:`fit_threshold` on a single-pulse
        sweep). Required unless ``by`` is a ratio.
    fired_second, ci, confidence, seed
        See :func:`second_spike_probability` and :func:`~stochion.analysis.fit_threshold`.

    Returns
    -------
    pandas.DataFrame
        One row per interval, sorted: the columns of :func:`~stochion.analysis.fit_thresholds` plus
        ``threshold_ratio``, ``threshold_ratio_ci_low``, ``threshold_ratio_ci_high``, ``min_tested_ratio`` and
        ``max_tested_ratio``. Where the second pulse never fired, ``threshold_ratio`` is ``inf`` and its lower
        limit the highest tested ratio; where it always fired, ``threshold_ratio`` is NaN, its upper limit the
        lowest tested ratio and its lower limit 0.
    """
    summary = v.require_frame(summary, name="summary")
    u = unit_of(by)
    if single_pulse_threshold is None:
        if u != "ratio":
            raise ValueError(
                f"single_pulse_threshold is required when by={by!r} is not a ratio column (unit 'ratio')"
            )
        theta1 = 1.0
    else:
        theta1 = v.require_positive(single_pulse_threshold, name="single_pulse_threshold")
    flags = _fired_second(summary, fired_second)
    table = fit_thresholds(
        summary.assign(_fired2=flags), group_by=interval, by=by, fired="_fired2", ci=ci,
        confidence=confidence, seed=seed,
    ).sort_values(interval, kind="stable").reset_index(drop=True)
    status = table["status"].to_numpy()
    ratio = table[f"threshold_{u}"].to_numpy(dtype=float) / theta1
    lo = table[f"threshold_ci_low_{u}"].to_numpy(dtype=float) / theta1
    hi = table[f"threshold_ci_high_{u}"].to_numpy(dtype=float) / theta1
    never, always = status == "never_fired", status == "always_fired"
    ratio = np.where(never, np.inf, ratio)
    lo = np.where(always, 0.0, lo)
    table["threshold_ratio"] = ratio
    table["threshold_ratio_ci_low"] = lo
    table["threshold_ratio_ci_high"] = hi
    table["min_tested_ratio"] = table[f"min_tested_{u}"] / theta1
    table["max_tested_ratio"] = table[f"max_tested_{u}"] / theta1
    table.attrs["single_pulse_threshold"] = theta1
    return table


@dataclass(frozen=True)
class RefractoryPeriods:
    """Absolute and relative refractory periods (see :func:`refractory_periods` for the rule).

    Attributes
    ----------
    absolute_ms : float
        Interval at which the second-pulse threshold has fallen to ``absolute_ratio`` x the single-pulse
        threshold: below it no second spike occurs up to that multiple (ms).
    absolute_ci_ms : (float, float)
        Its interval from the threshold-ratio confidence band (ms).
    relative_ms : float
        Largest interval at which the threshold is still elevated by more than ``relative_elevation`` (ms).
    relative_ci_ms : (float, float)
    absolute_ratio : float
        The stated multiple of the single-pulse threshold.
    relative_elevation : float
        The stated elevation (0.05 = 5 %).
    table : pandas.DataFrame
        Output of :func:`threshold_ratio_vs_interval` used.
    notes : tuple of str
        Which estimates lie outside the tested intervals (reported as NaN).
    """

    absolute_ms: float
    absolute_ci_ms: tuple[float, float]
    relative_ms: float
    relative_ci_ms: tuple[float, float]
    absolute_ratio: float
    relative_elevation: float
    confidence: float
    table: pd.DataFrame
    notes: tuple[str, ...]


def _last_crossing(delta: np.ndarray, ratio: np.ndarray, level: float) -> tuple[float, str]:
    """Largest interval where the threshold ratio is still >= ``level``, linearly interpolated in 1/ratio.

    Returns (value, note); note is "" or says the crossing lies outside the tested intervals.
    """
    with np.errstate(divide="ignore"):
        g = np.where(ratio > 0, 1.0 / np.maximum(ratio, 1e-300), np.inf)  # excitability; inf ratio -> 0
    g_level = 1.0 / level
    elevated = np.flatnonzero(g <= g_level)
    if len(elevated) == 0:
        return float("nan"), "below_first_interval"
    i = int(elevated[-1])
    if i == len(delta) - 1:
        return float("nan"), "beyond_last_interval"
    g0, g1 = g[i], g[i + 1]
    if not np.isfinite(g1) or g1 == g0:
        return float(delta[i]), ""
    return float(delta[i] + (g_level - g0) / (g1 - g0) * (delta[i + 1] - delta[i])), ""


def refractory_periods(
    data: pd.DataFrame,
    *,
    interval: str = "interval_ms",
    by: str = "amplitude_uA_cm2",
    single_pulse_threshold: float | None = None,
    fired_second: str | None = None,
    absolute_ratio: float | None = None,
    relative_elevation: float = 0.05,
    ci: str = "profile",
    confidence: float = 0.95,
    seed: int | None = None,
) -> RefractoryPeriods:
    """Absolute and relative refractory periods with uncertainty, from a paired-pulse sweep.

    The two periods of Hodgkin AL, Huxley AF (1952) J Physiol 117:500-544 (doi:10.1113/jphysiol.1952.sp004764):
    an absolute one in which no second spike can be evoked (here: up to a stated multiple of threshold) and a
    relative one in which the threshold is still raised.

    Rule (documented because refractory periods have many definitions):

    1. The second-pulse threshold ratio ``R(interval)`` and its confidence limits ``[R_lo, R_hi]`` are fitted at
       each tested interval (:func:`threshold_ratio_vs_interval`). Where no second spike occurred at any
       tested amplitude, ``R`` is taken as its lower bound ``R_lo``, the highest tested ratio (``R_hi = inf``),
       so that the absolute refractory period is at least the largest interval without any second spike up to
       that multiple; where every second pulse fired, ``R`` is taken as its upper bound, the lowest tested
       ratio, and ``R_lo = 0``.
    2. A period at level ``L`` is the largest interval at which ``R >= L``: find the last tested interval with
       ``R >= L`` and interpolate linearly in the excitability ``1/R`` (finite even where ``R`` is infinite)
       to the next tested interval, where ``1/R`` crosses ``1/L``.
    3. The **absolute refractory period** uses ``L = absolute_ratio`` (default: the smallest, over
       intervals, of the highest tested ratio, so that "no second spike up to L x threshold" was tested at
       every interval). The **relative refractory period** uses ``L = 1 + relative_elevation`` (default 1.05:
       threshold elevated by more than 5 %).
    4. Uncertainty: the same rule applied to the lower band ``R_lo`` and the upper band ``R_hi`` gives the
       interval's low and high limits. The bands are pointwise, so the limits are approximate, and they cannot
       be finer than the spacing of tested intervals where the curve is censored.

    A period outside the tested intervals is NaN, with a note; an open-ended confidence limit is 0 or inf.

    Parameters
    ----------
    data : pandas.DataFrame
        Per-trial paired-pulse summary, or the output of :func:`threshold_ratio_vs_interval` (recognised by its
        ``threshold_ratio`` column).
    interval, by, single_pulse_threshold, fired_second, ci, confidence, seed
        See :func:`threshold_ratio_vs_interval`.
    absolute_ratio : float, optional
        Multiple of the single-pulse threshold defining the absolute refractory period.
    relative_elevation : float
        Fractional threshold elevation defining the relative refractory period, default 0.05.

    Returns
    -------
    RefractoryPeriods
    """
    data = v.require_frame(data, name="data")
    if "threshold_ratio" in data.columns:
        table = data.sort_values(interval, kind="stable").reset_index(drop=True)
        v.require_columns(
            table, [interval, "threshold_ratio", "threshold_ratio_ci_low", "threshold_ratio_ci_high",
                    "max_tested_ratio", "min_tested_ratio"], name="data",
        )
    else:
        table = threshold_ratio_vs_interval(
            data, interval=interval, by=by, single_pulse_threshold=single_pulse_threshold,
            fired_second=fired_second, ci=ci, confidence=confidence, seed=seed,
        )
    elevation = v.require_positive(relative_elevation, name="relative_elevation")
    if absolute_ratio is None:
        L_abs = float(table["max_tested_ratio"].min())
    else:
        L_abs = v.require_positive(absolute_ratio, name="absolute_ratio")
    L_rel = 1.0 + elevation
    if L_abs <= L_rel:
        raise ValueError(
            f"absolute_ratio={L_abs} must exceed 1 + relative_elevation={L_rel}"
        )
    delta = table[interval].to_numpy(dtype=float)
    if len(np.unique(delta)) != len(delta):
        raise ValueError(f"data column {interval!r} has repeated intervals; one row per interval is required")
    r = table["threshold_ratio"].to_numpy(dtype=float)
    r_lo = table["threshold_ratio_ci_low"].to_numpy(dtype=float)
    r_hi = table["threshold_ratio_ci_high"].to_numpy(dtype=float)
    r = np.where(np.isnan(r), r_hi, r)  # always fired: its upper bound
    r = np.where(np.isinf(r), r_lo, r)  # never fired: its lower bound (the highest tested ratio)
    notes = []
    periods = {}
    for name, level in (("absolute", L_abs), ("relative", L_rel)):
        est, note = _last_crossing(delta, r, level)
        lo, note_lo = _last_crossing(delta, r_lo, level)
        hi, note_hi = _last_crossing(delta, r_hi, level)
        # an open-ended limit: the period may be as short as 0 or longer than every tested interval
        lo = 0.0 if note_lo == "below_first_interval" else lo
        hi = np.inf if note_hi == "beyond_last_interval" else hi
        if note:
            notes.append(f"{name}: {note}")
        periods[name] = (est, (lo, hi))
    return RefractoryPeriods(
        absolute_ms=periods["absolute"][0],
        absolute_ci_ms=periods["absolute"][1],
        relative_ms=periods["relative"][0],
        relative_ci_ms=periods["relative"][1],
        absolute_ratio=L_abs,
        relative_elevation=elevation,
        confidence=confidence,
        table=table,
        notes=tuple(notes),
    )
