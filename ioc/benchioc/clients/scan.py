"""aioca clients of the camera (areaDetector `cam` records) and the trigger box (PandA
PCOMP records), and the adapter that lets an `EpicsMotor` serve the sync engines.

Construction touches no CA; `watch_connection()` (or `connect()`) starts following a
device, and the motor adapter measures its readback rate from its first snapshot. Each
client must run in the asyncio loop that owns aioca (the IOC's dispatcher loop, or the
test's loop).
Timestamps are the CA timestamps of the servers (POSIX seconds), so camera frames and
motor readbacks share a time line.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aioca import (
    DBE_PROPERTY,
    FORMAT_TIME,
    CANothing,
    Subscription,
    camonitor,
)

from ..engines.lease import Holder, MotorLeases
from ..engines.motormodel import MotorTimeout
from ..engines.sync.controller import SCAN, DataTarget, FlatPlace, SyncController
from ..engines.sync.devices import DeviceError, Frame, ImageMode, Pulse, TriggerMode, Unsubscribe
from ..engines.sync.model import MotorSnapshot
from .ca import caput, device_put_all, wait_for_int
from .ca import device_get as _get
from .ca import device_put as _put
from .camera_file import CaFilePlugin, plugin_prefix

if TYPE_CHECKING:
    from ..config import BenchConfig
    from .motor import EpicsMotor

__all__ = ["CaCamera", "CaTriggerBox", "DeviceError", "EpicsMotorSync", "build_controller"]

log = logging.getLogger(__name__)

PUT_TIMEOUT_S = 5.0
# The readout time assumed for an areaDetector camera, which does not publish one: the
# simulated camera's. simDetector needs none (it computes the image inside the exposure).
DEFAULT_READOUT_S = 0.002
IMAGE_MODE_LABELS = ("Single", "Multiple", "Continuous")
# How long a camera may take to report that it stopped (Acquire_RBV back to Done).
STOP_TIMEOUT_S = 5.0
# How long a motor's monitors may lag behind the put-callback that ended its move.
MONITOR_CATCH_UP_S = 2.0


async def _put_callback(pv: str, value: Any, timeout: float) -> None:
    """A put-callback that may last long; TimeoutError when it does not end in time."""
    try:
        async with asyncio.timeout(timeout):  # not wait_for: see clients/ca.py
            await caput(pv, value, wait=True, timeout=None)
    except CANothing as error:
        raise DeviceError(f"{pv} did not accept {value!r}: {error}") from None


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


class _Link:
    """Whether a device answers, followed by a CA monitor of one of its PVs.

    `learn`, if given, runs each time the PV connects, before the device counts as
    connected (what the client must know about the device before using it)."""

    def __init__(self, pv: str, learn: Callable[[], Awaitable[None]] | None = None) -> None:
        self.pv = pv
        self.learn = learn
        self.connected = False
        self._up = False
        self._listeners: list[Callable[[], None]] = []
        self._subscription: Subscription | None = None
        self._learning: asyncio.Task | None = None
        self._changed: asyncio.Event | None = None

    def watch(self, callback: Callable[[], None]) -> Unsubscribe:
        self._listeners.append(callback)
        if self._subscription is None:
            # DBE_PROPERTY: the connection and the first value, not every change of value
            self._subscription = camonitor(self.pv, self._on_value, events=DBE_PROPERTY,
                                           notify_disconnect=True)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)
            if not self._listeners and self._subscription is not None:
                self._subscription.close()
                self._subscription = None
                if self._learning is not None:
                    self._learning.cancel()
                self._up = False
                self.connected = False

        return remove

    async def wait_connected(self, timeout: float) -> bool:
        """Watch the link (if nobody does yet) and wait until it is connected."""
        unwatch = self.watch(lambda: None)
        self._changed = self._changed or asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                while not self.connected:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            unwatch()
            return False
        return True

    def _on_value(self, value: Any) -> None:
        up = bool(getattr(value, "ok", True))
        if up == self._up:
            return
        self._up = up
        if self._learning is not None:
            self._learning.cancel()
            self._learning = None
        if up and self.learn is not None:
            self._learning = asyncio.create_task(self._learn_then_connect(self.learn))
        else:
            self._set(up)

    async def _learn_then_connect(self, learn: Callable[[], Awaitable[None]]) -> None:
        try:
            await learn()
        except Exception:
            log.exception("%s: could not learn about the device", self.pv)
        self._learning = None
        self._set(True)

    def _set(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        log.info("%s %s", self.pv, "connected" if connected else "disconnected")
        if self._changed is not None:
            self._changed.set()
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("%s: connection listener failed", self.pv)


class CaCamera:
    """An areaDetector driver's `cam` records, e.g. prefix `SIM:cam1:` or `FLIR5:cam5:`.

    trigger_labels: the TriggerMode labels for internal and external triggering (they
    differ between drivers: "Internal"/"External", "Off"/"On"...). readout_time: what
    to assume for a driver that does not publish one. (Its file plugin has a client of
    its own: camera_file.CaFilePlugin.)

    Frame times: an areaDetector driver stamps ArrayCounter_RBV when it delivers the
    frame, after the exposure (simDetector: exposure + about 0.1 ms), so the client moves
    each stamp back by AcquireTime to the start of the exposure. The bench simulation
    (benchioc.sim.camera) stamps at delivery too, and is treated alike."""

    def __init__(self, prefix: str, *, trigger_labels: tuple[str, str] = ("Internal",
                 "External"),
                 readout_time: float = DEFAULT_READOUT_S) -> None:
        self.prefix = prefix
        self.trigger_labels = trigger_labels
        self.default_readout_time = readout_time
        self._readout_time = readout_time
        self._exposure = 0.0  # AcquireTime of the current configuration
        self._frames = _Watchers(self.pv("ArrayCounter_RBV"), self._frame)
        self._link = _Link(self.pv("Acquire"))

    def pv(self, name: str) -> str:
        return f"{self.prefix}{name}"

    # --- connection --------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._link.connected

    @property
    def readout_time(self) -> float:
        return self._readout_time

    def watch_connection(self, callback: Callable[[], None]) -> Unsubscribe:
        return self._link.watch(callback)

    async def connect(self, timeout: float) -> None:
        if not await self._link.wait_connected(timeout):
            raise DeviceError(f"camera {self.prefix} not found within {timeout:g} s "
                              f"(no answer from {self.pv('Acquire')})")

    # --- acquisition -------------------------------------------------------------------
    async def configure(self, *, exposure: float, period: float, image_mode: ImageMode,
                        num_images: int, trigger_mode: TriggerMode) -> None:
        # Stop first: many drivers refuse settings while acquiring, and a camera left
        # free-running (simDetector starts in Continuous) would mix its frames in.
        await self.stop()
        await device_put_all(
            (self.pv("TriggerMode"), self.trigger_labels[int(trigger_mode)]),
            (self.pv("ImageMode"), IMAGE_MODE_LABELS[int(image_mode)]),
            (self.pv("NumImages"), num_images),
            (self.pv("AcquireTime"), exposure),
            (self.pv("AcquirePeriod"), period))
        self._exposure = exposure

    async def acquire(self, timeout: float) -> None:
        await _put_callback(self.pv("Acquire"), 1, timeout)

    async def wait_acquiring(self, timeout: float) -> None:
        await self._wait_acquire_rbv(1, timeout)

    async def _wait_acquire_rbv(self, wanted: int, timeout: float) -> None:
        """Until Acquire_RBV reads `wanted` (1 Acquiring, 0 Done); TimeoutError if not."""
        await wait_for_int(self.pv("Acquire_RBV"), wanted, timeout)

    async def stop(self) -> None:
        """Acquire=0 as a plain put, then wait until the driver says it stopped.

        Not a put-callback: an EPICS IOC's CA server (rsrv) runs one put-callback per
        channel at a time and holds every later request of the client on that circuit
        until it ends. While the scan's own Acquire=1 put-callback is outstanding (it
        lasts the whole acquisition), a put-callback of 0 would stall every request to
        the camera's IOC instead of stopping it."""
        pv = self.pv("Acquire")
        try:
            await caput(pv, 0, wait=False, timeout=PUT_TIMEOUT_S)
        except CANothing as error:
            raise DeviceError(f"{pv} did not accept 0: {error}") from None
        try:
            await self._wait_acquire_rbv(0, STOP_TIMEOUT_S)
        except TimeoutError:
            raise DeviceError(f"camera {self.prefix} did not stop within "
                              f"{STOP_TIMEOUT_S:g} s of Acquire=0 (Acquire_RBV still "
                              "Acquiring)") from None

    async def frame_counter(self) -> int:
        return int(await _get(self.pv("ArrayCounter_RBV")))

    async def images_counter(self) -> int:
        return int(await _get(self.pv("NumImagesCounter_RBV")))

    def _frame(self, value: Any) -> Frame:
        # delivered at the end of the exposure
        return Frame(int(value), float(value.timestamp) - self._exposure)

    def watch_frames(self, callback: Callable[[Frame], None]) -> Unsubscribe:
        return self._frames.add(callback)

    async def set_shutter(self, open_: bool) -> None:
        # a put-callback: the driver has applied it (and its open/close delay) when done
        await _put(self.pv("ShutterControl"), 1 if open_ else 0)


