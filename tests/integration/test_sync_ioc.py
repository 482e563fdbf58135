"""Detector-synchronised scans through the IOC's `$(P)Sync:` records, over real CA, on
both backends (tests/benches.py):

- sim: `bench-ioc --sim` (motors, camera, trigger box simulated at a time scale of 5);
- genuine: `bench-ioc` on configs/genuine.yaml over the genuine motor record (motorSim,
  motor A = SIM:m1, in real time) and areaDetector's simDetector (SIM:cam1:). There is
  no trigger box, so Fly scans are refused there, in words.

The tests drive the IOC with the real `caput -c`, `caget` and `camonitor`, as a user at
a terminal would. Each mode runs to Done and its arrays and scan file are checked;
invalid settings are refused with a message; abort, a busy Run and a dropped trigger
pulse end as they should.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from nexusformat.nexus.validate import validate_application

from benches import Bench
from benchioc.data import nexus as datafile
from camon import CaMonitor
from iocharness import BIN, IocProcess

pytestmark = pytest.mark.integration

TIME_SCALE = 5  # the simulated bench; the genuine one runs in real time
BOX = "SIM:PANDA:PCOMP1:"
NO_BOX = "Fly mode needs the PandA trigger box, which the genuine bench does not have"
EMBARGO_YEARS = 3  # configs/bench.yaml data.embargo_years

# How far a measured position may lie from its set position, per mode:
# Step: the put-callback move ends on the point (the sim's readback resolution).
# Cont: the camera is started from the readback monitor; a few ms of CA and scheduling
#   jitter at the sim's 5x speed is about a hundredth of a mm at 0.5 mm/s. A quarter of
#   the 0.2 mm step still ties every frame to its own point. Genuine: motorSim posts a
#   readback every 0.1 s and the run-up holds two of them (measured 0.002 mm).
# Fly: the box captures the position at the compare crossing itself.
TOLERANCE = {"Step": 1e-3, "Cont": 0.05, "Fly": 1e-4}

BASE = {"Motor": "A", "Start": "0", "End": "2", "NumPoints": "11", "FramesPerPoint": "1",
        "Exposure": "0.01", "Period": "0.05", "SettleTime": "0", "RequireHomed": "0"}
# Cont: 0.2 mm every 0.4 s (0.5 mm/s), so software timing is small against the step.
MODES = {"Step": {}, "Cont": {"Period": "0.4"}, "Fly": {}}


# bench: tests/integration/conftest.py, on both backends; the genuine one with its camera.
GENUINE_CAMERA = True


@pytest.fixture(scope="module")
def ioc(bench: Bench) -> IocProcess:
    """The bench's IOC once motor A is connected: the ready line comes before the motors
    connect, and a scan needs motor A."""
    process = bench.ioc
    process.settings = {}  # Sync setting -> the value last put by these tests
    process.wait_motor_connected("A")
    return process


@dataclass(frozen=True)
class Motor:
    """Motor A's record as the tests found it."""

    root: str  # sim: SIM:A (VELO 10 mm/s, ACCL 0.2 s, VMAX 20); genuine: SIM:m1 (40, 0.1, 50)
    velo: float  # every scan must leave it as it was
    accl: float


@pytest.fixture(scope="module")
def motor(bench: Bench, ioc: IocProcess) -> Motor:
    root = bench.root("A")
    velo, accl = ioc.numbers(f"{root}.VELO", f"{root}.ACCL")
    return Motor(root, velo, accl)


def sweep_mode(bench: Bench) -> str:
    """The mode of a slow sweep to abort: Fly where there is a trigger box."""
    return "Cont" if bench.genuine else "Fly"


# --- helpers ---------------------------------------------------------------------------
def put(ioc: IocProcess, name: str, value: str) -> None:
    result = ioc.caput(name, value, timeout=10)
    assert result.returncode == 0, result.stdout + result.stderr
    ioc.settings[name] = value  # type: ignore[attr-defined]


