"""The ideal motion time of a homing, computed from the simulation's own physics.

The benchmark compares the IOC's homing wall time with the time the simulated hardware
needs for the same moves. That time is not estimated: a shadow `MotorSim` (the very
class the simulated bench runs, on a manual clock instead of the wall clock) is given
the same commands the homing engine sends, and the exact event times of its trajectory
are read off:

1. seek: JOGF/JOGR from rest at JVEL with ACCL, until the limit switch trips;
2. settle: from the trip until the controller has stopped on the switch (the sim's
   hard stop after a trip, at most `TRIP_SETTLE_TIME`, which is when MSTA DONE is set);
3. approach: the move back off the switch past the trip point (VELO, ACCL) and the slow
   jog onto it again at the creep speed (a tenth of JVEL) until it has settled, as the
   engine does with its default homing.creep_speed and homing.backoff;
4. center: the trapezoidal move (VELO, ACCL) from the calibrated switch position to
   the configured center.

Commands that do not move the axis (limits, SYNC, SET) take no simulated time. The shadow
keeps its state between homings, so a second homing starts where the first one ended,
exactly as on the served bench.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchioc.config import BenchConfig
from benchioc.sim.motion import MotorSim, Result
from benchioc.sim.server import build_motors

HOW = ("ideal = seek (jog from rest at JVEL with ACCL to the switch trip) + settle "
       "(trip to the controller at rest on the switch) + approach (back off past the trip, "
       "jog onto the switch again at JVEL/10, settle) + move to center (trapezoid at "
       "VELO/ACCL), each the exact event time of the sim's own MotorSim on a manual clock, "
       "divided by the time scale")
CREEP_FRACTION = 0.1  # homing.procedure's defaults
CREEP_RUN_S = 0.5


class ManualClock:
    """Simulated seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class IdealHoming:
    """Simulated seconds of each motion phase of one homing."""

    seek: float
    settle: float
    approach: float
    center: float

    @property
    def total(self) -> float:
        return self.seek + self.settle + self.approach + self.center


class ShadowBench:
    """Every motor of a config as the sim builds it, driven by hand through homings."""

    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self.clock = ManualClock()
        self.motors: dict[str, MotorSim] = build_motors(config, self.clock)

    def home(self, name: str, high: bool = True) -> IdealHoming:
        """Run one homing on the shadow motor; returns its motion phases' durations."""
        motor = self.motors[name]
        entry = self.config.motors[name]
        motor.dhlm = motor.dllm = 0.0  # the engine disables the soft limits first
        seek, settle = self._seek_and_settle(motor, high)
        approach = self._approach(motor, high)
        target = (entry.hi_lim if high else entry.lo_lim) + (
            self.config.tolerance if high else -self.config.tolerance)
        motor.sync()
        motor.set_mode = 1
        motor.move_user(target)
        motor.set_mode = 0
        motor.set_user_limits(entry.lo_lim, entry.hi_lim)
        center = self._run(motor, motor.move_user(entry.center))
        return IdealHoming(seek, settle, approach, center)

    def _approach(self, motor: MotorSim, high: bool) -> float:
        """Back off past the trip point until the switch releases, creep onto it again."""
        start = self.clock.now
        jvel = motor.jvel
        creep = CREEP_FRACTION * jvel
        resolution = max(1e-3, 10.0 ** -max(motor.params.prec, 0))
        distance = max(creep * CREEP_RUN_S, 10 * resolution)
        rbv = motor.user_position_at(self.clock.now)
        trip = min(motor.val, rbv) if high else max(motor.val, rbv)
        for _ in range(5):
            self._run(motor, motor.move_user(trip - distance if high else trip + distance))
            if not self._on_switch(motor, high):
                break
            distance *= 2
        motor.jvel = creep
        self._seek_and_settle(motor, high)
        motor.jvel = jvel
        return self.clock.now - start

    def _on_switch(self, motor: MotorSim, high: bool) -> bool:
        hls, lls = motor.user_switches(motor.position_at(self.clock.now))
        return hls if high else lls

    def _seek_and_settle(self, motor: MotorSim, high: bool) -> tuple[float, float]:
        start = self.clock.now
        if motor.jog(forward=high, on=True) is not Result.STARTED:
            return 0.0, 0.0  # already on the switch: the engine skips the jog
        self._advance_to_next_event(motor)  # the trip (the record is done here)
        if not motor.dmov:
            raise RuntimeError(f"{motor.name}: the shadow jog ended without a switch trip")
        tripped = self.clock.now
        while motor.next_event_time() is not None:  # the controller settles
            self._advance_to_next_event(motor)
        return tripped - start, self.clock.now - tripped

    def _run(self, motor: MotorSim, result: Result) -> float:
        start = self.clock.now
        if result is Result.STARTED:
            while motor.next_event_time() is not None:
                self._advance_to_next_event(motor)
        return self.clock.now - start

    def _advance_to_next_event(self, motor: MotorSim) -> None:
        when = motor.next_event_time()
        assert when is not None
        self.clock.now = max(self.clock.now, when)
        motor.advance(self.clock.now)
