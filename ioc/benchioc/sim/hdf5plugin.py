"""The simulated camera's HDF5 file plugin `HDF1:` (NDFileHDF5.template over
NDFile.template), with the behaviour of ADCore R3-13's NDPluginFile/NDFileHDF5 where
clients meet it (checked against the genuine simDetector IOC):

- FilePath, FileName, FileTemplate, FullFileName_RBV and WriteMessage are char
  waveforms; FilePath_RBV reads the path with a trailing "/" added;
  FilePathExists_RBV says whether that directory exists (set on each FilePath put).
- The file name is FileTemplate % (FilePath_RBV, FileName, FileNumber), C printf style
  ("%s%s_%6.6d.h5" -> /data/scan_000007.h5); with AutoIncrement=Yes, FileNumber goes up
  by one when a file is opened (FullFileName_RBV keeps the number it was opened with).
- Capture=1 first clears WriteStatus, WriteMessage and FullFileName_RBV; a capture
  started with LazyOpen=Yes then reads WriteMessage "Lazy Open..." until its file opens
  (and so does a later Capture=0 put, as the genuine's writeInt32 does).
- Capture (a busy record) in Stream mode opens the file at once, unless LazyOpen=Yes
  (then at the first frame); on a fresh IOC with LazyOpen=No it fails at once ("must
  collect an array to get dimensions first", in the IOC's log only, Capture back to
  Done). Each frame is appended; after NumCapture frames (0: until Capture=0) the file
  is closed and only then does Capture's put-callback complete. Capture mode keeps the
  frames in memory and writes them at the end when AutoSave=Yes (else on WriteFile=1).
  Single mode refuses Capture ("ERROR: capture not supported in Single mode") and writes
  one file per frame when AutoSave=Yes, or the last frame on WriteFile=1.
- A file that cannot be created: WriteStatus "Write error", WriteMessage
  "Error opening file <name>, status=3", FullFileName_RBV <name>; a file opened
  successfully sets "Write OK" and an empty message.
- ArrayCounter_RBV counts the frames the plugin wrote or buffered, not those it saw.

The file: `/entry/data/data`, frames x height x width, uint16 (the NDArray attributes
and NDArray dimension attributes of the genuine layout are left out).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
from dataclasses import dataclass, field

import h5py
import numpy as np
from caproto.server import SubGroup, pvproperty

from .adrecords import NO_YES, Rec, char_waveform, make_property, records_group
from .plugins import ImageFrame, PluginGroup, plugin_base

log = logging.getLogger(__name__)

DATASET = "entry/data/data"
OPEN_ERROR_STATUS = 3  # asynDisabled, what NDFileHDF5::openFile returns on failure
NO_ARRAY_YET = "must collect an array to get dimensions first"
SINGLE_REFUSES_CAPTURE = "ERROR: capture not supported in Single mode"
LAZY_OPEN = "Lazy Open..."


class WriteMode(enum.IntEnum):
    SINGLE = 0
    CAPTURE = 1
    STREAM = 2


WRITE_MODE_LABELS = ("Single", "Capture", "Stream")


def c_format(template: str, path: str, name: str, number: int) -> str:
    """areaDetector's epicsSnprintf(template, path, name, number), Python's % doing the
    printf conversions. As printf, a template that uses fewer of the arguments ignores
    the rest (ophyd-async's "%s%s.h5" has no number); an unusable template gives what
    the genuine would: empty."""
    arguments = (path, name, number)
    for used in range(len(arguments), -1, -1):
        try:
            return template % arguments[:used]
        except TypeError as error:
            if "not all arguments converted" not in str(error):
                return ""
        except ValueError:
            return ""
    return ""


def text(value: object) -> str:
    """A char waveform's value as text (caproto may hand a putter bytes or numbers)."""
    if isinstance(value, str):
        return value.rstrip("\0")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).split(b"\0", 1)[0].decode("latin-1")
    try:
        return bytes(int(v) & 0xFF for v in value).split(b"\0", 1)[0].decode("latin-1")  # type: ignore[attr-defined]
    except TypeError:
        return str(value)


