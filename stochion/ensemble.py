"""Parameter sweeps: a grid of parameters × many independent trials, as tidy tables.

:func:`sweep` runs every point of a parameter grid (any field of the protocol dataclass, any keyword of the patch
factory) for ``n_trials`` trials each and returns a per-trial summary table (and optionally the traces).

Seeding
    Trial ``k`` of grid point ``p`` is seeded with ``SeedSequence(seed, spawn_key=(p, k))`` (see
    :func:`trial_seed`), derived statelessly, i.e. exactly the child ``SeedSequence(seed).spawn(...)[p]
    .spawn(...)[k]`` would be on fresh objects. No trial's numbers depend on which worker ran it, in what
    order, or how the trials were cut into chunks; ``simulate(patch_p, protocol_p, t_stop_ms=...,
    seed=trial_seed(seed, p, k))`` reproduces it.

Paths
    Protocols with ``.schedule()`` (open loop) run through the batched kernel
    (:func:`stochion.engine.run_trials`): a block of trials in one compiled call, parallel over numba threads;
    its spikes are bit-identical to single :func:`~stochion.simulate` runs of the same seeds. Other protocols
    (closed loop, synaptic) are run trial by trial through :func:`~stochion.simulate`.

Work units and checkpointing
    The unit of work is a *chunk*: one grid point × one block of ``trials_per_chunk`` consecutive trials. With
    ``out_dir`` every finished chunk is written as parquet atomically (temporary file in the same directory,
    then ``os.replace``) under a name made of the hash of the sweep's whole configuration and the chunk's
    place, so a rerun of the same sweep skips finished chunks and a changed sweep never reuses stale ones.

Backends
    ``"inprocess"`` (numba threads of the batched kernel), ``"processes"`` (local worker processes,
    ``concurrent.futures``, numba threads divided among them) and ``"dask"`` (``dask.distributed``: a
    scheduler address, a ``Client``, the current client or a temporary ``LocalCluster``; optional dependency,
    ``pip install "stochion[distributed]"``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import inspect
import itertools
import json
import logging
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .membrane import Patch
from .protocols import Schedule
from .results import package_versions

__all__ = ["sweep", "SweepResult", "trial_seed", "read_sweep_config", "BACKENDS", "SUMMARY_COLUMNS",
           "SWEEP_TOML_EXAMPLE"]

logger = logging.getLogger(__name__)

BACKENDS = ("inprocess", "processes", "dask")

# Bump when a change alters the numbers a chunk holds for the same configuration (seeding, chunk layout,
# summary definitions): the configuration hash includes it, so old checkpoints are then never reused.
SWEEP_FORMAT = 1

#: Columns of the per-trial summary after the swept parameter columns.
SUMMARY_COLUMNS = ("point", "trial", "seed", "n_spikes", "first_spike_ms", "peak_mV", "peak_t_ms",
                   "spike_times_ms", "spike_peaks_mV", "n_events")

_DEFAULT_TRIALS_PER_CHUNK = 250
_MAX_SEED = 2**63  # the seed is an int64 column


def trial_seed(seed: int, point: int, trial: int) -> np.random.SeedSequence:
    """The seed of trial ``trial`` of grid point ``point`` in a sweep with root ``seed``.

    ``SeedSequence(seed, spawn_key=(point, trial))``: the grandchild that ``SeedSequence(seed).spawn`` would give,
    derived without the spawn counter's state, so it is the same however many workers a sweep has.
    """
    return np.random.SeedSequence(int(seed), spawn_key=(int(point), int(trial)))


# -------------------------------------------------------------------------------------------------------------
# results
# -------------------------------------------------------------------------------------------------------------
@dataclass
class SweepResult:
    """The tables of a sweep and its provenance.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per trial, ordered by grid point then trial: the swept parameter columns (named as in the grid),
        then ``point`` (grid point index), ``trial`` (index within the point), ``seed`` (root seed of the
        sweep; the trial's own seed is ``trial_seed(seed, point, trial)``), ``n_spikes``, ``first_spike_ms``
        (NaN without spikes), ``peak_mV`` and ``peak_t_ms`` (the largest voltage of the trial and when it
        occurred: the highest spike peak if the trial spiked, else the subthreshold maximum; meaningful in
        current clamp), ``spike_times_ms`` and ``spike_peaks_mV`` (arrays: every spike's exact upward crossing
        time of the spike level and its peak), ``n_events`` (channel transitions simulated). On the
        trial-by-trial path (closed-loop protocols) a subthreshold ``peak_mV`` is the largest recorded sample
        unless the run reports its exact maximum (``max_V_mV`` in its provenance).
    traces : pandas.DataFrame or None
        With ``traces=True``: one row per sample, swept parameter columns, ``point``, ``trial``, ``t_ms``,
        ``V_mV``, ``n_open_<type>``.
    points : pandas.DataFrame
        One row per grid point: ``point`` and the swept parameter columns.
    provenance : dict
        Configuration (patch, protocol, grid, trials, seed), its hash, versions, backend, chunk counts (computed
        and reused from checkpoints), wall and CPU time of the driver.
    files : dict
        With ``out_dir``: paths of the written tables (``summary``, ``traces``, ``provenance``) and ``chunks``
        (the checkpoint directory).
    """

    summary: pd.DataFrame
    traces: pd.DataFrame | None
    points: pd.DataFrame
    provenance: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)

    @property
    def spikes(self) -> pd.DataFrame:
        """One row per spike: swept parameter columns, ``point``, ``trial``, ``t_ms``, ``peak_mV``."""
        s = self.summary
        keys = [c for c in s.columns if c not in SUMMARY_COLUMNS] + ["point", "trial"]
        counts = s["n_spikes"].to_numpy()
        rows = np.repeat(np.arange(len(s)), counts)
        out = s[keys].iloc[rows].reset_index(drop=True)
        out["t_ms"] = np.concatenate([np.asarray(a, dtype=float) for a in s["spike_times_ms"]] + [np.zeros(0)])
        out["peak_mV"] = np.concatenate([np.asarray(a, dtype=float) for a in s["spike_peaks_mV"]] + [np.zeros(0)])
        return out


# -------------------------------------------------------------------------------------------------------------
# describing and hashing a configuration
# -------------------------------------------------------------------------------------------------------------
def _canonical(obj):
    """A JSON-able description of ``obj`` that is equal for equal configurations (for hashing and provenance).

    Numbers are written as floats (so ``100`` and ``100.0`` agree), arrays by dtype, shape and a digest,
    dataclasses by type and init fields, callables by their qualified name.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.generic):
        return _canonical(obj.item())
    if isinstance(obj, int):
        return repr(float(obj)) if abs(obj) < 2**53 else str(obj)
    if isinstance(obj, float):
        return repr(obj)
    if isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        if a.dtype == object:
            return {"array": [_canonical(x) for x in a.ravel()], "shape": list(a.shape)}
        return {"dtype": a.dtype.str, "shape": list(a.shape), "sha256": hashlib.sha256(a.tobytes()).hexdigest()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: _canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
        return {"type": f"{type(obj).__module__}.{type(obj).__qualname__}", "fields": fields}
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_canonical(x) for x in obj]
    if callable(obj):
        func = getattr(obj, "func", None)  # functools.partial
        if func is not None and hasattr(obj, "args"):
            return {"partial": _canonical(func), "args": _canonical(obj.args), "kwargs": _canonical(obj.keywords)}
        return {"callable": f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"}
    return {"repr": repr(obj)}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _lowered_digest(patch: Patch) -> str:
    """Digest of what the kernel sees of ``patch`` (its lowered arrays)."""
    from .engine import lower_patch

    L = lower_patch(patch)
    return _digest({f.name: _canonical(getattr(L, f.name)) for f in dataclasses.fields(L)})


# -------------------------------------------------------------------------------------------------------------
# the plan: grid points, chunks, configuration hash
# -------------------------------------------------------------------------------------------------------------
def _patch_parameters(patch):
    """(names allowed in the grid for the patch, builder(kwargs) -> Patch, required names)."""
    if isinstance(patch, Patch):
        names = [f.name for f in dataclasses.fields(Patch) if f.init]
        return names, (lambda kw: dataclasses.replace(patch, **kw) if kw else patch), []
    if callable(patch):
        try:
            sig = inspect.signature(patch)
        except (TypeError, ValueError) as err:
            raise ValueError(f"cannot read the parameters of the patch factory {patch!r}: {err}") from None
        params = [p for p in sig.parameters.values()
                  if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
        required = [p.name for p in params if p.default is inspect.Parameter.empty]
        return [p.name for p in params], (lambda kw: patch(**kw)), required
    raise ValueError(f"patch must be a stochion.Patch or a function returning one (e.g. stochion.hh_patch), "
                     f"got {patch!r}")


def _protocol_parts(protocol):
    """The parts of a combined protocol (``Combined``: a dataclass with a ``protocols`` tuple), else None."""
    parts = getattr(protocol, "protocols", None)
    if dataclasses.is_dataclass(protocol) and isinstance(parts, tuple) and parts:
        return parts
    return None


def _protocol_parameters(protocol) -> dict:
    """Grid names of the protocol's fields: ``{name: (part index or None, field)}``.

    A plain protocol dataclass offers its init fields. A combination offers ``<Part>.<field>`` for every part
    (parts named by class, ``_1``, ``_2`` … for repeats, as in the protocol table) and the bare field name when
    only one part has it.
    """
    def init_fields(obj):
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return [f.name for f in dataclasses.fields(obj) if f.init]
        return []

    if protocol is None or isinstance(protocol, Schedule):
        return {}
    parts = _protocol_parts(protocol)
    if parts is None:
        return {f: (None, f) for f in init_fields(protocol)}
    seen, out, owners = {}, {}, {}
    for i, part in enumerate(parts):
        base = type(part).__name__
        k = seen.get(base, 0)
        seen[base] = k + 1
        label = base if k == 0 else f"{base}_{k}"
        for f in init_fields(part):
            out[f"{label}.{f}"] = (i, f)
            owners.setdefault(f, []).append(i)
    for f, who in owners.items():
        if len(who) == 1:
            out[f] = (who[0], f)
    return out


def _replace_protocol(protocol, changes: dict):
    """``protocol`` with ``{(part index or None, field): value}`` replaced (parts of a combination too)."""
    if not changes:
        return protocol
    parts = _protocol_parts(protocol)
    if parts is None:
        return dataclasses.replace(protocol, **{f: v for (_, f), v in changes.items()})
    parts = list(parts)
    for i in sorted({i for i, _ in changes}):
        parts[i] = dataclasses.replace(parts[i], **{f: v for (j, f), v in changes.items() if j == i})
    return dataclasses.replace(protocol, protocols=tuple(parts))


def _expand_grid(grid):
    """(names, list of value tuples). A mapping is a Cartesian product (last name fastest); a sequence of
    mappings lists the points themselves."""
    if grid is None:
        return [], [()]
    if isinstance(grid, Mapping):
        names = [str(k) for k in grid]
        axes = []
        for name, values in grid.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
                raise ValueError(f"grid[{name!r}] must be a list of values, got {values!r}")
            values = list(values.tolist() if isinstance(values, np.ndarray) else values)
            if not values:
                raise ValueError(f"grid[{name!r}] is empty; give at least one value")
            axes.append(values)
        return names, list(itertools.product(*axes))
    if isinstance(grid, Sequence) and not isinstance(grid, (str, bytes)):
        points = list(grid)
        if not points or not all(isinstance(p, Mapping) for p in points):
            raise ValueError("grid must be a mapping {name: [values]} (a product) or a non-empty list of "
                             "mappings {name: value} (the points themselves)")
        names = [str(k) for k in points[0]]
        for i, p in enumerate(points):
            if sorted(map(str, p)) != sorted(names):
                raise ValueError(f"grid point {i} has parameters {sorted(map(str, p))}, point 0 has "
                                 f"{sorted(names)}; every point must set the same parameters")
        return names, [tuple(p[n] for n in names) for p in points]
    raise ValueError(f"grid must be a mapping {{name: [values]}} or a list of mappings, got {grid!r}")


def _route(names, patch_names, protocol_names: dict, patch_label, protocol_label):
    """Map each grid name to ("patch", field) or ("protocol", (part, field)); unknown or ambiguous names are
    errors that list what is allowed."""
    routes = {}
    for name in names:
        if name in SUMMARY_COLUMNS:
            raise ValueError(f"grid parameter {name!r} clashes with a summary column; reserved: "
                             f"{list(SUMMARY_COLUMNS)}")
        if name.startswith("patch."):
            bare = name[len("patch."):]
            target = [("patch", bare)] if bare in patch_names else []
        elif name.startswith("protocol."):
            bare = name[len("protocol."):]
            target = [("protocol", protocol_names[bare])] if bare in protocol_names else []
        else:
            target = ([("patch", name)] if name in patch_names else []) + \
                     ([("protocol", protocol_names[name])] if name in protocol_names else [])
        if not target:
            raise ValueError(
                f"unknown grid parameter {name!r}: a grid may set keywords of the patch ({patch_label}: "
                f"{', '.join(patch_names) or 'none'}) or fields of the protocol ({protocol_label}: "
                f"{', '.join(protocol_names) or 'none'}); prefix with 'patch.' or 'protocol.' to be explicit")
        if len(target) > 1:
            raise ValueError(f"grid parameter {name!r} is both a patch keyword and a protocol field; write "
                             f"'patch.{name}' or 'protocol.{name}'")
        routes[name] = target[0]
    targets = [routes[n] for n in names]
    dup = [n for n in names if targets.count(routes[n]) > 1]
    if dup:
        raise ValueError(f"grid sets the same parameter more than once: {dup}")
    return routes


def _check_grid_value(name, value):
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or not isinstance(value, (bool, int, float, str)):
        raise ValueError(f"grid[{name!r}] values must be numbers, strings or booleans, got {value!r}")
    return value


@dataclass(frozen=True)
class _Point:
    index: int
    params: dict  # grid name -> value
    patch: Patch
    protocol: object


@dataclass(frozen=True)
class _Task:
    """One chunk of work, sent to a worker (must pickle)."""

    point: int
    block: int
    trial_start: int
    trial_stop: int
    params: dict
    column_dtypes: dict
    patch: Patch
    protocol: object
    schedule: Schedule | None  # shared by the chunk's trials (batched path)
    trial_schedules: bool  # batched path, stochastic protocol: one schedule per trial from its seed
    seed: int
    t_stop_ms: float
    options: dict
    numba_threads: object  # int, None (leave as is) or "dask" (decide on the worker)


@dataclass
class _ChunkOut:
    summary: pd.DataFrame
    traces: pd.DataFrame | None
    wall_s: float
    cpu_s: float


def _check_int(name, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or \
            (hi is not None and value >= hi):
        allowed = f"an integer >= {lo}" + (f" and < {hi}" if hi is not None else "")
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def _check_float(name, value, lo=-math.inf, positive=False):
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v) or v < lo or (positive and v <= 0):
        raise ValueError(f"{name} must be finite{' and > 0' if positive else ''}, got {value!r}")
    return v


def _plan(patch, protocol, grid, patch_kwargs, t_stop_ms):
    """Validate and build every grid point (patch and protocol) before anything runs."""
    patch_names, build_patch, required = _patch_parameters(patch)
    protocol_names = _protocol_parameters(protocol)
    patch_label = getattr(patch, "__name__", type(patch).__name__)
    protocol_label = type(protocol).__name__ if protocol is not None else "no protocol"
    fixed = dict(patch_kwargs or {})
    unknown = sorted(set(fixed) - set(patch_names))
    if unknown:
        raise ValueError(f"patch_kwargs: unknown parameter(s) {unknown} of {patch_label}; allowed: "
                         f"{', '.join(patch_names)}")
    names, values = _expand_grid(grid)
    routes = _route(names, patch_names, protocol_names, patch_label, protocol_label)
    patch_swept = {f for w, f in routes.values() if w == "patch"}
    missing = [r for r in required if r not in fixed and r not in patch_swept]
    if missing:
        raise ValueError(f"the patch factory {patch_label} needs {missing}: give them in patch_kwargs or in the grid")
    points, patches = [], {}
    for p, vals in enumerate(values):
        vals = tuple(_check_grid_value(n, v) for n, v in zip(names, vals))
        params = dict(zip(names, vals))
        pkw, qkw = dict(fixed), {}
        for name, v in params.items():
            where, f = routes[name]
            if where == "patch":
                pkw[f] = v
            else:
                qkw[f] = v
        key = json.dumps(_canonical(pkw), sort_keys=True)
        try:
            if key not in patches:
                patches[key] = build_patch(pkw)
            this_patch = patches[key]
            if not isinstance(this_patch, Patch):
                raise ValueError(f"the patch factory returned {type(this_patch).__name__}, not a Patch")
            this_protocol = _replace_protocol(protocol, qkw)
            if callable(getattr(this_protocol, "validate", None)):
                this_protocol.validate(t_stop_ms=t_stop_ms, patch=this_patch)
        except (TypeError, ValueError) as err:
            raise ValueError(f"grid point {p} {params}: {err}") from None
        points.append(_Point(p, params, this_patch, this_protocol))
    dtypes = {n: pd.Series([v[i] for v in values]).dtype for i, n in enumerate(names)}
    return names, points, dtypes


def _is_open_loop(protocol) -> bool:
    """Whether ``protocol`` compiles to a schedule (protocols declare ``open_loop``; else: has ``.schedule``)."""
    if protocol is None or isinstance(protocol, Schedule):
        return True
    return bool(getattr(protocol, "open_loop", True)) and callable(getattr(protocol, "schedule", None))


def _is_stochastic(protocol) -> bool:
    """Whether the schedule depends on the trial's seed (noisy protocols draw from the run's stream)."""
    return bool(getattr(protocol, "stochastic", False))


def _schedule_of(patch: Patch, protocol, t_stop_ms: float, seed=None) -> Schedule:
    """The schedule of an open-loop protocol on ``patch``; ``seed`` (the trial's) only for stochastic ones."""
    if protocol is None:
        return Schedule(np.array([t_stop_ms]), np.array([0]), np.array([0.0]))
    if isinstance(protocol, Schedule):
        if not math.isclose(protocol.t_stop_ms, t_stop_ms):
            raise ValueError(f"the schedule ends at {protocol.t_stop_ms} ms but t_stop_ms={t_stop_ms!r}")
        return protocol
    if seed is None:
        return protocol.schedule(t_stop_ms, patch.area_um2)
    return protocol.schedule(t_stop_ms, patch.area_um2, seed=seed)


# -------------------------------------------------------------------------------------------------------------
# running one chunk (on a worker)
# -------------------------------------------------------------------------------------------------------------
_KERNEL_LOCK = threading.Lock()


def _kernel_guard():
    """Serialise batched-kernel calls within a process when the threading layer is not thread-safe.

    numba's ``workqueue`` layer aborts if two threads launch parallel regions at once (Dask workers run tasks in
    threads); ``omp`` and ``tbb`` are safe. Before the first parallel call the layer is unknown: lock then.
    """
    import numba

    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = None
    return _KERNEL_LOCK if layer in (None, "workqueue") else contextlib.nullcontext()


@contextlib.contextmanager
def _numba_threads(n):
    import numba

    if n == "dask":
        n = None
        try:
            from distributed import get_worker

            worker = get_worker()
            nthreads = getattr(getattr(worker, "state", None), "nthreads", None) or getattr(worker, "nthreads", 1)
            n = max(1, numba.config.NUMBA_NUM_THREADS // max(int(nthreads), 1))
        except (ImportError, ValueError, AttributeError):
            n = None
    if n is None:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _grid_columns(task: _Task, n_rows: int) -> dict:
    """The swept parameter columns of ``n_rows`` rows, with the dtype each has across the whole grid."""
    out = {}
    for name, value in task.params.items():
        dtype = task.column_dtypes[name]
        if isinstance(dtype, np.dtype) and dtype != object:
            out[name] = np.full(n_rows, value, dtype=dtype)
        else:
            out[name] = pd.array([value] * n_rows, dtype=dtype)
    return out


def _summary_frame(task, trials, spikes_t, spikes_peak, peak, peak_t, n_events):
    n = len(trials)
    t_col = np.empty(n, dtype=object)
    p_col = np.empty(n, dtype=object)
    for i in range(n):
        t_col[i] = np.ascontiguousarray(spikes_t[i], dtype=float)
        p_col[i] = np.ascontiguousarray(spikes_peak[i], dtype=float)
    cols = _grid_columns(task, n)
    cols.update({
        "point": np.full(n, task.point, dtype=np.int64),
        "trial": np.asarray(trials, dtype=np.int64),
        "seed": np.full(n, task.seed, dtype=np.int64),
        "n_spikes": np.array([a.size for a in spikes_t], dtype=np.int64),
        "first_spike_ms": np.array([a[0] if a.size else np.nan for a in spikes_t], dtype=float),
        "peak_mV": np.asarray(peak, dtype=float),
        "peak_t_ms": np.asarray(peak_t, dtype=float),
        "spike_times_ms": t_col,
        "spike_peaks_mV": p_col,
        "n_events": np.asarray(n_events, dtype=np.int64),
    })
    return pd.DataFrame(cols)


def _traces_frame(task, trials, t, V, open_counts, type_names):
    """Tidy traces: ``V`` (n_trials, n_rec), ``open_counts`` (n_trials, n_rec, n_types)."""
    n, n_rec = V.shape
    cols = _grid_columns(task, n * n_rec)
    cols.update({
        "point": np.full(n * n_rec, task.point, dtype=np.int64),
        "trial": np.repeat(np.asarray(trials, dtype=np.int64), n_rec),
        "t_ms": np.tile(np.asarray(t, dtype=float), n),
        "V_mV": np.asarray(V, dtype=float).ravel(),
    })
    for k, name in enumerate(type_names):
        cols[f"n_open_{name}"] = np.asarray(open_counts[..., k], dtype=np.int64).ravel()
    return pd.DataFrame(cols)


def _trial_schedules(task: _Task, seeds):
    """Per-trial schedules of a noisy protocol as ``(n_trials, n_seg)`` arrays, padded at the end with
    zero-length segments (the kernel runs those as nothing)."""
    rows = [_schedule_of(task.patch, task.protocol, task.t_stop_ms, seed=ss) for ss in seeds]
    width = max(r.t_end_ms.size for r in rows)
    t_end = np.empty((len(rows), width))
    mode = np.empty((len(rows), width), dtype=np.int64)
    value = np.empty((len(rows), width))
    for i, r in enumerate(rows):
        n = r.t_end_ms.size
        t_end[i, :n], mode[i, :n], value[i, :n] = r.t_end_ms, r.mode, r.value
        t_end[i, n:], mode[i, n:], value[i, n:] = r.t_end_ms[-1], r.mode[-1], r.value[-1]
    return t_end, mode, value


def _run_batched(task: _Task):
    from .engine import run_trials

    o = task.options
    trials = np.arange(task.trial_start, task.trial_stop)
    seeds = [trial_seed(task.seed, task.point, k) for k in trials]
    if task.trial_schedules:
        t_end, mode, value = _trial_schedules(task, seeds)
    else:
        t_end, mode, value = task.schedule.t_end_ms, task.schedule.mode, task.schedule.value
    with _numba_threads(task.numba_threads), _kernel_guard():
        out = run_trials(task.patch, t_end, mode, value, seeds, V0_mV=o["V0_mV"], record=o["traces"],
                         record_dt_ms=o["record_dt_ms"], spike_level_mV=o["spike_level_mV"],
                         rearm_mV=o["rearm_mV"])
    spikes_t, spikes_peak = [], []
    for t, pk in zip(out.spike_t_ms, out.spike_peak_mV):
        real = t >= 0  # a run starting above the spike level marks that non-spike with t < 0
        spikes_t.append(t[real])
        spikes_peak.append(pk[real])
    summary = _summary_frame(task, trials, spikes_t, spikes_peak, out.max_V_mV, out.max_V_t_ms, out.n_events)
    traces = None
    if o["traces"]:
        L = out.lowered
        traces = _traces_frame(task, trials, out.record_t_ms, out.record_V_mV, L.open_counts(out.record_counts),
                               L.type_names)
    return summary, traces


def _run_per_trial(task: _Task):
    """Trial by trial through :func:`stochion.simulate` (protocols without a schedule)."""
    from .simulation import simulate

    o = task.options
    trials = np.arange(task.trial_start, task.trial_stop)
    spikes_t, spikes_peak, peak, peak_t, n_events, traces = [], [], [], [], [], []
    record = ("V", "open") if o["traces"] else ("V",)
    for k in trials:
        res = simulate(task.patch, task.protocol, t_stop_ms=task.t_stop_ms, seed=trial_seed(task.seed, task.point, k),
                       record=record, record_dt_ms=o["record_dt_ms"], spike_level_mV=o["spike_level_mV"],
                       rearm_mV=o["rearm_mV"], V0_mV=o["V0_mV"])
        sp, tr, prov = res.spikes, res.trace, res.provenance
        spikes_t.append(sp["t_ms"].to_numpy(dtype=float))
        spikes_peak.append(sp["peak_mV"].to_numpy(dtype=float))
        if "max_V_mV" in prov:  # the exact maximum, when the run reports it
            peak.append(float(prov["max_V_mV"]))
            peak_t.append(float(prov.get("max_V_t_ms", np.nan)))
        else:  # else the larger of the highest spike peak and the largest recorded sample
            i = int(tr["V_mV"].to_numpy().argmax())
            best, best_t = float(tr["V_mV"].iloc[i]), float(tr["t_ms"].iloc[i])
            if len(sp) and sp["peak_mV"].max() >= best:
                j = int(sp["peak_mV"].to_numpy().argmax())
                best, best_t = float(sp["peak_mV"].iloc[j]), float(sp["peak_t_ms"].iloc[j])
            peak.append(best)
            peak_t.append(best_t)
        n_events.append(int(prov.get("n_events", 0)))
        if o["traces"]:
            traces.append(tr)
    summary = _summary_frame(task, trials, spikes_t, spikes_peak, peak, peak_t, n_events)
    trace_frame = None
    if o["traces"]:  # trial by trial: closed-loop runs may stop early, so lengths can differ
        names = [c[len("n_open_"):] for c in traces[0].columns if c.startswith("n_open_")]
        frames = []
        for k, tr in zip(trials, traces):
            V = tr["V_mV"].to_numpy()[None, :]
            open_counts = np.stack([tr[f"n_open_{n}"].to_numpy() for n in names], axis=-1)[None, :, :]
            frames.append(_traces_frame(task, [k], tr["t_ms"].to_numpy(), V, open_counts, names))
        trace_frame = pd.concat(frames, ignore_index=True)
    return summary, trace_frame


def _run_chunk(task: _Task) -> _ChunkOut:
    """Run one chunk; the worker-side entry point of every backend."""
    w0, c0 = time.perf_counter(), time.process_time()
    if task.schedule is not None or task.trial_schedules:
        summary, traces = _run_batched(task)
    else:
        summary, traces = _run_per_trial(task)
    return _ChunkOut(summary, traces, time.perf_counter() - w0, time.process_time() - c0)


# -------------------------------------------------------------------------------------------------------------
# checkpoints
# -------------------------------------------------------------------------------------------------------------
class _ChunkStore:
    """Finished chunks as parquet files in ``<out_dir>/chunks``, named by configuration hash and place."""

    def __init__(self, out_dir, config_hash: str, traces: bool):
        self.dir = Path(out_dir) / "chunks"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tag = config_hash[:24]
        self.traces = traces

    def path(self, task: _Task, table: str) -> Path:
        return self.dir / f"{self.tag}-p{task.point:06d}-b{task.block:06d}.{table}.parquet"

    def load(self, task: _Task):
        """The stored chunk as (summary, traces), or None if absent or unreadable."""
        s_path = self.path(task, "summary")
        if not s_path.exists():
            return None
        try:
            summary = pd.read_parquet(s_path)
            traces = pd.read_parquet(self.path(task, "traces")) if self.traces else None
        except Exception as err:  # noqa: BLE001 - a damaged file is recomputed, never trusted
            logger.warning("checkpoint %s unreadable (%s); recomputing it", s_path.name, err)
            return None
        expected = np.arange(task.trial_start, task.trial_stop)
        if len(summary) != expected.size or not np.array_equal(summary["trial"].to_numpy(), expected) or \
                not (summary["point"] == task.point).all():
            logger.warning("checkpoint %s does not hold the expected trials; recomputing it", s_path.name)
            return None
        return summary, traces

    def save(self, task: _Task, summary: pd.DataFrame, traces) -> None:
        # traces first: a chunk counts as finished once its summary file exists
        if traces is not None:
            _write_atomic(traces, self.path(task, "traces"))
        _write_atomic(summary, self.path(task, "summary"))


def _write_atomic(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` to ``path`` as parquet so that ``path`` is either absent or complete, never partial."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            df.to_parquet(fh, index=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_json_atomic(obj, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, default=str)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -------------------------------------------------------------------------------------------------------------
# backends: each yields (task, _ChunkOut) as chunks finish, in any order
# -------------------------------------------------------------------------------------------------------------
def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _iter_inprocess(tasks):
    for task in tasks:
        yield task, _run_chunk(task)


def _iter_processes(tasks, n_workers):
    import multiprocessing

    # Not plain fork: numba's OpenMP and workqueue threading layers are not fork-safe once started in the
    # parent. A fork server that has imported stochion (but never run a parallel kernel) starts workers fast.
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["stochion.ensemble"])
    else:  # pragma: no cover - Windows
        ctx = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx)
    try:
        futures = {pool.submit(_run_chunk, t): t for t in tasks}
        for fut in concurrent.futures.as_completed(futures):
            yield futures[fut], fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _dask_client(scheduler, n_workers):
    """(client, cleanup) for the Dask backend."""
    try:
        import distributed
    except ImportError:
        raise ImportError("the Dask backend needs dask.distributed: pip install 'stochion[distributed]' "
                          "(or 'dask[distributed]')") from None
    if isinstance(scheduler, distributed.Client):
        return scheduler, lambda: None
    if isinstance(scheduler, str):
        client = distributed.Client(scheduler)
        return client, client.close
    if scheduler is not None:
        raise ValueError(f"scheduler must be an address 'tcp://host:port' or a dask.distributed.Client, got "
                         f"{scheduler!r}")
    try:
        return distributed.get_client(), lambda: None
    except ValueError:
        pass
    n = n_workers or _available_cpus()
    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)

    def cleanup():
        client.close()
        cluster.close()

    return client, cleanup


def _iter_dask(tasks, client):
    from distributed import as_completed

    futures = [client.submit(_run_chunk, t, pure=False) for t in tasks]
    by_key = {f.key: t for f, t in zip(futures, tasks)}
    try:
        for fut in as_completed(futures):
            yield by_key[fut.key], fut.result()
    finally:
        client.cancel([f for f in futures if not f.done()])


# -------------------------------------------------------------------------------------------------------------
# the public function
# -------------------------------------------------------------------------------------------------------------
def sweep(
    patch,
    protocol=None,
    *,
    grid=None,
    n_trials: int,
    t_stop_ms: float,
    seed: int | None = None,
    patch_kwargs: Mapping | None = None,
    backend: str | None = None,
    n_workers: int | None = None,
    scheduler=None,
    out_dir=None,
    trials_per_chunk: int | None = None,
    traces: bool = False,
    record_dt_ms: float = 0.025,
    V0_mV: float | None = None,
    spike_level_mV: float = 0.0,
    rearm_mV: float = -20.0,
    batched: bool | None = None,
    progress: bool | None = None,
) -> SweepResult:
    """Run ``n_trials`` independent trials at every point of a parameter grid.

    Parameters
    ----------
    patch : Patch or callable
        A patch, or a function returning one (e.g. :func:`stochion.hh_patch`) called with ``patch_kwargs`` and
        the grid's patch parameters at each point. A ``Patch`` itself can be swept over its fields
        (``area_um2``, ``temperature_celsius``, ...); a factory over its keywords (for ``hh_patch`` also
        ``na_density_per_um2``, ``k_density_per_um2``, ``g_unit_pS``, ``leak``, ...).
    protocol : protocol dataclass, Schedule or None
        The stimulus (e.g. ``CurrentStep(amplitude_uA_cm2=0.0, start_ms=2.0, duration_ms=1.0)``); the grid
        replaces its fields at each point (``dataclasses.replace``). With ``.schedule()`` (open loop) trials run
        batched; otherwise one by one through :func:`stochion.simulate`. None injects no current.
    grid : mapping or list of mappings, optional
        ``{name: [values, ...]}``: the Cartesian product of the lists, the last name varying fastest; or
        ``[{name: value, ...}, ...]``: the points themselves. Names are patch keywords or protocol fields
        (``"patch.<name>"`` / ``"protocol.<name>"`` when a name is both); values are numbers, strings or
        booleans. Unknown names raise before anything runs. None: a single point.
    n_trials : int
        Trials per grid point (>= 1).
    t_stop_ms : float
        Duration of every trial, ms.
    seed : int, optional
        Root seed (0 <= seed < 2**63); trial ``k`` of point ``p`` uses ``trial_seed(seed, p, k)``. None draws
        one (kept in the provenance and the ``seed`` column).
    patch_kwargs : mapping, optional
        Fixed keywords of the patch factory (or fields of the Patch) at every point.
    backend : {"inprocess", "processes", "dask"}, optional
        Default ``"dask"`` if ``scheduler`` is given, else ``"inprocess"``.
    n_workers : int, optional
        inprocess: numba threads (default: numba's setting). processes: worker processes (default: available
        CPUs); each uses ``max(1, CPUs // n_workers)`` numba threads. dask: workers of the temporary
        ``LocalCluster`` made when no scheduler or current client exists.
    scheduler : str or dask.distributed.Client, optional
        ``"tcp://host:port"`` of a Dask scheduler, or a ``Client``. Dask workers need stochion installed; each
        task uses ``NUMBA_NUM_THREADS // worker threads`` numba threads (run workers with one thread each).
    out_dir : path, optional
        Checkpoint and output directory: finished chunks go to ``out_dir/chunks`` and are reused by a rerun of
        the same configuration; at the end ``summary.parquet``, ``traces.parquet`` (with ``traces``) and
        ``sweep.json`` (provenance) are written there.
    trials_per_chunk : int, optional
        Trials per unit of work and checkpoint (default ``min(n_trials, 250)``). Part of the configuration.
    traces : bool
        Also return the traces (``V_mV`` and open channels per type every ``record_dt_ms``).
    record_dt_ms : float
        Trace sampling step, ms.
    V0_mV, spike_level_mV, rearm_mV : float
        Initial voltage (default: the resting potential of each point's patch) and spike detection, as in
        :func:`stochion.simulate`.
    batched : bool, optional
        Force (True) or forbid (False) the batched path; default: batched whenever the protocol has a schedule.
        ``False`` runs every trial through :func:`stochion.simulate`; its spikes are the same, its
        subthreshold ``peak_mV`` is the largest recorded sample unless the run reports its exact maximum.
    progress : bool, optional
        Show a tqdm progress bar on stderr; default: only when stderr is a terminal.

    Returns
    -------
    SweepResult
        ``summary`` (one row per trial), ``traces``, ``points``, ``spikes``, ``provenance``, ``files``.

    Notes
    -----
    The tables do not depend on the backend, the number of workers, the chunk execution order or on whether a
    run was interrupted and resumed. The configuration hash that names checkpoints covers the patch (its
    declaration and lowered kernel arrays) and protocol (declaration and schedule) at every point, the grid,
    trials, chunking, seed, run options, the sweep format and the stochion and numpy versions.
    """
    w0, c0 = time.perf_counter(), time.process_time()
    n_trials = _check_int("n_trials", n_trials, 1)
    t_stop = _check_float("t_stop_ms", t_stop_ms, positive=True)
    per_chunk = min(n_trials, _DEFAULT_TRIALS_PER_CHUNK) if trials_per_chunk is None else \
        _check_int("trials_per_chunk", trials_per_chunk, 1)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    seed = _check_int("seed", seed, 0, _MAX_SEED)
    if backend is None:
        backend = "dask" if scheduler is not None else "inprocess"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if scheduler is not None and backend != "dask":
        raise ValueError(f"scheduler is for backend='dask', not {backend!r}")
    if n_workers is not None:
        n_workers = _check_int("n_workers", n_workers, 1)
    options = {
        "V0_mV": None if V0_mV is None else _check_float("V0_mV", V0_mV),
        "spike_level_mV": _check_float("spike_level_mV", spike_level_mV),
        "rearm_mV": _check_float("rearm_mV", rearm_mV),
        "traces": bool(traces),
        "record_dt_ms": _check_float("record_dt_ms", record_dt_ms, positive=True),
    }
    if not options["rearm_mV"] < options["spike_level_mV"]:
        raise ValueError(f"rearm_mV ({rearm_mV!r}) must be below spike_level_mV ({spike_level_mV!r})")
    if isinstance(protocol, (list, tuple)):  # a list of protocols acts together
        from .protocols import as_protocol

        protocol = as_protocol(protocol)
    open_loop = _is_open_loop(protocol)
    if batched is None:
        batched = open_loop
    elif batched and not open_loop:
        raise ValueError(f"batched=True needs an open-loop protocol (one with a schedule); {type(protocol).__name__} "
                         "is closed loop and runs trial by trial")
    names, points, dtypes = _plan(patch, protocol, grid, patch_kwargs, t_stop)
    per_trial_schedules = open_loop and _is_stochastic(protocol)
    try:  # noisy protocols draw their schedule from each trial's seed, in the worker
        schedules = [_schedule_of(pt.patch, pt.protocol, t_stop) if open_loop and not per_trial_schedules else None
                     for pt in points]
    except ValueError as err:
        raise ValueError(f"protocol schedule: {err}") from None

    # configuration hash: everything that determines the numbers of a chunk
    patch_digests = {}  # grid points that differ only in the protocol share one Patch object

    def patch_digest(obj):
        if id(obj) not in patch_digests:
            patch_digests[id(obj)] = {"patch": _digest(_canonical(obj)), "lowered": _lowered_digest(obj)}
        return patch_digests[id(obj)]

    versions = package_versions()
    from . import engine as _engine

    config = {
        "sweep_format": SWEEP_FORMAT,
        "engine_algorithm": getattr(_engine, "ALGORITHM_VERSION", None),
        "stochion": versions.get("stochion"),
        "numpy": ".".join(str(np.__version__).split(".")[:2]),
        "seed": seed,
        "n_trials": n_trials,
        "trials_per_chunk": per_chunk,
        "t_stop_ms": repr(t_stop),
        "path": "batched" if batched else "per_trial",
        "per_trial_schedules": per_trial_schedules,
        "options": _canonical(options),
        "grid": {"names": names, "points": [_canonical(list(pt.params.values())) for pt in points]},
        "points": [{**patch_digest(pt.patch), "protocol": _canonical(pt.protocol),
                    "schedule": _canonical(sch) if sch is not None else None} for pt, sch in zip(points, schedules)],
    }
    config_hash = _digest(config)

    if backend == "processes":
        n_proc = n_workers or _available_cpus()
        threads = max(1, _available_cpus() // n_proc)
    elif backend == "dask":
        threads = "dask"
    else:
        threads = n_workers
    tasks = []
    for pt, sch in zip(points, schedules):
        for b, start in enumerate(range(0, n_trials, per_chunk)):
            tasks.append(_Task(point=pt.index, block=b, trial_start=start, trial_stop=min(start + per_chunk, n_trials),
                               params=pt.params, column_dtypes={n: dtypes[n] for n in names}, patch=pt.patch,
                               protocol=pt.protocol, schedule=sch if batched else None,
                               trial_schedules=batched and per_trial_schedules, seed=seed, t_stop_ms=t_stop,
                               options=options, numba_threads=threads))

    store = _ChunkStore(out_dir, config_hash, options["traces"]) if out_dir is not None else None
    done: dict = {}
    if store is not None:
        for i, task in enumerate(tasks):
            got = store.load(task)
            if got is not None:
                done[i] = got
    n_reused = len(done)
    todo = [t for i, t in enumerate(tasks) if i not in done]
    index_of = {(t.point, t.block): i for i, t in enumerate(tasks)}
    logger.info("sweep %s: %d points x %d trials in %d chunks, %d from checkpoints", config_hash[:12], len(points),
                n_trials, len(tasks), n_reused)

    show = sys.stderr.isatty() if progress is None else bool(progress)
    chunk_wall = chunk_cpu = 0.0
    cleanup = lambda: None  # noqa: E731
    from tqdm.auto import tqdm

    bar = tqdm(total=len(points) * n_trials, initial=sum(len(v[0]) for v in done.values()),
               unit="trial", desc="sweep", disable=not show, file=sys.stderr, dynamic_ncols=True)
    try:
        if todo:
            if backend == "inprocess":
                stream = _iter_inprocess(todo)
            elif backend == "processes":
                stream = _iter_processes(todo, n_workers or _available_cpus())
            else:
                client, cleanup = _dask_client(scheduler, n_workers)
                stream = _iter_dask(todo, client)
            with contextlib.closing(stream):
                for task, out in stream:
                    if store is not None:
                        store.save(task, out.summary, out.traces)
                    done[index_of[(task.point, task.block)]] = (out.summary, out.traces)
                    chunk_wall += out.wall_s
                    chunk_cpu += out.cpu_s
                    bar.update(task.trial_stop - task.trial_start)
    finally:
        bar.close()
        cleanup()

    order = range(len(tasks))
    summary = pd.concat([done[i][0] for i in order], ignore_index=True)
    trace_table = pd.concat([done[i][1] for i in order], ignore_index=True) if options["traces"] else None
    points_table = pd.DataFrame({"point": np.arange(len(points), dtype=np.int64),
                                 **{n: pd.Series([pt.params[n] for pt in points], dtype=dtypes[n]) for n in names}})
    provenance = {
        "config_hash": config_hash,
        "seed": seed,
        "n_trials": n_trials,
        "trials_per_chunk": per_chunk,
        "t_stop_ms": t_stop,
        "grid": {"names": names, "points": [pt.params for pt in points]},
        "patch": _canonical(patch) if not isinstance(patch, Patch) else repr(patch),
        "patch_kwargs": dict(patch_kwargs or {}),
        "protocol": repr(protocol),
        "path": "batched" if batched else "per_trial",
        "options": options,
        "seeding": "trial k of point p: numpy.random.SeedSequence(seed, spawn_key=(p, k))",
        "backend": backend,
        "n_workers": n_workers,
        "n_chunks": len(tasks),
        "n_chunks_reused": n_reused,
        "n_chunks_computed": len(tasks) - n_reused,
        "n_events": int(summary["n_events"].sum()),
        "chunk_wall_s": chunk_wall,
        "chunk_cpu_s": chunk_cpu,
        "wall_s": time.perf_counter() - w0,
        "cpu_s": time.process_time() - c0,
        "versions": versions,
    }
    result = SweepResult(summary=summary, traces=trace_table, points=points_table, provenance=provenance)
    if out_dir is not None:
        out = Path(out_dir)
        files = {"summary": out / "summary.parquet", "chunks": store.dir}
        _write_atomic(summary, files["summary"])
        if trace_table is not None:
            files["traces"] = out / "traces.parquet"
            _write_atomic(trace_table, files["traces"])
        files["provenance"] = out / "sweep.json"
        _write_json_atomic({**provenance, "config": config}, files["provenance"])
        result.files = files
    return result


# -------------------------------------------------------------------------------------------------------------
# sweep files (TOML)
# -------------------------------------------------------------------------------------------------------------
SWEEP_TOML_EXAMPLE = """\
# firing probability of a 100 µm² Hodgkin–Huxley patch under a 1 ms current pulse
seed = 1                 # root seed (required): trial k of point p uses SeedSequence(seed, spawn_key=(p, k))
n_trials = 200           # trials per grid point
t_stop_ms = 20.0         # duration of every trial
trials_per_chunk = 50    # optional: trials per unit of work and checkpoint (default min(n_trials, 250))
traces = false           # optional: also write traces.parquet (V_mV, n_open_<type> every record_dt_ms)
record_dt_ms = 0.025     # optional
spike_level_mV = 0.0     # optional (also V0_mV, rearm_mV)

[patch]
factory = "hh_patch"     # a function of stochion, or "package.module:function"
area_um2 = 100.0         # fixed keywords of the factory
temperature_celsius = 6.3

[protocol]               # omit the table for no stimulus
type = "CurrentStep"     # a protocol class of stochion.protocols, or "package.module:Class"
amplitude_uA_cm2 = 0.0   # fixed fields (swept ones are replaced at each point)
start_ms = 2.0
duration_ms = 1.0
# several protocols acting together: [[protocol]] tables instead of [protocol]; the grid then names
# "<Class>.<field>" (e.g. "CurrentStep.amplitude_uA_cm2"), or the bare field if only one part has it

[grid]                   # the Cartesian product, last name varying fastest
amplitude_uA_cm2 = [2.0, 4.0, 6.0, 8.0, 10.0]
area_um2 = [100.0, 400.0]   # a patch keyword; write "patch.x" / "protocol.x" if a name is both
# or list the points themselves instead of [grid]:
# [[grid]]
# amplitude_uA_cm2 = 4.0
# area_um2 = 100.0
"""

_TOML_KEYS = {"seed", "n_trials", "t_stop_ms", "trials_per_chunk", "traces", "record_dt_ms", "V0_mV",
              "spike_level_mV", "rearm_mV", "patch", "protocol", "grid"}


def _resolve(name: str, default_modules, what: str):
    """A callable by name: ``"package.module:attr"`` or an attribute of one of ``default_modules``."""
    import importlib

    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a name, got {name!r}")
    if ":" in name:
        mod_name, _, attr = name.partition(":")
        try:
            obj = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"{what} {name!r} not found: {err}") from None
        return obj
    for mod_name in default_modules:
        obj = getattr(importlib.import_module(mod_name), name, None)
        if obj is not None:
            return obj
    raise ValueError(f"{what} {name!r} not found in {', '.join(default_modules)}; give 'package.module:{name}' "
                     "for your own")


def read_sweep_config(path) -> dict:
    """Read a sweep file (TOML) into keyword arguments of :func:`sweep`.

    Required: ``seed``, ``n_trials``, ``t_stop_ms`` and the ``[patch]`` table; everything else is optional. The
    schema, by example::

    {example}

    Parameters
    ----------
    path : path
        The ``.toml`` file.

    Returns
    -------
    dict
        ``patch``, ``protocol``, ``grid``, ``n_trials``, ``t_stop_ms``, ``seed``, ``patch_kwargs`` and any
        optional run settings given, ready for ``sweep(**config, out_dir=...)``.
    """
    import tomllib

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from None
    except OSError as err:
        raise ValueError(f"cannot read the sweep file {str(path)!r}: {err.strerror or err}") from None
    where = str(path)
    unknown = sorted(set(data) - _TOML_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_TOML_KEYS)}")
    for key in ("seed", "n_trials", "t_stop_ms", "patch"):
        if key not in data:
            hint = " (so that a rerun reproduces and resumes the sweep)" if key == "seed" else ""
            raise ValueError(f"{where}: {key!r} is required{hint}")
    patch_table = dict(data["patch"]) if isinstance(data["patch"], dict) else None
    if patch_table is None:
        raise ValueError(f"{where}: [patch] must be a table, e.g. factory = \"hh_patch\" and its keywords")
    factory = _resolve(patch_table.pop("factory", "hh_patch"), ("stochion", "stochion.membrane"), "[patch] factory")
    if not callable(factory):
        raise ValueError(f"{where}: [patch] factory must be a function returning a Patch, got {factory!r}")
    protocol = None
    if "protocol" in data:
        tables = data["protocol"] if isinstance(data["protocol"], list) else [data["protocol"]]
        built = []
        for table in tables:
            if not isinstance(table, dict) or "type" not in table:
                raise ValueError(f"{where}: [protocol] must be a table with a 'type', e.g. type = \"CurrentStep\"")
            table = dict(table)
            cls = _resolve(table.pop("type"), ("stochion.protocols", "stochion"), "[protocol] type")
            try:
                built.append(cls(**table))
            except TypeError as err:
                allowed = [f.name for f in dataclasses.fields(cls) if f.init] if dataclasses.is_dataclass(cls) else "?"
                raise ValueError(f"{where}: [protocol] {err}; fields of {cls.__name__}: {allowed}") from None
        protocol = built[0] if not isinstance(data["protocol"], list) else built
    config = {"patch": factory, "protocol": protocol, "grid": data.get("grid"), "patch_kwargs": patch_table}
    for key in sorted(_TOML_KEYS - {"patch", "protocol", "grid"}):
        if key in data:
            config[key] = data[key]
    return config


if read_sweep_config.__doc__:  # None under python -OO
    read_sweep_config.__doc__ = read_sweep_config.__doc__.format(
        example="\n    ".join(SWEEP_TOML_EXAMPLE.splitlines()))
