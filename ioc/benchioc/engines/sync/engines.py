"""The three ways to synchronise one motor with the camera.

- Step (software): move with put-callback, settle, acquire FramesPerPoint frames with a
  put-callback on Acquire, record the readback, the frame number and the frame time.
- Cont (software, continuous): the motor crosses the range at constant velocity while
  the camera free-runs at its period; each frame's position is interpolated from the
  motor's readback monitor at the frame's timestamp.
- Fly (hardware): the trigger box fires a pulse as the motor crosses each point; the
  camera takes one frame per pulse; positions come from the box's capture.

Every engine only does the scan. Restoring velocity, stopping the motor, disarming the
box and stopping the camera after a failure or abort is `Cleanup`'s job, so the rules of
what is undone live in one place. Missed frames (triggers sent minus frames counted) are
counted, never hidden.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from . import model
from .devices import (
    Camera,
    Frame,
    ImageMode,
    Pulse,
    SyncMotor,
    TriggerBox,
    TriggerMode,
    Unsubscribe,
)
from .model import ScanArraysState, ScanMode, ScanPlan

log = logging.getLogger(__name__)

MOVE_MARGIN_S = 5.0
ACQUIRE_MARGIN_S = 5.0
ARM_TIMEOUT_S = 5.0
# How long the frame monitor may lag behind the camera's put-callback (CA monitors and
# put replies travel separately through a server).
FRAME_CATCH_UP_S = 2.0
# How long a step waits for the frame monitor to count the frames it asked for before
# it reads ArrayCounter_RBV to learn the truth (a frame lost, or a monitor late).
FRAME_MONITOR_GRACE_S = 0.25


class ScanFailed(RuntimeError):
    """The scan could not go on; the text says what broke, with numbers."""


@dataclass
class Tally:
    """The live numbers of one scan, shared by engine and controller."""

    arrays: ScanArraysState = field(default_factory=ScanArraysState)
    point: int = 0
    frames_acquired: int = 0
    missed_frames: int = 0
    triggers: int = 0
    progress: float = 0.0
    # the camera's frame counter before the first data frame, where an engine read it
    # (Step: a point's frames are those numbered after the previous point's)
    frame_baseline: int | None = None


class ScanContext:
    """Everything an engine touches; `report` tells the controller something changed."""

    def __init__(self, plan: ScanPlan, motor: SyncMotor, camera: Camera,
                 box: TriggerBox | None, report: Callable[[], None],
                 running: Callable[[], None]) -> None:
        self.plan = plan
        self.settings = plan.settings
        self.motor = motor
        self.camera = camera
        self.box = box
        self.tally = Tally()
        self.report = report
        self.running = running
        self.original_velocity: float | None = None

    def move_timeout(self, target: float, velocity: float | None = None,
                     motor: SyncMotor | None = None) -> float:
        """How long a move of `motor` (the scanned one by default) to target may take."""
        snap = (motor or self.motor).snapshot()
        speed = velocity or snap.velocity
        if speed <= 0:
            return 60.0
        travel = abs(target - snap.position)
        return (travel / speed + 2 * snap.acceleration_time) * 1.5 + MOVE_MARGIN_S

    async def set_velocity(self, velocity: float) -> None:
        if self.original_velocity is None:
            self.original_velocity = self.motor.snapshot().velocity
        await self.motor.set_velocity(velocity)


class FrameCollector:
    """Frames from the camera's monitor, with a way to wait until one has arrived."""

    def __init__(self, on_frame: Callable[[Frame], None] | None = None,
                 baseline: int | None = None) -> None:
        self.baseline = baseline  # frames numbered up to this are from before the scan
        self.frames: list[Frame] = []
        self._changed = asyncio.Event()
        self._on_frame = on_frame

    def __call__(self, frame: Frame) -> None:
        if self.baseline is not None and frame.number <= self.baseline:
            return
        if self.frames and frame.number <= self.frames[-1].number:
            return  # a repeat of a value already seen (monitor's first update)
        self.frames.append(frame)
        self._changed.set()
        if self._on_frame is not None:
            self._on_frame(frame)

    async def wait_for_number(self, number: int, timeout: float) -> bool:
        """Wait until a frame numbered `number` or later has arrived (or time runs out)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.frames or self.frames[-1].number < number:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            self._changed.clear()
            try:
                async with asyncio.timeout(remaining):  # not wait_for: see clients/ca.py
                    await self._changed.wait()
            except TimeoutError:
                return False
        return True

    def since(self, counter: int) -> list[Frame]:
        return [frame for frame in self.frames if frame.number > counter]


async def run_scan(ctx: ScanContext) -> None:
    engine = {ScanMode.STEP: run_step, ScanMode.CONT: run_cont, ScanMode.FLY: run_fly}
    await engine[ScanMode(ctx.settings.mode)](ctx)


# --- Step ------------------------------------------------------------------------------
async def run_step(ctx: ScanContext) -> None:
    s, plan = ctx.settings, ctx.plan
    await ctx.camera.configure(
        exposure=s.exposure, period=s.period, image_mode=ImageMode.MULTIPLE,
        num_images=s.frames_per_point, trigger_mode=TriggerMode.INTERNAL,
    )
    collector = FrameCollector()
    unsubscribe = ctx.camera.watch_frames(collector)
    try:
        # one read of the frame counter a scan; each point then counts on from it with
        # the frame monitor
        counted = ctx.tally.frame_baseline = await ctx.camera.frame_counter()
        ctx.running()
        for index, target in enumerate(plan.set_positions):
            counted = await _step_point(ctx, collector, index, float(target), counted)
    finally:
        unsubscribe()


async def _frames_after(ctx: ScanContext, collector: FrameCollector, before: int) -> int:
    """The camera's frame counter once the point's frames are in: from the monitor when
    it counts all the frames asked for, else (a frame lost, or the monitor late) read."""
    wanted = before + ctx.settings.frames_per_point
    if await collector.wait_for_number(wanted, FRAME_MONITOR_GRACE_S):
        return collector.frames[-1].number
    after = await ctx.camera.frame_counter()
    if after > before:
        await collector.wait_for_number(after, FRAME_CATCH_UP_S)
    return after


async def _step_point(ctx: ScanContext, collector: FrameCollector, index: int,
                      target: float, before: int) -> int:
    """One point; returns the camera's frame counter after it."""
    s, tally = ctx.settings, ctx.tally
    try:
        await ctx.motor.move(target, ctx.move_timeout(target))
    except TimeoutError:
        raise ScanFailed(f"motor {ctx.motor.name} did not reach point {index + 1} "
                         f"({target:g}) in time") from None
    if s.settle_time > 0:
        await asyncio.sleep(s.settle_time)
    position = await ctx.motor.read_position()
    started = time.time()
    try:
        await ctx.camera.acquire(s.frames_per_point * s.period * 2 + ACQUIRE_MARGIN_S)
    except TimeoutError:
        raise ScanFailed(f"camera {ctx.camera.prefix} did not finish {s.frames_per_point} "
                         f"frame(s) at point {index + 1}") from None
    after = await _frames_after(ctx, collector, before)
    frames = collector.since(before)
    got = max(after - before, 0)
    tally.triggers += s.frames_per_point
    tally.frames_acquired += got
    tally.missed_frames += max(s.frames_per_point - got, 0)
    arrays = tally.arrays
    arrays.set_positions.append(target)
    arrays.positions.append(position)
    arrays.frame_numbers.append(after if got else -1)
    arrays.timestamps.append(frames[0].timestamp if frames else started)
    tally.point = index + 1
    tally.progress = 100.0 * tally.point / s.num_points
    ctx.report()
    return after


