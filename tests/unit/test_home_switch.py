"""Homing method home_switch: the controller's own HOMF/HOMR at HVEL, on the fake motor
record (the simulated bench's MotorSim, whose home routine is motorSim's: it runs at
HVEL, turns back at the home mark and stops on it with MSTA HOMED; from the far side it
meets a limit switch first, turns round there and still goes home) on a virtual clock."""

from __future__ import annotations

import asyncio
import json

import pytest
from fakemotor import FakeMotor, FakePhysics, run_virtual
from test_homing import Recorder, make_settings

from benchioc import config as cfg
from benchioc.engines.homing import (
    HomingMethod,
    HomingSettings,
    HomingState,
    MotorHoming,
    home,
)
from benchioc.engines.motormodel import Direction, MotorError
from benchioc.facts.motorrecord import Msta

HI, LO = Direction.HI, Direction.LO
HOME_DIAL = 0.0  # FakePhysics().home: the controller's home mark


def switch_settings(**overrides) -> HomingSettings:
    values: dict = dict(method=HomingMethod.HOME_SWITCH)
    values.update(overrides)
    return make_settings(**values)


async def run_home(motor, direction: Direction = HI, settings: HomingSettings | None = None
                   ) -> tuple[Recorder, MotorError | None]:
    recorder = Recorder()
    try:
        await home(motor, direction, settings or switch_settings(), recorder)
    except MotorError as error:
        return recorder, error
    return recorder, None


def at_sync(motor: FakeMotor) -> list[float]:
    """The dial readback each time the engine sends SYNC (just before calibrating)."""
    dials: list[float] = []
    motor.hooks["SYNC"] = lambda: dials.append(motor.dial)
    return dials


# --- success -------------------------------------------------------------------------------
@pytest.mark.parametrize(("direction", "start"), [(HI, -10.0), (LO, 10.0)])
def test_home_runs_to_the_mark_and_calibrates_home_position(direction, start) -> None:
    async def scenario() -> None:
        motor = FakeMotor(physics=FakePhysics(start=start))
        dials = at_sync(motor)
        recorder, error = await run_home(motor, direction, switch_settings(home_position=2.5))
        assert error is None, error
        assert recorder.last.state is HomingState.HOMED
        field = "HOMF" if direction is HI else "HOMR"
        assert [c for c in motor.calls if c.startswith(("HOM", "JOG"))] == [f"{field}=1"]
        # calibrated on the mark, exactly where the controller stopped: it reads 2.5
        assert dials == [HOME_DIAL]
        assert motor.user(HOME_DIAL) == pytest.approx(2.5, abs=1e-9)
        set_at = motor.calls.index("SET=1")
        assert motor.calls[set_at - 1:set_at + 3] == ["SYNC=1", "SET=1", "VAL=2.5", "SET=0"]
        # then as the limit method: soft limits, center
        assert (motor.status.llm, motor.status.hlm) == pytest.approx((-40.0, 40.0))
        assert motor.status.rbv == pytest.approx(0.0, abs=1e-3)
        assert motor.limit_violations == []
        messages = [update.message for update in recorder.updates]
        assert (f"A: homing with {field} at 10 mm/s (the controller's home routine)"
                in messages)
        # the mark is at dial 0, read 3 mm before the calibration (offset 3)
        assert f"A: home found by {field}: at rest at 3.000 mm (MSTA HOMED)" in messages
        assert "A: calibrated: the controller's home is at 2.500 mm" in messages
        assert recorder.states == [HomingState.SEEKING, HomingState.CALIBRATING,
                                   HomingState.CENTERING, HomingState.HOMED]
        progress = [update.progress for update in recorder.updates]
        assert progress == sorted(progress) and progress[-1] == 100.0

    run_virtual(scenario())


