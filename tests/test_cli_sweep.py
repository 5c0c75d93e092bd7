"""``stochion sweep CONFIG.toml --out DIR``: tables, resuming after a kill, schema errors."""

import json
import subprocess
import sys
import time

import pandas as pd
import pytest

from stochion.cli import main
from stochion.ensemble import read_sweep_config, sweep

SMALL = """\
seed = 5
n_trials = 6
t_stop_ms = 6.0
trials_per_chunk = 4
traces = true
record_dt_ms = 0.5

[patch]
factory = "hh_patch"
area_um2 = 5

[protocol]
type = "CurrentStep"
amplitude_uA_cm2 = 0.0
start_ms = 1.0
duration_ms = 1.0

[grid]
amplitude_uA_cm2 = [3.0, 30.0]
"""

# 2 points x 8 chunks of 16 trials of a 100 µm² patch for 20 ms: ~0.1-0.3 s per chunk
LONG = """\
seed = 9
n_trials = 128
t_stop_ms = 20.0
trials_per_chunk = 16

[patch]
area_um2 = 100.0

[protocol]
type = "CurrentStep"
amplitude_uA_cm2 = 0.0
start_ms = 2.0
duration_ms = 1.0

[grid]
amplitude_uA_cm2 = [4.0, 9.0]
"""


def write(tmp_path, text, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def run_json(capsys, *args):
    assert main(["sweep", *map(str, args), "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    return json.loads(out)


def test_sweep_writes_tables_and_a_rerun_reuses_every_chunk(tmp_path, capsys):
    config = write(tmp_path, SMALL)
    out = tmp_path / "out"
    first = run_json(capsys, config, "--out", out)
    assert first["n_chunks"] == 4 and first["n_chunks_computed"] == 4 and first["n_chunks_reused"] == 0
    assert set(first["files"]) == {"summary", "traces", "provenance", "chunks"}
    assert [p["p_fired"] for p in first["points"]][1] == 1.0
    summary = pd.read_parquet(first["files"]["summary"])
    direct = sweep(**read_sweep_config(config))
    pd.testing.assert_frame_equal(summary, direct.summary, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_parquet(first["files"]["traces"]), direct.traces, check_exact=True)
    prov = json.loads((out / "sweep.json").read_text())
    assert prov["config_hash"] == first["config_hash"] and prov["seed"] == 5 and "config" in prov
    again = run_json(capsys, config, "--out", out, "--backend", "processes", "--workers", "2")
    assert again["n_chunks_reused"] == 4 and again["n_chunks_computed"] == 0
    assert again["config_hash"] == first["config_hash"]
    # the plain output says where the tables are
    assert main(["sweep", str(config), "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert str(out / "summary.parquet") in text and "4 reused from checkpoints" in text


def test_killed_sweep_resumes_to_the_uninterrupted_tables(tmp_path, capsys):
    config = write(tmp_path, LONG)
    out = tmp_path / "out"
    chunks = out / "chunks"
    proc = subprocess.Popen([sys.executable, "-m", "stochion.cli", "sweep", str(config), "--out", str(out),
                             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(chunks.glob("*.summary.parquet"))) >= 3:
                break
            time.sleep(0.01)
    finally:
        proc.kill()  # SIGKILL: no cleanup of any kind
        _, err = proc.communicate()
    assert proc.returncode != 0, f"the sweep finished before it could be killed: {err.decode()}"
    finished = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in chunks.glob("*.summary.parquet")}
    assert 3 <= len(finished) < 16 and not (out / "summary.parquet").exists()
    resumed = run_json(capsys, config, "--out", out)
    assert resumed["n_chunks_reused"] == len(finished)
    assert resumed["n_chunks_computed"] == 16 - len(finished)
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in chunks.glob("*.summary.parquet")}
    assert {k: after[k] for k in finished} == finished  # finished chunks were not recomputed
    uninterrupted = sweep(**read_sweep_config(config))
    pd.testing.assert_frame_equal(pd.read_parquet(resumed["files"]["summary"]), uninterrupted.summary,
                                  check_exact=True)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("amplitude_uA_cm2 = [3.0, 30.0]", "amplitude_mA = [1.0]"),
     r"unknown grid parameter 'amplitude_mA'.*CurrentStep: amplitude_pA, amplitude_uA_cm2"),
    (lambda t: t.replace("seed = 5\n", ""), r"'seed' is required \(so that a rerun reproduces and resumes"),
    (lambda t: t.replace("n_trials = 6", "n_trials = 0"), r"n_trials must be an integer >= 1, got 0"),
    (lambda t: t.replace("n_trials = 6", "n_trials = 6\nworkers = 2"), r"unknown key\(s\) \['workers'\]"),
    (lambda t: t.replace('type = "CurrentStep"', 'type = "CurrentStp"'), r"\[protocol\] type 'CurrentStp' not found"),
    (lambda t: t.replace("start_ms = 1.0", "start = 1.0"), r"\[protocol\] .*unexpected keyword argument 'start'"),
    (lambda t: t.replace("area_um2 = 5", "area = 5"), r"patch_kwargs: unknown parameter\(s\) \['area'\] of hh_patch"),
    (lambda t: t.replace("seed = 5", "seed = 5\nseed = 6"), r"not valid TOML"),
])
def test_bad_sweep_files_give_clear_errors(tmp_path, capsys, edit, message):
    config = write(tmp_path, edit(SMALL))
    assert main(["sweep", str(config), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stochion sweep: error: ")
    assert pytest.importorskip("re").search(message, err), err
    assert not (tmp_path / "out" / "chunks").exists() or not list((tmp_path / "out" / "chunks").iterdir())


def test_help_documents_the_schema(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    text = capsys.readouterr().out
    for needle in ("[patch]", "factory = \"hh_patch\"", "[protocol]", "[grid]", "[[grid]]", "trials_per_chunk",
                   "--backend", "--scheduler", "spawn_key=(p, k)"):
        assert needle in text


def test_combined_closed_loop_protocols_from_a_sweep_file(tmp_path, capsys):
    config = write(tmp_path, """\
seed = 3
n_trials = 2
t_stop_ms = 15.0

[patch]
area_um2 = 20.0

[[protocol]]
type = "CurrentStep"
amplitude_uA_cm2 = 20.0
start_ms = 1.0
duration_ms = 1.0

[[protocol]]
type = "StopAfterSpikes"
n_spikes = 1
delay_ms = 2.0

[grid]
"CurrentStep.amplitude_uA_cm2" = [20.0, 40.0]
""")
    got = run_json(capsys, config, "--out", tmp_path / "out")
    summary = pd.read_parquet(got["files"]["summary"])
    assert list(summary.columns[:1]) == ["CurrentStep.amplitude_uA_cm2"]
    prov = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert prov["path"] == "per_trial"
    assert (summary["n_spikes"] == 1).all()  # the run stops 2 ms after the first spike
