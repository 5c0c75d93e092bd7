"""Figures of stochion results: traces with channel rasters, threshold curves, refractoriness, histograms, spectra.

A front end (see DESIGN.md, layer table): it draws the tables of a :class:`~stochion.results.Result` and the
outputs of :mod:`stochion.analysis`, and never runs a simulation. Every function

- returns the :class:`matplotlib.figure.Figure` it drew on;
- draws into a given ``ax=`` (single-panel figures) or ``axes=`` (multi-panel figures) when one is passed, and
  otherwise makes a new figure with the object API (``matplotlib.figure.Figure``), so no pyplot figure manager,
  backend or ``rcParams`` is touched and nothing is shown;
- labels every axis with its unit, derived from the unit-suffixed column names (``amplitude_uA_cm2`` ->
  "amplitude (µA/cm²)");
- raises :class:`ValueError` naming the argument and what was expected when its input is malformed.

Use :func:`save_figure` to write a PNG.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure, FigureBase
from scipy import stats

from .analysis import (
    AllOrNone,
    RefractoryPeriods,
    ThresholdFit,
    assess_all_or_none,
    firing_probability,
    fit_threshold,
    inter_spike_intervals,
    refractory_periods,
    threshold_ratio_vs_interval,
)
from .analysis import _validate as _v
from .results import Result

__all__ = [
    "plot_trace",
    "plot_firing_probability",
    "plot_refractory_curve",
    "plot_amplitude_histogram",
    "plot_isi_histogram",
    "plot_psd",
    "save_figure",
]

#: Resolution of :func:`save_figure` (dots per inch).
PNG_DPI = 150

# Colours: membrane potential in black, stimulus in grey, channel types in a fixed order (first type red, the
# second blue: Na and K in a Hodgkin-Huxley patch), response classes from failure (grey) to spike (red).
_V_COLOR = "black"
_STIM_COLOR = "0.35"
_TYPE_COLORS = ("tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink",
                "tab:olive", "tab:cyan", "tab:gray")
_DATA_COLOR = "tab:blue"
_FIT_COLOR = "tab:red"
_RESPONSE_COLORS = {"failure": "0.55", "intermediate": "tab:orange", "spike": "tab:red"}
_BOX = {"boxstyle": "round,pad=0.4", "facecolor": "white", "edgecolor": "0.7", "alpha": 0.9}

_TRACE_SIZE_IN = (8.0, 1.0)  # width, and height per unit of panel height ratio
_SINGLE_SIZE_IN = (5.5, 4.0)


# ----------------------------------------------------------------------------------------------------------------
# labels

_PREFIXES = "pnumkM"
_UNIT_RE = re.compile(rf"^(?:[{_PREFIXES}]?(?:A|V|S|F|M|Hz|s|m|mol|Ohm)|cm|um|mm)[23]?$")


def _pretty_unit_token(token: str) -> str:
    token = token.replace("Ohm", "Ω")
    if token[:1] == "u" and len(token) > 1:
        token = "µ" + token[1:]
    return token.replace("2", "²").replace("3", "³")


def _split_column(column: str) -> tuple[str, str]:
    """(quantity, pretty unit) of a unit-suffixed column name; the unit is "" when the name has none.

    The unit is the longest run of unit-like tokens at the end of the name, keeping at least one token for the
    quantity; the first unit token is the numerator, the others divide it (``uA_cm2`` -> ``µA/cm²``,
    ``max_rise_mV_ms`` -> ``mV/ms``, ``psd_per_Hz`` -> ``1/Hz``).
    """
    tokens = str(column).split("_")
    k = len(tokens)
    while k > 1 and _UNIT_RE.match(tokens[k - 1]):
        k -= 1
    quantity, units = tokens[:k], tokens[k:]
    if units and len(quantity) > 1 and quantity[-1] == "per":
        quantity = quantity[:-1]
        units = ["1"] + units
    unit = "/".join(_pretty_unit_token(u) for u in units)
    return " ".join(quantity), unit


def _axis_label(column: str, quantity: str | None = None) -> str:
    """Axis label "quantity (unit)" from a column name; ``quantity`` overrides the name's quantity part."""
    q, unit = _split_column(column)
    q = quantity if quantity is not None else q
    return f"{q} ({unit})" if unit else q


def _unit_text(column: str) -> str:
    return _split_column(column)[1]


def _fmt(x: float) -> str:
    x = float(x)
    if np.isnan(x):
        return "n/a"
    if np.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.3g}"


def _pct(x: float) -> str:
    """A fraction as a percentage with two significant digits (round-off below 1e-9 shown as 0)."""
    x = float(x)
    return "n/a" if np.isnan(x) else f"{0.0 if abs(x) < 1e-9 else 100 * x:.2g} %"


def _ci_text(ci: Sequence[float]) -> str:
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


# ----------------------------------------------------------------------------------------------------------------
# figures and axes


def _root_figure(ax: Axes) -> Figure:
    fig = ax.figure
    while isinstance(fig, FigureBase) and not isinstance(fig, Figure):
        fig = fig.figure  # an Axes in a SubFigure: climb to the root figure
    return fig


def _single_axes(ax: Axes | None, *, figsize: tuple[float, float] = _SINGLE_SIZE_IN) -> tuple[Figure, Axes]:
    """The given Axes and its figure, or a new figure with one Axes (object API, no pyplot state)."""
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, fig.add_subplot()
    if not isinstance(ax, Axes):
        raise ValueError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return _root_figure(ax), ax


def _panel_axes(axes: Sequence[Axes] | None, panels: Sequence[str], ratios: Sequence[float]) -> list[Axes]:
    """The given Axes (one per panel), or a new column of panels sharing their time axis."""
    if axes is None:
        fig = Figure(figsize=(_TRACE_SIZE_IN[0], 0.6 + _TRACE_SIZE_IN[1] * float(np.sum(ratios))),
                     layout="constrained")
        grid = fig.subplots(len(panels), 1, sharex=True, squeeze=False, height_ratios=list(ratios))
        return list(grid[:, 0])
    if isinstance(axes, Axes):
        axes = [axes]
    try:
        axes = list(np.ravel(np.asarray(axes, dtype=object)))
    except TypeError as exc:
        raise ValueError(f"axes must be a sequence of matplotlib Axes, got {type(axes).__name__}") from exc
    if len(axes) != len(panels) or not all(isinstance(a, Axes) for a in axes):
        raise ValueError(
            f"axes must hold {len(panels)} matplotlib Axes, one per panel {list(panels)}; got {len(axes)} "
            f"object(s) of type(s) {sorted({type(a).__name__ for a in axes})}"
        )
    return axes


