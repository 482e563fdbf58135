"""The homing procedure against a fake motor record (the simulated bench's MotorSim) on
a virtual clock."""

from __future__ import annotations

import asyncio

import pytest
from fakemotor import FakeMotor, FakePhysics, run_virtual

from benchioc.engines.homing import (
    HomingSettings,
    HomingState,
    HomingUpdate,
    MotorHoming,
    home,
)
from benchioc.engines.motormodel import Direction, MotorError
from benchioc.facts.motorrecord import Msta, Spmg

HI, LO = Direction.HI, Direction.LO
SWITCH_READS = {HI: 40.5, LO: -40.5}  # hi_lim + tolerance, lo_lim - tolerance
ORIGINAL_DIAL_LIMITS = (-40.0, 40.0)  # FakePhysics dllm, dhlm


def make_settings(**overrides) -> HomingSettings:
    values = dict(lo_lim=-40.0, hi_lim=40.0, center=0.0, tolerance=0.5)
    values.update(overrides)
    return HomingSettings(**values)


class Recorder:
    """Collects the updates of one homing run."""

    def __init__(self) -> None:
        self.updates: list[HomingUpdate] = []

    def __call__(self, update: HomingUpdate) -> None:
        self.updates.append(update)

    @property
    def states(self) -> list[HomingState]:
        states: list[HomingState] = []
        for update in self.updates:
            if not states or states[-1] is not update.state:
                states.append(update.state)
        return states

    @property
    def last(self) -> HomingUpdate:
        return self.updates[-1]


async def run_home(
    motor: FakeMotor, direction: Direction = HI, settings: HomingSettings | None = None
) -> tuple[Recorder, MotorError | None]:
    recorder = Recorder()
    try:
        await home(motor, direction, settings or make_settings(), recorder)
    except MotorError as error:
        return recorder, error
    return recorder, None


async def wait_stopped(motor: FakeMotor) -> None:
    """The motor has come to rest (DMOV=1 and DONE) and the physics task ended."""
    await motor.wait_for(lambda s: s.dmov and s.done_bit, 30, "the motor to come to rest")
    assert motor.mode == "idle"


# --- success -----------------------------------------------------------------------------
@pytest.mark.parametrize("direction", [HI, LO])
def test_homing_calibrates_the_settled_switch_position(direction: Direction) -> None:
    async def scenario() -> None:
        motor = FakeMotor()
        switch_dials: list[float] = []
        motor.hooks["SYNC"] = lambda: switch_dials.append(motor.dial)
        recorder, error = await run_home(motor, direction)
        assert error is None, error
        assert recorder.last.state is HomingState.HOMED
        # The position the motor settled at on the switch now reads hi_lim + tolerance
        # (lo_lim - tolerance): the calibration used the settled readback, not VAL.
        (switch_dial,) = switch_dials
        assert motor.user(switch_dial) == pytest.approx(SWITCH_READS[direction], abs=1e-9)
        switch = motor.p.high_switch if direction is HI else motor.p.low_switch
        overshoot = abs(switch_dial - switch)
        # the final approach is slow, so the overshoot is small, but it is there
        assert overshoot > 1e-3, "the fake must overshoot, or stale VAL would go unnoticed"
        assert motor.status.rbv == pytest.approx(0.0, abs=1e-3)
        assert (motor.status.llm, motor.status.hlm) == pytest.approx((-40.0, 40.0))
        assert motor.limit_violations == []

    run_virtual(scenario())


