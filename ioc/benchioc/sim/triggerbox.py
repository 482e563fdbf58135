"""A simulated PandA-style trigger box: position compare (PCOMP) with capture.

`PcompModel` is the physics: armed with START, STEP, PULSES, DIR and PRE_START, it is fed
the motor's position as a function of time and fires one pulse at the exact time the
position crosses each compare point (START + k*STEP in the direction DIR), found by
bisection on the motor's trajectory, not by the sampling instant. Each pulse is captured
(position and time, as PandA's PCAP would) and delivered to the trigger input of the
camera. The fault knob `DROP` counts pulses that are produced (PRODUCED moves) but lost
on the way to the camera, the cable fault a missed-frame count must reveal.

Positions are in the motor's user units: the box's encoder input is assumed scaled to
them (PandA's INENC SCALE/OFFSET), so the compare points are the scan's set positions.
`PcompGroup` maps `$(prefix)PCOMP1:*` records onto the model and samples the motor named
by `INP` through a `PositionSource`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from caproto import ChannelType
from caproto.server import PVGroup, SubGroup, pvproperty

log = logging.getLogger(__name__)

SAMPLE_PERIOD_S = 0.002
BISECTION_STEPS = 50
MAX_CAPTURE = 100_000


class Direction(enum.IntEnum):
    POSITIVE = 0
    NEGATIVE = 1

    @property
    def sign(self) -> int:
        return 1 if self == Direction.POSITIVE else -1


@dataclass(frozen=True)
class Pulse:
    index: int  # 0-based
    position: float  # captured position at the pulse
    timestamp: float
    delivered: bool = True


PositionAt = Callable[[float], float]


class PcompModel:
    """PCOMP behaviour over a position function of time."""

    def __init__(self) -> None:
        self.start = 0.0
        self.step = 1.0
        self.width = 0.001
        self.pulses = 1
        self.pre_start = 0.0
        self.direction = Direction.POSITIVE
        self.drop_pulses = 0  # fault: the next N pulses do not reach the camera
        self.enabled = False
        self.produced = 0
        self.dropped = 0
        self.captured: list[Pulse] = []
        self._pre_start_seen = False
        self._last_time: float | None = None

    @property
    def active(self) -> bool:
        return self.enabled and self.produced < self.pulses

    def point(self, index: int) -> float:
        return self.start + self.direction.sign * index * abs(self.step)

    def enable(self, now: float, position: float) -> None:
        """Arm: a new capture, counting from zero, watching from this position on."""
        self.enabled = True
        self.produced = 0
        self.dropped = 0
        self.captured = []
        self._pre_start_seen = self._before(position, self.start - self.direction.sign
                                            * self.pre_start, inclusive=True)
        self._last_time = now

    def disable(self) -> None:
        self.enabled = False
        self._last_time = None

    def _before(self, position: float, point: float, inclusive: bool = False) -> bool:
        """Is position on the near side of point, for the compare direction?"""
        signed = self.direction.sign * (point - position)
        return signed >= 0 if inclusive else signed > 0

    def advance(self, now: float, position_at: PositionAt) -> list[Pulse]:
        """Fire every pulse whose compare point was crossed between the last call and
        `now`; each at its exact crossing time."""
        if not self.active or self._last_time is None:
            return []
        t0, self._last_time = self._last_time, now
        if now <= t0:
            return []
        fired: list[Pulse] = []
        if not self._pre_start_seen:
            pre = self.start - self.direction.sign * self.pre_start
            if not self._before(position_at(now), pre, inclusive=True):
                return []
            self._pre_start_seen = True
        while self.active:
            target = self.point(self.produced)
            if self._before(position_at(now), target):
                break
            if not self._before(position_at(t0), target):
                # Already past at the start of the interval (armed beyond it): a real
                # PCOMP waits for a crossing, so this point is never fired.
                break
            crossing = self._bisect(t0, now, target, position_at)
            fired.append(self._fire(crossing, position_at(crossing)))
            t0 = crossing
        return fired

    def _bisect(self, lo: float, hi: float, target: float, position_at: PositionAt) -> float:
        for _ in range(BISECTION_STEPS):
            mid = 0.5 * (lo + hi)
            if self._before(position_at(mid), target):
                lo = mid
            else:
                hi = mid
        return hi

    def _fire(self, at: float, position: float) -> Pulse:
        index = self.produced
        self.produced += 1
        delivered = True
        if self.drop_pulses > 0:
            self.drop_pulses -= 1
            self.dropped += 1
            delivered = False
            log.info("trigger box fault: pulse %d at %.6f not delivered", index, at)
        pulse = Pulse(index, position, at, delivered)
        if len(self.captured) < MAX_CAPTURE:
            self.captured.append(pulse)
        return pulse


class PositionSource(Protocol):
    """Where the box reads a motor's position: wall time in, user units out.

    The motor simulation provides it; times up to a few sample periods in the past must
    still be answered (the bisection looks back over the last sample interval)."""

    def position_at(self, motor: str, t: float) -> float: ...


TriggerSink = Callable[[float], bool]


class _Pcomp(PVGroup):
    start = pvproperty(value=0.0, name="START", precision=4)
    step = pvproperty(value=1.0, name="STEP", precision=4)
    width = pvproperty(value=0.001, name="WIDTH", units="s", precision=4)
    pulses = pvproperty(value=1, name="PULSES")
    pre_start = pvproperty(value=0.0, name="PRE_START", precision=4)
    direction = pvproperty(value="Positive", name="DIR", dtype=ChannelType.ENUM,
                           enum_strings=("Positive", "Negative"))
    inp = pvproperty(value="", name="INP", dtype=ChannelType.STRING,
                     doc="motor whose position is compared (sim: a motor name)")
    enable = pvproperty(value="0", name="ENABLE", dtype=ChannelType.ENUM,
                        enum_strings=("0", "1"))
    active = pvproperty(value="0", name="ACTIVE", dtype=ChannelType.ENUM,
                        enum_strings=("0", "1"), read_only=True)
    produced = pvproperty(value=0, name="PRODUCED", read_only=True)
    out = pvproperty(value="0", name="OUT", dtype=ChannelType.ENUM,
                     enum_strings=("0", "1"), read_only=True)
    capture_positions = pvproperty(value=[], name="CAPTURE:POSITIONS", dtype=float,
                                   max_length=10_000, read_only=True)
    capture_times = pvproperty(value=[], name="CAPTURE:TIMES", dtype=float,
                               max_length=10_000, read_only=True)
    captured = pvproperty(value=0, name="CAPTURE:COUNT", read_only=True)
    drop = pvproperty(value=0, name="Sim:DROP",
                      doc="fault: the next N pulses are produced but never reach the camera")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.model = PcompModel()
        self.box: TriggerBoxGroup = self.parent  # type: ignore[assignment]
        self._armed = asyncio.Event()

    @start.putter
    async def start(self, instance, value):
        self.model.start = float(value)

    @step.putter
    async def step(self, instance, value):
        self.model.step = abs(float(value))

    @width.putter
    async def width(self, instance, value):
        self.model.width = float(value)

    @pulses.putter
    async def pulses(self, instance, value):
        self.model.pulses = max(int(value), 0)

    @pre_start.putter
    async def pre_start(self, instance, value):
        self.model.pre_start = abs(float(value))

    @direction.putter
    async def direction(self, instance, value):
        self.model.direction = Direction(("Positive", "Negative").index(value))

    @drop.putter
    async def drop(self, instance, value):
        self.model.drop_pulses = max(int(value), 0)

    @enable.putter
    async def enable(self, instance, value):
        if value == "1":
            motor = self.inp.value
            now = self.box.clock()
            try:
                position = self.box.positions.position_at(motor, now)
            except KeyError:
                raise ValueError(f"INP {motor!r} is not a simulated motor") from None
            self.model.enable(now, position)
            await self.produced.write(0)
            await self.captured.write(0)
            await self.capture_positions.write([])
            await self.capture_times.write([])
            self._armed.set()
        else:
            self.model.disable()
        await self._publish_active()
        return value

    async def _publish_active(self) -> None:
        active = "1" if self.model.active else "0"
        if self.active.value != active:
            await self.active.write(active)

    async def poll(self) -> None:
        """Sample the motor and fire due pulses; called by the box's clock loop."""
        if not self.model.active:
            return
        motor = self.inp.value
        now = self.box.clock()

        def position_at(t: float) -> float:
            return self.box.positions.position_at(motor, t)

        pulses = self.model.advance(now, position_at)
        for pulse in pulses:
            if pulse.delivered:
                self.box.deliver(pulse.timestamp)
        if pulses:
            captured = self.model.captured
            await self.produced.write(self.model.produced, timestamp=pulses[-1].timestamp)
            await self.capture_positions.write([p.position for p in captured])
            await self.capture_times.write([p.timestamp for p in captured])
            await self.captured.write(len(captured))
        await self._publish_active()

    @active.startup
    async def active(self, instance, async_lib):
        """The compare clock: sample while armed, sleep until armed otherwise."""
        while True:
            if not self.model.active:
                self._armed.clear()
                await self._armed.wait()
            await asyncio.sleep(SAMPLE_PERIOD_S)
            await self.poll()


