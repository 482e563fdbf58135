"""Reading scan files back: what one says about itself, which files in a folder are
scans, and finding a scan by its persistent identifier.

A folder holds scan files (`<name>-<time>.h5`, definition NXbench_scan), the camera's
frames files they link (`<stem>-frames.h5`, `-frames-1.h5`...), derived files written by
`bench-data reduce` (`<stem>-reduced.h5`), `.sha256` sidecars and, after a crash of the
writer, hidden temporary files. Only scan files are scans.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from ...data import nexus

FRAMES_RE = re.compile(r"-frames(-\d+)?\.h5$")
DERIVED_RE = re.compile(r"-reduced(-\d+)?\.h5$")
DERIVED_ROLE = "bench-data reduce"  # root attribute `derived_by` of a derived file
SIDECAR_SUFFIX = ".sha256"
PROGRESS_MIN_FILES = 20  # fewer files than this: no progress bar, it would only flicker


class BenchDataError(Exception):
    """A user error: the text says what, in one line (exit code 2)."""


class NotAScanFile(BenchDataError):
    pass


# What h5py raises on a damaged file: OSError mostly, RuntimeError from a corrupt heap,
# KeyError/ValueError/TypeError from objects that are not what they should be.
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError)


@contextlib.contextmanager
def damaged(path: Path) -> Iterator[None]:
    """Reading `path`: a damaged file becomes a one-line NotAScanFile."""
    try:
        yield
    except BenchDataError:
        raise
    except H5_ERRORS as error:
        raise NotAScanFile(f"{path}: cannot be read, the file is damaged ({error})") \
            from None


def progress(items: Iterable, total: int, what: str) -> Iterable:
    """A tqdm bar on stderr over many files; none when stderr is not a terminal."""
    quiet = total < PROGRESS_MIN_FILES or not sys.stderr.isatty()
    return tqdm(items, total=total, desc=what, unit="file", file=sys.stderr,
                disable=quiet, leave=False)


def is_frames_name(path: Path) -> bool:
    return bool(FRAMES_RE.search(path.name))


def is_derived_name(path: Path) -> bool:
    return bool(DERIVED_RE.search(path.name))


def h5_files(directory: Path) -> list[Path]:
    """The visible .h5 files of a folder, in name order (hidden ones are temporaries)."""
    if not directory.is_dir():
        raise BenchDataError(f"{directory}: no such data folder")
    return sorted(p for p in directory.glob("*.h5") if not p.name.startswith("."))


def scan_candidates(directory: Path) -> list[Path]:
    """The files of a folder that may be scans: not frames, not derived files."""
    return [p for p in h5_files(directory)
            if not is_frames_name(p) and not is_derived_name(p)]


def text(group: h5py.Group, name: str, default: str = "") -> str:
    item = group.get(name)
    if not isinstance(item, h5py.Dataset):
        return default
    value = item[()]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return str(value.tolist())
    return str(value)


def number(group: h5py.Group, name: str, default: float = float("nan")) -> float:
    item = group.get(name)
    if not isinstance(item, h5py.Dataset) or item.shape != ():
        return default
    try:
        return float(item[()])
    except (TypeError, ValueError):
        return default


def parse_time(value: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.astimezone()


@dataclass
class ScanInfo:
    """What `bench-data list` shows of one scan file, from its own metadata."""

    path: Path
    pid: str
    start: dt.datetime | None
    end: dt.datetime | None
    mode: str
    motor: str
    units: str
    points: int
    data_frames: int  # frames with image_key 0 (every frame when there is no key)
    dark_frames: int
    flat_frames: int
    missed_frames: int
    outcome: str
    message: str
    proposal: str
    experiment: str
    sample: str
    user: str
    bench: str
    embargo_until: dt.datetime | None
    frames_file: str
    program: str
    version: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return self.data_frames + self.dark_frames + self.flat_frames

    def under_embargo(self, at: dt.datetime) -> bool:
        return self.embargo_until is not None and self.embargo_until > at

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        out["frames"] = self.frames
        for key in ("start", "end", "embargo_until"):
            moment = getattr(self, key)
            out[key] = moment.isoformat() if moment else None
        return out


def _is_scan(h5: h5py.File) -> bool:
    entry = h5.get("entry")
    return isinstance(entry, h5py.Group) and text(entry, "definition") == nexus.DEFINITION


def open_scan(path: Path) -> h5py.File:
    """The scan file opened for reading, or NotAScanFile saying why not."""
    if not path.exists():
        raise BenchDataError(f"{path}: no such file")
    if path.is_dir():
        raise NotAScanFile(f"{path}: is a folder, not a scan file")
    try:
        h5 = h5py.File(path, "r")
    except H5_ERRORS:
        raise NotAScanFile(f"{path}: not a readable HDF5 file (truncated or not HDF5)") \
            from None
    try:
        is_scan = _is_scan(h5)
    except H5_ERRORS as error:
        h5.close()
        raise NotAScanFile(f"{path}: cannot be read, the file is damaged ({error})") \
            from None
    if not is_scan:
        h5.close()
        kind = ("the camera's frames file of a scan" if is_frames_name(path)
                else "a file derived by bench-data reduce" if is_derived_name(path)
                else f"a NeXus/HDF5 file without the {nexus.DEFINITION} definition")
        raise NotAScanFile(f"{path}: not a scan file ({kind})")
    return h5


def read_info(path: Path) -> ScanInfo:
    with open_scan(path) as h5:
        return info_of(path, h5)


def _frame_counts(entry: h5py.Group) -> tuple[int, int, int]:
    data = entry["data"]
    if "image_key" in data:
        keys = np.asarray(data["image_key"][()])
        return (int(np.sum(keys == 0)), int(np.sum(keys == 2)), int(np.sum(keys == 1)))
    if data.get("data", getlink=True) is not None:
        try:
            return int(data["data"].shape[0]), 0, 0
        except H5_ERRORS:  # the frames file is gone: verify says so
            return 0, 0, 0
    return 0, 0, 0


def info_of(path: Path, h5: h5py.File) -> ScanInfo:
    try:
        entry = h5["entry"]
        data = entry["data"]
        policy = entry.get("data_policy") or {}
        settings_group = entry.get("scan_settings") or {}
        settings = {key: (text(settings_group, key) if settings_group[key].dtype.kind
                          in "OSU" else settings_group[key][()].item())
                    for key in settings_group}
        positions = data["positions"]
        instrument = entry.get("instrument") or {}
        detector = instrument.get("detector") if instrument else None
        program = entry.get("program_name")
        version = program.attrs.get("version", "") if program is not None else ""
        data_n, dark_n, flat_n = _frame_counts(entry)
        return ScanInfo(
            path=path,
            pid=text(entry, "entry_identifier"),
            start=parse_time(text(entry, "start_time")),
            end=parse_time(text(entry, "end_time")),
            mode=str(settings.get("mode", "")),
            motor=str(settings.get("motor", "")),
            units=str(positions.attrs.get("units", "")),
            points=int(positions.shape[0]),
            data_frames=data_n, dark_frames=dark_n, flat_frames=flat_n,
            missed_frames=int(number(entry, "missed_frames", 0)),
            outcome=text(entry, "outcome"),
            message=text(entry, "message"),
            proposal=text(policy, "proposal") if policy else "",
            experiment=text(policy, "experiment") if policy else "",
            sample=text(entry["sample"], "name") if "sample" in entry else "",
            user=text(entry["user"], "name") if "user" in entry else "",
            bench=text(instrument, "name") if instrument else "",
            embargo_until=parse_time(text(policy, "embargo_until")) if policy else None,
            frames_file=text(detector, "file") if detector is not None else "",
            program=text(entry, "program_name"),
            version=version.decode() if isinstance(version, bytes) else str(version),
            settings=settings,
        )
    except H5_ERRORS as error:
        raise NotAScanFile(f"{path}: a scan file with a broken layout ({error})") from None


def iter_infos(directory: Path, *, problems: list[str] | None = None
               ) -> Iterator[ScanInfo]:
    """Every scan in a folder; files that are not scans are skipped (and named in
    `problems`, when given)."""
    candidates = scan_candidates(directory)
    for path in progress(candidates, len(candidates), "reading"):
        try:
            yield read_info(path)
        except NotAScanFile as error:
            if problems is not None:
                problems.append(str(error))


def normal_pid(text_: str) -> str:
    text_ = text_.strip()
    return text_ if text_.startswith(nexus.PID_SCHEME) else nexus.PID_SCHEME + text_


def find_scan(target: str, directory: Path | None) -> Path:
    """A scan file named by its path or by its PID (`urn:uuid:...` or the bare UUID),
    searched for in the data folder."""
    as_path = Path(target)
    if as_path.exists() or target.endswith(".h5") or os.sep in target:
        if not as_path.exists():
            raise BenchDataError(f"{target}: no such file")
        return as_path
    if directory is None:
        raise BenchDataError(f"{target}: no such file, and no data folder to look for a "
                             "scan with that PID in (give --dir or --config)")
    pid = normal_pid(target)
    candidates = scan_candidates(directory)
    for path in progress(candidates, len(candidates), "looking for the PID"):
        try:
            with h5py.File(path, "r") as h5:
                entry = h5.get("entry")
                if isinstance(entry, h5py.Group) and text(entry, "entry_identifier") == pid:
                    return path
        except H5_ERRORS:
            continue
    raise BenchDataError(f"no scan with PID {pid} in {directory}")
