"""bluesky on the bench (issue #15): the ophyd-async devices of benchioc.tools.bluesky in
a real RunEngine against `bench-ioc` over real CA, on both backends (tests/benches.py).

Each RunEngine runs in a child Python (this file run as a script): libca reads
EPICS_CA_ADDR_LIST once per process, and a test process may already hold a CA context
aimed at another module's servers. The child prints every document it saw, the progress
its watchers were told and the error a plan ended with, as JSON; the tests check them
against what the IOC serves, read over CA with the real caget.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.integration

TIME_SCALE = 5  # as the other Sync tests: the simulated bench, 5x faster than real time
GENUINE_CAMERA = True  # a scan needs the genuine simDetector on that backend
NO_BOX = "Fly mode needs the PandA trigger box, which the genuine bench does not have"
SCAN = {"start": 0.0, "end": 2.0, "num_points": 11, "exposure": 0.01, "period": 0.05}
# How far a measured position may lie from its set position (test_sync_ioc.py's reasons)
TOLERANCE = {"Step": 1e-3, "Fly": 1e-4}


# --- the child: one RunEngine, one plan ------------------------------------------------------
def child(request: dict[str, Any]) -> dict[str, Any]:
    """Run the plan `request` names and report what happened (in the child process)."""
    from bluesky import RunEngine
    from ophyd_async.core import init_devices

    from benchioc.engines.sync.model import ScanMode, ScanSettings
    from benchioc.tools.bluesky import (
        BenchHoming,
        SyncScan,
        home_all_plan,
        home_plan,
        sync_scan_plan,
    )
    from benchioc.tools.bluesky.plans import fly_scan

    documents: list[tuple[str, Any]] = []
    progress: list[float] = []

    def watch(statuses: Any) -> None:  # a RunEngine waiting_hook, as ProgressBarManager
        for status in statuses or ():
            if hasattr(status, "watch"):
                status.watch(lambda current=None, **_: progress.append(current))

    engine = RunEngine({})
    engine.waiting_hook = watch
    engine.subscribe(lambda name, doc: documents.append((name, doc)))
    with init_devices():
        bench = BenchHoming(request["motors"])
        sync = SyncScan()
    plan: Any
    kind = request["plan"]
    if kind == "home":
        plan = home_plan(bench.motors[request["motor"]], request["direction"])
    elif kind == "home_all":
        plan = home_all_plan(bench, request["direction"])
    elif kind == "home_all_then_abort_all":
        plan = home_all_then_abort_all(bench)
    else:
        settings = dict(request["settings"])
        settings["mode"] = ScanMode[settings["mode"].upper()]
        chosen = ScanSettings(**settings)
        if kind == "scan_homed":
            plan = sync_scan_plan(bench, sync, chosen)
        elif kind == "scan_while_homing":
            plan = scan_while_homing(bench.motors[chosen.motor], sync, chosen)
        else:
            plan = fly_scan(sync, chosen)
    error = None
    try:
        engine(plan)
    except Exception as failure:  # noqa: BLE001 - reported to the test
        error = " | ".join(reasons(failure))
    return {"documents": documents, "progress": progress, "error": error}


def scan_while_homing(motor: Any, sync: Any, settings: Any) -> Any:
    """Start homing a motor, then ask for a scan of it (a plan for the child)."""
    import bluesky.plan_stubs as bps

    from benchioc.tools.bluesky.plans import fly_scan

    yield from bps.abs_set(motor, "lo", group="homing")
    yield from fly_scan(sync, settings)


def home_all_then_abort_all(bench: Any) -> Any:
    """Start homing every motor, and abort them all with the device's abort_all() once
    one is on its way (a plan for the child)."""
    import bluesky.plan_stubs as bps

    yield from bps.abs_set(bench, "hi", group="homing")
    while True:
        busy = yield from bps.rd(bench.busy)
        if busy:
            break
        yield from bps.sleep(0.05)
    yield from bps.wait_for([lambda: bench.abort_all().task])
    yield from bps.wait(group="homing")


def reasons(error: BaseException) -> list[str]:
    """The words of an error and of what caused it (a FailedStatus carries the status
    whose exception says why)."""
    found: list[str] = []
    seen: BaseException | None = error
    while seen is not None and len(found) < 10:
        found.append(f"{type(seen).__name__}: {seen}")
        status = seen.args[0] if seen.args else None
        inner = status.exception() if hasattr(status, "exception") else None
        seen = inner if isinstance(inner, BaseException) else (seen.__cause__
                                                                or seen.__context__)
    return found


def plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else str(value)


# --- the parent: start a child and read its report ---------------------------------------------
class Run:
    """What the child reported: documents by name, watcher progress, the error."""

    def __init__(self, report: dict[str, Any]) -> None:
        self.documents: list[tuple[str, dict]] = [tuple(d) for d in report["documents"]]
        self.progress: list[float] = report["progress"]
        self.error: str | None = report["error"]

    def named(self, name: str) -> list[dict]:
        return [doc for doc_name, doc in self.documents if doc_name == name]

    def descriptor(self, stream: str) -> dict:
        (found,) = [d for d in self.named("descriptor") if d["name"] == stream]
        return found

    def stream_events(self, stream: str) -> dict[str, list]:
        """Every value of a stream's events and event pages, per data key."""
        uid = self.descriptor(stream)["uid"]
        data: dict[str, list] = {}
        for event in self.named("event"):
            if event["descriptor"] == uid:
                for key, value in event["data"].items():
                    data.setdefault(key, []).append(value)
        for page in self.named("event_page"):
            if page["descriptor"] == uid:
                for key, values in page["data"].items():
                    data.setdefault(key, []).extend(values)
        return data


