"""Figures: each plot returns a Figure with the expected panels, unit-labelled axes and the input data drawn.

Data are small synthetic tables (fixed numpy seeds) plus one short real simulation; figures are made with the
object API and written with the Agg renderer, so nothing is shown and pyplot's figure list is never touched.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy import special, stats  # noqa: E402

import stochion as si  # noqa: E402
from stochion import plotting as sp  # noqa: E402
from stochion.analysis import (  # noqa: E402
    assess_all_or_none,
    firing_probability,
    fit_threshold,
    lorentzian_count_psd,
    psd,
    refractory_periods,
    threshold_ratio_vs_interval,
)
from stochion.results import Result  # noqa: E402

OPEN = {"Na": ["O"], "K": ["O"]}


# ---------------------------------------------------------------------------------------------------------------
# synthetic data


def make_trace(n_trials=1, n=201, dt=0.05, clamp=False):
    rows = []
    for k in range(n_trials):
        t = np.arange(n) * dt
        V = -65.0 + 10.0 * np.sin(t + k) + k
        df = pd.DataFrame({
            "trial": k, "t_ms": t, "V_mV": V,
            "n_open_Na": (5 + 5 * np.sin(2 * t)).round(), "I_Na_pA": np.cos(t),
            "n_open_K": (3 + 2 * np.cos(t)).round() + k, "I_K_pA": np.sin(t),
            "I_leak_pA": 0.1 * V, "I_stim_pA": np.where(t >= 2.0, 7.0, 0.0),
        })
        if clamp:
            df["I_stim_pA"] = 0.0
            df["V_clamp_mV"] = np.where(t < 5.0, -65.0, 0.0)
            df["V_mV"] = df["V_clamp_mV"]
            df["I_clamp_pA"] = 100 * np.sin(t)
        rows.append(df)
    return pd.concat(rows, ignore_index=True)


def make_events():
    """Two Na channels and one K channel with known open periods in a 0-10 ms trial (state 'O' conducts).

    Na 3: closed, opens at 1, closes at 3, opens at 5 and stays open -> [1, 3], [5, 10].
    Na 7: open from the start, closes at 2, opens at 4, closes at 6 -> [0, 2], [4, 6].
    Na 9: never open (only C <-> I) -> not shown.
    K 0: opens at 8.5 -> [8.5, 10].
    """
    ev = [
        ("Na", 3, 1.0, "C", "O"), ("Na", 3, 3.0, "O", "C"), ("Na", 3, 5.0, "C", "O"),
        ("Na", 7, 2.0, "O", "C"), ("Na", 7, 4.0, "C", "O"), ("Na", 7, 6.0, "O", "I"),
        ("Na", 9, 0.5, "C", "I"), ("Na", 9, 7.0, "I", "C"),
        ("K", 0, 8.5, "C", "O"),
    ]
    df = pd.DataFrame(ev, columns=["channel_type", "channel_id", "t_ms", "from_state", "to_state"])
    df = df.sort_values("t_ms", kind="stable").reset_index(drop=True)
    df.insert(0, "trial", 0)
    df["channel_type"] = pd.Categorical(df["channel_type"], categories=["Na", "K"], ordered=True)
    states = pd.CategoricalDtype(["C", "O", "I"], ordered=True)
    df["from_state"] = df["from_state"].astype(states)
    df["to_state"] = df["to_state"].astype(states)
    df["V_mV"] = -65.0
    return df


def make_result(events=True, provenance=True):
    trace = make_trace(n=201, dt=0.05)  # 0 .. 10 ms
    prov = {}
    if provenance:
        prov = {"patch": {"channels": [{"scheme": {"name": "Na", "open_states": ["O"]}},
                                       {"scheme": {"name": "K", "open_states": ["O"]}}]}}
    spikes = pd.DataFrame({"trial": [0], "t_ms": [1.0], "peak_mV": [-55.0], "peak_t_ms": [1.5]})
    return Result(trace=trace, spikes=spikes, channel_events=make_events() if events else None, provenance=prov)


def bar_spans(collection):
    """(start, stop) of every bar of a broken_barh collection, and the row centre."""
    spans = [(p.vertices[:, 0].min(), p.vertices[:, 0].max()) for p in collection.get_paths()]
    y = collection.get_paths()[0].vertices[:, 1]
    return spans, 0.5 * (y.min() + y.max())


def x_extent(patch):
    xy = patch.get_patch_transform().transform(patch.get_path().vertices)
    return xy[:, 0].min(), xy[:, 0].max()


def hist_label(container):
    """Label of a histogram's bars (ax.hist puts it on the first bar)."""
    return container.patches[0].get_label()


