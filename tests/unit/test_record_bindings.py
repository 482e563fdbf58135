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

    def get(self) -> Any:
        return self.value

    def set(self, value: Any, severity: int = alarm.NO_ALARM, alarm: int = 0) -> None:
        self.value, self.severity = value, severity

    def set_alarm(self, severity: int, _status: int) -> None:
        self.severity = severity

    async def put(self, value: Any) -> bool:
        """A client's put: refused by validate, or taken and handed to on_update."""
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

    def __init__(self, refuse: str | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.refuse = refuse
        self.busy = False

    def update(self, **changes: Any) -> Any:
        self.calls.append(("update", changes))
        return self.preview()

    def preview(self) -> Any:
        from benchioc.engines.sync import Preview

        return Preview(ok=True, velocity=1.0, run_up=0.1, estimated_time=2.0)

    async def run(self) -> None:
        self.calls.append(("run", None))
        if self.refuse:
            raise ScanRefused(self.refuse)

    def abort(self) -> None:
        self.calls.append(("abort", None))


@pytest.fixture
def bench(tmp_path, monkeypatch):
    """The records of configs/bench.yaml over fake records; motors' homing faked."""
    for module in (bench_module, motor_module, sync_module):
        monkeypatch.setattr(module, "set_put_disabled",
                            lambda record, disabled: setattr(record, "put_disabled", disabled),
                            raising=False)
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
    bench.sync.controller.refuse = "motor A is homing; wait for it to end or abort it"
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
