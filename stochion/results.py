"""Results of a run: tidy pandas tables plus provenance.

``trace``: one row per recorded sample — ``trial``, ``t_ms``, ``V_mV``, ``n_open_<type>``, ``I_<type>_pA``,
``I_leak_pA`` (constant leak), ``I_stim_pA``, and under voltage clamp ``V_clamp_mV`` and ``I_clamp_pA``
(the clamp current, equal to the total ionic current, outward positive; NaN outside clamped segments).
``spikes``: ``trial``, ``t_ms`` (exact upward crossing of the spike level), ``peak_mV``, ``peak_t_ms``.
``channel_events`` (agent tracking): ``trial``, ``channel_type``, ``channel_id``, ``t_ms``, ``from_state``,
``to_state``, ``V_mV``.
``protocol`` (runs through an :class:`~stochion.experiment.Experiment`): one row per protocol action.
"""

from __future__ import annotations

import functools
import json
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["Result", "package_versions"]

MODE_VOLTAGE = 1


@functools.lru_cache(maxsize=1)
def _versions() -> tuple:
    # importlib.metadata costs ~15 ms a call; versions cannot change within a process
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("stochion", "numpy", "numba", "scipy", "pandas", "simpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            out[name] = None
    return tuple(out.items())


def package_versions() -> dict:
    """Versions of stochion, Python and the numerical stack, for provenance."""
    return dict(_versions())


@dataclass
class Result:
    """The tables of a run and the provenance needed to reproduce it."""

    trace: pd.DataFrame
    spikes: pd.DataFrame
    channel_events: pd.DataFrame | None = None
    provenance: dict = field(default_factory=dict)
    protocol: pd.DataFrame | None = None  # one row per protocol action (t_ms, source, action, target, value, unit)

    # -- summaries --------------------------------------------------------------------------------------------
    def summary(self, *, settle_ms: float = 50.0) -> dict:
        """Headline numbers of a single-trial run (used by the command line).

        Spike statistics use the whole run. Clamp statistics (``<type>_open_fraction_mean`` / ``_var``) are
        time averages over the recorded samples after ``settle_ms`` (at most half the run) so that the
        relaxation from the initial state does not bias them.
        """
        t_stop = float(self.provenance.get("t_stop_ms", self.trace["t_ms"].max()))
        spk = self.spikes["t_ms"].to_numpy()
        isi = np.diff(spk)
        out = {
            "n_spikes": int(spk.size),
            "rate_hz": spk.size / (t_stop * 1e-3),
            "isi_mean_ms": float(isi.mean()) if isi.size else None,
            "isi_cv": float(isi.std(ddof=1) / isi.mean()) if isi.size > 1 else None,
            "n_events": int(self.provenance.get("n_events", 0)),
            "wall_s": float(self.provenance.get("wall_s", float("nan"))),
            "mean_V_mV": float(self.trace["V_mV"].mean()),
        }
        if "I_clamp_pA" in self.trace:
            settle = min(float(settle_ms), 0.5 * t_stop)
            late = self.trace[self.trace["t_ms"] >= settle]
            out["settle_ms"] = settle
            for name, n in self.provenance.get("channel_counts", {}).items():
                if n > 0 and f"n_open_{name}" in late:
                    frac = late[f"n_open_{name}"].to_numpy(dtype=float) / n
                    out[f"{name.lower()}_open_fraction_mean"] = float(frac.mean())
                    out[f"{name.lower()}_open_fraction_var"] = float(frac.var(ddof=1))
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}

    # -- output -------------------------------------------------------------------------------------------
    def save(self, path) -> list:
        """Write the tables as ``.parquet`` or ``.csv`` (by the suffix of ``path``) and the provenance as JSON.

        The trace goes to ``path``; spikes, channel events and provenance beside it with ``_spikes``,
        ``_channel_events`` and ``_provenance.json`` added to the stem. Returns the written paths.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".parquet", ".csv"):
            raise ValueError(f"output file must end in .parquet or .csv, got {str(path)!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        written = []
        tables = {"": self.trace, "_spikes": self.spikes}
        if self.channel_events is not None:
            tables["_channel_events"] = self.channel_events
        if self.protocol is not None:
            tables["_protocol"] = self.protocol
        for tag, df in tables.items():
            p = path.with_name(path.stem + tag + suffix)
            if suffix == ".parquet":
                df.to_parquet(p, index=False)
            else:
                df.to_csv(p, index=False)
            written.append(p)
        prov = path.with_name(path.stem + "_provenance.json")
        prov.write_text(json.dumps(self.provenance, indent=2, default=str))
        written.append(prov)
        return written


def build_result(sim, *, record=("V", "open", "currents"), provenance: dict, trial: int = 0) -> Result:
    """Assemble a :class:`Result` from a finished run (``PatchSimulation`` or ``DeterministicSimulation``)."""
    L = sim.lowered
    record = set(record)
    allowed = {"V", "open", "currents", "states"}
    if not record <= allowed:
        raise ValueError(f"record may contain {sorted(allowed)}, got {sorted(record)}")
    if sim._rec_chunks:
        t = np.concatenate([c[0] for c in sim._rec_chunks])
        V = np.concatenate([c[1] for c in sim._rec_chunks])
        counts = np.concatenate([c[2] for c in sim._rec_chunks])
        value = np.concatenate([c[3] for c in sim._rec_chunks])
        mode = np.concatenate([c[4] for c in sim._rec_chunks])
    else:
        t = V = value = np.zeros(0)
        counts = np.zeros((0, L.n_states))
        mode = np.zeros(0, dtype=np.int64)
    clamped = mode == MODE_VOLTAGE
    cols = {"trial": np.full(t.size, trial, dtype=np.int64), "t_ms": t, "V_mV": V}
    open_counts = L.open_counts(counts) if counts.size else np.zeros((t.size, len(L.type_names)))
    total_ionic = sim.patch.g_leak_nS * (V - sim.patch.E_leak_mV)
    for k, name in enumerate(L.type_names):
        current = open_counts[:, k] * L.g_unit_nS[k] * (V - L.reversal_mV[k])
        total_ionic = total_ionic + current
        if "open" in record:
            cols[f"n_open_{name}"] = open_counts[:, k]
        if "currents" in record:
            cols[f"I_{name}_pA"] = current
    if "currents" in record:
        if sim.patch.g_leak_nS > 0:
            cols["I_leak_pA"] = sim.patch.g_leak_nS * (V - sim.patch.E_leak_mV)
        cols["I_stim_pA"] = np.where(clamped, 0.0, value)
        if clamped.any():
            cols["V_clamp_mV"] = np.where(clamped, value, np.nan)
            cols["I_clamp_pA"] = np.where(clamped, total_ionic, np.nan)
    if "states" in record:
        for s, (tname, sname) in enumerate(L.state_labels):
            cols[f"n_{tname}_{sname}"] = counts[:, s]
    if "V" not in record:
        cols.pop("V_mV")
    trace = pd.DataFrame(cols)

    spk = list(sim._spk_chunks)
    if spk:
        st, sp, spt = (np.concatenate([c[i] for c in spk]) for i in range(3))
    else:
        st = sp = spt = np.zeros(0)
    open_spike = sim.open_spike()
    if open_spike is not None:  # crossed, not yet re-armed at the end of the run
        st, sp, spt = np.append(st, open_spike[0]), np.append(sp, open_spike[1]), np.append(spt, open_spike[2])
    real = st >= 0  # a run that starts above the spike level marks that non-spike with t < 0
    st, sp, spt = st[real], sp[real], spt[real]
    spikes = pd.DataFrame({"trial": np.full(st.size, trial, dtype=np.int64), "t_ms": st, "peak_mV": sp,
                           "peak_t_ms": spt})

    events = None
    if getattr(sim, "track_agents", False):
        if sim._ev_chunks:
            et, ec, ef, eto, eV = (np.concatenate([c[i] for c in sim._ev_chunks]) for i in range(5))
        else:
            et = eV = np.zeros(0)
            ec = ef = eto = np.zeros(0, dtype=np.int64)
        state_names = sorted({s for _, s in L.state_labels}, key=lambda s: [lab[1] for lab in L.state_labels].index(s))
        state_cat = pd.CategoricalDtype(state_names, ordered=True)
        type_cat = pd.CategoricalDtype(list(L.type_names), ordered=True)
        label = np.array([s for _, s in L.state_labels], dtype=object)
        events = pd.DataFrame({
            "trial": np.full(et.size, trial, dtype=np.int64),
            "channel_type": pd.Categorical.from_codes(sim.channel_type_of[ec], dtype=type_cat),
            "channel_id": sim.channel_local_id[ec],
            "t_ms": et,
            "from_state": pd.Categorical(label[ef], dtype=state_cat),
            "to_state": pd.Categorical(label[eto], dtype=state_cat),
            "V_mV": eV,
        })
    return Result(trace=trace, spikes=spikes, channel_events=events, provenance=provenance)