def errorbar_line(ax, i=0):
    return ax.containers[i].lines[0]


def sweep_summary(rng, levels=np.linspace(8, 12, 9), n=40, theta=10.0, sigma=0.8):
    x = np.repeat(levels, n)
    fired = rng.random(len(x)) < special.ndtr((x - theta) / sigma)
    return pd.DataFrame({"amplitude_uA_cm2": x, "trial": np.arange(len(x)), "n_spikes": fired.astype(int)})


def paired_pulse_summary(rng, n_per=8):
    intervals = np.arange(1.0, 12.01, 1.0)
    ratios = np.geomspace(0.85, 4.0, 15)
    d = np.repeat(intervals, len(ratios) * n_per)
    r = np.tile(np.repeat(ratios, n_per), len(intervals))
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        theta = np.where(d > 2.0, 1.0 / -np.expm1(-(d - 2.0) / 2.0), np.inf)
        p = np.where(np.isinf(theta), 0.0, special.ndtr((r - theta) / (0.05 * theta)))
    fired = rng.random(len(d)) < p
    return pd.DataFrame({"interval_ms": d, "amplitude_ratio": r, "n_spikes": 1 + fired.astype(int)})


def all_or_none_summary(rng, n=200):
    amp = rng.uniform(5, 9, n)
    fired = rng.random(n) < special.ndtr((amp - 7) / 0.5)
    peak = np.where(fired, 38 + 0.3 * amp + rng.normal(0, 2, n), -60 + 2 * amp + rng.normal(0, 1.5, n))
    peak[:3] = [-10.0, -5.0, 0.0]  # three intermediate responses
    return pd.DataFrame({"amplitude_uA_cm2": amp, "peak_mV": peak})


@pytest.fixture(autouse=True)
def no_pyplot_state():
    """Every test: pyplot's figure list and rcParams are left as they were."""
    before = (plt.get_fignums(), dict(matplotlib.rcParams))
    yield
    assert plt.get_fignums() == before[0]
    assert dict(matplotlib.rcParams) == before[1]


# ---------------------------------------------------------------------------------------------------------------
# labels


@pytest.mark.parametrize("column, label", [
    ("amplitude_uA_cm2", "amplitude (µA/cm²)"),
    ("interval_ms", "interval (ms)"),
    ("V_mV", "V (mV)"),
    ("max_rise_mV_ms", "max rise (mV/ms)"),
    ("psd_pA2_Hz", "psd (pA²/Hz)"),
    ("psd_per_Hz", "psd (1/Hz)"),
    ("first_spike_ms", "first spike (ms)"),
    ("amplitude_ratio", "amplitude ratio"),
    ("n_open_Na", "n open Na"),
])
def test_axis_labels_from_unit_suffixed_columns(column, label):
    assert sp._axis_label(column) == label


# ---------------------------------------------------------------------------------------------------------------
# plot_trace


def test_trace_panels_data_and_labels():
    r = make_result()
    fig = sp.plot_trace(r)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4  # V, stimulus, open counts, raster
    ax_v, ax_s, ax_n, ax_r = fig.axes
    tr = r.trace
    np.testing.assert_array_equal(ax_v.lines[0].get_xdata(), tr["t_ms"])
    np.testing.assert_array_equal(ax_v.lines[0].get_ydata(), tr["V_mV"])
    np.testing.assert_array_equal(ax_s.lines[0].get_ydata(), tr["I_stim_pA"])
    assert ax_s.lines[0].get_drawstyle() == "steps-post"
    assert [ln.get_label() for ln in ax_n.lines] == ["Na", "K"]
    np.testing.assert_array_equal(ax_n.lines[0].get_ydata(), tr["n_open_Na"])
    np.testing.assert_array_equal(ax_n.lines[1].get_ydata(), tr["n_open_K"])
    assert ax_v.get_ylabel() == "V (mV)"
    assert ax_s.get_ylabel() == "I_stim (pA)"
    assert ax_n.get_ylabel() == "open channels (count)"
    assert ax_r.get_xlabel() == "time (ms)"
    assert ax_v.get_xlim() == (0.0, 10.0)


