"""motion-box's own homing path (no IOC) on fake motors and a virtual clock."""

from __future__ import annotations

import asyncio
import io
import sys
import types

import pytest

from benchioc import config
from benchioc.tools.motionbox.display import ProgressDisplay
from benchioc.tools.motionbox.homing import HomeRequest, home_motors

fakemotor = pytest.importorskip("fakemotor")  # the homing engine's fake motor record

SEED = {"general": {"tolerance": 0.5},
        "motors": {"A": {"pv_root": "FAKE:A", "lo_lim": -40, "hi_lim": 40, "center": 0},
                   "B": {"pv_root": "FAKE:B", "lo_lim": -20, "hi_lim": 20, "center": 1}}}


class ConnectableFake(fakemotor.FakeMotor):
    """The fake motor behind motor.EpicsMotor's constructor, connect() and close()."""

    def __init__(self, name: str, pv_root: str, on_change) -> None:
        super().__init__(name)
        self.pv_root = pv_root
        self.closed = False

    async def connect(self, timeout: float) -> None:
        if pv_root_missing(self.pv_root):
            await asyncio.sleep(timeout)
            raise TimeoutError(f"{self.pv_root} did not connect within {timeout:g} s")

    def close(self) -> None:
        self.closed = True


def pv_root_missing(pv_root: str) -> bool:
    return pv_root.startswith("NOPE")


@pytest.fixture
def fakes(monkeypatch) -> dict[str, ConnectableFake]:
    made: dict[str, ConnectableFake] = {}

    def epics_motor(name: str, pv_root: str, on_change) -> ConnectableFake:
        made[name] = ConnectableFake(name, pv_root, on_change)
        return made[name]

    module = types.ModuleType("benchioc.clients.motor")
    module.EpicsMotor = epics_motor
    monkeypatch.setitem(sys.modules, "benchioc.clients.motor", module)
    return made


def request_for(tmp_path, names, direction="hi", motors=None) -> HomeRequest:
    path = tmp_path / "motion_box.json"
    data = {"general": SEED["general"], "motors": motors or SEED["motors"]}
    path.write_text(config.json.dumps(data))
    return HomeRequest(document=config.load(path), names=names, direction=direction,
                       every_motor=len(names) > 1, direct=True, connect_timeout=2)


def test_homes_every_motor_and_shows_each_phase(tmp_path, fakes):
    out = io.StringIO()
    display = ProgressDisplay(["A", "B"], out, tty=False)
    outcomes = fakemotor.run_virtual(
        home_motors(request_for(tmp_path, ["A", "B"]), display))
    assert {n: o.homed for n, o in outcomes.items()} == {"A": True, "B": True}
    lines = out.getvalue().splitlines()
    assert lines[0] == "homing A, B hi directly over CA"
    for motor in "AB":
        states = [line.split()[1] for line in lines if line.startswith(f"{motor}: ")]
        assert states[0] == "Seeking" and states[-1] == "Homed"
        assert "Centering" in states
    assert fakes["A"].rbv == pytest.approx(0, abs=0.01)
    assert fakes["B"].rbv == pytest.approx(1, abs=0.01)
    assert all(fake.closed for fake in fakes.values())


def test_a_motor_that_does_not_connect_fails_with_the_reason(tmp_path, fakes):
    motors = {**SEED["motors"], "B": {**SEED["motors"]["B"], "pv_root": "NOPE:B"}}
    display = ProgressDisplay(["A", "B"], io.StringIO(), tty=False)
    outcomes = fakemotor.run_virtual(
        home_motors(request_for(tmp_path, ["A", "B"], "lo", motors), display))
    assert outcomes["A"].homed
    assert not outcomes["B"].homed
    assert outcomes["B"].reason == "not connected: NOPE:B did not connect within 2 s"


def test_cancelling_stops_the_motor_and_closes_it(tmp_path, fakes):
    display = ProgressDisplay(["A"], io.StringIO(), tty=False)

    async def home_then_interrupt() -> None:
        task = asyncio.ensure_future(
            home_motors(request_for(tmp_path, ["A"]), display))
        while display.row("A").state != "Seeking":  # noqa: ASYNC110 - virtual time
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # well into the jog
        task.cancel()  # what Ctrl-C does to asyncio.run's main task
        with pytest.raises(asyncio.CancelledError):
            await task

    fakemotor.run_virtual(home_then_interrupt())
    fake = fakes["A"]
    # STOP was sent (the record decelerates on its own) and the soft limits are back
    assert fake.mode in ("stopping", "idle"), fake.calls
    assert any("stop" in call.lower() for call in fake.calls), fake.calls
    assert (fake.dllm, fake.dhlm) == (-40, 40), fake.limit_history  # not left disabled
    assert fake.closed
