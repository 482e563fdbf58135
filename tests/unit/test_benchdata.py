"""`bench-data` over scan files written by in-process scans (tests/unit/syncfakes.py) on
a virtual clock: list, show, verify, embargo, cite and reduce, and their errors in
words. The fake file plugin writes blank frames; the tests paint a spot into them
(benchioc.sim.image, as the simulated camera does) where the motor was, so intensity
and centroid mean something. tests/integration/test_benchdata_ca.py does the same on
files written by real scans of the simulated bench.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from syncfakes import FakeCamera, FakeSyncMotor, FakeWriter, run_virtual

from benchioc.data import nexus
from benchioc.engines.sync import DataTarget, ScanMode, ScanState, SyncController
from benchioc.engines.sync.controller import FlatPlace
from benchioc.sim import image
from benchioc.tools.benchdata import cli, quicklook, reduce, verify
from benchioc.tools.benchdata.scanfile import read_info

REPO = Path(__file__).resolve().parents[2]
OPTICS = image.SpotOptics(-1.0, 5.0)  # motor A's 0..4 mm cross most of the sensor
STEP, CONT = ScanMode.STEP, ScanMode.CONT


# --- scan files ----------------------------------------------------------------------
def run_scan(data_dir: Path, *, writer: bool = True, flat: bool = False,
             proposal: str = "P-1", **settings) -> Path:
    """One scan by the controller, as the IOC runs it; the scan file's path."""
    motors = {"A": FakeSyncMotor("A"), "B": FakeSyncMotor("B", position=5.0)}
    camera = FakeCamera()
    sync = SyncController(
        motors=motors, camera=camera, box=None,
        data=DataTarget(data_dir, "bench", proposal, "E-1", 3, sample="quartz", user="Ada"),
        is_homed=lambda name: True, writer=FakeWriter(camera) if writer else None,
        flat=FlatPlace("B", 40.0) if flat else None, bench_name="BENCH")

    async def go():
        sync.update(**settings)
        return await sync.run()

    result = run_virtual(go())
    assert result.state == ScanState.DONE, result.message
    return Path(result.data_file)


def paint_frames(scan_file: Path, seed: int = 1) -> None:
    """Replace the fake plugin's blank frames with the simulated camera's picture: a
    spot where motor A was, none (shutter closed) for darks."""
    with h5py.File(scan_file) as h5:
        keys = h5["entry/data/image_key"][()]
        positions = h5["entry/data/frame_positions"][()]
        target = h5["entry/data"].get("data", getlink=True).filename
    rng = np.random.default_rng(seed)
    frames = np.stack([image.render(OPTICS, pos, rng, light=key != 2)
                       for key, pos in zip(keys, positions, strict=True)])
    with h5py.File(scan_file.parent / target, "r+") as h5:
        del h5["entry/data/data"]
        h5.create_dataset("entry/data/data", data=frames)
    # as if the camera had written these: the scan file records the frames' checksum
    with h5py.File(scan_file, "r+") as h5:
        h5["entry/instrument/detector/file"].attrs["sha256"] = nexus.sha256_of(
            scan_file.parent / target)
    nexus.write_checksum(scan_file)


def old_scan(data_dir: Path) -> Path:
    """A scan of 2020 without frames, straight from the writer: its embargo has passed."""
    start = dt.datetime(2020, 3, 1, 12, 0, tzinfo=dt.UTC)
    meta = nexus.ScanMetadata(
        scan_id=nexus.new_scan_id(), start_time=start,
        end_time=start + dt.timedelta(seconds=3), program_version="0.0.9",
        proposal="P-0", experiment="E-0", bench_name="BENCH", embargo_years=3,
        settings={"mode": "Step", "motor": "C", "start": 0.0, "end": 1.0, "num_points": 3,
                  "frames_per_point": 1, "exposure": 0.01, "period": 0.05},
        motor_name="C")
    arrays = nexus.ScanArrays([0.0, 0.5, 1.0], [0.0, 0.5, 1.0], [1, 2, 3],
                              [1.5e9, 1.5e9 + 1, 1.5e9 + 2], "mm")
    return nexus.write_scan_file(data_dir, "old", meta, arrays)


