"""Firing threshold: firing probability, probit fits, relative spread, strength-duration curves.

A stochastic membrane has no sharp threshold: at a given stimulus it fires with some probability. Following
Pecher (1939) and Verveen (1961), the probability of firing rises with stimulus strength like a cumulative
Gaussian; its 50 % point is the threshold and its width relative to the threshold, the *relative spread*
``sigma / threshold``, measures the fluctuation in excitability (Verveen AA (1961) Fluctuation in excitability.
Thesis, University of Amsterdam; Verveen AA, Derksen HE (1968) Fluctuation phenomena in nerve membrane.
Proc IEEE 56:906-916. doi:10.1109/PROC.1968.6443).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from . import _probit
from . import _validate as v
from ._stats import wilson_interval

__all__ = [
    "ThresholdFit",
    "StrengthDurationFit",
    "firing_probability",
    "fit_threshold",
    "fit_thresholds",
    "strength_duration",
    "threshold_voltage_distribution",
    "unit_of",
]


def unit_of(column: str) -> str:
    """Unit part of a column name: the text after the first underscore (``"amplitude_uA_cm2"`` -> ``"uA_cm2"``).

    A name without an underscore is returned whole. Used to name derived columns (``threshold_uA_cm2``).
    """
    return column.split("_", 1)[1] if "_" in column else column


def _as_list(by: str | Sequence[str]) -> list[str]:
    return [by] if isinstance(by, str) else list(by)


def firing_probability(
    summary: pd.DataFrame,
    *,
    by: str | Sequence[str] = "amplitude_uA_cm2",
    fired: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Fraction of trials that fired at each stimulus value, with Wilson score intervals.

    Parameters
    ----------
    summary : pandas.DataFrame
        One row per trial: the ``by`` column(s) and either a bool ``fired`` column or ``n_spikes``
        (fired = ``n_spikes > 0``).
    by : str or sequence of str
        Stimulus column(s) to group by, default ``"amplitude_uA_cm2"``.
    fired : str, optional
        Name of a bool (or 0/1) column telling whether a trial fired; default ``"fired"`` if present, else
        ``n_spikes > 0``.
    confidence : float
        Confidence level of the interval, default 0.95.

    Returns
    -------
    pandas.DataFrame
        One row per stimulus value: the ``by`` column(s), ``n_trials``, ``n_fired``, ``p_fired``,
        ``p_ci_low``, ``p_ci_high``. The Wilson interval keeps sensible coverage at p near 0 or 1, unlike the
        Wald interval (Wilson EB (1927) J Am Stat Assoc 22:209-212. doi:10.1080/01621459.1927.10502953).
    """
    summary = v.require_frame(summary, name="summary")
    by = _as_list(by)
    v.require_columns(summary, by, name="summary")
    v.require_no_missing(summary, by, name="summary")
    confidence = v.require_probability(confidence, name="confidence")
    flags = v.fired_flags(summary, fired, name="summary")
    table = summary[by].assign(_fired=flags.astype(int))
    out = table.groupby(by, sort=True, observed=True)["_fired"].agg(n_trials="size", n_fired="sum").reset_index()
    out["p_fired"] = out["n_fired"] / out["n_trials"]
    lo, hi = wilson_interval(out["n_fired"].to_numpy(), out["n_trials"].to_numpy(), confidence)
    out["p_ci_low"], out["p_ci_high"] = lo, hi
    return out