def start_child(ioc, request: dict[str, Any]) -> subprocess.Popen:
    request = {"motors": ioc.motors, **request}
    return subprocess.Popen([sys.executable, __file__, json.dumps(request)], env=ioc.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 180) -> Run:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0 and out.strip(), f"child failed:\n{err[-4000:]}"
    return Run(json.loads(out.strip().splitlines()[-1]))


def run_plan(ioc, **request: Any) -> Run:
    return finish(start_child(ioc, request))


# --- fixtures ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ioc(bench):
    """The bench's IOC once its motors are connected (the ready line comes first)."""
    process = bench.ioc
    deadline = time.monotonic() + 30
    names = [f"{motor}:Connected" for motor in process.motors]
    while process.caget(*names) != ["Yes"] * len(names):
        assert time.monotonic() < deadline, "the motors did not connect"
        time.sleep(0.2)
    return process


def texts(ioc, *names: str) -> list[str]:
    return ioc.caget(*names, options=("-t", "-S"))


def arrays(ioc, count: int) -> dict[str, np.ndarray]:
    """The filled part of the Sync arrays, by event key (`caget -c`: NORD elements)."""
    names = {"position": "Positions", "set_position": "SetPositions",
             "frame_number": "FrameNumbers", "timestamp": "Timestamps"}
    lines = ioc.caget(*[f"Sync:{n}" for n in names.values()],
                      options=("-c", "-t", "-g", "17"))
    result = {}
    for key, line in zip(names, lines, strict=True):
        values = line.split()
        assert int(values[0]) == count, f"{key}: {values[0]} elements, not {count}"
        result[key] = np.array([float(v) for v in values[1:]])
    return result


# --- homing ----------------------------------------------------------------------------
def check_homed_run(run: Run, motor: str, center: float) -> None:
    (start,), (stop,) = run.named("start"), run.named("stop")
    assert start["plan_name"] == "home_plan" and start["motor"] == motor
    assert stop["exit_status"] == "success", stop
    after = run.stream_events("after")
    assert after[f"{motor}-state"] == ["Homed"] and after[f"{motor}-homed"] == [True]
    assert after[f"{motor}-position"][0] == pytest.approx(center, abs=0.01)
    configuration = run.descriptor("after")["configuration"][motor]["data"]
    assert {key.split("-")[-1] for key in configuration} >= {"lo_lim", "hi_lim", "center"}


