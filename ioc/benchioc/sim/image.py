"""The simulated camera's picture: a Gaussian spot on a dark, noisy sensor.

The spot's horizontal position follows one motor's user position (the scanned axis),
mapped linearly from the motor's soft range [lo_lim, hi_lim] onto the sensor's columns
(`SpotOptics`); it stays on the middle row. With the shutter closed the sensor sees no
light: only the dark level and its noise. Pixels are uint16, as `DataType` UInt16.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WIDTH = 64  # MaxSizeX_RBV
HEIGHT = 48  # MaxSizeY_RBV
DARK_LEVEL = 100.0  # counts
NOISE_SIGMA = 5.0  # counts, read noise
SPOT_PEAK = 3000.0  # counts above the dark level
SPOT_SIGMA_PX = 3.0
EDGE_PX = 4.0  # the ends of the motor's range sit this far inside the sensor


@dataclass(frozen=True)
class SpotOptics:
    """Where the spot of a motor position falls: lo_lim -> column EDGE_PX, hi_lim ->
    column width - 1 - EDGE_PX (outside the range the spot leaves the sensor)."""

    lo: float
    hi: float
    width: int = WIDTH
    height: int = HEIGHT

    def column(self, position: float) -> float:
        span = self.hi - self.lo
        fraction = (position - self.lo) / span if span else 0.5
        return EDGE_PX + fraction * (self.width - 1 - 2 * EDGE_PX)

    def row(self) -> float:
        return (self.height - 1) / 2


def render(optics: SpotOptics, position: float | None, rng: np.random.Generator, *,
           light: bool = True) -> np.ndarray:
    """One full-sensor frame (height x width, uint16): the spot at `position` (None: no
    spot) when `light`, dark level and noise always."""
    frame = np.full((optics.height, optics.width), DARK_LEVEL)
    if light and position is not None and np.isfinite(position):
        cols = np.arange(optics.width)[None, :]
        rows = np.arange(optics.height)[:, None]
        d2 = (cols - optics.column(position)) ** 2 + (rows - optics.row()) ** 2
        frame = frame + SPOT_PEAK * np.exp(-d2 / (2 * SPOT_SIGMA_PX ** 2))
    frame = frame + rng.normal(0.0, NOISE_SIGMA, frame.shape)
    return np.clip(np.rint(frame), 0, np.iinfo(np.uint16).max).astype(np.uint16)


def centroid_column(frame: np.ndarray) -> float:
    """The intensity-weighted column of a frame above its median (tests, checks)."""
    signal = np.clip(frame.astype(float) - float(np.median(frame)), 0, None)
    total = signal.sum()
    if total <= 0:
        return float("nan")
    return float((signal.sum(axis=0) * np.arange(frame.shape[1])).sum() / total)