def test_calibration_does_not_depend_on_the_jog_speed() -> None:
    """The sim stops past the switch by a distance that grows with speed (as a real
    stage does: speed x 0.04 s); the calibration is taken after the slow second approach,
    so homing at 5, 10 or 20 mm/s puts the switch at the same dial position."""

    async def home_at(jvel: float) -> tuple[float, float]:
        motor = FakeMotor(physics=FakePhysics(jvel=jvel))
        first_stops: list[float] = []
        calibrated: list[float] = []
        # the first VAL put is the back-off: the motor is where the fast jog left it
        motor.hooks["VAL"] = lambda: first_stops.append(motor.dial)
        motor.hooks["SYNC"] = lambda: calibrated.append(motor.dial)
        _, error = await run_home(motor, HI, make_settings(creep_speed=1.0))
        assert error is None, error
        return first_stops[0], calibrated[0]

    async def scenario() -> None:
        stops = [await home_at(jvel) for jvel in (5.0, 10.0, 20.0)]
        first = [stop for stop, _ in stops]
        final = [dial for _, dial in stops]
        assert max(first) - min(first) > 0.5  # at jog speed the stop moves with the speed
        # after the creep it does not: the same readback, to the motor step (the sim sees
        # the trip where it happens; over CA a readback period adds creep x period, see
        # tests/integration/test_homing_speed_ca.py)
        assert max(final) - min(final) <= FakePhysics().mres + 1e-9

    run_virtual(scenario())


def test_homing_backs_off_and_approaches_again_at_the_creep_speed() -> None:
    async def scenario() -> None:
        motor = FakeMotor()
        recorder, error = await run_home(motor)
        assert error is None, error
        jog_speeds = [call for call in motor.calls if call.startswith("JVEL=")]
        assert jog_speeds == ["JVEL=1", "JVEL=10"]  # a tenth of JVEL, then JVEL back
        assert [c for c in motor.calls if c.startswith("JOG")] == ["JOGF=1", "JOGF=1"]
        messages = [update.message for update in recorder.updates]
        assert any(m.startswith("A: backing off the high limit switch to") for m in messages)
        assert "A: approaching the high limit switch at 1 mm/s" in messages

    run_virtual(scenario())


def backoff_moves(motor: FakeMotor) -> list[str]:
    first_jog = motor.calls.index("JOGF=1")
    creep = motor.calls.index("JVEL=1")
    return [c for c in motor.calls[first_jog:creep] if c.startswith("VAL=")]


def test_backing_off_doubles_until_the_switch_releases() -> None:
    """A switch with hysteresis releases only well back from where it tripped: a
    back-off too short to leave it is doubled until it releases (0.01, 0.02, 0.04, 0.08
    mm for 0.05 mm of hysteresis), and a switch that never does fails in words."""

    async def scenario() -> None:
        motor = FakeMotor(physics=FakePhysics(switch_hysteresis=0.05))
        recorder, error = await run_home(motor, HI, make_settings(backoff=0.01))
        assert error is None, error
        # from the trip (the switch at dial 44, user 47 before calibration)
        assert backoff_moves(motor) == ["VAL=46.99", "VAL=46.98", "VAL=46.96", "VAL=46.92"]
        assert sum("A: off the high limit switch at" in u.message
                   for u in recorder.updates) == 1
        # without hysteresis the switch releases as soon as the axis is back past the
        # trip: one back-off
        motor = FakeMotor()
        _, error = await run_home(motor, HI, make_settings(backoff=0.01))
        assert error is None, error
        assert len(backoff_moves(motor)) == 1
        motor = FakeMotor(physics=FakePhysics(switch_hysteresis=0.05))
        _, error = await run_home(motor, HI, make_settings(backoff=1e-4))
        assert error is not None and "the high limit switch is still active at" in str(error)
        assert "set homing.backoff above the switch's hysteresis" in str(error)

    run_virtual(scenario())


def test_an_abort_while_creeping_restores_the_jog_speed() -> None:
    async def scenario() -> None:
        motor = FakeMotor()
        task = asyncio.ensure_future(run_home(motor))
        await motor.wait_for(lambda s: s.jvel == 1.0 and not s.dmov, 60, "the creep")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert motor.calls[-1] == "JVEL=10" or "JVEL=10" in motor.calls[-4:]
        assert motor.status.jvel == 10.0

    run_virtual(scenario())


