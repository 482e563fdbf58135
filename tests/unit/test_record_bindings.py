"""The record layer in-process: the bench's records built from the spec over fake records
and fake engines. A put goes in the way softioc delivers it (validate, then on_update);
the test sees which engine call it became and what the scope's Message then says.

softioc's C side is not started here (an IOC can start once per process); the records
over real CA are covered by tests/integration.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from softioc import alarm

from benchioc import config as cfg
from benchioc.engines.homing import HomingBusy, HomingState, HomingUpdate
from benchioc.engines.motormodel import Direction, MotorStatus
from benchioc.engines.sync import ScanRefused
from benchioc.records import bench as bench_module
from benchioc.records import motor as motor_module
from benchioc.records import serve
from benchioc.records import sync as sync_module
from benchioc.records.autosave import HomingMemory
from benchioc.records.spec import BenchRecords, MotorRecords, SyncRecords, served

REPO = Path(__file__).resolve().parents[2]


class FakeRecord:
    """What the bindings use of a softioc record, and the handlers they gave it."""

    def __init__(self, pv: Any, name: str, initial: Any = None,
                 on_update: Callable | None = None, validate: Callable | None = None) -> None:
        self.pv = pv
        self.name = name
        self.value = initial
        self.severity = alarm.NO_ALARM
        self.on_update = on_update
        self.validate = validate
        self.put_disabled = False
        self.units: tuple[str, int] | None = None  # EGU, PREC written at run time

    def get(self) -> Any:
        return self.value

    def set(self, value: Any, severity: int = alarm.NO_ALARM, alarm: int = 0) -> None:
        self.value, self.severity = value, severity

    def set_alarm(self, severity: int, _status: int) -> None:
        self.severity = severity

    async def put(self, value: Any) -> bool:
        """A client's put: refused by DISP or by validate, or taken and handed to
        on_update."""
        if self.put_disabled:
            return False
        if self.validate is not None and not self.validate(self, value):
            return False
        self.value = value
        if self.on_update is not None:
            result = self.on_update(value)
            if asyncio.iscoroutine(result):
                await result
        return True


class FakeHoming:
    """A MotorHoming as the bindings see it: records every call."""

    def __init__(self, name: str, refuse: str | None = None) -> None:
        self.name = name
        self.calls: list[tuple[str, Any]] = []
        self.state = HomingState.NOT_HOMED
        self.busy = False
        self.last_homed = None
        self.refuse = refuse
        self._subscribers: list[Callable[[HomingUpdate], None]] = []

    def subscribe(self, callback: Callable[[HomingUpdate], None]) -> None:
        self._subscribers.append(callback)

    async def home(self, direction: Direction) -> bool:
        self.calls.append(("home", direction))
        if self.refuse:
            raise HomingBusy(self.refuse)
        return True

    def abort(self) -> None:
        self.calls.append(("abort", None))

    def restore(self, homed: bool, last_homed: Any = None, why: str = "") -> None:
        self.calls.append(("restore", homed))


class FakeController:
    """A SyncController as the bindings see it."""

    def __init__(self, run_refusal: str | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.run_refusal = run_refusal  # refused by run() itself (a device not connected)
        self.busy = False
        self.flat = None  # no flat-field motor configured
        self.data: Any = None

    def why_not_run(self) -> str:
        return ""

    def update(self, **changes: Any) -> Any:
        self.calls.append(("update", changes))
        return self.preview()

    def preview(self) -> Any:
        from benchioc.engines.sync import Preview

        return Preview(ok=True, velocity=1.0, run_up=0.1, estimated_time=2.0)

    async def run(self) -> None:
        self.calls.append(("run", None))
        if self.run_refusal:
            raise ScanRefused(self.run_refusal)

    def abort(self) -> None:
        self.calls.append(("abort", None))


@pytest.fixture
def bench(tmp_path, monkeypatch):
    """The records of configs/bench.yaml over fake records; motors' homing faked."""
    for module in (bench_module, motor_module, sync_module):
        monkeypatch.setattr(module, "set_put_disabled",
                            lambda record, disabled: setattr(record, "put_disabled", disabled),
                            raising=False)
    for module in (motor_module, sync_module):
        monkeypatch.setattr(module, "show_units",
                            lambda record, egu, prec: setattr(record, "units", (egu, prec)))
    monkeypatch.setattr(bench_module, "make_record", FakeRecord)
    path = tmp_path / "bench.yaml"
    shutil.copy(REPO / "configs" / "bench.yaml", path)
    bench = serve.create_bench(cfg.load(path), "T:")
    for name, binding in bench.motors.items():
        binding.homing = FakeHoming(name)  # type: ignore[assignment]
        binding.memory = HomingMemory(name, bench.store, binding.homing,  # type: ignore[arg-type]
                                      say=lambda text, error: None)
        binding.homing.subscribe(binding._on_homing)
    assert bench.sync is not None
    bench.sync.controller = FakeController()  # type: ignore[assignment]
    return bench