# --- Cont ------------------------------------------------------------------------------
async def _taxi(ctx: ScanContext, *, fit_run_up: bool = False) -> None:
    """To the run-up position at the motor's own speed, then set the scan speed.

    fit_run_up (Cont): if the move showed that the motor's readbacks come more rarely
    than the plan knew, go on to the longer run-up the camera's start needs."""
    await _move_to_run_up(ctx)
    if fit_run_up:
        await _lengthen_run_up(ctx)
    await ctx.set_velocity(ctx.plan.velocity)


async def _lengthen_run_up(ctx: ScanContext) -> bool:
    """Move on to a longer run-up if the motor's readback interval, as known now, needs
    one; whether it did."""
    interval = ctx.motor.snapshot().readback_interval
    try:
        longer = model.fit_run_up(ctx.plan, ctx.motor.snapshot())
    except model.ScanRefused as refusal:
        raise ScanFailed(f"{refusal}, once lengthened for a readback every "
                         f"{interval:.3g} s") from None
    if longer is ctx.plan:
        return False
    log.info("motor %s posts a readback every %.3g s: run-up %.4g instead of %.4g",
             ctx.motor.name, interval, longer.run_up, ctx.plan.run_up)
    ctx.plan = longer
    await _move_to_run_up(ctx)
    return True


