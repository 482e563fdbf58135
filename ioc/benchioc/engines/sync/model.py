"""Scan settings, states and the plan of a scan: pure functions, no I/O.

`plan_scan` turns the user's settings plus what the motor and camera report into a
`ScanPlan` (set positions, velocity, run-up, taxi positions, estimated time) or refuses
with a `ScanRefused` whose text quotes the numbers and units that broke. The IOC's
preview records show the same plan while the user types.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass, field

import numpy as np

MAX_POINTS = 10_000
# Extra run-up beyond the acceleration distance: time at constant velocity before the
# first point, so software timing jitter and the motor's settling after its ramp do not
# fall on the first point.
RUN_UP_MARGIN_S = 0.05
# A Cont scan starts the camera from readbacks taken at constant speed, so the stretch at
# constant speed before Start must hold two of them: a speed needs a pair. A motor record
# polled at 10 Hz (motorSim, most controllers) posts a readback every 0.1 s, which the
# 0.05 s margin alone does not cover; the simulated bench posts one every 25 ms or less.
RUN_UP_READBACKS = 2.0
# A run-up found too short once the motor has moved is lengthened only beyond this
# factor: a few per cent less still holds its two readbacks, and an extra move costs more.
RUN_UP_SLACK = 1.1
# Fixed cost of one CA round trip sequence per step point (move + acquire puts).
STEP_OVERHEAD_S = 0.01


class ScanMode(enum.IntEnum):
    STEP = 0
    CONT = 1
    FLY = 2

    @property
    def label(self) -> str:
        return ("Step", "Cont", "Fly")[self]


class ScanState(enum.IntEnum):
    IDLE = 0
    PREPARING = 1
    RUNNING = 2
    FINISHING = 3
    DONE = 4
    ABORTED = 5
    FAILED = 6

    @property
    def label(self) -> str:
        return self.name.capitalize()

    @property
    def finished(self) -> bool:
        return self >= ScanState.DONE


class ScanRefused(ValueError):
    """The scan cannot start as configured (or one is already running); says why."""


@dataclass
class ScanSettings:
    """What the user sets on the `$(P)Sync:` records."""

    mode: ScanMode = ScanMode.STEP
    motor: str = ""
    start: float = 0.0
    end: float = 1.0
    num_points: int = 11
    frames_per_point: int = 1
    exposure: float = 0.01
    period: float = 0.05
    settle_time: float = 0.0
    require_homed: bool = True
    # Taken before the scan, as tomoscan does: darks with the shutter closed, flats with
    # the sample moved out of the beam. 0: none.
    dark_frames: int = 0
    flat_frames: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "mode": ScanMode(self.mode).label, "motor": self.motor, "start": self.start,
            "end": self.end, "num_points": self.num_points,
            "frames_per_point": self.frames_per_point, "exposure": self.exposure,
            "period": self.period, "settle_time": self.settle_time,
            "require_homed": self.require_homed, "dark_frames": self.dark_frames,
            "flat_frames": self.flat_frames,
        }


@dataclass(frozen=True)
class MotorSnapshot:
    """The motor record fields a plan depends on, in user units."""

    position: float
    velocity: float  # VELO
    acceleration_time: float  # ACCL, seconds from rest to VELO
    max_velocity: float = 0.0  # VMAX, 0: none
    high_limit: float = 0.0  # HLM
    low_limit: float = 0.0  # LLM
    units: str = ""
    connected: bool = True
    moving: bool = False
    readback_interval: float = 0.0  # seconds between readbacks while moving; 0: unknown

    @property
    def run_up_margin(self) -> float:
        """Seconds at constant speed before Start (and after End)."""
        return max(RUN_UP_MARGIN_S, RUN_UP_READBACKS * self.readback_interval)

    @property
    def has_soft_limits(self) -> bool:
        # The motor record disables soft limits when both dial limits are zero.
        return not (self.high_limit == 0 and self.low_limit == 0)


@dataclass(frozen=True)
class ScanPlan:
    settings: ScanSettings
    set_positions: np.ndarray
    velocity: float  # scan velocity (Cont/Fly); the motor's own for Step
    run_up: float  # distance before the first and after the last point (Cont/Fly)
    taxi_start: float
    taxi_end: float
    direction: int  # +1 towards increasing positions, -1 towards decreasing
    step: float  # signed distance between points
    estimated_time: float
    units: str = ""

    @property
    def expected_frames(self) -> int:
        s = self.settings
        per_point = s.frames_per_point if s.mode == ScanMode.STEP else 1
        return s.num_points * per_point


@dataclass(frozen=True)
class Preview:
    """What the preview records show: a plan's numbers, or why there is none."""

    ok: bool
    velocity: float = 0.0
    run_up: float = 0.0
    estimated_time: float = 0.0
    message: str = ""


