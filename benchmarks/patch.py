"""Benchmark of the exact patch kernel: events per CPU-second and cost per simulated second.

Runs the classic Hodgkin–Huxley patch (6.3 °C) for areas 1 to 10⁴ µm² at rest and at 7 µA/cm², plus the cost of
agent tracking, and prints one table. Usage::

    python benchmarks/patch.py [--quick] [--repeats N]

Columns: channel events per CPU-second of the kernel call, wall and CPU seconds per simulated second, thinning
acceptance, spikes per simulated second, and the peak resident memory of the process. Times exclude the
one-off numba compilation (a warm-up run comes first). Reference points from the issue: a hand-written C
implementation of the same algorithm does ~3e7 events per CPU-second; NEURON's fixed-step single-channel
mode needs 3–6 s of wall time per simulated second for the 100 µm² patch at 7 µA/cm².
"""

from __future__ import annotations

import argparse
import resource
import time

import stochion as si
from stochion.membrane import uA_per_cm2_to_pA

# simulated time per area (ms): about 10⁶–10⁷ events each
DURATIONS_MS = {1.0: 2000.0, 10.0: 2000.0, 100.0: 1000.0, 1000.0: 200.0, 10000.0: 20.0}


def run_once(area_um2, current_uA_cm2, t_ms, *, track_agents=False, seed=1):
    sim = si.PatchSimulation(si.hh_patch(area_um2), seed=seed, track_agents=track_agents, record_dt_ms=0.1)
    I = uA_per_cm2_to_pA(current_uA_cm2, area_um2)
    sim.advance_to(5.0, current_pA=I)  # settle out of the initial draw, not timed
    e0, c0 = sim.n_events, sim.n_candidates
    w0, p0 = time.perf_counter(), time.process_time()
    sim.advance_to(5.0 + t_ms, current_pA=I)
    wall, cpu = time.perf_counter() - w0, time.process_time() - p0
    n_spikes = sum(len(c[0]) for c in sim._spk_chunks)
    return dict(events=sim.n_events - e0, candidates=sim.n_candidates - c0, wall=wall, cpu=cpu, spikes=n_spikes)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the simulated time")
    ap.add_argument("--repeats", type=int, default=1, help="repeat each row and keep the fastest CPU time")
    args = ap.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    run_once(1.0, 0.0, 1.0)
    run_once(1.0, 0.0, 1.0, track_agents=True)  # compile

    header = (f"{'area_um2':>9} {'I_uA_cm2':>8} {'agents':>6} {'sim_ms':>7} {'events':>11} {'events/cpu_s':>13} "
              f"{'wall_s/sim_s':>12} {'cpu_s/sim_s':>11} {'accept':>7} {'spikes/s':>8}")
    print(header)
    print("-" * len(header))
    rows = [(a, I, False) for a in DURATIONS_MS for I in (0.0, 7.0)] + [(100.0, 7.0, True), (1000.0, 7.0, True)]
    for area, I, agents in rows:
        t_ms = DURATIONS_MS[area] * scale
        best = min((run_once(area, I, t_ms, track_agents=agents) for _ in range(args.repeats)),
                   key=lambda r: r["cpu"])
        sim_s = t_ms * 1e-3
        print(f"{area:>9g} {I:>8g} {str(agents):>6} {t_ms:>7g} {best['events']:>11d} "
              f"{best['events'] / best['cpu']:>13.3g} {best['wall'] / sim_s:>12.3g} {best['cpu'] / sim_s:>11.3g} "
              f"{best['events'] / max(best['candidates'], 1):>7.4f} {best['spikes'] / sim_s:>8.1f}")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory: {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
