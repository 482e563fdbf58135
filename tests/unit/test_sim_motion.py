"""The simulated motor's physics and record logic, on a fake clock (exact times)."""

from __future__ import annotations

import math

import pytest

from benchioc.sim.motion import (
    TRIP_SETTLE_TIME,
    Broken,
    MotorParams,
    MotorSim,
    Msta,
    Result,
    Severity,
    Spmg,
    default_params,
)
from benchioc.sim.profile import trapezoid


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make_motor(**overrides) -> tuple[MotorSim, FakeClock]:
    values = dict(low_switch=-20.0, high_switch=5.0, start=0.0, velo=10.0, accl=0.2,
                  mres=0.001, user_limits=(-15.0, 4.0))
    values.update(overrides)
    clock = FakeClock()
    return MotorSim("T", MotorParams(**values), clock), clock


def run_to(motor: MotorSim, clock: FakeClock, t: float) -> None:
    """Advance through every event up to t, visiting each event time as the timer would."""
    while (event := motor.next_event_time()) is not None and event <= t:
        clock.now = event
        motor.advance(event)
    clock.now = t
    motor.advance(t)


def run_until_idle(motor: MotorSim, clock: FakeClock) -> float:
    while (event := motor.next_event_time()) is not None:
        clock.now = event
        motor.advance(event)
    return clock.now


# --- profile ------------------------------------------------------------------------------
def test_trapezoid_timing_is_exact():
    traj = trapezoid(0.0, 0.0, 10.0, speed=10.0, accel_time=0.2)
    # 0.2 s ramps cover 1 unit each; 8 units cruise at 10 units/s take 0.8 s.
    assert traj.end_time == pytest.approx(1.2, abs=1e-12)
    assert traj.position_at(0.1) == pytest.approx(0.25, abs=1e-12)
    assert traj.position_at(0.6) == pytest.approx(5.0, abs=1e-12)
    assert traj.end_position == 10.0
    assert traj.crossing_time(5.0) == pytest.approx(0.6, abs=1e-12)


def test_short_move_is_triangular():
    traj = trapezoid(2.0, 1.0, 0.0, speed=10.0, accel_time=0.2)
    # 1 unit at 50 units/s^2 never reaches 10 units/s: two ramps of sqrt(1 / 50) s.
    assert traj.end_time - 2.0 == pytest.approx(2 * math.sqrt(1 / 50), abs=1e-12)
    assert max(abs(traj.velocity_at(2.0 + dt / 100)) for dt in range(20)) < 10.0


# --- moves -------------------------------------------------------------------------------
def test_move_ends_at_its_profile_time_on_the_target():
    motor, clock = make_motor()
    assert motor.move_user(3.0) is Result.STARTED
    assert motor.snapshot().dmov == 0
    # 3 units: 1 + 1 in ramps, 1 at speed -> 0.2 + 0.1 + 0.2 s.
    assert motor.next_event_time() == pytest.approx(0.5, abs=1e-12)
    run_to(motor, clock, 0.4999)
    assert motor.snapshot().dmov == 0
    run_to(motor, clock, 0.5)
    state = motor.snapshot()
    assert (state.dmov, state.movn, state.rbv, state.val) == (1, 0, 3.0, 3.0)
    assert state.msta & Msta.DONE and not state.msta & Msta.MOVING


def test_move_beyond_soft_limit_sets_lvio_and_keeps_val():
    motor, _ = make_motor()
    assert motor.move_user(4.5) is Result.REFUSED
    state = motor.snapshot()
    assert (state.lvio, state.val, state.dmov) == (1, 0.0, 1)
    assert motor.move_user(1.0) is Result.STARTED
    assert motor.snapshot().lvio == 0


def test_zero_soft_limits_disable_them():
    motor, clock = make_motor()
    motor.dhlm = motor.dllm = 0.0
    assert motor.move_user(4.5) is Result.STARTED
    run_until_idle(motor, clock)
    assert motor.snapshot().rbv == 4.5


def test_stop_decelerates_and_val_takes_the_stop_position():
    motor, clock = make_motor(high_switch=50.0, user_limits=(-15.0, 40.0))
    motor.move_user(30.0)
    run_to(motor, clock, 1.0)  # cruising at 10 units/s, at 9.0
    assert motor.stop() is Result.STARTED
    end = run_until_idle(motor, clock)
    assert end == pytest.approx(1.2, abs=1e-12)  # 0.2 s to decelerate from 10 units/s
    state = motor.snapshot()
    assert state.dmov == 1
    assert state.val == pytest.approx(10.0, abs=1e-9) and state.rbv == pytest.approx(10.0)