@dataclass
class ScanArraysState:
    set_positions: list[float] = field(default_factory=list)
    positions: list[float] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    frame_numbers: list[int] = field(default_factory=list)


def _fmt(value: float, units: str = "") -> str:
    text = f"{value:.6g}"
    return f"{text} {units}".rstrip()


def _check_numbers(s: ScanSettings) -> None:
    for name, value in (("Start", s.start), ("End", s.end), ("Exposure", s.exposure),
                        ("Period", s.period), ("SettleTime", s.settle_time)):
        if not math.isfinite(value):
            raise ScanRefused(f"{name} must be a finite number, not {value}")
    if not 1 <= s.num_points <= MAX_POINTS:
        raise ScanRefused(f"NumPoints {s.num_points} must be between 1 and {MAX_POINTS}")
    if s.frames_per_point < 1:
        raise ScanRefused(f"FramesPerPoint {s.frames_per_point} must be at least 1")
    if s.exposure <= 0:
        raise ScanRefused(f"Exposure {_fmt(s.exposure, 's')} must be more than 0 s")
    if s.settle_time < 0:
        raise ScanRefused(f"SettleTime {_fmt(s.settle_time, 's')} must not be negative")
    for name, count in (("DarkFrames", s.dark_frames), ("FlatFrames", s.flat_frames)):
        if not 0 <= count <= MAX_POINTS:
            raise ScanRefused(f"{name} {count} must be between 0 and {MAX_POINTS}")


def _check_mode(s: ScanSettings) -> None:
    if s.mode == ScanMode.STEP:
        return
    label = ScanMode(s.mode).label
    if s.num_points < 2:
        raise ScanRefused(f"a {label} scan needs at least 2 points (NumPoints is "
                          f"{s.num_points}): the velocity comes from the step between them")
    if s.start == s.end:
        raise ScanRefused(f"a {label} scan needs Start and End to differ "
                          f"(both are {_fmt(s.start)})")
    if s.frames_per_point != 1:
        raise ScanRefused(f"a {label} scan takes one frame per point; set FramesPerPoint "
                          f"to 1 (it is {s.frames_per_point})")


def _check_period(s: ScanSettings, readout: float) -> None:
    needed = s.exposure + readout
    if s.period < needed - 1e-12:
        raise ScanRefused(
            f"Period {_fmt(s.period, 's')} is shorter than Exposure {_fmt(s.exposure, 's')}"
            f" + camera readout {_fmt(readout, 's')} = {_fmt(needed, 's')}"
        )


def _check_range(name: str, what: str, low: float, high: float, m: MotorSnapshot) -> None:
    if not m.has_soft_limits:
        return
    lo, hi = m.low_limit, m.high_limit
    if low < lo - 1e-12 or high > hi + 1e-12:
        raise ScanRefused(
            f"{what} of motor {name} ({_fmt(low)} to {_fmt(high, m.units)}) goes beyond "
            f"its soft limits ({_fmt(lo)} to {_fmt(hi, m.units)})"
        )


def _check_motor(s: ScanSettings, m: MotorSnapshot, homed: bool) -> None:
    if not m.connected:
        raise ScanRefused(f"motor {s.motor} is not connected")
    if s.require_homed and not homed:
        raise ScanRefused(f"motor {s.motor} is not homed: home it first, or set "
                          "RequireHomed to No")


def _move_time(distance: float, velocity: float, accl: float) -> float:
    if distance <= 0 or velocity <= 0:
        return 0.0
    return abs(distance) / velocity + accl