def test_fake_motor_punishes_calibrating_from_the_stale_val() -> None:
    """Guard on the fake itself: SET right after DMOV=1 (no settle, no SYNC) is off by
    the overshoot, so the success test above could catch an engine that did that."""

    async def scenario() -> None:
        motor = FakeMotor()
        await motor.set_dial_limits(0, 0)
        await motor.jog(HI)
        await motor.wait_for(lambda s: s.hls and s.dmov, 30, "the switch")
        await motor.set_position(40.5)
        await wait_stopped(motor)
        assert abs(motor.status.rbv - 40.5) > 0.1

    run_virtual(scenario())


def test_progress_rises_to_100_through_the_phases_in_order() -> None:
    async def scenario() -> None:
        recorder, error = await run_home(FakeMotor())
        assert error is None
        progress = [update.progress for update in recorder.updates]
        assert progress == sorted(progress)
        assert progress[-1] == 100.0
        assert len({round(p) for p in progress if 5 <= p <= 60}) >= 10  # seeking moves
        assert recorder.states == [
            HomingState.SEEKING,
            HomingState.CALIBRATING,
            HomingState.CENTERING,
            HomingState.HOMED,
        ]
        messages = [update.message for update in recorder.updates]
        assert "A: seeking the high limit switch at 10 mm/s" in messages
        assert recorder.last.message.startswith("A: homed at ")
        assert recorder.last.message.endswith("now at center 0.000 mm")

    run_virtual(scenario())


def test_homing_takes_the_time_the_travel_needs() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        _, error = await run_home(FakeMotor())
        assert error is None
        # 39 mm at 10 mm/s to the switch (4.0 s with the ramp), 0.08 s stop, back off
        # and 0.5 mm again at 1 mm/s (~1 s), 40.5 mm back at 10 mm/s (4.25 s): ~9.3 s.
        assert 8.0 < loop.time() - start < 10.0

    run_virtual(scenario())


@pytest.mark.parametrize("direction", [HI, LO])
def test_already_on_the_switch_skips_the_fast_jog(direction: Direction) -> None:
    async def scenario() -> None:
        physics = FakePhysics()
        physics.start = physics.high_switch + 0.3 if direction is HI else physics.low_switch - 0.3
        motor = FakeMotor(physics=physics)
        calibrated: list[float] = []
        motor.hooks["SYNC"] = lambda: calibrated.append(motor.dial)
        recorder, error = await run_home(motor, direction)
        assert error is None, error
        # no jog at JVEL: only the slow approach after backing off
        assert motor.calls.count(direction.jog_field + "=1") == 1
        jog = motor.calls.index(direction.jog_field + "=1")
        assert motor.calls[jog - 1] == "JVEL=1"
        assert any("already on the" in update.message for update in recorder.updates)
        switch = physics.high_switch if direction is HI else physics.low_switch
        assert calibrated[0] == pytest.approx(switch, abs=0.05)


    run_virtual(scenario())


def test_soft_limit_writes_never_invert_the_range() -> None:
    async def scenario() -> None:
        physics = FakePhysics(dllm=5.0, dhlm=30.0)  # range entirely above 0
        motor = FakeMotor(physics=physics)
        _, error = await run_home(motor, settings=make_settings(lo_lim=10, hi_lim=30, center=20))
        assert error is None, error
        assert ("dial", 0.0, 0.0) in motor.limit_history
        assert motor.limit_violations == []
        assert (motor.status.llm, motor.status.hlm) == pytest.approx((10.0, 30.0))

    run_virtual(scenario())


