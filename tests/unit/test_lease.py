"""One owner per motor: the leases homing and scans share."""

from __future__ import annotations

import pytest

from benchioc.engines.homing import BenchHoming, HomingBusy, MotorHoming
from benchioc.engines.lease import HOMING, Holder, MotorInUse, MotorLeases
from benchioc.engines.motormodel import Direction

SCAN = Holder("a scan", "is being scanned", "abort the scan first")


def test_a_held_motor_is_refused_naming_the_holder_and_the_way_out():
    leases = MotorLeases()
    with leases.take("A", SCAN):
        with pytest.raises(MotorInUse, match="^A is being scanned; abort the scan first$"):
            leases.take("A", HOMING)
        assert leases.holder("A") is SCAN and not leases.idle
        leases.take("B", HOMING).release()  # another motor is free
    assert leases.idle and leases.holder("A") is None


def test_release_listeners_hear_every_release_once():
    leases = MotorLeases()
    heard: list[bool] = []
    leases.subscribe_release(lambda: heard.append(leases.idle))
    lease = leases.take("A", SCAN)
    lease.release()
    lease.release()  # a second release changes nothing
    assert heard == [True]


async def test_homing_a_motor_a_scan_holds_is_refused_before_anything_moves():
    leases = MotorLeases()

    class NeverTouched:
        name = "A"

    homing = MotorHoming(NeverTouched(), lambda: pytest.fail("settings read"),  # type: ignore[arg-type]
                         leases=leases)
    with leases.take("A", SCAN):
        with pytest.raises(HomingBusy, match="A: homing refused: a scan is moving this motor"):
            await homing.home(Direction.HI)
        bench = BenchHoming({"A": homing}, leases=leases)
        with pytest.raises(HomingBusy, match="home all refused: a scan is moving motor A"):
            await bench.home_all(Direction.LO)
    assert leases.idle