def test_trace_raster_draws_exact_open_periods():
    fig = sp.plot_trace(make_result())
    ax_r = fig.axes[-1]
    bars = [c for c in ax_r.collections if isinstance(c, PolyCollection)]
    assert [c.get_label() for c in bars] == ["Na 3", "Na 7", "K 0"]  # Na 9 is never open: not shown
    spans = [bar_spans(c) for c in bars]
    np.testing.assert_allclose(spans[0][0], [(1.0, 3.0), (5.0, 10.0)])
    np.testing.assert_allclose(spans[1][0], [(0.0, 2.0), (4.0, 6.0)])
    np.testing.assert_allclose(spans[2][0], [(8.5, 10.0)])
    assert spans[0][1] > spans[1][1] > spans[2][1]  # first type, lowest id at the top
    assert [t.get_text() for t in ax_r.get_yticklabels()] == ["Na (n=2)", "K (n=1)"]
    # a window clips the bars; max_channels keeps the lowest ids that are open in the window
    fig = sp.plot_trace(make_result(), t_range_ms=(2.5, 7.0), max_channels=1)
    bars = [c for c in fig.axes[-1].collections if isinstance(c, PolyCollection)]
    assert [c.get_label() for c in bars] == ["Na 3"]  # K 0 opens only after 7 ms
    np.testing.assert_allclose(bar_spans(bars[0])[0], [(2.5, 3.0), (5.0, 7.0)])


def test_trace_open_states_argument_and_validation():
    r = make_result(provenance=False)
    with pytest.raises(ValueError, match="open_states"):
        sp.plot_trace(r)
    fig = sp.plot_trace(r, open_states=OPEN)
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match=r"open_states\['Na'\] names state\(s\) \['X'\]"):
        sp.plot_trace(r, open_states={"Na": ["X"], "K": ["O"]})


def test_trace_panel_switches():
    r = make_result(events=False)
    assert len(sp.plot_trace(r).axes) == 3  # no events: no raster
    assert len(sp.plot_trace(make_result(), raster=False, channels=False, stimulus=False).axes) == 1
    with pytest.raises(ValueError, match="raster=True needs channel_events"):
        sp.plot_trace(r, raster=True)
    bare = r.trace[["trial", "t_ms", "V_mV"]]
    assert len(sp.plot_trace(bare).axes) == 1
    with pytest.raises(ValueError, match="stimulus=True"):
        sp.plot_trace(bare, stimulus=True)
    with pytest.raises(ValueError, match="channels=True"):
        sp.plot_trace(bare, channels=True)


def test_trace_selects_trial_point_and_window():
    tr = make_trace(n_trials=3)
    fig = sp.plot_trace(tr, trial=2, t_range_ms=(1.0, 4.0))
    sel = tr[(tr["trial"] == 2) & (tr["t_ms"] >= 1.0) & (tr["t_ms"] <= 4.0)]
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_ydata(), sel["V_mV"])
    np.testing.assert_array_equal(fig.axes[2].lines[1].get_ydata(), sel["n_open_K"])
    assert fig.axes[0].get_xlim() == (1.0, 4.0)
    with pytest.raises(ValueError, match="no trial 5"):
        sp.plot_trace(tr, trial=5)
    with pytest.raises(ValueError, match="t_range_ms"):
        sp.plot_trace(tr, t_range_ms=(4.0, 1.0))
    with pytest.raises(ValueError, match="holds 0 sample"):
        sp.plot_trace(tr, t_range_ms=(100.0, 200.0))
    sweep = pd.concat([tr.assign(point=0), tr.assign(point=1, V_mV=tr["V_mV"] + 100)], ignore_index=True)
    with pytest.raises(ValueError, match="choose one with point="):
        sp.plot_trace(sweep)
    fig = sp.plot_trace(sweep, point=1, trial=0)
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_ydata(), tr[tr["trial"] == 0]["V_mV"] + 100)