class TriggerBoxGroup(PVGroup):
    """`$(prefix)PCOMP1:` of a PandA, wired to simulated motors and a camera input."""

    pcomp1 = SubGroup(_Pcomp, prefix="PCOMP1:")

    def __init__(self, *args, positions: PositionSource,
                 trigger_sink: TriggerSink | None = None,
                 clock: Callable[[], float] = time.time, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.positions = positions
        self.trigger_sink = trigger_sink
        self.clock = clock

    def deliver(self, at: float) -> None:
        if self.trigger_sink is not None:
            self.trigger_sink(at)


class SimMotorPositions:
    """A PositionSource over the motor simulation: wall time in, user position out.

    The motor physics runs on simulated seconds (monotonic time x time scale). The wall
    time of simulated time zero is taken once, so that every lookup (and every step of
    a bisection) uses the same mapping; reading two clocks per call would add their
    jitter to the crossing times."""

    def __init__(self, motors: Mapping[str, Any]) -> None:
        self.motors = motors
        self._origins: dict[str, tuple[float, float]] = {}

    def position_at(self, motor: str, t: float) -> float:
        sim = self.motors[motor]
        if motor not in self._origins:
            scale = sim.clock.time_scale
            self._origins[motor] = (time.time() - sim.clock() / scale, scale)
        origin, scale = self._origins[motor]
        return sim.user_position_at((t - origin) * scale)


def detector_groups(config: Any, motors: Mapping[str, Any], time_scale: float) -> list:
    """The simulated camera and trigger box (a GroupFactory of sim.server): the box
    compares the positions of the simulated motors and triggers the camera in-process."""
    from .camera import CameraGroup

    camera = CameraGroup(prefix=config.detector.prefix, time_scale=time_scale)
    box = TriggerBoxGroup(prefix=config.trigger.prefix, positions=SimMotorPositions(motors),
                          trigger_sink=camera.external_trigger)
    return [camera, box]


class MappingPositions:
    """A PositionSource over per-motor position functions (tests, simple sims)."""

    def __init__(self, functions: Mapping[str, PositionAt]) -> None:
        self.functions = functions

    def position_at(self, motor: str, t: float) -> float:
        return self.functions[motor](t)