class Folder:
    """The scans every test starts from: a Step scan with darks and flats (2 frames per
    point), a Cont scan of motor A, one without frames (another proposal) and one of
    2020 whose embargo has passed."""

    def __init__(self, root: Path) -> None:
        self.data = root / "data"
        self.step = run_scan(self.data, flat=True, mode=STEP, motor="A", start=0, end=4,
                             num_points=5, frames_per_point=2, period=0.02, dark_frames=2,
                             flat_frames=3)
        paint_frames(self.step)
        self.cont = run_scan(self.data, mode=CONT, motor="A", start=0, end=4, num_points=5,
                             period=0.2)
        paint_frames(self.cont, seed=2)
        self.bare = run_scan(self.data, writer=False, proposal="P-2", mode=STEP, motor="B",
                             start=1, end=2, num_points=3, period=0.02)
        self.old = old_scan(self.data)

    def copy(self, dest: Path) -> Folder:
        clone = object.__new__(Folder)
        clone.data = dest / "data"
        shutil.copytree(self.data, clone.data)
        for name in ("step", "cont", "bare", "old"):
            setattr(clone, name, clone.data / getattr(self, name).name)
        return clone

    def pid(self, path: Path) -> str:
        return read_info(path).pid

    def frames_of(self, path: Path) -> Path:
        return path.with_name(read_info(path).frames_file)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Folder:
    return Folder(tmp_path_factory.mktemp("benchdata"))


@pytest.fixture
def scans(made: Folder, tmp_path: Path) -> Folder:
    """A copy of the module's folder that a test may change."""
    return made.copy(tmp_path)


