"""NeXus/HDF5 scan files that follow the facility's data policy.

One scan, one file: `<name>-YYYYMMDDTHHMMSS.h5` in the data directory, never overwriting
an existing file (a `-1`, `-2`... suffix is added instead). The file carries the metadata
the policy asks for (persistent identifier, proposal and experiment, embargo date,
program name and version, the bench configuration and the motor's fields at scan time)
and an NXdata group with the per-point arrays. The camera's frames stay in the file its
HDF5 plugin wrote beside it (`<stem>-frames.h5`, `/entry/data/data`); the scan file
links them with a relative HDF5 external link, so the pair can be moved together, as
the NXdetector's `data` and the NXdata signal, with NXtomo's `image_key` and the
scanned motor's measured position for every frame. It is written to a temporary file
in the same directory, fsynced and then hard-linked into place, so a reader or a crash
sees a whole file or none; a `.sha256` sidecar in `sha256sum` format is written beside
it. Both get the mode the config names, whatever the process umask.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..config import fsync_path

log = logging.getLogger(__name__)

PROGRAM_NAME = "bench-ioc"
SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9_-]+")
MAX_NAME_LENGTH = 64
MAX_SUFFIX = 999
PID_SCHEME = "urn:uuid:"
DEFINITION = "NXbench_scan"
DEFINITION_FILE = Path(__file__).with_name("definitions") / f"{DEFINITION}.nxdl.xml"
FRAMES_DATASET = "/entry/data/data"  # where areaDetector's NDFileHDF5 puts the frames
DEFAULT_MODE = 0o644
# Scan settings that are times; start and end are in the motor's units.
SETTING_UNITS = {"exposure": "s", "period": "s", "settle_time": "s"}
POSITION_SETTINGS = ("start", "end")


class DataFileError(ValueError):
    """The scan file cannot be written as asked; the text says why."""


@dataclass
class ScanMetadata:
    """What the data policy asks a scan file to say about itself."""

    scan_id: str
    start_time: dt.datetime
    end_time: dt.datetime
    program_version: str
    proposal: str = ""
    experiment: str = ""
    sample: str = ""
    user: str = ""
    bench_name: str = ""
    embargo_years: float = 3.0
    title: str = ""
    outcome: str = "Done"
    settings: Mapping[str, Any] = field(default_factory=dict)
    bench_config: Mapping[str, Any] = field(default_factory=dict)
    motor_name: str = ""
    motor_fields: Mapping[str, Any] = field(default_factory=dict)
    camera_prefix: str = ""
    camera_file: str = ""
    trigger_prefix: str = ""
    missed_frames: int = 0
    message: str = ""


@dataclass
class ScanArrays:
    """Per-point results; all four arrays have the same length."""

    set_positions: Sequence[float]
    positions: Sequence[float]
    frame_numbers: Sequence[int]
    timestamps: Sequence[float]
    position_units: str = ""

    def check(self) -> int:
        lengths = {len(self.set_positions), len(self.positions),
                   len(self.frame_numbers), len(self.timestamps)}
        if len(lengths) != 1:
            raise DataFileError(
                f"scan arrays differ in length: set_positions {len(self.set_positions)}, "
                f"positions {len(self.positions)}, frame_numbers {len(self.frame_numbers)}, "
                f"timestamps {len(self.timestamps)}"
            )
        return lengths.pop()


@dataclass
class FrameArrays:
    """The camera's frames file and, for each frame in it, its NXtomo image key (0 data,
    1 flat, 2 dark) and the scanned motor's measured position."""

    path: str
    count: int
    image_key: Sequence[int]
    positions: Sequence[float]
    sha256: str = ""  # of the frames file as linked: its pixels are checked like the scan

    @property
    def complete(self) -> bool:
        """The per-frame arrays describe every frame in the file (a frame the camera
        wrote that the scan did not count, or the reverse, leaves them out)."""
        return len(self.image_key) == len(self.positions) == self.count


def new_scan_id() -> str:
    """A persistent identifier for one scan: a UUID URN, unique without a registry."""
    return f"{PID_SCHEME}{uuid.uuid4()}"


