"""The simulated camera as an areaDetector over CA: ophyd's standard classes connect and
take a frame, ophyd-async's SimDetector takes frames into its HDF writer from a
RunEngine, and the HDF5 plugin streams frames of the spot into a file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import h5py
import numpy as np
import pytest

from benchioc import epicsenv
from benchioc.facts.areadetector import EPICS_EPOCH_OFFSET_S
from benchioc.sim import image
from simharness import caget, caput, run_ca, start_sim

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim():
    with start_sim(time_scale=10) as running:
        yield running


@pytest.fixture(scope="module")
def ophyd_env(sim):
    """ophyd (pyepics) reads the CA environment at import: set it for this process."""
    saved = dict(os.environ)
    os.environ.update(epicsenv.loopback_env(ca_ports=[sim.port]))
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_ophyd_area_detector_cam_connects_and_a_single_trigger_takes_a_frame(
        sim, ophyd_env) -> None:
    from ophyd import Component, SingleTrigger
    from ophyd.areadetector import DetectorBase
    from ophyd.areadetector.cam import AreaDetectorCam
    from ophyd.areadetector.plugins import ImagePlugin

    cam = AreaDetectorCam("SIM:cam1:", name="cam")
    # Every signal of ophyd's cam connects but PoolMaxBuffers, a record ADCore R3-13
    # no longer has: the genuine simDetector lacks it too.
    assert unconnectable(cam) == ["SIM:cam1:PoolMaxBuffers"]
    assert cam.manufacturer.get() == "Simulated detector"
    assert cam.port_name.get() == "SIM1"

    class Detector(SingleTrigger, DetectorBase):
        cam = Component(AreaDetectorCam, "cam1:")
        image = Component(ImagePlugin, "image1:")

    det = Detector("SIM:", name="det")
    det.wait_for_connection(timeout=20)
    before = det.image.array_counter.get()
    det.stage()
    try:
        det.trigger().wait(timeout=20)
    finally:
        det.unstage()
    assert det.image.array_counter.get() == before + 1
    # The frame as ophyd reads it from the genuine IOC too: the whole ArrayData, shaped
    # by the plugin's ArraySize1/0_RBV. (ophyd 1.x's `ImagePlugin.image` asks for
    # `array_pixels` elements, depth x height = 0 x height for a 2-D frame, and pyepics
    # then returns none: it gives the same ValueError on the genuine simDetector.)
    size = det.image.array_size.get()
    assert (size.depth, size.height, size.width) == (0, image.HEIGHT, image.WIDTH)
    assert det.image.ndimensions.get() == 2
    # a read, not the monitor: the ArrayData update may lag behind the counter's
    data = det.image.array_data.get(use_monitor=False)
    frame = np.asarray(data[:size.height * size.width]).reshape(size.height, size.width)
    assert frame.shape == (image.HEIGHT, image.WIDTH)
    assert frame.max() > image.DARK_LEVEL + image.SPOT_PEAK / 2  # the spot (shutter open)


def unconnectable(device) -> list[str]:
    """The PVs of a device's components that do not connect (ophyd names the first one
    of a component in its TimeoutError)."""
    missing = []
    for name in device.component_names:
        try:
            getattr(device, name).wait_for_connection(timeout=3)
        except TimeoutError as error:
            missing.append(str(error).split()[0])
    return missing


def capture(env) -> threading.Thread:
    done = threading.Thread(target=caput, args=("SIM:HDF1:Capture", 1, env),
                            kwargs={"callback": True}, daemon=True)
    done.start()
    return done


def test_hdf5_stream_capture_writes_the_spot_and_completes_on_close(sim, tmp_path) -> None:
    env = sim.env
    run_ca("caput", "-S", "SIM:HDF1:FilePath", str(tmp_path), env=env)
    assert caget("SIM:HDF1:FilePathExists_RBV", env) == "Yes"
    run_ca("caput", "-S", "SIM:HDF1:FileName", "scan", env=env)
    run_ca("caput", "-S", "SIM:HDF1:FileTemplate", "%s%s_%6.6d.h5", env=env)
    caput("SIM:HDF1:FileWriteMode", "Stream", env)
    caput("SIM:HDF1:NumCapture", 3, env)
    caput("SIM:HDF1:LazyOpen", "Yes", env)
    caput("SIM:cam1:ShutterControl", "Open", env)
    waiter = capture(env)
    caput("SIM:cam1:ImageMode", "Multiple", env)
    caput("SIM:cam1:NumImages", 3, env)
    caput("SIM:cam1:Acquire", 1, env, callback=True)
    waiter.join(20)
    assert not waiter.is_alive(), "Capture's put-callback did not complete"
    name = caget("SIM:HDF1:FullFileName_RBV", env, "-S")
    assert name == f"{tmp_path}/scan_000000.h5"
    assert caget("SIM:HDF1:NumCaptured_RBV", env) == "3"
    assert caget("SIM:HDF1:WriteStatus", env) == "Write OK"
    with h5py.File(name) as h5:
        data = h5["entry/data/data"]
        assert data.shape == (3, image.HEIGHT, image.WIDTH) and data.dtype == np.uint16
        a_position = float(caget("SIM:A.RBV", env))
        column = image.SpotOptics(-40, 40).column(a_position)
        assert image.centroid_column(data[0]) == pytest.approx(column, abs=1.0)


def test_hdf5_missing_directory_says_what_the_genuine_says(sim) -> None:
    env = sim.env
    run_ca("caput", "-S", "SIM:HDF1:FilePath", "/nonexistent/dir", env=env)
    assert caget("SIM:HDF1:FilePathExists_RBV", env) == "No"
    run_ca("caput", "-S", "SIM:HDF1:FileName", "scan", env=env)
    run_ca("caput", "-S", "SIM:HDF1:FileTemplate", "%s%s_%6.6d.h5", env=env)
    caput("SIM:HDF1:FileNumber", 0, env)
    caput("SIM:cam1:ImageMode", "Single", env)
    caput("SIM:cam1:Acquire", 1, env, callback=True)  # a frame gives the dimensions
    caput("SIM:HDF1:FileWriteMode", "Stream", env)
    caput("SIM:HDF1:LazyOpen", "No", env)
    caput("SIM:HDF1:Capture", 1, env, callback=True, timeout=10)  # fails at once
    assert caget("SIM:HDF1:WriteStatus", env) == "Write error"
    assert caget("SIM:HDF1:WriteMessage", env, "-S") == \
        "Error opening file /nonexistent/dir/scan_000000.h5, status=3"
    assert caget("SIM:HDF1:Capture_RBV", env) == "Done"


def test_frames_are_stamped_at_delivery_at_the_end_of_the_exposure(sim, ophyd_env) -> None:
    import epics

    env = sim.env
    caput("SIM:cam1:ImageMode", "Single", env)
    caput("SIM:cam1:AcquireTime", 1.0, env)  # 0.1 s real at time scale 10
    try:
        caput("SIM:cam1:Acquire", 1, env, callback=True)
        counter = epics.PV("SIM:cam1:ArrayCounter_RBV", form="time")
        delivered = counter.get_with_metadata(timeout=5)["timestamp"]
        # NDArray.timeStamp: the exposure start, seconds past the EPICS epoch (1990);
        # only the plugins publish it (cam1:TimeStamp_RBV stays 0, as on simDetector)
        exposure_start = float(epics.caget("SIM:image1:TimeStamp_RBV", timeout=5)) \
            + EPICS_EPOCH_OFFSET_S
        assert float(epics.caget("SIM:cam1:TimeStamp_RBV", timeout=5)) == 0.0
        # delivery stamp = exposure start + AcquireTime, as simDetector delivers at the
        # end of the exposure: the readout does not delay it. (At time scale 10 the
        # frame arrives 0.1 s after its start, stamped in the camera's seconds.)
        assert float(caget("SIM:cam1:Sim:ReadoutTime", env)) > 0
        assert delivered - exposure_start == pytest.approx(1.0, abs=1e-4)
    finally:
        caput("SIM:cam1:AcquireTime", 0.01, env)


# ophyd-async's SimDetector with its HDF writer, in a RunEngine, in a child Python: libca
# (aioca's) reads EPICS_CA_ADDR_LIST once per process, when its context is made.
OPHYD_ASYNC_COUNT = r"""
import json, sys
from pathlib import Path
import bluesky.plans as bp
from bluesky import RunEngine
from ophyd_async.core import StaticFilenameProvider, StaticPathProvider, init_devices
from ophyd_async.epics.adcore import ADWriterFactory
from ophyd_async.epics.adsimdetector import SimDetector

