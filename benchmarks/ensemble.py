"""Benchmark of parameter sweeps: the batched path against a loop of single runs.

A firing-probability sweep of the 100 µm² Hodgkin–Huxley patch (``hh_patch(100)``, 6000 Na⁺ + 1800 K⁺
channels, 6.3 °C): a 1 ms current pulse from t = 2 ms at 12 amplitudes, 1 … 12 µA/cm², bracketing the 1 ms pulse
threshold (6.9 µA/cm² for the Hodgkin–Huxley equations, the infinite-channel limit), 1000 trials each, 20 ms per
trial — about 2×10⁹ channel events. Usage::

    python benchmarks/ensemble.py [--quick] [--backend inprocess|processes] [--workers N] [--loop-trials K]

It runs the sweep through :func:`stochion.ensemble.sweep` (batched kernel: a block of trials per compiled call, parallel
over numba threads), then the same trials one by one — through :func:`stochion.simulate` and through a simpy
:class:`stochion.Experiment` — on a subset (``--loop-trials`` per amplitude), checks that the subset's spikes are
bit-identical to the batched ones, and extrapolates the loops per trial to the whole sweep. Printed: wall and
CPU time (the machine may be shared: compare CPU time too), channel events per wall- and CPU-second, the
speed-up, and the firing probability per amplitude with its binomial standard error. Targets from the issue: the
full sweep in under 60 s wall on 2 cores; the batched path at least 5× faster than the loop. Times exclude the
one-off numba compilation (a small warm-up sweep comes first). ``--quick``: 100 trials per amplitude.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np

import stochion as si
from stochion.ensemble import sweep, trial_seed

AREA_UM2 = 100.0
T_STOP_MS = 20.0
PULSE = si.CurrentStep(amplitude_uA_cm2=0.0, start_ms=2.0, duration_ms=1.0)
AMPLITUDES_UA_CM2 = [float(a) for a in np.arange(1.0, 13.0)]
SEED = 2024


def run_batched(n_trials, backend, workers):
    w0, c0 = time.perf_counter(), time.process_time()
    res = sweep(si.hh_patch, PULSE, patch_kwargs={"area_um2": AREA_UM2}, grid={"amplitude_uA_cm2": AMPLITUDES_UA_CM2},
                n_trials=n_trials, t_stop_ms=T_STOP_MS, seed=SEED, backend=backend, n_workers=workers, progress=False)
    wall = time.perf_counter() - w0
    cpu = time.process_time() - c0  # this process, all its numba threads
    if backend == "processes":  # plus the workers' CPU time, which they measure per chunk
        cpu += res.provenance["chunk_cpu_s"]
    return res, wall, cpu


def run_loop(n_per_point, how):
    """The first ``n_per_point`` trials of every amplitude, one run at a time (same seeds as the sweep)."""
    patch = si.hh_patch(AREA_UM2)
    spikes, events = {}, 0
    w0, c0 = time.perf_counter(), time.process_time()
    for p, amp in enumerate(AMPLITUDES_UA_CM2):
        protocol = dataclasses.replace(PULSE, amplitude_uA_cm2=amp)
        for k in range(n_per_point):
            seed = trial_seed(SEED, p, k)
            if how == "simulate":
                r = si.simulate(patch, protocol, t_stop_ms=T_STOP_MS, seed=seed, record=("V",))
            else:
                r = si.Experiment(patch, protocol, seed=seed, record=("V",)).run(T_STOP_MS)
            spikes[(p, k)] = r.spikes["t_ms"].to_numpy()
            events += int(r.provenance["n_events"])
    return spikes, events, time.perf_counter() - w0, time.process_time() - c0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 trials per amplitude instead of 1000")
    ap.add_argument("--backend", choices=("inprocess", "processes"), default="inprocess")
    ap.add_argument("--workers", type=int, default=None, help="numba threads (inprocess) or processes")
    ap.add_argument("--loop-trials", type=int, default=None,
                    help="trials per amplitude for the one-by-one loops (default 5, --quick 2)")
    args = ap.parse_args(argv)
    n_trials = 100 if args.quick else 1000
    n_loop = args.loop_trials or (2 if args.quick else 5)
    n_total = n_trials * len(AMPLITUDES_UA_CM2)

    # compile (cached on disk after the first time)
    sweep(si.hh_patch, PULSE, patch_kwargs={"area_um2": 2.0}, grid={"amplitude_uA_cm2": [5.0]}, n_trials=2,
             t_stop_ms=3.0, seed=0, progress=False)
    si.simulate(si.hh_patch(2.0), PULSE, t_stop_ms=3.0, seed=0)
    si.Experiment(si.hh_patch(2.0), PULSE, seed=0).run(3.0)

    print(f"hh_patch({AREA_UM2:g}): {len(AMPLITUDES_UA_CM2)} amplitudes x {n_trials} trials x {T_STOP_MS:g} ms, "
          f"1 ms pulse from {PULSE.start_ms:g} ms; {os.cpu_count()} CPUs; backend {args.backend}")
    res, wall, cpu = run_batched(n_trials, args.backend, args.workers)
    events = int(res.summary["n_events"].sum())

    loops = {}
    for how in ("simulate", "experiment"):
        spikes, ev, w, c = run_loop(n_loop, how)
        s = res.summary.set_index(["point", "trial"])["spike_times_ms"]
        identical = all(np.array_equal(s.loc[key], t) for key, t in spikes.items())
        loops[how] = dict(events=ev, wall=w, cpu=c, n=len(spikes), identical=identical)

    header = (f"{'path':<26} {'trials':>7} {'events':>11} {'wall_s':>9} {'cpu_s':>9} {'events/wall_s':>13} "
              f"{'events/cpu_s':>12} {'ms/trial':>9}")
    print(header)
    print("-" * len(header))
    print(f"{'batched sweep':<26} {n_total:>7d} {events:>11.4g} {wall:>9.2f} {cpu:>9.2f} {events / wall:>13.3g} "
          f"{events / cpu:>12.3g} {1e3 * wall / n_total:>9.3f}")
    for how, d in loops.items():
        name = "loop of simulate" if how == "simulate" else "loop of Experiment (simpy)"
        print(f"{name:<26} {d['n']:>7d} {d['events']:>11.4g} {d['wall']:>9.2f} {d['cpu']:>9.2f} "
              f"{d['events'] / d['wall']:>13.3g} {d['events'] / d['cpu']:>12.3g} {1e3 * d['wall'] / d['n']:>9.3f}")
    print()
    for how, d in loops.items():
        # extrapolate per channel event: subthreshold and spiking trials differ in cost, the event count does not lie
        ext_wall = d["wall"] / d["events"] * events
        ext_cpu = d["cpu"] / d["events"] * events
        print(f"loop of {how:<10}: extrapolated to all {n_total} trials {ext_wall:8.1f} s wall, {ext_cpu:8.1f} s CPU; "
              f"batched is {ext_wall / wall:5.1f}x faster in wall time, {ext_cpu / cpu:4.1f}x in CPU time; "
              f"spikes of the {d['n']} looped trials bit-identical to the sweep: {d['identical']}")
    full = wall * 12000 / n_total
    what = f"{wall:.1f} s" if n_total == 12000 else f"{full:.0f} s extrapolated from {n_total} trials"
    print(f"target (full sweep of 12000 trials < 60 s wall on 2 cores): {what} — {'met' if full < 60 else 'NOT met'}; "
          f"CPU time per channel event {1e9 * cpu / events:.0f} ns")
    print()
    s = res.summary
    table = s.assign(fired=s["n_spikes"] > 0,
                     evoked=(s["first_spike_ms"] >= PULSE.start_ms) & (s["first_spike_ms"] < PULSE.start_ms + 10.0)) \
        .groupby("amplitude_uA_cm2")[["fired", "evoked"]].mean()
    print(f"{'amplitude_uA_cm2':>16} {'p_fired':>8} {'±SE':>6} {'p_first_spike_2_12ms':>21}")
    for amp, row in table.iterrows():
        se = np.sqrt(row["fired"] * (1 - row["fired"]) / n_trials)
        print(f"{amp:>16g} {row['fired']:>8.3f} {se:>6.3f} {row['evoked']:>21.3f}")
    print("(p_fired counts any spike in the 20 ms, including spontaneous ones of this small patch)")


if __name__ == "__main__":
    main()
