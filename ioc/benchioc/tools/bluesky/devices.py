"""ophyd-async devices on the IOC's PV contract (records/spec.py names every PV).

- MotorHoming: one bench motor's homing records. `home(direction)` (also `set`, so
  `bps.mv` works) puts HomeHi/HomeLo with put-callback, reports `Progress` to progress
  watchers and fails with the IOC's Message when the homing does not end Homed; `stop()`
  puts Abort. Reads State, Homed, Position; configuration LoLim, HiLim, Center.
- BenchHoming: every motor plus HomeAllHi/Lo, AbortAll, AllHomed.
- SyncScan: the `$(P)Sync:` scan as a flyer. `prepare(ScanSettings)` writes the settings
  and refuses, with the IOC's words, what the IOC's preview says cannot run;
  `kickoff()`/`complete()` run `Sync:Run` with put-callback; `collect_pages()` gives one
  event per point from the Sync arrays. Its `frames` child declares the scan's NeXus
  file (Sync:DataFile) as a StreamResource whose frames are /entry/data/data.

Every PV name comes from the spec entries, never from a string typed here. Errors:
HomingFailed, and the scan engine's own ScanRefused, both quoting the IOC's Message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import AsyncIterator, Iterator
from pathlib import PurePath
from typing import Any

import numpy as np
from bluesky.protocols import Hints, StreamAsset
from event_model import DataKey, PartialEventPage, StreamRange, compose_stream_resource
from ophyd_async.core import (
    Array1D,
    AsyncStatus,
    Device,
    DeviceMap,
    SignalR,
    SignalRW,
    StandardReadable,
    StandardReadableFormat,
    StrictEnum,
    WatchableAsyncStatus,
    WatcherUpdate,
    completed_status,
    observe_signals_value,
    observe_value,
)
from ophyd_async.epics.core import epics_signal_r, epics_signal_rw

from ...engines.homing.settings import HomingState
from ...engines.motormodel import Direction
from ...engines.sync.model import ScanMode, ScanRefused, ScanSettings, ScanState
from ...records.spec import (
    BenchRecords,
    Kind,
    MotorRecords,
    Option,
    Pv,
    ScanSetting,
    SyncRecords,
    homing_label,
)

__all__ = ["BenchHoming", "HomingFailed", "MotorHoming", "ScanRefused", "ScanSettings",
           "SyncScan", "bench_motors"]

DEFAULT_PREFIX = "BENCH:"
# A put-callback homing or scan may last minutes (a slow axis over its whole travel)
HOMING_TIMEOUT_S = 600.0
SCAN_TIMEOUT_S = 3600.0
# NeXus file of a scan: the frames, once the camera's file plugin writes them, are
# reached from it through an external link at this dataset
FRAMES_DATASET = "/entry/data/data"
HDF5_MIMETYPE = "application/x-hdf5"


class HomingFailed(RuntimeError):
    """A homing that did not end Homed; says what the IOC's Message says."""


# --- signals from spec entries ------------------------------------------------------------
def _labels(options: tuple[Option, ...]) -> list[str]:
    return [option if isinstance(option, str) else option[0] for option in options]


@functools.cache
def enum_of(pv: Pv) -> type[StrictEnum]:
    """The StrictEnum of an mbb record's labels (one class per record, made once)."""
    labels = _labels(pv.options)
    # Enum's functional API: mypy cannot follow a class made at run time
    made: type[StrictEnum] = StrictEnum(  # type: ignore[call-arg, assignment]
        f"{pv.scope.value.capitalize()}{pv.name}", [(label.upper(), label) for label in labels])
    return made


def datatype_of(pv: Pv) -> Any:
    if pv.kind in (Kind.AI, Kind.AO):
        return float
    if pv.kind in (Kind.LONG_IN, Kind.LONG_OUT):
        return int
    if pv.kind in (Kind.BI, Kind.BO, Kind.ACTION):
        return bool
    if pv.kind in (Kind.MBB_IN, Kind.MBB_OUT):
        return enum_of(pv)
    if pv.kind is Kind.WAVEFORM_IN:
        return Array1D[np.dtype(pv.dtype).type]  # type: ignore[misc]
    return str  # string, long string (a char waveform over CA)


def signal_r(pv: Pv, prefix: str, motor: str | None = None) -> SignalR[Any]:
    return epics_signal_r(datatype_of(pv), pv.full_name(prefix, motor))


def signal_rw(pv: Pv, prefix: str, motor: str | None = None) -> SignalRW[Any]:
    assert pv.writable, f"{pv.name} is read-only"
    return epics_signal_rw(datatype_of(pv), pv.full_name(prefix, motor))


