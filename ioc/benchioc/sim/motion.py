"""One simulated motor: a motorSim-like controller plus the motor record's own logic.

No caproto here. `MotorSim` is driven by a clock in simulated seconds (replaceable, so
unit tests run it exactly), keeps the axis on a `Trajectory`, and computes every event
(end of a move, limit-switch trip, home crossing, settle, stall) at its exact time. The
PV layer calls the command methods, then `step(now)` (or `advance(now)`) at
`next_event_time()` and at a readback rate while moving, and publishes `snapshot(now)`.

Coordinates: physical (where the switches, hard stops and home mark are, fixed), dial
(= physical + a shift that `SET` with `FOFF=Frozen` redefines) and user (= dial * DIR
sign + OFF), as in the genuine record.

The behaviour is the genuine motor record's (motor R7-3 record, asyn motorSim driver),
measured side by side by tests/integration/test_motor_differential.py; what stays
different, and why, is in docs/genuine-differences.md. In short:

- Record state: MIP (what the record waits for), DMOV (done), CDIR (commanded raw
  direction). MOVN is 0 when the controller reports done, or when the limit switch in
  the commanded direction is active (then also while the axis still moves).
- A limit-switch trip in the commanded direction ends the record's motion at once:
  DMOV=1, VAL = the readback at the trip, JOGF/HOMF cleared. The controller stops hard
  past the switch and settles there `TRIP_SETTLE_TIME` later (so the distance it stops
  past the switch grows with the speed it met it at); MSTA DONE comes last.
- Switch hysteresis (`switch_hysteresis`, default 0): a tripped switch releases only
  once the axis is back that far inside the position where it engages.
- A VAL put while the record moves (a plain put: a put-callback is held by the PV layer)
  does not retarget: the axis finishes the move, then the record "retries" to the new
  VAL (MIP RETRY|MOVE) with DMOV staying 0. A target behind the axis (the new-target
  monitor, NTM) stops it first.
- STOP and SPMG=Stop end the motion with VAL = the readback; SPMG=Pause stops the axis but
  keeps DMOV=0 (MIP RETRY) until Go resumes the move; a VAL put while stopped or paused
  sets DMOV=0 and waits for Go.
- A VAL beyond the soft limits (DHLM/DLLM, both 0 = none) sets LVIO=1, leaves VAL and
  does not move; a move further into an active switch is refused by the controller (VAL
  goes back to the readback). Either way DMOV pulses 1->0->1. A jog stops by itself
  where the readback comes within one second of travel (JVEL) of the soft limit.
- HOMF/HOMR: the controller runs at HVEL (raw forward for HOMF, whatever DIR says),
  and on crossing the home mark (`home`, physical, default 0: motorSim's home switch
  at dial 0) turns back and stops on it (MSTA HOMED from the
  crossing, HOME when on the mark). A limit switch met first ends the record's home
  there (DMOV=1), while the controller reverses and still goes home: the record sees
  that as an external move (MIP EXTERNAL, DMOV 0, then 1 at home). HVEL=0 still pulses
  DMOV. The position is not redefined at home.
- A VAL put in SET mode pulses DMOV (FOFF=Frozen: MIP LOAD_P while the controller
  takes the new position). SYNC takes the readback when the record is idle.
- CNEN starts at Disable and motion works regardless: no closed-loop support (MSTA
  GAIN_SUPPORT clear). With `gain_support`, MSTA GAIN_SUPPORT and POSITION (= CNEN) are
  set, CNEN starts at Enable, and CNEN=Disable stops the axis and refuses motion.
- MSTA: DIRECTION is the sign of the velocity now (0 at rest; TDIR follows it), DONE
  the controller idle, MOVING a velocity (or a stalled servo); a command clears DONE at
  once, MOVING comes with the first readback. ATHM stays 0: motorSim reports its home
  sensor in MSTA bit 7 (HOME), and the record's ATHM reads bit 3.
- A stall (fault knob, or a broken switch driving the axis into its hard stop) leaves a
  servo that keeps trying: position frozen, DMOV=0, MOVN=1, MSTA SLIP_STALL and MOVING
  set, alarm MAJOR, until STOP. A stall watch must notice the lack of progress.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from ..facts.motorrecord import Msta, Spmg
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
# A command the controller does not carry out (a move further into an active switch, a
# home at HVEL=0) is reported done at its next status update, this much later.
CONTROLLER_POLL = 0.025
RETRIES = 10  # RTRY: the record's retries before it gives up (MISS)
NTM_FACTOR = 2.0  # NTMF: the new-target monitor's deadband, in retry deadbands
LONG_RUN = 1e9  # a jog (or a home) lasts until something stops it


class Broken(enum.IntEnum):
    """Which limit switch (user sense) never asserts."""

    NONE = 0
    HIGH = 1
    LOW = 2


class Result(enum.Enum):
    STARTED = "started"  # the record waits for a motion (DMOV=0): wait for DMOV=1
    REFUSED = "refused"  # the record processed but nothing moved: DMOV pulses 1->0->1
    IGNORED = "ignored"  # nothing happened at all
    DONE = "done"  # applied at once, no motion


class Mip(enum.IntFlag):
    """The record's motion-in-progress field (MIP), as in motorRecord.cc."""

    DONE = 0
    JOGF = 0x1
    JOGR = 0x2
    HOMF = 0x8
    HOMR = 0x10
    MOVE = 0x20
    RETRY = 0x40
    LOAD_P = 0x80
    STOP = 0x200
    JOG_STOP = 0x2000
    EXTERNAL = 0x8000


