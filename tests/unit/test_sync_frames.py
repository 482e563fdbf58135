"""Frames in the scan file: the controller arms the camera's file plugin, takes darks and
flats, and the scan file links the frames with their image key and positions (fakes on a
virtual clock; tests/integration/test_sync_frames_ca.py does it over CA)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import h5py
import numpy as np
import pytest
from syncfakes import FakeCamera, FakeSyncMotor, FakeWriter, run_virtual

from benchioc.data import nexus as datafile
from benchioc.engines.sync import DataTarget, ScanMode, ScanState, SyncController
from benchioc.engines.sync.controller import FlatPlace

STEP, CONT = ScanMode.STEP, ScanMode.CONT


def controller(tmp_path: Path, *, flat: FlatPlace | None = None,
               mode: int = 0o644) -> tuple[SyncController, FakeWriter, dict]:
    motors = {"A": FakeSyncMotor("A"), "B": FakeSyncMotor("B", position=5.0)}
    camera = FakeCamera()
    writer = FakeWriter(camera)
    sync = SyncController(motors=motors, camera=camera, box=None,
                          data=DataTarget(tmp_path / "data", "bench", "P-1", "E-1", 3,
                                          sample="quartz", user="Ada", file_mode=mode),
                          is_homed=lambda name: True, writer=writer, flat=flat,
                          bench_name="BENCH")
    return sync, writer, motors


def scan(sync: SyncController, before=None, **settings):
    """Set the settings and run one scan, on the virtual clock."""
    async def go():
        sync.update(**settings)
        if before is not None:
            before()
        return await sync.run()

    return run_virtual(go())


def test_step_scan_links_darks_flats_and_data_frames(tmp_path: Path) -> None:
    sync, writer, motors = controller(tmp_path, flat=FlatPlace("B", 40.0))
    result = scan(sync, mode=STEP, motor="A", start=0, end=4, num_points=5, frames_per_point=2,
                  period=0.02, dark_frames=2, flat_frames=3)
    assert result.state == ScanState.DONE, result.message
    assert writer.wanted == 2 + 3 + 5 * 2 == writer.frames
    assert writer.dark_frames == 2  # the shutter was closed for the darks only
    assert sync.camera.shutter_open
    assert motors["B"].moves == [40.0, 5.0]  # out of the beam and back
    with h5py.File(result.data_file) as h5:
        data = h5["entry/data"]
        assert data.attrs["signal"] == "data"
        assert list(data.attrs["axes"]) == ["frame_positions", ".", "."]
        assert data["data"].shape == (15, *FakeWriter.SHAPE)
        assert list(data["image_key"][()]) == [2, 2, 1, 1, 1] + [0] * 10
        np.testing.assert_allclose(data["frame_positions"][5:],
                                   np.repeat(data["positions"][()], 2))
        detector = h5["entry/instrument/detector"]
        assert detector["data"].shape == (15, *FakeWriter.SHAPE)
        assert detector["count_time"].attrs["units"] == "s"
        assert detector["file"].asstr()[()] == Path(writer.path).name
        assert h5["entry/sample/name"].asstr()[()] == "quartz"
        assert h5["entry/user/name"].asstr()[()] == "Ada"


def test_the_pair_can_be_moved_together(tmp_path: Path) -> None:
    sync, writer, _ = controller(tmp_path)
    result = scan(sync, mode=CONT, motor="A", start=0, end=4, num_points=5, period=0.2)
    assert result.state == ScanState.DONE, result.message
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for path in (Path(result.data_file), Path(writer.path)):
        shutil.move(path, moved / path.name)
    with h5py.File(moved / Path(result.data_file).name) as h5:
        assert h5["entry/data/data"].shape == (5, *FakeWriter.SHAPE)
        assert list(h5["entry/data/image_key"][()]) == [0] * 5


def test_files_get_the_configured_mode_whatever_the_umask(tmp_path: Path) -> None:
    sync, _, _ = controller(tmp_path, mode=0o640)
    old = os.umask(0o077)
    try:
        result = scan(sync, mode=STEP, motor="A", start=0, end=1, num_points=2, period=0.02)
    finally:
        os.umask(old)
    for path in (Path(result.data_file), Path(result.data_file + ".sha256")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path


def test_flats_without_a_flat_motor_are_refused_before_anything_moves(tmp_path: Path) -> None:
    sync, writer, _ = controller(tmp_path)

    async def go() -> None:
        sync.update(mode=STEP, motor="A", start=0, end=1, num_points=2, flat_frames=2)
        assert "FlatFrames 2 needs a motor" in sync.why_not_run()
        assert not sync.preview().ok
        sync.update(flat_frames=0)
        assert sync.why_not_run() == ""

    run_virtual(go())
    assert writer.path == ""


def test_a_camera_that_cannot_see_the_data_directory_fails_the_scan_in_words(
        tmp_path: Path) -> None:
    sync, writer, motors = controller(tmp_path)
    writer.directory_visible = False
    result = scan(sync, mode=STEP, motor="A", start=0, end=1, num_points=2, period=0.02)
    assert result.state == ScanState.FAILED
    assert "cannot see the data directory" in result.message
    assert motors["A"].moves == []  # nothing moved
    with h5py.File(result.data_file) as h5:  # the failure is still on record
        assert h5["entry/outcome"].asstr()[()] == "Failed"
        assert h5["entry/data"].attrs["signal"] == "frame_numbers"


def test_scan_file_passes_the_nexus_validator(tmp_path: Path) -> None:
    validate = pytest.importorskip("nexusformat.nexus.validate")
    sync, _, _ = controller(tmp_path, flat=FlatPlace("B", 40.0))
    result = scan(sync, mode=STEP, motor="A", start=0, end=2, num_points=3, period=0.02,
                  dark_frames=1, flat_frames=1)
    _, errors = validate.validate_file(result.data_file)  # against the base classes
    assert errors == 0
    _, errors = validate.validate_application(result.data_file,
                                              application=str(datafile.DEFINITION_FILE))
    assert errors == 0