async def _move_to_run_up(ctx: ScanContext) -> None:
    target = ctx.plan.taxi_start
    try:
        await ctx.motor.move(target, ctx.move_timeout(target))
    except TimeoutError:
        raise ScanFailed(f"motor {ctx.motor.name} did not reach the run-up position "
                         f"{target:g} in time") from None


def _on_frame(ctx: ScanContext) -> Callable[[Frame], None]:
    def count(frame: Frame) -> None:
        tally = ctx.tally
        tally.frames_acquired += 1
        tally.point = min(tally.frames_acquired, ctx.settings.num_points)
        tally.progress = 100.0 * tally.point / ctx.settings.num_points
        ctx.report()

    return count


async def _sweep(ctx: ScanContext) -> asyncio.Task:
    plan = ctx.plan
    timeout = ctx.move_timeout(plan.taxi_end, plan.velocity)
    return asyncio.create_task(ctx.motor.move(plan.taxi_end, timeout))


async def _finish_sweep(ctx: ScanContext, sweep: asyncio.Task) -> None:
    try:
        await sweep
    except TimeoutError:
        raise ScanFailed(f"motor {ctx.motor.name} did not reach the run-out position "
                         f"{ctx.plan.taxi_end:g} in time") from None


async def run_cont(ctx: ScanContext) -> None:
    s = ctx.settings
    await ctx.camera.configure(
        exposure=s.exposure, period=s.period, image_mode=ImageMode.MULTIPLE,
        num_images=s.num_points, trigger_mode=TriggerMode.INTERNAL,
    )
    await _taxi(ctx, fit_run_up=True)
    samples: list[tuple[float, float]] = []
    before = await ctx.camera.frame_counter()
    collector = FrameCollector(_on_frame(ctx), baseline=before)
    unwatch_frames = ctx.camera.watch_frames(collector)
    sweep: asyncio.Task | None = None
    unwatch_motor: Unsubscribe | None = None
    try:
        ctx.running()
        try:
            sweep, unwatch_motor = await _sweep_to_start(ctx, samples, retry=True)
        except _RunUpTooShort as short:
            await _go_back_further(ctx, short)
            sweep, unwatch_motor = await _sweep_to_start(ctx, samples, retry=False)
        await _acquire(ctx, s.num_points * s.period * 2 + ACQUIRE_MARGIN_S)
        after = await ctx.camera.frame_counter()
        if after > before:
            await collector.wait_for_number(after, FRAME_CATCH_UP_S)
        await _finish_sweep(ctx, sweep)
        taken = await ctx.camera.images_counter()
        frames = collector.since(before)
        _record_cont(ctx, frames, samples, exposures=taken)
    finally:
        if unwatch_motor is not None:
            unwatch_motor()
        unwatch_frames()
        if sweep is not None and not sweep.done():
            sweep.cancel()


class _RunUpTooShort(ScanFailed):
    """The motor reached constant speed too late to start the camera on Start."""


async def _sweep_to_start(ctx: ScanContext, samples: list[tuple[float, float]], *,
                          retry: bool) -> tuple[asyncio.Task, Unsubscribe]:
    """Start the sweep, collecting readbacks into `samples`; return once the motor
    passes Start, with the sweep's task and the readback watch (the caller ends it)."""
    samples.clear()
    start_watch = StartWatch(ctx.plan, ctx.motor.snapshot().acceleration_time)

    def on_readback(timestamp: float, position: float) -> None:
        samples.append((timestamp, position))
        start_watch(timestamp, position)

    unwatch = ctx.motor.watch_position(on_readback)
    sweep = await _sweep(ctx)
    try:
        await _wait_for_start(ctx, start_watch, sweep, retry=retry)
    except BaseException:
        unwatch()
        if not sweep.done():
            sweep.cancel()
        raise
    return sweep, unwatch


async def _go_back_further(ctx: ScanContext, short: _RunUpTooShort) -> None:
    """The sweep's readbacks came too rarely for the run-up: a client that had not yet
    seen the motor move (the command line) did not know. No frame has been taken: stop,
    and go back to the run-up they need, once."""
    log.info("%s; going back further", short)
    try:
        await ctx.motor.stop()
        await ctx.motor.wait_stopped(ctx.move_timeout(ctx.motor.snapshot().position))
    except TimeoutError as error:
        raise ScanFailed(f"{short}; then the motor did not stop: {error}") from None
    if ctx.original_velocity is not None:
        await ctx.motor.set_velocity(ctx.original_velocity)  # back at its own speed
    if not await _lengthen_run_up(ctx):
        raise ScanFailed(str(short))
    await ctx.set_velocity(ctx.plan.velocity)