def test_trace_voltage_clamp_shows_command_and_clamp_current():
    tr = make_trace(clamp=True)
    fig = sp.plot_trace(tr)
    assert len(fig.axes) == 3  # V with the command, clamp current, open counts
    ax_v, ax_i, _ = fig.axes
    np.testing.assert_array_equal(ax_v.lines[1].get_ydata(), tr["V_clamp_mV"])
    np.testing.assert_array_equal(ax_i.lines[0].get_ydata(), tr["I_clamp_pA"])
    assert ax_i.get_ylabel() == "clamp current (pA)"
    # current injected in an unclamped stretch gets its own stimulus panel
    mixed = tr.assign(I_stim_pA=np.where(tr["t_ms"] > 8, 3.0, 0.0),
                      V_clamp_mV=np.where(tr["t_ms"] > 8, np.nan, tr["V_clamp_mV"]))
    assert [a.get_ylabel() for a in sp.plot_trace(mixed).axes][2] == "I_stim (pA)"


def test_trace_draws_into_given_axes():
    fig = Figure()
    axes = fig.subplots(3, 1)
    out = sp.plot_trace(make_result(events=False), axes=axes)
    assert out is fig
    assert len(axes[0].lines) == 1 and len(axes[2].lines) == 2
    with pytest.raises(ValueError, match="must hold 3 matplotlib Axes"):
        sp.plot_trace(make_result(events=False), axes=axes[:2])
    with pytest.raises(ValueError, match="must hold 3 matplotlib Axes"):
        sp.plot_trace(make_result(events=False), axes=[1, 2, 3])


def test_trace_rejects_malformed_input():
    with pytest.raises(ValueError, match="Result or a trace DataFrame"):
        sp.plot_trace([1, 2, 3])
    with pytest.raises(ValueError, match="missing column"):
        sp.plot_trace(make_trace().drop(columns="V_mV"))
    with pytest.raises(ValueError, match="empty"):
        sp.plot_trace(make_trace().iloc[:0])
    with pytest.raises(ValueError, match="strictly increasing"):
        sp.plot_trace(make_trace().iloc[::-1])
    with pytest.raises(ValueError, match="max_channels"):
        sp.plot_trace(make_result(), max_channels=0)
    with pytest.raises(ValueError, match="raster must be"):
        sp.plot_trace(make_result(), raster="yes")


def test_trace_of_a_real_simulation_with_agents():
    r = si.simulate(si.hh_patch(10.0), si.CurrentStep(amplitude_uA_cm2=10.0), t_stop_ms=15.0, seed=3,
                    track_agents=True)
    fig = sp.plot_trace(r, max_channels=5)
    assert len(fig.axes) == 4
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_ydata(), r.trace["V_mV"])
    bars = [c for c in fig.axes[-1].collections if isinstance(c, PolyCollection)]
    types = [c.get_label().split()[0] for c in bars]
    assert 0 < types.count("Na") <= 5 and 0 < types.count("K") <= 5
    # every bar lies within the run
    for c in bars:
        for a, b in bar_spans(c)[0]:
            assert 0.0 <= a < b <= 15.0


# ---------------------------------------------------------------------------------------------------------------
# plot_firing_probability