# --- abort -------------------------------------------------------------------------------
def run_aborted(trigger: str) -> tuple[FakeMotor, Recorder, MotorHoming]:
    """Home A, abort it at `trigger` (seeking | calibrating | centering), wait for the end."""

    async def scenario() -> tuple[FakeMotor, Recorder, MotorHoming]:
        motor = FakeMotor()
        homing = MotorHoming(motor, make_settings)
        recorder = Recorder()
        homing.subscribe(recorder)
        if trigger == "calibrating":
            motor.hooks["SET"] = homing.abort
        task = asyncio.create_task(homing.home(HI))
        if trigger == "seeking":
            await motor.wait_for(lambda s: s.rbv > 20, 30, "the motor to pass 20")
            homing.abort()
        elif trigger == "centering":
            await motor.wait_for(
                lambda s: homing.state is HomingState.CENTERING and s.rbv < 30, 60, "centering"
            )
            homing.abort()
        assert await task is False
        await wait_stopped(motor)
        return motor, recorder, homing

    return run_virtual(scenario())


@pytest.mark.parametrize("phase", ["seeking", "calibrating"])
def test_abort_stops_the_motor_and_restores_the_soft_limits(phase: str) -> None:
    motor, recorder, homing = run_aborted(phase)
    assert homing.state is HomingState.ABORTED and not homing.busy
    assert recorder.last.state is HomingState.ABORTED
    assert f"homing aborted while {phase}" in recorder.last.message
    assert recorder.last.message.endswith("motor stopped, soft limits restored")
    assert "STOP=1" in motor.calls
    assert (motor.dllm, motor.dhlm) == ORIGINAL_DIAL_LIMITS
    assert motor.limit_violations == []
    assert not motor.set_mode and motor.calls[-1] != "SET=1"


def test_abort_while_calibrating_returns_the_record_to_use() -> None:
    motor, _, _ = run_aborted("calibrating")
    set_index = motor.calls.index("SET=1")
    assert "SET=0" in motor.calls[set_index:]


def test_abort_while_seeking_stops_short_of_the_switch() -> None:
    motor, _, _ = run_aborted("seeking")
    assert not motor.status.hls
    assert 20 < motor.status.rbv < 30  # stopped within its deceleration distance


def test_abort_while_centering_keeps_the_new_soft_limits() -> None:
    motor, recorder, homing = run_aborted("centering")
    assert homing.state is HomingState.ABORTED
    assert "homing aborted while moving to center" in recorder.last.message
    assert "STOP=1" in motor.calls
    assert motor.status.rbv > 1.0  # stopped before the center
    # The calibration is done: the soft limits in force are the new ones, not the old.
    assert (motor.status.llm, motor.status.hlm) == pytest.approx((-40.0, 40.0))
    assert motor.soft_limits_enabled


def test_second_cancel_while_cleaning_up_does_not_cut_it_short() -> None:
    async def scenario() -> None:
        motor = FakeMotor()
        recorder = Recorder()
        task = asyncio.create_task(home(motor, HI, make_settings(), recorder))
        motor.hooks["SET"] = task.cancel
        motor.hooks["DLLM"] = task.cancel  # again, during the restore of the limits
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (motor.dllm, motor.dhlm) == ORIGINAL_DIAL_LIMITS
        assert recorder.last.state is HomingState.ABORTED

    run_virtual(scenario())


# --- faults ------------------------------------------------------------------------------
FAULTS_WHILE_SEEKING = [
    ("stall", "A: motor stalled at 23.000 mm: it moved less than 1.000 mm in 2 s"),
    ("amp", "A: amplifier fault: MSTA PROBLEM bit set (while seeking the high limit switch"),
    ("comm", "A: controller communication error: MSTA COMM_ERR bit set"),
    ("slip", "A: motor slipped or stalled: MSTA SLIP_STALL bit set"),
    ("stop_early", "A: motor stopped at 24.000 mm before reaching the high limit switch"),
]


@pytest.mark.parametrize(("kind", "reason"), FAULTS_WHILE_SEEKING)
def test_fault_while_seeking_fails_stops_and_restores_limits(kind: str, reason: str) -> None:
    async def scenario() -> None:
        motor = FakeMotor()
        motor.faults.at_position.append((kind, 20.0))  # dial 20 reads 23 mm
        recorder, error = await run_home(motor)
        assert error is not None
        assert str(error).startswith(reason)
        assert recorder.last.state is HomingState.FAILED
        assert recorder.last.message.startswith(reason)
        # a controller with a comm error cannot confirm the stop: the message says so
        ending = ("check the axis at the controller" if kind == "comm"
                  else "motor stopped, soft limits restored")
        assert recorder.last.message.endswith(ending)
        assert "STOP=1" in motor.calls
        await wait_stopped(motor)
        assert (motor.dllm, motor.dhlm) == ORIGINAL_DIAL_LIMITS
        assert motor.limit_violations == []

    run_virtual(scenario())