def embargo_until(start: dt.datetime, years: float) -> dt.datetime:
    """Start plus whole calendar years (29 February becomes 28 February); a fractional
    number of years counts 365.25 days each."""
    if years < 0:
        raise DataFileError(f"an embargo of {years:g} years is negative")
    if float(years).is_integer():
        target_year = start.year + int(years)
        try:
            return start.replace(year=target_year)
        except ValueError:  # 29 February in a non-leap year
            return start.replace(year=target_year, day=28)
    return start + dt.timedelta(days=365.25 * years)


def safe_name(name: str) -> str:
    """A file-name stem that cannot leave the data directory or hide as a dot file."""
    cleaned = SAFE_NAME_RE.sub("_", name).strip("_-")[:MAX_NAME_LENGTH]
    if not cleaned:
        raise DataFileError(
            f"scan name {name!r} has no usable characters: use A-Z a-z 0-9 _ -"
        )
    return cleaned


def file_stem(name: str, start: dt.datetime) -> str:
    return f"{safe_name(name)}-{start.strftime('%Y%m%dT%H%M%S')}"


def write_scan_file(
    directory: str | os.PathLike,
    name: str,
    metadata: ScanMetadata,
    arrays: ScanArrays,
    *,
    frames: FrameArrays | None = None,
    file_mode: int = DEFAULT_MODE,
) -> Path:
    """Write one scan file atomically; return its path. Never replaces an existing file.
    frames: the camera's frames file to link, with what each frame is."""
    count = arrays.check()
    data_dir = data_directory(directory)
    stem = file_stem(name, metadata.start_time)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{stem}.", suffix=".h5.tmp", dir=data_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with h5py.File(tmp, "w") as h5:
            _write_nexus(h5, metadata, arrays, _linkable(frames, data_dir))
        os.chmod(tmp, file_mode)  # mkstemp made it 0600
        fsync_path(tmp)
        final = _link_unique(tmp, data_dir, stem)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    os.chmod(write_checksum(final), file_mode)
    fsync_path(data_dir)
    log.info("scan %s: %d points written to %s", metadata.scan_id, count, final)
    return final


def data_directory(directory: str | os.PathLike) -> Path:
    """The data directory, created if needed, resolved; DataFileError if unusable."""
    data_dir = Path(directory)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataFileError(
            f"data directory {data_dir} cannot be created ({error.strerror})"
        ) from None
    if not os.access(data_dir, os.W_OK):
        raise DataFileError(f"data directory {data_dir} is not writable")
    return data_dir.resolve()