def with_slash(path: str) -> str:
    """checkPath(): a non-empty path gets a trailing separator."""
    return path if not path or path.endswith("/") else path + "/"


@dataclass
class HDF5Writer:
    """NDFileHDF5's state and file handling, free of CA: the group feeds it settings and
    frames and publishes what it reports."""

    file_path: str = ""
    file_name: str = ""
    file_template: str = ""
    file_number: int = 0
    auto_increment: bool = False
    auto_save: bool = False
    lazy_open: bool = False
    write_mode: WriteMode = WriteMode.SINGLE
    num_capture: int = 1
    # readbacks
    capturing: bool = False
    num_captured: int = 0
    full_file_name: str = ""
    write_ok: bool = True
    write_message: str = ""
    array_counter: int = 0
    last: np.ndarray | None = None
    _lazy: bool = False  # LazyOpen as latched by the last Capture=1
    _buffer: list[np.ndarray] = field(default_factory=list)
    _file: h5py.File | None = None

    @property
    def path_exists(self) -> bool:
        return bool(self.file_path) and os.path.isdir(self.file_path)

    @property
    def file_path_rbv(self) -> str:
        return with_slash(self.file_path)

    # --- files -------------------------------------------------------------------------
    def _open(self, first: np.ndarray) -> bool:
        name = c_format(self.file_template, self.file_path_rbv, self.file_name,
                        self.file_number)
        self.full_file_name = name
        try:
            handle = h5py.File(name, "w")
        except (OSError, ValueError) as error:
            log.error("NDFileHDF5::createNewFile Unable to create HDF5 file: %s (%s)",
                      name, error)
            self.write_ok = False
            self.write_message = f"Error opening file {name}, status={OPEN_ERROR_STATUS}"
            return False
        height, width = first.shape
        handle.create_dataset(DATASET, shape=(0, height, width),
                              maxshape=(None, height, width), dtype=np.uint16,
                              chunks=(1, height, width))
        self._file = handle
        self.write_ok = True
        self.write_message = ""
        if self.auto_increment:
            self.file_number += 1
        return True

    def _append(self, frame: np.ndarray) -> None:
        assert self._file is not None
        data = self._file[DATASET]
        assert isinstance(data, h5py.Dataset)
        data.resize(data.shape[0] + 1, axis=0)
        data[-1] = frame
        self._file.flush()

    def flush(self) -> None:
        """FlushNow: every frame is flushed as it is written; this flushes once more."""
        if self._file is not None:
            self._file.flush()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write_all(self, frames: list[np.ndarray]) -> bool:
        if not frames or not self._open(frames[0]):
            return False
        for frame in frames:
            self._append(frame)
        self._close()
        return True

    @property
    def file_open(self) -> bool:
        return self._file is not None

    # --- commands ----------------------------------------------------------------------
    def start_capture(self) -> bool:
        """Capture=1; False when refused (Capture goes back to Done). As
        NDPluginFile::writeInt32: the status, message and full file name are cleared
        first, LazyOpen is latched, and a capture started lazily says "Lazy Open..."."""
        self.write_ok = True
        self.write_message = ""
        self.full_file_name = ""
        self._lazy = self.lazy_open
        if not self._start_capture():
            return False
        if self._lazy:
            self.write_message = LAZY_OPEN
        return True

    def _start_capture(self) -> bool:
        if self.last is None and not self.lazy_open:
            log.error("NDPluginFile::doCapture: ERROR, %s", NO_ARRAY_YET)
            return False
        if self.write_mode == WriteMode.SINGLE:
            log.error("NDPluginFile:doCapture %s", SINGLE_REFUSES_CAPTURE)
            self.write_message = SINGLE_REFUSES_CAPTURE
            return False
        self.num_captured = 0
        self._buffer = []
        if self.write_mode == WriteMode.STREAM and not self.lazy_open:
            assert self.last is not None
            if not self._open(self.last):
                return False
        self.capturing = True
        return True

    def stop_capture(self, *, put: bool = False) -> None:
        """Capture=0 (`put`) or the last frame captured: Stream closes its file. A put
        of 0 after a capture started with LazyOpen says "Lazy Open..." again, as the
        genuine's writeInt32 does after any successful doCapture."""
        if self.write_mode == WriteMode.STREAM:
            self._close()
        self.capturing = False
        if put and self._lazy:
            self.write_message = LAZY_OPEN

    def write_file(self) -> None:
        """WriteFile=1: Single writes the last frame, Capture the buffered ones."""
        if self.write_mode == WriteMode.SINGLE and self.last is not None:
            self._write_all([self.last])
        elif self.write_mode == WriteMode.CAPTURE and self._buffer:
            self._write_all(self._buffer)

    def on_frame(self, frame: np.ndarray) -> bool:
        """A frame arrived; True when it ended the capture (the file is closed)."""
        self.last = frame
        if self.write_mode == WriteMode.SINGLE:
            if self.auto_save:
                self.array_counter += 1
                self._write_all([frame])
            return False
        if not self.capturing:
            return False
        if self.write_mode == WriteMode.CAPTURE:
            if self.num_captured < self.num_capture:
                self._buffer.append(frame)
                self.num_captured = len(self._buffer)
                self.array_counter += 1
            if self.num_captured == self.num_capture:
                if self.auto_save:
                    self._write_all(self._buffer)
                self.capturing = False
                return True
            return False
        self.array_counter += 1
        if self._file is None and not self._open(frame):  # LazyOpen
            return False
        self._append(frame)
        self.num_captured += 1
        if self.num_captured == self.num_capture:
            self.stop_capture()
            return True
        return False


