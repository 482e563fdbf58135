"""In-process fakes of the sync engines' devices, on a virtual clock.

FakeSyncMotor moves on a trapezoidal profile and posts readbacks at a poll rate like a
motor record; FakeCamera wraps the simulated camera's physics (benchioc.sim.camera);
FakeBox wraps the simulated PCOMP (benchioc.sim.triggerbox) and delivers its pulses to
the camera. run_virtual() runs a test on a loop whose clock jumps to the next timer
when nothing is ready, so a scan of seconds takes milliseconds and never depends on
the machine's load.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import h5py
import numpy as np
from virtualclock import run_virtual as _run_virtual

from benchioc.engines.sync.devices import (
    DeviceError,
    Frame,
    ImageMode,
    Pulse,
    TriggerMode,
    WrittenFile,
)
from benchioc.engines.sync.model import MotorSnapshot
from benchioc.sim.camera import CameraModel
from benchioc.sim.camera import ImageMode as SimImageMode
from benchioc.sim.camera import TriggerMode as SimTriggerMode
from benchioc.sim.triggerbox import Direction, PcompModel

T = TypeVar("T")


def run_virtual(coroutine: Coroutine[Any, Any, T]) -> T:
    # not strict: a scan file is written by a worker thread, with no timer pending
    return _run_virtual(coroutine, start=1000.0, strict=False)


def now() -> float:
    return asyncio.get_running_loop().time()


class Segment:
    """A rest-to-rest trapezoidal move (triangular when short)."""

    def __init__(self, t0: float, x0: float, x1: float, speed: float, accl: float) -> None:
        self.t0, self.x0, self.x1 = t0, x0, x1
        self.sign = 1.0 if x1 >= x0 else -1.0
        distance = abs(x1 - x0)
        self.accel = math.inf if accl <= 0 else speed / accl
        if math.isinf(self.accel):
            self.ramp, self.peak, self.cruise = 0.0, speed, distance / speed
        else:
            ramp = speed / self.accel
            if self.accel * ramp * ramp >= distance:  # never reaches the speed
                ramp = math.sqrt(distance / self.accel)
            self.ramp, self.peak = ramp, self.accel * ramp
            ramp_distance = 0.5 * self.accel * ramp * ramp
            self.cruise = (distance - 2 * ramp_distance) / self.peak if self.peak else 0.0
        self.end = t0 + 2 * self.ramp + self.cruise

    def position_at(self, t: float) -> float:
        dt = min(max(t - self.t0, 0.0), self.end - self.t0)
        if math.isinf(self.accel):
            return self.x0 + self.sign * self.peak * dt
        a, r, c = self.accel, self.ramp, self.cruise
        if dt <= r:
            d = 0.5 * a * dt * dt
        elif dt <= r + c:
            d = 0.5 * a * r * r + self.peak * (dt - r)
        else:
            down = dt - r - c
            d = 0.5 * a * r * r + self.peak * c + self.peak * down - 0.5 * a * down * down
        return self.x0 + self.sign * d


class FakeSyncMotor:
    def __init__(self, name: str = "A", position: float = 0.0, velocity: float = 10.0,
                 accl: float = 0.1, vmax: float = 20.0, llm: float = -40.0,
                 hlm: float = 40.0, poll: float = 0.01,
                 readback_interval: float | None = None,
                 learns_interval_after: int = 0, monitor_lag: float = 0.0,
                 tick_phase: float | None = None) -> None:
        """poll: seconds between readbacks while moving; readback_interval: what the
        snapshot reports of it (None: the poll, as if measured; 0: never known);
        learns_interval_after: report 0 until this many moves have started, as a client
        that has just connected does (it measures the interval on moves);
        monitor_lag: how late the snapshot's position is (a genuine motor record can
        complete a move's put-callback before its last readback monitor arrives);
        tick_phase: post readbacks on a free-running clock, at tick_phase + k * poll,
        as motorSim's 10 Hz task does, rather than from the start of each move."""
        self.name = name
        self.velocity = velocity
        self.accl = accl
        self.vmax = vmax
        self.llm, self.hlm = llm, hlm
        self.poll = poll
        self.readback_interval = poll if readback_interval is None else readback_interval
        self.monitor_lag = monitor_lag
        self.tick_phase = tick_phase
        self.learns_interval_after = learns_interval_after
        self.connected = True
        self.history: list[Segment] = []
        self._rest = position
        self._segment: Segment | None = None
        self._stopped = asyncio.Event()
        self._watchers: list[Callable[[float, float], None]] = []
        self.velocity_puts: list[float] = []
        self.moves: list[float] = []
        self.stops = 0
        self.stall_from_move: int | None = None  # fault: this move (0-based) on hangs

    # --- protocol ----------------------------------------------------------------------
    def position_at(self, t: float) -> float:
        for segment in reversed(self.history):
            if t >= segment.t0:
                return segment.position_at(t)
        return self.history[0].x0 if self.history else self._rest

    def snapshot(self) -> MotorSnapshot:
        t = now()
        return MotorSnapshot(position=self.position_at(t - self.monitor_lag),
                             velocity=self.velocity,
                             acceleration_time=self.accl, max_velocity=self.vmax,
                             high_limit=self.hlm, low_limit=self.llm, units="mm",
                             connected=self.connected, moving=self.moving,
                             readback_interval=0.0 if len(self.moves)
                             < self.learns_interval_after else self.readback_interval)

    @property
    def moving(self) -> bool:
        return self._segment is not None and now() < self._segment.end

    def record_fields(self) -> dict[str, Any]:
        return {"VELO": self.velocity, "ACCL": self.accl, "VMAX": self.vmax,
                "HLM": self.hlm, "LLM": self.llm, "EGU": "mm"}

    async def move(self, position: float, timeout: float) -> None:
        t = now()
        self.moves.append(position)
        segment = Segment(t, self.position_at(t), position, self.velocity, self.accl)
        self.history.append(segment)
        self._segment = segment
        self._stopped.clear()
        ticker = asyncio.create_task(self._post_readbacks(segment))
        try:
            stalled = self.stall_from_move is not None \
                and len(self.moves) > self.stall_from_move
            wait = math.inf if stalled else segment.end - t
            sleeper = asyncio.create_task(asyncio.sleep(wait))
            stopper = asyncio.create_task(self._stopped.wait())
            done, pending = await asyncio.wait({sleeper, stopper}, timeout=timeout,
                                               return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            if not done:
                raise TimeoutError(f"move to {position} took longer than {timeout} s")
        finally:
            ticker.cancel()
            self._post(now())

    async def _post_readbacks(self, segment: Segment) -> None:
        if self.tick_phase is not None:
            ticks = math.floor((now() - self.tick_phase) / self.poll) + 1
            await asyncio.sleep(self.tick_phase + ticks * self.poll - now())
        while True:
            self._post(now())
            if now() >= segment.end:
                return
            await asyncio.sleep(self.poll)

    def _post(self, t: float) -> None:
        for watcher in list(self._watchers):
            watcher(t, self.position_at(t))

    async def read_position(self) -> float:
        return self.position_at(now())

    async def stop(self) -> None:
        self.stops += 1
        t = now()
        x = self.position_at(t)
        # Stop at once (the fake does not decelerate): rest here from now on.
        self.history.append(Segment(t, x, x, self.velocity, self.accl))
        self._segment = None
        self._stopped.set()

    async def wait_stopped(self, timeout: float) -> None:
        if self._segment is not None and not self._stopped.is_set():
            await asyncio.wait_for(asyncio.sleep(max(self._segment.end - now(), 0)), timeout)

    async def set_velocity(self, velocity: float) -> None:
        self.velocity_puts.append(velocity)
        self.velocity = velocity

    def watch_position(self, callback: Callable[[float, float], None]) -> Callable[[], None]:
        self._watchers.append(callback)
        return lambda: self._watchers.remove(callback)


class _FakeLink:
    """A device's connection that a test switches with set_connected()."""

    def __init__(self) -> None:
        self.connected = True
        self._listeners: list[Callable[[], None]] = []

    def watch_connection(self, callback: Callable[[], None]) -> Callable[[], None]:
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def set_connected(self, connected: bool) -> None:
        self.connected = connected
        for listener in list(self._listeners):
            listener()


class FakeCamera(_FakeLink):
    prefix = "FAKE:cam1:"

    def __init__(self, readout: float = 0.002) -> None:
        super().__init__()
        self.model = CameraModel(readout)
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._watchers: list[Callable[[Frame], None]] = []
        self._driver: asyncio.Task | None = None
        self.stops = 0
        self.configured: dict[str, Any] = {}
        self.shutter_open = True
        self.shutter_puts: list[bool] = []

    @property
    def readout_time(self) -> float:
        return self.model.readout_time

    def _ensure_driver(self) -> None:
        if self._driver is None:
            self._driver = asyncio.create_task(self._drive())

    async def _drive(self) -> None:
        while True:
            due = self.model.next_event_time()
            self._wake.clear()
            timeout = None if due is None else max(due - now(), 0.0)
            until = now()
            if timeout is None or timeout > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                    until = now()
                except TimeoutError:
                    # The timer may fire a rounding error before `due`: that is `due`.
                    until = max(now(), due)
            for frame in self.model.advance(until):
                if not frame.dropped:
                    for watcher in list(self._watchers):
                        watcher(Frame(frame.number, frame.timestamp))
            if not self.model.acquiring:
                self._idle.set()

    async def configure(self, *, exposure: float, period: float, image_mode: ImageMode,
                        num_images: int, trigger_mode: TriggerMode) -> None:
        self.configured = dict(exposure=exposure, period=period, image_mode=image_mode,
                               num_images=num_images, trigger_mode=trigger_mode)
        self.model.acquire_time = exposure
        self.model.acquire_period = period
        self.model.image_mode = SimImageMode(int(image_mode))
        self.model.num_images = num_images
        self.model.trigger_mode = SimTriggerMode(int(trigger_mode))

    async def acquire(self, timeout: float) -> None:
        self._ensure_driver()
        self.model.start(now())
        self._idle.clear()
        self._wake.set()
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def wait_acquiring(self, timeout: float) -> None:
        deadline = now() + timeout
        while not self.model.acquiring:
            if now() > deadline:
                raise TimeoutError("camera did not start")
            await asyncio.sleep(0.001)

    async def stop(self) -> None:
        self.stops += 1
        self.model.stop(now())
        self._idle.set()
        self._wake.set()

    async def frame_counter(self) -> int:
        return self.model.array_counter

    async def images_counter(self) -> int:
        return self.model.num_images_counter

    def watch_frames(self, callback: Callable[[Frame], None]) -> Callable[[], None]:
        self._watchers.append(callback)
        callback(Frame(self.model.array_counter, now()))  # a monitor's first update
        return lambda: self._watchers.remove(callback)

    def trigger(self, at: float) -> None:
        self.model.trigger(at)
        self._wake.set()

    async def set_shutter(self, open_: bool) -> None:
        self.shutter_open = open_
        self.shutter_puts.append(open_)


class FakeWriter:
    """The camera's file plugin: counts the frames the camera delivers while armed and,
    at finish, writes that many small frames where NDFileHDF5 would, in Stream mode."""

    prefix = "FAKE:HDF1:"
    SHAPE = (4, 6)

    def __init__(self, camera: FakeCamera) -> None:
        self.camera = camera
        self.path = ""
        self.wanted = 0
        self.frames = 0
        self.dark_frames = 0  # frames that came with the shutter closed
        self.cancelled = False
        self._unwatch: Callable[[], None] | None = None
        self.directory_visible = True

    async def arm(self, directory: str, name: str, frames: int) -> str:
        if not self.directory_visible:
            raise DeviceError(f"the camera's file plugin {self.prefix} cannot see the "
                              f"data directory {directory}")
        self.path, self.wanted, self.frames, self.cancelled = (
            f"{directory}/{name}.h5", frames, 0, False)
        first = [True]

        def count(frame: Frame) -> None:
            if first[0]:  # the monitor's first update is no new frame
                first[0] = False
                return
            if self.frames < self.wanted and not self.cancelled:
                self.frames += 1
                self.dark_frames += not self.camera.shutter_open

        self._unwatch = self.camera.watch_frames(count)
        return self.path

    async def finish(self, timeout: float) -> WrittenFile:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        with h5py.File(self.path, "w") as h5:
            h5.create_dataset("entry/data/data", data=np.zeros((self.frames, *self.SHAPE),
                                                              dtype=np.uint16))
        return WrittenFile(self.path, self.frames)

    async def cancel(self) -> None:
        self.cancelled = True


class FakeBox(_FakeLink):
    prefix = "FAKE:PANDA:"

    def __init__(self, motors: dict[str, FakeSyncMotor], camera: FakeCamera,
                 sample: float = 0.002) -> None:
        super().__init__()
        self.model = PcompModel()
        self.motors = motors
        self.camera = camera
        self.sample = sample
        self._driver: asyncio.Task | None = None
        self.disarms = 0
        self.armed_with: dict[str, Any] = {}

    async def arm(self, *, motor: str, start: float, step: float, pulses: int,
                  direction: int, pre_start: float, width: float) -> None:
        self.armed_with = dict(motor=motor, start=start, step=step, pulses=pulses,
                               direction=direction, pre_start=pre_start, width=width)
        m = self.model
        m.start, m.step, m.pulses, m.pre_start, m.width = start, step, pulses, pre_start, width
        m.direction = Direction.POSITIVE if direction > 0 else Direction.NEGATIVE
        source = self.motors[motor]
        m.enable(now(), source.position_at(now()))
        if self._driver is not None:
            self._driver.cancel()
        self._driver = asyncio.create_task(self._drive(source))

    async def _drive(self, source: FakeSyncMotor) -> None:
        while self.model.active:
            await asyncio.sleep(self.sample)
            for pulse in self.model.advance(now(), source.position_at):
                if pulse.delivered:
                    self.camera.trigger(pulse.timestamp)

    async def disarm(self) -> None:
        self.disarms += 1
        self.model.disable()
        if self._driver is not None:
            self._driver.cancel()
            self._driver = None

    async def produced(self) -> int:
        return self.model.produced

    async def captured(self) -> list[Pulse]:
        return [Pulse(p.position, p.timestamp) for p in self.model.captured]
