"""One simulated motor: the controller's physics plus the motor record's own logic.

No caproto here. `MotorSim` is driven by a clock in simulated seconds (replaceable, so
unit tests run it exactly), keeps the axis on a `Trajectory`, and computes every event
(end of a move, limit-switch trip, settle, stall) at its exact time. The PV layer calls
the command methods, then `advance(now)` at `next_event_time()` (a timer) and at a
readback rate while moving, and publishes `snapshot(now)`.

Coordinates: physical (where the switches and hard stops are, fixed), dial
(= physical + a shift that `SET` with `FOFF=Frozen` or homing redefines) and user
(= dial * DIR sign + OFF), as in the genuine record.

Behaviour copied from the real motor record (motor module + motorSim), which the
homing engine must cope with:
- A limit-switch trip stops the record at once: DMOV=1, VAL left at the trip position.
  The controller decelerates hard past the switch and settles there `TRIP_SETTLE_TIME`
  later; RBV keeps changing after DMOV=1 and MSTA DONE comes last.
- A move further into an active switch is refused (DMOV pulses, no motion); JOGF/JOGR
  into it is ignored and reads back 0.
- A VAL beyond the soft limits (DHLM/DLLM, both 0 = no soft limits) sets LVIO=1,
  restores VAL and does not move; DMOV still pulses 1->0->1.
- HOMF/HOMR do nothing when HVEL is 0.
- A stall (fault knob, or a broken switch driving the axis into its hard stop) leaves a
  servo that keeps trying: position frozen, DMOV=0, MOVN=1, MSTA SLIP_STALL and MOVING
  set, alarm MAJOR, until STOP. A stall watch must notice the lack of progress.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..motorrecord import Msta, Spmg
from .profile import (
    EPSILON,
    Trajectory,
    accel_rate,
    constant_velocity,
    decelerate,
    then,
    trapezoid,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]

# A limit switch makes the controller stop hard: this long from the trip speed to rest.
TRIP_SETTLE_TIME = 0.08
# The physical end of travel lies this far (physical units) beyond each switch.
HARD_STOP_MARGIN = 1.0
HOME_POSITION = 0.0  # physical position of the home mark


class Broken(enum.IntEnum):
    """Which limit switch (user sense) never asserts."""

    NONE = 0
    HIGH = 1
    LOW = 2


class Result(enum.Enum):
    STARTED = "started"  # motion began: DMOV went 0, wait for it to return to 1
    REFUSED = "refused"  # the record processed but nothing moved: DMOV pulses 1->0->1
    IGNORED = "ignored"  # nothing happened at all
    DONE = "done"  # applied at once, no motion


class Severity(enum.IntEnum):
    NO_ALARM = 0
    MINOR = 1
    MAJOR = 2
    INVALID = 3


# Alarm status numbers (menuAlarmStat).
STAT_NO_ALARM, STAT_STATE, STAT_COMM, STAT_HWLIMIT = 0, 7, 9, 11


@dataclass(frozen=True)
class MotorState:
    """Everything a motor record shows, at one instant. Field names are record fields."""

    val: float
    dval: float
    rbv: float
    drbv: float
    rrbv: int
    diff: float
    off: float
    dir: int
    set: int
    foff: int
    hlm: float
    llm: float
    dhlm: float
    dllm: float
    lvio: int
    hls: int
    lls: int
    rhls: int
    rlls: int
    dmov: int
    movn: int
    msta: int
    tdir: int
    athm: int
    jogf: int
    jogr: int
    homf: int
    homr: int
    spmg: int
    cnen: int
    velo: float
    jvel: float
    hvel: float
    accl: float
    vmax: float
    mres: float
    severity: int
    status: int


@dataclass
class MotorParams:
    """Physics and initial record settings of one motor (dial units)."""

    low_switch: float = -60.0
    high_switch: float = 60.0
    start: float = 0.0
    velo: float = 10.0
    vmax: float = 0.0
    jvel: float = 0.0
    hvel: float = 0.0
    accl: float = 0.2
    mres: float = 0.001
    dir: str = "Pos"
    offset: float = 0.0
    egu: str = "mm"
    prec: int = 3
    desc: str = ""
    user_limits: tuple[float, float] | None = None


@dataclass
class _Motion:
    kind: str  # move, jog, home, stop, pause, settle (after a trip)
    accel: float  # deceleration rate for a stop
    direction: int  # +1/-1 in physical units, 0 for none
    events: list[tuple[float, str]]


class MotorSim:
    """A motor record and its controller, advanced by an explicit clock."""

    def __init__(self, name: str, params: MotorParams, clock: Clock):
        self.name = name
        self.params = params
        self.clock = clock
        self.low_switch = params.low_switch
        self.high_switch = params.high_switch
        self.dir_sign = -1 if params.dir == "Neg" else 1
        self.off = params.offset
        self.shift = 0.0  # dial = physical + shift
        self.velo = params.velo if params.vmax <= 0 else min(params.velo, params.vmax)
        self.vmax = params.vmax
        self.jvel = params.jvel or self.velo
        self.hvel = params.hvel
        self.accl = params.accl
        self.mres = params.mres
        self.dhlm = self.dllm = 0.0
        if params.user_limits is not None:
            self.set_user_limits(*params.user_limits)
        self.set_mode = 0
        self.foff = 0
        self.spmg = Spmg.GO
        self.cnen = 1
        self.lvio = 0
        self.dmov = 1
        self.jogf = self.jogr = self.homf = self.homr = 0
        self.homed = False
        self.last_direction = 1
        self.stalled = False
        self._stall_direction = 0
        self.slip_stall = False
        # Fault knobs.
        self.stall_at = math.nan  # user position
        self._stall_physical = math.nan
        self.broken = Broken.NONE
        self.amp_fault = False
        self.comm_error = False
        self.ignore_stop = False
        self.hlsv = Severity.NO_ALARM
        self._frozen: MotorState | None = None
        self._motion: _Motion | None = None
        self.trajectory = Trajectory.at_rest(clock(), params.start)
        self.dval = self._dial(params.start)

    # --- coordinates ---------------------------------------------------------------
    def _dial(self, physical: float) -> float:
        return physical + self.shift

    def _physical(self, dial: float) -> float:
        return dial - self.shift

    def dial_to_user(self, dial: float) -> float:
        return self.dir_sign * dial + self.off

    def user_to_dial(self, user: float) -> float:
        return (user - self.off) * self.dir_sign

    @property
    def val(self) -> float:
        return self.dial_to_user(self.dval)

    def user_limits(self) -> tuple[float, float]:
        """(LLM, HLM) from the dial limits; DIR=Neg swaps them."""
        if self.dir_sign > 0:
            return self.dllm + self.off, self.dhlm + self.off
        return self.off - self.dhlm, self.off - self.dllm

    def set_user_limits(self, low: float, high: float) -> None:
        self.set_hlm(high)
        self.set_llm(low)

    def set_hlm(self, hlm: float) -> None:
        if self.dir_sign > 0:
            self.dhlm = hlm - self.off
        else:
            self.dllm = self.off - hlm

    def set_llm(self, llm: float) -> None:
        if self.dir_sign > 0:
            self.dllm = llm - self.off
        else:
            self.dhlm = self.off - llm

    @property
    def soft_limits_enabled(self) -> bool:
        return not (self.dhlm == 0 and self.dllm == 0)

    def position_at(self, t: float) -> float:
        """Dial position at simulated time t (exact, from the planned trajectory)."""
        return self._dial(self.trajectory.position_at(t))

    def user_position_at(self, t: float) -> float:
        return self.dial_to_user(self.position_at(t))

    def user_crossing_time(self, user: float) -> float | None:
        """When the current trajectory passes a user position (for position compare)."""
        return self.trajectory.crossing_time(self._physical(self.user_to_dial(user)))

    # --- switches --------------------------------------------------------------------
    def _raw_broken(self) -> tuple[bool, bool]:
        """(raw low broken, raw high broken) from the user-sense BrokenSwitch knob."""
        user_high = self.broken == Broken.HIGH
        user_low = self.broken == Broken.LOW
        if self.dir_sign > 0:
            return user_low, user_high
        return user_high, user_low

    def raw_switches(self, physical: float) -> tuple[bool, bool]:
        """(raw low active, raw high active) at a physical position."""
        low_broken, high_broken = self._raw_broken()
        low = physical <= self.low_switch + EPSILON and not low_broken
        high = physical >= self.high_switch - EPSILON and not high_broken
        return low, high

    def user_switches(self, physical: float) -> tuple[bool, bool]:
        """(LLS, HLS): DIR=Neg makes HLS the raw low switch."""
        low, high = self.raw_switches(physical)
        return (low, high) if self.dir_sign > 0 else (high, low)

    # --- time --------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """The record waits for the motion (DMOV=0)."""
        return self.dmov == 0

    def is_moving(self, t: float) -> bool:
        """The axis has a velocity at time t (its readbacks change)."""
        return abs(self.trajectory.velocity_at(t)) > EPSILON

    def next_event_time(self) -> float | None:
        if self._motion is None or not self._motion.events:
            return None
        return self._motion.events[0][0]

    def advance(self, now: float) -> None:
        """Process every event due by `now`, each at its own exact time."""
        while self._motion is not None and self._motion.events:
            when, kind = self._motion.events[0]
            if when > now:
                return
            self._motion.events.pop(0)
            getattr(self, f"_on_{kind}")(when)

    def _on_end(self, t: float) -> None:
        motion = self._motion
        self.trajectory = self.trajectory.truncated(t)
        self._motion = None
        if motion is not None and motion.kind == "home":
            self.homed = True
            self.shift = -HOME_POSITION  # the controller zeroes its position at home
            self.dval = self._dial(self.trajectory.end_position)
        if motion is not None and motion.kind in ("stop", "jog"):
            self.dval = self.position_at(t)  # a stopped record forgets its old target
        self._record_done()

    def _on_trip(self, t: float) -> None:
        """A switch asserted: the record is done at once, the controller stops hard."""
        speed = abs(self.trajectory.velocity_at(t))
        self.dval = self.position_at(t)
        rate = max(speed / TRIP_SETTLE_TIME, speed * speed / (2 * HARD_STOP_MARGIN * 0.9))
        self.trajectory = decelerate(self.trajectory, t, rate)
        self._motion = _Motion("settle", rate, 0, [(self.trajectory.end_time, "settle")])
        self._record_done()

    def _on_settle(self, t: float) -> None:
        self.trajectory = self.trajectory.truncated(t)
        self._motion = None

    def _on_stall(self, t: float) -> None:
        """The axis hit an obstruction: it stays put while the servo keeps trying."""
        direction = self._motion.direction if self._motion else 0
        self.trajectory = self.trajectory.truncated(t)
        self.stalled = self.slip_stall = True
        self._stall_direction = direction
        if self._motion is not None:
            self._motion.events.clear()
        log.info("%s stalled at dial %.4f", self.name, self.position_at(t))

    def _record_done(self) -> None:
        self.dmov = 1
        self.jogf = self.jogr = self.homf = self.homr = 0
        if self.spmg == Spmg.MOVE:
            self.spmg = Spmg.PAUSE

    # --- planning ------------------------------------------------------------------------
    def _hard_stop(self, direction: int) -> float:
        if direction > 0:
            return self.high_switch + HARD_STOP_MARGIN
        return self.low_switch - HARD_STOP_MARGIN

    def _events_for(self, trajectory: Trajectory, direction: int, now: float) -> list:
        """Trip, stall and end events of a trajectory, earliest first (first one wins)."""
        events: list[tuple[float, str]] = [(trajectory.end_time, "end")]
        low_broken, high_broken = self._raw_broken()
        switch_broken = high_broken if direction > 0 else low_broken
        switch = self.high_switch if direction > 0 else self.low_switch
        if direction and not switch_broken:
            trip = trajectory.crossing_time(switch, after=now)
            if trip is not None:
                events.append((trip, "trip"))
        if direction:
            hit = trajectory.crossing_time(self._hard_stop(direction), after=now)
            if hit is not None:
                events.append((hit, "stall"))
        if not math.isnan(self._stall_physical) and direction:
            stall = trajectory.crossing_time(self._stall_physical, after=now)
            at_obstacle = abs(trajectory.position_at(now) - self._stall_physical) < EPSILON
            if at_obstacle and direction == self._stall_direction:
                stall = now
            if stall is not None:
                events.append((stall, "stall"))
        # The earliest event ends or replaces this plan, so only that one is kept.
        return [min(events)]

    def _start(self, kind: str, trajectory: Trajectory, accel: float, now: float) -> Result:
        """Replace the current motion (stopping it first if it is moving) and start."""
        if abs(self.trajectory.velocity_at(now)) > EPSILON:
            stopping = decelerate(self.trajectory, now, self._current_accel())
            follow = self._replan_from(trajectory, stopping.end_time, stopping.end_position)
            trajectory = then(stopping, stopping.end_time, follow)
        direction = _direction(trajectory)
        self.trajectory = trajectory
        self.stalled = self.slip_stall = False
        self.dmov = 0
        if direction:
            self.last_direction = direction
        self._motion = _Motion(kind, accel, direction, self._events_for(trajectory, direction,
                                                                        now))
        return Result.STARTED

    def _replan_from(self, trajectory: Trajectory, t: float, x: float) -> Trajectory:
        """The same move planned again from rest at (t, x): target and speed kept."""
        phases = trajectory.phases
        speed = max(abs(p.v0) for p in phases) or self.velo
        target = trajectory.end_position
        if trajectory.end_time - trajectory.start_time > 1e6:  # a jog: keep going
            return constant_velocity(t, x, math.copysign(speed, target - x), self._accel(speed),
                                     t + 1e9)
        return trapezoid(t, x, target, speed, self.accl)

    def _current_accel(self) -> float:
        return self._motion.accel if self._motion else self._accel(self.velo)

    def _accel(self, speed: float) -> float:
        return accel_rate(speed, self.accl)

    def _blocked(self) -> str | None:
        if self.comm_error:
            return "communication error"
        if self.amp_fault:
            return "amplifier fault"
        if not self.cnen:
            return "torque disabled (CNEN=Disable)"
        return None

    def _into_active_switch(self, physical_direction: int, now: float) -> bool:
        low, high = self.raw_switches(self.trajectory.position_at(now))
        return (physical_direction > 0 and high) or (physical_direction < 0 and low)

    # --- record commands -----------------------------------------------------------------
    def move_user(self, user: float) -> Result:
        """A put to VAL (in Set mode: redefine the position instead)."""
        if self.set_mode:
            return self._set_position_user(user)
        return self.move_dial(self.user_to_dial(user))

    def move_dial(self, dial: float) -> Result:
        """A put to DVAL: a move, unless refused (limits, faults) or held by SPMG."""
        now = self.clock()
        if self.set_mode:
            return self._set_position_dial(dial)
        if self.soft_limits_enabled and not (self.dllm <= dial <= self.dhlm):
            self.lvio = 1
            log.info("%s: dial %.4f outside soft limits [%.4f, %.4f]", self.name, dial,
                     self.dllm, self.dhlm)
            return Result.REFUSED
        self.lvio = 0
        self.dval = dial
        if self.spmg in (Spmg.STOP, Spmg.PAUSE):
            return Result.DONE
        return self._move_to_dval(now)

    def _move_to_dval(self, now: float) -> Result:
        reason = self._blocked()
        if reason:
            log.info("%s: move refused: %s", self.name, reason)
            return Result.REFUSED
        if self.velo <= 0:
            return Result.REFUSED
        here = self.trajectory.position_at(now)
        target = self._physical(self.dval)
        direction = 0 if abs(target - here) < EPSILON else (1 if target > here else -1)
        if direction and self._into_active_switch(direction, now):
            self.dval = self.position_at(now)
            return Result.REFUSED
        traj = trapezoid(now, here, target, self.velo, self.accl)
        return self._start("move", traj, self._accel(self.velo), now)

    def jog(self, forward: bool, on: bool) -> Result:
        """JOGF/JOGR: 1 starts a jog at JVEL, 0 stops it."""
        now = self.clock()
        if not on:
            jogging = self._motion is not None and self._motion.kind == "jog"
            return self.stop() if jogging else Result.IGNORED
        direction = self.dir_sign * (1 if forward else -1)  # physical sense
        if self.busy or self._blocked() or self.jvel <= 0:
            return Result.IGNORED
        if self._into_active_switch(direction, now):
            return Result.IGNORED
        here = self.trajectory.position_at(now)
        if self.soft_limits_enabled:
            limit = self._physical(self.dhlm if direction > 0 else self.dllm)
            if (limit - here) * direction <= EPSILON:
                self.lvio = 1
                return Result.REFUSED
            traj = trapezoid(now, here, limit, self.jvel, self.accl)
        else:
            traj = constant_velocity(now, here, direction * self.jvel, self._accel(self.jvel),
                                     now + 1e9)
        self.lvio = 0
        result = self._start("jog", traj, self._accel(self.jvel), now)
        self.jogf, self.jogr = (1, 0) if forward else (0, 1)
        return result

    def home(self, forward: bool) -> Result:
        """HOMF/HOMR: seek the home mark at HVEL; nothing at all when HVEL is 0."""
        now = self.clock()
        if self.hvel <= 0 or self.busy:
            return Result.IGNORED
        if self._blocked():
            return Result.REFUSED
        here = self.trajectory.position_at(now)
        traj = trapezoid(now, here, HOME_POSITION, self.hvel, self.accl)
        result = self._start("home", traj, self._accel(self.hvel), now)
        self.homf, self.homr = (1, 0) if forward else (0, 1)
        return result

    def stop(self, keep_target: bool = False) -> Result:
        """STOP (also SPMG Stop/Pause and a jog release): decelerate to rest. The record
        then takes the stop position as VAL, except on Pause (`keep_target`)."""
        if self.ignore_stop:
            log.info("%s ignores STOP (fault knob)", self.name)
            return Result.IGNORED
        now = self.clock()
        if self._motion is None and not self.busy:
            return Result.IGNORED
        if self._motion is not None and self._motion.kind == "settle":
            return Result.IGNORED  # the record is done; the controller is already stopping
        if self.stalled:
            self.stalled = False
            self.trajectory = self.trajectory.truncated(now)
            self._motion = _Motion("stop", math.inf, 0, [(now, "end")])
            return Result.STARTED
        traj = decelerate(self.trajectory, now, self._current_accel())
        direction = _direction(traj)
        self.trajectory = traj
        kind = "pause" if keep_target else "stop"
        self._motion = _Motion(kind, self._current_accel(), direction,
                               self._events_for(traj, direction, now))
        return Result.STARTED

    def set_spmg(self, value: int) -> Result:
        previous, self.spmg = self.spmg, Spmg(value)
        if self.spmg in (Spmg.STOP, Spmg.PAUSE):
            moving = self._motion is not None or self.busy
            result = self.stop(self.spmg == Spmg.PAUSE) if moving else Result.DONE
            if self.spmg == Spmg.STOP and self._motion is None:
                self.dval = self.position_at(self.clock())
            return result
        if previous == Spmg.PAUSE and abs(self.dval - self.position_at(self.clock())) > \
                self.mres / 2:
            return self._move_to_dval(self.clock())
        return Result.DONE

    def sync(self) -> Result:
        """SYNC=1: VAL/DVAL take the readback."""
        self.dval = self.drbv(self.clock())
        return Result.DONE

    def set_cnen(self, enabled: bool) -> Result:
        self.cnen = int(enabled)
        if not enabled and self._motion is not None:
            self._halt("torque disabled")
        return Result.DONE

    def set_amp_fault(self, on: bool) -> Result:
        self.amp_fault = on
        if on and self._motion is not None:
            self._halt("amplifier fault")
        return Result.DONE

    def set_comm_error(self, on: bool) -> Result:
        if on and not self.comm_error:
            self._frozen = self._live_snapshot(self.clock())
        self.comm_error = on
        if not on:
            self._frozen = None
        return Result.DONE

    def _halt(self, why: str) -> None:
        """An abrupt stop without deceleration (power gone): the record ends the move."""
        now = self.clock()
        log.info("%s halted: %s", self.name, why)
        self.trajectory = self.trajectory.truncated(now)
        self._motion = None
        self.stalled = False
        if self.busy:
            self._record_done()

    def set_stall_at(self, user: float) -> Result:
        self.stall_at = user
        self._stall_physical = (math.nan if math.isnan(user)
                                else self._physical(self.user_to_dial(user)))
        self._stall_direction = 0
        self._replan_events()
        return Result.DONE

    def set_broken(self, which: int) -> Result:
        self.broken = Broken(which)
        self._replan_events()
        return Result.DONE

    def _replan_events(self) -> None:
        if self._motion is not None and self._motion.kind != "settle" and not self.stalled:
            now = self.clock()
            self._motion.events = self._events_for(self.trajectory, self._motion.direction, now)

    # --- record settings -------------------------------------------------------------------
    def _set_position_user(self, user: float) -> Result:
        """SET mode VAL: FOFF=Variable moves the offset, Frozen redefines the dial."""
        if self.foff == 0:
            self.off = user - self.dir_sign * self.dval
            return Result.DONE
        return self._set_position_dial(self.user_to_dial(user))

    def _set_position_dial(self, dial: float) -> Result:
        """Redefine the controller position: the axis stays, its dial value changes."""
        now = self.clock()
        self.shift += dial - self.position_at(now)
        self.dval = dial
        self._replan_events()
        return Result.DONE

    def set_offset(self, off: float) -> None:
        self.off = off

    def set_dir(self, value: int) -> None:
        self.dir_sign = -1 if value else 1

    def set_velo(self, velo: float) -> None:
        self.velo = min(velo, self.vmax) if self.vmax > 0 else velo

    def set_vmax(self, vmax: float) -> None:
        self.vmax = vmax
        if vmax > 0:
            self.velo = min(self.velo, vmax)
            self.jvel = min(self.jvel, vmax)

    # --- readback ----------------------------------------------------------------------
    def drbv(self, t: float) -> float:
        steps = round(self.position_at(t) / self.mres)
        return round(steps * self.mres, 12)

    def msta(self, t: float) -> int:
        physical = self.trajectory.position_at(t)
        low, high = self.raw_switches(physical)
        moving = self._motion is not None or self.stalled
        bits = Msta(0)
        bits |= Msta.DIRECTION if self.last_direction > 0 else 0
        bits |= Msta.MOVING if moving else Msta.DONE
        bits |= Msta.PLUS_LS if high else 0
        bits |= Msta.MINUS_LS if low else 0
        bits |= Msta.SLIP_STALL if self.slip_stall else 0
        bits |= Msta.PROBLEM if self.amp_fault else 0
        bits |= Msta.HOMED if self.homed else 0
        return int(bits)

    def _alarm(self, hls: bool, lls: bool) -> tuple[int, int]:
        if self.comm_error:
            return Severity.INVALID, STAT_COMM
        if self.amp_fault or self.slip_stall:
            return Severity.MAJOR, STAT_STATE
        if (hls or lls) and self.hlsv:
            return int(self.hlsv), STAT_HWLIMIT
        return Severity.NO_ALARM, STAT_NO_ALARM

    def _live_snapshot(self, t: float) -> MotorState:
        physical = self.trajectory.position_at(t)
        lls, hls = self.user_switches(physical)
        raw_low, raw_high = self.raw_switches(physical)
        drbv = self.drbv(t)
        llm, hlm = self.user_limits()
        severity, status = self._alarm(hls, lls)
        moving = self._motion is not None or self.stalled
        return MotorState(
            val=self.val, dval=self.dval, rbv=round(self.dial_to_user(drbv), 12), drbv=drbv,
            rrbv=round(drbv / self.mres), diff=self.dval - drbv, off=self.off,
            dir=0 if self.dir_sign > 0 else 1, set=self.set_mode, foff=self.foff,
            hlm=hlm, llm=llm, dhlm=self.dhlm, dllm=self.dllm, lvio=self.lvio,
            hls=int(hls), lls=int(lls), rhls=int(raw_high), rlls=int(raw_low),
            dmov=self.dmov, movn=int(moving), msta=self.msta(t),
            tdir=int(self.last_direction > 0), athm=int(abs(physical - HOME_POSITION) <
                                                        self.mres / 2),
            jogf=self.jogf, jogr=self.jogr, homf=self.homf, homr=self.homr,
            spmg=int(self.spmg), cnen=self.cnen, velo=self.velo, jvel=self.jvel,
            hvel=self.hvel, accl=self.accl, vmax=self.vmax, mres=self.mres,
            severity=int(severity), status=status,
        )

    def snapshot(self, t: float | None = None) -> MotorState:
        """What the record shows at time t. During a comm error the readbacks freeze."""
        t = self.clock() if t is None else t
        live = self._live_snapshot(t)
        if self._frozen is None:
            return live
        frozen = self._frozen
        return replace(
            live, rbv=frozen.rbv, drbv=frozen.drbv, rrbv=frozen.rrbv, diff=frozen.diff,
            hls=frozen.hls, lls=frozen.lls, rhls=frozen.rhls, rlls=frozen.rlls,
            # a plain int: caproto publishes an IntFlag as a 0-d array and fails on it
            dmov=frozen.dmov, movn=frozen.movn, msta=int(frozen.msta | Msta.COMM_ERR),
            athm=frozen.athm,
        )


def _direction(trajectory: Trajectory) -> int:
    delta = trajectory.end_position - trajectory.start_position
    if abs(delta) < EPSILON:
        for phase in trajectory.phases:
            if abs(phase.v0) > EPSILON:
                return 1 if phase.v0 > 0 else -1
        return 0
    return 1 if delta > 0 else -1


def params_from_config(sim, user_limits: tuple[float, float] | None) -> MotorParams:
    """MotorParams from a config.SimMotorConfig (duck-typed to keep this module light)."""
    fields = {name: getattr(sim, name) for name in (
        "low_switch", "high_switch", "start", "velo", "vmax", "jvel", "hvel", "accl", "mres",
        "dir", "offset", "egu", "prec", "desc")}
    return MotorParams(**fields, user_limits=user_limits)


def default_params(lo_lim: float, hi_lim: float, tolerance: float) -> MotorParams:
    """Physics for a configured motor without a sim entry: switches just past the range."""
    margin = tolerance + 2.0
    return MotorParams(low_switch=lo_lim - margin, high_switch=hi_lim + margin,
                       start=(lo_lim + hi_lim) / 2, user_limits=(lo_lim, hi_lim))