class StartWatch:
    """When will the sweeping motor pass Start? Told by its readbacks, not by a clock.

    Once a readback lies beyond the end of the acceleration ramp, the motor moves at
    constant speed; the speed measured between the last two readbacks (on the motor's
    own timestamps) gives the time left until Start. This holds whatever the controller's
    real ramp and whatever the simulation's time scale, where a sleep computed from ACCL
    and VELO would not. Each later readback before Start refines the estimate: the first
    pair may straddle the ramp's end (a speed too low), which matters when readbacks are
    rare (a motor record polled at 10 Hz)."""

    def __init__(self, plan: ScanPlan, acceleration_time: float) -> None:
        self.start = float(plan.set_positions[0])
        self.direction = plan.direction
        self.ramp_end = plan.taxi_start + plan.direction * plan.velocity \
            * acceleration_time / 2
        self.cruising = asyncio.Event()
        self.updated = asyncio.Event()  # a new estimate since the engine last looked
        self._last: tuple[float, float] | None = None
        self.speed = 0.0  # position units per second of the readback timestamps
        self.position = math.nan
        self.arrived = 0.0  # loop time at which that readback arrived
        self.first_position = math.nan  # where constant speed was first seen
        self.pair_at_speed = False  # the estimate rests on two readbacks past the ramp

    def _beyond(self, position: float, mark: float) -> bool:
        return (position - mark) * self.direction >= 0

    def __call__(self, timestamp: float, position: float) -> None:
        last, self._last = self._last, (timestamp, position)
        if last is None or (self.cruising.is_set() and self._beyond(self.position,
                                                                     self.start)):
            return  # nothing to compare with, or Start already passed: keep the estimate
        moved = (position - last[1]) * self.direction > 0
        if not (self._beyond(position, self.ramp_end) and moved and timestamp > last[0]):
            return
        if self.cruising.is_set() and not self._beyond(last[1], self.ramp_end):
            return  # keep the estimate until a pair lies wholly at constant speed
        self.speed = abs(position - last[1]) / (timestamp - last[0])
        self.pair_at_speed = self._beyond(last[1], self.ramp_end)
        self.position = position
        self.arrived = asyncio.get_running_loop().time()
        if not self.cruising.is_set():
            self.first_position = position
            self.cruising.set()
        self.updated.set()

    def delay(self) -> float:
        """Seconds from now until the motor passes Start (0 if it already has)."""
        ahead = (self.start - self.position) * self.direction
        elapsed = asyncio.get_running_loop().time() - self.arrived
        return max(ahead / self.speed - elapsed, 0.0) if self.speed > 0 else 0.0