def plan_scan(settings: ScanSettings, motor: MotorSnapshot | None, *, homed: bool,
              readout_time: float, known_motors: tuple[str, ...] = (),
              device_problem: str = "") -> ScanPlan:
    """The scan these settings describe, or ScanRefused saying what to change.
    device_problem: why the camera (or, for Fly, the trigger box) cannot take part, in
    words; "" when they are ready."""
    s = settings
    if not s.motor:
        raise ScanRefused("no motor chosen: set Motor to one of "
                          f"{', '.join(known_motors) or 'the configured motors'}")
    if motor is None:
        names = ", ".join(known_motors) or "none"
        raise ScanRefused(f"there is no motor {s.motor!r} (motors: {names})")
    if device_problem:
        # before the settings: with no camera or box, no setting would make it work
        raise ScanRefused(device_problem)
    _check_numbers(s)
    _check_mode(s)
    _check_period(s, readout_time)
    points = np.linspace(s.start, s.end, s.num_points)
    _check_range(s.motor, "the scan range", float(points.min()), float(points.max()), motor)
    _check_motor(s, motor, homed)
    if s.mode == ScanMode.STEP:
        return _plan_step(s, motor, points)
    return _plan_motion(s, motor, points)


def _plan_step(s: ScanSettings, m: MotorSnapshot, points: np.ndarray) -> ScanPlan:
    step = float(points[1] - points[0]) if len(points) > 1 else 0.0
    to_start = _move_time(abs(m.position - s.start), m.velocity, m.acceleration_time)
    per_point = (_move_time(abs(step), m.velocity, m.acceleration_time) + s.settle_time
                 + s.frames_per_point * s.period + STEP_OVERHEAD_S)
    estimated = to_start + per_point * s.num_points
    direction = 1 if s.end >= s.start else -1
    return ScanPlan(s, points, m.velocity, 0.0, s.start, s.end, direction, step,
                    estimated, m.units)


def _plan_motion(s: ScanSettings, m: MotorSnapshot, points: np.ndarray) -> ScanPlan:
    step = float(points[1] - points[0])
    velocity = abs(step) / s.period
    if m.max_velocity > 0 and velocity > m.max_velocity * (1 + 1e-9):
        raise ScanRefused(
            f"a {ScanMode(s.mode).label} scan with a step of {_fmt(abs(step), m.units)} every "
            f"{_fmt(s.period, 's')} needs {_fmt(velocity, m.units + '/s')}, more than "
            f"motor {s.motor}'s VMAX of {_fmt(m.max_velocity, m.units + '/s')}: lengthen "
            "Period or use more points"
        )
    run_up = _run_up(velocity, m)
    direction = 1 if s.end > s.start else -1
    taxi_start, taxi_end = _taxi_positions(s, direction, run_up, m)
    to_start = _move_time(abs(m.position - taxi_start), m.velocity, m.acceleration_time)
    travel = abs(taxi_end - taxi_start)
    estimated = to_start + travel / velocity + m.acceleration_time + STEP_OVERHEAD_S
    return ScanPlan(s, points, velocity, run_up, taxi_start, taxi_end, direction, step,
                    estimated, m.units)


def _run_up(velocity: float, m: MotorSnapshot) -> float:
    return velocity * (m.acceleration_time / 2 + m.run_up_margin)


def _taxi_positions(s: ScanSettings, direction: int, run_up: float,
                    m: MotorSnapshot) -> tuple[float, float]:
    taxi_start = s.start - direction * run_up
    taxi_end = s.end + direction * run_up
    _check_range(s.motor, "the run-up and run-out", min(taxi_start, taxi_end),
                 max(taxi_start, taxi_end), m)
    return taxi_start, taxi_end


def fit_run_up(plan: ScanPlan, motor: MotorSnapshot) -> ScanPlan:
    """The plan with the run-up (and run-out) the motor needs as it reports itself now,
    if that is longer than planned: its readback rate may have become known since the
    plan was made (measured on the move to the run-up position). ScanRefused if the
    longer run-up would pass the soft limits."""
    run_up = _run_up(plan.velocity, motor)
    if run_up <= plan.run_up * RUN_UP_SLACK:
        return plan
    taxi_start, taxi_end = _taxi_positions(plan.settings, plan.direction, run_up, motor)
    return dataclasses.replace(plan, run_up=run_up, taxi_start=taxi_start,
                               taxi_end=taxi_end)


def preview(settings: ScanSettings, motor: MotorSnapshot | None, *, homed: bool,
            readout_time: float, known_motors: tuple[str, ...] = (),
            device_problem: str = "") -> Preview:
    try:
        plan = plan_scan(settings, motor, homed=homed, readout_time=readout_time,
                         known_motors=known_motors, device_problem=device_problem)
    except ScanRefused as refusal:
        return Preview(ok=False, message=str(refusal))
    return Preview(ok=True, velocity=plan.velocity, run_up=plan.run_up,
                   estimated_time=plan.estimated_time,
                   message=f"ready: about {plan.estimated_time:.1f} s")