def test_a_runengine_homes_one_motor_and_watchers_see_its_progress(ioc):
    run = run_plan(ioc, plan="home", motor="A", direction="hi")
    assert run.error is None, run.error
    check_homed_run(run, "A", center=0.0)
    assert run.progress and run.progress[-1] == 100.0, run.progress
    assert texts(ioc, "A:State") == ["Homed"]


def test_an_aborted_homing_raises_with_the_iocs_message(ioc):
    from camon import CaMonitor  # tests/: not on the child's path

    busy = ioc.pv("E:Busy")  # E: the slowest axis, a few seconds of homing at TIME_SCALE
    with CaMonitor(ioc.env, busy) as monitor:
        monitor.wait_value(busy, "No", timeout=10)
        child_process = start_child(ioc, {"plan": "home", "motor": "E", "direction": "lo"})
        monitor.wait_value(busy, "Yes", timeout=60)
        ioc.caput("E:Abort", "1", callback=False)
    run = finish(child_process)
    state, message = texts(ioc, "E:State", "E:Message")
    assert state == "Aborted"
    assert run.error and "HomingFailed: homing E lo ended Aborted" in run.error
    assert message in run.error, (message, run.error)
    assert run.named("stop")[0]["exit_status"] == "fail"


# --- scans -----------------------------------------------------------------------------
def check_scan_run(ioc, run: Run, mode: str) -> None:
    """The scan's documents against the IOC's Sync arrays and DataFile."""
    assert run.error is None, run.error
    scan_start = [doc for doc in run.named("start") if doc["plan_name"] == "sync_scan_plan"]
    assert len(scan_start) == 1 and scan_start[0]["scan_mode"] == mode
    stops = run.named("stop")
    assert stops[-1]["exit_status"] == "success", stops[-1]
    assert stops[-1]["num_events"] == {"primary": 11, "frames": 11}
    message, data_file, scan_id, count = texts(ioc, "Sync:Message", "Sync:DataFile",
                                               "Sync:ScanId", "Sync:NumValid")
    assert int(count) == 11, message
    expected = arrays(ioc, 11)
    points = run.stream_events("primary")
    assert set(points) == {f"sync-{key}" for key in expected}
    for key, values in expected.items():
        np.testing.assert_allclose(points[f"sync-{key}"], values, rtol=1e-12, err_msg=key)
    np.testing.assert_allclose(points["sync-set_position"], np.linspace(0, 2, 11),
                               atol=1e-12)
    np.testing.assert_allclose(points["sync-position"], points["sync-set_position"],
                               atol=TOLERANCE[mode])
    (page,) = [p for p in run.named("event_page")
               if p["descriptor"] == run.descriptor("primary")["uid"]]
    assert page["timestamps"]["sync-position"] == points["sync-timestamp"]
    # The frames: the NeXus file declared as a stream resource, one index per point
    frames = run.descriptor("frames")["data_keys"]["sync-frames"]
    assert frames["external"] == "STREAM:"
    (resource,) = run.named("stream_resource")
    assert resource["mimetype"] == "application/x-hdf5"
    assert resource["data_key"] == "sync-frames"
    assert resource["uri"] == Path(data_file).as_uri()
    assert resource["parameters"]["dataset"] == "/entry/data/data"
    assert resource["parameters"]["scan_id"] == scan_id
    (datum,) = run.named("stream_datum")
    assert datum["stream_resource"] == resource["uid"]
    assert datum["indices"] == {"start": 0, "stop": 11}
    assert Path(data_file).exists()


