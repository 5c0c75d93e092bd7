"""Command line: ``stochion simulate ...`` (one run) and ``stochion sweep CONFIG.toml --out DIR`` (a sweep)."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main"]


def _simulate_parser(sub):
    p = sub.add_parser(
        "simulate",
        help="simulate a Hodgkin–Huxley patch under constant current or voltage clamp",
        description=(
            "Simulate the classic stochastic Hodgkin–Huxley patch (hh_patch) from rest, channel states drawn "
            "from the stationary distribution, under a constant current applied from t = 0 (or a voltage clamp "
            "held from t = 0) for the whole run. Spikes are upward crossings of --spike-level-mV, re-armed "
            "below --rearm-mV. Clamp statistics (open fractions) are time averages after --settle-ms."
        ),
    )
    p.add_argument("--area-um2", type=float, required=True, help="membrane area, µm²")
    p.add_argument("--current-uA-cm2", type=float, default=0.0, help="injected current density, µA/cm²")
    p.add_argument("--t-stop-ms", type=float, required=True, help="duration, ms")
    p.add_argument("--seed", type=int, default=None, help="seed (same seed, same run, bit for bit)")
    p.add_argument("--clamp-mV", type=float, default=None, help="voltage clamp level from t = 0, mV")
    p.add_argument("--method", choices=("exact", "deterministic"), default="exact")
    p.add_argument("--temperature-celsius", type=float, default=6.3)
    p.add_argument("--leak", choices=("constant", "agents"), default="constant")
    p.add_argument("--agents", action="store_true", help="track every channel and write single-channel events")
    p.add_argument("--record-dt-ms", type=float, default=0.025)
    p.add_argument("--spike-level-mV", type=float, default=0.0)
    p.add_argument("--rearm-mV", type=float, default=-20.0)
    p.add_argument("--settle-ms", type=float, default=50.0,
                   help="clamp statistics skip this initial relaxation (at most half the run); default 50 ms, "
                        "about 5 × the slowest HH time constant (τ_h ≈ 9 ms at 6.3 °C)")
    p.add_argument("--out", default=None, help="write the tables to FILE.parquet or FILE.csv")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object with the summary")
    p.set_defaults(func=_run_simulate)


def _run_simulate(args) -> int:
    from . import CurrentStep, VoltageStep, hh_patch, simulate

    patch = hh_patch(args.area_um2, temperature_celsius=args.temperature_celsius, leak=args.leak)
    if args.clamp_mV is not None:
        protocol = VoltageStep(args.clamp_mV, holding_mV=args.clamp_mV)
    else:
        protocol = CurrentStep(amplitude_uA_cm2=args.current_uA_cm2)
    result = simulate(patch, protocol, t_stop_ms=args.t_stop_ms, seed=args.seed, method=args.method,
                      record_dt_ms=args.record_dt_ms, track_agents=args.agents,
                      spike_level_mV=args.spike_level_mV, rearm_mV=args.rearm_mV)
    summary = result.summary(settle_ms=args.settle_ms)
    summary.update({"area_um2": args.area_um2, "current_uA_cm2": args.current_uA_cm2, "clamp_mV": args.clamp_mV,
                    "t_stop_ms": args.t_stop_ms, "seed": args.seed, "method": args.method,
                    "cpu_s": result.provenance["cpu_s"], "channel_counts": result.provenance["channel_counts"]})
    if args.out:
        summary["files"] = [str(p) for p in result.save(args.out)]
    if args.json:
        print(json.dumps(summary))
    else:
        width = max(len(k) for k in summary)
        for k, v in summary.items():
            print(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    return 0


def _sweep_parser(sub):
    from .ensemble import BACKENDS, SWEEP_TOML_EXAMPLE

    p = sub.add_parser(
        "sweep",
        help="run a parameter sweep declared in a TOML file, with checkpointing",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run every point of the grid declared in CONFIG.toml for n_trials trials (stochion.sweep). Finished\n"
            "chunks (grid point x block of trials) are written to DIR/chunks as they complete, named by a hash of\n"
            "the whole configuration: rerunning the same command resumes an interrupted sweep without recomputing\n"
            "finished chunks; a changed configuration never reuses them. At the end DIR holds summary.parquet (one\n"
            "row per trial: swept parameters, point, trial, seed, n_spikes, first_spike_ms, peak_mV, peak_t_ms,\n"
            "spike_times_ms, spike_peaks_mV, n_events), traces.parquet (if traces = true) and sweep.json.\n"
            "The tables do not depend on the backend or the number of workers."
        ),
        epilog="CONFIG.toml, by example:\n\n" + SWEEP_TOML_EXAMPLE,
    )
    p.add_argument("config", metavar="CONFIG.toml", help="the sweep file (TOML)")
    p.add_argument("--out", metavar="DIR", required=True, help="output and checkpoint directory")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="inprocess (numba threads; default), processes (local worker processes) or dask "
                        "(default when --scheduler is given)")
    p.add_argument("--workers", type=int, default=None,
                   help="numba threads (inprocess), worker processes (processes) or LocalCluster workers (dask)")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address, tcp://host:port")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="show a progress bar (default: only on a terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object (files, counts, points)")
    p.set_defaults(func=_run_sweep)


def _run_sweep(args) -> int:
    from .ensemble import read_sweep_config, sweep

    config = read_sweep_config(args.config)
    try:
        result = sweep(**config, out_dir=args.out, backend=args.backend, n_workers=args.workers,
                       scheduler=args.scheduler, progress=args.progress)
    except ImportError as err:  # the optional Dask dependency
        raise ValueError(str(err)) from None
    prov = result.provenance
    s = result.summary
    per_point = s.assign(fired=s["n_spikes"] > 0).groupby("point", sort=True).agg(
        n_trials=("trial", "size"), p_fired=("fired", "mean"), mean_spikes=("n_spikes", "mean"))
    table = result.points.set_index("point").join(per_point).reset_index()
    info = {
        "files": {k: str(v) for k, v in result.files.items()},
        "config_hash": prov["config_hash"],
        "n_points": len(result.points),
        "n_trials": prov["n_trials"],
        "n_chunks": prov["n_chunks"],
        "n_chunks_computed": prov["n_chunks_computed"],
        "n_chunks_reused": prov["n_chunks_reused"],
        "n_events": prov["n_events"],
        "wall_s": prov["wall_s"],
    }
    if args.json:
        print(json.dumps({**info, "points": table.to_dict(orient="records")}, default=str))
        return 0
    print(f"sweep {info['config_hash'][:12]}: {info['n_points']} points x {info['n_trials']} trials, "
          f"{info['n_chunks_computed']} chunks computed, {info['n_chunks_reused']} reused from checkpoints, "
          f"{info['n_events']:.3g} channel events, {info['wall_s']:.1f} s")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.6g}"))
    for name, path in info["files"].items():
        print(f"{name:<10}  {path}")
    return 0


def _tour_parser(sub):
    # the tour has its own argument parser (stochion.tour.main); this entry only names it in the help
    sub.add_parser("tour", help="run every scenario and write one HTML report (see 'stochion tour --help')")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["tour"]:
        from .tour import main as tour_main

        return tour_main(argv[1:])
    parser = argparse.ArgumentParser(prog="stochion", description="Exact stochastic simulation of nerve membranes.")
    sub = parser.add_subparsers(dest="command", required=True)
    _simulate_parser(sub)
    _sweep_parser(sub)
    _tour_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:  # bad input: a clear message, no traceback
        print(f"stochion {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