def configure(ioc: IocProcess, mode: str, **changes: str) -> None:
    """Every setting as the test needs it, whatever the test before left. Only changed
    ones are put: each caput is a process start, a few tenths of a second here."""
    wanted = {"Sync:Mode": mode, **{f"Sync:{k}": v for k, v in {**BASE, **changes}.items()}}
    for name, value in wanted.items():
        if ioc.settings.get(name) != value:  # type: ignore[attr-defined]
            put(ioc, name, value)


def texts(ioc: IocProcess, *names: str) -> list[str]:
    """Long string records' texts (caget -S escapes quotes and backslashes)."""
    lines = ioc.caget(*names, options=("-t", "-S"))
    return [line.encode().decode("unicode_escape") for line in lines]


def text(ioc: IocProcess, name: str) -> str:
    return texts(ioc, name)[0]


ARRAYS = {"SetPositions": "set_positions", "Positions": "positions",
          "FrameNumbers": "frame_numbers", "Timestamps": "timestamps"}


def arrays(ioc: IocProcess, count: int, *names: str) -> dict[str, np.ndarray]:
    """The filled part of waveforms, by their scan-file names. `caget -c` asks for the
    record's current length (NORD); a plain caget of this build asks for all NELM =
    10000 elements."""
    lines = ioc.caget(*[f"Sync:{n}" for n in names], options=("-c", "-t", "-g", "17"))
    result = {}
    for name, line in zip(names, lines, strict=True):
        values = line.split()
        assert int(values[0]) == count, f"{name}: {values[0]} elements, NumValid {count}"
        result[ARRAYS[name]] = np.array([float(v) for v in values[1:]])
    return result


def run_scan(ioc: IocProcess) -> tuple[list[str], str]:
    """`caput -c Sync:Run 1`; the State updates seen and the State right after caput."""
    state_pv = ioc.pv("Sync:State")
    with CaMonitor(ioc.env, state_pv) as states:
        states.wait_for(state_pv, lambda _: True, timeout=10)  # connected
        result = ioc.caput("Sync:Run", "1", timeout=60)
        (state_after,) = ioc.caget("Sync:State")
        assert result.returncode == 0, result.stdout + result.stderr
        states.wait_for(state_pv, lambda v: v in ("Done", "Aborted", "Failed"),
                        timeout=10, start=1)
        return states.values(state_pv), state_after


def check_file(ioc: IocProcess, path: Path, scan_id: str, mode: str,
               values: dict[str, np.ndarray], velo: float) -> None:
    assert path.parent == ioc.config.parent / "data"
    sidecar = path.with_name(path.name + ".sha256")
    digest, name = sidecar.read_text().split()
    assert (digest, name) == (hashlib.sha256(path.read_bytes()).hexdigest(), path.name)
    with h5py.File(path) as h5:
        entry = h5["entry"]
        assert entry.attrs["NX_class"] == "NXentry"
        assert entry["entry_identifier"].asstr()[()] == scan_id
        assert entry["data_policy/persistent_identifier"].asstr()[()] == scan_id
        assert entry["outcome"].asstr()[()] == "Done"
        assert entry["scan_settings/mode"].asstr()[()] == mode
        start = dt.datetime.fromisoformat(entry["start_time"].asstr()[()])
        embargo = dt.datetime.fromisoformat(entry["data_policy/embargo_until"].asstr()[()])
        assert embargo == start.replace(year=start.year + EMBARGO_YEARS)
        data = entry["data"]
        assert data.attrs["NX_class"] == "NXdata"
        for key, expected in values.items():
            np.testing.assert_allclose(data[key][()], expected, rtol=1e-15, err_msg=key)
        assert entry["instrument/motor_A/record_fields/VELO"][()] == velo
        check_frames(entry, values["positions"])
    for written in (path, sidecar):
        assert stat.S_IMODE(written.stat().st_mode) == 0o644, written  # data.file_mode
    _, errors = validate_application(str(path), application=str(datafile.DEFINITION_FILE))
    assert errors == 0


