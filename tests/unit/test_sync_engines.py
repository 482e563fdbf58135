"""The sync engines and controller against in-process fakes on a virtual clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import h5py
import numpy as np
import pytest
from syncfakes import FakeBox, FakeCamera, FakeSyncMotor, now, run_virtual

from benchioc.clients.scan import CaCamera, ReadbackMeter
from benchioc.engines.sync import (
    DataTarget,
    ScanMode,
    ScanRefused,
    ScanState,
    ScanUpdate,
    SyncController,
)
from benchioc.engines.sync.controller import DEVICE_WAIT_S
from benchioc.engines.sync.devices import DeviceError, Frame, Pulse
from benchioc.engines.sync.engines import (
    frame_start_times,
    interpolate_positions,
    match_frames,
)

STEP, CONT, FLY = ScanMode.STEP, ScanMode.CONT, ScanMode.FLY


class Bench:
    def __init__(self, tmp_path: Path, homed: bool = True, with_box: bool = True,
                 readout: float = 0.002, **motor) -> None:
        self.motor = FakeSyncMotor("A", **motor)
        self.camera = FakeCamera(readout)
        self.box = FakeBox({"A": self.motor}, self.camera)
        self.homed = homed
        self.updates: list[ScanUpdate] = []
        self.controller = SyncController(
            motors={"A": self.motor}, camera=self.camera,
            box=self.box if with_box else None,
            data=DataTarget(tmp_path / "data", "bench", "P-1", "E-1", 3),
            is_homed=lambda name: self.homed, bench_config={"motors": {"A": {}}},
        )
        self.controller.subscribe(self.updates.append)

    def states(self) -> list[ScanState]:
        states = [u.state for u in self.updates]
        return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


def scan(tmp_path: Path, settings: dict, setup=None, **motor):
    async def go():
        bench = Bench(tmp_path, **motor)
        if setup:
            setup(bench)
        bench.controller.update(motor="A", **settings)
        result = await bench.controller.run()
        return bench, result

    return run_virtual(go())


def check_common(result: ScanUpdate, n: int) -> None:
    assert result.state == ScanState.DONE, result.message
    assert result.num_valid == n
    assert np.all(np.diff(result.timestamps) > 0)
    assert result.missed_frames == 0
    assert Path(result.data_file).exists()


# --- the three modes -------------------------------------------------------------------
def test_step_scan_visits_each_point_and_takes_frames_per_point(tmp_path: Path) -> None:
    bench, result = scan(tmp_path, dict(mode=STEP, start=-1, end=1, num_points=5,
                                        frames_per_point=2, exposure=0.01, period=0.02,
                                        settle_time=0.05))
    check_common(result, 5)
    assert result.set_positions == pytest.approx([-1, -0.5, 0, 0.5, 1])
    assert result.positions == pytest.approx(result.set_positions, abs=1e-9)
    assert list(result.frame_numbers) == [2, 4, 6, 8, 10]
    assert result.frames_acquired == 10
    assert bench.motor.moves == pytest.approx([-1, -0.5, 0, 0.5, 1])
    assert bench.states() == [ScanState.IDLE, ScanState.PREPARING, ScanState.RUNNING,
                              ScanState.FINISHING, ScanState.DONE]
    assert result.progress == 100.0
    assert bench.motor.velocity_puts == []  # step scans keep the motor's speed


def test_step_positions_are_read_after_the_move_not_taken_from_a_lagging_monitor(
        tmp_path: Path) -> None:
    # A genuine motor record: the move's put-callback ends before the last readback
    # monitor arrives; the monitored position is still that of the previous point.
    _, result = scan(tmp_path, dict(mode=STEP, start=0, end=1, num_points=3),
                     monitor_lag=0.05)
    check_common(result, 3)
    assert result.positions == pytest.approx([0, 0.5, 1], abs=1e-9)


def test_cont_scan_interpolates_frame_positions_from_the_readback(tmp_path: Path) -> None:
    bench, result = scan(tmp_path, dict(mode=CONT, start=0, end=5, num_points=11,
                                        exposure=0.01, period=0.05))
    check_common(result, 11)
    step = 0.5
    # Velocity 10 mm/s from step 0.5 mm every 0.05 s; the camera starts as the motor
    # passes Start, so each frame lands within a hundredth of a step of its point.
    assert bench.motor.velocity_puts == [10.0, 10.0]
    assert result.positions == pytest.approx(result.set_positions, abs=0.01 * step)
    assert np.diff(result.frame_numbers).tolist() == [1] * 10
    assert np.diff(result.timestamps) == pytest.approx([0.05] * 10)
    # run-up: v * (ACCL/2 + 0.05 s margin) = 10 * 0.1 = 1 mm either side
    assert bench.motor.moves == pytest.approx([-1.0, 6.0])


def test_cont_scan_downwards_starts_the_camera_as_the_motor_passes_start(
        tmp_path: Path) -> None:
    bench, result = scan(tmp_path, dict(mode=CONT, start=4, end=0, num_points=9,
                                        exposure=0.01, period=0.05))
    check_common(result, 9)
    assert result.set_positions == pytest.approx(np.linspace(4, 0, 9))
    assert result.positions == pytest.approx(result.set_positions, abs=0.01 * 0.5)
    assert bench.motor.moves == pytest.approx([5.0, -1.0])


def test_cont_scan_fails_when_readbacks_are_too_rare_to_start_the_camera(
        tmp_path: Path) -> None:
    # One readback per move: the first one at speed is the end of the sweep.
    bench, result = scan(tmp_path, dict(mode=CONT, start=0, end=5, num_points=11,
                                        exposure=0.01, period=0.05), poll=100.0,
                         readback_interval=0.0)  # not measured yet: the run-up is the default
    assert result.state == ScanState.FAILED
    assert "first seen at constant speed at 6, already 6 past Start 0" in result.message
    assert "lengthen Period" in result.message
    assert bench.motor.velocity == 10.0  # restored
    assert result.frames_acquired == 0  # the camera was never started


def test_fly_scan_takes_positions_from_the_box_capture(tmp_path: Path) -> None:
    bench, result = scan(tmp_path, dict(mode=FLY, start=-2, end=2, num_points=9,
                                        exposure=0.005, period=0.04))
    check_common(result, 9)
    assert result.positions == pytest.approx(np.linspace(-2, 2, 9), abs=1e-6)
    assert np.diff(result.frame_numbers).tolist() == [1] * 8
    assert np.diff(result.timestamps) == pytest.approx([0.04] * 8, abs=1e-6)
    assert bench.camera.configured["trigger_mode"] == 1
    assert bench.box.armed_with["step"] == pytest.approx(0.5)
    assert bench.motor.velocity == 10.0  # restored (12.5 mm/s during the sweep)
    assert bench.motor.velocity_puts == [12.5, 10.0]
    assert bench.box.disarms >= 2


def test_fly_scan_downwards(tmp_path: Path) -> None:
    bench, result = scan(tmp_path, dict(mode=FLY, start=3, end=1, num_points=5,
                                        exposure=0.005, period=0.05))
    check_common(result, 5)
    assert result.positions == pytest.approx([3, 2.5, 2, 1.5, 1], abs=1e-6)
    assert bench.box.armed_with["direction"] == -1


def test_cont_scan_with_readbacks_at_10_hz_starts_the_camera_on_start(
        tmp_path: Path) -> None:
    # A motor record polled at 10 Hz (motorSim): the run-up holds two readback intervals
    # at constant speed, so the camera is started from readbacks taken at speed.
    bench, result = scan(tmp_path, dict(mode=CONT, start=0, end=2, num_points=11,
                                        exposure=0.01, period=0.4), poll=0.1, accl=0.1)
    check_common(result, 11)
    # run-up 0.5 mm/s * (ACCL/2 + 2 * 0.1 s) = 0.125 mm
    assert bench.motor.moves == pytest.approx([-0.125, 2.125])
    assert result.positions == pytest.approx(result.set_positions, abs=0.01 * 0.2)


def test_cont_scan_lengthens_its_run_up_when_the_taxi_shows_rare_readbacks(
        tmp_path: Path) -> None:
    # A client that has just connected (the command line) learns the motor's readback
    # rate on the move to the run-up position: 0.1 s, too rare for the planned run-up
    # at 4 mm/s (one readback every 0.4 mm, two steps), so it goes on to a longer one.
    bench, result = scan(tmp_path, dict(mode=CONT, start=0, end=2, num_points=11,
                                        exposure=0.01, period=0.05), position=3.0,
                         poll=0.1, accl=0.1, learns_interval_after=1)
    check_common(result, 11)
    # planned 4 * (0.05 + 0.05) = 0.4 mm; then 4 * (0.05 + 2 * 0.1) = 1 mm
    assert bench.motor.moves == pytest.approx([-0.4, -1.0, 3.0])
    assert result.positions == pytest.approx(result.set_positions, abs=0.01 * 0.2)


@pytest.mark.parametrize("tick_phase", [0.0, 0.05, 0.09])
def test_cont_scan_goes_back_further_when_the_sweep_shows_rare_readbacks(
        tmp_path: Path, tick_phase: float) -> None:
    # The move to the run-up position was too short to measure the readback rate (one
    # readback); the sweep shows it, too late to start the camera on Start. No frame has
    # been taken: the engine stops, goes back to a longer run-up and sweeps again.
    bench, result = scan(tmp_path, dict(mode=CONT, start=0, end=2, num_points=11,
                                        exposure=0.01, period=0.05), position=3.0,
                         poll=0.1, accl=0.1, learns_interval_after=2,
                         tick_phase=tick_phase)  # motorSim's free-running 10 Hz
    check_common(result, 11)
    assert bench.motor.moves[0] == pytest.approx(-0.4)  # planned run-up
    assert bench.motor.moves[2:] == pytest.approx([-1.0, 3.0])  # back further, sweep
    assert bench.motor.stops == 1  # the first sweep, stopped
    assert bench.motor.velocity_puts == [4.0, 10.0, 4.0, 10.0]
    assert result.positions == pytest.approx(result.set_positions, abs=0.01 * 0.2)


def test_a_run_up_a_little_short_is_not_worth_another_move(tmp_path: Path) -> None:
    # The sim at real time posts a readback every 25 ms: two of them are the 0.05 s the
    # plan already has, give or take the timer's jitter.
    bench, result = scan(tmp_path, dict(mode=CONT, start=0, end=2, num_points=11,
                                        exposure=0.01, period=0.05), position=3.0,
                         poll=0.0255, accl=0.1, learns_interval_after=1)
    check_common(result, 11)
    assert bench.motor.moves == pytest.approx([-0.4, 2.4])


def test_a_longer_run_up_beyond_the_soft_limits_fails_the_scan_in_words(
        tmp_path: Path) -> None:
    bench, result = scan(tmp_path, dict(mode=CONT, start=0, end=2, num_points=11,
                                        exposure=0.01, period=0.05), position=3.0,
                         poll=0.1, accl=0.1, learns_interval_after=1, llm=-0.5)
    assert result.state == ScanState.FAILED
    assert result.message == (
        "failed at point 0 of 11: the run-up and run-out of motor A (-1 to 3 mm) goes "
        "beyond its soft limits (-0.5 to 40 mm), once lengthened for a readback every "
        "0.1 s")
    assert bench.motor.moves == pytest.approx([-0.4])  # no further
    assert bench.motor.velocity == 10.0
    assert bench.camera.stops == 1  # told to stop, though never started


def test_cont_scan_with_rare_readbacks_not_yet_measured_starts_late_but_within_a_step(
        tmp_path: Path) -> None:
    # The same motor when its readback rate is never known (the taxi did not move it far
    # enough to measure): the default 0.05 s margin holds no readback at speed, so the
    # camera starts on the first one, past Start.
    _, result = scan(tmp_path, dict(mode=CONT, start=0, end=2, num_points=11,
                                    exposure=0.01, period=0.4), poll=0.1, accl=0.1,
                     readback_interval=0.0)
    check_common(result, 11)
    late = np.array(result.positions) - np.array(result.set_positions)
    assert late.min() > 0.01 and late.max() < 0.2 / 2


# --- missed frames ---------------------------------------------------------------------
def test_dropped_pulse_shows_in_missed_frames_and_message(tmp_path: Path) -> None:
    def drop_one(bench: Bench) -> None:
        bench.box.model.drop_pulses = 1

    bench, result = scan(tmp_path, dict(mode=FLY, start=0, end=4, num_points=5,
                                        exposure=0.005, period=0.05), setup=drop_one)
    assert result.state == ScanState.DONE
    assert result.missed_frames == 1
    assert "1 missed frame(s): 5 triggers, 4 frames counted" in result.message
    assert list(result.frame_numbers)[0] == -1
    assert list(result.frame_numbers)[1:] == [1, 2, 3, 4]
    assert bench.camera.stops == 1  # still waiting for the fifth trigger: stopped
    with h5py.File(result.data_file) as h5:
        assert h5["entry/missed_frames"][()] == 1


def test_dropped_camera_frames_are_counted_in_cont_mode(tmp_path: Path) -> None:
    def drop_two(bench: Bench) -> None:
        bench.camera.model.drop_frames = 2

    _, result = scan(tmp_path, dict(mode=CONT, start=0, end=2, num_points=5,
                                    exposure=0.01, period=0.05), setup=drop_two)
    assert result.missed_frames == 2
    assert result.num_valid == 3
    assert "2 missed frame(s)" in result.message


def test_dropped_camera_frames_are_counted_in_step_mode(tmp_path: Path) -> None:
    def drop_one(bench: Bench) -> None:
        bench.camera.model.drop_frames = 1

    _, result = scan(tmp_path, dict(mode=STEP, start=0, end=1, num_points=3,
                                    frames_per_point=2, exposure=0.01, period=0.02),
                     setup=drop_one)
    assert result.missed_frames == 1
    assert result.frames_acquired == 5
    assert list(result.frame_numbers) == [1, 3, 5]


def test_step_scan_counts_frames_on_the_monitor_and_reads_the_counter_once(
        tmp_path: Path) -> None:
    """Per point no read of ArrayCounter_RBV: the frame monitor the scan follows counts
    the frames asked for (a read only when one is missing: the test above)."""
    reads: list[int] = []

    def count_reads(bench: Bench) -> None:
        read = bench.camera.frame_counter

        async def counted() -> int:
            reads.append(1)
            return await read()

        bench.camera.frame_counter = counted  # type: ignore[method-assign]

    _, result = scan(tmp_path, dict(mode=STEP, start=0, end=1, num_points=5,
                                    frames_per_point=2, exposure=0.01, period=0.02),
                     setup=count_reads)
    check_common(result, 5)
    assert list(result.frame_numbers) == [2, 4, 6, 8, 10]
    assert len(reads) == 1


# --- validation ------------------------------------------------------------------------
REFUSALS = [
    (dict(mode=STEP, exposure=0.05, period=0.05),
     "Period 0.05 s is shorter than Exposure 0.05 s + camera readout 0.002 s = 0.052 s"),
    (dict(mode=STEP, start=-50, end=0),
     "the scan range of motor A (-50 to 0 mm) goes beyond its soft limits (-40 to 40 mm)"),
    (dict(mode=FLY, start=0, end=10, num_points=3, period=0.1),
     "needs 50 mm/s, more than motor A's VMAX of 20 mm/s"),
    (dict(mode=FLY, start=30, end=39.5, num_points=20, period=0.05),
     "the run-up and run-out of motor A (29 to 40.5 mm) goes beyond its soft limits"),
    (dict(mode=CONT, num_points=1), "needs at least 2 points"),
    (dict(mode=FLY, start=1, end=1), "needs Start and End to differ (both are 1)"),
    (dict(mode=FLY, frames_per_point=3), "set FramesPerPoint to 1 (it is 3)"),
    (dict(mode=STEP, exposure=0), "Exposure 0 s must be more than 0 s"),
    (dict(mode=STEP, num_points=0), "NumPoints 0 must be between 1 and 10000"),
    (dict(mode=STEP, settle_time=-1), "SettleTime -1 s must not be negative"),
    (dict(motor="Z"), "there is no motor 'Z' (motors: A)"),
]


@pytest.mark.parametrize("settings, message", REFUSALS)
def test_invalid_configuration_is_refused_with_a_message(tmp_path: Path, settings: dict,
                                                         message: str) -> None:
    async def go():
        bench = Bench(tmp_path)
        bench.controller.update(**{"motor": "A", **settings})
        preview = bench.controller.preview()
        with pytest.raises(ScanRefused) as refusal:
            await bench.controller.run()
        return bench, preview, str(refusal.value)

    bench, preview, refusal = run_virtual(go())
    assert message in refusal
    assert not preview.ok and message in preview.message
    assert bench.motor.moves == []
    assert bench.controller.last.message == f"refused: {refusal}"
    assert not (tmp_path / "data").exists()


def test_unhomed_motor_is_refused_unless_require_homed_is_off(tmp_path: Path) -> None:
    async def go():
        bench = Bench(tmp_path, homed=False)
        bench.controller.update(motor="A", start=0, end=1, num_points=2)
        with pytest.raises(ScanRefused, match="motor A is not homed"):
            await bench.controller.run()
        bench.controller.update(require_homed=False)
        return await bench.controller.run()

    assert run_virtual(go()).state == ScanState.DONE


def test_preview_reports_velocity_run_up_and_time(tmp_path: Path) -> None:
    async def go():
        bench = Bench(tmp_path)
        return bench.controller.update(motor="A", mode=FLY, start=0, end=4, num_points=9,
                                       period=0.05)

    preview = run_virtual(go())
    assert preview.ok
    assert preview.velocity == pytest.approx(10.0)  # 0.5 mm every 0.05 s
    assert preview.run_up == pytest.approx(10 * (0.05 + 0.05))
    # taxi from 0 to -1 (0.1 s + 0.1 s ramp), sweep 6 mm at 10 mm/s, ramp, overhead
    assert preview.estimated_time == pytest.approx(0.2 + 0.6 + 0.1 + 0.01)


# --- devices that do not answer -------------------------------------------------------
def test_fly_is_refused_in_words_when_the_trigger_box_does_not_answer(tmp_path: Path) -> None:
    async def go():
        bench = Bench(tmp_path)
        bench.box.set_connected(False)
        preview = bench.controller.update(motor="A", mode=FLY, start=0, end=2,
                                          num_points=5)
        with pytest.raises(ScanRefused) as refusal:
            await bench.controller.run()
        step = bench.controller.update(mode=STEP)  # Step and Cont need no box
        return bench, preview, str(refusal.value), step, await bench.controller.run()

    bench, preview, refusal, step, result = run_virtual(go())
    expected = ("a Fly scan needs the trigger box FAKE:PANDA:, which is not connected: "
                "use Step or Cont, or connect the box")
    assert refusal == expected
    assert not preview.ok and preview.message == expected
    assert step.ok
    assert result.state == ScanState.DONE
    assert bench.motor.moves == pytest.approx([0, 0.5, 1, 1.5, 2])  # only the Step scan


def test_fly_is_refused_when_no_trigger_box_is_configured(tmp_path: Path) -> None:
    async def go():
        bench = Bench(tmp_path, with_box=False)
        bench.controller.update(motor="A", mode=FLY, start=0, end=2, num_points=5)
        with pytest.raises(ScanRefused, match="a Fly scan needs a trigger box, and none "
                           "is configured: use Step or Cont"):
            await bench.controller.run()
        bench.controller.update(mode=CONT)
        return await bench.controller.run()

    assert run_virtual(go()).state == ScanState.DONE


def test_a_scan_is_refused_while_the_camera_does_not_answer(tmp_path: Path) -> None:
    async def go():
        bench = Bench(tmp_path)
        bench.camera.set_connected(False)
        bench.controller.update(motor="A", mode=STEP, start=0, end=1, num_points=2)
        started = now()
        with pytest.raises(ScanRefused) as refusal:
            await bench.controller.run()
        return bench, str(refusal.value), now() - started

    bench, refusal, waited = run_virtual(go())
    assert refusal == ("the camera FAKE:cam1: is not connected: check that its IOC is "
                       "running and reachable")
    assert bench.controller.last.message == f"refused: {refusal}"
    assert waited == pytest.approx(DEVICE_WAIT_S)  # it gave the camera a moment
    assert bench.motor.moves == []


def test_run_waits_for_a_camera_that_is_still_connecting(tmp_path: Path) -> None:
    # Right after the IOC starts, the camera's channels may not be up yet.
    async def go():
        bench = Bench(tmp_path)
        bench.camera.set_connected(False)
        bench.controller.update(motor="A", mode=STEP, start=0, end=1, num_points=2)
        asyncio.get_running_loop().call_later(0.5, bench.camera.set_connected, True)
        return await bench.controller.run()

    assert run_virtual(go()).state == ScanState.DONE


def test_the_preview_follows_the_devices_connection(tmp_path: Path) -> None:
    async def go():
        bench = Bench(tmp_path)
        seen: list[bool] = []
        bench.controller.update(motor="A", mode=FLY, start=0, end=2, num_points=5)
        bench.controller.watch_devices(lambda: seen.append(bench.controller.preview().ok))
        bench.box.set_connected(False)
        bench.box.set_connected(True)
        return seen

    assert run_virtual(go()) == [False, True]


def test_readout_time_comes_from_the_camera(tmp_path: Path) -> None:
    async def go():
        bench = Bench(tmp_path, readout=0.005)
        return bench.controller.update(motor="A", mode=STEP, exposure=0.01, period=0.012)

    assert run_virtual(go()).message == (
        "Period 0.012 s is shorter than Exposure 0.01 s + camera readout 0.005 s = 0.015 s")


def test_a_camera_error_mid_scan_fails_the_scan_in_words(tmp_path: Path) -> None:
    def broken_camera(bench: Bench) -> None:
        async def acquire(timeout: float) -> None:
            raise DeviceError("FAKE:cam1:Acquire did not accept 1: Virtual circuit "
                              "disconnect")

        bench.camera.acquire = acquire

    bench, result = scan(tmp_path, dict(mode=STEP, start=0, end=1, num_points=3),
                         setup=broken_camera)
    assert result.state == ScanState.FAILED
    assert result.message == ("failed at point 0 of 3: FAKE:cam1:Acquire did not accept 1: "
                              "Virtual circuit disconnect")
    assert bench.camera.stops == 1 and bench.motor.stops == 1


# --- the CA clients' own arithmetic -----------------------------------------------------
class _Stamped(int):
    """An aioca value with a timestamp."""

    def __new__(cls, value: int, timestamp: float) -> _Stamped:
        item = super().__new__(cls, value)
        item.timestamp = timestamp
        return item


def test_areadetector_frames_are_moved_back_to_the_start_of_their_exposure() -> None:
    # simDetector and the bench simulation stamp ArrayCounter_RBV when the frame is
    # delivered, after the exposure; no PV of the simulation's is looked for.
    camera = CaCamera("SIM:cam1:")
    camera._exposure = 0.01
    assert camera._frame(_Stamped(7, 100.5)) == Frame(7, pytest.approx(100.49))
    assert not hasattr(camera, "stamps_exposure_start")


def test_readback_meter_measures_the_interval_while_the_motor_moves() -> None:
    moving = [False]
    meter = ReadbackMeter(lambda: moving[0])
    meter((10.0, 0.0))  # at rest
    assert meter.interval == 0.0  # not measured yet
    moving[0] = True
    for i in range(1, 6):  # a move, polled at 10 Hz; the first gap follows a rest
        meter((10.3 + 0.1 * i, 0.1 * i))
    moving[0] = False
    meter((20.0, 1.0))  # at rest again, much later
    assert meter.interval == pytest.approx(0.1)


# --- abort and failures ----------------------------------------------------------------
def run_and_abort(tmp_path: Path, settings: dict, when):
    async def go():
        bench = Bench(tmp_path)
        bench.controller.update(motor="A", **settings)
        original = bench.motor.velocity
        task = asyncio.create_task(bench.controller.run())
        while not when(bench.controller.last):  # noqa: ASYNC110 - virtual time
            await asyncio.sleep(0.001)
        aborted_at = now()
        bench.controller.abort()
        bench.controller.abort()  # a second press must not break the cleanup
        result = await task
        return bench, result, original, aborted_at

    return run_virtual(go())


def test_abort_mid_step_scan_stops_everything_and_keeps_partial_data(tmp_path: Path) -> None:
    bench, result, original, _ = run_and_abort(
        tmp_path, dict(mode=STEP, start=0, end=10, num_points=11, period=0.02),
        when=lambda u: u.point >= 3)
    assert result.state == ScanState.ABORTED
    assert "aborted at point 3 of 11" in result.message
    assert bench.motor.stops == 1 and not bench.motor.moving
    assert bench.camera.stops == 1
    assert bench.motor.velocity == original
    assert result.num_valid == 3
    with h5py.File(result.data_file) as h5:
        assert h5["entry/outcome"].asstr()[()] == "Aborted"
        assert len(h5["entry/data/positions"]) == 3


def test_abort_mid_fly_sweep_restores_velocity_and_disarms(tmp_path: Path) -> None:
    bench, result, original, aborted_at = run_and_abort(
        tmp_path, dict(mode=FLY, start=-10, end=10, num_points=21, period=0.1),
        when=lambda u: u.frames_acquired >= 5)
    assert result.state == ScanState.ABORTED
    assert bench.motor.velocity == original == 10.0
    assert bench.motor.velocity_puts[-1] == original
    assert not bench.motor.moving
    assert not bench.box.model.enabled
    assert not bench.camera.model.acquiring
    # It stopped where it was, mid-sweep, not at the end of the run-out.
    assert -10 < bench.motor.position_at(aborted_at + 1) < 10


def test_second_run_while_busy_is_refused(tmp_path: Path) -> None:
    async def go():
        bench = Bench(tmp_path)
        bench.controller.update(motor="A", start=0, end=5, num_points=6)
        first = asyncio.create_task(bench.controller.run())
        await asyncio.sleep(0.01)
        assert bench.controller.busy
        with pytest.raises(ScanRefused, match="already running"):
            await bench.controller.run()
        return await first

    assert run_virtual(go()).state == ScanState.DONE


def test_stalled_motor_fails_the_scan_and_restores_velocity(tmp_path: Path) -> None:
    def stall_in_sweep(bench: Bench) -> None:
        bench.motor.stall_from_move = 1  # the taxi works, the sweep hangs

    bench, result = scan(tmp_path, dict(mode=CONT, start=0, end=2, num_points=5,
                                        period=0.05), setup=stall_in_sweep)
    assert result.state == ScanState.FAILED
    assert "did not reach the run-out position 3 in time" in result.message
    assert bench.motor.stops == 1
    assert bench.motor.velocity_puts == [10.0, 10.0]  # scan speed, then restored
    assert Path(result.data_file).exists()


def test_file_records_the_scan(tmp_path: Path) -> None:
    bench, result = scan(tmp_path, dict(mode=FLY, start=0, end=2, num_points=5,
                                        exposure=0.005, period=0.05))
    path = Path(result.data_file)
    assert path.parent == (tmp_path / "data").resolve()
    assert path.name.startswith("bench-") and path.suffix == ".h5"
    with h5py.File(path) as h5:
        entry = h5["entry"]
        assert entry["entry_identifier"].asstr()[()] == result.scan_id
        assert entry["experiment_identifier"].asstr()[()] == "P-1"
        assert entry["scan_settings/mode"].asstr()[()] == "Fly"
        assert entry["instrument/motor_A/record_fields/VELO"][()] == 10.0
        np.testing.assert_allclose(entry["data/positions"][()], result.positions)
        assert list(entry["data/frame_numbers"][()]) == list(result.frame_numbers)


# --- pure helpers ----------------------------------------------------------------------
def test_interpolation_is_linear_between_readbacks() -> None:
    samples = [(1.0, 0.0), (0.0, -1.0), (2.0, 4.0)]
    assert interpolate_positions([0.5, 1.5], samples) == pytest.approx([-0.5, 2.0])


def test_a_frame_reported_late_is_placed_by_the_frames_after_it() -> None:
    # frame 2 reported 14 ms late, frame 5 missed, the last one on time
    frames = [Frame(1, 0.0), Frame(2, 0.05), Frame(3, 0.114), Frame(4, 0.15),
              Frame(6, 0.25)]
    assert frame_start_times(frames, 0.05) == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.25])


def test_frames_on_time_or_slower_than_the_period_keep_their_times() -> None:
    frames = [Frame(1, 0.0), Frame(2, 0.06), Frame(3, 0.13)]
    assert frame_start_times(frames, 0.05) == [0.0, 0.06, 0.13]
    assert frame_start_times([], 0.05) == []


def test_a_faster_camera_than_set_is_measured_on_its_own_timestamps() -> None:
    # a simulated camera at time scale 8: a period of 0.4 s set, 0.05 s in the timestamps
    frames = [Frame(1, 0.0), Frame(2, 0.05), Frame(3, 0.114), Frame(4, 0.15)]
    assert frame_start_times(frames, 0.4) == pytest.approx([0.0, 0.05, 0.1, 0.15])


def test_frames_match_pulses_by_time_when_some_are_missing() -> None:
    pulses = [Pulse(0, 1.0), Pulse(1, 1.1), Pulse(2, 1.2)]
    frames = [Frame(7, 1.0), Frame(8, 1.2001)]
    assert match_frames(pulses, frames, period=0.1) == [7, -1, 8]


def test_frames_match_the_nearest_pulse_when_pulses_come_faster_than_the_period() -> None:
    # A sim at 5x speed: pulses 10 ms apart on the wall clock for a 50 ms period; the
    # first pulse was lost, so its neighbour's frame must not slide onto it.
    pulses = [Pulse(i, 1.0 + 0.01 * i) for i in range(4)]
    frames = [Frame(n, 1.0 + 0.01 * i) for n, i in ((11, 1), (12, 2), (13, 3))]
    assert match_frames(pulses, frames, period=0.05) == [-1, 11, 12, 13]
