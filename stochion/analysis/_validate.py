"""Input validation shared by every analysis function.

Each check raises :class:`ValueError` with a message that names the table, the column, the offending value and
what is allowed, so that a malformed simulator output fails at the analysis boundary and not deep inside numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

__all__: list[str] = []  # private module

#: Relative tolerance on the sampling step when a uniform grid is required.
UNIFORM_STEP_RTOL = 1e-6


def require_frame(table: object, *, name: str) -> pd.DataFrame:
    """Check that ``table`` is a non-empty DataFrame and return it."""
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame, got {type(table).__name__}")
    if len(table) == 0:
        raise ValueError(f"{name} is empty (0 rows); at least one row is required")
    return table


def require_columns(table: pd.DataFrame, columns: Iterable[str], *, name: str) -> None:
    """Check that every column in ``columns`` exists in ``table``."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        have = ", ".join(map(str, table.columns))
        raise ValueError(f"{name} is missing column(s) {missing}; it has: {have}")


def require_finite(table: pd.DataFrame, columns: Iterable[str], *, name: str) -> None:
    """Check that ``columns`` hold numbers without NaN or infinity."""
    for c in columns:
        try:
            values = table[c].to_numpy(dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} column {c!r} must be numeric, got dtype {table[c].dtype}") from exc
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{name} column {c!r} has {int(bad.sum())} non-finite value(s) (NaN or inf), "
                f"first at row {i} (value {values[i]}); all values must be finite"
            )


def require_no_missing(table: pd.DataFrame, columns: Iterable[str], *, name: str) -> None:
    """Check that non-numeric ``columns`` (states, channel types) have no missing values."""
    for c in columns:
        n = int(table[c].isna().sum())
        if n:
            raise ValueError(f"{name} column {c!r} has {n} missing value(s); all values must be present")


def with_trial(table: pd.DataFrame) -> pd.DataFrame:
    """Return ``table`` with a ``trial`` column, adding ``trial = 0`` when it is absent (a single trial)."""
    if "trial" in table.columns:
        return table
    return table.assign(trial=0)


def require_sorted_time(
    table: pd.DataFrame, *, name: str, time: str = "t_ms", strict: bool = True
) -> None:
    """Check that rows of each trial are contiguous and that ``time`` increases within a trial.

    ``strict`` requires strictly increasing times (sampled traces); otherwise non-decreasing (event tables).
    """
    trial = table["trial"].to_numpy()
    t = table[time].to_numpy(dtype=float)
    if len(t) < 2:
        return
    change = trial[1:] != trial[:-1]
    n_blocks = int(change.sum()) + 1
    n_trials = len(pd.unique(trial))
    if n_blocks != n_trials:
        raise ValueError(
            f"{name} rows of each trial must be contiguous (sort by 'trial' then {time!r}); "
            f"found {n_trials} trials spread over {n_blocks} blocks"
        )
    dt = np.diff(t)
    bad = (~change) & ((dt <= 0) if strict else (dt < 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "strictly increasing" if strict else "non-decreasing"
        raise ValueError(
            f"{name} column {time!r} must be {what} within each trial; in trial {trial[i]} "
            f"row {i + 1} has {time}={t[i + 1]} after {t[i]}"
        )


def sampling_step_ms(table: pd.DataFrame, *, name: str, time: str = "t_ms") -> float:
    """Return the common sampling step (ms), checking it is uniform within and across trials."""
    steps = []
    for trial, t in table.groupby("trial", sort=False)[time]:
        tt = t.to_numpy(dtype=float)
        if len(tt) < 2:
            raise ValueError(f"{name} trial {trial} has {len(tt)} sample(s); at least 2 are required")
        d = np.diff(tt)
        step = float(np.median(d))
        if np.any(np.abs(d - step) > UNIFORM_STEP_RTOL * step + 1e-12):
            worst = float(d[np.argmax(np.abs(d - step))])
            raise ValueError(
                f"{name} column {time!r} must be uniformly sampled within each trial; trial {trial} "
                f"has step {worst} ms where the median step is {step} ms"
            )
        steps.append(step)
    steps = np.asarray(steps)
    if np.any(np.abs(steps - steps[0]) > UNIFORM_STEP_RTOL * steps[0]):
        raise ValueError(
            f"{name} trials have different sampling steps ({steps.min()} to {steps.max()} ms); "
            "one common step is required"
        )
    return float(steps.mean())


def validate_trace(
    trace: object,
    columns: Sequence[str] = ("V_mV",),
    *,
    name: str = "trace",
    uniform: bool = False,
) -> pd.DataFrame:
    """Validate a sampled trace table and return it (with ``trial`` added when absent).

    Checks: a non-empty DataFrame; columns ``t_ms`` and ``columns`` present and finite; rows of a trial contiguous;
    ``t_ms`` strictly increasing within each trial; optionally a uniform common sampling step.
    """
    table = with_trial(require_frame(trace, name=name))
    needed = ["t_ms", *columns]
    require_columns(table, needed, name=name)
    require_finite(table, needed, name=name)
    require_sorted_time(table, name=name, strict=True)
    if uniform:
        sampling_step_ms(table, name=name)
    return table


def require_positive(value: float, *, name: str, allow_zero: bool = False) -> float:
    """Check that a scalar parameter is a finite positive number and return it as float."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number, got {value!r}") from exc
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        allowed = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return v


def require_probability(value: float, *, name: str) -> float:
    """Check that ``value`` lies strictly between 0 and 1 (a confidence level, a probability)."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}") from exc
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value!r}")
    return v


