"""NeXus/HDF5 scan files that follow the facility's data policy.

One scan, one file: `<name>-YYYYMMDDTHHMMSS.h5` in the data directory, never overwriting
an existing file (a `-1`, `-2`... suffix is added instead). The file carries the metadata
the policy asks for (persistent identifier, proposal and experiment, embargo date,
program name and version, the bench configuration and the motor's fields at scan time)
and an NXdata group with the per-point arrays. It is written to a temporary file in the
same directory, fsynced and then hard-linked into place, so a reader or a crash sees a
whole file or none; a `.sha256` sidecar in `sha256sum` format is written beside it.
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

log = logging.getLogger(__name__)

PROGRAM_NAME = "bench-ioc"
SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9_-]+")
MAX_NAME_LENGTH = 64
MAX_SUFFIX = 999
PID_SCHEME = "urn:uuid:"


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
) -> Path:
    """Write one scan file atomically; return its path. Never replaces an existing file."""
    count = arrays.check()
    data_dir = _data_directory(directory)
    stem = file_stem(name, metadata.start_time)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{stem}.", suffix=".h5.tmp", dir=data_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with h5py.File(tmp, "w") as h5:
            _write_nexus(h5, metadata, arrays)
        _fsync_path(tmp)
        final = _link_unique(tmp, data_dir, stem)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    write_checksum(final)
    _fsync_path(data_dir)
    log.info("scan %s: %d points written to %s", metadata.scan_id, count, final)
    return final


def _data_directory(directory: str | os.PathLike) -> Path:
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


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def _write_nexus(h5: h5py.File, meta: ScanMetadata, arrays: ScanArrays) -> None:
    h5.attrs["default"] = "entry"
    h5.attrs["creator"] = PROGRAM_NAME
    h5.attrs["HDF5_Version"] = h5py.version.hdf5_version
    h5.attrs["file_time"] = _iso(meta.end_time)
    entry = _group(h5, "entry", "NXentry")
    entry.attrs["default"] = "data"
    _write_entry_fields(entry, meta)
    _write_policy(entry, meta)
    _write_instrument(entry, meta)
    _write_data(entry, arrays)
    if meta.camera_file:
        entry["camera_file"] = h5py.ExternalLink(meta.camera_file, "/")


def _write_entry_fields(entry: h5py.Group, meta: ScanMetadata) -> None:
    _text(entry, "title", meta.title or f"{meta.settings.get('mode', '')} scan".strip())
    _text(entry, "entry_identifier", meta.scan_id)
    _text(entry, "experiment_identifier", meta.proposal)
    _text(entry, "collection_identifier", meta.experiment)
    _text(entry, "start_time", _iso(meta.start_time))
    _text(entry, "end_time", _iso(meta.end_time))
    entry.create_dataset(
        "duration", data=(meta.end_time - meta.start_time).total_seconds()
    ).attrs["units"] = "s"
    program = _text(entry, "program_name", PROGRAM_NAME)
    program.attrs["version"] = meta.program_version
    _text(entry, "outcome", meta.outcome)
    _text(entry, "message", meta.message)
    entry.create_dataset("missed_frames", data=int(meta.missed_frames))
    scan = _group(entry, "scan_settings", "NXparameters")
    for key, value in meta.settings.items():
        _scalar(scan, key, value)


def _write_policy(entry: h5py.Group, meta: ScanMetadata) -> None:
    policy = _group(entry, "data_policy", "NXcollection")
    _text(policy, "persistent_identifier", meta.scan_id)
    _text(policy, "proposal", meta.proposal)
    _text(policy, "experiment", meta.experiment)
    _text(policy, "embargo_until", _iso(embargo_until(meta.start_time, meta.embargo_years)))
    policy.create_dataset("embargo_years", data=float(meta.embargo_years))
    _text(policy, "format", "NeXus/HDF5")


def _write_instrument(entry: h5py.Group, meta: ScanMetadata) -> None:
    instrument = _group(entry, "instrument", "NXinstrument")
    _text(instrument, "name", "motion test bench")
    _text(instrument, "bench_config", json.dumps(meta.bench_config, sort_keys=True))
    if meta.motor_name:
        motor = _group(instrument, f"motor_{safe_name(meta.motor_name)}", "NXpositioner")
        _text(motor, "name", meta.motor_name)
        fields = _group(motor, "record_fields", "NXcollection")
        for key, value in meta.motor_fields.items():
            _scalar(fields, key, value)
    detector = _group(instrument, "detector", "NXdetector")
    _text(detector, "pv_prefix", meta.camera_prefix)
    _text(detector, "file", meta.camera_file)
    trigger = _group(instrument, "trigger_box", "NXcollection")
    _text(trigger, "pv_prefix", meta.trigger_prefix)


def _write_data(entry: h5py.Group, arrays: ScanArrays) -> None:
    data = _group(entry, "data", "NXdata")
    data.attrs["signal"] = "frame_numbers"
    data.attrs["axes"] = "set_positions"
    data.attrs["set_positions_indices"] = 0
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


def _scalar(group: h5py.Group, key: str, value: Any) -> None:
    """Numbers stay numbers; anything else is stored as its text."""
    name = SAFE_NAME_RE.sub("_", str(key)) or "_"
    if isinstance(value, bool):
        group.create_dataset(name, data=np.bool_(value))
    elif isinstance(value, int | float | np.integer | np.floating):
        group.create_dataset(name, data=value)
    else:
        _text(group, name, str(value))