def record(bench, pv, motor=None) -> FakeRecord:
    return bench.record(pv, motor)


def test_every_spec_entry_is_built_once_under_its_full_name(bench):
    expected = {entry.name for entry in served("T:", list(bench.config.motors))}
    assert set(bench.records) == expected


async def test_home_hi_put_becomes_a_homing_of_that_motor(bench):
    assert await record(bench, MotorRecords.HomeHi, "B").put(1)
    assert bench.motors["B"].homing.calls == [("home", Direction.HI)]
    assert bench.motors["A"].homing.calls == []


async def test_a_refused_homing_is_shown_on_the_motor_message_as_major(bench):
    bench.motors["A"].homing.refuse = "A: homing refused: a scan is moving this motor"
    await record(bench, MotorRecords.HomeLo, "A").put(1)
    message = record(bench, MotorRecords.Message, "A")
    assert message.value == "A: homing refused: a scan is moving this motor"
    assert message.severity == alarm.MAJOR_ALARM


async def test_abort_all_aborts_the_scan_and_every_motor(bench):
    for binding in bench.motors.values():
        binding.homing.busy = True
    await record(bench, BenchRecords.AbortAll).put(1)
    assert all(("abort", None) in b.homing.calls for b in bench.motors.values())
    assert ("abort", None) in bench.sync.controller.calls


async def test_an_invalid_limit_is_refused_in_words_and_the_file_is_untouched(bench):
    before = bench.doc.path.read_bytes()
    lolim = record(bench, MotorRecords.LoLim, "A")
    assert not await lolim.put(50.0)  # above hi_lim 40
    message = record(bench, MotorRecords.Message, "A")
    assert message.value.startswith("lo_lim = 50.0 refused: "), message.value
    assert message.severity == alarm.MAJOR_ALARM
    assert lolim.severity == alarm.MAJOR_ALARM  # the written record shows the refusal
    assert bench.doc.path.read_bytes() == before


async def test_a_limit_of_a_scanned_motor_is_refused_naming_the_scan(bench):
    with bench.leases.take("A", sync_module.SCAN_HOLDER):
        assert not await record(bench, MotorRecords.HiLim, "A").put(30.0)
    assert record(bench, MotorRecords.Message, "A").value == (
        "hi_lim not changed: A is being scanned; abort the scan first (Sync:Abort)")


async def test_a_good_limit_is_saved_to_the_file_and_said(bench):
    assert await record(bench, MotorRecords.HiLim, "A").put(35.0)
    assert cfg.load(bench.doc.path).config.motors["A"].hi_lim == 35.0
    assert record(bench, MotorRecords.Message, "A").value == (
        "hi_lim set to 35.0 and saved to bench.yaml")


async def test_scan_settings_reach_the_controller_with_their_types(bench):
    await record(bench, SyncRecords.NumPoints).put(7)
    await record(bench, SyncRecords.Mode).put(2)
    await record(bench, SyncRecords.RequireHomed).put(0)
    assert bench.sync.controller.calls == [
        ("update", {"num_points": 7}), ("update", {"mode": 2}),
        ("update", {"require_homed": False})]
    assert record(bench, SyncRecords.EstimatedTime).value == 2.0  # the preview is shown


async def test_a_refused_scan_says_why_on_the_sync_message(bench):
    bench.sync.controller.run_refusal = "motor A is homing; wait for it to end or abort it"
    await record(bench, SyncRecords.Run).put(1)
    message = record(bench, SyncRecords.Message)
    assert message.value == "scan refused: motor A is homing; wait for it to end or abort it"
    assert message.severity == alarm.MAJOR_ALARM
    assert not record(bench, SyncRecords.Run).put_disabled  # Run accepts puts again


