"""Frames in the scan file over real CA: dark and flat fields through the Sync records
(on the simulated bench, and on the genuine simDetector and motor record), and what a
user sees when the camera's file plugin is not there. (Each mode's linked frames, on
both backends: test_sync_ioc.py.)"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

import genuine
from benches import open_bench
from benchioc.sim import image
from iocharness import IocProcess

pytestmark = pytest.mark.integration

SETTINGS = {"Motor": "A", "Start": "0", "End": "2", "NumPoints": "5", "Exposure": "0.01",
            "Period": "0.05", "RequireHomed": "0", "Mode": "Step"}


def start_ioc(repo_root: Path, folder: Path, **detector) -> IocProcess:
    config = yaml.safe_load((repo_root / "configs" / "bench.yaml").read_text())
    config["detector"].update(detector)
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(config))
    return IocProcess(path, time_scale=10)


@pytest.fixture(scope="module")
def ioc(repo_root, tmp_path_factory):
    process = start_ioc(repo_root, tmp_path_factory.mktemp("frames"))
    yield process
    process.stop()


def configure(ioc: IocProcess, **changes: str) -> None:
    for name, value in {**SETTINGS, **changes}.items():
        result = ioc.caput(f"Sync:{name}", value)
        assert result.returncode == 0, result.stdout + result.stderr


def run(ioc: IocProcess) -> tuple[str, str, Path]:
    result = ioc.caput("Sync:Run", "1", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    state, message, data_file = ioc.caget("Sync:State", "Sync:Message", "Sync:DataFile",
                                          options=("-t", "-S"))
    return state, message, Path(data_file)


def test_a_missing_file_plugin_fails_the_scan_in_words(repo_root, tmp_path) -> None:
    ioc = start_ioc(repo_root, tmp_path, file_plugin="HDF9:")
    try:
        configure(ioc)
        state, message, data_file = run(ioc)
    finally:
        ioc.stop()
    assert state == "Failed"
    assert "file plugin SIM:HDF9: does not answer" in message
    assert "detector.file_plugin" in message
    with h5py.File(data_file) as h5:  # the failed scan is still on record
        assert h5["entry/outcome"].asstr()[()] == "Failed"


def scan_with_references(ioc: IocProcess, flat_root: str) -> np.ndarray:
    """A 5-point scan after 2 darks and 3 flats, checked as both cameras give it: keys,
    counts, positions, the shutter open and the flat-field motor back where it was.
    Returns the frames, read through the scan file's link."""
    before = ioc.numbers(f"{flat_root}.RBV")[0]
    configure(ioc, DarkFrames="2", FlatFrames="3")
    state, message, data_file = run(ioc)
    assert state == "Done", message
    assert message == "done: 5 of 5 points, 5 frames"
    with h5py.File(data_file) as h5:
        data = h5["entry/data"]
        assert data["image_key"][()].tolist() == [2, 2, 1, 1, 1, 0, 0, 0, 0, 0]
        np.testing.assert_allclose(data["frame_positions"][5:], data["positions"][()])
        assert h5["entry/scan_settings/dark_frames"][()] == 2
        frames = data["data"][()]
    assert frames.shape[0] == 10  # through the link, in the plugin's file
    assert ioc.read("SIM:cam1:ShutterControl") == ["Open"]
    assert ioc.numbers(f"{flat_root}.RBV")[0] == pytest.approx(before, abs=1e-3)  # back
    return frames


def test_darks_and_flats_are_taken_before_the_scan_and_keyed(ioc) -> None:
    frames = scan_with_references(ioc, "SIM:B")
    assert frames.shape == (10, image.HEIGHT, image.WIDTH)
    darks, flats, scan = frames[:2], frames[2:5], frames[5:]
    # shutter closed: noise only; open: the spot
    assert darks.max() < image.DARK_LEVEL + image.SPOT_PEAK / 2
    assert flats.max() > image.DARK_LEVEL + image.SPOT_PEAK / 2
    assert scan.max() > image.DARK_LEVEL + image.SPOT_PEAK / 2
    configure(ioc, DarkFrames="0", FlatFrames="0")


def test_darks_and_flats_with_the_genuine_camera_and_motor_record(tmp_path) -> None:
    """The same references through the genuine simDetector (its HDF5 plugin and
    ShutterControl) with motor B on the genuine motor record as the flat-field motor.
    simDetector draws the same image whatever its shutter, so only the keys, the counts
    and the motions are checked here."""
    genuine.skip_unless_built(genuine.MOTOR_VARS + genuine.AD_VARS,
                              "the genuine motor record and simDetector")

    def with_flat_motor(config: dict) -> None:
        config["detector"].update(flat_motor="B", flat_position=15)

    bench = open_bench("genuine", tmp_path, edit=with_flat_motor)
    try:
        bench.ioc.wait_motor_connected("B")
        scan_with_references(bench.ioc, bench.root("B"))
    finally:
        bench.stop()