engine = RunEngine({})
documents = []
engine.subscribe(lambda name, doc: documents.append((name, doc)))
path = StaticPathProvider(StaticFilenameProvider("frames"), Path(sys.argv[1]))
with init_devices():
    det = SimDetector("SIM:", ADWriterFactory.hdf(path))
engine(bp.count([det], num=3))
print(json.dumps(documents, default=str))
"""


def test_ophyd_async_sim_detector_takes_frames_into_its_hdf_writer(sim, tmp_path) -> None:
    caput("SIM:cam1:ShutterControl", "Open", sim.env)
    result = subprocess.run([sys.executable, "-c", OPHYD_ASYNC_COUNT, str(tmp_path)],
                            env=sim.env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    documents = json.loads(result.stdout.strip().splitlines()[-1])
    named: dict[str, list[dict]] = {}
    for name, doc in documents:
        named.setdefault(name, []).append(doc)
    assert named["stop"][0]["exit_status"] == "success"
    assert named["stop"][0]["num_events"] == {"primary": 3}
    key = named["descriptor"][0]["data_keys"]["det"]
    # one frame per event, then height x width (from ArraySizeY/X_RBV)
    assert key["shape"] == [1, image.HEIGHT, image.WIDTH] and key["dtype_numpy"] == "<u2"
    (resource,) = named["stream_resource"]
    assert resource["mimetype"] == "application/x-hdf5"
    assert resource["parameters"]["dataset"] == "/entry/data/data"
    indices = [datum["indices"] for datum in named["stream_datum"]]
    assert indices == [{"start": i, "stop": i + 1} for i in range(3)]
    name = caget("SIM:HDF1:FullFileName_RBV", sim.env, "-S")
    assert name == f"{tmp_path}/frames.h5"  # FileTemplate "%s%s.h5": no file number
    assert resource["uri"].endswith(name)
    with h5py.File(name) as h5:
        data = h5["entry/data/data"]
        assert data.shape == (3, image.HEIGHT, image.WIDTH) and data.dtype == np.uint16
        assert data[0].max() > image.DARK_LEVEL + image.SPOT_PEAK / 2  # the spot
