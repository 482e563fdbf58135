"""The simulated motor's physics and record logic, on a fake clock (exact times)."""

from __future__ import annotations

import math

import pytest

from benchioc.sim.motion import (
    CONTROLLER_POLL,
    TRIP_SETTLE_TIME,
    Broken,
    Mip,
    MotorParams,
    MotorSim,
    Msta,
    Result,
    Severity,
    Spmg,
    default_params,
    params_from_config,
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
    motor.advance(clock.now)  # the controller's refusal reaches the record
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
    assert (state.mip, state.dmov) == (Mip.LOAD_P, 0)  # the controller takes it next
    motor.advance(clock.now)
    assert (motor.snapshot().mip, motor.snapshot().dmov) == (Mip.DONE, 1)
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


def test_velo_is_capped_by_vmax():
    motor, _ = make_motor(vmax=5.0)
    assert motor.velo == 5.0
    motor.set_velo(8.0)
    assert motor.velo == 5.0


def test_default_physics_puts_switches_beyond_the_soft_limits():
    params = default_params(-10.0, 20.0, tolerance=0.5)
    assert params.low_switch == -12.5 and params.high_switch == 22.5
    assert params.user_limits == (-10.0, 20.0)


def snapshot_now(motor: MotorSim, clock: FakeClock):
    """The record after the events due now (a command's own follow-up processing)."""
    motor.advance(clock.now)
    return motor.snapshot()


# --- what the differential test against the genuine record pinned down --------------------
def test_cnen_starts_at_disable_and_motion_works_without_closed_loop_support():
    motor, clock = make_motor()
    state = motor.snapshot()
    assert state.cnen == 0 and not state.msta & Msta.GAIN_SUPPORT
    assert motor.move_user(1.0) is Result.STARTED
    run_until_idle(motor, clock)
    assert motor.snapshot().rbv == 1.0


def test_gain_support_enables_cnen_and_refuses_motion_when_disabled():
    motor, clock = make_motor(gain_support=True)
    state = motor.snapshot()
    assert state.cnen == 1
    assert state.msta & Msta.GAIN_SUPPORT and state.msta & Msta.POSITION
    motor.set_cnen(False)
    assert not motor.snapshot().msta & Msta.POSITION
    assert motor.move_user(1.0) is Result.REFUSED
    assert motor.snapshot().dmov == 1 and motor.snapshot().rbv == 0.0


def test_gain_support_is_read_from_the_sim_config():
    from benchioc.config import SimMotorConfig

    assert params_from_config(SimMotorConfig(gain_support=True), None).gain_support
    assert not params_from_config(SimMotorConfig(), None).gain_support


def test_msta_clears_done_at_the_command_and_shows_moving_and_direction_in_motion():
    motor, clock = make_motor(start=1.0)
    at_rest = motor.snapshot()
    assert at_rest.msta & Msta.DONE and (at_rest.tdir, at_rest.movn) == (0, 0)
    motor.move_user(3.0)
    commanded = motor.snapshot()
    assert not commanded.msta & (Msta.DONE | Msta.MOVING) and commanded.movn == 1
    run_to(motor, clock, 0.1)
    moving = motor.snapshot()
    assert moving.msta & Msta.MOVING and moving.msta & Msta.DIRECTION and moving.tdir == 1
    motor.move_user(0.0)  # a plain put while moving: taken up when this move ends
    run_until_idle(motor, clock)
    back = motor.snapshot()
    assert back.tdir == 0 and back.msta & Msta.DONE and back.rbv == 0.0


def test_msta_home_bit_is_set_on_the_home_mark_at_rest_and_athm_stays_0():
    motor, clock = make_motor()
    state = motor.snapshot()
    assert state.msta & Msta.HOME and state.athm == 0
    motor.move_user(-1.0)
    run_to(motor, clock, 0.05)
    assert not motor.snapshot().msta & Msta.HOME
    run_until_idle(motor, clock)
    assert not motor.snapshot().msta & Msta.HOME


def test_mip_shows_what_the_record_waits_for():
    motor, clock = make_motor(high_switch=50.0, user_limits=(-15.0, 40.0), hvel=5.0)
    motor.move_user(5.0)
    assert motor.snapshot().mip == Mip.MOVE
    run_to(motor, clock, 0.3)
    motor.stop()
    assert motor.snapshot().mip == Mip.STOP
    run_until_idle(motor, clock)
    assert motor.snapshot().mip == Mip.DONE
    motor.dhlm = motor.dllm = 0.0
    motor.jog(forward=False, on=True)
    assert motor.snapshot().mip == Mip.JOGR
    run_to(motor, clock, clock.now + 0.3)
    motor.jog(forward=False, on=False)
    assert motor.snapshot().mip == Mip.JOG_STOP
    run_until_idle(motor, clock)
    motor.home(forward=False)
    assert motor.snapshot().mip == Mip.HOMR


def test_trip_gives_movn_0_with_dmov_1_while_the_axis_still_moves():
    motor, clock = make_motor(jvel=10.0)
    jog_to_high_switch(motor, clock)
    at_trip = motor.snapshot()
    assert (at_trip.dmov, at_trip.movn, at_trip.mip) == (1, 0, Mip.DONE)
    assert at_trip.val == at_trip.rbv  # VAL is the readback at the trip
    run_to(motor, clock, clock.now + TRIP_SETTLE_TIME / 2)
    assert motor.is_moving(clock.now) and motor.snapshot().movn == 0


def test_move_through_the_switch_ends_at_the_trip_with_val_at_the_readback():
    motor, clock = make_motor()
    motor.dhlm = motor.dllm = 0.0
    motor.move_user(8.0)
    run_to(motor, clock, motor.next_event_time())
    state = motor.snapshot()
    assert (state.dmov, state.hls, state.movn) == (1, 1, 0)
    assert state.val == state.rbv == pytest.approx(5.0, abs=0.001)


def test_move_further_into_an_active_switch_is_refused_and_val_returns_to_the_readback():
    motor, clock = make_motor()
    jog_to_high_switch(motor, clock)
    run_until_idle(motor, clock)
    rbv = motor.snapshot().rbv
    assert motor.move_user(9.0) is Result.REFUSED
    asked = motor.snapshot()
    assert (asked.val, asked.dmov, asked.mip) == (9.0, 0, Mip.MOVE)
    assert not asked.msta & Msta.DONE  # the controller is busy refusing it
    refused = snapshot_now(motor, clock)
    assert (refused.val, refused.dmov, refused.mip) == (rbv, 1, Mip.DONE)
    run_to(motor, clock, clock.now + CONTROLLER_POLL)
    assert motor.snapshot().msta & Msta.DONE and motor.snapshot().rbv == rbv


def test_plain_val_put_while_moving_finishes_the_move_then_retries_to_it():
    motor, clock = make_motor()
    motor.move_user(3.0)
    run_to(motor, clock, 0.2)
    assert motor.move_user(4.0) is Result.STARTED
    end_of_first = motor.next_event_time()
    assert end_of_first == pytest.approx(0.5, abs=1e-12)  # the first move is kept
    clock.now = end_of_first
    assert motor.step(clock.now)  # only the end: the record's processing of it shows
    state = motor.snapshot()
    assert (state.dmov, state.mip, state.rbv) == (0, Mip.RETRY | Mip.MOVE, 3.0)
    assert state.msta & Msta.DONE and state.movn == 0  # the controller is done for now
    state = snapshot_now(motor, clock)
    assert state.movn == 1 and not state.msta & Msta.DONE and state.rcnt == 1
    run_until_idle(motor, clock)
    state = motor.snapshot()
    assert (state.dmov, state.mip, state.rbv, state.val) == (1, Mip.DONE, 4.0, 4.0)


def test_plain_val_put_behind_the_moving_axis_stops_it_first():
    motor, clock = make_motor(high_switch=50.0, user_limits=(-15.0, 40.0))
    motor.move_user(5.0)
    run_to(motor, clock, 0.4)  # at 3.0, going up at speed
    motor.move_user(-2.0)
    assert motor.snapshot().mip == Mip.MOVE | Mip.STOP  # the new-target monitor
    run_until_idle(motor, clock)
    state = motor.snapshot()
    assert (state.dmov, state.rbv, state.val) == (1, -2.0, -2.0)


def test_plain_val_put_on_the_path_stops_when_the_axis_passes_it():
    motor, clock = make_motor(high_switch=50.0, user_limits=(-15.0, 40.0))
    motor.move_user(9.0)
    run_to(motor, clock, 0.3)  # at 2.0
    motor.move_user(4.0)
    ntm = motor.next_event_time()
    assert motor.user_position_at(ntm) == pytest.approx(4.0 + 0.002, abs=1e-9)
    run_until_idle(motor, clock)
    assert (motor.snapshot().rbv, motor.snapshot().dmov) == (4.0, 1)


def test_pause_keeps_dmov_0_until_go_resumes_the_move():
    motor, clock = make_motor(high_switch=50.0, user_limits=(-15.0, 40.0))
    motor.move_user(20.0)
    run_to(motor, clock, 0.5)
    assert motor.set_spmg(Spmg.PAUSE) is Result.STARTED
    assert motor.snapshot().mip == Mip.STOP
    run_until_idle(motor, clock)
    paused = motor.snapshot()
    assert (paused.dmov, paused.mip, paused.movn, paused.val) == (0, Mip.RETRY, 0, 20.0)
    assert paused.msta & Msta.DONE
    assert motor.set_spmg(Spmg.GO) is Result.STARTED
    assert motor.snapshot().mip == Mip.RETRY | Mip.MOVE
    run_until_idle(motor, clock)
    assert (motor.snapshot().rbv, motor.snapshot().dmov) == (20.0, 1)


def test_spmg_stop_ends_the_move_with_val_at_the_readback():
    motor, clock = make_motor(high_switch=50.0, user_limits=(-15.0, 40.0))
    motor.move_user(20.0)
    run_to(motor, clock, 0.5)
    motor.set_spmg(Spmg.STOP)
    run_until_idle(motor, clock)
    state = motor.snapshot()
    assert state.dmov == 1 and state.val == state.rbv < 20.0


def test_val_put_while_stopped_waits_for_go():
    motor, clock = make_motor()
    motor.set_spmg(Spmg.STOP)
    assert motor.move_user(2.0) is Result.STARTED
    run_until_idle(motor, clock)
    state = motor.snapshot()
    assert (state.dmov, state.val, state.rbv) == (0, 2.0, 0.0)
    motor.set_spmg(Spmg.GO)
    assert motor.snapshot().mip == Mip.MOVE
    run_until_idle(motor, clock)
    assert (motor.snapshot().dmov, motor.snapshot().rbv) == (1, 2.0)


def test_stop_while_paused_ends_the_record_wait_without_moving():
    motor, clock = make_motor(high_switch=50.0, user_limits=(-15.0, 40.0))
    motor.move_user(20.0)
    run_to(motor, clock, 0.5)
    motor.set_spmg(Spmg.PAUSE)
    run_until_idle(motor, clock)
    rbv = motor.snapshot().rbv
    motor.stop()
    state = motor.snapshot()
    assert (state.dmov, state.mip, state.rbv) == (1, Mip.DONE, rbv)


def test_set_mode_val_pulses_dmov():
    motor, clock = make_motor(start=2.0)
    motor.set_mode = 1
    motor.dmov = 1
    assert motor.move_user(5.0) is Result.DONE
    assert motor.snapshot().dmov == 1  # FOFF=Variable: done in the same processing
    motor.foff = 1
    motor.move_user(7.0)
    assert motor.snapshot().dmov == 0
    assert snapshot_now(motor, clock).dmov == 1


def test_sync_is_ignored_while_the_record_moves():
    motor, clock = make_motor()
    motor.move_user(3.0)
    run_to(motor, clock, 0.3)
    motor.sync()
    assert motor.snapshot().val == 3.0


def test_home_crosses_the_mark_turns_back_and_stops_on_it():
    motor, clock = make_motor(start=2.0, hvel=5.0)
    assert motor.home(forward=False) is Result.STARTED
    assert (motor.snapshot().homr, motor.snapshot().mip) == (1, Mip.HOMR)
    crossing = motor.next_event_time()
    run_to(motor, clock, crossing)
    assert motor.snapshot().msta & Msta.HOMED and motor.snapshot().dmov == 0
    run_to(motor, clock, crossing + 0.05)
    assert motor.snapshot().rbv < 0.0  # past the mark before it turns back
    run_until_idle(motor, clock)
    state = motor.snapshot()
    assert (state.dmov, state.homr, state.val, state.drbv) == (1, 0, 0.0, 0.0)
    assert state.msta & Msta.HOME and state.msta & Msta.HOMED and state.athm == 0


def test_homf_from_the_far_side_ends_at_the_switch_then_the_axis_goes_home():
    motor, clock = make_motor(start=2.0, hvel=5.0)
    motor.home(forward=True)  # away from the mark: motorSim runs into the high switch
    run_to(motor, clock, motor.next_event_time())
    at_switch = motor.snapshot()
    assert (at_switch.dmov, at_switch.hls, at_switch.homf, at_switch.movn) == (1, 1, 0, 0)
    assert at_switch.val == at_switch.rbv == pytest.approx(5.0, abs=0.001)
    run_to(motor, clock, motor.next_event_time())  # the switch releases
    external = motor.snapshot()
    assert (external.dmov, external.mip, external.movn, external.hls) == (
        0, Mip.EXTERNAL, 1, 0)
    run_until_idle(motor, clock)
    state = motor.snapshot()
    assert (state.dmov, state.mip, state.rbv, state.val) == (1, Mip.DONE, 0.0, 0.0)
    assert state.msta & Msta.HOMED


def test_home_at_hvel_0_pulses_dmov_without_moving():
    motor, clock = make_motor(start=2.0)
    assert motor.home(forward=True) is Result.STARTED
    assert (motor.snapshot().dmov, motor.snapshot().movn) == (0, 1)
    run_to(motor, clock, CONTROLLER_POLL)
    state = motor.snapshot()
    assert (state.dmov, state.homf, state.rbv) == (1, 0, 2.0)


def test_jog_stops_itself_within_jvel_of_the_soft_limit():
    motor, clock = make_motor(high_switch=50.0, user_limits=(-15.0, 40.0), jvel=10.0)
    motor.jog(forward=True, on=True)
    run_to(motor, clock, motor.next_event_time())
    state = motor.snapshot()
    assert state.rbv == pytest.approx(30.0, abs=0.001)  # HLM - JVEL
    assert (state.lvio, state.mip, state.jogf, state.dmov) == (1, Mip.STOP, 0, 0)
    run_until_idle(motor, clock)
    state = motor.snapshot()
    assert state.dmov == 1 and state.val == state.rbv < 40.0


def test_jog_inside_the_last_jvel_before_the_soft_limit_sets_lvio_without_moving():
    motor, _ = make_motor(start=3.5, jvel=1.0)  # HLM 4
    assert motor.jog(forward=True, on=True) is Result.IGNORED
    state = motor.snapshot()
    assert (state.lvio, state.jogf, state.dmov) == (1, 0, 1)


def test_dir_change_keeps_val_by_moving_the_offset():
    motor, _ = make_motor(start=2.0)
    motor.set_dir(1)
    state = motor.snapshot()
    assert (state.val, state.rbv, state.off, state.dir) == (2.0, 2.0, 4.0, 1)
    motor.foff = 1
    motor.set_dir(0)
    assert motor.snapshot().val == 6.0  # frozen offset: VAL follows the new direction


# --- limit-switch hysteresis, the home mark, the stop past a switch ------------------------
def test_the_stop_past_a_switch_grows_with_the_speed_it_met_it_at():
    """A stage stops past its switch by speed x TRIP_SETTLE_TIME / 2 (up to its hard
    stop): the reason homing approaches the switch a second time slowly."""
    overshoots = []
    for jvel in (2.0, 5.0, 10.0):
        motor, clock = make_motor(jvel=jvel)
        jog_to_high_switch(motor, clock)
        run_until_idle(motor, clock)
        overshoots.append(motor.snapshot().rbv - 5.0)
    assert overshoots == pytest.approx([v * TRIP_SETTLE_TIME / 2 for v in (2.0, 5.0, 10.0)],
                                       abs=1e-3)


def test_a_switch_with_hysteresis_releases_only_that_far_back_inside():
    motor, clock = make_motor(jvel=10.0, switch_hysteresis=0.5)
    jog_to_high_switch(motor, clock)  # engages at 5
    run_until_idle(motor, clock)
    motor.move_user(4.7)  # 0.3 back inside: still held
    run_until_idle(motor, clock)
    state = motor.snapshot()
    assert (state.rbv, state.hls, state.rhls) == (4.7, 1, 1)
    assert state.msta & Msta.PLUS_LS
    assert motor.jog(forward=True, on=True) is Result.IGNORED  # into the held switch
    assert motor.move_user(4.9) is Result.REFUSED
    motor.advance(clock.now)
    motor.move_user(4.0)  # back past 4.5: it lets go there, during the move
    released = motor.next_event_time()
    run_to(motor, clock, released)
    assert motor.user_position_at(released) == pytest.approx(4.5, abs=1e-9)
    state = motor.snapshot()
    assert state.hls == 0 and not state.msta & Msta.PLUS_LS and state.dmov == 0
    run_until_idle(motor, clock)
    assert motor.snapshot().rbv == 4.0
    # and it engages again where it always does, not at the release position
    motor.jog(forward=True, on=True)
    trip = motor.next_event_time()
    assert motor.user_position_at(trip) == pytest.approx(5.0, abs=1e-9)


def test_without_hysteresis_a_switch_releases_as_soon_as_the_axis_is_back_inside():
    motor, clock = make_motor(jvel=10.0)
    jog_to_high_switch(motor, clock)
    run_until_idle(motor, clock)
    motor.move_user(4.99)
    run_until_idle(motor, clock)
    assert motor.snapshot().hls == 0


def test_the_low_switch_has_the_same_hysteresis():
    motor, clock = make_motor(jvel=10.0, switch_hysteresis=0.5, start=-19.0, user_limits=None)
    motor.jog(forward=False, on=True)
    run_until_idle(motor, clock)
    assert motor.snapshot().lls == 1
    motor.move_user(-19.6)
    run_until_idle(motor, clock)
    assert motor.snapshot().lls == 1  # 0.4 inside
    motor.move_user(-19.4)
    run_until_idle(motor, clock)
    assert motor.snapshot().lls == 0


def test_a_start_on_a_switch_is_held_by_its_hysteresis():
    motor, clock = make_motor(switch_hysteresis=0.5, start=5.2)
    assert motor.snapshot().hls == 1
    motor.move_user(4.8)
    run_until_idle(motor, clock)
    assert motor.snapshot().hls == 1
    motor.move_user(4.4)
    run_until_idle(motor, clock)
    assert motor.snapshot().hls == 0


def test_homing_from_the_far_side_with_hysteresis_still_goes_home():
    motor, clock = make_motor(start=2.0, hvel=5.0, switch_hysteresis=0.5)
    motor.home(forward=True)
    run_until_idle(motor, clock)
    state = motor.snapshot()
    assert (state.dmov, state.mip, state.rbv, state.hls) == (1, Mip.DONE, 0.0, 0)
    assert state.msta & Msta.HOMED and state.msta & Msta.HOME


def test_the_home_mark_can_be_placed():
    """motorSimConfigAxis takes the home position; the sim config's `home` likewise."""
    motor, clock = make_motor(start=-10.0, hvel=5.0, home=-3.0)
    assert not motor.snapshot().msta & Msta.HOME
    motor.home(forward=True)
    run_until_idle(motor, clock)
    state = motor.snapshot()
    assert (state.rbv, state.drbv) == (-3.0, -3.0)
    assert state.msta & Msta.HOME and state.msta & Msta.HOMED and state.athm == 0
    # the mark is physical: a SET with FOFF=Frozen (new dial) does not move it
    motor.set_mode, motor.foff = 1, 1
    motor.move_user(7.0)
    motor.advance(clock.now)
    motor.set_mode = 0
    motor.move_user(0.0)
    run_until_idle(motor, clock)
    motor.home(forward=False)
    run_until_idle(motor, clock)
    assert motor.snapshot().rbv == 7.0 and motor.snapshot().msta & Msta.HOME


def test_home_and_hysteresis_are_read_from_the_sim_config():
    from benchioc.config import SimMotorConfig

    params = params_from_config(SimMotorConfig(home=2.0, switch_hysteresis=0.3), None)
    assert (params.home, params.switch_hysteresis) == (2.0, 0.3)
    params = params_from_config(SimMotorConfig(), None)
    assert (params.home, params.switch_hysteresis) == (0.0, 0.0)


@pytest.mark.parametrize(("values", "words"), [
    ({"home": 70.0}, "home (70) must lie between low_switch (-60) and high_switch (60)"),
    ({"switch_hysteresis": -1.0}, "greater than or equal to 0"),
    ({"switch_hysteresis": 200.0}, "switch_hysteresis (200) must be less than the distance"
                                   " between the switches"),
])
def test_bad_home_or_hysteresis_is_refused(values, words):
    from pydantic import ValidationError

    from benchioc.config import SimMotorConfig

    with pytest.raises(ValidationError, match=words.replace("(", r"\(").replace(")", r"\)")):
        SimMotorConfig(**values)


def test_a_default_home_outside_the_switches_is_allowed():
    """motorSim lets the mark lie anywhere (a home then never finds it)."""
    from benchioc.config import SimMotorConfig

    assert SimMotorConfig(low_switch=10.0, high_switch=50.0).home == 0.0