def test_stop_early_is_reported_as_stopping_before_the_switch() -> None:
    async def scenario() -> None:
        motor = FakeMotor()
        motor.faults.at_position.append(("stop_early", 20.0))
        _, error = await run_home(motor)
        assert "before reaching the high limit switch" in str(error)

    run_virtual(scenario())


def test_broken_switch_ends_as_a_stall_at_the_mechanical_end() -> None:
    """The sim's servo stalls against the hard stop and reports it (SLIP_STALL); one that
    does not report it is caught by the stall watch (the "stall" fault above)."""

    async def scenario() -> None:
        motor = FakeMotor()
        motor.faults.broken_switches.add(HI)
        _, error = await run_home(motor)
        end = motor.user(motor.p.high_switch + motor.p.hard_stop)
        assert str(error).startswith(
            "A: motor slipped or stalled: MSTA SLIP_STALL bit set (while seeking the high"
            f" limit switch, at {end:.3f} mm)")
        await wait_stopped(motor)
        assert (motor.dllm, motor.dhlm) == ORIGINAL_DIAL_LIMITS

    run_virtual(scenario())


def test_a_slow_motor_fails_with_the_seek_timeout_in_words() -> None:
    async def scenario() -> None:
        motor = FakeMotor()
        motor.faults.speed_factor = 0.2  # 2 mm/s while JVEL says 10
        _, error = await run_home(motor, settings=make_settings(stall_time=5.0))
        # 81 mm * 1.5 / 10 mm/s + 2 * 0.2 s + 2 s margin
        assert str(error).startswith(
            "A: high limit switch not reached within 14.6 s (travel 81 mm at 10 mm/s;"
        )

    run_virtual(scenario())


def test_a_jog_the_record_ignores_is_reported() -> None:
    async def scenario() -> None:
        motor = FakeMotor()
        motor.faults.ignore_jog = True
        _, error = await run_home(motor)
        assert str(error).startswith("A: motor did not start moving within 2.2 s after JOGF=1")

    run_virtual(scenario())


def test_disconnect_while_seeking_fails_and_says_what_could_not_be_undone() -> None:
    async def scenario() -> None:
        motor = FakeMotor()
        motor.faults.at_position.append(("disconnect", 20.0))
        recorder, error = await run_home(motor)
        assert str(error).startswith("A: motor record disconnected while waiting for")
        message = recorder.last.message
        assert recorder.last.state is HomingState.FAILED
        assert "STOP failed (A: not connected" in message
        assert "soft limits NOT restored to DLLM=-40 DHLM=40" in message

    run_virtual(scenario())


def test_fault_while_centering_fails_and_stops() -> None:
    async def scenario() -> None:
        motor = FakeMotor()
        # Armed once the limits are set; dial 20 lies on the way back to the center.
        motor.hooks["HLM"] = lambda: motor.faults.at_position.append(("comm", 20.0))
        _, error = await run_home(motor)
        assert "controller communication error" in str(error)
        assert "while moving to center" in str(error)
        assert "STOP=1" in motor.calls
        await wait_stopped(motor)

    run_virtual(scenario())


def test_an_amplifier_fault_that_ends_the_move_to_center_is_the_reason_given() -> None:
    """The sim's amplifier fault halts the axis and the record is done at once: the
    put-callback of the move completes before the MSTA monitor with PROBLEM arrives. The
    failure names the fault, not the position the move was cut short at."""

    async def scenario() -> None:
        motor = FakeMotor()
        motor.hooks["HLM"] = lambda: motor.faults.at_position.append(("amp", 20.0))
        recorder, error = await run_home(motor)
        assert str(error).startswith(
            "A: amplifier fault: MSTA PROBLEM bit set (while moving to center, at")
        assert recorder.last.state is HomingState.FAILED

    run_virtual(scenario())