def _table(obj: object, attr: str, *, name: str) -> pd.DataFrame:
    """``obj`` if it is a DataFrame, or its table ``attr`` if it is a :class:`Result`."""
    if isinstance(obj, Result):
        obj = getattr(obj, attr)
    if not isinstance(obj, pd.DataFrame):
        raise ValueError(f"{name} must be a pandas DataFrame or a stochion Result, got {type(obj).__name__}")
    return obj


def _finite_array(x: object, *, name: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1-D array of numbers, got {type(x).__name__}") from exc
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite (no NaN or inf); {int((~np.isfinite(a)).sum())} value(s) are not")
    return a


# ----------------------------------------------------------------------------------------------------------------
# traces and single-channel rasters


def _select_trial(trace: pd.DataFrame, trial: int, point: int | None) -> pd.DataFrame:
    trace = _v.with_trial(_v.require_frame(trace, name="trace"))
    _v.require_columns(trace, ["t_ms", "V_mV"], name="trace")
    if "point" in trace.columns:
        points = pd.unique(trace["point"])
        if point is None:
            if len(points) > 1:
                raise ValueError(
                    f"trace holds {len(points)} sweep points ({sorted(points)[:10]}...); choose one with point="
                )
        else:
            if point not in set(points):
                raise ValueError(f"trace has no point {point!r}; points are {sorted(points)[:20]}")
            trace = trace[trace["point"] == point]
    elif point is not None:
        raise ValueError(f"point={point!r} was given but trace has no 'point' column (not a sweep trace)")
    trials = pd.unique(trace["trial"])
    if trial not in set(trials):
        raise ValueError(f"trace has no trial {trial!r}; trials are {sorted(trials)[:20]}")
    sel = trace[trace["trial"] == trial]
    return _v.validate_trace(sel, ["V_mV"], name="trace")


def _time_window(t_range_ms: object, t: np.ndarray) -> tuple[float, float]:
    if t_range_ms is None:
        return float(t[0]), float(t[-1])
    try:
        a, b = (float(x) for x in t_range_ms)  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"t_range_ms must be a pair (start, stop) in ms, got {t_range_ms!r}") from exc
    if not (np.isfinite(a) and np.isfinite(b) and b > a):
        raise ValueError(f"t_range_ms must be finite with stop > start, got {t_range_ms!r}")
    return a, b


def _open_states_from(provenance: Mapping) -> dict[str, tuple[str, ...]]:
    """Conducting states per channel type from a Result's provenance (``patch.channels[*].scheme``)."""
    out: dict[str, tuple[str, ...]] = {}
    patch = provenance.get("patch") if isinstance(provenance, Mapping) else None
    channels = patch.get("channels") if isinstance(patch, Mapping) else None
    if not isinstance(channels, Sequence) or isinstance(channels, str):
        return out
    for ch in channels:
        scheme = ch.get("scheme") if isinstance(ch, Mapping) else None
        if isinstance(scheme, Mapping) and "name" in scheme and "open_states" in scheme:
            out[str(scheme["name"])] = tuple(str(s) for s in scheme["open_states"])
    return out


def _values_of(column: pd.Series) -> set[str]:
    """The distinct values of a (categorical) column, as strings; the categories of a categorical."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return {str(c) for c in column.cat.categories}
    return {str(c) for c in pd.unique(column)}


def _in_values(column: pd.Series, values: Sequence[str]) -> np.ndarray:
    """Boolean mask: the row's value, as a string, is one of ``values`` (fast on categoricals)."""
    values = {str(x) for x in values}
    if isinstance(column.dtype, pd.CategoricalDtype):
        hit = np.array([str(c) in values for c in column.cat.categories] + [False])
        return hit[column.cat.codes.to_numpy()]  # code -1 (missing) picks the trailing False
    return column.astype(str).isin(values).to_numpy()


def _channel_periods(
    events: pd.DataFrame,
    *,
    trial: int,
    types: Sequence[str],
    open_states: Mapping[str, Sequence[str]],
    max_channels: int,
    t_trial: tuple[float, float],
    window: tuple[float, float],
) -> list[tuple[str, int, list[tuple[float, float]]]]:
    """Open periods ``(start_ms, stop_ms)`` within ``window`` of up to ``max_channels`` channels per type.

    A channel's state before its first event is that event's ``from_state``, held from the start of the trial;
    after its last event it keeps the last ``to_state`` to the end of the trial. For each type the channels shown
    are the lowest channel ids that are open at some time in the window.
    """
    events = _v.with_trial(_v.require_frame(events, name="channel_events"))
    cols = ["channel_type", "channel_id", "t_ms", "from_state", "to_state"]
    _v.require_columns(events, cols, name="channel_events")
    ev = events[events["trial"] == trial]
    _v.require_no_missing(ev, cols, name="channel_events")
    _v.require_finite(ev, ["t_ms", "channel_id"], name="channel_events")
    a, b = window
    out = []
    for typ in types:
        states = [str(s) for s in open_states[typ]]
        e = ev[_in_values(ev["channel_type"], [typ])]
        if not len(e):
            continue
        known = _values_of(e["from_state"]) | _values_of(e["to_state"])
        unknown = [s for s in states if s not in known]
        if unknown:
            raise ValueError(
                f"open_states[{typ!r}] names state(s) {unknown} that channel_events never uses for type {typ!r}; "
                f"its states are {sorted(known)}"
            )
        e = e.sort_values(["channel_id", "t_ms"], kind="stable")
        ids = e["channel_id"].to_numpy()
        t = e["t_ms"].to_numpy(dtype=float)
        o_from = _in_values(e["from_state"], states)
        o_to = _in_values(e["to_state"], states)
        uniq, first = np.unique(ids, return_index=True)
        last = np.append(first[1:], len(ids))
        ever_open = np.logical_or.reduceat(o_from | o_to, first)
        shown = 0
        for cid, i0, i1 in zip(uniq[ever_open], first[ever_open], last[ever_open]):
            periods = []
            since = t_trial[0] if o_from[i0] else None
            for k in range(i0, i1):
                if o_to[k] and not o_from[k]:
                    since = t[k]
                elif o_from[k] and not o_to[k] and since is not None:
                    periods.append((since, t[k]))
                    since = None
            if since is not None:
                periods.append((since, t_trial[1]))
            clipped = [(max(s, a), min(f, b)) for s, f in periods if min(f, b) > max(s, a)]
            if clipped:
                out.append((typ, int(cid), clipped))
                shown += 1
                if shown >= max_channels:
                    break
    return out