class CaTriggerBox:
    """A PandA position-compare block (`$(prefix)PCOMP1:`) with its capture.

    inputs: motor name -> the value written to INP (on a real PandA the encoder input
    wired to that motor, e.g. "INENC1.VAL"; on the simulated box the motor name)."""

    def __init__(self, prefix: str, *, block: str = "PCOMP1:",
                 inputs: Mapping[str, str] | None = None) -> None:
        self.prefix = prefix
        self.block = block
        self.inputs = dict(inputs or {})
        self._link = _Link(self.pv("ENABLE"))

    def pv(self, name: str) -> str:
        return f"{self.prefix}{self.block}{name}"

    @property
    def connected(self) -> bool:
        return self._link.connected

    def watch_connection(self, callback: Callable[[], None]) -> Unsubscribe:
        return self._link.watch(callback)

    async def connect(self, timeout: float) -> None:
        if not await self._link.wait_connected(timeout):
            raise DeviceError(f"trigger box {self.prefix} not found within {timeout:g} s "
                              f"(no answer from {self.pv('ENABLE')})")

    async def arm(self, *, motor: str, start: float, step: float, pulses: int,
                  direction: int, pre_start: float, width: float) -> None:
        await _put(self.pv("ENABLE"), 0)  # no pulse from half-set parameters
        await device_put_all(
            (self.pv("INP"), self.inputs.get(motor, motor)), (self.pv("START"), start),
            (self.pv("STEP"), abs(step)), (self.pv("PULSES"), pulses),
            (self.pv("WIDTH"), width), (self.pv("PRE_START"), pre_start),
            (self.pv("DIR"), "Positive" if direction > 0 else "Negative"))
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