JOGGING = Mip.JOGF | Mip.JOGR | Mip.JOG_STOP
HOMING = Mip.HOMF | Mip.HOMR


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
    mip: int
    rcnt: int
    miss: int
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
    rdbd: float
    rhlm: float
    rllm: float
    severity: int
    status: int
    # Trigger fields: the record clears them in the processing they start.
    stop: int = 0
    sync: int = 0
    twf: int = 0
    twr: int = 0


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
    gain_support: bool = False
    user_limits: tuple[float, float] | None = None
    home: float = HOME_POSITION  # physical position of the home mark (dial at the start)
    switch_hysteresis: float = 0.0  # a tripped switch releases this far back inside it
    hard_stop_margin: float = HARD_STOP_MARGIN  # the mechanical end, beyond each switch


@dataclass
class _Motion:
    """What the controller is doing, and the events that end or change it."""

    kind: str  # move, jog, home, home_back, home_return, stop, settle, idle
    accel: float  # deceleration rate for a stop
    direction: int  # +1/-1 in physical units, 0 for none
    events: list[tuple[float, str]]
    # Positions whose crossing is an event of this motion: (physical position, kind).
    crossings: list[tuple[float, str]] = field(default_factory=list)


class MotorSim:
    """A motor record and its controller, advanced by an explicit clock."""

    def __init__(self, name: str, params: MotorParams, clock: Clock):
        self.name = name
        self.params = params
        self.clock = clock
        self.low_switch = params.low_switch
        self.high_switch = params.high_switch
        self.home_position = params.home
        self.hysteresis = max(params.switch_hysteresis, 0.0)
        self.hard_stop_margin = params.hard_stop_margin
        # A tripped switch holds until the axis is `hysteresis` back inside it (raw low,
        # raw high); set at each trip, cleared by the release crossing (an event).
        self._held = [params.start <= params.low_switch, params.start >= params.high_switch]
        self.dir_sign = -1 if params.dir == "Neg" else 1
        self.off = params.offset
        self.shift = 0.0  # dial = physical + shift
        self.velo = params.velo if params.vmax <= 0 else min(params.velo, params.vmax)
        self.vmax = params.vmax
        self.jvel = params.jvel or self.velo
        self.hvel = params.hvel
        self.accl = params.accl
        self.mres = params.mres
        self.rdbd = params.mres  # the record enforces RDBD >= |MRES|
        self.rtry = RETRIES
        self.ntm = True
        self.dhlm = self.dllm = 0.0
        if params.user_limits is not None:
            self.set_user_limits(*params.user_limits)
        self.set_mode = 0
        self.foff = 0
        self.spmg = Spmg.GO
        self.gain_support = params.gain_support
        # Without closed-loop support the record never touches CNEN: it stays Disable.
        self.cnen = 1 if params.gain_support else 0
        self.lvio = 0
        self.dmov = 1
        self.mip = Mip.DONE
        self.cdir = 1  # the record's commanded direction, raw: 1 positive, 0 negative
        self.rcnt = 0
        self.miss = 0
        self.jogf = self.jogr = self.homf = self.homr = 0
        self.homed = False
        self._homed_shown_until = -math.inf
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
        # Record events that do not belong to a controller motion (time, kind).
        self._record_events: list[tuple[float, str]] = []
        self._command_time: float | None = None
        # MOVN as the record last showed it (set by the PV layer before a command): a
        # command right after a move command meets a record that has not yet heard from
        # the controller.
        self.record_movn: int | None = None
        self.trajectory = Trajectory.at_rest(clock(), params.start)
        self.dval = self._dial(params.start)

    # --- command time ----------------------------------------------------------------
    def now(self) -> float:
        """The time commands happen at: the clock, or the instant set by `at()`."""
        return self.clock() if self._command_time is None else self._command_time

    @contextlib.contextmanager
    def at(self, t: float) -> Iterator[None]:
        """Apply commands as at time t (the PV layer's time of the command, so that what it
        publishes and what the physics planned agree to the instant)."""
        previous, self._command_time = self._command_time, t
        try:
            yield
        finally:
            self._command_time = previous

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
        """(raw low active, raw high active) at a physical position: on the switch, or
        tripped and not yet back past its release position (hysteresis)."""
        low_broken, high_broken = self._raw_broken()
        held_low, held_high = self._held if self.hysteresis > 0 else (False, False)
        low = (physical <= self.low_switch + EPSILON or
               held_low and physical < self.release_position(-1) - EPSILON)
        high = (physical >= self.high_switch - EPSILON or
                held_high and physical > self.release_position(1) + EPSILON)
        return low and not low_broken, high and not high_broken

    def release_position(self, side: int) -> float:
        """Where a tripped switch releases (physical): `side` +1 the high switch, -1 the
        low one."""
        if side > 0:
            return self.high_switch - self.hysteresis
        return self.low_switch + self.hysteresis

    def user_switches(self, physical: float) -> tuple[bool, bool]:
        """(LLS, HLS): DIR=Neg makes HLS the raw low switch."""
        low, high = self.raw_switches(physical)
        return (low, high) if self.dir_sign > 0 else (high, low)

    def _limit_active(self, physical: float) -> bool:
        """The switch in the record's commanded direction is active (motorRecord's
        ls_active): the record counts the axis as stopped there."""
        low, high = self.raw_switches(physical)
        return (high and self.cdir == 1) or (low and self.cdir == 0)

    # --- time --------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """The record waits for the motion (DMOV=0)."""
        return self.dmov == 0

    @property
    def waiting_for_go(self) -> bool:
        """A drive-field put met SPMG=Stop/Pause: the record changed DVAL without posting
        it (do_work returns before marking it); Go posts it with the move."""
        return self.busy and self.spmg in (Spmg.STOP, Spmg.PAUSE) and self.mip in (
            Mip.DONE, Mip.RETRY, Mip.STOP) and not self.controller_busy

    @property
    def controller_busy(self) -> bool:
        """The controller reports not done (a motion, or a servo stalled against it)."""
        return self._motion is not None or self.stalled

    def is_moving(self, t: float) -> bool:
        """The axis has a velocity at time t (its readbacks change)."""
        return abs(self.trajectory.velocity_at(t)) > EPSILON

    def next_event_time(self) -> float | None:
        times = [when for when, _ in self._record_events[:1]]
        if self._motion is not None and self._motion.events:
            times.append(self._motion.events[0][0])
        return min(times) if times else None

    def step(self, now: float) -> bool:
        """Process the earliest event due by `now` at its own exact time; False if none.
        The PV layer publishes after each step, so each record processing shows."""
        motion = self._motion
        motion_event = motion.events[0] if motion is not None and motion.events else None
        record_event = self._record_events[0] if self._record_events else None
        if motion_event is not None and (record_event is None or
                                         motion_event[0] <= record_event[0]):
            when, kind = motion_event
            if when > now:
                return False
            assert motion is not None
            motion.events.pop(0)
        elif record_event is not None:
            when, kind = record_event
            if when > now:
                return False
            self._record_events.pop(0)
        else:
            return False
        getattr(self, f"_on_{kind}")(when)
        return True

    def advance(self, now: float) -> None:
        """Process every event due by `now`, each at its own exact time."""
        while self.step(now):
            pass

    def _schedule(self, when: float, kind: str) -> None:
        self._record_events.append((when, kind))
        self._record_events.sort(key=lambda event: event[0])

    # --- controller events ---------------------------------------------------------------
    def _on_end(self, t: float) -> None:
        """The controller finished its motion and reports done."""
        self.trajectory = self.trajectory.truncated(t)
        self._motion = None
        self._motion_ended(t)

    def _on_settle(self, t: float) -> None:
        self._on_end(t)

    def _on_trip(self, t: float) -> None:
        """The switch ahead asserted: the record is done at once (if it was waiting), the
        controller stops hard past it, or, homing, turns back towards the home mark."""
        motion = self._motion
        homing = motion is not None and motion.kind == "home"
        if motion is not None and motion.direction:
            self._held[1 if motion.direction > 0 else 0] = True
        if self.busy and self.mip & (Mip.JOGF | Mip.JOGR):
            self._finish(t, sync=True)  # "stopped while jogging": done at once
        elif self.busy:
            # motorRecord's "another update after LS error": this processing clears MIP
            # and the buttons; the controller's answer to GET_INFO ends the motion.
            self.mip = Mip.DONE
            self._clear_buttons()
            self._schedule(t, "limit_done")
        speed = abs(self.trajectory.velocity_at(t))
        direction = motion.direction if motion is not None else 0
        rate = max(speed / TRIP_SETTLE_TIME,
                   speed * speed / (2 * self.hard_stop_margin * 0.9), EPSILON)
        stopping = decelerate(self.trajectory, t, rate)
        if homing and direction:
            back = constant_velocity(stopping.end_time, stopping.end_position,
                                     -direction * self.hvel, self._accel(self.hvel),
                                     stopping.end_time + LONG_RUN)
            self.trajectory = then(stopping, stopping.end_time, back)
            # The record sees motion again once the switch releases (half a step inside).
            released = self.release_position(direction) - direction * self.mres / 2
            self._set_motion("home_back", rate, -direction, t, [(released, "release")])
            return
        self.trajectory = stopping
        self._motion = _Motion("settle", rate, 0, [(self.trajectory.end_time, "settle")])

    def _on_release(self, t: float) -> None:
        """A homing controller left the switch that ended the record's home: the record
        takes the motion it did not command as external (DMOV=0 until it ends)."""
        self.mip = Mip.EXTERNAL
        self.dmov = 0
        motion = self._motion
        if motion is not None:
            self._set_motion(motion.kind, motion.accel, motion.direction, t,
                             [(self.home_position, "home_cross")])

    def _on_home_cross(self, t: float) -> None:
        """motorSim: homing crossed the home sensor; it turns back and stops on it."""
        self.homed = True
        rate = self._accel(self.hvel) if self.hvel > 0 else math.inf
        stopping = decelerate(self.trajectory, t, rate)
        back = trapezoid(stopping.end_time, stopping.end_position, self.home_position,
                         self.hvel or self.velo, self.accl)
        self.trajectory = then(stopping, stopping.end_time, back)
        direction = _direction(back) or (self._motion.direction if self._motion else 0)
        self._set_motion("home_return", rate, direction, t, [])

    def _on_jog_limit(self, t: float) -> None:
        """A jog whose readback came within JVEL of the soft limit: LVIO, STOP."""
        self.lvio = 1
        self.mip = Mip.STOP
        self._clear_buttons()
        self._decelerate("stop", t)

    def _on_ntm(self, t: float) -> None:
        """The new target (a VAL put during the move) is now behind the axis: stop, and
        the record retries to it from where the axis stops."""
        self.mip |= Mip.STOP
        self._decelerate("stop", t)

    def _on_stall(self, t: float) -> None:
        """The axis hit an obstruction: it stays put while the servo keeps trying."""
        direction = self._motion.direction if self._motion else 0
        self.trajectory = self.trajectory.truncated(t)
        self.stalled = self.slip_stall = True
        self._stall_direction = direction
        if self._motion is not None:
            self._motion.events.clear()
        log.info("%s stalled at dial %.4f", self.name, self.position_at(t))

    def _on_low_released(self, t: float) -> None:
        """The axis is back past the low switch's release position: it lets go."""
        self._held[0] = False
        self._replan_at(t)

    def _on_high_released(self, t: float) -> None:
        self._held[1] = False
        self._replan_at(t)

    def _replan_at(self, t: float) -> None:
        """The motion goes on; its next event is planned again from t."""
        motion = self._motion
        if motion is not None and not self.stalled:
            motion.events = self._events_for(self.trajectory, motion.direction, t,
                                             motion.crossings)

    def _on_idle(self, t: float) -> None:
        """The controller's status update after a command it did nothing for."""
        self._on_end(t)

    # --- record events -------------------------------------------------------------------
    def _on_limit_done(self, t: float) -> None:
        """The processing after a limit stop (move or home): VAL takes the readback."""
        if self.busy:
            self._finish(t, sync=True)

    def _on_loaded(self, t: float) -> None:
        """The controller took the new position (SET with FOFF=Frozen)."""
        if self.mip & Mip.LOAD_P:
            self.mip = Mip.DONE
            self.dmov = 1

    def _on_rejected(self, t: float) -> None:
        """The controller refused the move (further into an active switch): the record
        takes the readback as VAL and is done."""
        self._finish(t, sync=True)

    def _on_retry(self, t: float) -> None:
        """The controller starts the move the record retries (after a retarget or an NTM
        stop)."""
        if self.mip == Mip.RETRY | Mip.MOVE and not self.controller_busy:
            self._start_move(t, self.mip)

    def _motion_ended(self, t: float) -> None:
        """What the record does when the controller reports done."""
        mip = self.mip
        if not self.busy:
            return  # the record was not waiting (a settle after a trip, a stopped retry)
        if mip & Mip.STOP and not mip & Mip.MOVE:
            if self.spmg == Spmg.PAUSE and not mip & (JOGGING | HOMING):
                self._maybe_retry(t, hold=True)  # paused: the rest of the move waits for Go
            else:
                self._finish(t, sync=True)  # STOP, SPMG=Stop, a jog at its soft limit
        elif mip & (Mip.MOVE | Mip.RETRY):
            self._maybe_retry(t, hold=self.spmg in (Spmg.STOP, Spmg.PAUSE))
        elif mip & (JOGGING | HOMING | Mip.EXTERNAL) or mip == Mip.DONE:
            self._finish(t, sync=True)

    def _maybe_retry(self, t: float, hold: bool) -> None:
        """motorRecord's maybeRetry: short of the target by RDBD or more, move again."""
        off_target = abs(self.dval - self.drbv(t)) >= self.rdbd
        if not off_target or self._limit_active(self.trajectory.position_at(t)):
            self._finish(t, sync=False)
            return
        self.rcnt += 1
        if self.rtry == 0 or self.rcnt > self.rtry:
            self.miss = int(self.rtry != 0)
            self._finish(t, sync=False)
            return
        if hold:
            self.mip = Mip.RETRY  # DMOV stays 0; Go sends the move
        else:
            # The record sends the move in this processing; the controller takes it up
            # at once, and reports it in its next status (the "retry" event).
            self.mip = Mip.RETRY | Mip.MOVE
            self._schedule(t, "retry")

    def _finish(self, t: float, sync: bool) -> None:
        """The record is done: DMOV=1 (put-callbacks complete); with `sync`, VAL takes the
        readback (what motorRecord's postProcess does after a stop, jog, home, trip)."""
        if sync:
            self.dval = self.drbv(t)
        self.mip = Mip.DONE
        self.dmov = 1
        self._clear_buttons()
        if self.spmg == Spmg.MOVE:
            self.spmg = Spmg.PAUSE

    def _clear_buttons(self) -> None:
        self.jogf = self.jogr = self.homf = self.homr = 0

    # --- planning ------------------------------------------------------------------------
    def _hard_stop(self, direction: int) -> float:
        if direction > 0:
            return self.high_switch + self.hard_stop_margin
        return self.low_switch - self.hard_stop_margin

    def _events_for(self, trajectory: Trajectory, direction: int, now: float,
                    crossings: list[tuple[float, str]] | None = None) -> list:
        """Trip, stall, crossing and end events of a trajectory: the earliest one (it
        ends or replaces this plan, so only that one is kept)."""
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
        for position, kind in crossings or ():
            when = trajectory.crossing_time(position, after=now)
            if when is not None:
                events.append((when, kind))
        if self.hysteresis > 0:
            # a tripped switch the axis moves away from releases at its release position
            for side, held, kind in ((-1, self._held[0], "low_released"),
                                     (1, self._held[1], "high_released")):
                if held and direction == -side:
                    when = trajectory.crossing_time(self.release_position(side), after=now)
                    if when is not None:
                        events.append((when, kind))
        return [min(events)]

    def _set_motion(self, kind: str, accel: float, direction: int, now: float,
                    crossings: list[tuple[float, str]]) -> None:
        self._motion = _Motion(kind, accel, direction,
                               self._events_for(self.trajectory, direction, now, crossings),
                               crossings)

    def _start(self, kind: str, trajectory: Trajectory, accel: float, now: float,
               crossings: list[tuple[float, str]] | None = None) -> Result:
        """Replace the controller's motion (stopping it first if it is moving) and start."""
        if abs(self.trajectory.velocity_at(now)) > EPSILON:
            stopping = decelerate(self.trajectory, now, self._current_accel())
            follow = self._replan_from(trajectory, stopping.end_time, stopping.end_position)
            trajectory = then(stopping, stopping.end_time, follow)
        direction = _direction(trajectory)
        self.trajectory = trajectory
        self.stalled = self.slip_stall = False
        self._set_motion(kind, accel, direction, now, list(crossings or ()))
        return Result.STARTED

    def _decelerate(self, kind: str, now: float) -> None:
        """The controller stops (a STOP command): its deceleration, trips still count."""
        traj = decelerate(self.trajectory, now, self._current_accel())
        self.trajectory = traj
        direction = _direction(traj)
        self._set_motion(kind, self._current_accel(), direction, now, [])

    def _replan_from(self, trajectory: Trajectory, t: float, x: float) -> Trajectory:
        """The same move planned again from rest at (t, x): target and speed kept."""
        phases = trajectory.phases
        speed = max(abs(p.v0) for p in phases) or self.velo
        target = trajectory.end_position
        if trajectory.end_time - trajectory.start_time > LONG_RUN / 2:  # a jog: keep going
            return constant_velocity(t, x, math.copysign(speed, target - x), self._accel(speed),
                                     t + LONG_RUN)
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
        if self.gain_support and not self.cnen:
            return "torque disabled (CNEN=Disable)"
        return None

    def _into_active_switch(self, physical_direction: int, now: float) -> bool:
        low, high = self.raw_switches(self.trajectory.position_at(now))
        return (physical_direction > 0 and high) or (physical_direction < 0 and low)

    # --- record commands -----------------------------------------------------------------
    def move_user(self, user: float) -> Result:
        """A put to VAL (in Set mode: redefine the position instead)."""
        if self.set_mode:
            self.dmov = 0  # the record's special() blinks DMOV for any drive-field put
            if self.foff == 0:
                # FOFF=Variable: the offset moves, the dial stays.
                self.off = user - self.dir_sign * self.dval
                self.mip = Mip.DONE
                self.dmov = 1
                return Result.DONE
            return self._load_position(self.user_to_dial(user))
        return self.move_dial(self.user_to_dial(user))

    def move_dial(self, dial: float) -> Result:
        """A put to DVAL: a move, unless refused (limits, faults) or held by SPMG."""
        now = self.now()
        self.dmov = 0  # special(): DMOV drops for every drive-field put
        if self.set_mode:
            return self._load_position(dial)
        if self._violates_soft_limits(dial):
            self.lvio = 1
            log.info("%s: dial %.4f outside soft limits [%.4f, %.4f]", self.name, dial,
                     self.dllm, self.dhlm)
            self._settle_record()
            return Result.REFUSED
        self.lvio = 0
        self.dval = dial
        if self.spmg in (Spmg.STOP, Spmg.PAUSE):
            return Result.STARTED  # DMOV stays 0: the move waits for Go
        if self.mip & (Mip.MOVE | Mip.RETRY) and self.controller_busy:
            self._retarget(now)
            return Result.STARTED
        if self.mip & (JOGGING | HOMING | Mip.EXTERNAL | Mip.STOP) and self.controller_busy:
            return Result.STARTED  # taken up when that motion ends
        return self._start_move(now, Mip.MOVE)

    def _settle_record(self) -> None:
        """After a refused drive-field put: done again, unless a motion is in progress."""
        if not (self.controller_busy and self.mip != Mip.DONE):
            self.dmov = 1

    def _violates_soft_limits(self, dial: float) -> bool:
        if not self.soft_limits_enabled:
            return False
        if self.dllm > self.dhlm:
            return True
        # A move back towards the range from outside it is allowed.
        if (dial > self.dhlm and dial < self.dval) or (dial < self.dllm and dial > self.dval):
            return False
        return not (self.dllm <= dial <= self.dhlm)

    def _retarget(self, now: float) -> None:
        """A new VAL while moving: the controller keeps its target; the new-target monitor
        stops it if the new target is (or gets) behind the axis, else the record retries
        when this move ends."""
        motion = self._motion
        if motion is None:
            return
        target = self._physical(self.dval)
        here = self.trajectory.position_at(now)
        heading = 1 if self.cdir else -1
        deadband = NTM_FACTOR * self.rdbd
        if not self.ntm or abs(target - here) <= deadband:
            return
        if (target - here) * heading < 0:
            self._on_ntm(now)
            return
        motion.crossings = [c for c in motion.crossings if c[1] != "ntm"]
        if self.trajectory.crossing_time(target + heading * deadband, after=now) is not None:
            motion.crossings.append((target + heading * deadband, "ntm"))
        motion.events = self._events_for(self.trajectory, motion.direction, now,
                                         motion.crossings)

    def _start_move(self, now: float, mip: Mip) -> Result:
        """Send the move to DVAL: refused, too small, rejected by the controller, or on."""
        reason = self._blocked()
        if reason or self.velo <= 0:
            log.info("%s: move refused: %s", self.name, reason or "VELO is 0")
            self.mip = Mip.DONE
            self.dmov = 1
            return Result.REFUSED
        here = self.trajectory.position_at(now)
        target = self._physical(self.dval)
        if round(self.dval / self.mres) == round(self.drbv(now) / self.mres):
            self.mip = Mip.DONE  # within a step: nothing to do
            self.dmov = 1
            return Result.REFUSED
        direction = 1 if target > here else -1
        self.cdir = 1 if direction > 0 else 0
        self.mip = mip
        self.dmov = 0
        if not mip & Mip.RETRY:
            self.rcnt = 0
        if self._into_active_switch(direction, now):
            # motorSim refuses the move; the record hears it at the next status update,
            # the controller (not done for a moment) at the one after.
            if self._motion is None:
                self._motion = _Motion("idle", math.inf, 0,
                                       [(now + CONTROLLER_POLL, "idle")])
            self._schedule(now, "rejected")
            return Result.REFUSED
        traj = trapezoid(now, here, target, self.velo, self.accl)
        return self._start("move", traj, self._accel(self.velo), now)

    def _load_position(self, dial: float) -> Result:
        """SET with FOFF=Frozen (or a DVAL put in Set mode): the controller takes a new
        position; the record waits for it (MIP LOAD_P) and pulses DMOV."""
        now = self.now()
        self.shift += dial - self.position_at(now)
        self.dval = dial
        self.mip = Mip.LOAD_P
        self.dmov = 0
        self._replan_events()
        self._schedule(now, "loaded")
        return Result.DONE

    def jog(self, forward: bool, on: bool) -> Result:
        """JOGF/JOGR: 1 starts a jog at JVEL, 0 stops it."""
        now = self.now()
        if not on:
            if self.ignore_stop and self.mip & (Mip.JOGF | Mip.JOGR):
                log.info("%s ignores the jog release (fault knob)", self.name)
                return Result.IGNORED
            if forward:
                self.jogf = 0
            else:
                self.jogr = 0
            if self.mip & (Mip.JOGF | Mip.JOGR):
                self.mip = Mip.JOG_STOP
                self._decelerate("stop", now)
                return Result.STARTED
            return Result.IGNORED
        hls_or_lls = self.user_switches(self.trajectory.position_at(now))[1 if forward else 0]
        if self.busy or self._blocked() or self.jvel <= 0 or hls_or_lls:
            self._clear_buttons()  # ignored: JOGF reads back 0
            return Result.IGNORED
        if self.soft_limits_enabled:
            llm, hlm = self.user_limits()
            if ((forward and self.val > hlm - self.jvel) or
                    (not forward and self.val < llm + self.jvel) or self.dllm > self.dhlm):
                self.lvio = 1
                self._clear_buttons()
                return Result.IGNORED  # no motion, and DMOV does not pulse
        direction = self.dir_sign * (1 if forward else -1)  # physical sense
        here = self.trajectory.position_at(now)
        traj = constant_velocity(now, here, direction * self.jvel, self._accel(self.jvel),
                                 now + LONG_RUN)
        crossings = []
        if self.soft_limits_enabled:
            llm, hlm = self.user_limits()
            stop_user = hlm - self.jvel if forward else llm + self.jvel
            crossings.append((self._physical(self.user_to_dial(stop_user)), "jog_limit"))
        self.lvio = 0
        self.mip = Mip.JOGF if forward else Mip.JOGR
        self.cdir = 1 if direction > 0 else 0
        self.dmov = 0
        self.jogf, self.jogr = (1, 0) if forward else (0, 1)
        return self._start("jog", traj, self._accel(self.jvel), now, crossings)

    def home(self, forward: bool) -> Result:
        """HOMF/HOMR: motorSim runs at HVEL (raw forward for HOMF) to the home mark."""
        now = self.now()
        here = self.trajectory.position_at(now)
        low, high = self.raw_switches(here)
        if self.busy or self.mip & HOMING or (high if forward else low):
            self._clear_buttons()
            return Result.IGNORED
        if self._blocked():
            self.dmov = 1
            return Result.REFUSED
        direction = 1 if forward else -1
        self.homf, self.homr = (1, 0) if forward else (0, 1)
        self.mip = Mip.HOMF if forward else Mip.HOMR
        self.cdir = 1 if forward else 0
        self.dmov = 0
        self.rcnt = 0
        # motorSim clears HOMED when a home starts, and shows it at its next status update
        self._homed_shown_until = now if self.homed else -math.inf
        self.homed = False
        if self.hvel <= 0:
            # The controller "homes" at zero speed: done at its next status update.
            self.trajectory = self.trajectory.truncated(now)
            self._motion = _Motion("idle", math.inf, 0, [(now + CONTROLLER_POLL, "idle")])
            return Result.STARTED
        traj = constant_velocity(now, here, direction * self.hvel, self._accel(self.hvel),
                                 now + LONG_RUN)
        result = self._start("home", traj, self._accel(self.hvel), now,
                             [(self.home_position, "home_cross")])
        if abs(here - self.home_position) < EPSILON and self._motion is not None:
            self._motion.events = [(now, "home_cross")]  # on the sensor: crossed at once
        return result

    def stop(self, keep_target: bool = False) -> Result:
        """STOP (also SPMG=Stop): decelerate to rest; the record then takes the stop
        position as VAL. `keep_target` is SPMG=Pause (see set_spmg)."""
        if self.ignore_stop:
            log.info("%s ignores STOP (fault knob)", self.name)
            return Result.IGNORED
        now = self.now()
        if self.stalled:
            self.stalled = False
            self.trajectory = self.trajectory.truncated(now)
            self.mip = Mip.STOP
            self._motion = _Motion("stop", math.inf, 0, [(now, "end")])
            return Result.STARTED
        if keep_target:
            return self._pause(now)
        if self.mip == Mip.DONE or self.mip & (Mip.STOP | Mip.RETRY):
            # Nothing the record waits for: it only tells the controller to stop.
            if self.mip & Mip.RETRY:
                self.mip = Mip.DONE
                self.dmov = 1
            if self._motion is not None and self._motion.kind not in ("settle", "idle",
                                                                       "stop"):
                self._decelerate("stop", now)
            return Result.IGNORED
        movn = self.record_movn if self.record_movn is not None else self.controller_busy
        if not movn:
            # The record has not seen the axis move: VAL takes the readback now
            # (syncTargetPosition). The controller gets the STOP with the move it has not
            # started yet (motorSim takes commands at its next update): it does not move.
            if self._motion is not None and self._motion.kind == "move":
                self.trajectory = Trajectory.at_rest(now, self.trajectory.start_position)
            self.dval = self.drbv(now)
        else:
            self._clear_buttons()
        self.mip = Mip.STOP
        if self._motion is not None and self._motion.kind != "idle":
            self._decelerate("stop", now)
            return Result.STARTED
        return Result.DONE

    def _pause(self, now: float) -> Result:
        """SPMG=Pause: the axis stops, the record keeps its target (MIP STOP)."""
        if self.mip & HOMING:
            self._clear_buttons()
        self.mip = Mip.STOP
        if self._motion is not None and self._motion.kind not in ("settle", "idle", "stop"):
            self._decelerate("stop", now)
            return Result.STARTED
        return Result.DONE

    def set_spmg(self, value: int) -> Result:
        now = self.now()
        previous, self.spmg = self.spmg, Spmg(value)
        if self.spmg == previous:
            return Result.DONE
        if self.spmg == Spmg.STOP:
            return self.stop()
        if self.spmg == Spmg.PAUSE:
            return self.stop(keep_target=True)
        # Go (or Move): a stopped pause is over; a move the record owes is sent now.
        if self.mip == Mip.STOP and not self.controller_busy:
            self.mip = Mip.DONE
        elif self.mip == Mip.STOP:
            self.mip = Mip.DONE  # Go while still decelerating: on to the target
        if self.busy and self.mip in (Mip.DONE, Mip.RETRY):
            mip = Mip.RETRY | Mip.MOVE if self.mip == Mip.RETRY else Mip.MOVE
            return self._start_move(now, mip)
        return Result.DONE

    def sync(self) -> Result:
        """SYNC=1: VAL/DVAL take the readback (when the record is idle)."""
        if not self.busy and self.mip == Mip.DONE:
            self.dval = self.drbv(self.now())
        return Result.DONE

    def set_cnen(self, enabled: bool) -> Result:
        self.cnen = int(enabled)
        if self.gain_support and not enabled and self._motion is not None:
            self._halt("torque disabled")
        return Result.DONE

    def set_amp_fault(self, on: bool) -> Result:
        self.amp_fault = on
        if on and self._motion is not None:
            self._halt("amplifier fault")
        return Result.DONE

    def set_comm_error(self, on: bool) -> Result:
        if on and not self.comm_error:
            self._frozen = self._live_snapshot(self.now())
        self.comm_error = on
        if not on:
            self._frozen = None
        return Result.DONE

    def _halt(self, why: str) -> None:
        """An abrupt stop without deceleration (power gone): the record ends the move."""
        now = self.now()
        log.info("%s halted: %s", self.name, why)
        self.trajectory = self.trajectory.truncated(now)
        self._motion = None
        self.stalled = False
        if self.busy:
            self._finish(now, sync=False)

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
        motion = self._motion
        if motion is not None and motion.kind not in ("settle", "idle") and not self.stalled:
            now = self.now()
            motion.events = self._events_for(self.trajectory, motion.direction, now,
                                             motion.crossings)

    # --- record settings -------------------------------------------------------------------
    def set_offset(self, off: float) -> None:
        self.off = off

    def set_dir(self, value: int) -> None:
        """DIR: with FOFF=Variable the offset changes so that VAL stays (the record's
        special()); with FOFF=Frozen VAL changes sign around the offset."""
        sign = -1 if value else 1
        if sign == self.dir_sign:
            return
        user = self.val
        self.dir_sign = sign
        if self.foff == 0:
            self.off = user - sign * self.dval
        if not math.isnan(self.stall_at):
            self.set_stall_at(self.stall_at)

    def set_velo(self, velo: float) -> None:
        self.velo = min(velo, self.vmax) if self.vmax > 0 else velo

    def set_vmax(self, vmax: float) -> None:
        self.vmax = vmax
        if vmax > 0:
            self.velo = min(self.velo, vmax)
            self.jvel = min(self.jvel, vmax)

    def set_rdbd(self, rdbd: float) -> None:
        self.rdbd = max(rdbd, abs(self.mres))

    # --- readback ----------------------------------------------------------------------
    def drbv(self, t: float) -> float:
        steps = round(self.position_at(t) / self.mres)
        return round(steps * self.mres, 12)

    def msta(self, t: float) -> int:
        physical = self.trajectory.position_at(t)
        velocity = self.trajectory.velocity_at(t)
        low, high = self.raw_switches(physical)
        bits = Msta(0)
        bits |= Msta.DIRECTION if velocity > EPSILON else 0
        bits |= Msta.DONE if not self.controller_busy else 0
        bits |= Msta.MOVING if abs(velocity) > EPSILON or self.stalled else 0
        bits |= Msta.PLUS_LS if high else 0
        bits |= Msta.MINUS_LS if low else 0
        # motorSim's home sensor (asyn motorStatusHome: MSTA bit 7): its position equals
        # the home position, which a polled axis in motion never shows
        at_home = (abs(physical - self.home_position) < self.mres / 2 and
                   abs(velocity) <= EPSILON)
        bits |= Msta.HOME if at_home else 0
        bits |= Msta.SLIP_STALL if self.slip_stall else 0
        bits |= Msta.PROBLEM if self.amp_fault else 0
        bits |= Msta.HOMED if self.homed or t <= self._homed_shown_until else 0
        if self.gain_support:
            bits |= Msta.GAIN_SUPPORT | (Msta.POSITION if self.cnen else 0)
        return int(bits)

    def _movn(self, physical: float) -> int:
        """MOVN: the controller moves, and the switch ahead is not active."""
        if not self.controller_busy or self.amp_fault or self._limit_active(physical):
            return 0
        return 1

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
        msta = self.msta(t)
        return MotorState(
            val=self.val, dval=self.dval, rbv=round(self.dial_to_user(drbv), 12), drbv=drbv,
            rrbv=round(drbv / self.mres), diff=self.dval - drbv, off=self.off,
            dir=0 if self.dir_sign > 0 else 1, set=self.set_mode, foff=self.foff,
            hlm=hlm, llm=llm, dhlm=self.dhlm, dllm=self.dllm, lvio=self.lvio,
            hls=int(hls), lls=int(lls), rhls=int(raw_high), rlls=int(raw_low),
            dmov=self.dmov, movn=self._movn(physical), msta=msta, mip=int(self.mip),
            rcnt=self.rcnt, miss=self.miss,
            # TDIR is MSTA's direction bit; ATHM reads MSTA bit 3, which motorSim never sets
            tdir=int(bool(msta & Msta.DIRECTION)), athm=int(bool(msta & Msta.HOMELS)),
            jogf=self.jogf, jogr=self.jogr, homf=self.homf, homr=self.homr,
            spmg=int(self.spmg), cnen=self.cnen, velo=self.velo, jvel=self.jvel,
            hvel=self.hvel, accl=self.accl, vmax=self.vmax, mres=self.mres, rdbd=self.rdbd,
            rhlm=self.dhlm / self.mres, rllm=self.dllm / self.mres,
            severity=int(severity), status=status,
        )

    def snapshot(self, t: float | None = None) -> MotorState:
        """What the record shows at time t. During a comm error the readbacks freeze."""
        t = self.now() if t is None else t
        live = self._live_snapshot(t)
        if self._frozen is None:
            return live
        frozen = self._frozen
        return replace(
            live, rbv=frozen.rbv, drbv=frozen.drbv, rrbv=frozen.rrbv, diff=frozen.diff,
            hls=frozen.hls, lls=frozen.lls, rhls=frozen.rhls, rlls=frozen.rlls,
            # a plain int: caproto publishes an IntFlag as a 0-d array and fails on it
            dmov=frozen.dmov, movn=frozen.movn, msta=int(frozen.msta | Msta.COMM_ERR),
            athm=frozen.athm, tdir=frozen.tdir,
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
    fields["gain_support"] = bool(getattr(sim, "gain_support", False))
    fields["home"] = float(getattr(sim, "home", HOME_POSITION))
    fields["switch_hysteresis"] = float(getattr(sim, "switch_hysteresis", 0.0))
    return MotorParams(**fields, user_limits=user_limits)


def default_params(lo_lim: float, hi_lim: float, tolerance: float) -> MotorParams:
    """Physics for a configured motor without a sim entry: switches just past the range."""
    margin = tolerance + 2.0
    return MotorParams(low_switch=lo_lim - margin, high_switch=hi_lim + margin,
                       start=(lo_lim + hi_lim) / 2, user_limits=(lo_lim, hi_lim))
