"""The simulated HDF5 file plugin and the camera's picture, without CA."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from benchioc.sim import image
from benchioc.sim.hdf5plugin import DATASET, HDF5Writer, WriteMode, c_format


def frame(value: int = 7) -> np.ndarray:
    return np.full((image.HEIGHT, image.WIDTH), value, dtype=np.uint16)


def writer(tmp_path, **settings) -> HDF5Writer:
    w = HDF5Writer(file_path=str(tmp_path), file_name="scan",
                   file_template="%s%s_%6.6d.h5", write_mode=WriteMode.STREAM,
                   num_capture=3)
    for key, value in settings.items():
        setattr(w, key, value)
    return w


def test_full_file_name_follows_the_c_template() -> None:
    assert c_format("%s%s_%6.6d.h5", "/data/", "scan", 7) == "/data/scan_000007.h5"
    assert c_format("%s%s_%3.3d.h5", "/d/", "x", 12) == "/d/x_012.h5"


def test_capture_on_a_fresh_plugin_fails_unless_lazy_open(tmp_path) -> None:
    assert not writer(tmp_path).start_capture()
    assert writer(tmp_path, lazy_open=True).start_capture()


def test_stream_writes_frames_x_height_x_width_uint16_and_closes(tmp_path) -> None:
    w = writer(tmp_path, auto_increment=True)
    w.on_frame(frame(1))  # a frame gives the dimensions
    assert w.start_capture()
    assert w.full_file_name == f"{tmp_path}/scan_000000.h5"
    assert w.file_number == 1  # AutoIncrement at the open
    assert [w.on_frame(frame(v)) for v in (2, 3, 4)] == [False, False, True]
    assert not w.capturing and not w.file_open and w.num_captured == 3
    with h5py.File(w.full_file_name) as h5:
        data = h5[DATASET]
        assert data.shape == (3, image.HEIGHT, image.WIDTH) and data.dtype == np.uint16
        assert [int(data[i, 0, 0]) for i in range(3)] == [2, 3, 4]
    assert w.array_counter == 3  # frames written, not frames seen


def test_missing_directory_reports_as_the_genuine(tmp_path) -> None:
    w = writer(tmp_path, file_path="/nonexistent/dir", lazy_open=True)
    assert not w.path_exists and w.file_path_rbv == "/nonexistent/dir/"
    assert w.start_capture()
    w.on_frame(frame())
    assert not w.write_ok
    assert w.write_message == "Error opening file /nonexistent/dir/scan_000000.h5, status=3"
    assert w.full_file_name == "/nonexistent/dir/scan_000000.h5"


def test_capture_clears_the_file_name_and_a_lazy_one_says_lazy_open(tmp_path) -> None:
    w = writer(tmp_path, num_capture=1)
    w.on_frame(frame())
    assert w.start_capture() and w.full_file_name.endswith("scan_000000.h5")
    assert w.on_frame(frame())  # the capture ends and the file is closed
    w.lazy_open = True
    assert w.start_capture()
    assert (w.full_file_name, w.write_message) == ("", "Lazy Open...")
    w.on_frame(frame())  # opens: the message is cleared
    assert w.write_message == "" and w.full_file_name.endswith("scan_000000.h5")
    w.stop_capture(put=True)  # a put of 0 after a lazy start says it again
    assert w.write_message == "Lazy Open..."


def test_single_mode_refuses_capture(tmp_path) -> None:
    w = writer(tmp_path, write_mode=WriteMode.SINGLE)
    w.on_frame(frame())
    assert not w.start_capture()
    assert w.write_message == "ERROR: capture not supported in Single mode"


def test_capture_mode_buffers_then_autosaves(tmp_path) -> None:
    w = writer(tmp_path, write_mode=WriteMode.CAPTURE, num_capture=2, auto_save=True)
    w.on_frame(frame())
    assert w.start_capture()
    assert [w.on_frame(frame(v)) for v in (5, 6)] == [False, True]
    with h5py.File(w.full_file_name) as h5:
        assert h5[DATASET].shape == (2, image.HEIGHT, image.WIDTH)


def test_the_spot_follows_the_motor_and_the_shutter_darkens_it() -> None:
    optics = image.SpotOptics(-40.0, 40.0)
    rng = np.random.default_rng(1)
    low = image.render(optics, -20.0, rng)
    high = image.render(optics, 20.0, rng)
    assert low.dtype == np.uint16 and low.shape == (image.HEIGHT, image.WIDTH)
    assert image.centroid_column(low) == pytest.approx(optics.column(-20.0), abs=0.5)
    assert image.centroid_column(high) == pytest.approx(optics.column(20.0), abs=0.5)
    dark = image.render(optics, 0.0, rng, light=False)
    assert dark.max() < image.DARK_LEVEL + 8 * image.NOISE_SIGMA
    assert low.max() > image.DARK_LEVEL + image.SPOT_PEAK / 2


def test_a_template_may_use_fewer_arguments_as_printf_does() -> None:
    from benchioc.sim.hdf5plugin import c_format

    assert c_format("%s%s.h5", "/d/", "scan", 7) == "/d/scan.h5"  # ophyd-async, Sync
    assert c_format("%s%s_%6.6d.h5", "/d/", "scan", 7) == "/d/scan_000007.h5"
    assert c_format("%s%s%d%d.h5", "/d/", "scan", 7) == ""  # more than given: unusable