def _link_unique(tmp: Path, data_dir: Path, stem: str) -> Path:
    """Hard-link tmp to the first free name: os.link fails rather than overwrite."""
    for suffix in range(MAX_SUFFIX + 1):
        candidate = data_dir / (f"{stem}.h5" if suffix == 0 else f"{stem}-{suffix}.h5")
        if candidate.resolve().parent != data_dir:
            raise DataFileError(f"scan file {candidate} would leave the data directory")
        try:
            os.link(tmp, candidate)
        except FileExistsError:
            continue
        return candidate
    raise DataFileError(
        f"{MAX_SUFFIX + 1} files named {stem}*.h5 already exist in {data_dir}"
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksum(path: Path) -> Path:
    """`<file>.sha256` in sha256sum format, so `sha256sum -c` verifies the file."""
    sidecar = path.with_name(path.name + ".sha256")
    text = f"{sha256_of(path)}  {path.name}\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{sidecar.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, sidecar)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return sidecar


def verify_checksum(path: Path) -> bool:
    sidecar = path.with_name(path.name + ".sha256")
    expected = sidecar.read_text(encoding="ascii").split()[0]
    return expected == sha256_of(path)


# --- NeXus layout --------------------------------------------------------------------
def _iso(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.isoformat(timespec="milliseconds")


def _group(parent: h5py.Group, name: str, nx_class: str) -> h5py.Group:
    group = parent.create_group(name)
    group.attrs["NX_class"] = nx_class
    return group


def _text(group: h5py.Group, name: str, value: str) -> h5py.Dataset:
    return group.create_dataset(name, data=value, dtype=h5py.string_dtype())


def _linkable(frames: FrameArrays | None, data_dir: Path) -> FrameArrays | None:
    """The frames file as the scan file links it: by its name, relative to the scan
    file's folder (HDF5 looks for a relative external file there), so the pair can be
    moved together. A frames file elsewhere is left out, with a warning."""
    if frames is None or not frames.path:
        return None
    path = Path(frames.path)
    if path.parent.resolve() != data_dir:
        log.warning("frames file %s is not in the data directory %s: not linked",
                    path, data_dir)
        return None
    return FrameArrays(path.name, frames.count, frames.image_key, frames.positions,
                       sha256_of(path))


def _write_nexus(h5: h5py.File, meta: ScanMetadata, arrays: ScanArrays,
                 frames: FrameArrays | None = None) -> None:
    h5.attrs["default"] = "entry"
    h5.attrs["creator"] = PROGRAM_NAME
    h5.attrs["HDF5_Version"] = h5py.version.hdf5_version
    h5.attrs["file_time"] = _iso(meta.end_time)
    entry = _group(h5, "entry", "NXentry")
    entry.attrs["default"] = "data"
    _write_entry_fields(entry, meta, arrays.position_units)
    _write_policy(entry, meta)
    _write_people(entry, meta)
    _write_instrument(entry, meta, arrays, frames)
    _write_data(entry, arrays, frames)


def _write_entry_fields(entry: h5py.Group, meta: ScanMetadata, units: str) -> None:
    _text(entry, "title", meta.title or f"{meta.settings.get('mode', '')} scan".strip())
    # what the file promises to hold: data/definitions/NXbench_scan.nxdl.xml
    _text(entry, "definition", DEFINITION)
    _text(entry, "entry_identifier", meta.scan_id)
    _text(entry, "experiment_identifier", meta.proposal)
    _text(entry, "collection_identifier", meta.experiment)
    _text(entry, "start_time", _iso(meta.start_time))
    _text(entry, "end_time", _iso(meta.end_time))
    # NXentry's duration is an NX_INT of seconds; the times above are exact
    _number(entry, "duration", round((meta.end_time - meta.start_time).total_seconds()),
            "s")
    program = _text(entry, "program_name", PROGRAM_NAME)
    program.attrs["version"] = meta.program_version
    _text(entry, "outcome", meta.outcome)
    _text(entry, "message", meta.message)
    entry.create_dataset("missed_frames", data=int(meta.missed_frames))
    scan = _group(entry, "scan_settings", "NXparameters")
    for key, value in meta.settings.items():
        dataset = _scalar(scan, key, value)
        unit = units if key in POSITION_SETTINGS else SETTING_UNITS.get(key, "")
        if unit:
            dataset.attrs["units"] = unit


def _write_people(entry: h5py.Group, meta: ScanMetadata) -> None:
    sample = _group(entry, "sample", "NXsample")
    _text(sample, "name", meta.sample)
    if meta.user:
        user = _group(entry, "user", "NXuser")
        _text(user, "name", meta.user)


def _write_policy(entry: h5py.Group, meta: ScanMetadata) -> None:
    policy = _group(entry, "data_policy", "NXcollection")
    _text(policy, "persistent_identifier", meta.scan_id)
    _text(policy, "proposal", meta.proposal)
    _text(policy, "experiment", meta.experiment)
    _text(policy, "embargo_until", _iso(embargo_until(meta.start_time, meta.embargo_years)))
    policy.create_dataset("embargo_years", data=float(meta.embargo_years))
    _text(policy, "format", "NeXus/HDF5")


def _write_instrument(entry: h5py.Group, meta: ScanMetadata, arrays: ScanArrays,
                      frames: FrameArrays | None) -> None:
    instrument = _group(entry, "instrument", "NXinstrument")
    bench = f"motion test bench {meta.bench_name}".strip()
    _text(instrument, "name", bench)
    source = _group(instrument, "source", "NXsource")
    _text(source, "name", bench)
    _text(source, "type", "Synchrotron X-ray Source")
    _text(source, "probe", "x-ray")
    _text(instrument, "bench_config", json.dumps(meta.bench_config, sort_keys=True))
    if meta.motor_name:
        _write_positioner(instrument, meta, arrays)
    _write_detector(instrument, meta, frames)
    trigger = _group(instrument, "trigger_box", "NXcollection")
    _text(trigger, "pv_prefix", meta.trigger_prefix)


def _write_positioner(instrument: h5py.Group, meta: ScanMetadata,
                      arrays: ScanArrays) -> None:
    units = arrays.position_units
    motor = _group(instrument, f"motor_{safe_name(meta.motor_name)}", "NXpositioner")
    _text(motor, "name", meta.motor_name)
    _number(motor, "value", np.asarray(arrays.positions, dtype=np.float64), units)
    _number(motor, "target_value", np.asarray(arrays.set_positions, dtype=np.float64),
            units)
    fields = meta.motor_fields
    for name, field_name, unit in (("soft_limit_min", "LLM", units),
                                   ("soft_limit_max", "HLM", units),
                                   ("velocity", "VELO", f"{units}/s" if units else ""),
                                   ("acceleration_time", "ACCL", "s")):
        if isinstance(fields.get(field_name), int | float):
            _number(motor, name, float(fields[field_name]), unit)
    record = _group(motor, "record_fields", "NXcollection")
    for key, value in fields.items():
        _scalar(record, key, value)


def _write_detector(instrument: h5py.Group, meta: ScanMetadata,
                    frames: FrameArrays | None) -> None:
    detector = _group(instrument, "detector", "NXdetector")
    _text(detector, "pv_prefix", meta.camera_prefix)
    file = _text(detector, "file", frames.path if frames else "")
    if frames is not None:
        file.attrs["sha256"] = frames.sha256
    exposure = meta.settings.get("exposure")
    if isinstance(exposure, int | float):
        _number(detector, "count_time", float(exposure), "s")
    period = meta.settings.get("period")
    if isinstance(period, int | float):
        _number(detector, "frame_time", float(period), "s")
    if frames is not None:
        detector["data"] = h5py.ExternalLink(frames.path, FRAMES_DATASET)
        if frames.complete:
            detector.create_dataset("image_key", data=np.asarray(frames.image_key,
                                                                  dtype=np.int32))


def _write_data(entry: h5py.Group, arrays: ScanArrays, frames: FrameArrays | None) -> None:
    """The frames against the measured positions when the camera wrote them (and every
    frame is accounted for); else the frame numbers against the set positions. The
    per-point arrays are there in both cases."""
    data = _group(entry, "data", "NXdata")
    units = arrays.position_units
    for name, values, dtype in (
        ("set_positions", arrays.set_positions, np.float64),
        ("positions", arrays.positions, np.float64),
        ("frame_numbers", arrays.frame_numbers, np.int64),
        ("timestamps", arrays.timestamps, np.float64),
    ):
        dataset = data.create_dataset(name, data=np.asarray(values, dtype=dtype))
        if name.endswith("positions") and units:
            dataset.attrs["units"] = units
    data["timestamps"].attrs["units"] = "s"
    data["timestamps"].attrs["start"] = "1970-01-01T00:00:00Z"
    if frames is None:
        data.attrs["signal"] = "frame_numbers"
        data.attrs["axes"] = "set_positions"
        data.attrs["set_positions_indices"] = 0
        return
    data["data"] = h5py.ExternalLink(frames.path, FRAMES_DATASET)
    data.attrs["signal"] = "data"
    if not frames.complete:
        log.warning("frames file %s holds %d frames, the scan counted %d: frames linked "
                    "without positions", frames.path, frames.count, len(frames.image_key))
        return
    _number(data, "frame_positions", np.asarray(frames.positions, dtype=np.float64), units)
    data.create_dataset("image_key", data=np.asarray(frames.image_key, dtype=np.int32))
    data.attrs["axes"] = np.array(["frame_positions", ".", "."], dtype=h5py.string_dtype())
    data.attrs["frame_positions_indices"] = 0
    data.attrs["auxiliary_signals"] = np.array(["image_key"], dtype=h5py.string_dtype())


def _number(group: h5py.Group, name: str, value: Any, units: str) -> h5py.Dataset:
    dataset = group.create_dataset(name, data=value)
    if units:
        dataset.attrs["units"] = units
    return dataset


def _scalar(group: h5py.Group, key: str, value: Any) -> h5py.Dataset:
    """Numbers stay numbers; anything else is stored as its text."""
    name = SAFE_NAME_RE.sub("_", str(key)) or "_"
    if isinstance(value, bool):
        return group.create_dataset(name, data=np.bool_(value))
    if isinstance(value, int | float | np.integer | np.floating):
        return group.create_dataset(name, data=value)
    return _text(group, name, str(value))