def check_frames(entry: h5py.Group, positions: np.ndarray) -> None:
    """The camera's file plugin wrote one frame per point beside the scan file, and the
    scan file links them (by a relative name) against the measured positions."""
    data = entry["data"]
    link = data.get("data", getlink=True)
    assert isinstance(link, h5py.ExternalLink) and "/" not in link.filename
    assert data.attrs["signal"] == "data"
    frames = data["data"]  # resolved through the link
    assert frames.ndim == 3 and frames.shape[0] == len(positions)
    assert frames.shape[1] > 1 and frames.shape[2] > 1
    assert data["image_key"][()].tolist() == [0] * len(positions)
    np.testing.assert_allclose(data["frame_positions"][()], positions)
    assert entry["instrument/detector/data"].shape == frames.shape


# --- each mode to Done -----------------------------------------------------------------
@pytest.mark.parametrize("mode", list(MODES))
def test_scan_runs_to_done_from_caput_c(bench, ioc, motor, mode):
    if mode == "Fly":
        bench.skip_on_genuine(NO_BOX)
    configure(ioc, mode, **MODES[mode])
    states, state_after = run_scan(ioc)
    message, data_file, scan_id = texts(ioc, "Sync:Message", "Sync:DataFile", "Sync:ScanId")
    # caput -c returned only once the scan had ended
    assert state_after == "Done", message
    assert states[states.index("Preparing"):] == ["Preparing", "Running", "Finishing",
                                                  "Done"]
    assert message == "done: 11 of 11 points, 11 frames"
    counts = ioc.caget("Sync:NumValid", "Sync:Positions.NORD", "Sync:FrameNumbers.NORD",
                       "Sync:MissedFrames", "Sync:Point", "Sync:FramesAcquired")
    assert counts == ["11", "11", "11", "0", "11", "11"]
    values = arrays(ioc, 11, *ARRAYS)
    np.testing.assert_allclose(values["set_positions"], np.linspace(0, 2, 11), atol=1e-12)
    np.testing.assert_allclose(values["positions"], values["set_positions"],
                               atol=TOLERANCE[mode])
    assert np.diff(values["frame_numbers"]).tolist() == [1] * 10
    assert np.all(np.diff(values["timestamps"]) > 0)
    pva = ioc.run_tool("pvget", "-w", "5", ioc.pv("Sync:SetPositions"))
    assert "[0,0.2,0.4,0.6,0.8,1,1.2,1.4,1.6,1.8,2]" in pva.stdout, pva.stdout + pva.stderr
    check_file(ioc, Path(data_file), scan_id, mode, values, motor.velo)
    assert ioc.numbers(f"{motor.root}.VELO", f"{motor.root}.DMOV") == [motor.velo, 1]


