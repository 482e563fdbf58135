"""`bench-data` on scan files written by real scans: `bench-ioc --sim`, scans run with the
real `caput -c Sync:Run 1`, frames written by the simulated camera's HDF5 plugin, and the
command run as a user runs it (`python -m benchioc.tools.benchdata --config ...`).

Only the simulated bench: the tool reads files, and the genuine backend writes the same
layout (tests/integration/test_sync_ioc.py checks that on both), so it would add a slow
start and nothing the tool could tell apart. tests/unit/test_benchdata.py covers the
rest (darks and flats, every kind of damage) on files from the in-process fakes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from benches import Bench, open_bench
from benchioc.sim import image
from benchioc.tools.benchdata import quicklook
from iocharness import IocProcess

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TIME_SCALE = 5  # as test_sync_ioc: at 20 a Fly scan can miss a trigger
OPTICS = image.SpotOptics(-40.0, 40.0)  # configs/bench.yaml motor A's soft range
# A wide Step scan of A (the spot crosses most of the sensor) and a short Fly scan.
SCANS = {
    "Step": {"Mode": "Step", "Motor": "A", "Start": "-30", "End": "30", "NumPoints": "13",
             "FramesPerPoint": "1", "Exposure": "0.01", "Period": "0.05",
             "SettleTime": "0", "RequireHomed": "0"},
    "Fly": {"Mode": "Fly", "Start": "0", "End": "2", "NumPoints": "11"},
}


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Bench:
    """The simulated bench only (overrides the shared fixture's two backends)."""
    opened = open_bench("sim", tmp_path_factory.mktemp("test_benchdata_ca"),
                        time_scale=TIME_SCALE)
    yield opened
    opened.stop()


# ioc: tests/integration/conftest.py, once motor A (which the scans need) is connected
WAIT_FOR_MOTOR = "A"


def texts(ioc: IocProcess, *names: str) -> list[str]:
    lines = ioc.caget(*names, options=("-t", "-S"))
    return [line.encode().decode("unicode_escape") for line in lines]


@pytest.fixture(scope="module")
def scans(ioc: IocProcess) -> dict[str, tuple[Path, str]]:
    """mode -> (scan file, PID) of each scan in SCANS, run in order."""
    done = {}
    for mode, settings in SCANS.items():
        for name, value in settings.items():
            result = ioc.caput(f"Sync:{name}", value, timeout=10)
            assert result.returncode == 0, result.stdout + result.stderr
        result = ioc.caput("Sync:Run", "1", timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        state, message, data_file, scan_id = texts(ioc, "Sync:State", "Sync:Message",
                                                   "Sync:DataFile", "Sync:ScanId")
        assert state == "Done", message
        done[mode] = (Path(data_file), scan_id)
    return done


def bench_data(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "benchioc.tools.benchdata", *args],
                            capture_output=True, text=True, timeout=120, cwd=cwd,
                            env={**os.environ, "PYTHONPATH": str(REPO / "ioc")})
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def test_list_by_the_config_shows_both_scans(ioc, scans) -> None:
    result = bench_data("--config", str(ioc.config), "list", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["pid"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {pid for _, pid in scans.values()}
    step = rows[scans["Step"][1]]
    assert (step["mode"], step["motor"], step["points"], step["frames"],
            step["missed_frames"]) == ("Step", "A", 13, 13, 0)
    assert Path(step["path"]) == scans["Step"][0]
    assert rows[scans["Fly"][1]]["points"] == 11
    text = bench_data("--config", str(ioc.config), "list").stdout
    assert len(text.splitlines()) == 3 and "-frames" not in text


def test_show_plots_one_data_frame_per_point_where_the_spot_was(ioc, scans,
                                                                tmp_path) -> None:
    path, pid = scans["Step"]
    out = tmp_path / "quicklook.png"
    result = bench_data("--config", str(ioc.config), "show", pid, "--png", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert "13 data frames, 0 dark, 0 flat, 0 missed" in result.stdout
    look = quicklook.quick_look(path, tmp_path / "again.png")
    (x, intensity), = look.plotted["signal against position"]
    with h5py.File(path) as h5:
        positions = h5["entry/data/positions"][()]
    assert x.size == intensity.size == 13
    np.testing.assert_allclose(x, positions)
    column, _ = look.plotted["spot centroid per data frame"]
    # the spot sits where the motor was at mid-exposure: within a pixel at a Step point
    np.testing.assert_allclose(column[1], [OPTICS.column(p) for p in positions], atol=1.0)
    (_, error), = look.plotted["measured against set position"]
    assert error.size == 13 and np.all(np.abs(error) < 1e-3)


def test_verify_cite_and_embargo_on_real_files(ioc, scans) -> None:
    result = bench_data("--config", str(ioc.config), "verify", "--nexus")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 files checked" in result.stdout  # two scans, two frames files
    pid = scans["Fly"][1]
    cite = bench_data("--config", str(ioc.config), "cite", pid)
    assert cite.returncode == 0
    assert cite.stdout.startswith("Motion test bench BENCH, Fly scan of motor A, ")
    assert cite.stdout.rstrip().endswith(f"Persistent identifier: {pid}.")
    embargo = bench_data("--config", str(ioc.config), "embargo")
    assert embargo.stdout.splitlines()[0] == "under embargo: 2"


def test_verify_finds_damage_in_a_copy(ioc, scans, tmp_path) -> None:
    data = tmp_path / "data"
    shutil.copytree(ioc.config.parent / "data", data)
    step, fly = (data / scans[mode][0].name for mode in ("Step", "Fly"))
    step.write_bytes(step.read_bytes()[:-100])  # truncated
    with h5py.File(fly) as h5:
        frames = data / h5["entry/data"].get("data", getlink=True).filename
    frames.unlink()
    result = bench_data("verify", str(data))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"{step}: sha256 differs from its sidecar: the file was altered or truncated " \
           "after it was written" in lines
    assert f"{fly}: /entry/data/data links {frames.name}, which is missing" in lines
    assert all(line.startswith(str(data)) for line in lines)


def test_reduce_a_real_scan(ioc, scans, tmp_path) -> None:
    data = tmp_path / "data"
    shutil.copytree(ioc.config.parent / "data", data)
    raw = data / scans["Step"][0].name
    before = raw.read_bytes()
    result = bench_data("reduce", str(raw))
    assert result.returncode == 0, result.stderr
    derived = raw.with_name(raw.stem + "-reduced.h5")
    assert result.stdout.startswith(f"{derived}: 13 data frames of 13 points reduced")
    assert raw.read_bytes() == before
    with h5py.File(derived) as h5:
        assert h5["entry/reduction/raw_pid"].asstr()[()] == scans["Step"][1]
        positions = h5["entry/data/positions"][()]
        np.testing.assert_allclose(h5["entry/data/centroid_x"][()],
                                   [OPTICS.column(p) for p in positions], atol=1.0)
    assert bench_data("verify", str(data)).returncode == 0
