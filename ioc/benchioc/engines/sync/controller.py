"""`SyncController`: the one object the IOC's `$(P)Sync:` records bind to.

It holds the settings, previews them as the user types, runs one scan at a time,
aborts, undoes what a scan changed (velocity, armed box, running camera, moving motor),
writes the scan file and tells subscribers every change as a `ScanUpdate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ... import __version__
from ...data import nexus as datafile
from ..lease import Holder, Lease, MotorInUse, MotorLeases
from .devices import Camera, DeviceError, FrameWriter, SyncMotor, TriggerBox, WrittenFile
from .engines import ScanContext, ScanFailed, Tally, run_scan
from .model import (
    MotorSnapshot,
    Preview,
    ScanMode,
    ScanPlan,
    ScanRefused,
    ScanSettings,
    ScanState,
    plan_scan,
    preview,
)
from .references import FlatMotion, References, take_references

log = logging.getLogger(__name__)

CLEANUP_TIMEOUT_S = 10.0
# How long the camera's file plugin may take, after the scan's last frame, to write the
# frames still queued and close its file.
WRITER_CLOSE_S = 5.0
MISSED_FRAMES_CLOSE_S = 1.0
# How long Run waits for a camera (or Fly's box) that is not connected yet, e.g. right
# after the IOC started, before refusing.
DEVICE_WAIT_S = 2.0
SETTING_NAMES = tuple(f.name for f in dataclasses.fields(ScanSettings))


@dataclass(frozen=True)
class ScanUpdate:
    """Everything the Sync records show, at one moment."""

    state: ScanState = ScanState.IDLE
    point: int = 0
    frames_acquired: int = 0
    missed_frames: int = 0
    progress: float = 0.0
    message: str = ""
    positions: tuple[float, ...] = ()
    set_positions: tuple[float, ...] = ()
    timestamps: tuple[float, ...] = ()
    frame_numbers: tuple[int, ...] = ()
    data_file: str = ""
    scan_id: str = ""

    @property
    def num_valid(self) -> int:
        return len(self.positions)

    @property
    def busy(self) -> bool:
        return ScanState.IDLE < self.state < ScanState.DONE


ScanResult = ScanUpdate


@dataclass
class DataTarget:
    """Where and under which policy scan files are written."""

    directory: Path
    name: str = "scan"
    proposal: str = ""
    experiment: str = ""
    embargo_years: float = 3.0
    sample: str = ""
    user: str = ""
    file_mode: int = 0o644

    @classmethod
    def from_config(cls, data: Any, base_dir: Path) -> DataTarget:
        """From the config's `data` section; a relative directory is taken from base_dir
        (the config file's directory)."""
        directory = Path(data.directory)
        if not directory.is_absolute():
            directory = base_dir / directory
        return cls(directory, data.name, data.proposal, data.experiment,
                   data.embargo_years, data.sample, data.user, int(data.file_mode, 8))


@dataclass(frozen=True)
class FlatPlace:
    """The config's flat-field motion: which bench motor, to where."""

    motor: str
    position: float


@dataclass
class _Run:
    plan: ScanPlan
    context: ScanContext | None = None
    frames_file: str = ""  # the camera's file for this scan, once armed
    references: References = field(default_factory=References)
    task: asyncio.Task | None = None
    abort_requested: bool = False
    scan_id: str = field(default_factory=datafile.new_scan_id)
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now().astimezone())


SCAN = Holder("a scan", "is being scanned", "abort the scan first")