def _hdf5_records() -> list[Rec]:
    """NDFile.template and NDFileHDF5.template records the simulation does not act on
    (their settings are kept but change nothing in the file)."""
    return [
        *plugin_base("FileHDF1", "NDFileHDF5 ver1.10.8"),
        Rec("FileFormat", "mbbo", "HDF5", rbv=True, enum=("HDF5", "Invalid")),
        Rec("ReadFile", "busy", "Done", rbv=True, enum=("Done", "Read")),
        Rec("DeleteDriverFile", "bo", "No", rbv=True, enum=NO_YES),
        Rec("FreeCapture", "bo", "Done", enum=("Done", "Free")),
        Rec("CreateDirectory", "longout", 0, rbv=True),
        Rec("TempSuffix", "stringout", "", rbv=True),
        char_waveform("XMLFileName", rbv=True, length=2048),
        char_waveform("XMLErrorMsg_RBV"),
        Rec("XMLValid_RBV", "bi", "No", enum=NO_YES),
        Rec("Compression", "mbbo", "None", rbv=True,
            enum=("None", "N-bit", "szip", "zlib", "Blosc", "BSLZ4", "LZ4", "JPEG")),
        Rec("ZLevel", "longout", 6, rbv=True),
        Rec("SZipNumPixels", "longout", 16, rbv=True),
        Rec("NumDataBits", "longout", 0, rbv=True),
        Rec("DataBitsOffset", "longout", 0, rbv=True),
        Rec("NumRowChunks", "longout", 0, rbv=True),
        Rec("NumColChunks", "longout", 0, rbv=True),
        Rec("NumFramesChunks", "longout", 0, rbv=True),
        Rec("ChunkSizeAuto", "bo", "Yes", rbv=True, enum=NO_YES),  # PINI, VAL=1
        Rec("NumFramesFlush", "longout", 0, rbv=True),
        Rec("BoundaryAlign", "longout", 0, rbv=True),
        Rec("BoundaryThreshold", "longout", 65536, rbv=True),
        Rec("NumExtraDims", "longout", 0, rbv=True),
        *(Rec(f"ExtraDimSize{x}", "longout", 1, rbv=True) for x in ("N", "X", "Y")),
        *(Rec(f"ExtraDimName{x}_RBV", "stringin", "") for x in ("N", "X", "Y")),
        Rec("StoreAttr", "bo", "Yes", rbv=True, enum=NO_YES),
        Rec("StorePerform", "bo", "No", rbv=True, enum=NO_YES),
        Rec("RunTime", "ai", 0.0),
        Rec("IOSpeed", "ai", 0.0),
        Rec("SWMRMode", "bo", "Off", rbv=True, enum=("Off", "On")),
        Rec("PositionMode", "bo", "Off", rbv=True, enum=("Off", "On")),
        Rec("FillValue", "ao", 0.0, rbv=True),
    ]