def plot_trace(
    result_or_trace: Result | pd.DataFrame,
    *,
    trial: int = 0,
    point: int | None = None,
    channels: bool | None = None,
    stimulus: bool | None = None,
    raster: bool | None = None,
    channel_events: pd.DataFrame | None = None,
    open_states: Mapping[str, Sequence[str]] | None = None,
    max_channels: int = 20,
    t_range_ms: tuple[float, float] | None = None,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Membrane potential of one trial, with the stimulus, open-channel counts and a single-channel raster below.

    Panels, top to bottom (those that do not apply are left out):

    1. ``V_mV`` against ``t_ms``. Under voltage clamp (a finite ``V_clamp_mV`` in the trial) the command
       ``V_clamp_mV`` is the stimulus and is drawn here too, dashed (NaN, so blank, in unclamped stretches).
    2. Under voltage clamp: the clamp current ``I_clamp_pA`` (outward positive).
    3. Stimulus current ``I_stim_pA``, drawn as steps; under voltage clamp only if current is injected in
       unclamped stretches.
    4. Open channels: ``n_open_<type>`` for every channel type, as steps, one colour per type.
    5. Raster (needs agent tracking): one row per channel, a bar for every period in a conducting state. Up to
       ``max_channels`` channels per type are shown: the lowest channel ids that are open at some time in the
       plotted window. A channel's state before its first event is that event's ``from_state``; a channel that
       never changed state in the run has no events and cannot be shown.

    Parameters
    ----------
    result_or_trace : Result or pandas.DataFrame
        A run (its ``trace``, ``channel_events`` and provenance are used) or a trace table (``trial``,
        ``t_ms``, ``V_mV``, ...), e.g. a sweep's traces (then choose ``point``).
    trial : int
        Trial to draw, default 0.
    point : int, optional
        Sweep grid point to draw, required when the trace holds several (a ``point`` column).
    channels, stimulus, raster : bool, optional
        Draw the open-count, stimulus and raster panels. ``None`` (default): when the data are there; ``True``:
        required (ValueError if the data are missing); ``False``: never.
    channel_events : pandas.DataFrame, optional
        Single-channel events (``trial``, ``channel_type``, ``channel_id``, ``t_ms``, ``from_state``,
        ``to_state``); default the Result's.
    open_states : mapping of str to sequence of str, optional
        Conducting states per channel type (``{"Na": ["m3h1"], "K": ["n4"]}``); default from the Result's
        provenance (``patch.channels[*].scheme.open_states``).
    max_channels : int
        Channels per type in the raster, default 20.
    t_range_ms : (float, float), optional
        Time window to draw (ms); default the whole trial.
    axes : sequence of Axes, optional
        One Axes per panel drawn, top to bottom, to draw into.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if isinstance(result_or_trace, Result):
        trace, provenance = result_or_trace.trace, result_or_trace.provenance
        if channel_events is None:
            channel_events = result_or_trace.channel_events
    elif isinstance(result_or_trace, pd.DataFrame):
        trace, provenance = result_or_trace, {}
    else:
        raise ValueError(
            f"result_or_trace must be a stochion Result or a trace DataFrame, got {type(result_or_trace).__name__}"
        )
    for name, flag in (("channels", channels), ("stimulus", stimulus), ("raster", raster)):
        if flag is not None and not isinstance(flag, (bool, np.bool_)):
            raise ValueError(f"{name} must be True, False or None, got {flag!r}")
    if isinstance(max_channels, bool) or not isinstance(max_channels, (int, np.integer)) or max_channels < 1:
        raise ValueError(f"max_channels must be an int >= 1, got {max_channels!r}")
    full = _select_trial(trace, trial, point)
    t_full = full["t_ms"].to_numpy(dtype=float)
    a, b = _time_window(t_range_ms, t_full)
    sel = full[(t_full >= a) & (t_full <= b)]
    if len(sel) < 2:
        raise ValueError(
            f"t_range_ms={t_range_ms!r} holds {len(sel)} sample(s) of trial {trial} (which runs from "
            f"{t_full[0]} to {t_full[-1]} ms); at least 2 are needed"
        )
    t = sel["t_ms"].to_numpy(dtype=float)

    type_names = [c[len("n_open_"):] for c in sel.columns if c.startswith("n_open_")]
    clamped = "V_clamp_mV" in sel.columns and bool(np.isfinite(sel["V_clamp_mV"].to_numpy(dtype=float)).any())
    if stimulus and not (clamped or "I_stim_pA" in sel.columns):
        raise ValueError("stimulus=True but the trace has neither 'I_stim_pA' nor a clamp column 'V_clamp_mV'")
    draw_command = clamped and stimulus is not False
    # under clamp the command is the stimulus; a current panel only if current is injected somewhere too
    has_stim = "I_stim_pA" in sel.columns and (not clamped or bool(np.any(sel["I_stim_pA"].to_numpy(float) != 0)))
    if channels and not type_names:
        raise ValueError("channels=True but the trace has no 'n_open_<type>' columns (record 'open')")
    draw_stim = has_stim and stimulus is not False
    draw_counts = bool(type_names) if channels is None else bool(channels)

    draw_raster = False
    if raster is not False:
        has_events = channel_events is not None
        if has_events:
            if not isinstance(channel_events, pd.DataFrame):
                raise ValueError(f"channel_events must be a DataFrame, got {type(channel_events).__name__}")
            ev_trials = _v.with_trial(channel_events)["trial"] if len(channel_events) else pd.Series([])
            has_events = bool((ev_trials == trial).any())
        if raster and not has_events:
            raise ValueError(
                f"raster=True needs channel_events for trial {trial} (simulate with track_agents=True, or pass "
                "channel_events=)"
            )
        draw_raster = has_events
    if draw_raster:
        open_map = dict(_open_states_from(provenance))
        if open_states is not None:
            if not isinstance(open_states, Mapping):
                raise ValueError(f"open_states must map channel type to state names, got {type(open_states).__name__}")
            open_map.update({str(k): tuple(v) for k, v in open_states.items()})
        _v.require_columns(channel_events, ["channel_type"], name="channel_events")
        ctype = channel_events["channel_type"]
        present = {str(c) for c in pd.unique(ctype)}
        order = map(str, ctype.cat.categories) if isinstance(ctype.dtype, pd.CategoricalDtype) else sorted(present)
        ev_types = [ty for ty in order if ty in present]
        missing = [ty for ty in ev_types if ty not in open_map]
        if missing:
            raise ValueError(
                f"open states of channel type(s) {missing} are unknown: pass open_states={{type: [states]}} "
                "(the Result's provenance has none for them)"
            )
        raster_types = [ty for ty in type_names if ty in ev_types] + [ty for ty in ev_types if ty not in type_names]
        periods = _channel_periods(
            channel_events, trial=trial, types=raster_types, open_states=open_map, max_channels=int(max_channels),
            t_trial=(float(t_full[0]), float(t_full[-1])), window=(a, b),
        )
    all_types = type_names + [ty for ty in (raster_types if draw_raster else []) if ty not in type_names]
    colors = {ty: _TYPE_COLORS[i % len(_TYPE_COLORS)] for i, ty in enumerate(all_types)}

    layout = [  # (panel, drawn, relative height)
        ("V", True, 1.5 if clamped else 3.0),
        ("I_clamp", clamped and "I_clamp_pA" in sel.columns, 2.0),
        ("stimulus", draw_stim, 1.2),
        ("channels", draw_counts, 1.8),
        ("raster", draw_raster, 2.5),
    ]
    panels = [name for name, drawn, _ in layout if drawn]
    ax_list = _panel_axes(axes, panels, [h for _, drawn, h in layout if drawn])
    fig = _root_figure(ax_list[0])
    by_panel = dict(zip(panels, ax_list))

    ax = by_panel["V"]
    ax.plot(t, sel["V_mV"].to_numpy(dtype=float), color=_V_COLOR, lw=1.0, label="V")
    if draw_command:
        ax.plot(t, sel["V_clamp_mV"].to_numpy(dtype=float), color="tab:orange", lw=1.2, ls="--",
                drawstyle="steps-post", label="command (clamp)")
        ax.legend(loc="upper right", fontsize="small", frameon=False)
    ax.set_ylabel("V (mV)")
    if "I_clamp" in by_panel:
        ax = by_panel["I_clamp"]
        ax.plot(t, sel["I_clamp_pA"].to_numpy(dtype=float), color=_V_COLOR, lw=0.8, label="I_clamp")
        ax.set_ylabel("clamp current (pA)")
    if "stimulus" in by_panel:
        ax = by_panel["stimulus"]
        stim = sel["I_stim_pA"].to_numpy(dtype=float)
        ax.plot(t, stim, color=_STIM_COLOR, lw=1.0, drawstyle="steps-post", label="I_stim")
        lo, hi = min(0.0, float(stim.min())), max(0.0, float(stim.max()))
        pad = 0.1 * (hi - lo) if hi > lo else 1.0
        ax.set_ylim(lo - pad, hi + pad)  # zero in view, so that a step reads as a step
        ax.set_ylabel("I_stim (pA)")
    if "channels" in by_panel:
        ax = by_panel["channels"]
        for ty in type_names:
            ax.plot(t, sel[f"n_open_{ty}"].to_numpy(dtype=float), color=colors[ty], lw=1.0,
                    drawstyle="steps-post", label=ty)
        ax.set_ylabel("open channels (count)")
        ax.legend(loc="upper right", fontsize="small", frameon=False, ncols=max(1, len(type_names)))
    if "raster" in by_panel:
        ax = by_panel["raster"]
        n_rows = len(periods)
        groups: dict[str, list[int]] = {}
        for row, (ty, cid, spans) in enumerate(periods):
            y = n_rows - 1 - row  # first type at the top
            ax.broken_barh([(s, f - s) for s, f in spans], (y - 0.4, 0.8), facecolors=colors[ty],
                           label=f"{ty} {cid}")
            groups.setdefault(ty, []).append(y)
        ax.set_yticks([float(np.mean(ys)) for ys in groups.values()], [f"{ty} (n={len(ys)})" for ty, ys in
                                                                       groups.items()])
        for ys in list(groups.values())[1:]:
            ax.axhline(max(ys) + 0.5, color="0.8", lw=0.8)
        ax.set_ylim(-0.7, max(n_rows, 1) - 0.3)
        ax.set_ylabel("channel (open periods)")
        if not periods:
            ax.text(0.5, 0.5, "no channel open in this window", transform=ax.transAxes, ha="center",
                    va="center", color="0.4")
    for ax in ax_list:
        ax.set_xlim(a, b)
    ax_list[-1].set_xlabel("time (ms)")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# threshold


_PROB_COLUMNS = ("n_trials", "n_fired", "p_fired", "p_ci_low", "p_ci_high")


def plot_firing_probability(
    prob_table_or_summary: pd.DataFrame,
    fit: ThresholdFit | bool | None = None,
    *,
    by: str = "amplitude_uA_cm2",
    fired: str | None = None,
    confidence: float = 0.95,
    ax: Axes | None = None,
) -> Figure:
    """Firing probability against stimulus with Wilson intervals and the fitted cumulative Gaussian.

    The threshold (50 % point) is marked with its confidence interval as a band, and the threshold and Verveen's
    relative spread ``sigma / threshold`` are written on the axes with their intervals (Verveen AA, Derksen HE
    (1968) Proc IEEE 56:906-916. doi:10.1109/PROC.1968.6443).

    Parameters
    ----------
    prob_table_or_summary : pandas.DataFrame
        The output of :func:`stochion.analysis.firing_probability` (``by``, ``n_trials``, ``n_fired``,
        ``p_fired``, ``p_ci_low``, ``p_ci_high``; one row per stimulus value), or a per-trial summary (``by`` and
        ``fired`` or ``n_spikes``), which is grouped here.
    fit : ThresholdFit, bool or None
        A fit to draw (its ``by`` must match); ``None`` or ``True`` (default): fitted here with
        :func:`stochion.analysis.fit_threshold` when the data allow it (else the reason is written on the
        axes); ``False``: points only.
    by : str
        Stimulus column, default ``"amplitude_uA_cm2"``.
    fired : str, optional
        Bool column of a per-trial summary (see :func:`~stochion.analysis.firing_probability`).
    confidence : float
        Level of the Wilson intervals computed from a per-trial summary, default 0.95.
    ax : Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    data = prob_table_or_summary
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"prob_table_or_summary must be a pandas DataFrame, got {type(data).__name__}")
    if not isinstance(by, str):
        raise ValueError(f"by must be one stimulus column name (str), got {by!r}")
    if all(c in data.columns for c in _PROB_COLUMNS):
        table = _v.require_frame(data, name="prob_table_or_summary")
        _v.require_columns(table, [by], name="prob_table_or_summary")
        _v.require_finite(table, [by, *_PROB_COLUMNS], name="prob_table_or_summary")
        if table[by].duplicated().any():
            raise ValueError(
                f"prob_table_or_summary has repeated values of {by!r}; it must hold one row per stimulus value "
                "(select one group of a table grouped by several columns)"
            )
    else:
        table = firing_probability(data, by=by, fired=fired, confidence=confidence)
    table = table.sort_values(by, kind="stable")
    note = None
    if fit is None or fit is True:
        try:
            fit = fit_threshold(table, by=by)
        except ValueError as exc:
            fit, note = None, f"no probit fit: {exc}"
    elif fit is False:
        fit = None
    elif isinstance(fit, ThresholdFit):
        if fit.by != by:
            raise ValueError(f"fit was made on column {fit.by!r} but by={by!r}")
    else:
        raise ValueError(f"fit must be a ThresholdFit, True, False or None, got {type(fit).__name__}")

    fig, ax = _single_axes(ax)
    x = table[by].to_numpy(dtype=float)
    p = table["p_fired"].to_numpy(dtype=float)
    lo = table["p_ci_low"].to_numpy(dtype=float)
    hi = table["p_ci_high"].to_numpy(dtype=float)
    ax.errorbar(x, p, yerr=np.vstack([np.clip(p - lo, 0, None), np.clip(hi - p, 0, None)]), fmt="o",
                color=_DATA_COLOR, ms=5, capsize=3, lw=1.0, label="observed (Wilson CI)", zorder=3)
    unit = _unit_text(by)
    if fit is not None:
        span = float(np.ptp(x)) or 1.0
        xs = np.linspace(x.min() - 0.05 * span, x.max() + 0.05 * span, 400)
        ax.plot(xs, fit.probability(xs), color=_FIT_COLOR, lw=1.5, label="cumulative Gaussian (probit ML)")
        if np.isfinite(fit.threshold):
            ax.axvline(fit.threshold, color=_FIT_COLOR, ls="--", lw=1.0)
            c0, c1 = (max(fit.threshold_ci[0], xs[0]), min(fit.threshold_ci[1], xs[-1]))
            if c1 > c0:
                ax.axvspan(c0, c1, color=_FIT_COLOR, alpha=0.12, lw=0, label=f"threshold {fit.confidence:.0%} CI")
        lines = [
            f"threshold = {_fmt(fit.threshold)} {unit} {_ci_text(fit.threshold_ci)}",
            f"relative spread σ/θ = {_fmt(fit.relative_spread)} {_ci_text(fit.relative_spread_ci)}",
            f"n = {fit.n_trials} trials, {fit.n_levels} levels",
        ]
        if fit.separated:
            lines.append("complete separation: σ = 0 (test more levels in the gap)")
        ax.text(0.03, 0.97, "\n".join(lines), transform=ax.transAxes, va="top", ha="left", fontsize="small",
                bbox=_BOX)
    elif note:
        ax.text(0.03, 0.97, note, transform=ax.transAxes, va="top", ha="left", fontsize="small", wrap=True,
                bbox=_BOX)
    ax.axhline(0.5, color="0.6", ls=":", lw=0.8)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(_axis_label(by))
    ax.set_ylabel("firing probability")
    ax.legend(loc="lower right", fontsize="small")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# refractoriness


_RATIO_COLUMNS = ("threshold_ratio", "threshold_ratio_ci_low", "threshold_ratio_ci_high")


def plot_refractory_curve(
    data: pd.DataFrame | RefractoryPeriods,
    periods: RefractoryPeriods | bool | None = None,
    *,
    interval: str = "interval_ms",
    by: str = "amplitude_uA_cm2",
    single_pulse_threshold: float | None = None,
    fired_second: str | None = None,
    absolute_ratio: float | None = None,
    relative_elevation: float = 0.05,
    ax: Axes | None = None,
) -> Figure:
    """Second-pulse threshold (as a ratio to the single-pulse threshold) against the pulse interval.

    Fitted thresholds are drawn with their confidence intervals. Intervals where the second pulse never fired
    are drawn as upward triangles at the highest tested ratio (the threshold lies above), and intervals where it
    always fired as downward triangles at the lowest tested ratio. The absolute refractory period is shaded dark
    and the relative one light, by the rule of :func:`stochion.analysis.refractory_periods` (Hodgkin AL,
    Huxley AF (1952) J Physiol 117:500-544. doi:10.1113/jphysiol.1952.sp004764), with their values written on
    the axes.

    Parameters
    ----------
    data : pandas.DataFrame or RefractoryPeriods
        The output of :func:`~stochion.analysis.threshold_ratio_vs_interval` (recognised by its
        ``threshold_ratio`` column), a :class:`~stochion.analysis.RefractoryPeriods` (its table is drawn), or a
        per-trial paired-pulse summary (fitted here with ``by``, ``single_pulse_threshold``, ``fired_second``).
    periods : RefractoryPeriods, bool or None
        Periods to mark; ``None`` or ``True`` (default): those of ``data`` if it is a RefractoryPeriods, else
        computed here with ``absolute_ratio`` and ``relative_elevation`` (when that fails the reason is written
        on the axes); ``False``: no periods.
    interval : str
        Interval column (ms), default ``"interval_ms"``.
    by, single_pulse_threshold, fired_second
        See :func:`~stochion.analysis.threshold_ratio_vs_interval` (per-trial summaries only).
    absolute_ratio, relative_elevation
        See :func:`~stochion.analysis.refractory_periods`.
    ax : Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    given_periods = None
    if isinstance(data, RefractoryPeriods):
        given_periods, table = data, data.table
    elif isinstance(data, pd.DataFrame):
        if "threshold_ratio" in data.columns:
            table = _v.require_frame(data, name="data")
        else:
            table = threshold_ratio_vs_interval(
                data, interval=interval, by=by, single_pulse_threshold=single_pulse_threshold,
                fired_second=fired_second,
            )
    else:
        raise ValueError(f"data must be a pandas DataFrame or a RefractoryPeriods, got {type(data).__name__}")
    _v.require_columns(table, [interval, *_RATIO_COLUMNS], name="data")
    _v.require_finite(table, [interval], name="data")
    table = table.sort_values(interval, kind="stable")
    note = None
    if periods is None or periods is True:
        periods = given_periods
        if periods is None:
            try:
                periods = refractory_periods(table, interval=interval, absolute_ratio=absolute_ratio,
                                             relative_elevation=relative_elevation)
            except ValueError as exc:
                periods, note = None, f"refractory periods not determined: {exc}"
    elif periods is False:
        periods = None
    elif not isinstance(periods, RefractoryPeriods):
        raise ValueError(f"periods must be a RefractoryPeriods, True, False or None, got {type(periods).__name__}")

    fig, ax = _single_axes(ax)
    d = table[interval].to_numpy(dtype=float)
    r = table["threshold_ratio"].to_numpy(dtype=float)
    r_lo = table["threshold_ratio_ci_low"].to_numpy(dtype=float)
    r_hi = table["threshold_ratio_ci_high"].to_numpy(dtype=float)
    if "status" in table.columns:  # threshold_ratio_vs_interval says which rows are bounds, not fits
        status = table["status"].astype(str).to_numpy()
        never, always = status == "never_fired", status == "always_fired"
    else:
        never, always = np.isinf(r), np.isnan(r)
    fitted = np.isfinite(r) & ~never & ~always
    tested_hi = table["max_tested_ratio"].to_numpy(dtype=float) if "max_tested_ratio" in table else r_lo
    tested_lo = table["min_tested_ratio"].to_numpy(dtype=float) if "min_tested_ratio" in table else r_hi
    finite_vals = np.concatenate([r[fitted], r_lo[fitted], r_hi[fitted & np.isfinite(r_hi)], tested_hi[never],
                                  [1.0]])
    finite_vals = finite_vals[np.isfinite(finite_vals)]
    top = 1.08 * float(finite_vals.max())
    if fitted.any():
        hi_capped = np.minimum(r_hi[fitted], top)
        ax.errorbar(d[fitted], r[fitted],
                    yerr=np.vstack([np.clip(r[fitted] - r_lo[fitted], 0, None),
                                    np.clip(hi_capped - r[fitted], 0, None)]),
                    fmt="o", color=_DATA_COLOR, ms=5, capsize=3, lw=1.0, label="threshold ratio (CI)", zorder=3)
        open_top = fitted.copy()
        open_top[fitted] = ~np.isfinite(r_hi[fitted])
        if open_top.any():
            ax.plot(d[open_top], np.full(int(open_top.sum()), top), "^", color=_DATA_COLOR, ms=5,
                    label="CI open above")
    if never.any():
        ax.plot(d[never], tested_hi[never], "^", mfc="none", color="0.2", ms=7,
                label="no 2nd spike: threshold above")
    if always.any():
        ax.plot(d[always], tested_lo[always], "v", mfc="none", color="0.2", ms=7,
                label="2nd spike always: threshold below")
    ax.axhline(1.0, color="0.5", ls=":", lw=1.0, label="single-pulse threshold")
    left = 0.0 if d.min() >= 0 else float(d.min())
    right = float(d.max()) + 0.03 * (float(np.ptp(d)) or 1.0)
    if periods is not None:
        lines = []
        for name, value, ci, level in (
            ("absolute", periods.absolute_ms, periods.absolute_ci_ms, periods.absolute_ratio),
            ("relative", periods.relative_ms, periods.relative_ci_ms, 1.0 + periods.relative_elevation),
        ):
            lines.append(f"{name} ({_fmt(level)}×): {_fmt(value)} ms {_ci_text(ci)}")
        if np.isfinite(periods.absolute_ms):
            ax.axvspan(left, periods.absolute_ms, color="0.3", alpha=0.25, lw=0, label="absolute refractory")
        if np.isfinite(periods.relative_ms):
            start = periods.absolute_ms if np.isfinite(periods.absolute_ms) else left
            ax.axvspan(start, periods.relative_ms, color="0.3", alpha=0.1, lw=0, label="relative refractory")
        if periods.notes:
            lines.append("; ".join(periods.notes))
        ax.text(0.97, 0.97, "refractory periods\n" + "\n".join(lines), transform=ax.transAxes, va="top",
                ha="right", fontsize="small", bbox=_BOX)
    elif note:
        ax.text(0.97, 0.97, note, transform=ax.transAxes, va="top", ha="right", fontsize="small", wrap=True,
                bbox=_BOX)
    ax.set_xlim(left, right)
    ax.set_ylim(0.0, top * 1.05)
    ax.set_xlabel(_axis_label(interval, "interval between pulses"))
    ax.set_ylabel("2nd-pulse threshold (× single-pulse threshold)")
    ax.legend(loc="center right", fontsize="small")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# all-or-none


def plot_amplitude_histogram(
    summary: pd.DataFrame | AllOrNone,
    *,
    peak: str = "peak_mV",
    by: str = "amplitude_uA_cm2",
    split_mV: float | None = None,
    bins: int | Sequence[float] | str = 40,
    ax: Axes | None = None,
) -> Figure:
    """Histogram of peak responses, stacked by class (failure, intermediate, spike), with the split marked.

    Classes and statistics come from :func:`stochion.analysis.assess_all_or_none`: the bimodality coefficient
    (Pfister et al. 2013, doi:10.3389/fpsyg.2013.00700), Ashman's D (Ashman et al. 1994, doi:10.1086/117248),
    the fraction of intermediate responses and the slope of spike peak against stimulus are written on the axes.

    Parameters
    ----------
    summary : pandas.DataFrame or AllOrNone
        A per-trial summary with ``by`` and ``peak`` columns (assessed here), or an assessment.
    peak : str
        Peak-voltage column, default ``"peak_mV"``.
    by : str
        Stimulus column, default ``"amplitude_uA_cm2"`` (a summary only).
    split_mV : float, optional
        Fixed failure/spike boundary (mV) instead of the Otsu split (a summary only).
    bins : int, sequence or str
        As :func:`numpy.histogram_bin_edges`, default 40 bins over the range of peaks.
    ax : Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    if isinstance(summary, AllOrNone):
        result = summary
    elif isinstance(summary, pd.DataFrame):
        result = assess_all_or_none(summary, by=by, peak=peak, split_mV=split_mV)
    else:
        raise ValueError(f"summary must be a pandas DataFrame or an AllOrNone, got {type(summary).__name__}")
    responses = result.responses
    _v.require_columns(responses, [peak, "response"], name="summary")
    y = responses[peak].to_numpy(dtype=float)
    try:
        edges = np.histogram_bin_edges(y, bins=bins)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bins must be an int, a sequence of edges or a numpy bin rule, got {bins!r}") from exc
    fig, ax = _single_axes(ax)
    labels = responses["response"].astype(str).to_numpy()
    classes = [c for c in ("failure", "intermediate", "spike") if (labels == c).any()]
    ax.hist([y[labels == c] for c in classes], bins=edges, stacked=True,
            color=[_RESPONSE_COLORS[c] for c in classes],
            label=[f"{c} (n={int((labels == c).sum())})" for c in classes], edgecolor="white", linewidth=0.3)
    ax.axvline(result.split_mV, color="0.2", ls="--", lw=1.0, label=f"split {_fmt(result.split_mV)} mV")
    n = len(y)
    slope_unit = result.slope_unit.replace("mV_per_", "")
    lines = [
        f"bimodality coefficient = {_fmt(result.bimodality_coefficient)} (> 0.555: bimodal)",
        f"Ashman's D = {_fmt(result.ashman_d)} (> 2: separated)",
        f"intermediate: {result.n_intermediate}/{n} = {_pct(result.fraction_intermediate)} "
        f"({result.confidence:.0%} CI {_pct(result.fraction_intermediate_ci[0])}"
        f"–{_pct(result.fraction_intermediate_ci[1])})",
        f"spike peak slope = {_fmt(result.slope)} mV per {_split_column('x_' + slope_unit)[1] or slope_unit}",
    ]
    ax.text(0.5, 0.97, "\n".join(lines), transform=ax.transAxes, va="top", ha="center", fontsize="small",
            bbox=_BOX)
    ax.set_xlabel(_axis_label(peak, "peak potential"))
    ax.set_ylabel("trials (count)")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.45)  # room for the statistics above the bars
    ax.legend(loc="best", fontsize="small")  # the gap between the modes, usually
    return fig


# ----------------------------------------------------------------------------------------------------------------
# spike trains


_ISI_REFERENCES = ("exponential", "gamma")


def plot_isi_histogram(
    spikes: pd.DataFrame | Result,
    *,
    t_start_ms: float | None = None,
    t_stop_ms: float | None = None,
    bins: int | Sequence[float] | str = 40,
    reference: str | Sequence[str] | None = _ISI_REFERENCES,
    ax: Axes | None = None,
) -> Figure:
    """Inter-spike-interval histogram (as a probability density) with exponential and gamma references.

    The exponential has the observed mean ISI (a Poisson process of the same rate); the gamma density is the
    maximum-likelihood fit with location 0 (:func:`scipy.stats.gamma.fit`), a renewal process whose shape
    ``k`` measures regularity (CV = 1/sqrt(k)). ISIs are formed within trials (Perkel DH, Gerstein GL, Moore GP
    (1967) Biophys J 7:391-418. doi:10.1016/S0006-3495(67)86596-2).

    Parameters
    ----------
    spikes : pandas.DataFrame or Result
        Spike table (``trial``, ``t_ms``) or a run.
    t_start_ms, t_stop_ms : float, optional
        Use only spikes in ``[t_start_ms, t_stop_ms)`` (ms).
    bins : int, sequence or str
        As :func:`numpy.histogram_bin_edges`; default 40 bins from 0 to the longest ISI.
    reference : str, sequence of str or None
        Reference densities to draw: ``"exponential"``, ``"gamma"`` (default both), or ``None``.
    ax : Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    spikes = _table(spikes, "spikes", name="spikes")
    refs = () if reference is None else ((reference,) if isinstance(reference, str) else tuple(reference))
    bad = [r for r in refs if r not in _ISI_REFERENCES]
    if bad:
        raise ValueError(f"reference must be drawn from {list(_ISI_REFERENCES)} or None, got {bad}")
    isi = inter_spike_intervals(spikes, t_start_ms=t_start_ms, t_stop_ms=t_stop_ms)["isi_ms"].to_numpy(float)
    if len(isi) < 2:
        raise ValueError(f"spikes gives {len(isi)} inter-spike interval(s) within trials; at least 2 are needed")
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        edges = np.linspace(0.0, float(isi.max()) * 1.0001, int(bins) + 1)
    else:
        try:
            edges = np.histogram_bin_edges(isi, bins=bins)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bins must be an int, a sequence of edges or a numpy bin rule, got {bins!r}") from exc
    fig, ax = _single_axes(ax)
    ax.hist(isi, bins=edges, density=True, color="0.75", edgecolor="white", linewidth=0.3,
            label=f"ISIs (n={len(isi)})")
    mean = float(isi.mean())
    cv = float(isi.std(ddof=1) / mean)
    x = np.linspace(0.0, float(edges[-1]), 400)
    stats_text = f"mean = {_fmt(mean)} ms\nCV = {_fmt(cv)}"
    if "exponential" in refs:
        ax.plot(x, stats.expon.pdf(x, scale=mean), color=_DATA_COLOR, lw=1.5, ls="--",
                label=f"exponential (Poisson), mean {_fmt(mean)} ms")
    if "gamma" in refs:
        if np.ptp(isi) > 0:
            shape, _, scale = stats.gamma.fit(isi, floc=0.0)
            ax.plot(x, stats.gamma.pdf(x, shape, scale=scale), color=_FIT_COLOR, lw=1.5,
                    label=f"gamma ML, shape {_fmt(shape)}")
        else:  # the gamma MLE diverges (shape -> infinity) for a perfectly regular train
            stats_text += "\nall ISIs equal: no gamma fit"
    ax.text(0.97, 0.6, stats_text, transform=ax.transAxes, va="top", ha="right", fontsize="small", bbox=_BOX)
    ax.set_xlim(0.0, float(edges[-1]))
    ax.set_xlabel("inter-spike interval (ms)")
    ax.set_ylabel("probability density (1/ms)")
    ax.legend(loc="upper right", fontsize="small")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# spectra


def _psd_unit_label(unit: str | None) -> str:
    if unit in (None, "", "1"):
        return "1/Hz"
    return f"{_pretty_unit_token(unit)}²/Hz"


def plot_psd(
    f: np.ndarray | pd.DataFrame,
    S: np.ndarray | None = None,
    *,
    analytic: np.ndarray | Callable[[np.ndarray], np.ndarray] | None = None,
    se: np.ndarray | None = None,
    unit: str | None = "pA",
    ax: Axes | None = None,
) -> Figure:
    """One-sided power spectral density on log-log axes: a Welch estimate against an analytic Lorentzian sum.

    The 0 Hz bin cannot be shown on a log axis and is left out. Compare the estimate with the prediction well
    below the Nyquist frequency (see :func:`stochion.analysis.psd`; the prediction is e.g.
    :func:`stochion.analysis.lorentzian_psd`, Colquhoun D, Hawkes AG (1977) Proc R Soc Lond B 199:231-262.
    doi:10.1098/rspb.1977.0085).

    Parameters
    ----------
    f : array_like or pandas.DataFrame
        Frequencies (Hz), or the output of :func:`stochion.analysis.psd` (``f_Hz``, ``psd_<unit>2_Hz``,
        ``psd_se_<unit>2_Hz``): then ``S`` must be omitted and ``se`` and ``unit`` come from the table.
    S : array_like
        Estimated spectral density at ``f`` (``unit``**2/Hz).
    analytic : array_like or callable, optional
        Prediction at ``f`` (same shape), or a function of the frequency array (Hz) returning it.
    se : array_like, optional
        Standard error of ``S``, drawn as a band of ±1 SE.
    unit : str or None
        Unit of the signal, default ``"pA"`` (density in pA²/Hz); ``None`` for a count (1/Hz).
    ax : Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    if isinstance(f, pd.DataFrame):
        if S is not None:
            raise ValueError("S must be omitted when f is a psd table (it holds the estimate)")
        table = _v.require_frame(f, name="f")
        names = [c for c in table.columns if str(c).startswith("psd_") and not str(c).startswith("psd_se_")]
        if "f_Hz" not in table.columns or len(names) != 1:
            raise ValueError(
                "a psd table needs an 'f_Hz' column and exactly one 'psd_<unit>2_Hz' column (the output of "
                f"stochion.analysis.psd); it has: {', '.join(map(str, table.columns))}"
            )
        name = names[0]
        m = re.fullmatch(r"psd_(.+)2_Hz", name)
        unit = m.group(1) if m else None
        se_name = name.replace("psd_", "psd_se_", 1)
        if se is None and se_name in table.columns:
            se = table[se_name].to_numpy(dtype=float)
        f, S = table["f_Hz"].to_numpy(dtype=float), table[name].to_numpy(dtype=float)
    if S is None:
        raise ValueError("S (the spectral density at f) is required when f is an array")
    f = _finite_array(f, name="f")
    S = _finite_array(S, name="S")
    if f.shape != S.shape:
        raise ValueError(f"f and S must have the same length, got {len(f)} and {len(S)}")
    if np.any(f < 0):
        raise ValueError("f must be >= 0 (Hz): a one-sided spectrum")
    if np.any(S < 0):
        raise ValueError("S must be >= 0: a power spectral density is never negative")
    if unit is not None and not isinstance(unit, str):
        raise ValueError(f"unit must be a unit string such as 'pA' or None, got {unit!r}")
    keep = f > 0
    if keep.sum() < 2:
        raise ValueError(f"f has {int(keep.sum())} positive frequency(ies); at least 2 are needed for a log plot")
    A = None
    if analytic is not None:
        A = analytic(f) if callable(analytic) else analytic
        A = _finite_array(A, name="analytic")
        if A.shape != f.shape:
            raise ValueError(f"analytic must have one value per frequency ({len(f)}), got {len(A)}")
    if se is not None:
        se = _finite_array(se, name="se")
        if se.shape != f.shape:
            raise ValueError(f"se must have one value per frequency ({len(f)}), got {len(se)}")
    fig, ax = _single_axes(ax)
    fk, Sk = f[keep], S[keep]
    ax.loglog(fk, Sk, color=_DATA_COLOR, lw=1.2, label="Welch estimate")
    if se is not None:
        lo = np.maximum(Sk - se[keep], Sk * 1e-3)
        ax.fill_between(fk, lo, Sk + se[keep], color=_DATA_COLOR, alpha=0.2, lw=0, label="±1 SE")
    if A is not None:
        ax.loglog(fk, A[keep], color=_FIT_COLOR, lw=1.5, ls="--", label="Lorentzian prediction")
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel(f"power spectral density ({_psd_unit_label(unit)})")
    ax.legend(loc="lower left", fontsize="small")
    return fig


# ----------------------------------------------------------------------------------------------------------------
# output


def save_figure(fig: Figure, path: str | Path, *, dpi: int = PNG_DPI) -> Path:
    """Write ``fig`` as a PNG (``dpi`` 150 by default) and return the path written.

    A path without a suffix gets ``.png``; any other suffix is refused. Missing parent folders are created.
    """
    if not isinstance(fig, Figure):
        raise ValueError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    path = Path(path)
    if path.suffix == "":
        path = path.with_suffix(".png")
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_figure writes PNG; the path must end in .png, got {str(path)!r}")
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float, np.integer, np.floating)) or not dpi > 0:
        raise ValueError(f"dpi must be a positive number, got {dpi!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path