@dataclass(frozen=True)
class ThresholdFit:
    """Maximum-likelihood probit fit ``P(fire | x) = Phi((x - threshold) / sigma)``.

    Attributes
    ----------
    threshold : float
        Stimulus at which the firing probability is 50 %, in the unit of ``by``.
    sigma : float
        Standard deviation of the cumulative Gaussian (same unit): the width of the transition.
    relative_spread : float
        ``sigma / threshold`` (dimensionless; NaN when threshold <= 0), Verveen's relative spread.
    threshold_ci, sigma_ci, relative_spread_ci : (float, float)
        Confidence intervals at level ``confidence`` (``ci_method``: ``"profile"`` or ``"bootstrap"``). A profile
        limit that the likelihood never reaches is reported as 0 or infinity.
    confidence : float
    ci_method : str
    by : str
        Stimulus column fitted; ``unit`` is its unit part.
    unit : str
    n_trials, n_fired, n_levels : int
        Trials, trials that fired, distinct stimulus values.
    log_likelihood : float
        Maximised Bernoulli log-likelihood.
    separated : bool
        True when every failure lies below every success (complete separation). The MLE of sigma is then 0
        (reported as a tiny floor value), the threshold is anywhere in the gap between the highest failure and
        the lowest success, and its interval is at least that gap. ``sigma`` is then reported as 0 and
        ``threshold`` as the middle of the gap. Test more stimulus values in the gap.
    n_bootstrap_used : int
        Bootstrap replicates with both outcomes (0 for profile intervals).
    """

    threshold: float
    threshold_ci: tuple[float, float]
    sigma: float
    sigma_ci: tuple[float, float]
    relative_spread: float
    relative_spread_ci: tuple[float, float]
    confidence: float
    ci_method: str
    by: str
    unit: str
    n_trials: int
    n_fired: int
    n_levels: int
    log_likelihood: float
    separated: bool
    n_bootstrap_used: int = 0

    def probability(self, x: np.ndarray | float) -> np.ndarray:
        """Fitted firing probability at stimulus ``x`` (unit of ``by``); a step when ``sigma == 0``."""
        x = np.asarray(x, dtype=float)
        if self.sigma == 0:
            return np.where(x > self.threshold, 1.0, np.where(x < self.threshold, 0.0, 0.5))
        return special.ndtr((x - self.threshold) / self.sigma)

    def to_dict(self) -> dict[str, float]:
        """Flat dict with unit-suffixed keys (``threshold_<unit>``, ``threshold_ci_low_<unit>``, ...)."""
        u = self.unit
        return {
            f"threshold_{u}": self.threshold,
            f"threshold_ci_low_{u}": self.threshold_ci[0],
            f"threshold_ci_high_{u}": self.threshold_ci[1],
            f"sigma_{u}": self.sigma,
            f"sigma_ci_low_{u}": self.sigma_ci[0],
            f"sigma_ci_high_{u}": self.sigma_ci[1],
            "relative_spread": self.relative_spread,
            "relative_spread_ci_low": self.relative_spread_ci[0],
            "relative_spread_ci_high": self.relative_spread_ci[1],
            "n_trials": self.n_trials,
            "n_fired": self.n_fired,
            "separated": self.separated,
        }


def _probit_data(data: pd.DataFrame, by: str, fired: str | None, name: str) -> _probit.ProbitData:
    data = v.require_frame(data, name=name)
    v.require_columns(data, [by], name=name)
    v.require_finite(data, [by], name=name)
    if "n_trials" in data.columns and "n_fired" in data.columns:
        v.require_finite(data, ["n_trials", "n_fired"], name=name)
        n = data["n_trials"].to_numpy(dtype=float)
        k = data["n_fired"].to_numpy(dtype=float)
        if np.any(n <= 0) or np.any(k < 0) or np.any(k > n) or np.any(k != np.round(k)):
            raise ValueError(f"{name} needs integer 0 <= n_fired <= n_trials and n_trials > 0 in every row")
        x = data[by].to_numpy(dtype=float)
        xs, inv = np.unique(x, return_inverse=True)
        return _probit.ProbitData(xs, np.bincount(inv, weights=n), np.bincount(inv, weights=k))
    flags = v.fired_flags(data, fired, name=name)
    return _probit.group(data[by].to_numpy(dtype=float), flags)


