import json
import subprocess
import sys

import pandas as pd
import pytest

from stochion.cli import main

REQUIRED = {"n_spikes", "rate_hz", "isi_mean_ms", "isi_cv", "n_events", "wall_s", "mean_V_mV"}
CLAMP = {"na_open_fraction_mean", "na_open_fraction_var", "k_open_fraction_mean", "k_open_fraction_var"}


def run_json(capsys, *args):
    assert main(["simulate", *args, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1  # exactly one JSON object
    return json.loads(out)


def test_current_clamp_json(capsys):
    d = run_json(capsys, "--area-um2", "200", "--current-uA-cm2", "10", "--t-stop-ms", "60", "--seed", "3")
    assert REQUIRED <= set(d) and not (CLAMP & set(d))
    assert d["n_spikes"] >= 2 and d["rate_hz"] == pytest.approx(d["n_spikes"] / 0.06)
    assert d["n_events"] > 10_000 and -80 < d["mean_V_mV"] < 0
    again = run_json(capsys, "--area-um2", "200", "--current-uA-cm2", "10", "--t-stop-ms", "60", "--seed", "3")
    assert {k: v for k, v in again.items() if "wall" not in k and "cpu" not in k} == \
        {k: v for k, v in d.items() if "wall" not in k and "cpu" not in k}


def test_clamp_json_open_fractions(capsys):
    d = run_json(capsys, "--area-um2", "100", "--clamp-mV", "-30", "--t-stop-ms", "120", "--seed", "1")
    assert CLAMP <= set(d) and d["mean_V_mV"] == -30.0 and d["settle_ms"] == 50.0
    V = -30.0
    an = 0.01 * (V + 55) / (1 - 2.718281828459045 ** (-(V + 55) / 10))
    bn = 0.125 * 2.718281828459045 ** (-(V + 65) / 80)
    n_inf4 = (an / (an + bn)) ** 4
    # SE of a 70 ms time average of 1800 channels is ~0.005 (deviation-matrix formula); 5 SE
    assert d["k_open_fraction_mean"] == pytest.approx(n_inf4, abs=0.025)
    assert 0 < d["k_open_fraction_var"] < 5 * n_inf4 * (1 - n_inf4) / 1800


def test_deterministic_and_spike_levels(capsys):
    d = run_json(capsys, "--area-um2", "100", "--current-uA-cm2", "10", "--t-stop-ms", "50", "--method",
                 "deterministic", "--spike-level-mV", "10", "--rearm-mV", "-40")
    assert d["n_spikes"] >= 2 and d["n_events"] == 0


def test_out_files(tmp_path, capsys):
    out = tmp_path / "run.parquet"
    d = run_json(capsys, "--area-um2", "20", "--current-uA-cm2", "5", "--t-stop-ms", "5", "--seed", "1", "--agents",
                 "--out", str(out))
    assert out.exists() and (tmp_path / "run_channel_events.parquet").exists()
    assert len(pd.read_parquet(out)) == 201 and str(out) in d["files"]


def test_bad_input_exit_code_and_message(capsys):
    assert main(["simulate", "--area-um2", "0", "--t-stop-ms", "5"]) == 2
    assert "area_um2 must be finite and > 0, got 0.0" in capsys.readouterr().err
    assert main(["simulate", "--area-um2", "5", "--t-stop-ms", "-1"]) == 2
    assert "t_stop_ms" in capsys.readouterr().err


def test_console_script_installed():
    out = subprocess.run([sys.executable, "-m", "stochion.cli", "simulate", "--area-um2", "10", "--t-stop-ms", "2",
                          "--seed", "1", "--json"], capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["n_events"] > 0