class SyncController:
    """Settings, preview, run, abort and updates of detector-synchronised scans."""

    def __init__(
        self,
        *,
        motors: Mapping[str, SyncMotor],
        camera: Camera,
        box: TriggerBox | None,
        data: DataTarget,
        is_homed: Callable[[str], bool] = lambda name: False,
        leases: MotorLeases | None = None,
        lease_holder: Holder = SCAN,
        readout_time: float | None = None,
        bench_config: Mapping[str, Any] | None = None,
        program_version: str = __version__,
        writer: FrameWriter | None = None,
        flat: FlatPlace | None = None,
        bench_name: str = "",
    ) -> None:
        self.motors = dict(motors)
        self.camera = camera
        self.box = box
        self.data = data
        self.is_homed = is_homed
        self.leases = leases or MotorLeases()  # shared with homing in the IOC
        self.lease_holder = lease_holder
        self._readout_time = readout_time
        self.bench_config = dict(bench_config or {})
        self.program_version = program_version
        self.writer = writer
        self.flat = flat
        self.bench_name = bench_name
        self.settings = ScanSettings(motor=next(iter(self.motors), ""))
        self._subscribers: list[Callable[[ScanUpdate], None]] = []
        self._last = ScanUpdate()
        self._report_pending = False  # a point's progress waits to be published
        self._run: _Run | None = None
        self._device_listeners: list[Callable[[], None]] = []
        self._device_change: asyncio.Event | None = None
        self._device_watches: list[Callable[[], None]] = []

    @property
    def readout_time(self) -> float:
        """The camera's readout time, unless the controller was given one."""
        if self._readout_time is not None:
            return self._readout_time
        return self.camera.readout_time

    # --- devices -----------------------------------------------------------------------
    def watch_devices(self, on_change: Callable[[], None] | None = None) -> None:
        """Follow the connections of the camera and the box (call it in the loop that owns
        CA); on_change() after each change, e.g. to refresh a preview."""
        if on_change is not None:
            self._device_listeners.append(on_change)
        if self._device_change is None:
            self._device_change = asyncio.Event()
            devices: list[Camera | TriggerBox] = [self.camera]
            if self.box is not None:
                devices.append(self.box)
            self._device_watches = [d.watch_connection(self._on_device_change)
                                    for d in devices]

    def close(self) -> None:
        """Stop following the devices."""
        for unwatch in self._device_watches:
            unwatch()
        self._device_watches = []
        self._device_change = None

    def _on_device_change(self) -> None:
        if self._device_change is not None:
            self._device_change.set()
        for listener in list(self._device_listeners):
            try:
                listener()
            except Exception:
                log.exception("sync device listener failed")

    def device_problem(self, mode: ScanMode | None = None) -> str:
        """Why the devices a scan of `mode` needs cannot take part, in words; "" if they
        can."""
        mode = self.settings.mode if mode is None else mode
        if not self.camera.connected:
            return (f"the camera {self.camera.prefix} is not connected: check that its "
                    "IOC is running and reachable")
        if mode == ScanMode.FLY:
            if self.box is None:
                return "a Fly scan needs a trigger box, and none is configured: use Step or Cont"
            if not self.box.connected:
                return (f"a Fly scan needs the trigger box {self.box.prefix}, which is not "
                        "connected: use Step or Cont, or connect the box")
        return ""

    async def _wait_for_devices(self, mode: ScanMode) -> None:
        """Give devices that are still connecting (the IOC just started) a moment."""
        self.watch_devices()
        change = self._device_change
        deadline = asyncio.get_running_loop().time() + DEVICE_WAIT_S
        while change is not None and self.device_problem(mode):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            change.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):  # not wait_for: see clients/ca.py
                    await change.wait()

    # --- settings and preview ------------------------------------------------------------
    def update(self, **changes: Any) -> Preview:
        """Change settings (names of ScanSettings fields); return the new preview.
        Allowed while a scan runs: that scan keeps the settings it started with."""
        unknown = set(changes) - set(SETTING_NAMES)
        if unknown:
            raise ValueError(f"unknown scan setting(s): {', '.join(sorted(unknown))}")
        if "mode" in changes:
            changes["mode"] = ScanMode(int(changes["mode"]))
        self.settings = dataclasses.replace(self.settings, **changes)
        return self.preview()

    def preview(self) -> Preview:
        motor = self._snapshot(self.settings.motor)
        shown = preview(self.settings, motor, homed=self._homed(self.settings.motor),
                        readout_time=self.readout_time, known_motors=tuple(self.motors),
                        device_problem=self.device_problem())
        if shown.ok:
            try:
                self._check_flats(self.settings)
            except ScanRefused as refusal:
                return Preview(ok=False, message=str(refusal))
            held = self._held_motor(self.settings)
            if held:  # a homing of the motor: the preview says so, as Run would
                return Preview(ok=False, message=held)
        return shown

    def _held_motor(self, settings: ScanSettings) -> str:
        """Why a motor the scan needs is not free ("" if all are), in words."""
        if self._run is not None:
            return ""  # this controller's own scan holds them
        for motor in self._motors_of(settings):
            holder = self.leases.holder(motor)
            if holder is not None:
                return f"motor {MotorInUse(motor, holder)}"
        return ""

    def _snapshot(self, name: str) -> MotorSnapshot | None:
        motor = self.motors.get(name)
        return None if motor is None else motor.snapshot()

    def _homed(self, name: str) -> bool:
        try:
            return bool(self.is_homed(name))
        except KeyError:
            return False

    # --- state -------------------------------------------------------------------------
    @property
    def last(self) -> ScanUpdate:
        return self._last

    @property
    def state(self) -> ScanState:
        return self._last.state

    @property
    def busy(self) -> bool:
        return self._run is not None

    def subscribe(self, callback: Callable[[ScanUpdate], None]) -> Callable[[], None]:
        """Call callback with every update, starting with the current one."""
        self._subscribers.append(callback)
        callback(self._last)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def _publish(self, **changes: Any) -> None:
        self._last = dataclasses.replace(self._last, **changes)
        for callback in list(self._subscribers):
            try:
                callback(self._last)
            except Exception:
                log.exception("sync update subscriber failed")

    def _report_soon(self, tally: Tally) -> None:
        """A point's progress, published once the engine waits for its next exchange:
        the subscribers (the records, with the growing arrays) no longer sit between a
        point's frame and the next move's put. Reports made meanwhile go out as one."""
        if self._report_pending:
            return
        self._report_pending = True

        def report() -> None:
            if self._report_pending:  # not already sent ahead of Finishing
                self._report_pending = False
                self._publish_tally(tally)

        asyncio.get_running_loop().call_soon(report)

    def _publish_tally(self, tally: Tally, **changes: Any) -> None:
        arrays = tally.arrays
        self._publish(
            point=tally.point, frames_acquired=tally.frames_acquired,
            missed_frames=tally.missed_frames, progress=tally.progress,
            positions=tuple(arrays.positions), set_positions=tuple(arrays.set_positions),
            timestamps=tuple(arrays.timestamps), frame_numbers=tuple(arrays.frame_numbers),
            **changes,
        )

    # --- run and abort -----------------------------------------------------------------
    def why_not_run(self) -> str:
        """Why Run would be refused now, in words ("" if it would start): the same checks
        run() makes before anything moves, without waiting for devices still connecting.
        The record layer keeps the Run record's DISP set while it says no, so a refused
        Run fails the put itself (a CA write error, with or without put-callback: EPICS
        completes a put-callback whatever the record's processing returned)."""
        if self._run is not None:
            return "a scan is already running; abort it first"
        try:
            plan = self._plan()
        except ScanRefused as refusal:
            return str(refusal)
        return self._held_motor(plan.settings)

    def _motors_of(self, settings: ScanSettings) -> list[str]:
        """The motors a scan moves: the scanned one, and the flat-field one for flats."""
        motors = [settings.motor]
        if settings.flat_frames > 0 and self.flat and self.flat.motor != settings.motor:
            motors.append(self.flat.motor)
        return motors

    def refuse(self, reason: str) -> None:
        """Show a refused Run: State back to Idle (not the previous scan's outcome, which
        would read as this one's), the reason on the Message."""
        self._publish(state=ScanState.IDLE, progress=0.0, message=f"refused: {reason}")

    async def run(self) -> ScanResult:
        """Run one scan to its end and return the final update (Done, Aborted or Failed).
        Raises ScanRefused, before anything moves, if the settings are invalid or a scan
        is already running; the refusal is also published as the Message."""
        if self._run is not None:
            raise ScanRefused("a scan is already running; abort it first")
        if self.device_problem():
            await self._wait_for_devices(self.settings.mode)
        if self._run is not None:  # another Run started while this one waited
            raise ScanRefused("a scan is already running; abort it first")
        try:
            plan = self._plan()
            leases = self._take_motors(self._motors_of(plan.settings))
        except ScanRefused as refusal:
            self.refuse(str(refusal))
            raise
        run = self._run = _Run(plan)
        try:
            self._publish(state=ScanState.PREPARING, point=0, frames_acquired=0,
                          missed_frames=0, progress=0.0, positions=(), set_positions=(),
                          timestamps=(), frame_numbers=(), data_file="",
                          scan_id=run.scan_id,
                          message=f"preparing a {plan.settings.mode.label} scan of "
                                  f"motor {plan.settings.motor}")
            run.task = asyncio.create_task(self._scan(run))
            try:
                return await asyncio.shield(run.task)
            except asyncio.CancelledError:
                # The caller went away (IOC shutting down): stop the scan too.
                run.abort_requested = True
                run.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run.task
                raise
        finally:
            self._run = None
            for lease in leases:
                lease.release()

    def _take_motors(self, motors: list[str]) -> list[Lease]:
        taken: list[Lease] = []
        try:
            for motor in motors:
                taken.append(self.leases.take(motor, self.lease_holder))
        except MotorInUse as in_use:
            for lease in taken:
                lease.release()
            raise ScanRefused(f"motor {in_use}") from None
        return taken

    def abort(self) -> None:
        """Stop the running scan: the motor stops, the box is disarmed, the camera stops
        and the velocity is restored before run() returns Aborted. No-op when idle."""
        run = self._run
        if run is None or run.abort_requested or run.task is None:
            return
        run.abort_requested = True
        log.info("sync scan abort requested")
        run.task.cancel()

    def _plan(self) -> ScanPlan:
        s = self.settings
        plan = plan_scan(s, self._snapshot(s.motor), homed=self._homed(s.motor),
                         readout_time=self.readout_time, known_motors=tuple(self.motors),
                         device_problem=self.device_problem(s.mode))
        self._check_flats(s)
        return plan

    def _check_flats(self, s: ScanSettings) -> None:
        if s.flat_frames <= 0:
            return
        if self.flat is None:
            raise ScanRefused(f"FlatFrames {s.flat_frames} needs a motor that takes the "
                              "sample out of the beam: set detector.flat_motor and "
                              "detector.flat_position in the config, or FlatFrames 0")
        if self.flat.motor not in self.motors:
            raise ScanRefused(f"the flat-field motor {self.flat.motor!r} (detector."
                              "flat_motor) is not a bench motor: "
                              f"{', '.join(self.motors) or 'none configured'}")

    async def _scan(self, run: _Run) -> ScanResult:
        plan = run.plan
        motor = self.motors[plan.settings.motor]
        ctx = ScanContext(plan, motor, self.camera, self.box,
                          report=lambda: self._report_soon(ctx.tally),
                          running=lambda: self._publish(state=ScanState.RUNNING,
                                                        message="running"))
        run.context = ctx
        state, message = ScanState.DONE, ""
        motor_fields = _safe_fields(motor)
        try:
            await self._arm_writer(run)
            run.references = await take_references(ctx, self._flat_motion())
            await run_scan(ctx)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:  # always: this runs in run()'s task
                task.uncancel()
            state, message = ScanState.ABORTED, "aborted by request"
        except (ScanFailed, DeviceError) as failure:
            state, message = ScanState.FAILED, str(failure)
        except Exception as error:  # an error we did not foresee
            log.exception("sync scan failed")
            state, message = ScanState.FAILED, f"unexpected error: {_words(error)}"
        if self._report_pending:  # the last point's progress before Finishing
            self._report_pending = False
            self._publish_tally(ctx.tally)
        self._publish(state=ScanState.FINISHING, message=f"finishing: {message or 'ok'}")
        problems = await self._cleanup(ctx, stop_motion=state != ScanState.DONE)
        written = await self._finish_writer(run, done=state == ScanState.DONE,
                                            problems=problems)
        message = _final_message(state, message, ctx, problems)
        data_file = await self._write_file(run, ctx, state, message, motor_fields, written)
        if isinstance(data_file, Exception):
            state = ScanState.FAILED
            message = f"{message}; scan file not written: {data_file}"
            data_file = ""
        self._publish_tally(ctx.tally, state=state, message=message, data_file=data_file)
        log.info("sync scan %s: %s", run.scan_id, message)
        return self._last

    def _flat_motion(self) -> FlatMotion | None:
        if self.flat is None or self.flat.motor not in self.motors:
            return None
        return FlatMotion(self.motors[self.flat.motor], self.flat.position)

    def expected_frames(self, settings: ScanSettings) -> int:
        """Frames the camera's file gets in one scan: darks, flats, then the data."""
        return (settings.dark_frames + settings.flat_frames
                + settings.num_points * settings.frames_per_point)

    async def _arm_writer(self, run: _Run) -> None:
        """Point the camera's file plugin at a new file beside the scan file."""
        if self.writer is None:
            return
        try:  # the scan file's own check: the frames file goes beside it
            directory = await asyncio.to_thread(datafile.data_directory, self.data.directory)
        except datafile.DataFileError as error:
            raise DeviceError(str(error)) from None
        name = await asyncio.to_thread(
            _free_frames_name, directory,
            datafile.file_stem(self.data.name, run.started) + "-frames")
        run.frames_file = await self.writer.arm(str(directory), name,
                                                self.expected_frames(run.plan.settings))

    async def _finish_writer(self, run: _Run, *, done: bool,
                             problems: list[str]) -> WrittenFile | None:
        if self.writer is None or not run.frames_file:
            return None
        try:
            if not done:
                await self.writer.cancel()
            # frames missed by the camera never come: do not wait for them
            missed = run.context is not None and run.context.tally.missed_frames > 0
            written = await self.writer.finish(MISSED_FRAMES_CLOSE_S if missed
                                               else WRITER_CLOSE_S)
        except (DeviceError, TimeoutError) as error:
            problems.append(f"the camera's frames file {run.frames_file} may be "
                            f"incomplete ({_words(error)})")
            return None
        await asyncio.to_thread(_set_mode, Path(written.path), self.data.file_mode)
        return written

    async def _cleanup(self, ctx: ScanContext, *, stop_motion: bool) -> list[str]:
        """Undo what the scan changed; each step is tried even if another fails."""
        steps: list[tuple[str, Callable[[], Any]]] = []
        if stop_motion:
            steps.append(("stop the motor", ctx.motor.stop))
            steps.append(("stop the camera", self.camera.stop))
        if self.box is not None and ctx.settings.mode == ScanMode.FLY:
            steps.append(("disarm the trigger box", self.box.disarm))
        if stop_motion:
            steps.append(("wait for the motor to stop",
                          lambda: ctx.motor.wait_stopped(CLEANUP_TIMEOUT_S)))
        if ctx.original_velocity is not None:
            velocity = ctx.original_velocity
            steps.append((f"restore velocity {velocity:g}",
                          lambda: ctx.motor.set_velocity(velocity)))
        problems = []
        for what, step in steps:
            try:
                await asyncio.wait_for(step(), CLEANUP_TIMEOUT_S)
            except TimeoutError as error:
                why = str(error) or f"no answer within {CLEANUP_TIMEOUT_S:g} s"
                log.error("sync cleanup: could not %s: %s", what, why)
                problems.append(f"could not {what} ({why})")
            except Exception as error:
                log.error("sync cleanup: could not %s: %r", what, error)
                problems.append(f"could not {what} ({_words(error)})")
        return problems

    async def _write_file(self, run: _Run, ctx: ScanContext, state: ScanState,
                          message: str, motor_fields: dict[str, Any],
                          written: WrittenFile | None) -> str | Exception:
        s = ctx.settings
        arrays = ctx.tally.arrays
        metadata = datafile.ScanMetadata(
            scan_id=run.scan_id, start_time=run.started,
            end_time=dt.datetime.now().astimezone(), program_version=self.program_version,
            proposal=self.data.proposal, experiment=self.data.experiment,
            sample=self.data.sample, user=self.data.user, bench_name=self.bench_name,
            embargo_years=self.data.embargo_years,
            title=f"{s.mode.label} scan of motor {s.motor} from {s.start:g} to {s.end:g}",
            outcome=state.label, settings=s.as_dict(), bench_config=self.bench_config,
            motor_name=s.motor, motor_fields=motor_fields, camera_prefix=self.camera.prefix,
            camera_file=written.path if written else "",
            trigger_prefix=self.box.prefix if self.box is not None else "",
            missed_frames=ctx.tally.missed_frames, message=message,
        )
        scan_arrays = datafile.ScanArrays(arrays.set_positions, arrays.positions,
                                          arrays.frame_numbers, arrays.timestamps,
                                          position_units=run.plan.units)
        frames = None
        if written is not None:
            frames = per_frame(run.references, ctx.tally.frame_baseline, arrays, written)
        try:
            path = await asyncio.to_thread(datafile.write_scan_file, self.data.directory,
                                           self.data.name, metadata, scan_arrays,
                                           frames=frames, file_mode=self.data.file_mode)
        except (OSError, datafile.DataFileError) as error:
            log.error("scan file for %s not written: %s", run.scan_id, error)
            return error
        return str(path)


