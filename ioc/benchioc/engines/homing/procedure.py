"""The homing procedure of one motor, as pure asyncio logic: on its hard limit switch
(method limit, the seed's) or with the controller's own home routine (method
home_switch: HOMF/HOMR at HVEL, then the same calibration, soft limits and centering).

The procedure (DESIGN.md "Homing") talks to a motor only through the small
`HomingMotor` protocol: motor.EpicsMotor implements it over Channel Access, and the unit
tests implement it with a fake motor on a virtual clock. Nothing here imports softioc or
aioca, so the engine runs the same in the IOC, in the CLI and in the tests.

The genuine motor record shapes the procedure:
- a limit-switch trip stops the record at once (DMOV=1) and leaves VAL at the trip
  position, while the controller is still settling onto the switch; the MSTA DONE bit
  comes last. Calibrating from that stale VAL is off by the overshoot, so the engine
  waits for DMOV=1 *and* DONE, then SYNCs VAL to the readback before SET.
- JOGF/JOGR written while already on that switch is ignored, so the jog is skipped.
- DHLM=DLLM=0 disables the soft limits; limits are always written in an order that
  never inverts the range.
- HOMF/HOMR (method home_switch) do nothing but pulse DMOV at HVEL=0, clear MSTA
  HOMED at the start (its first monitor may still show the last home's HOMED, with
  DONE clear), and are ignored while the raw switch ahead is active (MSTA PLUS_LS for
  HOMF, MINUS_LS for HOMR, whatever DIR). A home that meets a limit switch first ends
  the record's home there (DMOV=1) while the controller turns round and still goes
  home, which the record follows as an external move: done is DMOV=1, MSTA DONE and
  MSTA HOMED (or ATHM, MSTA bit 3, for a driver that reports a home switch instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from ...facts.motorrecord import Msta
from ..motormodel import SPMG_GO, Direction, MotorError, MotorStatus, MotorTimeout
from .settings import (
    HOME_FIELD,
    HomeSwitchMotor,
    HomingError,
    HomingMethod,
    HomingMotor,
    HomingSettings,
    HomingState,
    HomingUpdate,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


# Progress (%) at the start of each phase; seeking and centering fill their spans.
_SEEK_START, _SEEK_END = 5.0, 50.0
_BACKED_OFF, _APPROACHED = 55.0, 60.0
_SETTLED, _CALIBRATED, _LIMITS_SET = 65.0, 75.0, 80.0
_CENTER_END = 99.0
# Seconds added to derived timeouts for CA round trips and controller latency.
_TIMEOUT_MARGIN = 2.0
# Bound on each clean-up step, so an abort always ends even with a dead motor.
_CLEANUP_TIMEOUT = 5.0
# The final approach: a tenth of the move speed VELO (not of JVEL, which users raise to
# seek faster: the calibration must not follow it), from half a second's creep away.
_CREEP_FRACTION = 0.1
_CREEP_MIN_STEPS_S = 10  # never slower than this many motor steps a second
_CREEP_RUN_S = 0.5
_BACKOFF_TRIES = 5  # the back-off distance doubles each time: up to 16x
_SWITCH_RELEASE_S = 0.5  # for the switch's monitor after a back-off move ended
# The positions passed on the way (routine reports: seeking, homing, centering) at most
# this often: each report writes the motor's State, Progress and Message records, and at
# every 1 % of progress a homing made about 35 of them (3,500 in a 100-motor HomeAll).
_ROUTINE_REPORT_S = 0.2
# Every homing of an IOC shares its one event loop and one CA circuit per motor IOC: a
# hundred motors homing at once (HomeAll) post monitors faster than a loaded machine
# delivers them, and replies then arrive seconds late. The margins, clean-up bounds and
# stall windows above are for up to this many homings at once, and grow in proportion
# beyond (a 100-motor HomeAll on two loaded cores failed a third of its motors on the
# fixed ones: moves "not finished", stalls "seen" on a motor already on its switch).
_HOMINGS_PER_MARGIN = 10
_running = 0  # homings in progress in this process


def load_factor() -> float:
    """How much longer than alone a CA exchange may take now: 1 up to
    _HOMINGS_PER_MARGIN homings at once, in proportion above."""
    return max(1.0, _running / _HOMINGS_PER_MARGIN)


def _margin() -> float:
    return _TIMEOUT_MARGIN * load_factor()


def _cleanup_timeout() -> float:
    return _CLEANUP_TIMEOUT * load_factor()


def _fault(status: MotorStatus) -> str | None:
    """A reason to stop homing at once, seen in any phase, or None."""
    if status.problem:
        return "amplifier fault: MSTA PROBLEM bit set"
    if status.comm_err:
        return "controller communication error: MSTA COMM_ERR bit set"
    if status.slip_stall:
        return "motor slipped or stalled: MSTA SLIP_STALL bit set"
    if status.hls and status.lls:
        return "both limit switches active — check the cabling"
    if status.spmg != SPMG_GO:
        return f"motor disabled: SPMG is {status.spmg_name}, set it to Go"
    return None


def home_found(status: MotorStatus) -> bool:
    """The controller says its home routine found home: MSTA HOMED, or ATHM (MSTA bit 3,
    the home switch) for a driver that reports that instead."""
    return status.homed_bit or bool(status.msta & Msta.HOMELS)


def _preflight_problem(status: MotorStatus, method: HomingMethod) -> str | None:
    if not status.connected:
        return "motor record not connected"
    fault = _fault(status)
    if fault:
        return fault
    if not status.cnen and status.gain_support:
        # Drivers without closed-loop support (MSTA GAIN_SUPPORT clear, motorSim and most
        # steppers) ignore CNEN and move anyway; only a servo loop that is off stops them.
        return "closed-loop control disabled: CNEN is Disable, set it to Enable"
    if not status.dmov:
        return "motor is moving (DMOV=0): wait for it to stop, or stop it first"
    if method is HomingMethod.LIMIT and not status.jvel > 0:
        return f"jog speed JVEL is {status.jvel:g} {status.speed_unit}: set a positive speed"
    if method is HomingMethod.HOME_SWITCH and not status.hvel > 0:
        return (f"home speed HVEL is {status.hvel:g} {status.speed_unit}: the motor record's"
                f" HOMF/HOMR do nothing at HVEL=0; set a positive home speed")
    if not status.velo > 0:
        return f"speed VELO is {status.velo:g} {status.speed_unit}: set a positive speed"
    return None


class _Procedure:
    """One homing run of one motor; home() below is its only user."""

    def __init__(
        self,
        motor: HomingMotor,
        direction: Direction,
        settings: HomingSettings,
        report: Callable[[HomingUpdate], None],
    ) -> None:
        self.motor = motor
        self.name = motor.name
        self.direction = direction
        self.settings = settings
        self._report = report
        self.state = HomingState.SEEKING
        self.progress = 0.0
        self.phase = "preparing"
        self.saved_dial_limits: tuple[float, float] | None = None
        self.saved_jvel: float | None = None  # while the creep speed is in JVEL
        self.backed_off = 0.0  # how far back from the trip the switch released
        self.final_limits_set = False
        self.acted = False  # nothing to undo until the first write to the motor
        self._routine_at = -math.inf  # loop time of the last routine report

    # --- reporting ------------------------------------------------------------------
    def report(self, state: HomingState, message: str, progress: float | None = None,
               *, routine: bool = False) -> None:
        """Tell the subscribers; the log at INFO gets what happened, the positions passed
        on the way (routine) only at DEBUG, and at most every _ROUTINE_REPORT_S."""
        if routine:
            now = self.loop_time
            if now - self._routine_at < _ROUTINE_REPORT_S:
                return  # the next one carries the progress made meanwhile
            self._routine_at = now
        self.state = state
        if progress is not None:
            self.progress = max(self.progress, min(progress, 100.0))
        log.log(logging.DEBUG if routine else logging.INFO, "%s", message)
        self._report(HomingUpdate(state, round(self.progress, 1), message))

    def say(self, text: str) -> str:
        return f"{self.name}: {text}"

    def error(self, text: str) -> HomingError:
        return HomingError(self.say(text))

    @property
    def status(self) -> MotorStatus:
        return self.motor.status

    @property
    def loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    def position_tolerance(self) -> float:
        if self.settings.position_tolerance > 0:
            return self.settings.position_tolerance
        return max(1e-3, 10.0 ** -max(0, self.status.prec))

    # --- the procedure ----------------------------------------------------------------
    async def run(self) -> None:
        if self.settings.method is HomingMethod.HOME_SWITCH:
            await self.run_home_switch()
            return
        self.report(HomingState.SEEKING, self.say(f"preparing to home {self.direction.word}"), 0)
        self.preflight()
        await self.disable_soft_limits()
        await self.seek()
        await self.settle(HomingState.SEEKING, _SEEK_END)
        # Where a stage stops past its switch grows with the speed it hit it at: the
        # calibration is taken after a slow second approach, so the jog speed drops out.
        creep = self.creep_speed(self.status)
        await self.back_off(creep)
        await self.approach(creep)
        await self.settle(HomingState.CALIBRATING, _SETTLED)
        await self.restore_jog_speed()
        await self.calibrate()
        await self.apply_soft_limits()
        await self.center()

    async def run_home_switch(self) -> None:
        """Method home_switch: the controller's HOMF/HOMR at HVEL instead of steps 3-5."""
        field = HOME_FIELD[self.direction]
        self.report(HomingState.SEEKING, self.say(
            f"preparing to home {self.direction.word} with the controller's home routine"
            f" ({field})"), 0)
        self.preflight()
        await self.disable_soft_limits()
        await self.home_routine()
        await self.calibrate()
        await self.apply_soft_limits()
        await self.center()

    def preflight(self) -> None:
        self.settings.check(self.name)
        method = self.settings.method
        if method is HomingMethod.HOME_SWITCH and not isinstance(self.motor, HomeSwitchMotor):
            raise self.error("this motor client cannot start the controller's home routine"
                             " (HOMF/HOMR), which method home_switch needs")
        problem = _preflight_problem(self.status, method)
        if problem:
            raise self.error(problem)
        if method is HomingMethod.HOME_SWITCH:
            status, field = self.status, HOME_FIELD[self.direction]
            ahead = status.plus_ls if self.direction is Direction.HI else status.minus_ls
            if ahead:
                side = "plus" if self.direction is Direction.HI else "minus"
                other = "low (HOMR)" if self.direction is Direction.HI else "high (HOMF)"
                raise self.error(
                    f"on the controller's {side} limit switch (MSTA), the way {field} starts:"
                    f" the motor record ignores {field} there; home {other} instead")

    async def disable_soft_limits(self) -> None:
        self.phase = "disabling the soft limits"
        status = self.status
        self.saved_dial_limits = (status.dllm, status.dhlm)
        self.acted = True
        log.info(
            "%s: saved dial soft limits DLLM=%g DHLM=%g", self.name, status.dllm, status.dhlm
        )
        await self.motor.set_dial_limits(0.0, 0.0)
        self.report(HomingState.SEEKING, self.say("soft limits disabled (DLLM=DHLM=0)"), 3)

    def seek_timeout(self, status: MotorStatus) -> float:
        if self.settings.seek_timeout > 0:
            return self.settings.seek_timeout
        return self.settings.travel * 1.5 / status.jvel + 2 * status.accl + _margin()

    def stall_distance(self, speed: float) -> float:
        """Less than this in stall_time at `speed` (JVEL, HVEL) is a stall."""
        if self.settings.stall_distance > 0:
            return self.settings.stall_distance
        return 0.05 * speed * self.settings.stall_time

    def stall_window(self) -> float:
        """How long the motor may show less than stall_distance before it is a stall:
        stall_time, longer while many homings share the loop (load_factor)."""
        return self.settings.stall_time * load_factor()

    async def seek(self) -> None:
        d = self.direction
        self.phase = f"seeking the {d.switch_name}"
        status = self.status
        if status.on_switch(d):
            self.report(
                HomingState.SEEKING,
                self.say(f"already on the {d.switch_name} at {status.fmt(status.rbv)}; no jog"),
                _SEEK_END,
            )
            return
        self.report(
            HomingState.SEEKING,
            self.say(f"seeking the {d.switch_name} at {status.jvel:g} {status.speed_unit}"),
            _SEEK_START,
        )
        await self.jog_onto_switch(self.seek_timeout(status))

    async def jog_onto_switch(self, timeout: float) -> None:
        """Jog at the current JVEL until the switch, watched for stalls and faults."""
        deadline = self.loop_time + timeout
        start = self.status.rbv
        await self.motor.jog(self.direction)
        status = await self.wait_until_moving(deadline)
        await self.watch_seek(status, start, deadline, timeout)

    async def wait_until_moving(self, deadline: float) -> MotorStatus:
        """The status goes on showing DMOV=1 until the record's reply to the jog arrives."""
        d = self.direction
        status = self.status
        limit = min(deadline - self.loop_time, self.stall_window() + status.accl)
        try:
            return await self.motor.wait_for(
                lambda s: not s.dmov or s.on_switch(d) or _fault(s) is not None,
                limit,
                f"the motor to start moving after {d.jog_field}",
            )
        except MotorTimeout:
            raise self.error(
                f"motor did not start moving within {limit:.3g} s after {d.jog_field}=1"
                f" (still at {status.fmt(self.status.rbv)})"
            ) from None

    async def watch_seek(
        self, status: MotorStatus, start: float, deadline: float, timeout: float
    ) -> None:
        """Follow the jog until the switch; fail on faults, stalls, early stops, timeout."""
        d = self.direction
        stall_distance = self.stall_distance(status.jvel)
        reference, reference_time = status.rbv, self.loop_time
        while True:
            self.raise_on_fault(status)
            if status.on_switch(d):
                self.report_seek_progress(status.rbv, start)
                return
            if status.dmov:
                status = await self.confirm_stopped_short()
                continue
            now = self.loop_time
            if now >= deadline:
                raise self.seek_timed_out(timeout, status)
            until = min(deadline, reference_time + self.stall_window())
            ref = reference

            def moved_or_ended(s: MotorStatus, ref: float = ref) -> bool:
                return (abs(s.rbv - ref) > stall_distance or s.dmov or s.on_switch(d)
                        or _fault(s) is not None)

            try:
                status = await self.motor.wait_for(
                    moved_or_ended,
                    until - now,
                    f"the motor to move towards the {d.switch_name}",
                )
            except MotorTimeout:
                status = self.status
                if self.loop_time >= deadline:
                    raise self.seek_timed_out(timeout, status) from None
                raise self.error(
                    f"motor stalled at {status.fmt(status.rbv)}: it moved less than"
                    f" {status.fmt(stall_distance)} in {self.stall_window():.3g} s while"
                    f" jogging at {status.jvel:g} {status.speed_unit}"
                ) from None
            if abs(status.rbv - reference) > stall_distance:
                reference, reference_time = status.rbv, self.loop_time
                self.report_seek_progress(status.rbv, start)

    async def confirm_stopped_short(self) -> MotorStatus:
        """DMOV=1 without the switch: give the switch's own monitor update a moment (the
        fields are separate channels), then call it an early stop."""
        d = self.direction
        grace = min(1.0, self.settings.stall_time) * load_factor()
        with contextlib.suppress(MotorTimeout):
            return await self.motor.wait_for(
                lambda s: s.on_switch(d) or _fault(s) is not None, grace, f"the {d.switch_name}"
            )
        status = self.status
        raise self.error(f"motor stopped at {status.fmt(status.rbv)} before reaching the"
                         f" {d.switch_name}")

    def seek_timed_out(self, timeout: float, status: MotorStatus) -> HomingError:
        return self.error(
            f"{self.direction.switch_name} not reached within {timeout:.3g} s (travel"
            f" {self.settings.travel:g} {status.egu} at {status.jvel:g} {status.speed_unit};"
            f" now at {status.fmt(status.rbv)})"
        )

    def report_seek_progress(self, rbv: float, start: float) -> None:
        fraction = min(abs(rbv - start) / self.settings.travel, 1.0)
        progress = _SEEK_START + fraction * (_SEEK_END - _SEEK_START)
        if progress - self.progress >= 1.0:
            status = self.status
            self.report(
                HomingState.SEEKING,
                self.say(f"seeking the {self.direction.switch_name}, at {status.fmt(rbv)}"),
                progress, routine=True,
            )

    def raise_on_fault(self, status: MotorStatus) -> None:
        fault = _fault(status)
        if fault:
            raise self.error(f"{fault} (while {self.phase}, at {status.fmt(status.rbv)})")

    async def settle(self, state: HomingState, progress: float) -> None:
        d = self.direction
        self.phase = f"settling on the {d.switch_name}"
        self.report(state, self.say(f"on the {d.switch_name}; waiting for the motor to settle"))
        what = f"the motor to settle on the {d.switch_name} (DMOV=1 and MSTA DONE)"
        grace = self.settle_grace()
        try:
            status = await self.motor.wait_for(self.settled_or_fault, grace, what)
        except MotorTimeout:
            # The record stopped at the trip but the controller still reports motion: a
            # driver creeping back onto the switch (motorSim on an axis that has not made
            # an absolute move yet returns at 1 step/s). A STOP ends it where it is.
            status = self.status
            log.info("%s: still moving %.3g s after the %s trip (at %s); sending STOP",
                     self.name, grace, d.switch_name, status.fmt(status.rbv))
            await self.motor.stop()
            timeout = self.settings.settle_timeout
            try:
                status = await self.motor.wait_for(
                    self.settled_or_fault, max(timeout - grace, 1.0), what)
            except MotorTimeout:
                raise self.error(f"timed out after {timeout:.3g} s waiting for {what}; a STOP"
                                 f" after {grace:.3g} s did not end the motion") from None
        self.raise_on_fault(status)
        if not status.on_switch(d):
            log.warning("%s: settled off the %s at %g", self.name, d.switch_name, status.rbv)
        self.report(
            state, self.say(f"settled on the {d.switch_name} at {status.fmt(status.rbv)}"),
            progress,
        )

    # --- method home_switch: the controller's home routine ------------------------------
    def home_timeout(self, status: MotorStatus) -> float:
        """Worst case: to the far limit switch and all the way back, at HVEL."""
        if self.settings.seek_timeout > 0:
            return self.settings.seek_timeout
        return 2 * self.settings.travel * 1.5 / status.hvel + 4 * status.accl + _margin()

    async def home_routine(self) -> None:
        """HOMF/HOMR, then wait until the controller is at rest with home found."""
        field = HOME_FIELD[self.direction]
        self.phase = f"homing with {field}"
        status = self.status
        assert isinstance(self.motor, HomeSwitchMotor)  # checked in preflight
        timeout = self.home_timeout(status)
        deadline = self.loop_time + timeout
        self.report(HomingState.SEEKING, self.say(
            f"homing with {field} at {status.hvel:g} {status.speed_unit} (the controller's"
            f" home routine)"), _SEEK_START)
        await self.motor.start_home(self.direction)
        limit = min(timeout, self.stall_window() + status.accl)
        try:
            # the record takes the command: DMOV=0 (the first MSTA may still show the last
            # home's HOMED; DONE is clear in it, and only a later DMOV=1 ends the wait)
            status = await self.motor.wait_for(
                lambda s: not s.dmov or _fault(s) is not None, limit,
                f"the motor record to start {field}")
        except MotorTimeout:
            raise self.error(f"the motor record did not start homing within {limit:.3g} s"
                             f" after {field}=1 (DMOV stayed 1)") from None
        await self.watch_home(status, deadline, timeout)
        status = self.status
        self.report(HomingState.SEEKING, self.say(
            f"home found by {field}: at rest at {status.fmt(status.rbv)} (MSTA"
            f" {'HOMED' if status.homed_bit else 'ATHM'})"), _SETTLED)

    async def watch_home(self, status: MotorStatus, deadline: float, timeout: float) -> None:
        """Follow the home routine until the controller is at rest with home found;
        fail on faults, stalls, a routine that ends without home, or timeout."""
        field = HOME_FIELD[self.direction]
        stall_distance = self.stall_distance(status.hvel)
        reference, reference_time = status.rbv, self.loop_time
        travelled, last = 0.0, status.rbv  # for the progress shown
        while True:
            self.raise_on_fault(status)
            travelled, last = travelled + abs(status.rbv - last), status.rbv
            if status.settled():
                if home_found(status):
                    return
                status = await self.confirm_home_ended()
                continue
            now = self.loop_time
            if now >= deadline:
                raise self.error(f"home not found by {field} within {timeout:.3g} s (travel"
                                 f" {self.settings.travel:g} {status.egu} at {status.hvel:g}"
                                 f" {status.speed_unit}; now at {status.fmt(status.rbv)})")
            until = min(deadline, reference_time + self.stall_window())
            ref = reference

            def moved_or_ended(s: MotorStatus, ref: float = ref) -> bool:
                return abs(s.rbv - ref) > stall_distance or s.settled() or _fault(s) is not None

            try:
                status = await self.motor.wait_for(moved_or_ended, until - now,
                                                   f"the home routine ({field}) to go on")
            except MotorTimeout:
                status = self.status
                if self.loop_time >= deadline:
                    continue  # the timeout, in words, above
                raise self.error(
                    f"motor stalled at {status.fmt(status.rbv)} while homing with {field}: it"
                    f" moved less than {status.fmt(stall_distance)} in"
                    f" {self.stall_window():.3g} s") from None
            if abs(status.rbv - reference) > stall_distance:
                reference, reference_time = status.rbv, self.loop_time
                # the way home is unknown (it may run to a limit switch and back): the
                # distance travelled against the travel between the switches
                fraction = min((travelled + abs(status.rbv - last)) / self.settings.travel, 1.0)
                progress = _SEEK_START + fraction * (_SEEK_END - _SEEK_START)
                if progress - self.progress >= 1.0:
                    self.report(HomingState.SEEKING, self.say(
                        f"homing with {field}, at {status.fmt(status.rbv)}"), progress,
                        routine=True)

    async def confirm_home_ended(self) -> MotorStatus:
        """At rest without HOMED or ATHM: the bits travel in MSTA's own monitor, and a
        controller may pause before it moves on; give it a moment, then fail in words."""
        field = HOME_FIELD[self.direction]
        grace = self.settle_grace()
        with contextlib.suppress(MotorTimeout):
            return await self.motor.wait_for(
                lambda s: not s.settled() or home_found(s) or _fault(s) is not None, grace,
                "MSTA HOMED")
        status = self.status
        raise self.error(
            f"the controller's home routine ({field}) ended at {status.fmt(status.rbv)}"
            f" without finding home (neither MSTA HOMED nor ATHM set): no home switch"
            f" or index that way?")

    def creep_speed(self, status: MotorStatus) -> float:
        if self.settings.creep_speed > 0:
            return self.settings.creep_speed
        speed = status.velo if status.velo > 0 else status.jvel
        creep = max(_CREEP_FRACTION * speed, _CREEP_MIN_STEPS_S * abs(status.mres))
        return min(creep, status.jvel) if status.jvel > 0 else creep

    def backoff_distance(self, creep: float) -> float:
        if self.settings.backoff > 0:
            return self.settings.backoff
        return max(creep * _CREEP_RUN_S, 10 * self.position_tolerance())

    async def back_off(self, creep: float) -> None:
        """Move off the switch, past the point where it tripped, until it releases.

        The trip is seen a readback period after the switch engaged (motorSim polls every
        0.1 s: 4 mm at 40 mm/s) and a switch may have hysteresis, so the distance is
        doubled until the switch releases, _BACKOFF_TRIES times at most."""
        d = self.direction
        self.phase = f"backing off the {d.switch_name}"
        status = self.status
        away = -1.0 if d is Direction.HI else 1.0
        # VAL holds the readback at the trip; the motor ran on past it
        trip = min(status.val, status.rbv) if d is Direction.HI else max(status.val, status.rbv)
        distance = self.backoff_distance(creep)
        for _ in range(_BACKOFF_TRIES):
            target = trip + away * distance
            self.report(HomingState.SEEKING,
                        self.say(f"backing off the {d.switch_name} to {status.fmt(target)}"))
            await self.move_watched(target, f"backing off the {d.switch_name} to")
            with contextlib.suppress(MotorTimeout):  # the switch's monitor may lag the move
                status = await self.motor.wait_for(
                    lambda s: not s.on_switch(d) or _fault(s) is not None,
                    _SWITCH_RELEASE_S * load_factor(), f"the {d.switch_name} to release")
            status = self.status
            self.raise_on_fault(status)
            if not status.on_switch(d):
                self.backed_off = distance
                self.report(HomingState.SEEKING,
                            self.say(f"off the {d.switch_name} at {status.fmt(status.rbv)}"),
                            _BACKED_OFF)
                return
            distance *= 2
        raise self.error(
            f"the {d.switch_name} is still active at {status.fmt(status.rbv)},"
            f" {status.fmt(distance / 2)} back from where it tripped: set homing.backoff"
            f" above the switch's hysteresis")

    async def approach(self, creep: float) -> None:
        """Jog onto the switch again at the creep speed."""
        d = self.direction
        self.phase = f"approaching the {d.switch_name}"
        await self.set_jog_speed(creep)
        status = self.status
        self.report(HomingState.SEEKING, self.say(
            f"approaching the {d.switch_name} at {status.jvel:g} {status.speed_unit}"))
        distance = self.backed_off + abs(status.rbv - status.val)
        await self.jog_onto_switch(
            3 * distance / status.jvel + 2 * status.accl + _margin())
        self.report(HomingState.SEEKING, self.say(
            f"reached the {d.switch_name} at {status.jvel:g} {status.speed_unit}"), _APPROACHED)

    async def set_jog_speed(self, jvel: float) -> None:
        status = self.status
        if self.saved_jvel is None:
            self.saved_jvel = status.jvel
        await self.motor.set_jog_speed(jvel)
        try:
            await self.motor.wait_for(
                lambda s: math.isclose(s.jvel, jvel, rel_tol=1e-6, abs_tol=1e-12),
                self.settings.settle_timeout, f"JVEL to read {jvel:g}")
        except MotorTimeout:
            raise self.error(
                f"the jog speed JVEL reads {self.status.jvel:g} {status.speed_unit}, not the"
                f" creep speed {jvel:g} {status.speed_unit} written: is it below VBAS or"
                f" above VMAX? set homing.creep_speed") from None

    async def restore_jog_speed(self) -> None:
        if self.saved_jvel is not None:
            await self.motor.set_jog_speed(self.saved_jvel)
            self.saved_jvel = None

    async def move_watched(self, target: float, what: str,
                           on_status: Callable[[MotorStatus], None] = lambda s: None) -> None:
        """A put-callback move with faults watched; a timeout is reported in words."""
        status = self.status
        distance = abs(target - status.rbv)
        timeout = self.move_timeout(status, distance)
        try:
            await self.while_watching(self.motor.move(target, timeout), on_status)
        except MotorTimeout:
            status = self.status
            raise self.error(
                f"{what} {status.fmt(target)} did not finish within {timeout:.3g} s"
                f" (distance {status.fmt(distance)} at {status.velo:g} {status.speed_unit};"
                f" now at {status.fmt(status.rbv)})") from None

    @staticmethod
    def settled_or_fault(status: MotorStatus) -> bool:
        return status.settled() or _fault(status) is not None

    def settle_grace(self) -> float:
        """How long a controller may take to come to rest on the switch on its own:
        a deceleration and a return at speed (measured on motorSim: 0.6 s)."""
        return min(self.settings.settle_timeout, (2 * self.status.accl + 1.0) * load_factor())

    async def calibrate(self) -> None:
        """SYNC (VAL takes the readback), then SET, VAL = the calibrated position, USE."""
        target = self.settings.calibrated_position(self.direction)
        where = (self.direction.switch_name if self.settings.method is HomingMethod.LIMIT
                 else "controller's home")
        self.phase = "calibrating"
        status = self.status
        self.report(
            HomingState.CALIBRATING,
            self.say(f"calibrating the {where} position {status.fmt(status.rbv)} to"
                     f" {status.fmt(target)}"),
        )
        await self.motor.sync()
        await self.motor.set_position(target)
        status = await self.readback_at(target, "after calibration the readback is", "")
        self.report(
            HomingState.CALIBRATING,
            self.say(f"calibrated: the {where} is at {status.fmt(target)}"),
            _CALIBRATED,
        )

    async def apply_soft_limits(self) -> None:
        self.phase = "setting the soft limits"
        s = self.settings
        await self.motor.set_user_limits(s.lo_lim, s.hi_lim)
        self.final_limits_set = True
        status = self.status
        self.report(
            HomingState.CALIBRATING,
            self.say(f"soft limits set: LLM={status.fmt(s.lo_lim)} HLM={status.fmt(s.hi_lim)}"),
            _LIMITS_SET,
        )

    def move_timeout(self, status: MotorStatus, distance: float) -> float:
        if self.settings.move_timeout > 0:
            return self.settings.move_timeout
        return distance * 1.5 / status.velo + 2 * status.accl + _margin()

    async def center(self) -> None:
        center = self.settings.center
        self.phase = "moving to center"
        status = self.status
        start = status.rbv
        self.report(
            HomingState.CENTERING,
            self.say(f"moving to center {status.fmt(center)} at {status.velo:g}"
                     f" {status.speed_unit}"),
            _LIMITS_SET,
        )
        await self.move_watched(center, "move to center",
                                lambda s: self.center_progress(s, start))
        await self.verify_center()

    def center_progress(self, status: MotorStatus, start: float) -> None:
        distance = abs(self.settings.center - start)
        fraction = min(abs(status.rbv - start) / distance, 1.0) if distance > 0 else 1.0
        progress = _LIMITS_SET + fraction * (_CENTER_END - _LIMITS_SET)
        if progress - self.progress >= 1.0:
            self.report(
                HomingState.CENTERING,
                self.say(f"moving to center, at {status.fmt(status.rbv)}"),
                progress, routine=True,
            )

    async def while_watching(
        self, operation: Awaitable[T], on_status: Callable[[MotorStatus], None]
    ) -> T:
        """Run an operation while faults and disconnects are watched; a fault cancels it."""
        operation_task = asyncio.ensure_future(operation)
        watch_task = asyncio.ensure_future(self.watch_faults(on_status))
        try:
            await asyncio.wait({operation_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
            if watch_task.done():
                watch_task.result()  # raises the fault or the disconnection
            return operation_task.result()
        finally:
            for task in (operation_task, watch_task):
                task.cancel()
            await asyncio.gather(operation_task, watch_task, return_exceptions=True)

    async def watch_faults(self, on_status: Callable[[MotorStatus], None]) -> None:
        seen = self.status
        while True:
            previous = seen
            seen = await self.motor.wait_for(
                lambda s: s is not previous, math.inf, f"the end of {self.phase}"  # noqa: B023
            )
            self.raise_on_fault(seen)
            on_status(seen)

    async def readback_at(self, target: float, words: str, hint: str) -> MotorStatus:
        """The status once the readback shows target (its monitor travels apart from the
        put that caused it); a HomingError "<words> X, not target (tolerance...<hint>)"
        when it does not within the settle timeout."""
        tolerance = self.position_tolerance()
        try:
            # a fault that ended the move (its put-callback completes before the MSTA
            # monitor that says why) is the reason, not the position it left
            status = await self.motor.wait_for(
                lambda s: abs(s.rbv - target) <= tolerance or _fault(s) is not None,
                self.settings.settle_timeout, f"the readback to show {self.status.fmt(target)}")
        except MotorTimeout:
            status = self.status
            raise self.error(
                f"{words} {status.fmt(status.rbv)}, not {status.fmt(target)} (tolerance"
                f" {status.fmt(tolerance)}{hint})") from None
        self.raise_on_fault(status)
        return status

    async def verify_center(self) -> None:
        """The put-callback and the RBV monitor travel separately: wait for the readback."""
        center = self.settings.center
        status = await self.readback_at(
            center, "after the move to center the motor is at",
            "; soft limit violation or the motor stopped early?")
        self.phase = "homed"
        when = datetime.now().astimezone().strftime("%H:%M:%S")
        self.report(
            HomingState.HOMED,
            self.say(f"homed at {when}, now at center {status.fmt(status.rbv)}"),
            100.0,
        )

    # --- failure and abort ------------------------------------------------------------
    async def clean_up(self) -> list[str]:
        """Stop the motor and put the soft limits back; returns what could not be done."""
        problems: list[str] = []
        if not self.acted:
            return problems  # refused in preflight: the motor may be someone else's move
        try:
            await asyncio.wait_for(self.motor.stop(), _cleanup_timeout())
        except Exception as error:  # clean-up goes on whatever broke
            problems.append(f"STOP failed ({_reason(error)})")
        else:
            problems += await self.confirm_stopped()
        if self.saved_jvel is not None:
            jvel = self.saved_jvel
            try:
                await asyncio.wait_for(self.restore_jog_speed(), _cleanup_timeout())
            except Exception as error:
                problems.append(f"jog speed NOT restored to JVEL={jvel:g} ({_reason(error)})")
        if self.saved_dial_limits is not None and not self.final_limits_set:
            dllm, dhlm = self.saved_dial_limits
            try:
                await asyncio.wait_for(self.motor.set_dial_limits(dllm, dhlm), _cleanup_timeout())
            except Exception as error:
                problems.append(
                    f"soft limits NOT restored to DLLM={dllm:g} DHLM={dhlm:g} ({_reason(error)})"
                )
        return problems

    async def confirm_stopped(self) -> list[str]:
        """STOP is a request: a controller that ignores it leaves the axis moving, and
        "motor stopped" must not be claimed then."""
        if self.status.comm_err:
            # the readbacks are frozen: waiting would only tell us about the past
            return ["STOP sent but not confirmed: the controller reports a communication"
                    " error (MSTA COMM_ERR), check the axis at the controller"]
        timeout = max(self.status.accl, 0.0) + _margin()
        try:
            await self.motor.wait_for(lambda s: s.dmov, timeout, "the motor to stop")
        except MotorTimeout:
            status = self.status
            return [f"the motor did not stop after STOP: still moving (DMOV=0) at"
                    f" {status.fmt(status.rbv)} {timeout:.3g} s later; stop it at the"
                    f" controller"]
        except Exception as error:  # e.g. disconnected: the stop cannot be confirmed
            return [f"stop not confirmed ({_reason(error)})"]
        return []

    def cleanup_words(self, problems: list[str]) -> str:
        if not self.acted:
            return ""
        if problems:
            return "; " + "; ".join(problems)
        if self.saved_dial_limits is not None and not self.final_limits_set:
            return "; motor stopped, soft limits restored"
        return "; motor stopped"


async def _run_to_end(operation: Awaitable[T]) -> tuple[T, bool]:
    """Finish an operation even if we are cancelled meanwhile (a second abort must not
    cut a clean-up short); returns its result and whether a cancellation came in."""
    task = asyncio.ensure_future(operation)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    return task.result(), cancelled


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return f"no reply within {_cleanup_timeout():.3g} s"
    return str(error) or type(error).__name__


async def home(
    motor: HomingMotor,
    direction: Direction,
    settings: HomingSettings,
    report: Callable[[HomingUpdate], None],
) -> None:
    """Home one motor on its hi or lo limit switch (DESIGN.md "Homing").

    Raises HomingError (or the MotorError that ended it) on failure. On failure or
    cancellation (abort) the motor is stopped, the soft limits are restored (unless the
    new ones were already set), FAILED or ABORTED is reported with the reason, and the
    exception propagates."""
    global _running
    procedure = _Procedure(motor, direction, settings, report)
    _running += 1
    try:
        await procedure.run()
    except asyncio.CancelledError:
        where = procedure.phase
        problems, _ = await _run_to_end(procedure.clean_up())
        status = motor.status
        procedure.report(
            HomingState.ABORTED,
            procedure.say(f"homing aborted while {where}, at {status.fmt(status.rbv)}"
                          + procedure.cleanup_words(problems)),
        )
        raise
    except Exception as error:
        failure = error if isinstance(error, MotorError) else HomingError(
            procedure.say(f"unexpected error while {procedure.phase}: {error!r}")
        )
        if not isinstance(error, MotorError):
            log.exception("%s: homing failed unexpectedly", motor.name)
        problems, cancelled = await _run_to_end(procedure.clean_up())
        procedure.report(HomingState.FAILED, str(failure) + procedure.cleanup_words(problems))
        if cancelled:
            raise asyncio.CancelledError from error
        if failure is error:
            raise
        raise failure from error
    finally:
        _running -= 1
