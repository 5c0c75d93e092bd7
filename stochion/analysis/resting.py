"""Resting membrane potential: mean and fluctuation of V away from spikes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import _validate as v
from ._stats import batch_means
from .spikes import detect_spikes

__all__ = ["RestingPotential", "resting_potential", "compare_to_ghk"]


@dataclass(frozen=True)
class RestingPotential:
    """Resting potential estimate returned by :func:`resting_potential`.

    Attributes
    ----------
    mean_mV : float
        Pooled mean of all kept samples (mV).
    sd_mV : float
        Pooled standard deviation of the kept samples (mV): the size of the voltage fluctuations.
    sem_mV : float
        Standard error of ``mean_mV`` (mV), from batch means within each trial (which accounts for the
        autocorrelation of V), combined over independent trials with sample-count weights.
    n_samples : int
        Number of samples kept.
    n_trials : int
        Number of trials with kept samples.
    per_trial : pandas.DataFrame
        One row per trial: ``trial``, ``n_samples``, ``mean_mV``, ``sd_mV``, ``sem_mV``, ``n_batches``.
    """

    mean_mV: float
    sd_mV: float
    sem_mV: float
    n_samples: int
    n_trials: int
    per_trial: pd.DataFrame


def resting_potential(
    trace: pd.DataFrame,
    *,
    exclude_spikes_ms: float | tuple[float, float] = (5.0, 30.0),
    spikes: pd.DataFrame | None = None,
    discard_initial_ms: float = 0.0,
    level_mV: float = 0.0,
    rearm_mV: float = -20.0,
) -> RestingPotential:
    """Mean and standard deviation of the membrane potential away from spikes.

    Samples within ``exclude_spikes_ms`` of a spike (before, after its crossing time) and within
    ``discard_initial_ms`` of each trial's start (the approach to rest from the initial condition) are dropped.
    The standard error of the mean uses non-overlapping batch means (``floor(sqrt(n))`` batches per trial), so
    it accounts for the autocorrelation of V that a naive ``sd / sqrt(n)`` would ignore by an order of
    magnitude or more; see Flegal JM, Jones GL (2010) Ann Stat 38:1034-1070. doi:10.1214/09-AOS735.
    Trials are independent, so the pooled SE is ``sqrt(sum_i (n_i/N)**2 * se_i**2)``.

    Parameters
    ----------
    trace : pandas.DataFrame
        ``trial`` (optional), ``t_ms``, ``V_mV``; uniformly sampled, sorted by trial then time.
    exclude_spikes_ms : float or (float, float)
        Time excluded before and after each spike (ms); a single number excludes the same time on both sides.
        Default 5 ms before and 30 ms after (covering the after-hyperpolarisation of HH-type spikes).
    spikes : pandas.DataFrame, optional
        ``trial``, ``t_ms`` of the spikes; default :func:`~stochion.analysis.detect_spikes` on ``trace``.
    discard_initial_ms : float
        Time at the start of each trial to ignore (ms), default 0.
    level_mV, rearm_mV : float
        Spike detection levels when ``spikes`` is None.

    Returns
    -------
    RestingPotential
    """
    trace = v.validate_trace(trace, ["V_mV"], uniform=True)
    if np.ndim(exclude_spikes_ms) == 0:
        before = after = v.require_positive(exclude_spikes_ms, name="exclude_spikes_ms", allow_zero=True)
    else:
        if len(exclude_spikes_ms) != 2:
            raise ValueError(
                f"exclude_spikes_ms must be a number or a (before, after) pair, got {exclude_spikes_ms!r}"
            )
        before = v.require_positive(exclude_spikes_ms[0], name="exclude_spikes_ms[0]", allow_zero=True)
        after = v.require_positive(exclude_spikes_ms[1], name="exclude_spikes_ms[1]", allow_zero=True)
    discard = v.require_positive(discard_initial_ms, name="discard_initial_ms", allow_zero=True)
    if spikes is None:
        spikes = detect_spikes(trace, level_mV=level_mV, rearm_mV=rearm_mV)
    else:
        spikes = v.with_trial(v.require_frame(spikes, name="spikes")) if len(spikes) else spikes
        v.require_columns(spikes, ["trial", "t_ms"], name="spikes")
    spike_times = {tr: g["t_ms"].to_numpy(dtype=float) for tr, g in spikes.groupby("trial", sort=False)}

    rows = []
    for trial, g in trace.groupby("trial", sort=False):
        t = g["t_ms"].to_numpy(dtype=float)
        V = g["V_mV"].to_numpy(dtype=float)
        keep = t >= t[0] + discard
        ts = spike_times.get(trial)
        if ts is not None and len(ts):
            # a sample is excluded if any spike lies in [t - after, t + before]
            lo = np.searchsorted(ts, t - after, side="left")
            hi = np.searchsorted(ts, t + before, side="right")
            keep &= hi == lo
        x = V[keep]
        if len(x) == 0:
            continue
        mean, se, b = batch_means(x)
        rows.append(
            {
                "trial": trial,
                "n_samples": len(x),
                "mean_mV": mean,
                "sd_mV": float(x.std(ddof=1)) if len(x) > 1 else np.nan,
                "sem_mV": se,
                "n_batches": b,
                "_sum": float(x.sum()),
                "_sumsq": float(np.sum((x - mean) ** 2)),
            }
        )
    if not rows:
        raise ValueError(
            "trace has no samples left after excluding spikes and the initial transient; "
            f"reduce exclude_spikes_ms=({before}, {after}) or discard_initial_ms={discard}"
        )
    per = pd.DataFrame(rows)
    n = per["n_samples"].to_numpy(dtype=float)
    N = n.sum()
    mean = float(per["_sum"].sum() / N)
    # total sum of squares = within + between trials
    ss = float(per["_sumsq"].sum() + np.sum(n * (per["mean_mV"].to_numpy() - mean) ** 2))
    sd = float(np.sqrt(ss / (N - 1))) if N > 1 else np.nan
    sem = float(np.sqrt(np.sum((n / N) ** 2 * per["sem_mV"].to_numpy() ** 2)))
    per = per.drop(columns=["_sum", "_sumsq"])
    return RestingPotential(
        mean_mV=mean, sd_mV=sd, sem_mV=sem, n_samples=int(N), n_trials=len(per), per_trial=per
    )


def compare_to_ghk(resting: RestingPotential | float, *, E_ghk_mV: float, sem_mV: float | None = None) -> pd.DataFrame:
    """Put a measured resting potential beside a Goldman-Hodgkin-Katz (GHK) value.

    The GHK voltage equation gives the zero-current potential for given permeabilities and concentrations
    (Goldman DE (1943) J Gen Physiol 27:37-60. doi:10.1085/jgp.27.1.37; Hodgkin AL, Katz B (1949) J Physiol
    108:37-77. doi:10.1113/jphysiol.1949.sp004310). A conductance-based model need not rest exactly there; this
    only reports the difference and how many standard errors it is. Compute ``E_ghk_mV`` with the biophysics
    module and pass the number.

    Parameters
    ----------
    resting : RestingPotential or float
        Result of :func:`resting_potential`, or a measured mean (mV).
    E_ghk_mV : float
        The GHK potential (mV).
    sem_mV : float, optional
        Standard error of a plain-number ``resting`` (mV); taken from ``resting`` otherwise.

    Returns
    -------
    pandas.DataFrame
        One row: ``V_rest_mV``, ``sem_mV``, ``E_ghk_mV``, ``difference_mV`` (measured - GHK), ``z``
        (difference / SE; NaN without an SE).
    """
    if isinstance(resting, RestingPotential):
        mean, se = resting.mean_mV, resting.sem_mV if sem_mV is None else float(sem_mV)
    else:
        try:
            mean = float(resting)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"resting must be a RestingPotential or a number (mV), got {resting!r}") from exc
        se = np.nan if sem_mV is None else float(sem_mV)
    E = float(E_ghk_mV)
    if not np.isfinite(E):
        raise ValueError(f"E_ghk_mV must be finite, got {E_ghk_mV!r}")
    diff = mean - E
    z = diff / se if np.isfinite(se) and se > 0 else np.nan
    return pd.DataFrame([{"V_rest_mV": mean, "sem_mV": se, "E_ghk_mV": E, "difference_mV": diff, "z": z}])