def test_firing_probability_points_fit_and_annotation():
    summary = sweep_summary(np.random.default_rng(1))
    fig = sp.plot_firing_probability(summary)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    table = firing_probability(summary)
    line = errorbar_line(ax)
    np.testing.assert_array_equal(line.get_xdata(), table["amplitude_uA_cm2"])
    np.testing.assert_array_equal(line.get_ydata(), table["p_fired"])
    fit = fit_threshold(summary)
    curve = [ln for ln in ax.lines if ln.get_label().startswith("cumulative Gaussian")][0]
    np.testing.assert_allclose(curve.get_ydata(), fit.probability(curve.get_xdata()), rtol=1e-6)
    assert ax.get_xlabel() == "amplitude (µA/cm²)"
    assert ax.get_ylabel() == "firing probability"
    text = "\n".join(t.get_text() for t in ax.texts)
    assert f"threshold = {fit.threshold:.3g} µA/cm²" in text
    assert f"relative spread σ/θ = {fit.relative_spread:.3g}" in text
    # Wilson error bars: segment ends are the interval limits
    seg = ax.containers[0].lines[2][0].get_segments()
    np.testing.assert_allclose([s[0][1] for s in seg], table["p_ci_low"])
    np.testing.assert_allclose([s[1][1] for s in seg], table["p_ci_high"])


def test_firing_probability_from_table_with_given_fit_into_axes():
    summary = sweep_summary(np.random.default_rng(2))
    table = firing_probability(summary)
    fit = fit_threshold(table)
    fig = Figure()
    ax = fig.add_subplot()
    assert sp.plot_firing_probability(table, fit, ax=ax) is fig
    np.testing.assert_array_equal(errorbar_line(ax).get_ydata(), table["p_fired"])
    # points only
    fig = sp.plot_firing_probability(table, False)
    assert [ln.get_label() for ln in fig.axes[0].lines if ln.get_label().startswith("cumulative")] == []
    assert len(fig.axes[0].texts) == 0


def test_firing_probability_without_a_fittable_threshold_says_why():
    summary = sweep_summary(np.random.default_rng(3), theta=0.0)  # every trial fires
    fig = sp.plot_firing_probability(summary)
    assert "no probit fit: every trial fired" in fig.axes[0].texts[0].get_text()


def test_firing_probability_rejects_malformed_input():
    summary = sweep_summary(np.random.default_rng(4))
    with pytest.raises(ValueError, match="must be a pandas DataFrame"):
        sp.plot_firing_probability(summary.to_dict())
    with pytest.raises(ValueError, match="missing column"):
        sp.plot_firing_probability(summary, by="duration_ms")
    with pytest.raises(ValueError, match="fit was made on column"):
        sp.plot_firing_probability(summary.rename(columns={"amplitude_uA_cm2": "a_uA"}), fit_threshold(summary),
                                   by="a_uA")
    table = firing_probability(summary.assign(duration_ms=np.resize([1.0, 2.0], len(summary))),
                               by=["amplitude_uA_cm2", "duration_ms"])
    with pytest.raises(ValueError, match="repeated values"):
        sp.plot_firing_probability(table)
    with pytest.raises(ValueError, match="fit must be"):
        sp.plot_firing_probability(summary, fit="probit")
    with pytest.raises(ValueError, match="ax must be"):
        sp.plot_firing_probability(summary, ax="left")


# ---------------------------------------------------------------------------------------------------------------
# plot_refractory_curve


@pytest.fixture(scope="module")
def ratio_table():
    summary = paired_pulse_summary(np.random.default_rng(5))
    return threshold_ratio_vs_interval(summary, by="amplitude_ratio")


def test_refractory_curve_points_censoring_and_periods(ratio_table):
    fig = sp.plot_refractory_curve(ratio_table)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    r = ratio_table["threshold_ratio"].to_numpy()
    fitted = np.isfinite(r)
    line = errorbar_line(ax)
    np.testing.assert_array_equal(line.get_xdata(), ratio_table["interval_ms"][fitted])
    np.testing.assert_array_equal(line.get_ydata(), r[fitted])
    never = [ln for ln in ax.lines if ln.get_label().startswith("no 2nd spike")][0]
    np.testing.assert_array_equal(never.get_xdata(), ratio_table["interval_ms"][np.isinf(r)])
    np.testing.assert_array_equal(never.get_ydata(), ratio_table["max_tested_ratio"][np.isinf(r)])
    periods = refractory_periods(ratio_table)
    spans = {p.get_label(): x_extent(p) for p in ax.patches if "refractory" in p.get_label()}
    np.testing.assert_allclose(spans["absolute refractory"], (0.0, periods.absolute_ms))
    np.testing.assert_allclose(spans["relative refractory"], (periods.absolute_ms, periods.relative_ms))
    assert ax.get_xlabel() == "interval between pulses (ms)"
    assert ax.get_ylabel() == "2nd-pulse threshold (× single-pulse threshold)"
    assert f"{periods.relative_ms:.3g} ms" in ax.texts[0].get_text()