def _direction(value: Direction | str) -> Direction:
    if isinstance(value, Direction):
        return value
    try:
        return Direction(str(value).lower())
    except ValueError:
        raise ValueError(f"a homing direction is hi or lo, not {value!r}") from None


def _file_uri(path: str) -> str:
    """file:// URI of the IOC's DataFile (an absolute path on the IOC's host)."""
    return PurePath(path).as_uri() if PurePath(path).is_absolute() else path


def _reason(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _put_failure(what: str, error: BaseException, timeout: float, message: str) -> str:
    """Why a put-callback command failed: it ran out of time, or the IOC refused it (a
    homing already running: the record's DISP is set)."""
    if isinstance(error, TimeoutError):
        return f"{what} did not end within {timeout:g} s (the IOC says: {message})"
    return f"{what} was refused ({_reason(error)}); the IOC says: {message}"


# --- homing ---------------------------------------------------------------------------------
HOMED = homing_label(HomingState.HOMED)


class MotorHoming(StandardReadable):
    """The homing records of one bench motor, `$(P)$(M):`."""

    def __init__(self, motor: str, prefix: str = DEFAULT_PREFIX, name: str = "",
                 timeout: float = HOMING_TIMEOUT_S) -> None:
        self.motor = motor
        self.timeout = timeout

        def r(pv: Pv) -> SignalR[Any]:
            return signal_r(pv, prefix, motor)

        def rw(pv: Pv) -> SignalRW[Any]:
            return signal_rw(pv, prefix, motor)

        with self.add_children_as_readables():
            self.state = r(MotorRecords.State)
            self.homed = r(MotorRecords.Homed)
        with self.add_children_as_readables(StandardReadableFormat.HINTED_SIGNAL):
            self.position = r(MotorRecords.Position)
        with self.add_children_as_readables(StandardReadableFormat.CONFIG_SIGNAL):
            self.lo_lim = rw(MotorRecords.LoLim)
            self.hi_lim = rw(MotorRecords.HiLim)
            self.center = rw(MotorRecords.Center)
        self.progress = r(MotorRecords.Progress)
        self.message = r(MotorRecords.Message)
        self.busy = r(MotorRecords.Busy)
        self.home_hi = rw(MotorRecords.HomeHi)
        self.home_lo = rw(MotorRecords.HomeLo)
        self.abort = rw(MotorRecords.Abort)
        self._homing = False
        super().__init__(name=name or motor)

    def set(self, value: Direction | str) -> WatchableAsyncStatus[float]:
        """Home towards `value` ("hi"/"lo"): `bps.mv(motor, "hi")` homes it."""
        return self.home(value)

    @WatchableAsyncStatus.wrap
    async def home(self, direction: Direction | str) -> AsyncIterator[WatcherUpdate[float]]:
        """Home on the `direction` limit switch; done when the homing ends (the put-callback
        of HomeHi/HomeLo), failed with the IOC's Message unless it ended Homed."""
        towards = _direction(direction)
        command = self.home_hi if towards is Direction.HI else self.home_lo
        self._homing = True
        putting = command.set(True, timeout=self.timeout)
        try:
            async for progress in observe_value(self.progress, done_status=putting):
                yield WatcherUpdate(current=progress, initial=0.0, target=100.0,
                                    name=self.name, unit="%", precision=0)
            await putting
        except Exception as error:  # noqa: BLE001 - a failed put: the IOC says why
            what = f"homing {self.motor} {towards.value}"
            raise HomingFailed(_put_failure(what, error, self.timeout,
                                            await self.message.get_value())) from error
        finally:
            self._homing = False
        state, message = await asyncio.gather(self.state.get_value(),
                                              self.message.get_value())
        if state.value != HOMED:
            raise HomingFailed(f"homing {self.motor} {towards.value} ended {state.value}: "
                               f"{message}")

    def stop(self, success: bool = True) -> AsyncStatus[None]:
        """Abort the homing this device started (the IOC stops the motor). A RunEngine
        calls stop() on whatever a plan moved when the plan ends, successful or not: an
        idle motor is left alone."""
        if not self._homing:
            return completed_status()
        return self.abort.set(True)


class BenchHoming(StandardReadable):
    """The bench, `$(P)`: its motors' homing devices and HomeAll/AbortAll/AllHomed."""

    def __init__(self, motors: list[str], prefix: str = DEFAULT_PREFIX, name: str = "bench",
                 timeout: float = HOMING_TIMEOUT_S) -> None:
        self.timeout = timeout
        with self.add_children_as_readables():
            self.all_homed = signal_r(BenchRecords.AllHomed, prefix)
        self.message = signal_r(BenchRecords.Message, prefix)
        self.busy = signal_r(BenchRecords.Busy, prefix)
        self.home_all_hi = signal_rw(BenchRecords.HomeAllHi, prefix)
        self.home_all_lo = signal_rw(BenchRecords.HomeAllLo, prefix)
        self.abort_all_command = signal_rw(BenchRecords.AbortAll, prefix)
        self._homing = False
        # children named bench-motors-A, ...
        self.motors = DeviceMap({motor: MotorHoming(motor, prefix, timeout=timeout)
                                 for motor in motors})
        self.add_readables(list(self.motors.values()))  # their readings are the bench's
        super().__init__(name=name)

    def set_name(self, name: str, *, child_name_separator: str | None = None) -> None:
        """Name the bench, and each motor by its motor name (readings `A-position`, as
        the IOC's `$(P)A:Position`), not `bench-motors-A`."""
        super().set_name(name, child_name_separator=child_name_separator)
        for motor, device in self.motors.items():
            device.set_name(motor)

    def set(self, value: Direction | str) -> WatchableAsyncStatus[float]:
        return self.home_all(value)

    @WatchableAsyncStatus.wrap
    async def home_all(self, direction: Direction | str
                       ) -> AsyncIterator[WatcherUpdate[float]]:
        """Home every motor in parallel (HomeAllHi/Lo); progress is the motors' mean."""
        towards = _direction(direction)
        command = self.home_all_hi if towards is Direction.HI else self.home_all_lo
        progress = {motor.progress: 0.0 for motor in self.motors.values()}
        self._homing = True
        putting = command.set(True, timeout=self.timeout)
        try:
            async for signal, value in observe_signals_value(*progress, done_status=putting):
                progress[signal] = value
                mean = sum(progress.values()) / max(len(progress), 1)
                yield WatcherUpdate(current=mean, initial=0.0, target=100.0,
                                    name=self.name, unit="%", precision=0)
            await putting
        except Exception as error:  # noqa: BLE001 - a failed put: the IOC says why
            raise HomingFailed(_put_failure(f"homing all {towards.value}", error,
                                            self.timeout,
                                            await self.message.get_value())) from error
        finally:
            self._homing = False
        if not await self.all_homed.get_value():
            raise HomingFailed(f"homing all {towards.value} did not home every motor: "
                               f"{await self._failures()}")

    async def _failures(self) -> str:
        states = await asyncio.gather(*(self._failure(name, motor)
                                        for name, motor in self.motors.items()))
        told = "; ".join(state for state in states if state)
        return told or await self.message.get_value()

    @staticmethod
    async def _failure(name: str, motor: MotorHoming) -> str:
        state, message = await asyncio.gather(motor.state.get_value(),
                                              motor.message.get_value())
        return "" if state.value == HOMED else f"{name} {state.value}: {message}"

    def abort_all(self) -> AsyncStatus[None]:
        return self.abort_all_command.set(True)

    def stop(self, success: bool = True) -> AsyncStatus[None]:
        """Abort the homing of all this device started; an idle bench is left alone."""
        return self.abort_all() if self._homing else completed_status()


async def bench_motors(prefix: str = DEFAULT_PREFIX, timeout: float = 10.0) -> list[str]:
    """The motor names the IOC serves ($(P)Motors), to build a BenchHoming from."""
    motors = signal_r(BenchRecords.Motors, prefix)
    await motors.connect(timeout=timeout)
    text = await motors.get_value()
    return [name for name in text.split(",") if name]


# --- detector-synchronised scans ------------------------------------------------------------
SETTINGS = tuple(pv for pv in SyncRecords.all() if isinstance(pv.binds, ScanSetting))
DONE = ScanState.DONE.label
# Sync arrays per point and what an event calls them
POINT_DATA = (
    ("position", SyncRecords.Positions),
    ("set_position", SyncRecords.SetPositions),
    ("frame_number", SyncRecords.FrameNumbers),
    ("timestamp", SyncRecords.Timestamps),
)
NOT_READY = "not ready: "  # the IOC's preview Message when the settings cannot run
REFUSED = "refused"  # a setting or a Run the IOC refused (records/sync.py)


def _setting_field(pv: Pv) -> str:
    assert isinstance(pv.binds, ScanSetting)
    return pv.binds.field


class SyncSettings(Device):
    """The scan settings records (`$(P)Sync:Mode`, Motor, Start, ...), one signal each,
    named by the ScanSettings field it sets."""

    def __init__(self, prefix: str, name: str = "") -> None:
        self.fields: dict[str, SignalRW[Any]] = {}
        for pv in SETTINGS:
            signal = signal_rw(pv, prefix)
            setattr(self, _setting_field(pv), signal)
            self.fields[_setting_field(pv)] = signal
        super().__init__(name=name)

    def values(self, settings: ScanSettings) -> dict[str, Any]:
        """What each record is given for these settings; refuses a setting the IOC has no
        record for when it is not at its default."""
        defaults = ScanSettings()
        extra = [f.name for f in dataclasses.fields(ScanSettings)
                 if f.name not in self.fields
                 and getattr(settings, f.name) != getattr(defaults, f.name)]
        if extra:
            raise ScanRefused(f"the IOC has no record for {', '.join(extra)}: leave "
                              "them at their defaults")
        values: dict[str, Any] = {}
        for pv in SETTINGS:
            field = _setting_field(pv)
            value = getattr(settings, field)
            if pv.kind is Kind.MBB_OUT:
                value = enum_of(pv)(ScanMode(value).label)
            values[field] = value
        return values


class SyncFrames(Device):
    """The frames of the last scan, declared for document consumers: the scan's NeXus file
    (Sync:DataFile) as a StreamResource of mimetype application/x-hdf5 whose dataset
    /entry/data/data holds one frame per point (reached through an HDF5 external link)."""

    _scan: SyncScan

    def __init__(self, scan: SyncScan, frame_shape: tuple[int, ...] = (),
                 name: str = "") -> None:
        # the scan is this device's parent, not a child: kept outside the device tree
        object.__setattr__(self, "_scan", scan)
        self.frame_shape = frame_shape
        super().__init__(name=name)

    @property
    def data_key(self) -> str:
        return f"{self.name}"

    async def describe_collect(self) -> dict[str, DataKey]:
        return {self.data_key: DataKey(
            source=self._scan.data_file.source, dtype="array", dtype_numpy="<u2",
            shape=list(self.frame_shape), external="STREAM:")}

    async def get_index(self) -> int:
        return len(self._scan.points["frame_number"]) if self._scan.points else 0

    async def collect_asset_docs(self, index: int | None = None) -> AsyncIterator[StreamAsset]:
        count = await self.get_index() if index is None else index
        if not self._scan.points or not self._scan.data_path or count == 0:
            return
        bundle = compose_stream_resource(
            mimetype=HDF5_MIMETYPE, uri=_file_uri(self._scan.data_path),
            data_key=self.data_key,
            parameters={"dataset": FRAMES_DATASET, "chunk_shape": [1, *self.frame_shape],
                        "scan_id": self._scan.scan_identifier})
        yield "stream_resource", bundle.stream_resource_doc
        yield "stream_datum", bundle.compose_stream_datum(StreamRange(start=0, stop=count))


class SyncScan(StandardReadable):
    """The detector-synchronised scan `$(P)Sync:` as a flyer (see the module's doc)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX, name: str = "sync",
                 timeout: float = SCAN_TIMEOUT_S, frame_shape: tuple[int, ...] = ()) -> None:
        self.timeout = timeout
        self.settings = SyncSettings(prefix)
        self.add_readables(list(self.settings.fields.values()),
                           StandardReadableFormat.CONFIG_SIGNAL)
        self.run = signal_rw(SyncRecords.Run, prefix)
        self.abort = signal_rw(SyncRecords.Abort, prefix)
        self.state = signal_r(SyncRecords.State, prefix)
        self.busy = signal_r(SyncRecords.Busy, prefix)
        self.message = signal_r(SyncRecords.Message, prefix)
        self.progress = signal_r(SyncRecords.Progress, prefix)
        self.velocity = signal_r(SyncRecords.Velocity, prefix)
        self.run_up = signal_r(SyncRecords.RunUp, prefix)
        self.estimated_time = signal_r(SyncRecords.EstimatedTime, prefix)
        self.num_valid = signal_r(SyncRecords.NumValid, prefix)
        self.data_file = signal_r(SyncRecords.DataFile, prefix)
        self.scan_id = signal_r(SyncRecords.ScanId, prefix)
        self.arrays = {key: signal_r(pv, prefix) for key, pv in POINT_DATA}
        for key, signal in self.arrays.items():
            setattr(self, f"{key}s", signal)
        self.frames = SyncFrames(self, frame_shape)
        self.points: dict[str, np.ndarray] = {}
        self.data_path = ""
        self.scan_identifier = ""
        self._running: AsyncStatus[None] | None = None
        super().__init__(name=name)

    # --- Preparable ---------------------------------------------------------------------
    @AsyncStatus.wrap
    async def prepare(self, value: ScanSettings) -> None:
        """Write the settings; refused, in the IOC's words, if its preview says the scan
        cannot run as set (a bad value, a motor out of range, an unhomed motor, ...)."""
        self.points = {}
        values = self.settings.values(value)
        for field, setting in self.settings.fields.items():
            await setting.set(values[field])
        # The settings records are blocking: each put above completed once the IOC's
        # preview showed it, so the Message read now is about these settings.
        message = str(await self.message.get_value())
        if message.startswith(NOT_READY) or REFUSED in message:
            raise ScanRefused(message)

    # --- Flyable ------------------------------------------------------------------------
    @AsyncStatus.wrap
    async def kickoff(self) -> None:
        """Start Sync:Run (put-callback: it completes at the scan's end); done once the
        IOC says the scan is busy, refused with its Message if it does not start."""
        self.points = {}
        self._running = self.run.set(True, timeout=self.timeout)
        with contextlib.suppress(Exception):  # a failed Run put: _finished says why
            async for busy in observe_value(self.busy, done_status=self._running):
                if busy:
                    return
        await self._finished()  # over already (a short scan), or refused

    @WatchableAsyncStatus.wrap
    async def complete(self) -> AsyncIterator[WatcherUpdate[float]]:
        """Done when the scan ends Done (Progress to watchers); else fails with the
        IOC's Message."""
        if self._running is None:
            raise RuntimeError(f"{self.name}: kickoff() must come before complete()")
        if self.points:
            return  # kickoff saw the whole scan
        with contextlib.suppress(Exception):  # a failed Run put: _finished says why
            async for progress in observe_value(self.progress, done_status=self._running):
                yield WatcherUpdate(current=progress, initial=0.0, target=100.0,
                                    name=self.name, unit="%", precision=0)
        await self._finished()

    async def _finished(self) -> None:
        """The scan's end: its points, or ScanRefused in the IOC's words."""
        try:
            if self._running is not None:
                await self._running
        except Exception as error:  # noqa: BLE001 - a refused Run put: the IOC says why
            raise ScanRefused(await self._why(error)) from error
        state = await self.state.get_value()
        if state.value != DONE:
            raise ScanRefused(f"the scan ended {state.value}: "
                              f"{await self.message.get_value()}")
        await self._read_points()

    async def _why(self, error: BaseException) -> str:
        return await self.message.get_value() or _reason(error)

    async def _read_points(self) -> None:
        count, path, identifier, *arrays = await asyncio.gather(
            self.num_valid.get_value(), self.data_file.get_value(),
            self.scan_id.get_value(), *(s.get_value() for s in self.arrays.values()))
        self.points = {key: np.asarray(array)[:count]
                       for key, array in zip(self.arrays, arrays, strict=True)}
        self.data_path, self.scan_identifier = path, identifier

    def stop(self, success: bool = True) -> AsyncStatus[None]:
        """Abort the scan this device started; an idle Sync is left alone."""
        if self._running is None or self._running.done:
            return completed_status()
        return self.abort.set(True)

    # --- EventPageCollectable -------------------------------------------------------------
    def _key(self, key: str) -> str:
        return f"{self.name}-{key}"

    @property
    def set_position_key(self) -> str:
        return self._key("set_position")

    @property
    def hints(self) -> Hints:
        return {"fields": [self._key("position")]}

    async def describe_collect(self) -> dict[str, DataKey]:
        described: dict[str, DataKey] = {}
        for key, signal in self.arrays.items():
            integer = key == "frame_number"
            described[self._key(key)] = DataKey(
                source=signal.source, dtype="integer" if integer else "number",
                dtype_numpy="<i4" if integer else "<f8", shape=[])
        return described

    async def collect_pages(self) -> AsyncIterator[PartialEventPage]:
        """One event per point of the last scan: position, set position, frame number and
        time, each stamped with the frame's time (the IOC's Timestamps)."""
        for page in self._pages():
            yield page

    def _pages(self) -> Iterator[PartialEventPage]:
        if not self.points or not len(self.points["timestamp"]):
            return
        times = [float(t) for t in self.points["timestamp"]]
        data = {self._key(key): values.tolist() for key, values in self.points.items()}
        yield PartialEventPage(data=data, timestamps={key: times for key in data},
                               time=times)