def bench_data(capsys, *args: str) -> tuple[int, str, str]:
    """`bench-data ARGS` in this process: exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as ended:
        cli.main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return int(ended.value.code or 0), out, err


# --- list ------------------------------------------------------------------------------
def test_list_shows_one_line_per_scan_and_no_frames_files(made: Folder, capsys) -> None:
    code, out, err = bench_data(capsys, "--dir", str(made.data), "list")
    assert (code, err) == (0, "")  # no progress bar when stderr is no terminal
    header, *lines = out.splitlines()
    assert header.split() == ["start", "PID", "mode", "motor", "points", "frames", "missed",
                              "embargo", "file"]
    assert len(lines) == 4
    assert "frames.h5" not in out
    assert lines[0].split()[-1] == made.old.name  # oldest first
    step = next(line for line in lines if line.endswith(made.step.name)).split()
    # date, time, PID, mode, motor, points, frames, missed, embargo, file
    assert step[2:9] == [made.pid(made.step), "Step", "A", "5", "15", "0",
                         read_info(made.step).embargo_until.strftime("%Y-%m-%d")]


def test_list_filters_and_json(made: Folder, capsys) -> None:
    base = ("--dir", str(made.data), "list", "--json")
    _, out, _ = bench_data(capsys, *base)
    rows = {Path(row["path"]).name: row for row in json.loads(out)}
    assert set(rows) == {made.step.name, made.cont.name, made.bare.name, made.old.name}
    step = rows[made.step.name]
    assert (step["points"], step["data_frames"], step["dark_frames"], step["flat_frames"],
            step["frames"]) == (5, 10, 2, 3, 15)
    assert rows[made.bare.name]["frames"] == 0
    _, out, _ = bench_data(capsys, *base, "--motor", "A")
    assert {Path(r["path"]).name for r in json.loads(out)} == {made.step.name, made.cont.name}
    _, out, _ = bench_data(capsys, *base, "--proposal", "P-2")
    assert [Path(r["path"]).name for r in json.loads(out)] == [made.bare.name]
    _, out, _ = bench_data(capsys, *base, "--since", "2021-01-01")
    assert made.old.name not in out and len(json.loads(out)) == 3
    code, _, err = bench_data(capsys, *base, "--since", "last tuesday")
    assert code == 2 and err.strip() == ("bench-data: --since 'last tuesday' is not a date: "
                                         "use YYYY-MM-DD or YYYY-MM-DDTHH:MM")


def test_list_finds_the_folder_a_config_names(made: Folder, tmp_path: Path, capsys) -> None:
    config = tmp_path / "site" / "bench.yaml"
    config.parent.mkdir()
    text = (REPO / "configs" / "bench.yaml").read_text()
    relative = os.path.relpath(made.data, config.parent)
    config.write_text(text.replace("  directory: data\n", f"  directory: {relative}\n"))
    code, out, err = bench_data(capsys, "--config", str(config), "list")
    assert code == 0, err
    assert len(out.splitlines()) == 5
    code, _, err = bench_data(capsys, "--config", str(tmp_path / "nope.yaml"), "list")
    assert code == 2 and "nope.yaml: no such file" in err and len(err.splitlines()) == 1


# --- show ------------------------------------------------------------------------------
def test_show_plots_every_data_frame_against_its_position(made: Folder,
                                                          tmp_path: Path) -> None:
    look = quicklook.quick_look(made.step, tmp_path / "q.png")
    assert (tmp_path / "q.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (x, intensity), = look.plotted["signal against position"]
    assert x.size == intensity.size == 10  # 5 points x 2 frames; darks and flats left out
    with h5py.File(made.step) as h5:
        np.testing.assert_allclose(x, h5["entry/data/frame_positions"][5:])
    assert np.all(intensity > 0.5 * intensity.max())  # the spot stays on the sensor
    column, row = look.plotted["spot centroid per data frame"]
    expected = np.array([OPTICS.column(p) for p in x])
    np.testing.assert_allclose(column[1], expected, atol=0.3)  # over the mean dark
    np.testing.assert_allclose(row[1], OPTICS.row(), atol=0.3)
    (set_x, error), = look.plotted["measured against set position"]
    assert set_x.size == error.size == 5
    (points, gaps), = look.plotted["timing"]
    assert points.tolist() == [1, 2, 3, 4]
    words = "\n".join(quicklook.summary(look))
    assert "10 data frames, 2 dark, 3 flat, 0 missed" in words
    assert f"the spot moves {(OPTICS.width - 1 - 2 * image.EDGE_PX) / 6.0:.2g}" in words \
        or "the spot moves" in words


def test_show_without_frames_plots_the_frame_numbers(made: Folder, tmp_path: Path) -> None:
    look = quicklook.quick_look(made.bare, tmp_path / "bare.png")
    (x, y), = look.plotted["signal against position"]
    assert x.tolist() == [1.0, 1.5, 2.0] and y.size == 3
    assert look.plotted["spot centroid per data frame"] == []
    assert "no frames" in "\n".join(quicklook.summary(look))


def test_show_from_the_command_line_by_pid(made: Folder, tmp_path: Path) -> None:
    """As a user runs it: `python -m benchioc.tools.benchdata`, a PID, a PNG."""
    out = tmp_path / "look.png"
    result = subprocess.run(
        [sys.executable, "-m", "benchioc.tools.benchdata", "--dir", str(made.data), "show",
         made.pid(made.cont), "--png", str(out)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO / "ioc")})
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 10_000
    assert f"{made.cont.name}: Cont scan of motor A" in result.stdout
    assert "5 data frames, 0 dark, 0 flat" in result.stdout
    assert f"quick look written to {out}" in result.stdout


def test_show_refuses_what_is_not_a_scan_in_one_line(made: Folder, tmp_path: Path,
                                                     capsys) -> None:
    frames = made.frames_of(made.step)
    code, _, err = bench_data(capsys, "show", str(frames))
    assert code == 2
    assert err == f"bench-data: {frames}: not a scan file (the camera's frames file of a scan)\n"
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    code, _, err = bench_data(capsys, "show", str(text))
    assert code == 2 and "not a readable HDF5 file" in err and len(err.splitlines()) == 1
    code, _, err = bench_data(capsys, "--dir", str(made.data), "show",
                              "urn:uuid:00000000-0000-0000-0000-000000000000")
    assert code == 2
    assert err == ("bench-data: no scan with PID urn:uuid:00000000-0000-0000-0000-000000000000"
                   f" in {made.data}\n")


# --- verify ----------------------------------------------------------------------------
def test_verify_passes_a_good_folder(made: Folder, capsys) -> None:
    code, out, err = bench_data(capsys, "verify", str(made.data))
    assert code == 0, out
    assert out == f"6 files checked under {made.data}: all good\n"  # 4 scans, 2 frames


def test_verify_passes_the_nexus_validator_too(made: Folder) -> None:
    pytest.importorskip("nexusformat")
    assert verify.verify_file(made.step, full=True).problems == []


def test_verify_names_every_problem_one_line_each(scans: Folder, capsys) -> None:
    # altered: a byte flipped in the middle of the Step scan
    blob = bytearray(scans.step.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    scans.step.write_bytes(bytes(blob))
    # truncated: the Cont scan cut short; its frames file is then linked by nobody
    cont_frames = scans.frames_of(scans.cont)
    an_hour_ago = cont_frames.stat().st_mtime - 3600  # not a scan still running
    os.utime(cont_frames, (an_hour_ago, an_hour_ago))
    scans.cont.write_bytes(scans.cont.read_bytes()[:2048])
    # no sidecar
    scans.old.with_name(scans.old.name + ".sha256").unlink()
    # orphaned sidecar
    (scans.data / "gone.h5.sha256").write_text(f"{'0' * 64}  gone.h5\n")
    code, out, err = bench_data(capsys, "verify", str(scans.data))
    assert code == 1
    problems = out.splitlines()
    expected = {
        f"{scans.step}: sha256 differs from its sidecar: the file was altered or truncated "
        "after it was written",
        f"{scans.cont}: sha256 differs from its sidecar: the file was altered or truncated "
        "after it was written",
        f"{scans.cont}: not readable as HDF5 (truncated or not HDF5)",
        f"{scans.old}: no checksum sidecar {scans.old.name}.sha256",
        f"{cont_frames}: orphaned frames file: no scan file in the folder links it",
        f"{scans.data / 'gone.h5.sha256'}: orphaned checksum sidecar: its file is missing",
    }
    assert expected <= set(problems), out
    assert len(problems) == len(set(problems))
    assert f"problem(s) in 6 files under {scans.data}" in err


def test_verify_finds_a_missing_frames_file(scans: Folder, capsys) -> None:
    frames = scans.frames_of(scans.step)
    frames.unlink()
    code, out, _ = bench_data(capsys, "verify", str(scans.data))
    assert code == 1
    assert out.splitlines() == [
        f"{scans.step}: /entry/data/data links {frames.name}, which is missing",
        f"{scans.step}: /entry/instrument/detector/data links {frames.name}, which is missing"]
    code, _, err = bench_data(capsys, "show", str(scans.step))  # and show says so
    assert code == 2 and f"its frames file {frames.name} is missing" in err


def test_verify_finds_missing_policy_metadata_and_a_foreign_file(scans: Folder,
                                                                 capsys) -> None:
    with h5py.File(scans.bare, "r+") as h5:
        del h5["entry/data_policy/embargo_until"]
        del h5["entry/instrument/source"]
    nexus.write_checksum(scans.bare)  # a consistent sidecar: the layout is what is wrong
    foreign = scans.data / "other.h5"
    with h5py.File(foreign, "w") as h5:
        h5.create_group("entry")
    code, out, _ = bench_data(capsys, "verify", str(scans.data))
    assert code == 1
    assert sorted(out.splitlines()) == sorted([
        f"{scans.bare}: /entry/instrument has no NXsource group",
        f"{scans.bare}: /entry/data_policy/embargo_until is missing",
        f"{foreign}: not a scan file (no /entry/definition NXbench_scan)"])


def test_verify_leaves_the_frames_file_of_a_running_scan_alone(scans: Folder,
                                                               capsys) -> None:
    """The camera's plugin writes the frames file while the scan runs; the scan file
    comes at the end. A fresh unlinked frames file is a note, not a problem."""
    writing = scans.data / "bench-20991231T235959-frames.h5"
    writing.write_bytes(b"\x89HDF\r\n\x1a\n")  # being written: not readable yet
    code, out, err = bench_data(capsys, "verify", str(scans.data))
    assert code == 0, out
    assert err == (f"bench-data: note: {writing}: not linked yet, written in the last "
                   f"{verify.IN_PROGRESS_S} s: a scan still running? not checked\n")


def test_verify_finds_a_truncated_frames_file(scans: Folder, capsys) -> None:
    frames = scans.frames_of(scans.step)
    frames.write_bytes(frames.read_bytes()[:1000])
    code, out, _ = bench_data(capsys, "verify", str(scans.data))
    assert code == 1
    lines = out.splitlines()
    assert f"{frames}: frames file not readable as HDF5 (truncated or not HDF5)" in lines
    assert f"{scans.step}: /entry/data/data links {frames.name}, which has no readable " \
           "/entry/data/data" in lines
    code, _, err = bench_data(capsys, "reduce", str(scans.step))
    assert code == 2 and len(err.splitlines()) == 1 and "has no readable frames" in err


def test_verify_finds_frames_altered_after_the_scan(scans: Folder, capsys) -> None:
    frames = scans.frames_of(scans.step)
    with h5py.File(frames, "r+") as h5:
        h5["entry/data/data"][3, 0, 0] += 1  # one pixel, same shape: only the hash tells
    code, out, _ = bench_data(capsys, "verify", str(scans.data))
    assert code == 1
    assert out.splitlines() == [
        f"{scans.step}: {frames.name} changed since the scan linked it (sha256 differs)"]


def test_a_damaged_scan_is_skipped_by_list_in_one_line(scans: Folder, capsys) -> None:
    scans.cont.write_bytes(scans.cont.read_bytes()[:3000])
    code, out, err = bench_data(capsys, "--dir", str(scans.data), "list")
    assert code == 0 and len(out.splitlines()) == 4
    assert err == (f"bench-data: skipped {scans.cont}: not a readable HDF5 file (truncated "
                   "or not HDF5)\n")


def test_a_failed_scan_without_points_is_listed_and_shown(tmp_path: Path, capsys) -> None:
    motors = {"A": FakeSyncMotor("A")}
    camera = FakeCamera()
    writer = FakeWriter(camera)
    writer.directory_visible = False  # the scan fails before the first point
    sync = SyncController(motors=motors, camera=camera, box=None,
                          data=DataTarget(tmp_path, "bench", "P-1", "E-1", 3),
                          is_homed=lambda name: True, writer=writer, bench_name="BENCH")

    async def go():
        sync.update(mode=STEP, motor="A", start=0, end=1, num_points=2, period=0.02)
        return await sync.run()

    path = Path(run_virtual(go()).data_file)
    code, out, _ = bench_data(capsys, "--dir", str(tmp_path), "list", "--json")
    (row,) = json.loads(out)
    assert (row["outcome"], row["points"], row["frames"]) == ("Failed", 0, 0)
    code, out, err = bench_data(capsys, "show", str(path), "--png", str(tmp_path / "f.png"))
    assert code == 0, err
    assert "Failed: " in out and "cannot see the data directory" in out
    assert "points: none (asked 0 to 1, 2 points)" in out


def test_verify_one_file_and_a_missing_path(made: Folder, capsys) -> None:
    code, out, _ = bench_data(capsys, "verify", str(made.step))
    assert (code, out) == (0, f"1 file checked under {made.step}: all good\n")
    code, _, err = bench_data(capsys, "verify", str(made.data / "nope"))
    assert code == 2 and err == f"bench-data: {made.data / 'nope'}: no such file or folder\n"


# --- embargo and cite ------------------------------------------------------------------
def test_embargo_splits_the_scans_at_today(made: Folder, capsys) -> None:
    code, out, _ = bench_data(capsys, "--dir", str(made.data), "embargo")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "under embargo: 3"
    assert lines[4] == "embargo passed: 1"
    assert lines[5].split() == ["since", "2023-03-01", made.pid(made.old), "P-0",
                                made.old.name]
    _, out, _ = bench_data(capsys, "--dir", str(made.data), "embargo", "--json",
                           "--release-before", "2025-01-01")
    assert [row["pid"] for row in json.loads(out)] == [made.pid(made.old)]
    far = (dt.date.today() + dt.timedelta(days=4 * 366)).isoformat()
    _, out, _ = bench_data(capsys, "--dir", str(made.data), "embargo", "--json",
                           "--release-before", far)
    rows = json.loads(out)
    assert len(rows) == 4 and sum(row["under_embargo"] for row in rows) == 3


def test_cite_prints_the_policy_line(made: Folder, capsys) -> None:
    pid = made.pid(made.step)
    code, out, err = bench_data(capsys, "--dir", str(made.data), "cite", pid)
    assert code == 0
    day = read_info(made.step).start.strftime("%Y-%m-%d")
    assert out == (f"Motion test bench BENCH, Step scan of motor A, proposal P-1, "
                   f"experiment E-1, recorded {day}. Persistent identifier: {pid}.\n")
    assert "under embargo until" in err
    bare_uuid = pid.removeprefix("urn:uuid:")
    _, again, _ = bench_data(capsys, "--dir", str(made.data), "cite", bare_uuid)
    assert again == out
    _, old, err = bench_data(capsys, "--dir", str(made.data), "cite", made.pid(made.old))
    assert "proposal P-0" in old and "recorded 2020-03-01" in old and err == ""


# --- reduce ----------------------------------------------------------------------------
def test_reduce_writes_a_derived_file_beside_and_leaves_the_raw_alone(scans: Folder,
                                                                      capsys) -> None:
    raw_sha = nexus.sha256_of(scans.step)
    raw_stat = scans.step.stat()
    code, out, err = bench_data(capsys, "reduce", str(scans.step))
    assert code == 0, err
    derived = scans.step.with_name(scans.step.stem + "-reduced.h5")
    assert out.startswith(f"{derived}: 10 data frames of 5 points reduced (2 dark, 3 flat")
    assert nexus.sha256_of(scans.step) == raw_sha
    assert scans.step.stat().st_mtime_ns == raw_stat.st_mtime_ns
    assert nexus.verify_checksum(derived)
    with h5py.File(scans.frames_of(scans.step)) as h5:
        frames = h5["entry/data/data"][()].astype(float)
    dark, flat = frames[:2].mean(axis=0), frames[2:5].mean(axis=0)
    with h5py.File(derived) as h5:
        process = h5["entry/reduction"]
        assert process["raw_pid"].asstr()[()] == scans.pid(scans.step)
        assert process["raw_sha256"].asstr()[()] == raw_sha
        assert process["raw_file"].asstr()[()] == scans.step.name
        assert process["program"].asstr()[()] == "bench-data reduce"
        assert process["version"].asstr()[()] == "0.1.0"
        corrected = h5["entry/frames/data"][()]
        mask = h5["entry/frames/flat_mask"][()].astype(bool)
        denominator = flat - dark
        expected = np.where(mask, 0.0, (frames[5:] - dark) / np.where(mask, 1, denominator))
        np.testing.assert_allclose(corrected, expected, rtol=1e-5, atol=1e-5)
        assert np.all(np.isfinite(corrected))
        assert h5["entry/data/intensity"].shape == (5,)
        assert h5["entry/data/centroid_x"].shape == (5,)
        assert h5["entry/data_policy/embargo_until"].asstr()[()] == \
            read_info(scans.step).embargo_until.isoformat(timespec="milliseconds")
        assert h5.attrs["default"] == "entry" and h5["entry"].attrs["default"] == "data"
    # never overwriting: a second reduce gets a name of its own
    code, out, _ = bench_data(capsys, "reduce", str(scans.step))
    assert out.startswith(f"{scans.step.with_name(scans.step.stem + '-reduced-1.h5')}:")
    # derived files are no scans, and verify checks them too
    _, listed, _ = bench_data(capsys, "--dir", str(scans.data), "list")
    assert "reduced" not in listed and len(listed.splitlines()) == 5
    code, out, _ = bench_data(capsys, "verify", str(scans.data))
    assert code == 0, out
    # a raw file changed after its reduction: the derived file says so
    with h5py.File(scans.step, "r+") as h5:
        h5["entry/title"][()] = "edited"
    nexus.write_checksum(scans.step)
    code, out, _ = bench_data(capsys, "verify", str(scans.data))
    assert code == 1
    assert f"{derived}: derived from {scans.step.name}, whose sha256 is no longer the one " \
           "recorded as raw_sha256" in out.splitlines()


def test_reduce_per_point_centroid_follows_the_motor(scans: Folder) -> None:
    reduced = reduce.reduce_scan(scans.cont)  # no darks or flats: over each frame's median
    with h5py.File(scans.cont) as h5:
        positions = h5["entry/data/positions"][()]
    np.testing.assert_allclose(reduced.centroid_x,
                               [OPTICS.column(p) for p in positions], atol=0.3)
    assert reduced.darks == reduced.flats == reduced.masked_pixels == 0


def test_reduce_guards_a_flat_without_light(scans: Folder) -> None:
    """Flats as dark as the darks: every pixel masked, no division by zero."""
    frames_file = scans.frames_of(scans.step)
    with h5py.File(frames_file, "r+") as h5:
        data = h5["entry/data/data"]
        data[2:5] = data[0]
    reduced = reduce.reduce_scan(scans.step)
    assert reduced.masked_pixels == image.WIDTH * image.HEIGHT
    with h5py.File(reduced.path) as h5:
        assert np.all(h5["entry/frames/data"][()] == 0)


def test_reduce_refuses_a_scan_without_frames_in_words(scans: Folder, capsys) -> None:
    code, _, err = bench_data(capsys, "reduce", str(scans.bare))
    assert code == 2
    assert err == (f"bench-data: {scans.bare}: the scan has no frames to reduce (it "
                   "links no frames file)\n")
    assert not list(scans.data.glob("*reduced*"))


def test_usage_errors_are_one_line_exit_2(capsys) -> None:
    code, _, err = bench_data(capsys, "frobnicate")
    assert code == 2 and "No such command 'frobnicate'" in err


def test_progress_bars_only_on_a_terminal_and_over_many_files(monkeypatch) -> None:
    import io

    from benchioc.tools.benchdata.scanfile import progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, total, shown in ((Terminal(), 30, True), (io.StringIO(), 30, False),
                                 (Terminal(), 3, False)):
        monkeypatch.setattr(sys, "stderr", stream)
        assert list(progress(range(total), total, "reading")) == list(range(total))
        assert ("reading:" in stream.getvalue()) is shown