def test_motor_mirrors_follow_the_status_and_go_invalid_when_disconnected(bench):
    binding = bench.motors["C"]
    binding._on_motor(MotorStatus(connected=True, rbv=12.5, dmov=False, hls=True))
    assert record(bench, MotorRecords.Moving, "C").value == 1
    assert record(bench, MotorRecords.HighLimitSwitch, "C").value == 1
    assert record(bench, MotorRecords.Position, "C").value == 12.5
    binding._on_motor(MotorStatus(connected=False, rbv=12.5))
    connected = record(bench, MotorRecords.Connected, "C")
    assert connected.value == 0 and connected.severity == alarm.INVALID_ALARM


def test_homing_updates_show_state_progress_and_a_failure_as_major(bench):
    binding = bench.motors["D"]
    binding._on_homing(HomingUpdate(HomingState.FAILED, 40.0, "D: stalled while seeking"))
    assert record(bench, MotorRecords.State, "D").value == int(HomingState.FAILED)
    assert record(bench, MotorRecords.Progress, "D").value == 40.0
    message = record(bench, MotorRecords.Message, "D")
    assert (message.value, message.severity) == ("D: stalled while seeking", alarm.MAJOR_ALARM)


async def test_the_follower_does_not_take_the_iocs_own_earlier_save_for_an_outside_edit(bench):
    """A put saved; a second put applied and being saved while the follower reads the
    file, which still holds the first: the second must not be lost."""
    from benchioc.records.follower import ConfigFollower

    follower = ConfigFollower(bench)
    assert await record(bench, MotorRecords.LoLim, "A").put(-30.0)
    bench.doc.update_motor_field("A", "lo_lim", -31.0)  # the second put, in memory...
    bench.doc.text = bench.doc.dumps()  # ...its save under way; the file still says -30
    follower._stamp = None  # the file changed since the follower last looked
    await follower.check()
    assert bench.config.motors["A"].lo_lim == -31.0
    assert "outside edit" not in (record(bench, BenchRecords.Message).value or "")


# --- a refused Run fails the put (issue #13) -----------------------------------------------
def real_controller(bench, tmp_path, homed: dict[str, bool] | None = None):
    """A SyncController over the in-process fakes of motor A, the camera and the box."""
    from syncfakes import FakeBox, FakeCamera, FakeSyncMotor

    from benchioc.engines.sync import DataTarget, SyncController

    homed = {} if homed is None else homed
    motor = FakeSyncMotor("A")
    camera = FakeCamera()
    return SyncController(motors={"A": motor}, camera=camera,
                          box=FakeBox({"A": motor}, camera),
                          data=DataTarget(tmp_path / "data", "bench"),
                          is_homed=lambda name: homed.get(name, False), leases=bench.leases)


async def set_up_step_scan(bench) -> None:
    for pv, value in ((SyncRecords.Mode, 0), (SyncRecords.Start, 0.0),
                      (SyncRecords.End, 1.0), (SyncRecords.NumPoints, 3),
                      (SyncRecords.Period, 0.05), (SyncRecords.RequireHomed, 0)):
        assert await record(bench, pv).put(value)


def test_a_run_that_cannot_start_fails_the_put_and_leaves_no_done_behind(bench, tmp_path):
    from syncfakes import run_virtual

    from benchioc.engines.sync import ScanState

    async def scenario() -> None:
        controller = real_controller(bench, tmp_path)
        bench.sync.start(controller)
        await set_up_step_scan(bench)
        run, state = record(bench, SyncRecords.Run), record(bench, SyncRecords.State)
        assert await run.put(1)  # accepted: runs to its end
        assert state.value == int(ScanState.DONE), record(bench, SyncRecords.Message).value
        assert not run.put_disabled
        scan_id = record(bench, SyncRecords.ScanId).value

        await record(bench, SyncRecords.Period).put(0.005)  # shorter than the exposure
        assert run.put_disabled  # DISP: a put, put-callback or not, fails at the record
        assert not await run.put(1)
        assert state.value == int(ScanState.IDLE)  # not the last scan's Done
        message = record(bench, SyncRecords.Message)
        assert message.value.startswith("refused: Period 0.005 s is shorter than"), \
            message.value
        assert message.severity == alarm.MAJOR_ALARM
        assert record(bench, SyncRecords.ScanId).value == scan_id  # no scan started

        await record(bench, SyncRecords.Period).put(0.05)  # fixed: Run takes puts again
        assert not run.put_disabled
        assert message.value.startswith("ready: "), message.value
        controller.close()

    run_virtual(scenario())