def test_a_motor_that_ignores_stop_still_ends_the_homing() -> None:
    async def scenario() -> None:
        motor = FakeMotor()
        motor.faults.ignore_stop = True
        motor.faults.at_position.append(("comm", 20.0))
        recorder, error = await run_home(motor)
        assert error is not None and recorder.last.state is HomingState.FAILED
        assert motor.mode == "jog"  # still going: the engine did not wait for it

    run_virtual(scenario())


def test_cnen_disabled_homes_when_the_driver_has_no_closed_loop() -> None:
    """The genuine record starts at CNEN=0; motorSim and most stepper drivers (MSTA
    GAIN_SUPPORT clear) move regardless, so homing must not refuse them."""

    async def scenario() -> None:
        motor = FakeMotor()  # the sim, like motorSim, starts at CNEN=Disable
        assert not motor.status.cnen and not motor.status.gain_support
        recorder, error = await run_home(motor)
        assert error is None, error
        assert recorder.last.state is HomingState.HOMED

    run_virtual(scenario())


def test_a_controller_still_moving_after_the_trip_is_stopped_and_homing_goes_on() -> None:
    """motorSim on an axis that never made an absolute move returns onto the switch at
    1 step/s: DMOV=1 at the trip, DONE only minutes later. A STOP ends that."""

    async def scenario() -> None:
        motor = FakeMotor(physics=FakePhysics(settle_time=600.0, stop_ends_settling=True))
        recorder, error = await run_home(motor)
        assert error is None, error
        assert recorder.last.state is HomingState.HOMED
        first_jog = motor.calls.index("JOGF=1")
        assert "STOP=1" in motor.calls[first_jog:]

    run_virtual(scenario())


def test_settling_too_slowly_fails() -> None:
    async def scenario() -> None:
        motor = FakeMotor(physics=FakePhysics(settle_time=20.0))
        _, error = await run_home(motor)
        assert str(error).startswith(
            "A: timed out after 10 s waiting for the motor to settle on the high limit switch"
        )

    run_virtual(scenario())


def test_a_move_to_center_refused_by_the_soft_limits_fails() -> None:
    async def scenario() -> None:
        motor = FakeMotor()

        def narrow_limits() -> None:  # someone edits the limits behind our back
            if motor.calls[-1] == "VAL=0":
                motor.dllm, motor.dhlm = 30.0, 35.0

        motor.hooks["VAL"] = narrow_limits
        _, error = await run_home(motor, settings=make_settings(settle_timeout=1.0))
        assert str(error).startswith(
            "A: after the move to center the motor is at 40.5"
        )

    run_virtual(scenario())


PREFLIGHT = [
    ("problem", "A: amplifier fault: MSTA PROBLEM bit set"),
    ("comm", "A: controller communication error: MSTA COMM_ERR bit set"),
    ("both", "A: both limit switches active — check the cabling"),
    ("spmg", "A: motor disabled: SPMG is Stop, set it to Go"),
    ("cnen", "A: closed-loop control disabled: CNEN is Disable, set it to Enable"),
    ("moving", "A: motor is moving (DMOV=0): wait for it to stop, or stop it first"),
    ("disconnected", "A: motor record not connected"),
    ("jvel", "A: jog speed JVEL is 0 mm/s: set a positive speed"),
]