def _enum(name: str, labels: tuple[str, ...], value: str, record_type: str, *,
          read_only: bool = False) -> pvproperty:
    return make_property(name, record_type, value, labels, read_only=read_only)


class HDF5PluginGroup(PluginGroup):
    """`HDF1:` over one HDF5Writer."""

    base = SubGroup(records_group("HDF5Records", _hdf5_records()), prefix="")

    file_path = make_property("FilePath", "waveform", "")
    file_path_rbv = make_property("FilePath_RBV", "waveform", "", read_only=True)
    file_path_exists = _enum("FilePathExists_RBV", NO_YES, "No", "bi", read_only=True)
    file_name = make_property("FileName", "waveform", "")
    file_name_rbv = make_property("FileName_RBV", "waveform", "", read_only=True)
    file_template = make_property("FileTemplate", "waveform", "")
    file_template_rbv = make_property("FileTemplate_RBV", "waveform", "", read_only=True)
    full_file_name = make_property("FullFileName_RBV", "waveform", "", read_only=True,
                                   length=512)
    file_number = pvproperty(value=0, name="FileNumber", record="longout")
    file_number_rbv = pvproperty(value=0, name="FileNumber_RBV", record="longin",
                                 read_only=True)
    auto_increment = _enum("AutoIncrement", NO_YES, "No", "bo")
    auto_increment_rbv = _enum("AutoIncrement_RBV", NO_YES, "No", "bi", read_only=True)
    auto_save = _enum("AutoSave", NO_YES, "No", "bo")
    auto_save_rbv = _enum("AutoSave_RBV", NO_YES, "No", "bi", read_only=True)
    lazy_open = _enum("LazyOpen", NO_YES, "No", "bo")
    lazy_open_rbv = _enum("LazyOpen_RBV", NO_YES, "No", "bi", read_only=True)
    file_write_mode = _enum("FileWriteMode", WRITE_MODE_LABELS, "Single", "mbbo")
    file_write_mode_rbv = _enum("FileWriteMode_RBV", WRITE_MODE_LABELS, "Single", "mbbi",
                                read_only=True)
    num_capture = pvproperty(value=1, name="NumCapture", record="longout")
    num_capture_rbv = pvproperty(value=1, name="NumCapture_RBV", record="longin",
                                 read_only=True)
    num_captured = pvproperty(value=0, name="NumCaptured_RBV", record="longin",
                              read_only=True)
    capture = _enum("Capture", ("Done", "Capture"), "Done", "busy")
    capture_rbv = _enum("Capture_RBV", ("Done", "Capturing"), "Done", "bi",
                        read_only=True)
    write_file = _enum("WriteFile", ("Done", "Write"), "Done", "busy")
    write_file_rbv = _enum("WriteFile_RBV", ("Done", "Writing"), "Done", "bi",
                           read_only=True)
    # busy: the driver flushes the open file (SWMR) and puts it back to Done
    flush_now = _enum("FlushNow", ("Done", "Flush"), "Done", "busy")
    write_status = _enum("WriteStatus", ("Write OK", "Write error"), "Write OK", "bi",
                         read_only=True)
    write_message = make_property("WriteMessage", "waveform", "", read_only=True)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.writer = HDF5Writer()
        self._captured = asyncio.Event()
        self._captured.set()

    # --- settings ----------------------------------------------------------------------
    @file_path.putter
    async def file_path(self, instance, value):
        self.writer.file_path = value = text(value)
        await self.file_path_rbv.write(self.writer.file_path_rbv)
        await self.file_path_exists.write("Yes" if self.writer.path_exists else "No")
        return value

    @file_name.putter
    async def file_name(self, instance, value):
        self.writer.file_name = value = text(value)
        await self.file_name_rbv.write(value)
        return value

    @file_template.putter
    async def file_template(self, instance, value):
        self.writer.file_template = value = text(value)
        await self.file_template_rbv.write(value)
        return value

    @file_number.putter
    async def file_number(self, instance, value):
        self.writer.file_number = int(value)
        await self.file_number_rbv.write(int(value))
        return value

    @auto_increment.putter
    async def auto_increment(self, instance, value):
        self.writer.auto_increment = value == "Yes"
        await self.auto_increment_rbv.write(value)
        return value

    @auto_save.putter
    async def auto_save(self, instance, value):
        self.writer.auto_save = value == "Yes"
        await self.auto_save_rbv.write(value)
        return value

    @lazy_open.putter
    async def lazy_open(self, instance, value):
        self.writer.lazy_open = value == "Yes"
        await self.lazy_open_rbv.write(value)
        return value

    @file_write_mode.putter
    async def file_write_mode(self, instance, value):
        self.writer.write_mode = WriteMode(WRITE_MODE_LABELS.index(value))
        await self.file_write_mode_rbv.write(value)
        return value

    @num_capture.putter
    async def num_capture(self, instance, value):
        self.writer.num_capture = max(int(value), 0)
        await self.num_capture_rbv.write(self.writer.num_capture)
        return self.writer.num_capture

    # --- commands ----------------------------------------------------------------------
    @capture.putter
    async def capture(self, instance, value):
        if value == "Capture":
            if self.writer.capturing:
                return value
            started = self.writer.start_capture()
            await self._publish()
            if not started:
                return "Done"
            self._captured.clear()
            await self.capture_rbv.write("Capturing")
            # a busy record: the put-callback completes when the capture ends
            await instance.write("Capture", verify_value=False)
            await self._captured.wait()
            return "Done"
        was_capturing = self.writer.capturing
        self.writer.stop_capture(put=True)
        if was_capturing:
            await self._finish()
        else:
            await self._publish()
        return "Done"

    @write_file.putter
    async def write_file(self, instance, value):
        if value == "Write":
            await self.write_file_rbv.write("Writing")
            self.writer.write_file()
            await self._publish()
            await self.write_file_rbv.write("Done")
        return "Done"

    @flush_now.putter
    async def flush_now(self, instance, value):
        self.writer.flush()
        return "Done"

    async def on_frame(self, frame: ImageFrame) -> None:
        before = self.writer.array_counter
        ended = self.writer.on_frame(frame.data)
        await self.publish_array(frame, count=False)
        if self.writer.array_counter != before:
            await self.array_counter_rbv.write(self.writer.array_counter,
                                               timestamp=frame.delivered)
        await self._publish()
        if ended:
            await self._finish()

    async def _finish(self) -> None:
        await self._publish()
        await self.capture_rbv.write("Done")
        self._captured.set()

    async def _publish(self) -> None:
        writer = self.writer
        updates = ((self.full_file_name, writer.full_file_name),
                   (self.write_message, writer.write_message),
                   (self.write_status, "Write OK" if writer.write_ok else "Write error"),
                   (self.num_captured, writer.num_captured),
                   (self.file_number, writer.file_number),
                   (self.file_number_rbv, writer.file_number))
        for pv, value in updates:
            if pv.value != value:
                await pv.write(value)