def fit_threshold(
    data: pd.DataFrame,
    *,
    by: str = "amplitude_uA_cm2",
    fired: str | None = None,
    ci: str = "profile",
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int | np.random.Generator | None = None,
) -> ThresholdFit:
    """Fit a cumulative Gaussian to firing/not-firing data by maximum likelihood (probit analysis).

    Model: each trial at stimulus ``x`` fires independently with probability ``Phi((x - threshold) / sigma)``.
    The Bernoulli (binomial when grouped) log-likelihood is maximised over ``(threshold, log sigma)``; the
    relative spread is ``sigma / threshold`` (Verveen 1961; Verveen AA, Derksen HE (1968) Proc IEEE
    56:906-916. doi:10.1109/PROC.1968.6443). Fitting the Bernoulli data directly, not a line through probit-
    transformed proportions, uses every trial and handles p = 0 or 1 (Finney DJ (1971) Probit Analysis, 3rd ed.,
    Cambridge University Press).

    Confidence intervals:

    - ``ci="profile"`` (default): the set of values whose profile log-likelihood lies within
      ``chi2_1(confidence) / 2`` of the maximum (Venzon DJ, Moolgavkar SH (1988) A method for computing
      profile-likelihood-based confidence intervals. Appl Stat 37:87-94. doi:10.2307/2347496). Deterministic;
      for the relative spread the profile is over ``(threshold, sigma = r * threshold)``.
    - ``ci="bootstrap"``: parametric bootstrap, ``n_bootstrap`` data sets simulated from the fit at the same
      stimulus values and trial counts, refitted, percentile interval. Reproducible through ``seed``.

    Parameters
    ----------
    data : pandas.DataFrame
        Either one row per trial (``by`` and ``fired``/``n_spikes``, as for :func:`firing_probability`) or a
        grouped table with ``by``, ``n_trials`` and ``n_fired`` (e.g. the output of
        :func:`firing_probability`).
    by : str
        Stimulus column, default ``"amplitude_uA_cm2"``.
    fired : str, optional
        Bool column telling whether a trial fired (per-trial data only).
    ci : {"profile", "bootstrap"}
    confidence : float
        Confidence level, default 0.95.
    n_bootstrap : int
        Replicates for ``ci="bootstrap"``, default 1000.
    seed : int or numpy.random.Generator, optional
        Seed of the bootstrap.

    Returns
    -------
    ThresholdFit

    Raises
    ------
    ValueError
        Missing columns, fewer than two stimulus values, or no trial fired / every trial fired (then the
        threshold is only bounded: below the lowest or above the highest stimulus).
    """
    v.require_choice(ci, ("profile", "bootstrap"), name="ci")
    confidence = v.require_probability(confidence, name="confidence")
    data_p = _probit_data(data, by, fired, "data")
    if len(data_p.x) < 2:
        raise ValueError(f"data column {by!r} has one distinct value ({data_p.x[0]}); at least 2 are needed")
    n_trials, n_fired = int(data_p.n.sum()), int(data_p.k.sum())
    if n_fired == 0 or n_fired == n_trials:
        what = "no trial fired" if n_fired == 0 else "every trial fired"
        raise ValueError(
            f"{what} ({n_fired} of {n_trials}) over {by} from {data_p.x.min()} to {data_p.x.max()}; "
            "the threshold lies outside the tested range and cannot be fitted"
        )
    theta, sigma, nll_min = _probit.mle(data_p)
    if data_p.separated:
        # the likelihood is maximal (= 1) as sigma -> 0 with the threshold anywhere in the gap
        gap = (data_p.x[data_p.k < data_p.n].max(), data_p.x[data_p.k > 0].min())
        theta, sigma, nll_min = float(0.5 * (gap[0] + gap[1])), 0.0, 0.0
    r = sigma / theta if theta > 0 else np.nan
    n_used = 0
    if ci == "profile":
        th_ci, sg_ci, r_ci = _probit.profile_intervals(
            data_p, theta, max(sigma, _probit.sigma_floor(data_p)), nll_min, confidence
        )
    else:
        n_bootstrap = int(n_bootstrap)
        if n_bootstrap < 10:
            raise ValueError(f"n_bootstrap must be >= 10, got {n_bootstrap}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        th_ci, sg_ci, r_ci, n_used = _probit.bootstrap_intervals(
            data_p, theta, max(sigma, _probit.sigma_floor(data_p)), confidence, n_bootstrap, rng
        )
    return ThresholdFit(
        threshold=theta,
        threshold_ci=(float(th_ci[0]), float(th_ci[1])),
        sigma=sigma,
        sigma_ci=(float(sg_ci[0]), float(sg_ci[1])),
        relative_spread=float(r),
        relative_spread_ci=(float(r_ci[0]), float(r_ci[1])),
        confidence=confidence,
        ci_method=ci,
        by=by,
        unit=unit_of(by),
        n_trials=n_trials,
        n_fired=n_fired,
        n_levels=len(data_p.x),
        log_likelihood=-nll_min,
        separated=data_p.separated,
        n_bootstrap_used=n_used,
    )