def test_home_from_the_far_side_meets_the_limit_switch_and_still_goes_home() -> None:
    """HOMF from above the mark runs into the high limit switch: the record's home ends
    there (DMOV=1, MSTA DONE clear) while the controller turns round; the record follows
    the way back as an external move. Only the controller at rest with HOMED ends it."""

    async def scenario() -> None:
        motor = FakeMotor(physics=FakePhysics(start=5.0))
        dials = at_sync(motor)
        task = asyncio.create_task(run_home(motor, HI, switch_settings()))
        at_switch = await motor.wait_for(lambda s: s.hls and s.dmov, 30, "the high switch")
        assert not at_switch.done_bit and not at_switch.homed_bit
        assert not task.done()  # DMOV=1 there does not end the home
        recorder, error = await task
        assert error is None, error
        assert dials == [HOME_DIAL]
        assert motor.status.rbv == pytest.approx(0.0, abs=1e-3)
        # the way to the switch and back counts in the progress shown
        assert any(u.progress > 40 and "homing with HOMF, at" in u.message
                   for u in recorder.updates)

    run_virtual(scenario())


def test_a_second_home_is_not_fooled_by_the_last_homes_homed_bit() -> None:
    """motorSim clears HOMED when a home starts; the record's first update after HOMF
    may still show it. The engine waits for the new home's own end."""

    async def scenario() -> None:
        motor = FakeMotor(physics=FakePhysics(start=-10.0))
        settings = switch_settings(center=10.0)
        _, error = await run_home(motor, HI, settings)
        assert error is None, error
        assert motor.status.homed_bit and motor.status.rbv == pytest.approx(10.0, abs=1e-3)
        dials = at_sync(motor)
        _, error = await run_home(motor, LO, settings)
        assert error is None, error
        assert dials == [HOME_DIAL]  # back on the mark, not 10 mm away from it

    run_virtual(scenario())


def test_dir_neg_homes_on_the_same_mark() -> None:
    async def scenario() -> None:
        motor = FakeMotor(physics=FakePhysics(dir="Neg", start=-10.0, dllm=-40, dhlm=40))
        dials = at_sync(motor)
        _, error = await run_home(motor, LO, switch_settings(home_position=-1.0))
        assert error is None, error
        assert dials == [HOME_DIAL] and motor.user(HOME_DIAL) == pytest.approx(-1.0)

    run_virtual(scenario())


def test_motor_homing_controller_runs_the_method_from_its_settings() -> None:
    async def scenario() -> None:
        motor = FakeMotor(physics=FakePhysics(start=-3.0))
        homing = MotorHoming(motor, lambda: switch_settings())
        assert await homing.home(HI) is True, homing.message
        assert homing.state is HomingState.HOMED
        assert "HOMF=1" in motor.calls and "JOGF=1" not in motor.calls

    run_virtual(scenario())


# --- refusals and failures -------------------------------------------------------------
def test_hvel_0_is_refused_in_preflight_in_words() -> None:
    """HOMF/HOMR at HVEL=0 only pulse DMOV on the genuine record (nothing moves)."""

    async def scenario() -> None:
        motor = FakeMotor(physics=FakePhysics(hvel=0.0))
        recorder, error = await run_home(motor)
        message = ("A: home speed HVEL is 0 mm/s: the motor record's HOMF/HOMR do nothing"
                   " at HVEL=0; set a positive home speed")
        assert str(error) == message and recorder.last.message == message
        assert recorder.last.state is HomingState.FAILED
        assert motor.calls == []

    run_virtual(scenario())


def test_jvel_0_does_not_matter_to_the_home_routine() -> None:
    async def scenario() -> None:
        motor = FakeMotor(physics=FakePhysics(start=-2.0))
        motor.physics.jvel = 0.0
        motor.publish_now()
        _, error = await run_home(motor)
        assert error is None, error

    run_virtual(scenario())


def test_a_motor_client_without_a_home_command_is_refused() -> None:
    class NoHome(FakeMotor):
        start_home = None  # type: ignore[assignment]  # e.g. a client without HOMF/HOMR

    async def scenario() -> None:
        motor = NoHome()
        _, error = await run_home(motor)
        assert str(error) == ("A: this motor client cannot start the controller's home"
                              " routine (HOMF/HOMR), which method home_switch needs")
        assert motor.calls == []

    run_virtual(scenario())