async def _wait_for_start(ctx: ScanContext, watch: StartWatch, sweep: asyncio.Task, *,
                          retry: bool = False) -> None:
    """Sleep until the motor passes Start; fail if it never reaches constant speed, or
    reaches it too late (_RunUpTooShort if `retry`: the caller may go back further)."""
    cruising = asyncio.create_task(watch.cruising.wait())
    timeout = ctx.move_timeout(ctx.plan.taxi_end, ctx.plan.velocity)
    try:
        await asyncio.wait({cruising, sweep}, timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        cruising.cancel()
    if not watch.cruising.is_set():
        if sweep.done() and sweep.exception() is not None:
            await _finish_sweep(ctx, sweep)  # raises the motor's failure in words
        raise ScanFailed(
            f"motor {ctx.motor.name} did not report constant speed past "
            f"{watch.ramp_end:g} before Start {watch.start:g}; no frames were taken")
    late = (watch.first_position - watch.start) * watch.direction
    half_step = abs(ctx.plan.step) / 2
    too_late = late > half_step
    # Sleep until the predicted crossing; a readback arriving first refines it.
    while not too_late and (delay := watch.delay()) > 0:
        watch.updated.clear()
        try:
            async with asyncio.timeout(delay):  # not wait_for: see clients/ca.py
                await watch.updated.wait()
        except TimeoutError:
            break
    if retry and (too_late or not watch.pair_at_speed) and _longer_run_up_known(ctx):
        # The camera would start late, on a speed measured across the ramp's end.
        raise _RunUpTooShort(
            f"motor {ctx.motor.name} posts a readback every "
            f"{ctx.motor.snapshot().readback_interval:.3g} s, too rarely to start the "
            f"camera on Start from a run-up of {ctx.plan.run_up:g}")
    if too_late:
        raise ScanFailed(
            f"motor {ctx.motor.name} was first seen at constant speed at "
            f"{watch.first_position:g}, already {late:g} past Start {watch.start:g} (more "
            f"than half a step, {half_step:g}): its readbacks come too rarely for this "
            f"speed ({ctx.plan.velocity:g}/s); lengthen Period")


def _longer_run_up_known(ctx: ScanContext) -> bool:
    """Would the motor's readback interval, as known now, ask for a longer run-up that
    its soft limits allow?"""
    try:
        return model.fit_run_up(ctx.plan, ctx.motor.snapshot()) is not ctx.plan
    except model.ScanRefused:
        return False


async def _acquire(ctx: ScanContext, timeout: float) -> None:
    try:
        await ctx.camera.acquire(timeout)
    except TimeoutError:
        raise ScanFailed(f"camera {ctx.camera.prefix} did not end its acquisition within "
                         f"{timeout:.1f} s") from None


def interpolate_positions(frame_times: list[float],
                          samples: list[tuple[float, float]]) -> list[float]:
    """Position at each frame time, linear between the readback samples around it."""
    if not samples:
        return [math.nan] * len(frame_times)
    ordered = sorted(samples)
    times = np.array([t for t, _ in ordered])
    positions = np.array([x for _, x in ordered])
    return list(np.interp(frame_times, times, positions))


def frame_start_times(frames: list[Frame], period: float) -> list[float]:
    """When each frame's exposure began, no later than its successors allow.

    A software-timed camera reports a frame when its driver gets round to it: a thread
    that overslept the exposure, or a record processed late, makes one timestamp late
    (14 ms seen on a loaded 2-core machine with the genuine simDetector, 0.056 mm at
    4 mm/s) while the next frames keep their schedule. No camera starts frames faster
    than its period, so a frame began at least (n_j - n_i) periods before any later
    frame j did: the latest start consistent with every later report is the minimum of
    those bounds. A report on time is left as it is.

    The period is the camera's as measured on these timestamps (the median interval per
    frame), if shorter than the one set: a simulated camera at a time scale runs its
    frames that much faster in the timestamps' seconds."""
    starts = [f.timestamp for f in frames]
    intervals = [(b.timestamp - a.timestamp) / (b.number - a.number)
                 for a, b in zip(frames, frames[1:], strict=False) if b.number > a.number]
    if not intervals:
        return starts
    spacing = min(period, float(np.median(intervals)))
    for i in range(len(frames) - 2, -1, -1):
        gap = frames[i + 1].number - frames[i].number
        starts[i] = min(starts[i], starts[i + 1] - gap * spacing)
    return starts


def _record_cont(ctx: ScanContext, frames: list[Frame], samples: list[tuple[float, float]],
                 exposures: int) -> None:
    tally, n = ctx.tally, ctx.settings.num_points
    frames = frames[:n]
    times = frame_start_times(frames, ctx.settings.period)
    positions = interpolate_positions(times, samples)
    arrays = tally.arrays
    arrays.set_positions[:] = [float(x) for x in ctx.plan.set_positions[:len(frames)]]
    arrays.positions[:] = positions
    arrays.frame_numbers[:] = [f.number for f in frames]
    arrays.timestamps[:] = times
    tally.triggers = max(exposures, len(frames))
    tally.frames_acquired = len(frames)
    tally.missed_frames = max(n, tally.triggers) - len(frames)
    tally.point = len(frames)
    tally.progress = 100.0
    ctx.report()


# --- Fly -------------------------------------------------------------------------------
async def run_fly(ctx: ScanContext) -> None:
    s, plan = ctx.settings, ctx.plan
    box = ctx.box
    if box is None:
        raise ScanFailed("a Fly scan needs a trigger box, and none is configured")
    await box.disarm()
    await ctx.camera.configure(
        exposure=s.exposure, period=s.period, image_mode=ImageMode.MULTIPLE,
        num_images=s.num_points, trigger_mode=TriggerMode.EXTERNAL,
    )
    await _taxi(ctx)
    before = await ctx.camera.frame_counter()
    collector = FrameCollector(_on_frame(ctx), baseline=before)
    unwatch = ctx.camera.watch_frames(collector)
    acquisition: asyncio.Task | None = None
    try:
        acquisition = asyncio.create_task(ctx.camera.acquire(_fly_timeout(ctx)))
        try:
            await ctx.camera.wait_acquiring(ARM_TIMEOUT_S)
        except TimeoutError:
            raise ScanFailed(f"camera {ctx.camera.prefix} did not start waiting for "
                             f"triggers within {ARM_TIMEOUT_S:g} s of Acquire=1") from None
        await box.arm(motor=ctx.motor.name, start=s.start, step=abs(plan.step),
                      pulses=s.num_points, direction=plan.direction,
                      pre_start=plan.run_up / 2, width=min(s.exposure, s.period / 2))
        ctx.running()
        await _finish_sweep(ctx, await _sweep(ctx))
        await _end_fly_acquisition(ctx, acquisition)
        after = await ctx.camera.frame_counter()
        if after > before:
            await collector.wait_for_number(after, FRAME_CATCH_UP_S)
        produced = await box.produced()
        pulses = await box.captured()
        await box.disarm()
        _record_fly(ctx, collector.since(before), pulses, produced)
    finally:
        unwatch()
        if acquisition is not None and not acquisition.done():
            acquisition.cancel()


def _fly_timeout(ctx: ScanContext) -> float:
    plan = ctx.plan
    sweep = abs(plan.taxi_end - plan.taxi_start) / plan.velocity
    return ctx.move_timeout(plan.taxi_start) + sweep * 2 + ACQUIRE_MARGIN_S


async def _end_fly_acquisition(ctx: ScanContext, acquisition: asyncio.Task) -> None:
    """The last frame needs exposure + readout after the last pulse; a camera still
    waiting after that has missed triggers, so it is stopped."""
    grace = ctx.settings.period + 0.5
    done, _ = await asyncio.wait({acquisition}, timeout=grace)
    if not done:
        log.warning("camera %s still waiting for triggers after the sweep; stopping it",
                    ctx.camera.prefix)
        await ctx.camera.stop()
        done, _ = await asyncio.wait({acquisition}, timeout=ARM_TIMEOUT_S)
        if not done:
            acquisition.cancel()
            raise ScanFailed(f"camera {ctx.camera.prefix} did not stop when asked")
    error = acquisition.exception() if not acquisition.cancelled() else None
    if error is not None and not isinstance(error, TimeoutError):
        raise error


def match_frames(pulses: list[Pulse], frames: list[Frame], period: float) -> list[int]:
    """The frame number that each pulse produced, -1 where none came.

    With one frame per pulse they pair in order. Otherwise each frame goes to the pulse
    nearest in time (a frame's timestamp is its trigger's time on the camera's clock),
    if that is within half a period and within half the gap to the neighbouring pulses:
    the gap bound keeps a frame from sliding onto the pulse before it when the clocks
    run faster than the settings say (a simulation's time scale)."""
    if len(frames) == len(pulses):
        return [frame.number for frame in frames]
    times = np.array([pulse.timestamp for pulse in pulses])
    gaps = np.diff(times)
    limit = min([period / 2, *(gaps[gaps > 0] / 2)]) if len(pulses) else 0.0
    numbers = [-1] * len(pulses)
    for frame in frames:
        if not len(pulses):
            break
        nearest = int(np.argmin(np.abs(times - frame.timestamp)))
        if abs(times[nearest] - frame.timestamp) <= limit and numbers[nearest] == -1:
            numbers[nearest] = frame.number
    return numbers


def _record_fly(ctx: ScanContext, frames: list[Frame], pulses: list[Pulse],
                produced: int) -> None:
    tally, n = ctx.tally, ctx.settings.num_points
    pulses = pulses[:n]
    arrays = tally.arrays
    arrays.set_positions[:] = [float(x) for x in ctx.plan.set_positions[:len(pulses)]]
    arrays.positions[:] = [p.position for p in pulses]
    arrays.timestamps[:] = [p.timestamp for p in pulses]
    arrays.frame_numbers[:] = match_frames(pulses, frames, ctx.settings.period)
    tally.triggers = produced
    tally.frames_acquired = len(frames)
    tally.missed_frames = max(produced - len(frames), 0) + max(n - produced, 0)
    tally.point = len(pulses)
    tally.progress = 100.0
    ctx.report()
