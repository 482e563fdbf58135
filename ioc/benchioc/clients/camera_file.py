"""aioca client of a camera's areaDetector NDFileHDF5 plugin (`$(P)HDF1:`), armed once
per scan so the frames reach a file beside the scan file.

Each scan gets its own capture in Stream mode with LazyOpen (the file opens at the first
frame, so a fresh camera IOC needs no priming frame) and a template without a number
(`%s%s.h5`): the controller picks a name no file has yet, because the plugin would
overwrite one. Capture is started and stopped with plain puts: its put-callback lasts
until the file closes, and an EPICS IOC's CA server holds the client's later requests
on that channel meanwhile.
"""

from __future__ import annotations

import logging

from aioca import DBR_CHAR_STR, CANothing

from ..engines.sync.devices import DeviceError, WrittenFile
from .ca import caput, wait_for_int
from .ca import device_get as _get
from .ca import device_put as _put

log = logging.getLogger(__name__)

PUT_TIMEOUT_S = 5.0
START_TIMEOUT_S = 5.0  # Capture=1 until Capture_RBV reads Capturing
STOP_TIMEOUT_S = 5.0  # Capture=0 until the file is closed
FILE_TEMPLATE = "%s%s.h5"
STREAM = 2
WRITE_ERROR = 1  # WriteStatus


def plugin_prefix(camera_prefix: str, plugin: str) -> str:
    """The plugin's prefix beside the camera's: ("SIM:cam1:", "HDF1:") -> "SIM:HDF1:"."""
    ioc_prefix = camera_prefix.rstrip(":").rpartition(":")[0]
    return f"{ioc_prefix}:{plugin}" if ioc_prefix else plugin


class CaFilePlugin:
    """One NDFileHDF5 plugin; camera_prefix is its driver's (`SIM:cam1:`), whose
    ArrayCallbacks must be on for frames to reach any plugin."""

    def __init__(self, prefix: str, camera_prefix: str) -> None:
        self.prefix = prefix
        self.camera_prefix = camera_prefix
        self._expected = ""

    def pv(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def arm(self, directory: str, name: str, frames: int) -> str:
        await _put(f"{self.camera_prefix}ArrayCallbacks", 1)
        try:
            await _put(self.pv("EnableCallbacks"), 1)
        except DeviceError:
            raise DeviceError(
                f"the camera's file plugin {self.prefix} does not answer: check that "
                "the camera's IOC loads an NDFileHDF5 plugin there, or set "
                "detector.file_plugin in the config (\"\" for scans without frames)"
            ) from None
        await self._stop_previous()
        # one at a time: the genuine plugin once missed its Capture_RBV=1 after these
        # went out together (CI, load 2 workers); not understood, so not risked
        await _put(self.pv("FileWriteMode"), STREAM)
        await _put(self.pv("LazyOpen"), 1)
        await _put(self.pv("AutoIncrement"), 0)
        await _put(self.pv("FileTemplate"), FILE_TEMPLATE, datatype=DBR_CHAR_STR)
        await _put(self.pv("FilePath"), directory, datatype=DBR_CHAR_STR)
        if int(await _get(self.pv("FilePathExists_RBV"))) != 1:
            raise DeviceError(
                f"the camera's file plugin {self.prefix} cannot see the data directory "
                f"{directory} (FilePathExists_RBV is No): the camera's IOC must write "
                "where the scan files go (same path on its machine)")
        await _put(self.pv("FileName"), name, datatype=DBR_CHAR_STR)
        await _put(self.pv("NumCapture"), frames)
        self._expected = f"{directory.rstrip('/')}/{name}.h5"
        await self._start()
        log.info("%s capturing %d frame(s) into %s", self.prefix, frames, self._expected)
        return self._expected

    async def _stop_previous(self) -> None:
        """A capture left running (an earlier client, a crash) would swallow our
        settings: the plugin refuses file settings while capturing."""
        if int(await _get(self.pv("Capture_RBV"))) != 0:
            await self.cancel()
            await self._wait_capture(0, STOP_TIMEOUT_S)

    async def _start(self) -> None:
        try:
            await caput(self.pv("Capture"), 1, wait=False, timeout=PUT_TIMEOUT_S)
        except CANothing as error:
            raise DeviceError(f"{self.pv('Capture')} did not accept 1: {error}") from None
        try:
            await self._wait_capture(1, START_TIMEOUT_S)
        except TimeoutError:
            why = await self._write_message()
            raise DeviceError(f"the camera's file plugin {self.prefix} did not start "
                              f"capturing{': ' + why if why else ''}") from None

    async def finish(self, timeout: float) -> WrittenFile:
        try:
            await self._wait_capture(0, timeout)
        except TimeoutError:
            log.warning("%s still capturing %g s after the scan: stopping it",
                        self.prefix, timeout)
            await self.cancel()
            await self._wait_capture(0, STOP_TIMEOUT_S)
        if int(await _get(self.pv("WriteStatus"))) == WRITE_ERROR:
            raise DeviceError(f"the camera's file plugin {self.prefix} reports a write "
                              f"error: {await self._write_message()}")
        name = str(await _get(self.pv("FullFileName_RBV"), datatype=DBR_CHAR_STR))
        count = int(await _get(self.pv("NumCaptured_RBV")))
        return WrittenFile(name.strip() or self._expected, count)

    async def cancel(self) -> None:
        try:
            await caput(self.pv("Capture"), 0, wait=False, timeout=PUT_TIMEOUT_S)
        except CANothing as error:
            raise DeviceError(f"{self.pv('Capture')} did not accept 0: {error}") from None

    async def _wait_capture(self, wanted: int, timeout: float) -> None:
        await wait_for_int(self.pv("Capture_RBV"), wanted, timeout)

    async def _write_message(self) -> str:
        try:
            return str(await _get(self.pv("WriteMessage"), datatype=DBR_CHAR_STR)).strip()
        except DeviceError:
            return ""