def test_run_opens_once_the_motor_is_homed_and_closes_while_it_is_homing(bench, tmp_path):
    from syncfakes import run_virtual

    from benchioc.engines.homing import HomingState, HomingUpdate
    from benchioc.engines.lease import Holder

    async def scenario() -> None:
        homed = {"A": False}
        controller = real_controller(bench, tmp_path, homed)
        bench.sync.start(controller)
        await set_up_step_scan(bench)
        run = record(bench, SyncRecords.Run)
        await record(bench, SyncRecords.RequireHomed).put(1)
        assert run.put_disabled  # motor A is not homed
        assert record(bench, SyncRecords.Message).value == (
            "not ready: motor A is not homed: home it first, or set RequireHomed to No")
        binding = bench.motors["A"]
        homing = Holder("a homing", "is homing", "wait for it to end or abort it")
        with bench.leases.take("A", homing):
            binding._on_homing(HomingUpdate(HomingState.SEEKING, 10.0, "A: seeking"))
            assert run.put_disabled
            homed["A"] = True
            binding._on_homing(HomingUpdate(HomingState.HOMED, 100.0, "A: homed"))
            assert run.put_disabled  # homed, but the homing still holds the motor
        assert not run.put_disabled  # the homing gave the motor back
        controller.close()

    run_virtual(scenario())


def test_a_run_let_through_before_the_gate_closed_is_refused_by_validate(bench, tmp_path):
    from syncfakes import run_virtual

    from benchioc.engines.sync import ScanState

    async def scenario() -> None:
        controller = real_controller(bench, tmp_path)
        bench.sync.start(controller)
        await set_up_step_scan(bench)
        run = record(bench, SyncRecords.Run)
        assert await run.put(1)
        controller.update(period=0.005)  # changed under the records: nothing re-gated
        assert not run.put_disabled
        assert not await run.put(1)  # validate refuses: a plain put fails
        assert record(bench, SyncRecords.State).value == int(ScanState.IDLE)
        assert record(bench, SyncRecords.Message).value.startswith("refused: Period")
        bench.sync._gate_run()  # what the next announced change (a preview) does
        assert run.put_disabled
        controller.close()

    run_virtual(scenario())


def test_a_run_while_a_scan_runs_is_refused_without_touching_its_state(bench):
    controller = bench.sync.controller
    controller.busy = True
    controller.why_not_run = lambda: "a scan is already running; abort it first"
    controller.refuse = lambda reason: pytest.fail("the running scan's State was reset")
    record(bench, SyncRecords.State).value = 3
    assert not record(bench, SyncRecords.Run).validate(record(bench, SyncRecords.Run), 1)
    assert record(bench, SyncRecords.State).value == 3
    assert record(bench, SyncRecords.Message).value == (
        "scan refused: a scan is already running; abort it first")


# --- units from the motor record -------------------------------------------------------------
MOTOR_UNIT_PVS = (MotorRecords.Position, MotorRecords.LoLim, MotorRecords.Center,
                  MotorRecords.HiLim)
SYNC_UNIT_PVS = (SyncRecords.Start, SyncRecords.End, SyncRecords.Positions,
                 SyncRecords.SetPositions)


def test_position_records_take_egu_and_prec_from_their_motor_record(bench):
    assert record(bench, SyncRecords.Motor).value == "A"
    bench.motors["D"]._on_motor(MotorStatus(connected=True, rbv=1.0, egu="deg", prec=2))
    assert {record(bench, pv, "D").units for pv in MOTOR_UNIT_PVS} == {("deg", 2)}
    assert {record(bench, pv).units for pv in SYNC_UNIT_PVS} == {None}  # D is not scanned
    assert record(bench, MotorRecords.Position, "A").units is None
    bench.motors["A"]._on_motor(MotorStatus(connected=True, rbv=1.0, egu="mm", prec=3))
    assert {record(bench, pv).units for pv in SYNC_UNIT_PVS} == {("mm", 3)}
    # a change of the motor record's PREC follows
    bench.motors["A"]._on_motor(MotorStatus(connected=True, rbv=1.0, egu="mm", prec=5))
    assert {record(bench, pv, "A").units for pv in MOTOR_UNIT_PVS} == {("mm", 5)}
    assert {record(bench, pv).units for pv in SYNC_UNIT_PVS} == {("mm", 5)}


