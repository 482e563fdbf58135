"""Sync scans over real CA against the simulated bench (motor, camera, trigger box).

The scan runs in `python -m benchioc.sync` (the CA clients and SyncController, no IOC)
as a subprocess, so its CA context gets the sim's loopback environment; the IOC's
`$(P)Sync:` records bind the same controller.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from benchioc import datafile
from simharness import run_ca, start_sim

pytestmark = pytest.mark.integration

# Software timing of a Cont scan: the camera starts within a few ms of the motor
# passing Start (6 ms seen on a loaded 2-core machine, 0.023 mm at 4 mm/s); stated
# tolerance: a quarter of the 0.2 mm step, as in the IOC-level test.
CONT_TOLERANCE = 0.05
FLY_TOLERANCE = 1e-5  # position compare fires at the exact crossing


@pytest.fixture(scope="module")
def bench(repo_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sync")
    config = folder / "bench.yaml"
    shutil.copy(repo_root / "configs" / "bench.yaml", config)
    with start_sim(config, time_scale=1.0) as sim:
        yield sim, config


def scan(bench, mode: str, *extra: str) -> tuple[int, dict]:
    sim, config = bench
    result = subprocess.run(
        [sys.executable, "-m", "benchioc.sync", "--config", str(config), "--motor", "A",
         "--mode", mode, "--start", "0", "--end", "2", "--points", "11",
         "--exposure", "0.01", "--period", "0.05", "--no-require-homed", *extra],
        env=sim.env, capture_output=True, text=True, timeout=90,
    )
    assert result.stdout, result.stderr + sim.stderr_text()[-2000:]
    return result.returncode, json.loads(result.stdout.strip().splitlines()[-1])


def check_scan(record: dict, tolerance: float) -> None:
    assert record["state"] == "Done", record["message"]
    sets = np.array(record["set_positions"])
    np.testing.assert_allclose(sets, np.linspace(0, 2, 11))
    np.testing.assert_allclose(record["positions"], sets, atol=tolerance)
    assert np.diff(record["frame_numbers"]).tolist() == [1] * 10
    assert np.all(np.diff(record["timestamps"]) > 0)
    assert record["missed_frames"] == 0
    path = Path(record["data_file"])
    assert datafile.verify_checksum(path)
    with h5py.File(path) as h5:
        assert h5["entry/entry_identifier"].asstr()[()] == record["scan_id"]
        np.testing.assert_allclose(h5["entry/data/positions"][()], record["positions"])
        assert list(h5["entry/data/frame_numbers"][()]) == record["frame_numbers"]
        assert h5["entry/instrument/motor_A/record_fields/VELO"][()] == 10.0


def motor_velocity(bench) -> float:
    sim, _ = bench
    out = run_ca("caget", "-t", "SIM:A.VELO", env=sim.env).stdout
    return float(out)


def test_step_scan_over_ca(bench) -> None:
    code, record = scan(bench, "Step")
    assert code == 0
    check_scan(record, tolerance=0.001)  # put-callback moves end on the point


def test_cont_scan_over_ca(bench) -> None:
    code, record = scan(bench, "Cont")
    assert code == 0
    check_scan(record, tolerance=CONT_TOLERANCE)
    assert motor_velocity(bench) == 10.0  # 4 mm/s during the sweep, restored


def test_fly_scan_over_ca(bench) -> None:
    code, record = scan(bench, "Fly")
    assert code == 0
    check_scan(record, tolerance=FLY_TOLERANCE)
    assert motor_velocity(bench) == 10.0


def test_dropped_pulse_is_reported_as_a_missed_frame(bench) -> None:
    sim, _ = bench
    run_ca("caput", "SIM:PANDA:PCOMP1:Sim:DROP", "1", env=sim.env)
    code, record = scan(bench, "Fly")
    assert code == 0
    assert record["missed_frames"] == 1
    assert "1 missed frame(s): 11 triggers, 10 frames counted" in record["message"]
    assert record["frame_numbers"][0] == -1


def test_invalid_configuration_is_refused_before_anything_moves(bench) -> None:
    code, record = scan(bench, "Fly", "--period", "0.005")
    assert code == 2
    assert "Period 0.005 s is shorter than Exposure 0.01 s + camera readout 0.002 s" \
        in record["refused"]
