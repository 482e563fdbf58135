"""areaDetector plugins of the simulated camera: the records every plugin has
(NDPluginBase.template over NDArrayBase.template) and the standard-arrays plugin
`image1:` (NDStdArrays.template), which serves each frame as a waveform `ArrayData`.

A plugin receives the camera's frames through `on_frame(frame)` (awaited by the camera
at the frame's delivery, in order), when its `EnableCallbacks` is Enable and the
camera's `ArrayCallbacks` is Enable, as the genuine NDArray callbacks do.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from caproto import ChannelType
from caproto.server import PVGroup, SubGroup, pvproperty

from ..facts.areadetector import EPICS_EPOCH_OFFSET_S
from .adrecords import (
    DISABLE_ENABLE,
    NO_LABELS,
    NO_YES,
    Rec,
    array_base,
    record,
    records_group,
)

log = logging.getLogger(__name__)

CAMERA_PORT = "SIM1"  # the driver's asyn port (PortName_RBV of cam1:)


@dataclass(frozen=True)
class ImageFrame:
    """One delivered frame: NDArray's uniqueId, timeStamp (the exposure start, POSIX
    seconds) and the CA stamp of its records (the delivery time)."""

    unique_id: int
    exposure_start: float
    delivered: float
    data: np.ndarray  # height x width


def plugin_base(port: str, plugin_type: str) -> list[Rec]:
    """NDPluginBase.template's records that the simulation does not act on."""
    return [
        *array_base(port),
        Rec("PluginType_RBV", "stringin", plugin_type),
        Rec("NDArrayPort_RBV", "stringin", CAMERA_PORT),
        Rec("NDArrayAddress", "longout", 0, rbv=True),
        Rec("BlockingCallbacks", "bo", "No", rbv=True, enum=NO_YES),
        Rec("MinCallbackTime", "ao", 0.0, rbv=True),
        Rec("MaxByteRate", "ao", 0.0, rbv=True),
        Rec("DroppedArrays", "longout", 0, rbv=True),
        Rec("QueueSize", "longout", 20, rbv=True),
        Rec("QueueFree", "longin", 20),
        Rec("QueueFreeLow", "calcout", 0.0),
        Rec("QueueUse", "calc", 0.0),
        Rec("QueueUseHIGH", "calcout", 0.0),
        Rec("QueueUseHIHI", "calcout", 0.0),
        Rec("NumThreads", "longout", 1, rbv=True),
        Rec("MaxThreads_RBV", "longin", 1),
        Rec("ExecutionTime_RBV", "ai", 0.0),
        Rec("ProcessPlugin", "bo", "", enum=NO_LABELS),
        Rec("Dim0SA", "subArray", [0] * 10),
        Rec("Dim1SA", "subArray", [0] * 10),
        Rec("Dim2SA", "subArray", [0] * 10),
        *(Rec(f"ArraySize{i}_RBV", "longin", 0) for i in range(3)),
    ]