def fit_thresholds(
    summary: pd.DataFrame,
    *,
    group_by: str | Sequence[str] = "duration_ms",
    by: str = "amplitude_uA_cm2",
    fired: str | None = None,
    ci: str = "profile",
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int | None = None,
) -> pd.DataFrame:
    """:func:`fit_threshold` for each group of a sweep (each pulse duration, each paired-pulse interval, ...).

    Each group gets its own probit maximum-likelihood fit (Verveen AA, Derksen HE (1968) Proc IEEE 56:906-916.
    doi:10.1109/PROC.1968.6443); groups where the threshold lies outside the tested range are reported with a
    one-sided bound instead of a fit.

    Parameters
    ----------
    summary : pandas.DataFrame
        One row per trial with ``group_by``, ``by`` and ``fired``/``n_spikes`` columns.
    group_by : str or sequence of str
        Column(s) defining the groups, default ``"duration_ms"``.
    by, fired, ci, confidence, n_bootstrap : see :func:`fit_threshold`.
    seed : int, optional
        Seed of the bootstrap; group *i* uses ``SeedSequence(seed).spawn`` child *i*.

    Returns
    -------
    pandas.DataFrame
        One row per group: the ``group_by`` columns, the keys of :meth:`ThresholdFit.to_dict`
        (``threshold_<unit>``, its CI, ``sigma_<unit>``, ``relative_spread``, ...), ``n_levels``,
        ``max_tested_<unit>``, ``min_tested_<unit>`` and ``status``: ``"ok"``, ``"separated"`` (see
        :class:`ThresholdFit`), ``"never_fired"`` (threshold above the highest tested value, which is reported
        as ``threshold_ci_low_<unit>``) or ``"always_fired"`` (threshold below the lowest tested value, reported as
        ``threshold_ci_high_<unit>``).
    """
    summary = v.require_frame(summary, name="summary")
    group_by = _as_list(group_by)
    v.require_columns(summary, [*group_by, by], name="summary")
    v.require_no_missing(summary, group_by, name="summary")
    v.require_finite(summary, [by], name="summary")
    flags = v.fired_flags(summary, fired, name="summary")
    table = summary[[*group_by, by]].assign(_fired=flags)
    u = unit_of(by)
    groups = list(table.groupby(group_by, sort=True, observed=True))
    seeds = np.random.SeedSequence(seed).spawn(len(groups))
    rows = []
    for (key, g), ss in zip(groups, seeds):
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, object] = dict(zip(group_by, key))
        x = g[by].to_numpy(dtype=float)
        f = g["_fired"].to_numpy()
        empty = ThresholdFit(np.nan, (np.nan, np.nan), np.nan, (np.nan, np.nan), np.nan, (np.nan, np.nan),
                             confidence, ci, by, u, len(g), int(f.sum()), len(np.unique(x)), np.nan, False)
        if not f.any():
            row.update(empty.to_dict())
            row[f"threshold_ci_low_{u}"] = float(x.max())
            row[f"threshold_ci_high_{u}"] = np.inf
            row["status"] = "never_fired"
        elif f.all():
            row.update(empty.to_dict())
            row[f"threshold_ci_low_{u}"] = -np.inf
            row[f"threshold_ci_high_{u}"] = float(x.min())
            row["status"] = "always_fired"
        elif len(np.unique(x)) < 2:
            row.update(empty.to_dict())
            row["status"] = "one_level"
        else:
            fit = fit_threshold(
                g.assign(fired=f), by=by, fired="fired", ci=ci, confidence=confidence,
                n_bootstrap=n_bootstrap, seed=np.random.default_rng(ss),
            )
            row.update(fit.to_dict())
            row["status"] = "separated" if fit.separated else "ok"
        row["n_levels"] = len(np.unique(x))
        row[f"min_tested_{u}"] = float(x.min())
        row[f"max_tested_{u}"] = float(x.max())
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class StrengthDurationFit:
    """Rheobase and chronaxie of a strength-duration curve (see :func:`strength_duration`).

    Attributes
    ----------
    rheobase : float
        Threshold for an infinitely long pulse, in ``unit``.
    chronaxie_ms : float
        Pulse duration at which the threshold is twice the rheobase (ms).
    rheobase_se, chronaxie_se_ms : float
        Standard errors from the least-squares covariance.
    rheobase_ci, chronaxie_ci_ms : (float, float)
        ``estimate +- t_{n-2} * SE`` intervals at ``confidence``.
    model : str
        ``"hyperbola"``, ``"weiss"`` or ``"exponential"``.
    unit : str
        Unit of the amplitudes.
    n_points : int
    residual_sd : float
        Root-mean-square residual of the thresholds about the fitted curve (``unit``).
    """

    rheobase: float
    rheobase_se: float
    rheobase_ci: tuple[float, float]
    chronaxie_ms: float
    chronaxie_se_ms: float
    chronaxie_ci_ms: tuple[float, float]
    model: str
    unit: str
    n_points: int
    residual_sd: float
    confidence: float

    def predict(self, duration_ms: np.ndarray | float) -> np.ndarray:
        """Threshold amplitude (``unit``) of the fitted curve at ``duration_ms``."""
        d = np.asarray(duration_ms, dtype=float)
        if self.model == "exponential":
            tau = self.chronaxie_ms / np.log(2.0)
            return self.rheobase / -np.expm1(-d / tau)
        return self.rheobase * (1.0 + self.chronaxie_ms / d)