def test_refractory_curve_inputs(ratio_table):
    periods = refractory_periods(ratio_table, relative_elevation=0.1)
    fig = Figure()
    ax = fig.add_subplot()
    assert sp.plot_refractory_curve(periods, ax=ax) is fig
    spans = {p.get_label(): x_extent(p) for p in ax.patches}
    assert spans["relative refractory"][1] == pytest.approx(periods.relative_ms)
    ax2 = sp.plot_refractory_curve(ratio_table, periods=False).axes[0]
    assert len(ax2.patches) == 0 and len(ax2.texts) == 0
    # a per-trial summary is fitted here
    summary = paired_pulse_summary(np.random.default_rng(5))
    ax3 = sp.plot_refractory_curve(summary, by="amplitude_ratio").axes[0]
    np.testing.assert_array_equal(errorbar_line(ax3).get_ydata(), errorbar_line(
        sp.plot_refractory_curve(ratio_table).axes[0]).get_ydata())


def test_refractory_curve_rejects_malformed_input(ratio_table):
    summary = paired_pulse_summary(np.random.default_rng(6)).rename(columns={"amplitude_ratio": "amplitude_uA_cm2"})
    with pytest.raises(ValueError, match="single_pulse_threshold is required"):
        sp.plot_refractory_curve(summary)
    with pytest.raises(ValueError, match="must be a pandas DataFrame or a RefractoryPeriods"):
        sp.plot_refractory_curve(ratio_table.to_numpy())
    with pytest.raises(ValueError, match="missing column"):
        sp.plot_refractory_curve(ratio_table.drop(columns="threshold_ratio_ci_low"))
    with pytest.raises(ValueError, match="periods must be"):
        sp.plot_refractory_curve(ratio_table, periods=3.0)
    # an impossible period definition is reported on the axes, the curve is still drawn
    fig = sp.plot_refractory_curve(ratio_table, absolute_ratio=1.01)
    assert "refractory periods not determined" in fig.axes[0].texts[0].get_text()


# ---------------------------------------------------------------------------------------------------------------
# plot_amplitude_histogram


def test_amplitude_histogram_classes_split_and_statistics():
    summary = all_or_none_summary(np.random.default_rng(7))
    fig = sp.plot_amplitude_histogram(summary)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    res = assess_all_or_none(summary)
    counts = {hist_label(c).split()[0]: sum(p.get_height() for p in c.patches) for c in ax.containers}
    assert counts == {"failure": res.n_failures, "intermediate": res.n_intermediate, "spike": res.n_spikes}
    assert res.n_intermediate == 3
    # each class's bars hold exactly that class's peaks
    spike_bars = [c for c in ax.containers if hist_label(c).startswith("spike")][0]
    edges = np.histogram_bin_edges(summary["peak_mV"], 40)  # the default: 40 bins over all peaks
    np.testing.assert_allclose([p.get_x() for p in spike_bars.patches], edges[:-1])
    peaks = res.responses.loc[res.responses["response"] == "spike", "peak_mV"]
    np.testing.assert_array_equal([p.get_height() for p in spike_bars.patches], np.histogram(peaks, edges)[0])
    split = [ln for ln in ax.lines if ln.get_label().startswith("split")][0]
    assert split.get_xdata()[0] == pytest.approx(res.split_mV)
    assert ax.get_xlabel() == "peak potential (mV)"
    assert ax.get_ylabel() == "trials (count)"
    assert f"bimodality coefficient = {res.bimodality_coefficient:.3g}" in ax.texts[0].get_text()