def test_a_step_scan_homes_its_motor_if_needed_and_emits_one_event_per_point(bench, ioc):
    was_homed = texts(ioc, "B:Homed") == ["Yes"]
    settings = {"mode": "Step", "motor": "B", "require_homed": True, **SCAN}
    run = run_plan(ioc, plan="scan_homed", settings=settings)
    check_scan_run(ioc, run, "Step")
    homings = [doc for doc in run.named("start") if doc["plan_name"] == "home_plan"]
    assert len(homings) == (0 if was_homed else 1)
    assert texts(ioc, "B:Homed") == ["Yes"]


def test_a_fly_scan_emits_one_event_per_point_and_declares_its_file(bench, ioc):
    bench.skip_on_genuine(NO_BOX)
    settings = {"mode": "Fly", "motor": "A", "require_homed": False, **SCAN}
    run = run_plan(ioc, plan="scan", settings=settings)
    check_scan_run(ioc, run, "Fly")
    assert run.progress and run.progress[-1] == 100.0


def test_prepare_refuses_settings_the_ioc_cannot_run_in_its_words(bench, ioc):
    bench.skip_on_genuine(NO_BOX)
    settings = {"mode": "Fly", "motor": "A", "require_homed": False,
                **SCAN, "period": 0.005}
    run = run_plan(ioc, plan="scan", settings=settings)
    assert run.error and "ScanRefused" in run.error, run.error
    assert ("Period 0.005 s is shorter than Exposure 0.01 s + camera readout" in run.error)
    assert not run.named("start")  # refused before a run was opened
    (message,) = texts(ioc, "Sync:Message")
    assert message in run.error


def test_a_scan_of_a_motor_being_homed_is_refused_with_the_iocs_reason(ioc):
    settings = {"mode": "Step", "motor": "E", "require_homed": False, **SCAN,
                "start": 0.0, "end": 0.2}
    run = run_plan(ioc, plan="scan_while_homing", settings=settings)
    assert run.error and "ScanRefused" in run.error, run.error
    # in the IOC's words: its preview names the homing as soon as the homing holds E
    # (Sync:Message now reads "ready" again: the failed plan's stop() aborted the homing)
    assert "not ready: motor E is homing; wait for it to end or abort it" in run.error, \
        run.error
    assert not [doc for doc in run.named("start") if doc["plan_name"] == "sync_scan_plan"
                and run.named("stop")[-1]["exit_status"] == "success"]
    deadline = time.monotonic() + 30  # the failed plan's stop() aborted E's homing
    while ioc.caget("E:Busy") != ["No"]:
        assert time.monotonic() < deadline, "E is still homing"
        time.sleep(0.1)


def test_abort_all_stops_a_home_all_which_raises_with_the_motors_messages(ioc):
    run = run_plan(ioc, plan="home_all_then_abort_all")
    assert run.error and "HomingFailed: homing all hi did not home every motor" in run.error
    for motor in ioc.motors:
        state, message = texts(ioc, f"{motor}:State", f"{motor}:Message")
        if state != "Homed":  # a motor may have been homed before (an earlier test)
            assert state == "Aborted" and f"{motor} Aborted: {message}" in run.error


def test_a_runengine_homes_every_motor(ioc):
    run = run_plan(ioc, plan="home_all", direction="lo")
    assert run.error is None, run.error
    (start,), (stop,) = run.named("start"), run.named("stop")
    assert start["plan_name"] == "home_all_plan" and stop["exit_status"] == "success"
    after = run.stream_events("after")
    assert after["bench-all_homed"] == [True]
    for motor in ioc.motors:
        assert after[f"{motor}-state"] == ["Homed"], motor
    assert texts(ioc, "AllHomed") == ["Yes"]
    assert run.progress and run.progress[-1] == 100.0, run.progress


if __name__ == "__main__":
    report = child(json.loads(sys.argv[1]))
    print(json.dumps(report, default=plain))