def test_ignore_stop_knob_keeps_moving():
    motor, clock = make_motor()
    motor.ignore_stop = True
    motor.move_user(3.0)
    run_to(motor, clock, 0.2)
    assert motor.stop() is Result.IGNORED
    assert run_until_idle(motor, clock) == pytest.approx(0.5, abs=1e-12)
    assert motor.snapshot().rbv == 3.0


# --- switches -----------------------------------------------------------------------------
def jog_to_high_switch(motor: MotorSim, clock: FakeClock) -> float:
    motor.dhlm = motor.dllm = 0.0
    assert motor.jog(forward=True, on=True) is Result.STARTED
    trip = motor.next_event_time()
    run_to(motor, clock, trip)
    return trip


def test_trip_leaves_val_at_trip_position_then_settles_with_done_last():
    motor, clock = make_motor(jvel=10.0)
    trip = jog_to_high_switch(motor, clock)
    assert trip == pytest.approx(0.2 + 0.4, abs=1e-12)  # 1 unit ramp, 4 units at speed
    at_trip = motor.snapshot()
    assert (at_trip.dmov, at_trip.hls, at_trip.jogf) == (1, 1, 0)
    assert at_trip.val == pytest.approx(5.0, abs=1e-9)
    assert at_trip.msta & Msta.MOVING and not at_trip.msta & Msta.DONE
    settle = motor.next_event_time()
    assert settle == pytest.approx(trip + TRIP_SETTLE_TIME, abs=1e-12)
    run_to(motor, clock, settle)
    settled = motor.snapshot()
    assert settled.msta & Msta.DONE and settled.msta & Msta.PLUS_LS
    # Overshoot of a constant deceleration from 10 units/s over the settle time.
    assert settled.rbv == pytest.approx(5.0 + 10.0 * TRIP_SETTLE_TIME / 2, abs=1e-3)
    assert settled.val == at_trip.val  # stale: calibrating from it is off by the overshoot


def test_jog_into_the_active_switch_is_ignored():
    motor, clock = make_motor()
    jog_to_high_switch(motor, clock)
    run_until_idle(motor, clock)
    assert motor.jog(forward=True, on=True) is Result.IGNORED
    assert motor.snapshot().jogf == 0
    assert motor.move_user(10.0) is Result.REFUSED  # further into the switch
    assert motor.move_user(0.0) is Result.STARTED  # away from it


def test_dir_neg_swaps_the_user_switches():
    motor, clock = make_motor(dir="Neg", low_switch=-6.0, high_switch=30.0,
                              user_limits=(-5.0, 5.0))
    trip = jog_to_high_switch(motor, clock)  # user forward = dial negative
    state = motor.snapshot()
    assert state.hls == 1 and state.lls == 0 and state.rlls == 1
    assert state.msta & Msta.MINUS_LS and not state.msta & Msta.PLUS_LS
    assert state.val == pytest.approx(6.0, abs=1e-9)
    assert trip == pytest.approx(0.2 + 0.5, abs=1e-12)
    assert (state.llm, state.hlm) == (0.0, 0.0)  # disabled limits


def test_dir_neg_user_limits_map_to_swapped_dial_limits():
    motor, _ = make_motor(dir="Neg", user_limits=(-5.0, 4.0))
    assert (motor.dllm, motor.dhlm) == (-4.0, 5.0)
    assert motor.user_limits() == (-5.0, 4.0)


def test_broken_switch_runs_into_the_hard_stop_and_stalls():
    motor, clock = make_motor()
    motor.set_broken(Broken.HIGH)
    jog_to_high_switch(motor, clock)
    state = motor.snapshot()
    assert state.hls == 0 and state.dmov == 0
    assert state.rbv == pytest.approx(6.0, abs=1e-9)  # 1 unit past the switch
    assert state.msta & Msta.SLIP_STALL and state.msta & Msta.MOVING


# --- set position -------------------------------------------------------------------------
def test_set_with_variable_offset_changes_off_only():
    motor, _ = make_motor(start=2.0)
    motor.set_mode, motor.foff = 1, 0
    assert motor.move_user(10.0) is Result.DONE
    state = motor.snapshot()
    assert (state.off, state.val, state.dval, state.rbv, state.drbv) == (8.0, 10.0, 2.0, 10.0,
                                                                        2.0)
    assert (state.llm, state.hlm) == (-7.0, 12.0)  # user limits follow the offset


