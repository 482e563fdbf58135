"""`bench-data reduce`: a derived NeXus file beside a raw scan file.

The raw scan file and its frames are only read. The derived file `<stem>-reduced.h5`
(`-reduced-1.h5`... when taken: never overwritten) holds:

- /entry/frames (NXdata): the data frames (image_key 0), corrected: minus the mean dark
  when the scan took darks, divided by (mean flat - mean dark) when it took flats. Pixels
  where that denominator is at most FLAT_FLOOR of its largest value or NOISE_FLOOR times
  the darks' read noise (no light in the flat: a division there would only amplify
  noise, or divide by zero) are set to 0 and marked in `flat_mask`. With the frame
  positions, summed intensity and spot centroid of every frame.
- /entry/data (NXdata, the default): per point, the mean intensity and centroid of its
  frames against the measured position.
- /entry/reduction (NXprocess): provenance: the raw file's name, PID and sha256, the
  program and its version, what was done.
- the raw file's data policy (the embargo carries over), sample and user.

It is written to a temporary file, then hard-linked into place, and gets its own
`.sha256` sidecar.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ... import __version__
from ...data import nexus
from .frames import CHUNK, DARK, DATA, FLAT, Frames, open_frames, spot_stats
from .scanfile import DERIVED_ROLE, BenchDataError, damaged, info_of, open_scan, text

PROGRAM = "bench-data"
FLAT_FLOOR = 1e-3  # of the flat's brightest pixel (above the dark)
NOISE_FLOOR = 10.0  # times the dark noise


@dataclass
class Reduced:
    path: Path
    raw_pid: str
    data_frames: int
    darks: int
    flats: int
    points: int
    masked_pixels: int
    intensity: np.ndarray  # per point
    centroid_x: np.ndarray
    centroid_y: np.ndarray


def derived_name(raw: Path, suffix: int) -> Path:
    tail = "-reduced.h5" if suffix == 0 else f"-reduced-{suffix}.h5"
    return raw.with_name(raw.stem + tail)


def reduce_scan(raw: Path) -> Reduced:
    raw_sha = nexus.sha256_of(raw)
    with open_scan(raw) as h5, damaged(raw):
        info = info_of(raw, h5)
        frames = open_frames(h5, raw)
        if frames is None:
            raise BenchDataError(f"{raw}: the scan has no frames to reduce (it links no "
                                 "frames file)")
        if frames.indices(DATA).size == 0:
            raise BenchDataError(f"{raw}: the scan has no data frames (image_key 0)")
        fd, tmp_name = tempfile.mkstemp(prefix=f".{raw.stem}-reduced.", suffix=".h5.tmp",
                                        dir=raw.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            with h5py.File(tmp, "w") as out:
                reduced = _write(out, h5, raw, raw_sha, info.settings, frames)
            os.chmod(tmp, stat.S_IMODE(raw.stat().st_mode))
            final = _link_free(tmp, raw)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    os.chmod(nexus.write_checksum(final), stat.S_IMODE(raw.stat().st_mode))
    reduced.path = final
    return reduced


def _link_free(tmp: Path, raw: Path) -> Path:
    for suffix in range(nexus.MAX_SUFFIX + 1):
        candidate = derived_name(raw, suffix)
        try:
            os.link(tmp, candidate)
        except FileExistsError:
            continue
        return candidate
    raise BenchDataError(f"{nexus.MAX_SUFFIX + 1} derived files of {raw.name} already exist")


def dark_noise(frames: Frames) -> float:
    """The read noise of one pixel (counts, one sigma), from the darks: the spread of a
    pixel from dark to dark with two or more, the spread over the one dark's pixels
    (median absolute deviation) with one; 0 without darks."""
    index = frames.indices(DARK)
    if index.size == 0:
        return 0.0
    darks = frames.dataset[index].astype(np.float64)
    if index.size >= 2:
        return float(np.mean(np.std(darks, axis=0, ddof=1)))
    return float(1.4826 * np.median(np.abs(darks[0] - np.median(darks[0]))))


def _corrections(frames: Frames) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
    """The mean dark, 1/(mean flat - mean dark) (0 where masked) and the mask: pixels
    where the flat has no light worth dividing by, that is (mean flat - mean dark) at
    most FLAT_FLOOR of its largest value or NOISE_FLOOR times the dark noise."""
    dark = frames.mean_of(DARK)
    flat = frames.mean_of(FLAT)
    shape = frames.dataset.shape[1:]
    if flat is None:
        return dark, None, np.zeros(shape, dtype=bool)
    denominator = flat - dark if dark is not None else flat
    floor = max(FLAT_FLOOR * max(float(denominator.max()), 0.0),
                NOISE_FLOOR * dark_noise(frames))
    mask = ~(denominator > floor) if floor > 0 else ~(denominator > 0)
    gain = np.zeros(shape, dtype=np.float64)
    np.divide(1.0, denominator, out=gain, where=~mask)
    return dark, gain, mask


def _group(parent: h5py.Group, name: str, nx_class: str) -> h5py.Group:
    group = parent.create_group(name)
    group.attrs["NX_class"] = nx_class
    return group


def _text(group: h5py.Group, name: str, value: str) -> None:
    group.create_dataset(name, data=value, dtype=h5py.string_dtype())


def _write(out: h5py.File, h5: h5py.File, raw: Path, raw_sha: str, settings: dict,
           frames: Frames) -> Reduced:
    raw_entry = h5["entry"]
    units = str(raw_entry["data/positions"].attrs.get("units", ""))
    index = frames.indices(DATA)
    dark, gain, mask = _corrections(frames)
    now = dt.datetime.now().astimezone()

    out.attrs["default"] = "entry"
    out.attrs["creator"] = PROGRAM
    out.attrs["derived_by"] = DERIVED_ROLE
    out.attrs["file_time"] = now.isoformat(timespec="milliseconds")
    entry = _group(out, "entry", "NXentry")
    entry.attrs["default"] = "data"
    _text(entry, "title", f"reduced: {text(raw_entry, 'title')}")
    _text(entry, "entry_identifier", nexus.new_scan_id())
    for name in ("experiment_identifier", "collection_identifier", "start_time",
                 "end_time"):
        _text(entry, name, text(raw_entry, name))
    _text(entry, "program_name", PROGRAM)
    entry["program_name"].attrs["version"] = __version__
    for name in ("data_policy", "sample", "user", "scan_settings"):
        if name in raw_entry:
            h5.copy(raw_entry[name], entry, name)

    process = _group(entry, "reduction", "NXprocess")
    _text(process, "program", f"{PROGRAM} reduce")
    _text(process, "version", __version__)
    _text(process, "date", now.isoformat(timespec="milliseconds"))
    _text(process, "raw_file", raw.name)
    _text(process, "raw_pid", text(raw_entry, "entry_identifier"))
    _text(process, "raw_sha256", raw_sha)
    _text(process, "frames_file", frames.file)
    process.create_dataset("dark_frames", data=int(frames.indices(DARK).size))
    process.create_dataset("flat_frames", data=int(frames.indices(FLAT).size))
    process.create_dataset("flat_floor", data=FLAT_FLOOR)
    process.create_dataset("noise_floor", data=NOISE_FLOOR)
    steps = ["data frames (image_key 0) as float32"]
    if dark is not None:
        steps.append("minus the mean dark frame (image_key 2)")
    if gain is not None:
        steps.append("divided by the mean flat (image_key 1)"
                     + (" minus the mean dark" if dark is not None else "")
                     + f"; pixels where that is at most {FLAT_FLOOR:g} of its maximum or "
                     f"{NOISE_FLOOR:g} times the dark noise are 0 (flat_mask)")
    steps.append("intensity: sum of the corrected frame"
                 + ("" if dark is not None else " above its median")
                 + "; centroid: intensity-weighted column (x) and row (y), pixels")
    _text(process, "note", "; ".join(steps))

    height, width = frames.dataset.shape[1:]
    group = _group(entry, "frames", "NXdata")
    corrected = group.create_dataset("data", shape=(index.size, height, width),
                                     dtype=np.float32,
                                     chunks=(1, height, width), compression="gzip")
    intensity, cx, cy = (np.empty(index.size) for _ in range(3))
    background = None if dark is None else np.zeros((height, width))
    for start in range(0, index.size, CHUNK):
        chunk = index[start:start + CHUNK]
        stack = frames.dataset[chunk].astype(np.float64)
        if dark is not None:
            stack -= dark[None]
        if gain is not None:
            stack *= gain[None]
        corrected[start:start + chunk.size] = stack.astype(np.float32)
        stats = spot_stats(stack, background)
        intensity[start:start + chunk.size] = stats.intensity
        cx[start:start + chunk.size] = stats.x
        cy[start:start + chunk.size] = stats.y
    positions = frames.positions[index]
    group.create_dataset("frame_positions", data=positions).attrs["units"] = units
    group.create_dataset("intensity", data=intensity)
    group.create_dataset("centroid_x", data=cx).attrs["units"] = "pixel"
    group.create_dataset("centroid_y", data=cy).attrs["units"] = "pixel"
    group.create_dataset("flat_mask", data=mask.astype(np.uint8))
    group.attrs["signal"] = "data"
    group.attrs["axes"] = np.array(["frame_positions", ".", "."], dtype=h5py.string_dtype())
    group.attrs["frame_positions_indices"] = 0

    point_positions = np.asarray(raw_entry["data/positions"][()], dtype=float)
    per_point = int(settings.get("frames_per_point", 1) or 1)
    points = point_positions.size
    if index.size == points * per_point:
        p_int, p_x, p_y = (a.reshape(points, per_point).mean(axis=1)
                           for a in (intensity, cx, cy))
    else:  # missed frames: a frame cannot be tied to its point with certainty
        p_int, p_x, p_y = (np.full(points, np.nan) for _ in range(3))
        _text(process, "warning", f"{index.size} data frames for {points} points x "
              f"{per_point} frames: per-point values left NaN")
    data = _group(entry, "data", "NXdata")
    data.create_dataset("positions", data=point_positions).attrs["units"] = units
    data.create_dataset("set_positions",
                        data=raw_entry["data/set_positions"][()]).attrs["units"] = units
    data.create_dataset("intensity", data=p_int)
    data.create_dataset("centroid_x", data=p_x).attrs["units"] = "pixel"
    data.create_dataset("centroid_y", data=p_y).attrs["units"] = "pixel"
    data.attrs["signal"] = "intensity"
    data.attrs["axes"] = "positions"
    data.attrs["positions_indices"] = 0
    data.attrs["auxiliary_signals"] = np.array(["centroid_x", "centroid_y"],
                                               dtype=h5py.string_dtype())
    return Reduced(Path(), text(raw_entry, "entry_identifier"), int(index.size),
                   int(frames.indices(DARK).size), int(frames.indices(FLAT).size),
                   points, int(mask.sum()) if gain is not None else 0, p_int, p_x, p_y)