def require_choice(value: str, choices: Sequence[str], *, name: str) -> str:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def trial_ids(trials: object, *, name: str = "trials") -> np.ndarray:
    """Normalise a trial specification to an array of unique trial ids.

    Accepts an ``int`` ``n`` (trials ``0 .. n-1``), a sequence of ids, or a DataFrame with a ``trial`` column
    (its unique values: pass the trace or the sweep summary so that trials without spikes are counted).
    """
    if isinstance(trials, pd.DataFrame):
        require_columns(trials, ["trial"], name=name)
        ids = pd.unique(trials["trial"])
    elif isinstance(trials, (int, np.integer)) and not isinstance(trials, bool):
        if trials < 1:
            raise ValueError(f"{name} as a number of trials must be >= 1, got {trials}")
        ids = np.arange(int(trials))
    elif isinstance(trials, Iterable) and not isinstance(trials, (str, bytes)):
        ids = pd.unique(np.asarray(list(trials)))
    else:
        raise ValueError(
            f"{name} must be an int (number of trials), a sequence of trial ids or a DataFrame with a 'trial' "
            f"column, got {type(trials).__name__}"
        )
    if len(ids) == 0:
        raise ValueError(f"{name} is empty; at least one trial is required")
    return np.asarray(ids)


def fired_flags(summary: pd.DataFrame, fired: str | None, *, name: str) -> np.ndarray:
    """Boolean "fired" per row: column ``fired`` if given, else ``'fired'`` if present, else ``n_spikes > 0``."""
    if fired is None:
        if "fired" in summary.columns:
            fired = "fired"
        elif "n_spikes" in summary.columns:
            require_finite(summary, ["n_spikes"], name=name)
            return summary["n_spikes"].to_numpy(dtype=float) > 0
        else:
            raise ValueError(
                f"{name} needs a 'fired' (bool) or an 'n_spikes' column to tell which trials fired; "
                f"it has: {', '.join(map(str, summary.columns))}"
            )
    require_columns(summary, [fired], name=name)
    col = summary[fired]
    if col.isna().any():
        raise ValueError(f"{name} column {fired!r} has missing values; it must be bool or 0/1")
    values = col.to_numpy()
    if values.dtype != bool:
        v = values.astype(float)
        if not np.all((v == 0) | (v == 1)):
            raise ValueError(f"{name} column {fired!r} must be bool or 0/1, got values {np.unique(v)[:5]}")
        values = v.astype(bool)
    return values