class PluginGroup(PVGroup):
    """What every simulated plugin has: EnableCallbacks, NDArrayPort, ArrayCounter and
    the array size readbacks, updated for each frame the plugin processes."""

    enable_callbacks = pvproperty(value="Enable", dtype=ChannelType.ENUM,
                                  enum_strings=DISABLE_ENABLE, record="bo",
                                  name="EnableCallbacks")
    enable_callbacks_rbv = pvproperty(value="Enable", dtype=ChannelType.ENUM,
                                      enum_strings=DISABLE_ENABLE, record="bi",
                                      name="EnableCallbacks_RBV", read_only=True)
    nd_array_port = pvproperty(value=CAMERA_PORT, name="NDArrayPort", record="stringout",
                               dtype=ChannelType.STRING)
    array_counter = pvproperty(value=0, name="ArrayCounter", record="longout")
    array_counter_rbv = pvproperty(value=0, name="ArrayCounter_RBV", record="longin",
                                   read_only=True)

    @enable_callbacks.putter
    async def enable_callbacks(self, instance, value):
        await self.enable_callbacks_rbv.write(value)
        return value

    @nd_array_port.putter
    async def nd_array_port(self, instance, value):
        await record(self, "NDArrayPort_RBV").write(value)
        return value

    @array_counter.putter
    async def array_counter(self, instance, value):
        await self.array_counter_rbv.write(int(value))
        return value

    _queue: asyncio.Queue[ImageFrame] | None = None  # frames waiting for this plugin
    _worker: asyncio.Task | None = None

    @property
    def enabled(self) -> bool:
        return self.enable_callbacks.value == "Enable" \
            and self.nd_array_port.value == CAMERA_PORT

    def deliver(self, frame: ImageFrame) -> None:
        """Queue a frame, as NDPluginDriver does with BlockingCallbacks=No (the default):
        the driver goes on at once, and the plugin's own thread processes its queue in
        order. So an acquisition ends without waiting for the plugins, here too: a
        frame's file write and its ArrayData never delay the Acquire put-callback."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._process())
        self._queue.put_nowait(frame)

    async def _process(self) -> None:
        assert self._queue is not None
        while True:
            frame = await self._queue.get()
            try:
                await self.on_frame(frame)
            except Exception:  # noqa: BLE001 - a plugin's failure must not stop its queue
                log.exception("plugin %s failed on frame %d", self.prefix, frame.unique_id)

    async def on_frame(self, frame: ImageFrame) -> None:
        """The camera delivered a frame (called only when callbacks are enabled)."""
        raise NotImplementedError

    async def publish_array(self, frame: ImageFrame, *, count: bool = True) -> None:
        """The NDArray readbacks of a processed frame, stamped at its delivery, as
        NDPluginDriver sets them (ArraySizeX/Y/Z_RBV and ArraySize_RBV are the
        driver's: they stay 0 on a plugin); the NDArray's time stamps count from the
        EPICS epoch."""
        stamp = frame.delivered
        height, width = frame.data.shape
        epics_ts = stamp - EPICS_EPOCH_OFFSET_S
        for name, value in (("NDimensions_RBV", 2), ("ArraySize0_RBV", width),
                            ("ArraySize1_RBV", height), ("ArraySize2_RBV", 0),
                            ("Dimensions_RBV", [width, height] + [0] * 8),
                            ("CompressedSize_RBV", frame.data.nbytes),
                            ("UniqueId_RBV", frame.unique_id),
                            ("TimeStamp_RBV", frame.exposure_start - EPICS_EPOCH_OFFSET_S),
                            ("EpicsTSSec_RBV", int(epics_ts)),
                            ("EpicsTSNsec_RBV", int(round(epics_ts % 1 * 1e9)) % 10**9)):
            await record(self, name).write(value, timestamp=stamp)
        if count:
            await self.array_counter_rbv.write(self.array_counter_rbv.value + 1,
                                               timestamp=stamp)


IMAGE_ELEMENTS = 64 * 48  # NELEMENTS of ArrayData (the sensor's full size)


class StdArraysGroup(PluginGroup):
    """`image1:`: NDStdArrays.template; ArrayData is a LONG waveform (TYPE=Int32,
    FTVL=LONG: caproto has no unsigned 16-bit type) of the frame, row by row."""

    base = SubGroup(records_group("StdArraysRecords",
                                  plugin_base("Image1", "NDPluginStdArrays")), prefix="")
    array_data = pvproperty(value=[0] * IMAGE_ELEMENTS, dtype=ChannelType.LONG,
                            max_length=IMAGE_ELEMENTS, name="ArrayData", record="waveform",
                            read_only=True)

    async def on_frame(self, frame: ImageFrame) -> None:
        await self.publish_array(frame)
        flat: Any = frame.data.astype(np.int32).ravel().tolist()
        await self.array_data.write(flat, timestamp=frame.delivered)