@pytest.mark.parametrize(("problem", "message"), PREFLIGHT)
def test_preflight_refuses_without_touching_the_motor(problem: str, message: str) -> None:
    async def scenario() -> None:
        motor = FakeMotor()
        physics = motor.physics
        if problem == "problem":
            motor.extra_msta |= Msta.PROBLEM
        elif problem == "comm":
            motor.extra_msta |= Msta.COMM_ERR
        elif problem == "both":
            physics.low_switch, physics.high_switch = 10.0, 0.0
        elif problem == "spmg":
            physics.spmg = Spmg.STOP
        elif problem == "cnen":
            physics.gain_support, physics.cnen = True, 0  # a servo, its loop off
        elif problem == "moving":
            physics.move_user(20.0)  # someone else's move
        elif problem == "disconnected":
            motor.connected = False
        elif problem == "jvel":
            physics.jvel = 0.0
        motor.publish_now()
        recorder, error = await run_home(motor)
        assert str(error) == message
        assert recorder.last.state is HomingState.FAILED
        assert recorder.last.message == message
        assert motor.calls == []  # not even STOP: the motion may be someone else's

    run_virtual(scenario())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lo_lim": 5.0, "hi_lim": 5.0}, "A: lo_lim (5) must be less than hi_lim (5)"),
        ({"center": 50.0}, "A: center (50) must lie between lo_lim (-40) and hi_lim (40)"),
        ({"tolerance": -1.0}, "A: tolerance (-1) must not be negative"),
        ({"stall_time": 0.0}, "A: stall_time (0 s) must be > 0"),
    ],
)
def test_bad_settings_are_refused_in_words(overrides: dict, message: str) -> None:
    async def scenario() -> None:
        motor = FakeMotor()
        _, error = await run_home(motor, settings=make_settings(**overrides))
        assert str(error) == message
        assert motor.calls == []

    run_virtual(scenario())


def test_margins_grow_with_the_number_of_homings_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Up to ten homings at once the margins are as for one; a hundred sharing the IOC's
    loop get ten times the margins, clean-up bounds and stall windows (a 100-motor
    HomeAll failed a third of its motors on the fixed ones)."""
    from benchioc.engines.homing import procedure

    monkeypatch.setattr(procedure, "_running", 10)
    assert procedure.load_factor() == 1.0
    assert procedure._margin() == procedure._TIMEOUT_MARGIN
    monkeypatch.setattr(procedure, "_running", 100)
    assert procedure.load_factor() == 10.0
    assert procedure._margin() == 10 * procedure._TIMEOUT_MARGIN
    assert procedure._cleanup_timeout() == 10 * procedure._CLEANUP_TIMEOUT


def test_the_count_of_homings_at_once_returns_to_zero() -> None:
    """Counted while running, whether a homing ends homed or failed."""
    from benchioc.engines.homing import procedure

    seen: list[int] = []

    async def go() -> None:
        motors = [FakeMotor(f"M{i}") for i in range(3)]
        watcher = asyncio.ensure_future(asyncio.sleep(0.01))
        watcher.add_done_callback(lambda _: seen.append(procedure._running))
        await asyncio.gather(*(run_home(m) for m in motors))
        _, error = await run_home(FakeMotor("F"), settings=make_settings(lo_lim=40.0, hi_lim=-40.0))
        assert error is not None

    run_virtual(go())
    assert seen == [3]
    assert procedure._running == 0


def test_positions_on_the_way_are_reported_at_most_five_times_a_second() -> None:
    """Each report writes the motor's State, Progress and Message records: the positions
    passed while seeking and centering go out at most every 0.2 s, the steps always."""
    from benchioc.engines.homing import procedure

    stamps: list[tuple[float, str]] = []

    async def go() -> None:
        motor = FakeMotor()
        loop = asyncio.get_running_loop()
        await home(motor, HI, make_settings(),
                   lambda update: stamps.append((loop.time(), update.message)))

    run_virtual(go())
    on_the_way = [t for t, message in stamps if ", at " in message]
    assert len(on_the_way) >= 4
    gaps = [b - a for a, b in zip(on_the_way, on_the_way[1:], strict=False)]
    assert min(gaps) >= procedure._ROUTINE_REPORT_S - 1e-9
    assert stamps[-1][1].startswith("A: homed at")
