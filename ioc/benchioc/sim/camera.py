"""A simulated areaDetector-style camera: the physics in `CameraModel`, the PVs in
`CameraGroup`.

The model is event based and driven by the caller's clock, so it is exact and testable
without I/O: `start`, `stop` and `trigger` change its state at a given time, `advance(now)`
completes every frame due by then, and `next_event_time()` says when to call it again.
A frame's `timestamp` is the start of its exposure (for an external trigger: the time of
the pulse) and `delivered` the time its callback fires: the end of the exposure,
`AcquireTime` later, as on simDetector (which delivers about 0.1 ms after the exposure
ends). As on areaDetector, the CA records of a frame (`ArrayCounter_RBV`, the plugins')
are stamped at delivery (with a time scale: exposure start + AcquireTime as set, see
`_deliver`); the start of the exposure is the NDArray's own time stamp (a plugin's
`TimeStamp_RBV`, seconds past the EPICS epoch).

The readout time (`Sim:ReadoutTime`, sim only) does not delay delivery: it is the
camera's dead time after an exposure, the minimum gap before the next one. Exposures
start every `max(AcquirePeriod, AcquireTime + readout)`; an external trigger that arrives
during an exposure or the readout after it is ignored (a missed frame). The fault knob
`DropFrames` loses the next N frames after exposure: the camera counts them as images
taken (`NumImagesCounter_RBV`) but never delivers them (`ArrayCounter_RBV` does not
move), as a camera whose link drops frames does.

Each delivered frame is a picture (sim/image.py): a spot whose column follows the user
position of the motor named by `Sim:SpotMotor` at mid-exposure, on dark noise; with
`ShutterControl` Close, only the noise. It goes to the plugins (`image1:`, `HDF1:`,
sim/plugins.py, sim/hdf5plugin.py) when `ArrayCallbacks` is Enable. The other ADBase
records (adrecords.py) are there with the genuine record types, so that standard
clients (ophyd's AreaDetectorCam) connect.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from caproto import ChannelType
from caproto.server import PVGroup, SubGroup, pvproperty

from ..facts.areadetector import (
    SHUTTER_LABELS,
    SHUTTER_MODE_LABELS,
    SHUTTER_STATUS_LABELS,
    DetectorState,
    ImageMode,
    TriggerMode,
)
from . import image
from .adrecords import NO_LABELS, NO_YES, Rec, array_base, char_waveform, record, records_group
from .plugins import CAMERA_PORT, ImageFrame, PluginGroup

log = logging.getLogger(__name__)

DEFAULT_READOUT_S = 0.002


IMAGE_MODE_LABELS = ("Single", "Multiple", "Continuous")
TRIGGER_MODE_LABELS = ("Internal", "External")
STATE_LABELS = ("Idle", "Acquire", "Readout", "Correct", "Saving", "Aborting", "Error",
                "Waiting", "Initializing", "Disconnected", "Aborted")


@dataclass(frozen=True)
class Frame:
    number: int  # ArrayCounter after this frame; 0 for a dropped frame
    timestamp: float  # start of the exposure, caller's clock
    dropped: bool = False
    delivered: float = 0.0  # when the frame's callback fires: the end of the exposure


class CameraModel:
    """The camera's behaviour in time; every duration is in the caller's clock units."""

    def __init__(self, readout_time: float = DEFAULT_READOUT_S) -> None:
        self.readout_time = readout_time
        self.acquire_time = 0.01
        self.acquire_period = 0.02
        self.image_mode = ImageMode.MULTIPLE
        self.num_images = 1
        self.trigger_mode = TriggerMode.INTERNAL
        self.drop_frames = 0  # fault: lose the next N frames
        self.array_counter = 0
        self.num_images_counter = 0
        self.ignored_triggers = 0
        self.acquiring = False
        self._started = 0  # exposures begun in this acquisition
        self._next_start: float | None = None
        self._exposure_start: float | None = None
        self._busy_until = -math.inf  # the end of the last frame's readout
        self._completed: list[Frame] = []

    # --- settings --------------------------------------------------------------------
    @property
    def frame_time(self) -> float:
        """Exposure and readout: the shortest time from one exposure to the next."""
        return self.acquire_time + self.readout_time

    @property
    def effective_period(self) -> float:
        return max(self.acquire_period, self.frame_time)

    @property
    def target(self) -> float:
        if self.image_mode == ImageMode.SINGLE:
            return 1
        if self.image_mode == ImageMode.MULTIPLE:
            return max(self.num_images, 1)
        return math.inf

    @property
    def state(self) -> DetectorState:
        if not self.acquiring:
            return DetectorState.IDLE
        if self._exposure_start is None:
            return DetectorState.WAITING
        return DetectorState.ACQUIRE

    # --- commands --------------------------------------------------------------------
    def start(self, now: float) -> None:
        if self.acquiring:
            return
        self.acquiring = True
        self.num_images_counter = 0
        self._started = 0
        self._exposure_start = None
        self._busy_until = -math.inf
        internal = self.trigger_mode == TriggerMode.INTERNAL
        self._next_start = now if internal else None

    def stop(self, now: float) -> None:
        """Abort: the exposure in progress is lost, as Acquire=0 does on a camera."""
        self.acquiring = False
        self._next_start = None
        self._exposure_start = None

    def trigger(self, at: float) -> bool:
        """An external trigger edge at time `at`; False if the camera ignored it."""
        if not self.acquiring or self.trigger_mode != TriggerMode.EXTERNAL:
            self.ignored_triggers += 1
            return False
        self._run_until(at)  # a frame that ended before this edge frees the camera
        if not self.acquiring or self._exposure_start is not None \
                or at < self._busy_until or self._started >= self.target:
            self.ignored_triggers += 1
            return False
        self._begin(at)
        return True

    def next_event_time(self) -> float | None:
        if self._exposure_start is not None:
            return self._exposure_start + self.acquire_time
        if self.acquiring and self._next_start is not None and self._started < self.target:
            return self._next_start
        return None

    def advance(self, now: float) -> list[Frame]:
        """Complete every frame due by `now`; return them (and any completed while
        handling triggers since the last call), in order."""
        self._run_until(now)
        frames, self._completed = self._completed, []
        return frames

    def _run_until(self, now: float) -> None:
        while True:
            if self._exposure_start is not None:
                if self._exposure_start + self.acquire_time > now:
                    return
                self._completed.append(self._complete())
                continue
            due = self.next_event_time()
            if due is None or due > now:
                return
            self._begin(due)
            self._next_start = due + self.effective_period

    def _begin(self, at: float) -> None:
        self._exposure_start = at
        self._started += 1

    def _complete(self) -> Frame:
        assert self._exposure_start is not None
        started = self._exposure_start
        delivered = started + self.acquire_time
        self._busy_until = started + self.frame_time  # readout: no exposure before
        self._exposure_start = None
        self.num_images_counter += 1
        if self.num_images_counter >= self.target:
            self.acquiring = False
            self._next_start = None
        if self.drop_frames > 0:
            self.drop_frames -= 1
            log.info("camera fault: frame exposed at %.6f dropped", started)
            return Frame(0, started, dropped=True, delivered=delivered)
        self.array_counter += 1
        return Frame(self.array_counter, started, delivered=delivered)


def _enum(labels: tuple[str, ...], value: str, doc: str, **kwargs) -> pvproperty:
    return pvproperty(value=value, dtype=ChannelType.ENUM, enum_strings=labels,
                      doc=doc, **kwargs)


def cam_records() -> list[Rec]:
    """ADBase.template records the camera serves as plain settings (genuine types)."""
    return [
        *array_base(CAMERA_PORT, "Simulated detector", "Bench spot simulator"),
        Rec("MaxSizeX_RBV", "longin", image.WIDTH),
        Rec("MaxSizeY_RBV", "longin", image.HEIGHT),
        Rec("SizeX", "longout", image.WIDTH, rbv=True),
        Rec("SizeY", "longout", image.HEIGHT, rbv=True),
        Rec("MinX", "longout", 0, rbv=True),
        Rec("MinY", "longout", 0, rbv=True),
        Rec("BinX", "longout", 1, rbv=True),
        Rec("BinY", "longout", 1, rbv=True),
        Rec("ReverseX", "bo", "No", rbv=True, enum=NO_YES),
        Rec("ReverseY", "bo", "No", rbv=True, enum=NO_YES),
        Rec("NumExposures", "longout", 1, rbv=True),
        Rec("NumExposuresCounter_RBV", "longin", 0),
        Rec("Gain", "ao", 1.0, rbv=True),
        Rec("FrameType", "mbbo", "Normal", rbv=True,
            enum=("Normal", "Background", "FlatField", "DblCorrelation")),
        Rec("ShutterMode", "mbbo", "None", rbv=True, enum=SHUTTER_MODE_LABELS),
        Rec("ShutterControl", "bo", "Open", rbv=True, enum=SHUTTER_LABELS),
        Rec("ShutterStatus_RBV", "bi", "Open", enum=SHUTTER_STATUS_LABELS),
        Rec("ShutterOpenDelay", "ao", 0.0, rbv=True),
        Rec("ShutterCloseDelay", "ao", 0.0, rbv=True),
        Rec("ShutterControlEPICS", "bi", "Closed", enum=SHUTTER_STATUS_LABELS),
        Rec("ShutterOpenEPICS", "calcout", 0.0),
        Rec("ShutterCloseEPICS", "calcout", 0.0),
        Rec("ShutterStatusEPICS_RBV", "mbbi", "Closed", enum=("Closed", "Open")),
        Rec("ShutterFanout", "fanout", 0),
        Rec("Temperature", "ao", 25.0, rbv=True),
        Rec("TemperatureActual", "ai", 25.0),
        Rec("TimeRemaining_RBV", "ai", 0.0),
        char_waveform("StatusMessage_RBV"),
        char_waveform("StringToServer_RBV"),
        char_waveform("StringFromServer_RBV"),
        Rec("ReadStatus", "bo", "", enum=NO_LABELS),
        Rec("AcquireBusy", "busy", "Done", enum=("Done", "Acquiring")),
        Rec("AcquireBusyCB", "bi", "Done", enum=("Done", "Acquiring")),
        *(Rec(f"ArraySize{i}", "longin", 0) for i in range(3)),
        *(Rec(f"ArraySize{i}_RBV", "longin", 0) for i in range(3)),
    ]


class CameraGroup(PVGroup):
    """The `cam` records of an areaDetector driver, over one `CameraModel`.

    `time_scale` > 1 runs the camera faster than real time (AcquireTime 1 s takes
    1/time_scale s), matching the motor simulation. Timestamps are wall-clock seconds.
    """

    acquire = _enum(("Done", "Acquire"), "Done", "start (1) or stop (0) acquiring; "
                    "a put-callback of 1 completes when the acquisition ends",
                    name="Acquire", record="bo")
    acquire_rbv = _enum(("Done", "Acquiring"), "Done", "acquisition running",
                        name="Acquire_RBV", read_only=True, record="bi")
    acquire_time = pvproperty(value=0.01, name="AcquireTime", units="s", precision=4,
                              record="ao")
    acquire_time_rbv = pvproperty(value=0.01, name="AcquireTime_RBV", units="s",
                                  precision=4, read_only=True, record="ai")
    acquire_period = pvproperty(value=0.02, name="AcquirePeriod", units="s",
                                precision=4, record="ao")
    acquire_period_rbv = pvproperty(value=0.02, name="AcquirePeriod_RBV", units="s",
                                    precision=4, read_only=True, record="ai")
    image_mode = _enum(IMAGE_MODE_LABELS, "Multiple", "images per acquisition",
                       name="ImageMode", record="mbbo")
    image_mode_rbv = _enum(IMAGE_MODE_LABELS, "Multiple", "", name="ImageMode_RBV",
                           read_only=True, record="mbbi")
    num_images = pvproperty(value=1, name="NumImages", record="longout")
    num_images_rbv = pvproperty(value=1, name="NumImages_RBV", read_only=True,
                                record="longin")
    trigger_mode = _enum(TRIGGER_MODE_LABELS, "Internal", "internal timer or external "
                         "trigger input", name="TriggerMode", record="mbbo")
    trigger_mode_rbv = _enum(TRIGGER_MODE_LABELS, "Internal", "", name="TriggerMode_RBV",
                             read_only=True, record="mbbi")
    array_counter = pvproperty(value=0, name="ArrayCounter", record="longout")
    array_counter_rbv = pvproperty(value=0, name="ArrayCounter_RBV", read_only=True,
                                   record="longin",
                                   doc="frames delivered; timestamp = the delivery")
    num_images_counter_rbv = pvproperty(value=0, name="NumImagesCounter_RBV",
                                        read_only=True, record="longin")
    detector_state = _enum(STATE_LABELS, "Idle", "", name="DetectorState_RBV",
                           read_only=True, record="mbbi")
    readout_time = pvproperty(value=DEFAULT_READOUT_S, name="Sim:ReadoutTime", units="s",
                              precision=4, read_only=True,
                              doc="dead time after each exposure: the minimum gap before "
                              "the next one (frames are delivered at the exposure's end)")
    drop_frames = pvproperty(value=0, name="Sim:DropFrames",
                             doc="fault: the next N frames are exposed but lost")
    ignored_triggers = pvproperty(value=0, name="Sim:IgnoredTriggers", read_only=True)
    spot_motor = pvproperty(value="", name="Sim:SpotMotor", dtype=ChannelType.STRING,
                            doc="the motor whose position moves the spot (\"\": none)")
    base = SubGroup(records_group("CamRecords", cam_records()), prefix="")

    def __init__(self, *args, time_scale: float = 1.0,
                 readout_time: float = DEFAULT_READOUT_S,
                 clock: Callable[[], float] = time.time, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.time_scale = time_scale
        self.clock = clock
        self.model = CameraModel(readout_time / time_scale)
        self.model.acquire_time = 0.01 / time_scale
        self.model.acquire_period = 0.02 / time_scale
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.ca_context = None  # set by the server: lets replies follow monitor updates
        self.plugins: list[PluginGroup] = []  # frames go to them (set by the server)
        self.positions = None  # .position_at(motor, wall time), set by attach_motors
        self.optics: dict[str, image.SpotOptics] = {}
        self.rng = np.random.default_rng(20260101)
        self.unique_id = 0

    def attach_motors(self, positions, ranges: dict[str, tuple[float, float]],
                      spot_motor: str = "") -> None:
        """The motors the camera sees: a PositionSource and each motor's soft range."""
        self.positions = positions
        self.optics = {name: image.SpotOptics(lo, hi) for name, (lo, hi) in ranges.items()}
        if not spot_motor and ranges:
            spot_motor = next(iter(ranges))
        self.spot_motor._data["value"] = spot_motor  # initial value, before serving

    # --- in-process trigger input (the trigger box's output cable) --------------------
    def external_trigger(self, at: float) -> bool:
        accepted = self.model.trigger(at)
        self._wake.set()
        return accepted

    # --- putters ---------------------------------------------------------------------
    @acquire.putter
    async def acquire(self, instance, value):
        if value in ("Acquire", 1):
            if not self.model.acquiring:
                self.model.start(self.clock())
                self._idle.clear()
                await self._publish_state()
                self._wake.set()
            # areaDetector semantics: Acquire reads 1 while acquiring and the
            # put-callback completes when the acquisition ends.
            await instance.write("Acquire", verify_value=False)
            await self._idle.wait()
            await self._flush()
            return "Done"
        self.model.stop(self.clock())
        await self._publish_state()
        self._idle.set()
        self._wake.set()
        return "Done"

    @acquire_time.putter
    async def acquire_time(self, instance, value):
        self.model.acquire_time = max(float(value), 0.0) / self.time_scale
        await self.acquire_time_rbv.write(value)
        return value

    @acquire_period.putter
    async def acquire_period(self, instance, value):
        self.model.acquire_period = max(float(value), 0.0) / self.time_scale
        await self.acquire_period_rbv.write(value)
        return value

    @image_mode.putter
    async def image_mode(self, instance, value):
        self.model.image_mode = ImageMode(IMAGE_MODE_LABELS.index(value))
        await self.image_mode_rbv.write(value)
        return value

    @num_images.putter
    async def num_images(self, instance, value):
        self.model.num_images = max(int(value), 1)
        await self.num_images_rbv.write(self.model.num_images)
        return self.model.num_images

    @trigger_mode.putter
    async def trigger_mode(self, instance, value):
        self.model.trigger_mode = TriggerMode(TRIGGER_MODE_LABELS.index(value))
        await self.trigger_mode_rbv.write(value)
        return value

    @array_counter.putter
    async def array_counter(self, instance, value):
        self.model.array_counter = int(value)
        await self.array_counter_rbv.write(int(value))
        return value

    @drop_frames.putter
    async def drop_frames(self, instance, value):
        self.model.drop_frames = max(int(value), 0)
        return self.model.drop_frames

    # --- the frame clock ---------------------------------------------------------------
    @detector_state.startup
    async def detector_state(self, instance, async_lib):
        while True:
            due = self.model.next_event_time()
            timeout = None if due is None else max(due - self.clock(), 0.0)
            self._wake.clear()
            until = self.clock()
            if timeout is None or timeout > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                    until = self.clock()
                except TimeoutError:
                    # A timer can fire a rounding error before `due`; that is `due`.
                    until = max(self.clock(), due)
            await self._step(until)

    async def _step(self, until: float) -> None:
        for frame in self.model.advance(until):
            if not frame.dropped:
                await self._deliver(frame)
            await self.num_images_counter_rbv.write(self.model.num_images_counter)
        await self._publish_state()
        if not self.model.acquiring and not self._idle.is_set():
            self._idle.set()

    def render(self, frame: Frame) -> np.ndarray:
        """The picture of a frame: the spot where the motor was at mid-exposure."""
        optics = self.optics.get(self.spot_motor.value) or image.SpotOptics(0.0, 1.0)
        position = None
        if self.positions is not None and self.spot_motor.value in self.optics:
            middle = frame.timestamp + self.model.acquire_time / 2
            position = self.positions.position_at(self.spot_motor.value, middle)
        light = record(self, "ShutterControl").value == "Open"
        full = image.render(optics, position, self.rng, light=light)
        min_x = min(max(int(record(self, "MinX").value), 0), image.WIDTH - 1)
        min_y = min(max(int(record(self, "MinY").value), 0), image.HEIGHT - 1)
        size_x = min(max(int(record(self, "SizeX").value), 1), image.WIDTH - min_x)
        size_y = min(max(int(record(self, "SizeY").value), 1), image.HEIGHT - min_y)
        return full[min_y:min_y + size_y, min_x:min_x + size_x]

    async def _deliver(self, frame: Frame) -> None:
        """A frame's callback: records stamped at delivery, then the plugins. As on
        simDetector, the driver sets only the array size readbacks; the NDArray's
        uniqueId and time stamps are the plugins' (UniqueId_RBV, TimeStamp_RBV and
        NDimensions_RBV of cam1: stay 0).

        The stamp is the end of the exposure in the camera's own seconds: exposure
        start + AcquireTime as set. At time scale 1 that is the wall time of the
        delivery; a faster simulation delivers 1/time_scale of the exposure after its
        start, but stamps as a camera that exposed for AcquireTime, so that a client
        moving the stamp back by AcquireTime (as for any areaDetector) finds the
        exposure start, on the wall clock of the motors and the trigger box."""
        stamp = frame.timestamp + (frame.delivered - frame.timestamp) * self.time_scale
        data = self.render(frame)
        self.unique_id = frame.number
        height, width = data.shape
        for name, value in (("ArraySizeX_RBV", width), ("ArraySizeY_RBV", height),
                            ("ArraySizeZ_RBV", 0), ("ArraySize_RBV", data.nbytes)):
            if record(self, name).value != value:
                await record(self, name).write(value, timestamp=stamp)
        await self.array_counter_rbv.write(frame.number, timestamp=stamp)
        if record(self, "ArrayCallbacks").value != "Enable":
            return
        delivered = ImageFrame(frame.number, frame.timestamp, stamp, data)
        for plugin in self.plugins:
            if plugin.enabled:
                plugin.deliver(delivered)

    async def _flush(self) -> None:
        """The last frame's monitor update goes out before the put-callback reply."""
        if self.ca_context is not None:
            from . import caproto_fixes

            await caproto_fixes.flush_updates(self.ca_context)

    async def _publish_state(self) -> None:
        state = STATE_LABELS[self.model.state]
        if self.detector_state.value != state:
            await self.detector_state.write(state)
        acquiring = "Acquiring" if self.model.acquiring else "Done"
        if self.acquire_rbv.value != acquiring:
            await self.acquire_rbv.write(acquiring)
        if self.model.ignored_triggers != self.ignored_triggers.value:
            await self.ignored_triggers.write(self.model.ignored_triggers)