class ReadbackMeter:
    """How often a moving motor's readback updates, from the readbacks' own timestamps:
    the median of the last intervals between readbacks taken while it moved. A motor
    record posts RBV as often as its driver polls the controller (motorSim: 10 Hz)."""

    SAMPLES = 16
    MAX_GAP_S = 1.0  # a longer gap is a pause between moves, not a poll

    def __init__(self, moving: Callable[[], bool]) -> None:
        self._moving = moving
        self._last: tuple[float, bool] | None = None
        self._gaps: deque[float] = deque(maxlen=self.SAMPLES)

    def __call__(self, item: tuple[float, float]) -> None:
        timestamp, moving = item[0], self._moving()
        last, self._last = self._last, (timestamp, moving)
        if last is not None and last[1] and 0 < timestamp - last[0] <= self.MAX_GAP_S:
            self._gaps.append(timestamp - last[0])

    @property
    def interval(self) -> float:
        """Seconds between readbacks while moving; 0 until the motor has moved."""
        return statistics.median(self._gaps) if self._gaps else 0.0


class EpicsMotorSync:
    """Lets a `benchioc.clients.motor.EpicsMotor` (already connected) serve the sync engines.

    Adds what EpicsMotor does not have: VELO puts, a timestamped readback monitor, how
    often the readback updates (the run-up of a Cont scan depends on it) and the record
    fields for the scan file."""

    def __init__(self, motor: EpicsMotor) -> None:
        self.motor = motor
        self.name = motor.name
        self._readback = _Watchers(motor.pv("RBV"),
                                   lambda v: (float(v.timestamp), float(v)))
        self.meter = ReadbackMeter(lambda: not motor.status.dmov)
        self._metering = False

    def start_metering(self) -> None:
        """Measure the readback interval from the first use on, for as long as this
        object lives (the IOC replaces it when the motor's PV root changes)."""
        if self._metering:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop owns CA here (a snapshot taken outside the IOC)
        self._metering = True
        weakref.finalize(self, self._readback.add(self.meter))

    def snapshot(self) -> MotorSnapshot:
        self.start_metering()
        s = self.motor.status
        return MotorSnapshot(position=s.rbv, velocity=s.velo, acceleration_time=s.accl,
                             max_velocity=s.vmax, high_limit=s.hlm, low_limit=s.llm,
                             units=s.egu, connected=s.connected, moving=not s.dmov,
                             readback_interval=self.meter.interval)

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
            # The genuine record's put-callback reply can overtake the monitors of the
            # move's last processing; DMOV=1 is posted after RBV, so once it is here the
            # readback monitors (and the readback meter) have seen the end of the move.
            await self.motor.wait_for(lambda s: s.dmov, MONITOR_CATCH_UP_S,
                                      "the monitors to show the end of the move")
        except MotorTimeout as error:
            raise TimeoutError(str(error)) from None

    async def read_position(self) -> float:
        """The monitored readback, no CA read: the scan engines ask for it after a
        move(), which returns only once the DMOV=1 monitor is in, and the record posts
        DMOV after the move's last RBV, so the monitor holds the readback the record
        holds (checked on motorSim by tests/integration/test_sync_ca.py[genuine])."""
        return self.motor.status.rbv

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
                     readout_time: float | None = None,
                     leases: MotorLeases | None = None,
                     lease_holder: Holder = SCAN) -> SyncController:
    """The controller the IOC binds to, over CA clients named by the config: the camera
    at `detector.prefix`, the box at `trigger.prefix` (none if empty; a box that never
    answers only makes Fly scans refused), scan files in `data.directory` (relative to
    the config file's folder). readout_time: None to use the camera's."""
    prefix = config.trigger.prefix
    camera = config.detector
    adapters = {name: EpicsMotorSync(motor) for name, motor in motors.items()}
    for adapter in adapters.values():
        adapter.start_metering()  # so that a homing before the first scan is measured
    return SyncController(
        motors=adapters,
        camera=CaCamera(camera.prefix),
        writer=(CaFilePlugin(plugin_prefix(camera.prefix, camera.file_plugin), camera.prefix)
                if camera.file_plugin else None),
        flat=FlatPlace(camera.flat_motor, camera.flat_position) if camera.flat_motor else None,
        bench_name=config.ioc.prefix.rstrip(":"),
        box=CaTriggerBox(prefix) if prefix else None,
        data=DataTarget.from_config(config.data, config_dir),
        is_homed=is_homed,
        leases=leases,
        lease_holder=lease_holder,
        readout_time=readout_time,
        bench_config=config.model_dump(mode="json"),
    )
