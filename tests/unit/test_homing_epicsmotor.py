"""EpicsMotor over a stand-in for aioca: monitors, connection, puts and their order."""

from __future__ import annotations

from typing import Any

import pytest
from aioca import CANothing
from epicscorelibs.ca import cadef

from benchioc.clients import motor as motor_module
from benchioc.clients.motor import MONITORED_FIELDS, WRITE_ONLY_FIELDS, EpicsMotor
from benchioc.engines.motormodel import (
    Direction,
    MotorDisconnected,
    MotorError,
    MotorStatus,
    MotorTimeout,
)

ROOT = "SIM:A"
RECORD = {
    "RBV": 1.5, "VAL": 1.5, "DMOV": 1, "HLS": 0, "LLS": 0, "MSTA": 2.0 + 256, "SPMG": 3,
    "CNEN": 1, "VELO": 10.0, "JVEL": 5.0, "ACCL": 0.2, "VMAX": 20.0, "HLM": 40.0,
    "LLM": -40.0, "DHLM": 40.0, "DLLM": -40.0, "EGU": "mm", "PREC": 3,
    "OFF": 0.0, "DIR": 0, "MRES": 0.001, "DRBV": 1.5, "HVEL": 2.0,
}


class FakeCA:
    """Just enough of aioca for EpicsMotor: values by PV, monitors, a put log."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.values: dict[str, Any] = {}
        self.monitors: dict[str, list] = {}
        self.puts: list[tuple[str, Any, bool]] = []
        self.failing: dict[str, int] = {}  # pv -> CA error code of its puts
        monkeypatch.setattr(motor_module, "camonitor", self.camonitor)
        monkeypatch.setattr(motor_module, "caput", self.caput)
        monkeypatch.setattr(motor_module, "connect", self.connect)
        self.opened: list[str] = []

    def serve(self, root: str = ROOT, skip: tuple[str, ...] = ()) -> None:
        for field, value in RECORD.items():
            if field not in skip:
                self.update(f"{root}.{field}", value)

    def update(self, pv: str, value: Any) -> None:
        self.values[pv] = value
        for callback in self.monitors.get(pv, []):
            callback(value)

    def disconnect(self, pv: str) -> None:
        for callback in self.monitors.get(pv, []):
            callback(CANothing(pv, cadef.ECA_DISCONN))

    async def connect(self, pvs: list[str], wait: bool = True, **_kwargs) -> None:
        self.opened += pvs

    def camonitor(self, pv: str, callback, notify_disconnect: bool = False):
        assert notify_disconnect, "disconnections must reach the motor"
        self.monitors.setdefault(pv, []).append(callback)
        if pv in self.values:
            callback(self.values[pv])
        return _Subscription(self.monitors[pv], callback)

    async def caput(self, pv: str, value: Any, wait: bool = False, timeout: float = 5.0):
        self.puts.append((pv, value, wait))
        if pv in self.failing:
            raise CANothing(pv, self.failing[pv])
        self.update(pv, value)

    def put_names(self) -> list[str]:
        return [f"{pv.removeprefix(ROOT + '.')}={value:g}" for pv, value, _ in self.puts]


class _Subscription:
    def __init__(self, callbacks: list, callback) -> None:
        self.callbacks, self.callback = callbacks, callback

    def close(self) -> None:
        self.callbacks.remove(self.callback)


@pytest.fixture
def ca(monkeypatch: pytest.MonkeyPatch) -> FakeCA:
    return FakeCA(monkeypatch)


async def connected_motor(ca: FakeCA, seen: list[MotorStatus] | None = None) -> EpicsMotor:
    ca.serve()
    motor = EpicsMotor("A", ROOT, on_change=seen.append if seen is not None else None)
    await motor.connect(1.0)
    return motor


async def test_connect_builds_the_status_from_every_monitored_field(ca: FakeCA) -> None:
    seen: list[MotorStatus] = []
    motor = await connected_motor(ca, seen)
    status = motor.status
    assert status.connected and seen[-1] == status
    assert (status.rbv, status.dmov, status.spmg, status.cnen) == (1.5, True, 3, True)
    assert status.msta == 258 and status.done_bit and not status.problem
    assert (status.egu, status.prec, status.jvel) == ("mm", 3, 5.0)
    assert set(ca.monitors) == {f"{ROOT}.{field}" for field in MONITORED_FIELDS}


async def test_connect_opens_the_channels_it_only_writes(ca: FakeCA) -> None:
    await connected_motor(ca)
    assert ca.opened == [f"{ROOT}.{field}" for field in WRITE_ONLY_FIELDS]


async def test_connect_names_the_fields_that_did_not_connect(ca: FakeCA) -> None:
    ca.serve(skip=("CNEN", "VMAX"))
    motor = EpicsMotor("A", ROOT)
    with pytest.raises(MotorDisconnected) as caught:
        await motor.connect(0.05)
    assert str(caught.value) == (
        "A: 2 field(s) of motor record SIM:A not connected within 0.05 s: SIM:A.CNEN, SIM:A.VMAX"
    )
    ca.update(f"{ROOT}.CNEN", 1)
    ca.update(f"{ROOT}.VMAX", 20.0)  # the monitors stayed: it connects when they appear
    await motor.connect(0.05)
    assert motor.status.connected


async def test_connect_to_a_missing_record_says_it_was_not_found(ca: FakeCA) -> None:
    motor = EpicsMotor("A", "NOPE:A")
    with pytest.raises(MotorDisconnected, match="^A: motor record NOPE:A not found: none of its"
                                                " 23 monitored fields connected within 0.05 s$"):
        await motor.connect(0.05)
    assert motor.status.connected is False


async def test_a_field_disconnecting_marks_the_motor_disconnected_until_it_returns(
    ca: FakeCA,
) -> None:
    seen: list[MotorStatus] = []
    motor = await connected_motor(ca, seen)
    ca.disconnect(f"{ROOT}.RBV")
    assert not motor.status.connected and not seen[-1].connected
    with pytest.raises(MotorDisconnected):
        await motor.wait_for(lambda s: s.hls, 1.0, "the switch")
    with pytest.raises(MotorDisconnected, match="not connected; cannot write SIM:A.STOP"):
        await motor.stop()
    assert ca.puts == []
    ca.update(f"{ROOT}.RBV", 2.0)  # CA reconnects and the monitor sends the value again
    assert motor.status.connected and motor.status.rbv == 2.0


async def test_wait_for_sees_a_monitor_update(ca: FakeCA) -> None:
    motor = await connected_motor(ca)
    await motor.jog(Direction.HI)
    ca.update(f"{ROOT}.HLS", 1)
    status = await motor.wait_for(lambda s: s.hls, 1.0, "HLS")
    assert status.hls


async def test_jog_and_stop_do_not_wait_move_does(ca: FakeCA) -> None:
    motor = await connected_motor(ca)
    await motor.jog(Direction.HI)
    await motor.jog(Direction.LO)
    await motor.stop()
    await motor.move(3.0, timeout=7.0)
    assert ca.puts == [
        (f"{ROOT}.JOGF", 1, False),
        (f"{ROOT}.JOGR", 1, False),
        (f"{ROOT}.STOP", 1, False),
        (f"{ROOT}.VAL", 3.0, True),
    ]


async def test_a_move_that_does_not_complete_is_a_timeout_in_words(ca: FakeCA) -> None:
    motor = await connected_motor(ca)
    ca.failing[f"{ROOT}.VAL"] = cadef.ECA_TIMEOUT
    with pytest.raises(MotorTimeout, match=r"^A: write SIM:A.VAL=3.0 not completed within 7 s$"):
        await motor.move(3.0, timeout=7.0)


async def test_set_position_is_set_val_use(ca: FakeCA) -> None:
    motor = await connected_motor(ca)
    await motor.sync()
    await motor.set_position(40.5)
    assert ca.put_names() == ["SYNC=1", "SET=1", "VAL=40.5", "SET=0"]
    assert all(wait for _, _, wait in ca.puts)


async def test_set_position_goes_back_to_use_when_the_val_write_fails(ca: FakeCA) -> None:
    motor = await connected_motor(ca)
    ca.failing[f"{ROOT}.VAL"] = cadef.ECA_DISCONN
    with pytest.raises(MotorError, match="write SIM:A.VAL=40.5 failed"):
        await motor.set_position(40.5)
    assert ca.put_names() == ["SET=1", "VAL=40.5", "SET=0"]


async def test_set_position_says_when_set_may_be_left_at_set(ca: FakeCA) -> None:
    motor = await connected_motor(ca)
    ca.failing[f"{ROOT}.SET"] = cadef.ECA_DISCONN
    with pytest.raises(MotorError, match="SIM:A.SET may be left at Set: set it to Use"):
        await motor.set_position(40.5)


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        ((-40.0, 40.0), (0.0, 0.0), ["DLLM=0", "DHLM=0"]),
        ((-30.0, -5.0), (0.0, 0.0), ["DHLM=0", "DLLM=0"]),
        ((0.0, 0.0), (10.0, 30.0), ["DHLM=30", "DLLM=10"]),
    ],
)
async def test_dial_limits_are_written_in_an_order_that_never_inverts(
    ca: FakeCA, current, new, expected
) -> None:
    motor = await connected_motor(ca)
    ca.update(f"{ROOT}.DLLM", current[0])  # the order follows the monitored limits
    ca.update(f"{ROOT}.DHLM", current[1])
    await motor.set_dial_limits(*new)
    assert ca.put_names() == expected


async def test_user_limits_use_hlm_and_llm(ca: FakeCA) -> None:
    motor = await connected_motor(ca)
    ca.update(f"{ROOT}.LLM", -3.0)
    ca.update(f"{ROOT}.HLM", -3.0)
    await motor.set_user_limits(-40.0, 40.0)
    assert ca.put_names() == ["LLM=-40", "HLM=40"]


async def test_limits_are_plain_puts_confirmed_by_their_monitors(ca: FakeCA) -> None:
    """A put-callback to a limit field completes only at DMOV=1: never on an axis that
    ignores STOP, whose soft limits the clean-up must still put back."""
    motor = await connected_motor(ca)
    await motor.set_dial_limits(-41.0, 41.0)
    assert [wait for pv, _, wait in ca.puts if pv.endswith(("DLLM", "DHLM"))] == [False, False]
    assert (motor.status.dllm, motor.status.dhlm) == (-41.0, 41.0)


async def test_close_stops_monitoring_and_fails_waiters(ca: FakeCA) -> None:
    seen: list[MotorStatus] = []
    motor = await connected_motor(ca, seen)
    count = len(seen)
    motor.close()
    assert all(not callbacks for callbacks in ca.monitors.values())
    assert not motor.status.connected
    assert len(seen) == count  # on_change is not called after close
    with pytest.raises(MotorDisconnected):
        await motor.wait_for(lambda s: s.hls, 1.0, "HLS")


async def test_an_update_that_changes_nothing_publishes_nothing(ca: FakeCA) -> None:
    """Each monitor update converts its own field only; a re-post of the same value
    neither wakes the waiters nor the mirror records."""
    seen: list[MotorStatus] = []
    motor = await connected_motor(ca, seen)
    count = len(seen)
    ca.update(f"{ROOT}.RBV", 1.5)
    assert len(seen) == count
    ca.update(f"{ROOT}.RBV", 1.75)
    assert len(seen) == count + 1 and motor.status.rbv == 1.75
    assert motor.status.velo == 10.0 and motor.status.connected
