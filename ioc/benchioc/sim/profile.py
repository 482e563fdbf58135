"""Motion profiles of a simulated axis: exact positions and crossing times, no I/O.

A trajectory is a chain of constant-acceleration phases in simulated seconds. It is
the single truth for where an axis is at any time, so readbacks, limit-switch trips,
stalls and a trigger box's position-compare crossings are all computed from it exactly
rather than sampled by a polling loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Rounding guard for times and positions computed by subtraction.
EPSILON = 1e-12


@dataclass(frozen=True)
class Phase:
    """Constant acceleration `accel` from (start, x0, v0) for `duration` seconds."""

    start: float
    x0: float
    v0: float
    accel: float
    duration: float

    @property
    def end(self) -> float:
        return self.start + self.duration

    def position(self, t: float) -> float:
        dt = min(max(t - self.start, 0.0), self.duration)
        return self.x0 + self.v0 * dt + 0.5 * self.accel * dt * dt

    def velocity(self, t: float) -> float:
        dt = min(max(t - self.start, 0.0), self.duration)
        return self.v0 + self.accel * dt

    def crossing_offsets(self, x: float) -> list[float]:
        """Offsets dt in [0, duration] at which the phase is at position x."""
        a, b, c = 0.5 * self.accel, self.v0, self.x0 - x
        if abs(a) < EPSILON:
            roots = [] if abs(b) < EPSILON else [-c / b]
        else:
            disc = b * b - 4 * a * c
            if disc < 0:
                # Tangent to x within rounding: count the turning point.
                if disc > -EPSILON * max(1.0, b * b):
                    disc = 0.0
                else:
                    return []
            root = math.sqrt(disc)
            roots = sorted({(-b - root) / (2 * a), (-b + root) / (2 * a)})
        return [dt for dt in roots if -EPSILON <= dt <= self.duration + EPSILON]


@dataclass(frozen=True)
class Trajectory:
    """A move in time: phases back to back, at rest before the first and after the last."""

    phases: tuple[Phase, ...]

    @classmethod
    def at_rest(cls, t: float, x: float) -> Trajectory:
        return cls((Phase(t, x, 0.0, 0.0, 0.0),))

    @property
    def start_time(self) -> float:
        return self.phases[0].start

    @property
    def end_time(self) -> float:
        return self.phases[-1].end

    @property
    def start_position(self) -> float:
        return self.phases[0].x0

    @property
    def end_position(self) -> float:
        return self.phases[-1].position(self.end_time)

    def _phase_at(self, t: float) -> Phase:
        for phase in self.phases:
            if t <= phase.end:
                return phase
        return self.phases[-1]

    def position_at(self, t: float) -> float:
        return self._phase_at(t).position(t)

    def velocity_at(self, t: float) -> float:
        if t < self.start_time or t >= self.end_time:
            return 0.0
        return self._phase_at(t).velocity(t)

    def crossing_time(self, x: float, after: float | None = None) -> float | None:
        """First time strictly after `after` (default: the start) at which the axis is at x."""
        after = self.start_time if after is None else after
        for phase in self.phases:
            if phase.end <= after:
                continue
            for dt in phase.crossing_offsets(x):
                t = phase.start + max(dt, 0.0)
                if t > after + EPSILON:
                    return t
        return None

    def crossing_times(self, positions: list[float]) -> list[float | None]:
        """Crossing time of each position (for a position-compare trigger box)."""
        return [self.crossing_time(x) for x in positions]

    def truncated(self, t: float) -> Trajectory:
        """This trajectory frozen at time t: at rest where it was then."""
        return Trajectory.at_rest(t, self.position_at(t))


def _ramp_phases(t0: float, x0: float, sign: float, distance: float, speed: float,
                 accel: float) -> list[Phase]:
    """Rest-to-rest phases covering `distance` with cruise `speed` and ramps at `accel`."""
    if math.isinf(accel):
        return [Phase(t0, x0, sign * speed, 0.0, distance / speed)]
    ramp_time = speed / accel
    ramp_distance = 0.5 * accel * ramp_time * ramp_time
    if 2 * ramp_distance >= distance:
        # Triangular: the axis never reaches the cruise speed.
        ramp_time = math.sqrt(distance / accel)
        peak = accel * ramp_time
        up = Phase(t0, x0, 0.0, sign * accel, ramp_time)
        down_x0 = up.position(up.end)
        return [up, Phase(up.end, down_x0, sign * peak, -sign * accel, ramp_time)]
    cruise_time = (distance - 2 * ramp_distance) / speed
    up = Phase(t0, x0, 0.0, sign * accel, ramp_time)
    cruise = Phase(up.end, up.position(up.end), sign * speed, 0.0, cruise_time)
    down = Phase(cruise.end, cruise.position(cruise.end), sign * speed, -sign * accel,
                 ramp_time)
    return [up, cruise, down]


def accel_rate(speed: float, accel_time: float) -> float:
    """Acceleration from the motor record's ACCL (seconds from rest to VELO)."""
    return math.inf if accel_time <= 0 else speed / accel_time


def trapezoid(t0: float, x0: float, x1: float, speed: float, accel_time: float) -> Trajectory:
    """A rest-to-rest move from x0 to x1: trapezoidal (or triangular) velocity profile.

    The end position is exactly x1 (the last phase is pinned to it), so a motion that
    ends on its timer reads back the commanded position, not a rounding neighbour.
    """
    if speed <= 0:
        raise ValueError(f"a move needs a speed above 0, not {speed:g}")
    distance = abs(x1 - x0)
    if distance < EPSILON:
        return Trajectory.at_rest(t0, x1)
    sign = 1.0 if x1 > x0 else -1.0
    phases = _ramp_phases(t0, x0, sign, distance, speed, accel_rate(speed, accel_time))
    return Trajectory(tuple(phases) + (Phase(phases[-1].end, x1, 0.0, 0.0, 0.0),))


def constant_velocity(t0: float, x0: float, velocity: float, accel: float,
                      until: float) -> Trajectory:
    """Accelerate from rest to `velocity` and keep going until time `until` (a jog)."""
    ramp = 0.0 if math.isinf(accel) else abs(velocity) / accel
    up = Phase(t0, x0, 0.0, math.copysign(accel, velocity) if ramp else 0.0, ramp)
    cruise = Phase(up.end, up.position(up.end), velocity, 0.0, max(until - up.end, 0.0))
    return Trajectory((up, cruise))


def decelerate(trajectory: Trajectory, t: float, accel: float) -> Trajectory:
    """Stop the axis from its state at time t with deceleration `accel`."""
    x, v = trajectory.position_at(t), trajectory.velocity_at(t)
    if abs(v) < EPSILON or math.isinf(accel):
        return Trajectory.at_rest(t, x)
    duration = abs(v) / accel
    down = Phase(t, x, v, -math.copysign(accel, v), duration)
    return Trajectory((down, Phase(down.end, down.position(down.end), 0.0, 0.0, 0.0)))


def then(first: Trajectory, second_from: float, second: Trajectory) -> Trajectory:
    """`first` up to time `second_from`, then `second` (which starts there)."""
    kept = tuple(p for p in first.phases if p.start < second_from - EPSILON)
    trimmed = tuple(
        Phase(p.start, p.x0, p.v0, p.accel, min(p.duration, second_from - p.start))
        for p in kept
    )
    return Trajectory(trimmed + second.phases)