def strength_duration(
    thresholds: pd.DataFrame,
    *,
    duration: str = "duration_ms",
    amplitude: str = "threshold_uA_cm2",
    model: str = "hyperbola",
    sigma: str | None = None,
    confidence: float = 0.95,
) -> StrengthDurationFit:
    """Rheobase and chronaxie from (pulse duration, threshold amplitude) pairs.

    Models (``d`` pulse duration in ms, ``I`` threshold amplitude):

    - ``"hyperbola"`` (default): Lapicque's hyperbola ``I = I_rh * (1 + t_ch / d)`` fitted by nonlinear least
      squares on the thresholds themselves (:func:`scipy.optimize.curve_fit`), the measured quantity
      (Lapicque L (1907) J Physiol Pathol Gen 9:620-635; Geddes LA (2004) Accuracy limitations of chronaxie
      values. IEEE Trans Biomed Eng 51:176-181. doi:10.1109/TBME.2003.820340).
    - ``"weiss"``: Weiss' linear charge law ``Q = I * d = Q_min + I_rh * d`` fitted by (weighted) linear
      regression of charge on duration; ``t_ch = Q_min / I_rh`` (Weiss G (1901) Arch Ital Biol 35:413-446).
      Algebraically the same curve as the hyperbola, but the least-squares weights differ (charge residuals
      grow with ``d``), so the estimates differ on noisy data; on exact data they agree.
    - ``"exponential"``: the RC-membrane (Lapicque/Blair) form ``I = I_rh / (1 - exp(-d / tau))``, with
      chronaxie ``tau * ln 2``.

    Parameters
    ----------
    thresholds : pandas.DataFrame
        One row per duration with ``duration`` and ``amplitude`` columns, e.g. the output of
        :func:`fit_thresholds` with ``group_by="duration_ms"``.
    duration : str
        Duration column (ms), default ``"duration_ms"``.
    amplitude : str
        Threshold column, default ``"threshold_uA_cm2"``.
    model : {"hyperbola", "weiss", "exponential"}
    sigma : str, optional
        Column of threshold standard errors used as weights (absolute sigma); unweighted when None.
    confidence : float
        Level of the reported intervals, default 0.95.

    Returns
    -------
    StrengthDurationFit
    """
    v.require_choice(model, ("hyperbola", "weiss", "exponential"), name="model")
    confidence = v.require_probability(confidence, name="confidence")
    thresholds = v.require_frame(thresholds, name="thresholds")
    cols = [duration, amplitude] + ([sigma] if sigma else [])
    v.require_columns(thresholds, cols, name="thresholds")
    v.require_finite(thresholds, cols, name="thresholds")
    d = thresholds[duration].to_numpy(dtype=float)
    amp = thresholds[amplitude].to_numpy(dtype=float)
    if np.any(d <= 0):
        raise ValueError(f"thresholds column {duration!r} must be > 0 ms, got min {d.min()}")
    if len(np.unique(d)) < 3:
        raise ValueError(f"thresholds needs at least 3 distinct {duration!r} values, got {len(np.unique(d))}")
    s = thresholds[sigma].to_numpy(dtype=float) if sigma else None
    if s is not None and np.any(s <= 0):
        raise ValueError(f"thresholds column {sigma!r} must be > 0, got min {s.min()}")
    n = len(d)
    dof = n - 2
    tq = float(stats.t.ppf(0.5 + confidence / 2, dof)) if dof > 0 else np.nan

    if model == "weiss":
        Q = amp * d
        w = np.ones(n) if s is None else 1.0 / (s * d) ** 2
        X = np.column_stack([np.ones(n), d])
        XtW = X.T * w
        cov_unscaled = np.linalg.inv(XtW @ X)
        beta = cov_unscaled @ (XtW @ Q)
        resid = Q - X @ beta
        scale = 1.0 if s is not None else float(resid @ (w * resid)) / dof if dof > 0 else np.nan
        cov = cov_unscaled * scale
        q_min, i_rh = beta
        t_ch = q_min / i_rh
        # delta method for t_ch = q_min / i_rh
        grad = np.array([1.0 / i_rh, -q_min / i_rh**2])
        se_t = float(np.sqrt(grad @ cov @ grad))
        se_i = float(np.sqrt(cov[1, 1]))
    else:
        if model == "hyperbola":
            f = lambda dd, i_rh, t_ch: i_rh * (1.0 + t_ch / dd)  # noqa: E731
        else:
            f = lambda dd, i_rh, t_ch: i_rh / -np.expm1(-dd * np.log(2.0) / t_ch)  # noqa: E731
        # start from the linear charge regression
        slope, intercept = np.polyfit(d, amp * d, 1)
        p0 = (slope if slope > 0 else amp.min(), max(intercept / slope, 1e-3 * d.min()) if slope > 0 else d.mean())
        popt, pcov = optimize.curve_fit(f, d, amp, p0=p0, sigma=s, absolute_sigma=s is not None, maxfev=10000)
        i_rh, t_ch = map(float, popt)
        se_i, se_t = map(float, np.sqrt(np.clip(np.diag(pcov), 0, None)))
    fit = StrengthDurationFit(
        rheobase=float(i_rh), rheobase_se=se_i,
        rheobase_ci=(float(i_rh - tq * se_i), float(i_rh + tq * se_i)),
        chronaxie_ms=float(t_ch), chronaxie_se_ms=se_t,
        chronaxie_ci_ms=(float(t_ch - tq * se_t), float(t_ch + tq * se_t)),
        model=model, unit=unit_of(amplitude), n_points=n, residual_sd=0.0, confidence=confidence,
    )
    resid_sd = float(np.sqrt(np.mean((amp - fit.predict(d)) ** 2)))
    return StrengthDurationFit(**{**fit.__dict__, "residual_sd": resid_sd})


