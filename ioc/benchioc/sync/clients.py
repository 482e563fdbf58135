"""aioca clients of the camera (areaDetector `cam` records) and the trigger box (PandA
PCOMP records), and the adapter that lets an `EpicsMotor` serve the sync engines.

Construction touches no CA; `connect()` starts the monitors. Each client must run in
the asyncio loop that owns aioca (the IOC's dispatcher loop, or the test's loop).
Timestamps are the CA timestamps of the servers (POSIX seconds), so camera frames and
motor readbacks share a time line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aioca import (
    DBR_CHAR_STR,
    FORMAT_TIME,
    CANothing,
    Subscription,
    caget,
    camonitor,
    caput,
    connect,
)

from ..homing import MotorTimeout
from .controller import DataTarget, SyncController
from .devices import Frame, ImageMode, Pulse, TriggerMode, Unsubscribe
from .model import MotorSnapshot

if TYPE_CHECKING:
    from ..config import BenchConfig
    from ..motor import EpicsMotor

log = logging.getLogger(__name__)

PUT_TIMEOUT_S = 5.0
DEFAULT_READOUT_S = 0.002  # the simulated camera's; set the real camera's in the IOC
IMAGE_MODE_LABELS = ("Single", "Multiple", "Continuous")


class DeviceError(RuntimeError):
    """A camera or trigger box did not answer; the text names the PV."""


async def _put(pv: str, value: Any, timeout: float = PUT_TIMEOUT_S) -> None:
    try:
        await caput(pv, value, wait=True, timeout=timeout)
    except CANothing as error:
        raise DeviceError(f"write {pv}={value!r} failed: {error}") from None


async def _get(pv: str, timeout: float = PUT_TIMEOUT_S, **kwargs: Any) -> Any:
    try:
        return await caget(pv, timeout=timeout, **kwargs)
    except CANothing as error:
        raise DeviceError(f"read {pv} failed: {error}") from None


async def _put_callback(pv: str, value: Any, timeout: float) -> None:
    """A put-callback that may last long; TimeoutError when it does not end in time."""
    try:
        await asyncio.wait_for(caput(pv, value, wait=True, timeout=None), timeout)
    except CANothing as error:
        raise DeviceError(f"write {pv}={value!r} failed: {error}") from None


class _Watchers:
    """Callbacks fed by one CA monitor opened while anyone listens."""

    def __init__(self, pv: str, convert: Callable[[Any], Any]) -> None:
        self.pv = pv
        self.convert = convert
        self.callbacks: list[Callable[[Any], None]] = []
        self.subscription: Subscription | None = None

    def add(self, callback: Callable[[Any], None]) -> Unsubscribe:
        self.callbacks.append(callback)
        if self.subscription is None:
            self.subscription = camonitor(self.pv, self._on_value, format=FORMAT_TIME,
                                          all_updates=True)

        def remove() -> None:
            if callback in self.callbacks:
                self.callbacks.remove(callback)
            if not self.callbacks and self.subscription is not None:
                self.subscription.close()
                self.subscription = None

        return remove

    def _on_value(self, value: Any) -> None:
        item = self.convert(value)
        for callback in list(self.callbacks):
            try:
                callback(item)
            except Exception:
                log.exception("%s: monitor callback failed", self.pv)


class CaCamera:
    """An areaDetector driver's `cam` records, e.g. prefix `SIM:cam1:` or `FLIR5:cam5:`.

    trigger_labels: the TriggerMode labels for internal and external triggering (they
    differ between drivers: "Internal"/"External", "Off"/"On"...). file_pv: a PV holding
    the camera's own file name (a file plugin's FullFileName_RBV), if any."""

    def __init__(self, prefix: str, *, trigger_labels: tuple[str, str] = ("Internal",
                 "External"), file_pv: str = "") -> None:
        self.prefix = prefix
        self.trigger_labels = trigger_labels
        self.file_pv = file_pv
        self._frames = _Watchers(self.pv("ArrayCounter_RBV"),
                                 lambda v: Frame(int(v), float(v.timestamp)))

    def pv(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def connect(self, timeout: float) -> None:
        names = ("Acquire", "ArrayCounter_RBV", "NumImagesCounter_RBV", "Acquire_RBV")
        try:
            await connect([self.pv(n) for n in names], timeout=timeout)
        except CANothing as error:
            raise DeviceError(f"camera {self.prefix} not found within {timeout:g} s "
                              f"({error})") from None

    async def configure(self, *, exposure: float, period: float, image_mode: ImageMode,
                        num_images: int, trigger_mode: TriggerMode) -> None:
        # Stop first: many drivers refuse settings while acquiring.
        await _put(self.pv("Acquire"), 0)
        await _put(self.pv("TriggerMode"), self.trigger_labels[int(trigger_mode)])
        await _put(self.pv("ImageMode"), IMAGE_MODE_LABELS[int(image_mode)])
        await _put(self.pv("NumImages"), num_images)
        await _put(self.pv("AcquireTime"), exposure)
        await _put(self.pv("AcquirePeriod"), period)

    async def acquire(self, timeout: float) -> None:
        await _put_callback(self.pv("Acquire"), 1, timeout)

    async def wait_acquiring(self, timeout: float) -> None:
        started = asyncio.Event()

        def check(value: Any) -> None:
            if value.ok and int(value) == 1:
                started.set()

        subscription = camonitor(self.pv("Acquire_RBV"), check, datatype=int,
                                 notify_disconnect=True)
        try:
            await asyncio.wait_for(started.wait(), timeout)
        finally:
            subscription.close()

    async def stop(self) -> None:
        await _put(self.pv("Acquire"), 0)

    async def frame_counter(self) -> int:
        return int(await _get(self.pv("ArrayCounter_RBV")))

    async def images_counter(self) -> int:
        return int(await _get(self.pv("NumImagesCounter_RBV")))

    def watch_frames(self, callback: Callable[[Frame], None]) -> Unsubscribe:
        return self._frames.add(callback)

    async def file_name(self) -> str:
        if not self.file_pv:
            return ""
        return str(await _get(self.file_pv, datatype=DBR_CHAR_STR)).strip()


class CaTriggerBox:
    """A PandA position-compare block (`$(prefix)PCOMP1:`) with its capture.

    inputs: motor name -> the value written to INP (on a real PandA the encoder input
    wired to that motor, e.g. "INENC1.VAL"; on the simulated box the motor name)."""

    def __init__(self, prefix: str, *, block: str = "PCOMP1:",
                 inputs: Mapping[str, str] | None = None) -> None:
        self.prefix = prefix
        self.block = block
        self.inputs = dict(inputs or {})

    def pv(self, name: str) -> str:
        return f"{self.prefix}{self.block}{name}"

    async def connect(self, timeout: float) -> None:
        try:
            await connect([self.pv(n) for n in ("ENABLE", "PRODUCED")], timeout=timeout)
        except CANothing as error:
            raise DeviceError(f"trigger box {self.prefix} not found within {timeout:g} s "
                              f"({error})") from None

    async def arm(self, *, motor: str, start: float, step: float, pulses: int,
                  direction: int, pre_start: float, width: float) -> None:
        await _put(self.pv("ENABLE"), 0)
        await _put(self.pv("INP"), self.inputs.get(motor, motor))
        await _put(self.pv("START"), start)
        await _put(self.pv("STEP"), abs(step))
        await _put(self.pv("PULSES"), pulses)
        await _put(self.pv("WIDTH"), width)
        await _put(self.pv("PRE_START"), pre_start)
        await _put(self.pv("DIR"), "Positive" if direction > 0 else "Negative")
        await _put(self.pv("ENABLE"), 1)

    async def disarm(self) -> None:
        await _put(self.pv("ENABLE"), 0)

    async def produced(self) -> int:
        return int(await _get(self.pv("PRODUCED")))

    async def captured(self) -> list[Pulse]:
        count = int(await _get(self.pv("CAPTURE:COUNT")))
        if count == 0:
            return []
        positions = await _get(self.pv("CAPTURE:POSITIONS"), count=count)
        times = await _get(self.pv("CAPTURE:TIMES"), count=count)
        return [Pulse(float(x), float(t)) for x, t in zip(positions, times, strict=True)]


class EpicsMotorSync:
    """Lets a `benchioc.motor.EpicsMotor` (already connected) serve the sync engines.

    Adds what EpicsMotor does not have: VELO puts, a timestamped readback monitor and
    the record fields for the scan file."""

    def __init__(self, motor: EpicsMotor) -> None:
        self.motor = motor
        self.name = motor.name
        self._readback = _Watchers(motor.pv("RBV"),
                                   lambda v: (float(v.timestamp), float(v)))

    def snapshot(self) -> MotorSnapshot:
        s = self.motor.status
        return MotorSnapshot(position=s.rbv, velocity=s.velo, acceleration_time=s.accl,
                             max_velocity=s.vmax, high_limit=s.hlm, low_limit=s.llm,
                             units=s.egu, connected=s.connected, moving=not s.dmov)

    def record_fields(self) -> dict[str, Any]:
        """The monitored record fields, named as on the record, for the scan file."""
        s = self.motor.status
        return {"PV": self.motor.pv_root, "RBV": s.rbv, "VAL": s.val, "VELO": s.velo,
                "ACCL": s.accl, "VMAX": s.vmax, "JVEL": s.jvel, "HLM": s.hlm,
                "LLM": s.llm, "DHLM": s.dhlm, "DLLM": s.dllm, "MSTA": s.msta,
                "EGU": s.egu, "PREC": s.prec}

    async def move(self, position: float, timeout: float) -> None:
        try:
            await self.motor.move(position, timeout)
        except MotorTimeout as error:
            raise TimeoutError(str(error)) from None

    async def stop(self) -> None:
        await self.motor.stop()

    async def wait_stopped(self, timeout: float) -> None:
        try:
            await self.motor.wait_for(lambda s: s.dmov, timeout, "the motor to stop")
        except MotorTimeout as error:
            raise TimeoutError(str(error)) from None

    async def set_velocity(self, velocity: float) -> None:
        await _put(self.motor.pv("VELO"), velocity)
        await self.motor.wait_for(lambda s: abs(s.velo - velocity) <= 1e-9 * max(
            1.0, abs(velocity)), PUT_TIMEOUT_S, f"VELO to read {velocity:g}")

    def watch_position(self, callback: Callable[[float, float], None]) -> Unsubscribe:
        return self._readback.add(lambda item: callback(*item))


def build_controller(config: BenchConfig, motors: Mapping[str, EpicsMotor], *,
                     config_dir: Path, is_homed: Callable[[str], bool],
                     readout_time: float = DEFAULT_READOUT_S) -> SyncController:
    """The controller the IOC binds to, over CA clients named by the config: the camera
    at `detector.prefix`, the box at `trigger.prefix`, scan files in `data.directory`
    (relative to the config file's folder)."""
    return SyncController(
        motors={name: EpicsMotorSync(motor) for name, motor in motors.items()},
        camera=CaCamera(config.detector.prefix),
        box=CaTriggerBox(config.trigger.prefix),
        data=DataTarget.from_config(config.data, config_dir),
        is_homed=is_homed,
        readout_time=readout_time,
        bench_config=config.model_dump(mode="json"),
    )
