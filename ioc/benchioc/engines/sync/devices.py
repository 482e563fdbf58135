"""What the sync engines need from the motor, the camera and the trigger box.

Small Protocols, so the engines run against fakes in unit tests and against the aioca
clients of `sync.clients` in the IOC. Positions are user units, times are seconds; a
timestamp is POSIX time (the CA timestamps of the devices), so frames, motor readbacks
and trigger pulses share one time line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ...facts.areadetector import ImageMode, TriggerMode
from .model import MotorSnapshot

Unsubscribe = Callable[[], None]


class DeviceError(RuntimeError):
    """A camera or trigger box did not answer or refused a value; the text names the PV
    and says what happened, in words (it ends up on Sync:Message)."""


@dataclass(frozen=True)
class Frame:
    """One frame delivered by the camera: its ArrayCounter and when it was exposed."""

    number: int
    timestamp: float


@dataclass(frozen=True)
class Pulse:
    """One trigger the box produced: its captured position and time."""

    position: float
    timestamp: float


class SyncMotor(Protocol):
    name: str

    def snapshot(self) -> MotorSnapshot: ...

    def record_fields(self) -> dict[str, Any]:
        """Fields worth keeping in the scan file (VELO, ACCL, MRES, OFF, DIR, EGU...)."""
        ...

    async def move(self, position: float, timeout: float) -> None:
        """Put-callback move; returns when the motor is done, raises on timeout."""
        ...

    async def read_position(self) -> float:
        """The readback as the record holds it now, after move() returned. (A genuine
        motor record may complete a move's put-callback before its last readback update
        has arrived; move() returns only once DMOV=1 is in, which comes after it.)"""
        ...

    async def stop(self) -> None: ...

    async def wait_stopped(self, timeout: float) -> None: ...

    async def set_velocity(self, velocity: float) -> None: ...

    def watch_position(self, callback: Callable[[float, float], None]) -> Unsubscribe:
        """Call callback(timestamp, position) for every readback update."""
        ...


class Camera(Protocol):
    prefix: str

    @property
    def connected(self) -> bool:
        """The camera answers and the client knows how it stamps its frames."""
        ...

    @property
    def readout_time(self) -> float:
        """Seconds a frame needs beyond its exposure before the next can start."""
        ...

    def watch_connection(self, callback: Callable[[], None]) -> Unsubscribe:
        """Follow the camera's connection; callback() after each change of `connected`."""
        ...

    async def configure(self, *, exposure: float, period: float, image_mode: ImageMode,
                        num_images: int, trigger_mode: TriggerMode) -> None: ...

    async def acquire(self, timeout: float) -> None:
        """Acquire with put-callback: returns when the acquisition has ended."""
        ...

    async def wait_acquiring(self, timeout: float) -> None:
        """Return once an acquisition started elsewhere is running (armed, for external
        triggers); raise TimeoutError if it does not start in time."""
        ...

    async def stop(self) -> None: ...

    async def frame_counter(self) -> int:
        """ArrayCounter_RBV now."""
        ...

    async def images_counter(self) -> int:
        """NumImagesCounter_RBV now: exposures taken in this acquisition."""
        ...

    def watch_frames(self, callback: Callable[[Frame], None]) -> Unsubscribe:
        """Call callback with each frame delivered; its timestamp is the start of its
        exposure, whatever the driver stamps (areaDetector stamps the delivery)."""
        ...

    async def set_shutter(self, open_: bool) -> None:
        """ShutterControl Open or Close; returns once the camera reads it back."""
        ...


@dataclass(frozen=True)
class WrittenFile:
    """What the camera's file plugin wrote: its full name and how many frames."""

    path: str
    frames: int


class FrameWriter(Protocol):
    """The camera's file plugin (areaDetector NDFileHDF5), armed once per scan."""

    prefix: str

    async def arm(self, directory: str, name: str, frames: int) -> str:
        """Open a capture of `frames` frames into `directory`/`name`.h5 (Stream mode);
        return once the plugin is capturing, with the full file name it will write.
        Raises DeviceError in words when the plugin cannot (directory unknown to the
        camera's IOC, plugin disabled, file not creatable)."""
        ...

    async def finish(self, timeout: float) -> WrittenFile:
        """Wait until the capture has its frames and the file is closed; after timeout
        stop the capture (the file keeps what it has). Raises DeviceError when the
        plugin reports a write error."""
        ...

    async def cancel(self) -> None:
        """Stop capturing now (an aborted or failed scan); the file keeps its frames."""
        ...


class TriggerBox(Protocol):
    prefix: str

    @property
    def connected(self) -> bool: ...

    def watch_connection(self, callback: Callable[[], None]) -> Unsubscribe:
        """Follow the box's connection; callback() after each change of `connected`."""
        ...

    async def arm(self, *, motor: str, start: float, step: float, pulses: int,
                  direction: int, pre_start: float, width: float) -> None: ...

    async def disarm(self) -> None: ...

    async def produced(self) -> int: ...

    async def captured(self) -> list[Pulse]: ...
