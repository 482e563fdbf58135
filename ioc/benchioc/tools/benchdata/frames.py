"""The camera's frames of a scan, read through the scan file's link, and what is measured
on them: summed intensity and the spot's centroid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .scanfile import H5_ERRORS, BenchDataError

DATA, FLAT, DARK = 0, 1, 2  # NXtomo image_key
CHUNK = 64  # frames read at a time: a long scan's frames need not fit in memory


@dataclass
class Frames:
    """A scan's frames dataset (still open) and what each frame is."""

    dataset: h5py.Dataset
    image_key: np.ndarray  # per frame (all 0 when the file has no key)
    positions: np.ndarray  # per frame (NaN when the file has none)
    file: str  # the frames file's name

    def indices(self, key: int) -> np.ndarray:
        return np.flatnonzero(self.image_key == key)

    def mean_of(self, key: int) -> np.ndarray | None:
        """The mean frame of one kind (darks, flats), float64; None if there is none."""
        index = self.indices(key)
        if index.size == 0:
            return None
        total = np.zeros(self.dataset.shape[1:], dtype=np.float64)
        for chunk in _chunks(index):
            total += self.dataset[chunk].astype(np.float64).sum(axis=0)
        return total / index.size


def _chunks(index: np.ndarray):
    for start in range(0, index.size, CHUNK):
        yield index[start:start + CHUNK]


def link_target(group: h5py.Group, name: str = "data") -> str | None:
    """The file an external link points to, or None when `name` is no external link."""
    link = group.get(name, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        return link.filename
    return None


def open_frames(h5: h5py.File, path: Path) -> Frames | None:
    """The frames a scan file links, or None when the scan has none; a BenchDataError
    when the link's file is missing or unreadable."""
    data = h5["entry/data"]
    target = link_target(data)
    if target is None:
        return None
    frames_path = path.parent / target
    if not frames_path.exists():
        raise BenchDataError(f"{path}: its frames file {target} is missing "
                             f"(looked for {frames_path})")
    try:
        dataset = data["data"]
    except H5_ERRORS:
        raise BenchDataError(f"{path}: its frames file {target} has no readable frames "
                             "at /entry/data/data") from None
    if dataset.ndim != 3:
        raise BenchDataError(f"{path}: frames in {target} have {dataset.ndim} dimensions, "
                             "not 3 (frames x height x width)")
    count = dataset.shape[0]
    key = data["image_key"][()] if "image_key" in data else np.zeros(count, np.int32)
    positions = (data["frame_positions"][()] if "frame_positions" in data
                 else np.full(count, np.nan))
    if len(key) != count or len(positions) != count:
        key, positions = np.zeros(count, np.int32), np.full(count, np.nan)
    return Frames(dataset, np.asarray(key), np.asarray(positions, dtype=float), target)


@dataclass
class SpotStats:
    """Per frame: summed intensity above the background and the spot's centroid
    (column x, row y, in pixels; NaN where there is no signal)."""

    intensity: np.ndarray
    x: np.ndarray
    y: np.ndarray


CENTROID_CUT = 0.1  # of a frame's peak: pixels below it (noise) do not pull the centroid


def spot_stats(frames: np.ndarray, background: np.ndarray | None = None) -> SpotStats:
    """frames: n x height x width. background: a frame to subtract (the mean dark); None:
    each frame's own median. Intensity: the sum of what is left (noise averages out);
    centroid: weighted by the pixels above CENTROID_CUT of the frame's peak."""
    stack = frames.astype(np.float64)
    if background is None:
        stack -= np.median(stack, axis=(1, 2), keepdims=True)
    else:
        stack -= background[None]
    total = stack.sum(axis=(1, 2))
    peak = stack.max(axis=(1, 2), keepdims=True)
    weights = np.where((stack > CENTROID_CUT * peak) & (peak > 0), stack, 0.0)
    mass = weights.sum(axis=(1, 2))
    rows = np.arange(stack.shape[1], dtype=np.float64)
    cols = np.arange(stack.shape[2], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.where(mass > 0, (weights.sum(axis=1) * cols).sum(axis=1) / mass, np.nan)
        y = np.where(mass > 0, (weights.sum(axis=2) * rows).sum(axis=1) / mass, np.nan)
    return SpotStats(total, x, y)


def data_frame_stats(frames: Frames) -> tuple[np.ndarray, SpotStats]:
    """Intensity and centroid of every data frame (image_key 0), over the mean dark
    when there are darks; and those frames' indices."""
    index = frames.indices(DATA)
    dark = frames.mean_of(DARK)
    parts = [spot_stats(frames.dataset[chunk], dark) for chunk in _chunks(index)]
    if not parts:
        empty = np.zeros(0)
        return index, SpotStats(empty, empty, empty)
    return index, SpotStats(*(np.concatenate([getattr(p, name) for p in parts])
                              for name in ("intensity", "x", "y")))