def test_set_with_frozen_offset_redefines_the_dial_but_not_the_switches():
    motor, clock = make_motor(start=2.0)
    motor.set_mode, motor.foff = 1, 1
    motor.move_user(10.0)
    state = motor.snapshot()
    assert (state.off, state.dval, state.drbv, state.rbv) == (0.0, 10.0, 10.0, 10.0)
    motor.set_mode = 0
    jog_to_high_switch(motor, clock)
    # The switch is still 3 units (physical) ahead: dial 13 now.
    assert motor.snapshot().val == pytest.approx(13.0, abs=1e-9)


def test_sync_takes_the_readback():
    motor, clock = make_motor()
    jog_to_high_switch(motor, clock)
    run_until_idle(motor, clock)
    motor.sync()
    state = motor.snapshot()
    assert state.val == state.rbv != pytest.approx(5.0, abs=1e-6)


# --- faults -------------------------------------------------------------------------------
def test_stall_freezes_the_axis_with_dmov_0_until_stop():
    motor, clock = make_motor()
    motor.set_stall_at(2.0)
    motor.move_user(3.0)
    stall = motor.next_event_time()
    run_to(motor, clock, stall + 1.0)
    state = motor.snapshot()
    assert state.rbv == pytest.approx(2.0, abs=1e-9)
    assert (state.dmov, state.movn) == (0, 1)
    assert state.msta & Msta.SLIP_STALL and state.severity == Severity.MAJOR
    assert motor.stop() is Result.STARTED
    run_until_idle(motor, clock)
    state = motor.snapshot()
    assert state.dmov == 1 and state.val == pytest.approx(2.0, abs=1e-9)
    assert motor.move_user(3.0) is Result.STARTED  # same direction: stalls again at once
    assert motor.next_event_time() == clock.now


def test_amp_fault_stops_motion_and_refuses_moves():
    motor, clock = make_motor()
    motor.move_user(3.0)
    run_to(motor, clock, 0.3)
    motor.set_amp_fault(True)
    state = motor.snapshot()
    assert state.dmov == 1 and state.msta & Msta.PROBLEM and state.severity == Severity.MAJOR
    assert motor.move_user(0.0) is Result.REFUSED


def test_comm_error_freezes_readbacks_until_it_clears():
    motor, clock = make_motor()
    motor.move_user(3.0)
    run_to(motor, clock, 0.1)
    frozen_rbv = motor.snapshot().rbv
    motor.set_comm_error(True)
    run_to(motor, clock, 1.0)
    state = motor.snapshot()
    assert (state.rbv, state.dmov) == (frozen_rbv, 0)
    assert state.msta & Msta.COMM_ERR and state.severity == Severity.INVALID
    assert motor.move_user(1.0) is Result.REFUSED
    motor.set_comm_error(False)
    state = motor.snapshot()
    assert (state.rbv, state.dmov) == (3.0, 1)


def test_home_does_nothing_without_hvel():
    motor, _ = make_motor(start=2.0)
    assert motor.home(forward=True) is Result.IGNORED
    assert motor.snapshot().dmov == 1


def test_home_with_hvel_reaches_the_home_mark_and_sets_homed():
    motor, clock = make_motor(start=2.0, hvel=5.0)
    assert motor.home(forward=False) is Result.STARTED
    assert motor.snapshot().homr == 1
    run_until_idle(motor, clock)
    state = motor.snapshot()
    assert state.msta & Msta.HOMED and state.athm == 1 and state.drbv == 0.0


def test_spmg_pause_then_go_resumes_the_move():
    motor, clock = make_motor(high_switch=50.0, user_limits=(-15.0, 40.0))
    motor.move_user(20.0)
    run_to(motor, clock, 0.5)
    motor.set_spmg(Spmg.PAUSE)
    run_until_idle(motor, clock)
    assert motor.snapshot().dmov == 1 and motor.snapshot().val == 20.0
    assert motor.set_spmg(Spmg.GO) is Result.STARTED
    run_until_idle(motor, clock)
    assert motor.snapshot().rbv == 20.0


def test_velo_is_capped_by_vmax():
    motor, _ = make_motor(vmax=5.0)
    assert motor.velo == 5.0
    motor.set_velo(8.0)
    assert motor.velo == 5.0


def test_default_physics_puts_switches_beyond_the_soft_limits():
    params = default_params(-10.0, 20.0, tolerance=0.5)
    assert params.low_switch == -12.5 and params.high_switch == 22.5
    assert params.user_limits == (-10.0, 20.0)
