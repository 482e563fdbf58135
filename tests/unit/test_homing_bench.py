"""MotorHoming, BenchHoming and MotorStatusFeed on fake motors (the simulated bench's
MotorSim) and a virtual clock."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from fakemotor import FakeMotor, FakePhysics, run_virtual

from benchioc.engines.homing import (
    BenchHoming,
    BenchUpdate,
    HomingBusy,
    HomingSettings,
    HomingState,
    MotorHoming,
)
from benchioc.engines.motormodel import (
    Direction,
    MotorDisconnected,
    MotorStatus,
    MotorStatusFeed,
    MotorTimeout,
    limit_order,
)

HI = Direction.HI


def make_settings() -> HomingSettings:
    return HomingSettings(lo_lim=-40.0, hi_lim=40.0, center=0.0, tolerance=0.5)


def bench_of(count: int, max_parallel: int = 0) -> tuple[dict[str, FakeMotor], BenchHoming]:
    motors = {name: FakeMotor(name) for name in "ABCDE"[:count]}
    homings = {name: MotorHoming(motor, make_settings) for name, motor in motors.items()}
    return motors, BenchHoming(homings, max_parallel=max_parallel)


def watch_parallelism(bench: BenchHoming) -> list[int]:
    """Number of motors busy at each update, to see how many home at once."""
    counts: list[int] = []
    for homing in bench.motors.values():
        homing.subscribe(lambda _u: counts.append(sum(m.busy for m in bench.motors.values())))
    return counts


# --- MotorHoming ---------------------------------------------------------------------------
def test_a_second_home_while_homing_is_refused_not_queued() -> None:
    async def scenario() -> None:
        motor = FakeMotor()
        homing = MotorHoming(motor, make_settings)
        first = asyncio.create_task(homing.home(HI))
        await motor.wait_for(lambda s: not s.dmov, 5, "the jog")
        assert homing.busy
        with pytest.raises(HomingBusy, match="^motor A is already homing; abort it first$"):
            await homing.home(Direction.LO)
        assert await first is True
        # one homing: the seek and the slow approach, both forward; nothing backward
        assert motor.calls.count("JOGF=1") == 2 and "JOGR=1" not in motor.calls
        assert not homing.busy

    run_virtual(scenario())


def test_success_sets_last_homed_and_busy_goes_back_to_false_with_an_update() -> None:
    async def scenario() -> None:
        homing = MotorHoming(FakeMotor(), make_settings)
        busy_seen: list[bool] = []
        homing.subscribe(lambda _u: busy_seen.append(homing.busy))
        before = datetime.now().astimezone()
        assert await homing.home(HI) is True
        assert homing.state is HomingState.HOMED and homing.progress == 100.0
        assert homing.last_homed is not None and homing.last_homed >= before
        assert busy_seen[0] is True and busy_seen[-1] is False

    run_virtual(scenario())


def test_failure_returns_false_and_keeps_last_homed_unset() -> None:
    async def scenario() -> None:
        motor = FakeMotor()
        motor.faults.at_position.append(("amp", 20.0))
        homing = MotorHoming(motor, make_settings)
        assert await homing.home(HI) is False
        assert homing.state is HomingState.FAILED
        assert "amplifier fault" in homing.message
        assert homing.last_homed is None and not homing.busy

    run_virtual(scenario())


def test_abort_when_idle_does_nothing() -> None:
    async def scenario() -> None:
        homing = MotorHoming(FakeMotor(), make_settings)
        homing.abort()
        assert homing.state is HomingState.NOT_HOMED and not homing.busy

    run_virtual(scenario())


def test_a_settings_provider_that_fails_is_a_failed_homing_in_words() -> None:
    def broken() -> HomingSettings:
        raise ValueError("bench.yaml: motors.A.hi_lim: must be a number")

    async def scenario() -> None:
        motor = FakeMotor()
        homing = MotorHoming(motor, broken)
        assert await homing.home(HI) is False
        assert homing.state is HomingState.FAILED
        assert homing.message == "A: cannot home: bench.yaml: motors.A.hi_lim: must be a number"
        assert motor.calls == [] and not homing.busy

    run_virtual(scenario())


def test_cancelling_the_caller_stops_the_motor_and_propagates() -> None:
    async def scenario() -> None:
        motor = FakeMotor()
        homing = MotorHoming(motor, make_settings)
        task = asyncio.create_task(homing.home(HI))
        await motor.wait_for(lambda s: s.rbv > 20, 30, "the motor to pass 20")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert homing.state is HomingState.ABORTED and not homing.busy
        assert "STOP=1" in motor.calls
        assert (motor.dllm, motor.dhlm) == (-40.0, 40.0)

    run_virtual(scenario())


def test_restore_takes_over_the_saved_state() -> None:
    async def scenario() -> None:
        homing = MotorHoming(FakeMotor(), make_settings)
        homing.restore(homed=True, last_homed="2024-05-01T12:03:05+03:00")
        assert homing.state is HomingState.HOMED
        assert homing.last_homed == datetime.fromisoformat("2024-05-01T12:03:05+03:00")
        homing.restore(homed=False, last_homed="yesterday")
        assert homing.state is HomingState.NOT_HOMED
        assert homing.last_homed is not None  # a bad time keeps the one known

    run_virtual(scenario())


# --- BenchHoming ---------------------------------------------------------------------------
def test_home_all_homes_every_motor_at_once() -> None:
    async def scenario() -> None:
        motors, bench = bench_of(3)
        counts = watch_parallelism(bench)
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await bench.home_all(HI) == {"A": True, "B": True, "C": True}
        elapsed = loop.time() - start
        assert max(counts) == 3
        assert elapsed < 10.0  # one motor's time (~9.3 s), not three
        assert bench.all_homed and not bench.busy
        assert bench.message == "all 3 motors homed high"

    run_virtual(scenario())


def test_home_all_respects_max_parallel() -> None:
    async def scenario() -> None:
        motors, bench = bench_of(3, max_parallel=1)
        counts = watch_parallelism(bench)
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert all((await bench.home_all(HI)).values())
        assert max(counts) == 1
        assert loop.time() - start > 24.0  # three motors one after the other

    run_virtual(scenario())


def test_home_all_summary_names_the_motor_that_failed_and_why() -> None:
    async def scenario() -> None:
        motors, bench = bench_of(3)
        motors["B"].faults.at_position.append(("comm", 20.0))
        updates: list[BenchUpdate] = []
        bench.subscribe(updates.append)
        assert await bench.home_all(HI) == {"A": True, "B": False, "C": True}
        assert bench.message.startswith(
            "2 of 3 motors homed high; B: controller communication error"
        )
        assert not bench.all_homed
        assert updates[-1] == BenchUpdate(busy=False, all_homed=False, message=bench.message)
        assert any(update.busy for update in updates)

    run_virtual(scenario())


def test_abort_all_stops_the_running_and_never_starts_the_queued() -> None:
    async def scenario() -> None:
        motors, bench = bench_of(3, max_parallel=1)
        task = asyncio.create_task(bench.home_all(HI))
        await motors["A"].wait_for(lambda s: s.rbv > 20, 30, "A to pass 20")
        bench.abort_all()
        assert await task == {"A": False, "B": False, "C": False}
        assert bench.motors["A"].state is HomingState.ABORTED
        assert motors["B"].calls == [] and motors["C"].calls == []
        assert "B: not started (aborted)" in bench.message
        assert not bench.busy

    run_virtual(scenario())


def test_home_all_is_refused_while_a_motor_is_homing() -> None:
    async def scenario() -> None:
        motors, bench = bench_of(2)
        single = asyncio.create_task(bench.motors["B"].home(HI))
        await motors["B"].wait_for(lambda s: not s.dmov, 5, "B to move")
        assert bench.busy
        with pytest.raises(HomingBusy, match=r"homing already running \(B\)"):
            await bench.home_all(HI)
        assert motors["A"].calls == []
        assert await single is True

    run_virtual(scenario())


def test_cancelling_home_all_stops_every_motor_and_restores_limits() -> None:
    async def scenario() -> None:
        motors, bench = bench_of(2)
        task = asyncio.create_task(bench.home_all(HI))
        await motors["A"].wait_for(lambda s: s.rbv > 20, 30, "A to pass 20")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for motor in motors.values():
            assert "STOP=1" in motor.calls
            assert (motor.dllm, motor.dhlm) == (-40.0, 40.0)
        assert not bench.busy

    run_virtual(scenario())


def test_home_all_with_no_motors_says_so() -> None:
    async def scenario() -> None:
        bench = BenchHoming({})
        assert await bench.home_all(HI) == {}
        assert bench.message == "no motors configured: nothing to home"
        assert not bench.all_homed

    run_virtual(scenario())


def test_a_slow_short_range_motor_homes_low() -> None:
    async def scenario() -> None:
        physics = FakePhysics(low_switch=-12.0, high_switch=11.5, start=2.0, jvel=2.0,
                              velo=2.0, dllm=-10.0, dhlm=10.0, offset=0.0)
        motor = FakeMotor("D", physics)
        settings = HomingSettings(lo_lim=-10.0, hi_lim=10.0, center=0.0, tolerance=0.5)
        homing = MotorHoming(motor, lambda: settings)
        assert await homing.home(Direction.LO) is True, homing.message
        assert motor.status.rbv == pytest.approx(0.0, abs=1e-3)

    run_virtual(scenario())


# --- MotorStatusFeed and limit_order ------------------------------------------------------
def connected(**fields) -> MotorStatus:
    return MotorStatus(connected=True, **fields)


def test_feed_returns_at_once_when_the_current_status_already_holds() -> None:
    async def scenario() -> None:
        feed = MotorStatusFeed("A", connected(rbv=5.0))
        status = await feed.wait_for(lambda s: s.rbv == 5.0, 0.0, "rbv 5")
        assert status.rbv == 5.0

    run_virtual(scenario())


def test_feed_sees_an_update_published_after_the_wait_began() -> None:
    async def scenario() -> None:
        feed = MotorStatusFeed("A", connected(rbv=0.0))
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, feed.publish, connected(rbv=1.0))
        loop.call_later(1.0, feed.publish, connected(rbv=0.0))  # gone at once: still seen
        status = await feed.wait_for(lambda s: s.rbv == 1.0, 5.0, "rbv 1")
        assert status.rbv == 1.0 and loop.time() == pytest.approx(1.0)

    run_virtual(scenario())


def test_feed_timeout_names_what_was_awaited() -> None:
    async def scenario() -> None:
        feed = MotorStatusFeed("A", connected())
        with pytest.raises(MotorTimeout, match="^A: timed out after 2.5 s waiting for DMOV=1$"):
            await feed.wait_for(lambda s: False, 2.5, "DMOV=1")

    run_virtual(scenario())


def test_feed_disconnect_fails_the_wait_at_once() -> None:
    async def scenario() -> None:
        feed = MotorStatusFeed("A", connected())
        asyncio.get_running_loop().call_later(1.0, feed.publish, MotorStatus(connected=False))
        with pytest.raises(MotorDisconnected, match="disconnected while waiting for the switch"):
            await feed.wait_for(lambda s: s.hls, 30.0, "the switch")
        with pytest.raises(MotorDisconnected):
            await feed.wait_for(lambda s: s.hls, 30.0, "the switch")

    run_virtual(scenario())


@pytest.mark.parametrize(
    ("current", "new", "order"),
    [
        ((-40, 40), (0, 0), ("low", "high")),
        ((5, 30), (0, 0), ("low", "high")),
        ((-30, -5), (0, 0), ("high", "low")),
        ((0, 0), (10, 30), ("high", "low")),
        ((0, 0), (-30, -10), ("low", "high")),
        ((-3.5, -3.5), (-40, 40), ("low", "high")),
    ],
)
def test_limit_order_never_inverts_the_range(current, new, order) -> None:
    assert limit_order(current, new) == order
    low, high = current
    for which in order:
        low, high = (new[0], high) if which == "low" else (low, new[1])
        assert low <= high