async def test_choosing_another_motor_to_scan_shows_its_units(bench):
    bench.motors["A"]._on_motor(MotorStatus(connected=True, egu="mm", prec=3))
    bench.motors["D"]._on_motor(MotorStatus(connected=True, egu="deg", prec=2))
    await record(bench, SyncRecords.Motor).put("D")
    assert {record(bench, pv).units for pv in SYNC_UNIT_PVS} == {("deg", 2)}
    await record(bench, SyncRecords.Motor).put("Z")  # no such motor: units left as they were
    assert {record(bench, pv).units for pv in SYNC_UNIT_PVS} == {("deg", 2)}


def test_a_disconnected_motor_does_not_blank_the_units(bench):
    binding = bench.motors["A"]
    binding._on_motor(MotorStatus(connected=True, egu="mm", prec=3))
    binding._on_motor(MotorStatus(connected=False))
    assert record(bench, MotorRecords.Position, "A").units == ("mm", 3)


# --- the data section: Proposal, Experiment, Sample, User ------------------------------------
DATA_PVS = {SyncRecords.Proposal: "proposal", SyncRecords.Experiment: "experiment",
            SyncRecords.Sample: "sample", SyncRecords.User: "user"}


def data_target(bench):
    from benchioc.engines.sync import DataTarget

    return DataTarget.from_config(bench.config.data, bench.doc.path.resolve().parent)


@pytest.mark.parametrize("pv", list(DATA_PVS), ids=lambda pv: pv.name)
async def test_a_data_put_is_saved_with_the_comments_and_reaches_the_next_scan(bench, pv):
    key = DATA_PVS[pv]
    comments = [line for line in bench.doc.path.read_text().splitlines()
                if line.lstrip().startswith("#")]
    assert comments
    assert await record(bench, pv).put("P-2026 beam")
    saved = bench.doc.path.read_text()
    assert all(line in saved.splitlines() for line in comments)
    assert getattr(cfg.load(bench.doc.path).config.data, key) == "P-2026 beam"
    assert getattr(bench.sync.controller.data, key) == "P-2026 beam"
    assert record(bench, SyncRecords.Message).value == (
        f"{key} set to P-2026 beam and saved to bench.yaml")


async def test_an_outside_edit_of_the_data_section_reaches_the_next_scan_and_the_records(
        bench):
    from benchioc.records.follower import ConfigFollower

    follower = ConfigFollower(bench)
    doc = cfg.load(bench.doc.path)  # another program (motion-box, an editor)
    doc.raw["data"].update({"sample": "outside sample", "user": "alice", "name": "tomo",
                            "directory": "elsewhere", "embargo_years": 1,
                            "file_mode": "0640", "proposal": "P-7"})
    doc.save()
    follower._stamp = None
    await follower.check()
    target = bench.sync.controller.data
    assert (target.sample, target.user, target.name, target.proposal) == (
        "outside sample", "alice", "tomo", "P-7")
    assert target.directory == bench.doc.path.resolve().parent / "elsewhere"
    assert (target.embargo_years, target.file_mode) == (1, 0o640)
    assert record(bench, SyncRecords.Sample).value == "outside sample"
    assert record(bench, SyncRecords.User).value == "alice"
    assert record(bench, SyncRecords.Proposal).value == "P-7"


async def test_a_data_edit_during_a_scan_waits_for_its_end(bench):
    controller = bench.sync.controller
    before = controller.data
    controller.busy = True
    assert await record(bench, SyncRecords.Sample).put("next sample")
    assert controller.data is before  # the running scan's file keeps what it started with
    controller.busy = False
    await record(bench, SyncRecords.Run).put(1)  # (the fake's run ends at once)
    assert controller.data.sample == "next sample"


async def test_dark_and_flat_frames_reach_the_controller(bench):
    assert await record(bench, SyncRecords.DarkFrames).put(5)
    assert await record(bench, SyncRecords.FlatFrames).put(7)
    assert bench.sync.controller.calls[-2:] == [
        ("update", {"dark_frames": 5}), ("update", {"flat_frames": 7})]