@pytest.mark.parametrize(("direction", "start", "words"), [
    (HI, 44.5, "A: on the controller's plus limit switch (MSTA), the way HOMF starts: the"
               " motor record ignores HOMF there; home low (HOMR) instead"),
    (LO, -45.5, "A: on the controller's minus limit switch (MSTA), the way HOMR starts: the"
                " motor record ignores HOMR there; home high (HOMF) instead"),
])
def test_home_into_the_active_limit_switch_is_refused(direction, start, words) -> None:
    async def scenario() -> None:
        motor = FakeMotor(physics=FakePhysics(start=start))
        _, error = await run_home(motor, direction)
        assert str(error) == words
        assert motor.calls == []

    run_virtual(scenario())


def test_a_home_routine_that_ends_without_home_fails_and_restores_limits() -> None:
    """No mark between the switches: the controller turns at the high switch, runs to
    the low one and stops there, MSTA HOMED clear."""

    async def scenario() -> None:
        motor = FakeMotor(physics=FakePhysics(home=60.0))
        recorder, error = await run_home(motor)
        assert error is not None
        assert str(error).startswith(
            "A: the controller's home routine (HOMF) ended at -42.")
        assert str(error).endswith(
            "without finding home (neither MSTA HOMED nor ATHM set): no home switch or"
            " index that way?")
        assert recorder.last.state is HomingState.FAILED
        assert recorder.last.message.endswith("motor stopped, soft limits restored")
        assert (motor.dllm, motor.dhlm) == (-40.0, 40.0)
        assert "SET=1" not in motor.calls

    run_virtual(scenario())


def test_a_driver_that_reports_athm_instead_of_homed_is_home() -> None:
    """ATHM (MSTA bit 3, a home switch) stands for HOMED where a driver sets only that."""

    async def scenario() -> None:
        motor = FakeMotor(physics=FakePhysics(home=60.0, start=-10.0))
        # the routine ends on the low switch without HOMED; this driver says "at home"
        motor.hooks["HOMF"] = lambda: setattr(motor, "extra_msta", int(Msta.HOMELS))
        recorder, error = await run_home(motor)
        assert error is None, error
        assert any(u.message.endswith("(MSTA ATHM)") for u in recorder.updates)

    run_virtual(scenario())


def test_a_stall_while_homing_fails_in_words() -> None:
    async def scenario() -> None:
        motor = FakeMotor(physics=FakePhysics(start=-20.0))
        motor.faults.at_position.append(("stall", -12.0))  # reads -9 mm
        recorder, error = await run_home(motor)
        assert str(error).startswith(
            "A: motor stalled at -9.000 mm while homing with HOMF: it moved less than"
            " 1.000 mm in 2 s")
        assert recorder.last.message.endswith("motor stopped, soft limits restored")
        assert "STOP=1" in motor.calls

    run_virtual(scenario())


def test_an_amplifier_fault_while_homing_fails() -> None:
    async def scenario() -> None:
        motor = FakeMotor(physics=FakePhysics(start=-20.0))
        motor.faults.at_position.append(("amp", -12.0))
        _, error = await run_home(motor)
        assert str(error).startswith(
            "A: amplifier fault: MSTA PROBLEM bit set (while homing with HOMF, at -9.000 mm)")

    run_virtual(scenario())


def test_a_home_that_takes_too_long_times_out_in_words() -> None:
    async def scenario() -> None:
        motor = FakeMotor(physics=FakePhysics(start=-20.0))
        _, error = await run_home(motor, HI, switch_settings(seek_timeout=1.0))
        assert str(error).startswith("A: home not found by HOMF within 1 s (travel 81 mm at"
                                     " 10 mm/s; now at ")

    run_virtual(scenario())