def test_amplitude_histogram_from_assessment_into_axes_and_validation():
    summary = all_or_none_summary(np.random.default_rng(8))
    res = assess_all_or_none(summary, split_mV=-20.0)
    fig = Figure()
    ax = fig.add_subplot()
    assert sp.plot_amplitude_histogram(res, ax=ax, bins=10) is fig
    assert sum(len(c.patches) for c in ax.containers) == 10 * len(ax.containers)
    with pytest.raises(ValueError, match="missing column"):
        sp.plot_amplitude_histogram(summary.drop(columns="peak_mV"))
    with pytest.raises(ValueError, match="must be a pandas DataFrame or an AllOrNone"):
        sp.plot_amplitude_histogram(summary["peak_mV"].to_numpy())
    with pytest.raises(ValueError, match="bins must be"):
        sp.plot_amplitude_histogram(summary, bins="many")


# ---------------------------------------------------------------------------------------------------------------
# plot_isi_histogram


def gamma_spikes(rng, shape=4.0, mean_ms=10.0, n=(150, 100)):
    rows = []
    for trial, k in enumerate(n):
        t = np.cumsum(rng.gamma(shape, mean_ms / shape, k))
        rows.append(pd.DataFrame({"trial": trial, "t_ms": t, "peak_mV": 30.0, "peak_t_ms": t + 0.2}))
    return pd.concat(rows, ignore_index=True)


def test_isi_histogram_density_and_references():
    spikes = gamma_spikes(np.random.default_rng(9))
    fig = sp.plot_isi_histogram(spikes)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    bars = ax.containers[0].patches
    assert hist_label(ax.containers[0]) == "ISIs (n=248)"  # 149 + 99: never across trials
    assert sum(p.get_height() * p.get_width() for p in bars) == pytest.approx(1.0)
    isi = np.concatenate([np.diff(g["t_ms"]) for _, g in spikes.groupby("trial")])
    expo = [ln for ln in ax.lines if ln.get_label().startswith("exponential")][0]
    np.testing.assert_allclose(expo.get_ydata(), stats.expon.pdf(expo.get_xdata(), scale=isi.mean()))
    gam = [ln for ln in ax.lines if ln.get_label().startswith("gamma")][0]
    shape, _, scale = stats.gamma.fit(isi, floc=0.0)
    np.testing.assert_allclose(gam.get_ydata(), stats.gamma.pdf(gam.get_xdata(), shape, scale=scale))
    assert 3.0 < shape < 5.0
    assert ax.get_xlabel() == "inter-spike interval (ms)"
    assert ax.get_ylabel() == "probability density (1/ms)"


def test_isi_histogram_options_and_validation():
    spikes = gamma_spikes(np.random.default_rng(10))
    r = Result(trace=make_trace(), spikes=spikes)
    fig = Figure()
    ax = fig.add_subplot()
    assert sp.plot_isi_histogram(r, reference=None, ax=ax, bins=5) is fig
    assert len(ax.lines) == 0 and len(ax.containers[0].patches) == 5
    ax2 = sp.plot_isi_histogram(spikes, reference="gamma", t_stop_ms=200.0).axes[0]
    assert [ln.get_label().split()[0] for ln in ax2.lines] == ["gamma"]
    with pytest.raises(ValueError, match="reference must be"):
        sp.plot_isi_histogram(spikes, reference="lognormal")
    with pytest.raises(ValueError, match="at least 2 are needed"):
        sp.plot_isi_histogram(spikes.iloc[[0, 1, 200]])
    with pytest.raises(ValueError, match="missing column"):
        sp.plot_isi_histogram(spikes.drop(columns="t_ms"))
    with pytest.raises(ValueError, match="DataFrame or a stochion Result"):
        sp.plot_isi_histogram(spikes["t_ms"].to_numpy())


# ---------------------------------------------------------------------------------------------------------------
# plot_psd


def two_state_lorentzian(f):
    Q = np.array([[-0.2, 0.2], [0.1, -0.1]])
    return lorentzian_count_psd(Q, [False, True], 50, f)