def _words(error: BaseException) -> str:
    """An exception as a user reads it: its text, or its kind when it has none."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _safe_fields(motor: SyncMotor) -> dict[str, Any]:
    try:
        return dict(motor.record_fields())
    except Exception as error:
        log.warning("motor fields unavailable for the scan file: %r", error)
        return {}


def per_frame(refs: References, baseline: int | None, arrays: Any,
              written: WrittenFile) -> datafile.FrameArrays:
    """The image key and the scanned motor's measured position of every frame in the
    camera's file: darks and flats where the motor stood before the scan, then each data
    frame at its point's position. A point's frames are those numbered after the
    previous point's last frame up to its own (a missed frame's point has -1)."""
    keys = refs.image_keys()
    positions = [refs.position] * len(keys)
    last = baseline
    for position, number in zip(arrays.positions, arrays.frame_numbers, strict=True):
        if number < 0:
            continue
        count = 1 if last is None else max(number - last, 0)
        keys += [0] * count
        positions += [float(position)] * count
        last = number
    return datafile.FrameArrays(path=written.path, count=written.frames,
                                image_key=keys, positions=positions)


def _free_frames_name(directory: Path, stem: str) -> str:
    """A frames file name not yet taken: the camera's plugin would overwrite a file."""
    for suffix in range(datafile.MAX_SUFFIX + 1):
        name = stem if suffix == 0 else f"{stem}-{suffix}"
        if not (directory / f"{name}.h5").exists():
            return name
    raise DeviceError(f"{datafile.MAX_SUFFIX + 1} frames files {stem}*.h5 already "
                      f"exist in {directory}")


def _set_mode(path: Path, mode: int) -> None:
    """The mode the config names; the camera's IOC may run as another user: then say so
    in the log and leave the file as it is."""
    try:
        os.chmod(path, mode)
    except OSError as error:
        log.warning("could not set mode %o on %s: %s", mode, path, error.strerror)


def _final_message(state: ScanState, message: str, ctx: ScanContext,
                   problems: list[str]) -> str:
    tally = ctx.tally
    n = ctx.settings.num_points
    if state == ScanState.DONE:
        text = f"done: {tally.point} of {n} points, {tally.frames_acquired} frames"
    else:
        text = f"{state.label.lower()} at point {tally.point} of {n}: {message}"
    if tally.missed_frames:
        text += (f"; {tally.missed_frames} missed frame(s): {tally.triggers} triggers, "
                 f"{tally.frames_acquired} frames counted")
    if problems:
        text += "; " + "; ".join(problems)
    return text
