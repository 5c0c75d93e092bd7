"""Malformed inputs raise ValueError naming the table, the column and the problem; the public API is curated."""

import numpy as np
import pandas as pd
import pytest

import stochion.analysis as sa


def good_trace():
    t = np.arange(0, 10, 0.1)
    return pd.DataFrame({"trial": 0, "t_ms": t, "V_mV": -65 + 0 * t, "n_open_K": 3, "I_K_pA": 0.5})


TRACE_FUNCS = [
    lambda tr: sa.detect_spikes(tr),
    lambda tr: sa.spike_features(tr),
    lambda tr: sa.resting_potential(tr),
]


@pytest.mark.parametrize("func", TRACE_FUNCS)
def test_missing_column(func):
    with pytest.raises(ValueError, match=r"trace is missing column\(s\) \['V_mV'\]"):
        func(good_trace().drop(columns="V_mV"))


@pytest.mark.parametrize("func", TRACE_FUNCS)
def test_nan_in_column(func):
    tr = good_trace()
    tr.loc[5, "V_mV"] = np.nan
    with pytest.raises(ValueError, match=r"trace column 'V_mV' has 1 non-finite value.*row 5"):
        func(tr)


@pytest.mark.parametrize("func", TRACE_FUNCS)
def test_unsorted_time(func):
    tr = good_trace()
    tr.loc[[3, 4], "t_ms"] = [0.4, 0.3]
    with pytest.raises(ValueError, match=r"'t_ms' must be strictly increasing within each trial; in trial 0"):
        func(tr)


@pytest.mark.parametrize("func", TRACE_FUNCS)
def test_empty_table(func):
    with pytest.raises(ValueError, match="trace is empty"):
        func(good_trace().iloc[:0])


def test_not_a_dataframe_and_interleaved_trials():
    with pytest.raises(ValueError, match="must be a pandas DataFrame, got dict"):
        sa.detect_spikes({"t_ms": [0, 1], "V_mV": [0, 1]})
    tr = pd.concat([good_trace(), good_trace().assign(trial=1)], ignore_index=True)
    tr = tr.iloc[np.r_[0:50, 100:150, 50:100, 150:200]]
    with pytest.raises(ValueError, match="contiguous"):
        sa.detect_spikes(tr)


def test_non_uniform_sampling_and_trial_steps():
    tr = good_trace()
    tr.loc[10:, "t_ms"] += 0.05
    with pytest.raises(ValueError, match="uniformly sampled.*trial 0"):
        sa.psd(tr, "I_K_pA")
    two = pd.concat([good_trace(), good_trace().assign(trial=1, t_ms=np.arange(100) * 0.2)], ignore_index=True)
    with pytest.raises(ValueError, match="different sampling steps"):
        sa.resting_potential(two)


def test_parameter_errors_name_the_parameter():
    tr = good_trace()
    with pytest.raises(ValueError, match=r"method must be one of \['dvdt', 'curvature'\], got 'slope'"):
        sa.spike_features(tr, method="slope")
    with pytest.raises(ValueError, match="dvdt_threshold_mV_ms must be a finite number > 0, got -1"):
        sa.spike_features(tr, dvdt_threshold_mV_ms=-1)
    with pytest.raises(ValueError, match="confidence must lie strictly between 0 and 1"):
        sa.firing_probability(pd.DataFrame({"amplitude_uA_cm2": [1.0], "n_spikes": [0]}), confidence=95)
    with pytest.raises(ValueError, match="n_channels must be a positive integer"):
        sa.compare_open_counts_to_binomial(tr, channel_type="K", n_channels=2.5)
    with pytest.raises(ValueError, match="n_open_Na"):
        sa.compare_open_counts_to_binomial(tr, channel_type="Na", n_channels=5)
    with pytest.raises(ValueError, match="between 0 and n_channels=2"):
        sa.compare_open_counts_to_binomial(tr, channel_type="K", n_channels=2)
    with pytest.raises(ValueError, match="t_stop_ms must be finite and greater than t_start_ms"):
        sa.firing_rate(pd.DataFrame({"trial": [0], "t_ms": [1.0]}), trials=1, t_start_ms=5.0, t_stop_ms=1.0)
    with pytest.raises(ValueError, match="trials must be an int"):
        sa.firing_rate(pd.DataFrame({"trial": [0], "t_ms": [1.0]}), trials="all", t_start_ms=0, t_stop_ms=1)
    with pytest.raises(ValueError, match="fired"):
        sa.firing_probability(pd.DataFrame({"amplitude_uA_cm2": [1.0], "fired": [2]}))


def test_channel_event_and_summary_errors():
    ev = pd.DataFrame({"trial": [0], "channel_type": ["K"], "channel_id": [0], "t_ms": [1.0],
                       "from_state": ["C"], "to_state": [None]})
    with pytest.raises(ValueError, match="'to_state' has 1 missing value"):
        sa.dwell_times(ev)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['from_state'\]"):
        sa.dwell_times(ev.drop(columns="from_state"))
    with pytest.raises(ValueError, match="summary is missing"):
        sa.fit_thresholds(pd.DataFrame({"amplitude_uA_cm2": [1.0], "n_spikes": [1]}))


def test_public_api_is_curated():
    assert len(sa.__all__) == len(set(sa.__all__))
    for name in sa.__all__:
        obj = getattr(sa, name)
        assert callable(obj)
        assert obj.__doc__ and len(obj.__doc__) > 40, name
    # every public function except plain spike detection cites its method (house style: DOI per statistic)
    import inspect

    for name in sa.__all__:
        obj = getattr(sa, name)
        if inspect.isfunction(obj) and name != "detect_spikes":
            assert "doi:" in obj.__doc__, name

    for name in sa.__all__:
        obj = getattr(sa, name)
        if inspect.isfunction(obj):
            sig = inspect.signature(obj)
            kinds = [p.kind for p in sig.parameters.values()]
            # at most the obvious leading arguments are positional (lorentzian_* take plain arrays)
            n_positional = sum(k == inspect.Parameter.POSITIONAL_OR_KEYWORD for k in kinds)
            assert n_positional <= (5 if name.startswith("lorentzian") else 2), name