def test_psd_loglog_estimate_and_prediction():
    f = np.linspace(0.0, 500.0, 101)
    S = two_state_lorentzian(f) * np.random.default_rng(11).gamma(20, 1 / 20, f.size)
    A = two_state_lorentzian(f)
    fig = sp.plot_psd(f, S, analytic=A, se=0.1 * S)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    est, pred = ax.lines
    np.testing.assert_array_equal(est.get_xdata(), f[1:])  # 0 Hz cannot be drawn on a log axis
    np.testing.assert_array_equal(est.get_ydata(), S[1:])
    np.testing.assert_array_equal(pred.get_ydata(), A[1:])
    assert ax.get_xlabel() == "frequency (Hz)"
    assert ax.get_ylabel() == "power spectral density (pA²/Hz)"
    ax2 = sp.plot_psd(f, S, analytic=two_state_lorentzian, unit=None).axes[0]
    np.testing.assert_array_equal(ax2.lines[1].get_ydata(), A[1:])
    assert ax2.get_ylabel() == "power spectral density (1/Hz)"


def test_psd_from_a_welch_table():
    rng = np.random.default_rng(12)
    trace = pd.DataFrame({"trial": 0, "t_ms": np.arange(4096) * 0.1, "I_K_pA": rng.normal(0, 1, 4096)})
    table = psd(trace, "I_K_pA")
    fig = Figure()
    ax = fig.add_subplot()
    assert sp.plot_psd(table, ax=ax) is fig
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), table["psd_pA2_Hz"][1:])
    assert len(ax.collections) == 1  # the ±1 SE band from psd_se_pA2_Hz
    assert ax.get_ylabel() == "power spectral density (pA²/Hz)"
    counts = psd(trace.assign(n_open_K=rng.integers(0, 10, 4096)), "n_open_K")
    assert sp.plot_psd(counts).axes[0].get_ylabel() == "power spectral density (1/Hz)"


def test_psd_rejects_malformed_input():
    f = np.linspace(0.0, 100.0, 11)
    S = np.ones(11)
    with pytest.raises(ValueError, match="same length"):
        sp.plot_psd(f, S[:-1])
    with pytest.raises(ValueError, match="never negative"):
        sp.plot_psd(f, -S)
    with pytest.raises(ValueError, match="finite"):
        sp.plot_psd(f, np.where(f > 50, np.nan, S))
    with pytest.raises(ValueError, match="at least 2 are needed"):
        sp.plot_psd([0.0, 10.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="S .* is required"):
        sp.plot_psd(f)
    with pytest.raises(ValueError, match="one value per frequency"):
        sp.plot_psd(f, S, analytic=np.ones(3))
    with pytest.raises(ValueError, match="f_Hz"):
        sp.plot_psd(pd.DataFrame({"freq": f, "power": S}))
    with pytest.raises(ValueError, match="1-D"):
        sp.plot_psd(np.ones((2, 3)), np.ones((2, 3)))


# ---------------------------------------------------------------------------------------------------------------
# save_figure, figures in subfigures


def test_save_figure_writes_a_valid_png(tmp_path):
    fig = sp.plot_trace(make_result())
    path = sp.save_figure(fig, tmp_path / "out" / "trace")
    assert path == tmp_path / "out" / "trace.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    img = mpimg.imread(path)
    w, h = fig.get_size_inches()
    assert img.shape[:2] == (round(h * 150), round(w * 150))
    assert img[..., :3].std() > 0.01  # not blank
    with pytest.raises(ValueError, match="must end in .png"):
        sp.save_figure(fig, tmp_path / "trace.pdf")
    with pytest.raises(ValueError, match="must be a matplotlib Figure"):
        sp.save_figure(fig.axes[0], tmp_path / "x.png")


def test_drawing_into_a_subfigure_returns_the_root_figure():
    fig = Figure()
    left, right = fig.subfigures(1, 2)
    assert sp.plot_psd([1.0, 2.0, 4.0], [3.0, 2.0, 1.0], ax=left.add_subplot()) is fig
    assert sp.plot_trace(make_trace(), axes=right.subplots(3, 1)) is fig


def test_isi_histogram_of_a_perfectly_regular_train():
    spikes = pd.DataFrame({"trial": 0, "t_ms": np.arange(10) * 5.0})
    ax = sp.plot_isi_histogram(spikes).axes[0]
    assert [ln.get_label().split()[0] for ln in ax.lines] == ["exponential"]
    assert "no gamma fit" in ax.texts[0].get_text()