def test_abort_while_homing_stops_the_motor_and_restores_the_limits() -> None:
    async def scenario() -> None:
        motor = FakeMotor(physics=FakePhysics(start=-30.0))
        homing = MotorHoming(motor, lambda: switch_settings())
        task = asyncio.create_task(homing.home(HI))
        await motor.wait_for(lambda s: s.rbv > -20, 30, "the motor to pass -20")
        homing.abort()
        assert await task is False
        assert homing.state is HomingState.ABORTED
        assert "homing aborted while homing with HOMF" in homing.message
        assert homing.message.endswith("motor stopped, soft limits restored")
        await motor.wait_for(lambda s: s.dmov and s.done_bit, 10, "the motor to stop")
        assert motor.status.rbv < -10 and (motor.dllm, motor.dhlm) == (-40.0, 40.0)

    run_virtual(scenario())


def test_bad_home_position_is_refused() -> None:
    async def scenario() -> None:
        motor = FakeMotor()
        _, error = await run_home(motor, HI, switch_settings(home_position=float("nan")))
        assert str(error) == "A: home_position (nan) must be a finite number"
        assert motor.calls == []

    run_virtual(scenario())


# --- the config ------------------------------------------------------------------------------
SEED = {"general": {"tolerance": 0.5},
        "motors": {"A": {"pv_root": "SIM:A", "lo_lim": -40, "hi_lim": 40, "center": 0}}}


def test_a_seed_entry_without_a_method_homes_on_its_limit_switch(tmp_path) -> None:
    path = tmp_path / "motion_box.json"
    path.write_text(json.dumps(SEED))
    settings = HomingSettings.from_config(cfg.load(path).config, "A")
    assert settings.method is HomingMethod.LIMIT and settings.home_position == 0.0


@pytest.mark.parametrize("flat", [False, True])
def test_method_and_home_position_come_from_the_motor_entry(tmp_path, flat) -> None:
    entry = {**SEED["motors"]["A"], "method": "home_switch", "home_position": -2.5}
    data = ({"tolerance": 0.5, "A": entry} if flat
            else {"general": {"tolerance": 0.5}, "motors": {"A": entry}})
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    document = cfg.load(path)
    settings = HomingSettings.from_config(document.config, "A")
    assert settings.method is HomingMethod.HOME_SWITCH and settings.home_position == -2.5
    # an edit of the limits (motion-box change, a put on a config record) keeps them
    document.set_motor("A", cfg.motor_config({**SEED["motors"]["A"], "hi_lim": 30}, "A"),
                       must_exist=True)
    document.save()
    again = cfg.load(path).config.motors["A"]
    assert (again.method, again.home_position, again.hi_lim) == ("home_switch", -2.5, 30)


def test_home_switch_without_home_position_calibrates_to_0(tmp_path) -> None:
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"motors": {"A": {**SEED["motors"]["A"],
                                                 "method": "home_switch"}}}))
    settings = HomingSettings.from_config(cfg.load(path).config, "A")
    assert settings.home_position == 0.0
    assert settings.calibrated_position(HI) == settings.calibrated_position(LO) == 0.0


@pytest.mark.parametrize(("extra", "words"), [
    ({"method": "home"}, "motors.A.method: 'home' is not a homing method: use limit"
                         " (two-speed homing onto the hard limit switch); home_switch (the"
                         " controller's own home routine, HOMF/HOMR at HVEL)"),
    ({"method": None}, "motors.A.method: no homing method given: use limit"),
    ({"method": ""}, "motors.A.method: no homing method given: use limit"),
    ({"home_position": 5}, "motors.A: home_position (5) is used only with method:"
                           " home_switch; this motor homes on its limit switch (method:"
                           " limit)"),
    ({"method": "home_switch", "home_position": "x"}, "motors.A.home_position: Input"
                                                      " should be a valid number"),
])
def test_bad_method_values_are_refused_in_words(extra, words) -> None:
    data = {"motors": {"A": {**SEED["motors"]["A"], **extra}}}
    with pytest.raises(cfg.ConfigError) as error:
        cfg.validate(data, "bench.json")
    assert str(error.value).startswith(f"bench.json: {words}"), str(error.value)