# --- refusals --------------------------------------------------------------------------
REFUSALS = {
    "period shorter than exposure + readout": (
        "Fly", {"Period": "0.005"},
        "Period 0.005 s is shorter than Exposure 0.01 s + camera readout 0.002 s = "
        "0.012 s"),
    "unhomed motor with RequireHomed": (
        "Step", {"RequireHomed": "1"},
        "motor A is not homed: home it first, or set RequireHomed to No"),
    "unknown motor": ("Step", {"Motor": "Z"}, "there is no motor 'Z' (motors: A, B, C, D, "
                      "E)"),
    "one point in a Cont scan": (
        "Cont", {"NumPoints": "1"}, "a Cont scan needs at least 2 points (NumPoints is 1)"),
    "velocity above VMAX for fly": (
        "Fly", {"Exposure": "0.001", "Period": "0.005"},
        "needs 40 mm/s, more than motor A's VMAX of 20 mm/s"),
    "several frames per point in fly": (
        "Fly", {"FramesPerPoint": "3"},
        "a Fly scan takes one frame per point; set FramesPerPoint to 1 (it is 3)"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_invalid_configuration_is_refused_with_a_message(bench, ioc, motor, case):
    mode, changes, expected = REFUSALS[case]
    if mode == "Fly":
        bench.skip_on_genuine(NO_BOX)  # refused for that before any setting is looked at
    configure(ioc, mode, **changes)
    before = ioc.numbers(f"{motor.root}.RBV")
    scan_id = text(ioc, "Sync:ScanId")
    states, state_after = run_scan_refused(ioc)
    message = text(ioc, "Sync:Message")
    # "not ready: ..." as typed; "refused: ..." if the setting closed Run after a
    # finished scan (State back to Idle then)
    assert message.startswith(("not ready: ", "refused: ")) and expected in message, message
    assert ioc.caget("Sync:Message", options=("-a", "-S"))[0].split()[-1] in ("MINOR",
                                                                              "MAJOR")
    assert "Preparing" not in states and state_after == states[-1]
    assert text(ioc, "Sync:ScanId") == scan_id  # no scan was started
    assert ioc.numbers(f"{motor.root}.RBV") == before


def run_scan_refused(ioc: IocProcess) -> tuple[list[str], str]:
    state_pv = ioc.pv("Sync:State")
    with CaMonitor(ioc.env, state_pv) as states:
        states.wait_for(state_pv, lambda _: True, timeout=10)
        result = ioc.caput("Sync:Run", "1", timeout=10)
        # refused by the record (DISP): caput reports the write error (exit status 0)
        assert "Channel write request failed" in result.stdout + result.stderr, (
            result.stdout + result.stderr)
        (state_after,) = ioc.caget("Sync:State")
        return states.values(state_pv), state_after


def test_points_beyond_the_soft_limits_are_refused(ioc, motor):
    root = motor.root
    dllm, dhlm = ioc.numbers(f"{root}.DLLM", f"{root}.DHLM")
    ioc.write(f"{root}.HLM", "3", callback=True, wait=10)
    ioc.write(f"{root}.LLM", "-3", callback=True, wait=10)
    try:
        message_pv = ioc.pv("Sync:Message")
        with CaMonitor(ioc.env, message_pv) as messages:
            configure(ioc, "Step", End="5")
            # the preview says so while the user types, once the IOC has seen HLM
            messages.wait_for(message_pv, lambda _: "soft limits" in
                              messages.texts(message_pv)[-1], timeout=10)
        run_scan_refused(ioc)
        assert text(ioc, "Sync:Message").endswith(
            ": the scan range of motor A (0 to 5 mm) goes beyond its soft "
            "limits (-3 to 3 mm)")
    finally:
        # as they were (the sim: DHLM = DLLM = 0, soft limits off), high first: from
        # (-3, 3) the range never inverts on the way
        ioc.write(f"{root}.DHLM", f"{dhlm:g}", callback=True, wait=10)
        ioc.write(f"{root}.DLLM", f"{dllm:g}", callback=True, wait=10)


def test_num_points_out_of_range_is_refused_in_words(ioc):
    configure(ioc, "Step")
    for value in ("0", "20000"):
        put(ioc, "Sync:NumPoints", value)
        assert ioc.caget("Sync:NumPoints") == [value]  # no silent clamping by the record
        assert text(ioc, "Sync:Message") == (
            f"not ready: NumPoints {value} must be between 1 and 10000")
    put(ioc, "Sync:NumPoints", "11")


def test_a_motor_has_one_owner_scan_or_homing(bench, ioc):
    configure(ioc, sweep_mode(bench), End="10", Period="2")  # slow, as in the abort test
    state_pv = ioc.pv("Sync:State")
    with CaMonitor(ioc.env, state_pv) as watch:
        watch.wait_for(state_pv, lambda _: True, timeout=10)
        run = subprocess.Popen([str(BIN / "caput"), "-t", "-c", "-w", "60",
                                ioc.pv("Sync:Run"), "1"], env=ioc.env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            watch.wait_value(state_pv, "Running", timeout=20)
            assert ioc.caput("A:HomeHi", "1").returncode == 0  # completes at once
            assert "homing refused: a scan is moving this motor" in text(ioc, "A:Message")
            assert ioc.caget("A:Busy") == ["No"]
            put(ioc, "Sync:Abort", "1")
            run.communicate(timeout=30)
        finally:
            run.kill()


def test_preview_records_follow_the_settings_as_they_are_typed(bench, ioc, motor):
    # Fly and Cont preview alike; the genuine bench has no box, so its Fly is not ready.
    configure(ioc, sweep_mode(bench))
    if bench.genuine:
        # The run-up depends on how often the motor's readback updates, which the IOC
        # learns from the motor's moves: make sure it has seen one, then let a setting
        # put recompute the preview.
        ioc.write(f"{motor.root}.VAL", "1", callback=True, wait=10)
        put(ioc, "Sync:Period", "0.1")
        put(ioc, "Sync:Period", BASE["Period"])
    names = [ioc.pv(f"Sync:{n}") for n in ("Velocity", "RunUp", "EstimatedTime")]
    velocity, run_up, estimate = names
    # Run-up v * (ACCL/2 + margin). The margin holds two readbacks at constant speed,
    # and at least 0.05 s: the sim posts readbacks every 5 ms (time scale 5), so 0.05 s;
    # motorSim's motor record every 0.1 s, so 0.2 s, give or take the poll's jitter.
    margin, jitter = (0.2, 0.01) if bench.genuine else (0.05, 0.0)

    def expected_run_up(v: float):
        return pytest.approx(v * (motor.accl / 2 + margin), abs=v * jitter or 1e-12)

    with CaMonitor(ioc.env, *names) as preview:
        for name in names:
            preview.wait_for(name, lambda _: True, timeout=10)
        # 0.2 mm every 0.05 s: 4 mm/s; sim: run-up v * (ACCL/2 + 0.05 s) = 4 * 0.15 mm
        assert float(preview.values(velocity)[-1]) == pytest.approx(4.0)
        assert float(preview.values(run_up)[-1]) == expected_run_up(4.0)
        first_estimate = float(preview.values(estimate)[-1])
        put(ioc, "Sync:Period", "0.1")
        preview.wait_for(velocity, lambda v: float(v) == pytest.approx(2.0), timeout=10)
        preview.wait_for(run_up, lambda v: float(v) == expected_run_up(2.0), timeout=10)
        preview.wait_for(estimate, lambda v: float(v) > first_estimate, timeout=10)
        put(ioc, "Sync:End", "4")
        preview.wait_for(velocity, lambda v: float(v) == pytest.approx(4.0), timeout=10)
    assert text(ioc, "Sync:Message").startswith("ready: ")


# --- abort, busy, faults ---------------------------------------------------------------
def test_abort_mid_scan_stops_the_motor_and_restores_its_velocity(bench, ioc, motor):
    # 1 mm every 2 s: a 0.5 mm/s sweep over 10 mm, 4 s at the sim's 5x speed (20 s on
    # the genuine bench): time for a few CA tools on a loaded machine before the abort
    configure(ioc, sweep_mode(bench), End="10", Period="2")
    root = motor.root
    state_pv, run_pv = ioc.pv("Sync:State"), ioc.pv("Sync:Run")
    disp_pv = f"{run_pv}.DISP"
    with CaMonitor(ioc.env, state_pv, f"{root}.VELO", disp_pv) as watch:
        watch.wait_for(state_pv, lambda _: True, timeout=10)
        run = subprocess.Popen([str(BIN / "caput"), "-t", "-c", "-w", "60", run_pv, "1"],
                               env=ioc.env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        try:
            watch.wait_value(state_pv, "Running", timeout=20)
            watch.wait_value(f"{root}.VELO", "0.5", timeout=10)
            # a second Run while busy is refused by the record (DISP=1), not queued
            disabled = watch.wait_value(disp_pv, "1", timeout=10)
            second = ioc.caput("Sync:Run", "1", callback=False)
            assert ioc.caget("Sync:State") == ["Running"]
            put(ioc, "Sync:Abort", "1")
            output, _ = run.communicate(timeout=30)
        finally:
            run.kill()
        assert run.returncode == 0, output
        assert ioc.caget("Sync:State") == ["Aborted"]
        # Run takes puts again once the scan's put-callback has completed (DISP back to 0)
        watch.wait_value(disp_pv, "0", timeout=10, start=disabled)
    assert "Channel write request failed" in second.stdout + second.stderr, second
    message = text(ioc, "Sync:Message")
    assert message.startswith("aborted at point ") and "aborted by request" in message
    assert ioc.numbers(f"{root}.DMOV", f"{root}.VELO") == [1, motor.velo]
    (rbv,) = ioc.numbers(f"{root}.RBV")
    assert -1 < rbv < 10.5  # stopped where it was, not at the run-out position
    assert watch.values(state_pv).count("Preparing") == 1  # the second Run never ran


def test_dropped_pulse_shows_in_missed_frames_and_message(bench, ioc):
    bench.skip_on_genuine(NO_BOX)
    configure(ioc, "Fly")
    ioc.write(f"{BOX}Sim:DROP", "1", callback=True, wait=10)
    states, state_after = run_scan(ioc)
    assert state_after == "Done"
    assert ioc.caget("Sync:MissedFrames", "Sync:NumValid") == ["1", "11"]
    message = text(ioc, "Sync:Message")
    assert "1 missed frame(s): 11 triggers, 10 frames counted" in message, message
    frames = arrays(ioc, 11, "FrameNumbers")["frame_numbers"]
    assert frames[0] == -1 and np.diff(frames[1:]).tolist() == [1] * 9
    with h5py.File(text(ioc, "Sync:DataFile")) as h5:
        assert h5["entry/missed_frames"][()] == 1


def test_a_shell_script_runs_scans_one_after_another(ioc):
    """The command-line promise: `caput -c BENCH:Sync:Run 1` returns when the scan
    ends, so the next line of a script can start the next scan."""
    configure(ioc, "Step")
    run = f"{BIN / 'caput'} -t -c -w 60 {ioc.pv('Sync:Run')} 1"
    files = f"{BIN / 'caget'} -t -S {ioc.pv('Sync:DataFile')}"
    started = time.monotonic()
    script = subprocess.run(["sh", "-e", "-c", f"{run}; {files}; {run}; {files}"],
                            env=ioc.env, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert script.returncode == 0, script.stdout + script.stderr
    first, second = script.stdout.split()[1::2]  # each caput prints its new value
    assert first != second
    durations = []
    for path in (first, second):
        with h5py.File(path) as h5:
            assert h5["entry/outcome"].asstr()[()] == "Done"
            # start and end to the ms (duration is NXentry's whole seconds)
            start, end = (dt.datetime.fromisoformat(h5[f"entry/{key}"].asstr()[()])
                          for key in ("start_time", "end_time"))
            durations.append((end - start).total_seconds())
    assert elapsed >= sum(durations)  # each caput waited for its scan


def test_frames_lost_by_the_camera_show_in_missed_frames(bench, ioc):
    bench.skip_on_genuine("frames are dropped with the simulated camera's Sim:DropFrames "
                          "knob, which simDetector does not have")
    configure(ioc, "Cont", **MODES["Cont"])
    ioc.write("SIM:cam1:Sim:DropFrames", "2", callback=True, wait=10)
    states, state_after = run_scan(ioc)
    message = text(ioc, "Sync:Message")
    assert state_after == "Done", message
    assert ioc.caget("Sync:MissedFrames", "Sync:NumValid") == ["2", "9"]
    assert "2 missed frame(s): 11 triggers, 9 frames counted" in message, message


def test_fly_is_refused_in_words_without_a_trigger_box(bench, ioc, motor):
    if not bench.genuine:
        pytest.skip("the simulated bench has a trigger box")
    message_pv = ioc.pv("Sync:Message")
    expected = ("a Fly scan needs the trigger box SIM:PANDA:, which is not connected: use "
                "Step or Cont, or connect the box")
    with CaMonitor(ioc.env, message_pv) as messages:
        configure(ioc, "Fly")
        # the preview says so as soon as Fly is chosen ("refused: ..." when that closed
        # Run after a finished scan)
        messages.wait_for(message_pv, lambda _: messages.texts(message_pv)[-1].startswith(
            (f"not ready: {expected}", f"refused: {expected}")), timeout=10)
    before = ioc.numbers(f"{motor.root}.RBV")
    states, state_after = run_scan_refused(ioc)
    assert text(ioc, "Sync:Message") in (f"not ready: {expected}", f"refused: {expected}")
    assert "Preparing" not in states and state_after == states[-1]
    assert ioc.numbers(f"{motor.root}.RBV") == before
    configure(ioc, "Step")
    assert text(ioc, "Sync:Message").startswith("ready: ")  # Step needs no box
