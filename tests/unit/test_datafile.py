"""The scan file: NeXus layout, data-policy metadata, atomic no-overwrite writes."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from benchioc.data import nexus as datafile
from benchioc.data.nexus import DataFileError, ScanArrays, ScanMetadata

START = dt.datetime(2024, 2, 29, 13, 14, 15, tzinfo=dt.UTC)


def metadata(**changes) -> ScanMetadata:
    values = dict(
        scan_id="urn:uuid:00000000-0000-4000-8000-000000000001",
        start_time=START,
        end_time=START + dt.timedelta(seconds=12.5),
        program_version="9.8.7",
        proposal="P-2024-001",
        experiment="EXP-42",
        settings={"mode": "Step", "start": -1.0, "end": 1.0, "num_points": 3},
        bench_config={"motors": {"A": {"pv_root": "SIM:A"}}},
        motor_name="A",
        motor_fields={"VELO": 2.5, "ACCL": 0.2, "EGU": "mm", "DIR": "Pos"},
        camera_prefix="SIM:cam1:",
        trigger_prefix="SIM:PANDA:",
        missed_frames=1,
        message="1 frame missed",
    )
    values.update(changes)
    return ScanMetadata(**values)


def arrays(n: int = 3) -> ScanArrays:
    sets = np.linspace(-1, 1, n)
    return ScanArrays(
        set_positions=sets,
        positions=sets + 0.001,
        frame_numbers=np.arange(1, n + 1),
        timestamps=1.7e9 + np.arange(n) * 0.1,
        position_units="mm",
    )


def test_file_is_named_after_scan_and_start_time(tmp_path: Path) -> None:
    path = datafile.write_scan_file(tmp_path, "bench", metadata(), arrays())
    assert path.name == "bench-20240229T131415.h5"
    assert path.parent == tmp_path.resolve()


def test_file_holds_nexus_entry_with_policy_metadata(tmp_path: Path) -> None:
    path = datafile.write_scan_file(tmp_path, "bench", metadata(), arrays())
    with h5py.File(path) as h5:
        entry = h5["entry"]
        assert entry.attrs["NX_class"] == "NXentry"
        assert entry["entry_identifier"].asstr()[()] == metadata().scan_id
        assert entry["experiment_identifier"].asstr()[()] == "P-2024-001"
        assert entry["collection_identifier"].asstr()[()] == "EXP-42"
        assert entry["start_time"].asstr()[()] == "2024-02-29T13:14:15.000+00:00"
        assert entry["end_time"].asstr()[()] == "2024-02-29T13:14:27.500+00:00"
        assert entry["program_name"].asstr()[()] == "bench-ioc"
        assert entry["program_name"].attrs["version"] == "9.8.7"
        assert entry["missed_frames"][()] == 1
        policy = entry["data_policy"]
        # 29 February plus three years has no 29th: the embargo ends on the 28th.
        assert policy["embargo_until"].asstr()[()] == "2027-02-28T13:14:15.000+00:00"
        assert policy["persistent_identifier"].asstr()[()] == metadata().scan_id
        assert entry["scan_settings/num_points"][()] == 3
        assert entry["scan_settings/mode"].asstr()[()] == "Step"


def test_file_records_bench_config_and_motor_fields(tmp_path: Path) -> None:
    path = datafile.write_scan_file(tmp_path, "bench", metadata(), arrays())
    with h5py.File(path) as h5:
        instrument = h5["entry/instrument"]
        config = json.loads(instrument["bench_config"].asstr()[()])
        assert config["motors"]["A"]["pv_root"] == "SIM:A"
        motor = instrument["motor_A"]
        assert motor.attrs["NX_class"] == "NXpositioner"
        assert motor["record_fields/VELO"][()] == 2.5
        assert motor["record_fields/EGU"].asstr()[()] == "mm"
        assert instrument["detector/pv_prefix"].asstr()[()] == "SIM:cam1:"


def test_nxdata_holds_the_per_point_arrays(tmp_path: Path) -> None:
    path = datafile.write_scan_file(tmp_path, "bench", metadata(), arrays(5))
    with h5py.File(path) as h5:
        data = h5["entry/data"]
        assert data.attrs["NX_class"] == "NXdata"
        assert data.attrs["signal"] == "frame_numbers"
        np.testing.assert_allclose(data["set_positions"][()], np.linspace(-1, 1, 5))
        np.testing.assert_allclose(data["positions"][()], np.linspace(-1, 1, 5) + 0.001)
        assert list(data["frame_numbers"][()]) == [1, 2, 3, 4, 5]
        assert data["positions"].attrs["units"] == "mm"
        assert data["timestamps"].attrs["units"] == "s"


def test_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    first = datafile.write_scan_file(tmp_path, "bench", metadata(), arrays())
    before = first.read_bytes()
    second = datafile.write_scan_file(tmp_path, "bench", metadata(scan_id="urn:uuid:2"), arrays())
    third = datafile.write_scan_file(tmp_path, "bench", metadata(scan_id="urn:uuid:3"), arrays())
    assert second.name == "bench-20240229T131415-1.h5"
    assert third.name == "bench-20240229T131415-2.h5"
    assert first.read_bytes() == before


def test_sha256_sidecar_matches_file(tmp_path: Path) -> None:
    path = datafile.write_scan_file(tmp_path, "bench", metadata(), arrays())
    sidecar = path.with_name(path.name + ".sha256")
    digest, name = sidecar.read_text().split()
    assert name == path.name
    assert digest == datafile.sha256_of(path)
    assert datafile.verify_checksum(path)
    with open(path, "r+b") as stream:
        stream.seek(-1, os.SEEK_END)
        last = stream.read(1)
        stream.seek(-1, os.SEEK_END)
        stream.write(bytes([last[0] ^ 0xFF]))
    assert not datafile.verify_checksum(path)


def test_no_temporary_files_are_left_behind(tmp_path: Path) -> None:
    datafile.write_scan_file(tmp_path, "bench", metadata(), arrays())
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["bench-20240229T131415.h5", "bench-20240229T131415.h5.sha256"]


@pytest.mark.parametrize("name", ["../../etc/passwd", "/tmp/x", "a/b", ".hidden"])
def test_path_traversal_in_name_stays_inside_data_dir(tmp_path: Path, name: str) -> None:
    data_dir = tmp_path / "data"
    path = datafile.write_scan_file(data_dir, name, metadata(), arrays())
    assert path.parent == data_dir.resolve()
    assert "/" not in path.stem and not path.name.startswith(".")


def test_name_without_usable_characters_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="no usable characters"):
        datafile.write_scan_file(tmp_path, "../..", metadata(), arrays())


def test_arrays_of_different_lengths_are_refused(tmp_path: Path) -> None:
    bad = ScanArrays(set_positions=[1, 2], positions=[1], frame_numbers=[1, 2],
                     timestamps=[0, 1])
    with pytest.raises(DataFileError, match="set_positions 2, positions 1"):
        datafile.write_scan_file(tmp_path, "bench", metadata(), bad)
    assert list(tmp_path.iterdir()) == []


def frames_file(directory: Path, count: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "bench-frames.h5"
    with h5py.File(path, "w") as cam:
        cam.create_dataset("entry/data/data", data=np.zeros((count, 4, 4), np.uint16))
    return path


def test_frames_beside_the_scan_file_are_linked_by_relative_name(tmp_path: Path) -> None:
    frames = datafile.FrameArrays(str(frames_file(tmp_path / "data", 3)), 3, [0, 0, 0],
                                  [0.0, 0.5, 1.0])
    path = datafile.write_scan_file(tmp_path / "data", "bench", metadata(), arrays(),
                                    frames=frames)
    with h5py.File(path) as h5:
        link = h5["entry/data"].get("data", getlink=True)
        assert isinstance(link, h5py.ExternalLink)
        assert (link.filename, link.path) == ("bench-frames.h5", "/entry/data/data")
        assert h5["entry/data/data"].shape == (3, 4, 4)
        assert h5["entry/data"].attrs["signal"] == "data"


def test_frames_elsewhere_are_not_linked(tmp_path: Path) -> None:
    frames = datafile.FrameArrays(str(frames_file(tmp_path / "camera", 3)), 3, [0] * 3,
                                  [0.0] * 3)
    path = datafile.write_scan_file(tmp_path / "data", "bench", metadata(), arrays(),
                                    frames=frames)
    with h5py.File(path) as h5:
        assert "data" not in h5["entry/data"]
        assert h5["entry/data"].attrs["signal"] == "frame_numbers"


def test_frames_the_scan_did_not_account_for_are_linked_without_axes(tmp_path: Path) -> None:
    frames = datafile.FrameArrays(str(frames_file(tmp_path / "data", 4)), 4, [0] * 3,
                                  [0.0] * 3)
    path = datafile.write_scan_file(tmp_path / "data", "bench", metadata(), arrays(),
                                    frames=frames)
    with h5py.File(path) as h5:
        assert h5["entry/data/data"].shape == (4, 4, 4)
        assert "axes" not in h5["entry/data"].attrs
        assert "frame_positions" not in h5["entry/data"]


def test_embargo_years_are_configurable() -> None:
    start = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    assert datafile.embargo_until(start, 0) == start
    assert datafile.embargo_until(start, 5).year == 2029
    assert datafile.embargo_until(start, 0.5) == start + dt.timedelta(days=182.625)
    with pytest.raises(DataFileError, match="-1 years is negative"):
        datafile.embargo_until(start, -1)


def test_scan_ids_are_unique_urns() -> None:
    ids = {datafile.new_scan_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(scan_id.startswith("urn:uuid:") for scan_id in ids)


def test_unwritable_data_directory_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DataFileError, match="cannot be created"):
        datafile.write_scan_file(blocker / "data", "bench", metadata(), arrays())