def threshold_voltage_distribution(
    features: pd.DataFrame,
    *,
    column: str = "threshold_mV",
    first_spike_only: bool = False,
    by: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Summary of the distribution of spike threshold voltages across spikes or trials.

    Parameters
    ----------
    features : pandas.DataFrame
        Output of :func:`~stochion.analysis.spike_features` (``trial``, ``t_ms``, ``threshold_mV``). Rows with
        NaN threshold (not measurable) are dropped and counted in ``n_missing``.
    column : str
        Threshold column, default ``"threshold_mV"``.
    first_spike_only : bool
        Use only the first spike of each trial (the one not affected by preceding spikes).
    by : str or sequence of str, optional
        Group columns (e.g. a swept amplitude); one row per group.

    Returns
    -------
    pandas.DataFrame
        ``n``, ``n_missing``, ``mean_mV``, ``sd_mV``, ``sem_mV``, ``median_mV``, ``q05_mV``, ``q95_mV``,
        ``skewness`` and ``normality_p``: D'Agostino-Pearson test p-value (:func:`scipy.stats.normaltest`,
        n >= 20; D'Agostino RB, Pearson ES (1973) Biometrika 60:613-622. doi:10.1093/biomet/60.3.613),
        NaN for smaller samples.
    """
    features = v.with_trial(v.require_frame(features, name="features"))
    v.require_columns(features, ["trial", column] + (["t_ms"] if first_spike_only else []), name="features")
    if first_spike_only:
        features = features.sort_values(["trial", "t_ms"], kind="stable").groupby("trial", sort=False).head(1)
    groups = [((), features)] if by is None else list(features.groupby(_as_list(by), sort=True, observed=True))
    rows = []
    for key, g in groups:
        x = g[column].to_numpy(dtype=float)
        ok = np.isfinite(x)
        x = x[ok]
        key = key if isinstance(key, tuple) else (key,)
        row: dict[str, object] = {} if by is None else dict(zip(_as_list(by), key))
        n = len(x)
        row.update(
            n=n,
            n_missing=int((~ok).sum()),
            mean_mV=float(x.mean()) if n else np.nan,
            sd_mV=float(x.std(ddof=1)) if n > 1 else np.nan,
            sem_mV=float(x.std(ddof=1) / np.sqrt(n)) if n > 1 else np.nan,
            median_mV=float(np.median(x)) if n else np.nan,
            q05_mV=float(np.quantile(x, 0.05)) if n else np.nan,
            q95_mV=float(np.quantile(x, 0.95)) if n else np.nan,
            skewness=float(stats.skew(x)) if n > 2 else np.nan,
            normality_p=float(stats.normaltest(x).pvalue) if n >= 20 else np.nan,
        )
        rows.append(row)
    return pd.DataFrame(rows)
