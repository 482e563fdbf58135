"""`bench-data show`: a quick look at one scan, as a PNG and in words.

Four panels: the scan's signal against position (with frames: the summed intensity of
every data frame and, on a second panel, the spot's centroid column; without frames: the
frame numbers, the file's NXdata signal), the measured position against the set one
(as the difference), and the timing of the points. make_figure() returns the arrays it
plotted, so what the picture shows can be checked without looking at pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .frames import DARK, FLAT, data_frame_stats, open_frames
from .scanfile import ScanInfo, damaged, info_of, open_scan


@dataclass
class QuickLook:
    """What the figure plots, panel by panel (x, y arrays), and the scan it shows."""

    info: ScanInfo
    signal_label: str
    signal_x: np.ndarray  # positions of the signal (per data frame, or per point)
    signal: np.ndarray
    centroid_x: np.ndarray = field(default_factory=lambda: np.zeros(0))  # column, px
    centroid_y: np.ndarray = field(default_factory=lambda: np.zeros(0))  # row, px
    set_positions: np.ndarray = field(default_factory=lambda: np.zeros(0))
    positions: np.ndarray = field(default_factory=lambda: np.zeros(0))
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))  # s since the first point
    darks: int = 0
    flats: int = 0
    png: Path | None = None
    # what make_figure drew, read back from the figure's lines: panel -> [(x, y)...]
    plotted: dict[str, list[tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)


def load(path: Path) -> QuickLook:
    """Read what the quick look shows from a scan file (and its linked frames)."""
    with open_scan(path) as h5, damaged(path):
        info = info_of(path, h5)
        data = h5["entry/data"]
        set_positions = np.asarray(data["set_positions"][()], dtype=float)
        positions = np.asarray(data["positions"][()], dtype=float)
        stamps = np.asarray(data["timestamps"][()], dtype=float)
        times = stamps - stamps[0] if stamps.size else stamps
        frames = open_frames(h5, path)
        if frames is None:
            signal = np.asarray(data["frame_numbers"][()], dtype=float)
            return QuickLook(info, "frame number", set_positions, signal,
                             set_positions=set_positions, positions=positions, times=times)
        index, stats = data_frame_stats(frames)
        x = frames.positions[index]
        if np.all(np.isnan(x)) and len(index) == len(positions):
            x = positions
        return QuickLook(info, "summed intensity (counts above dark)"
                         if frames.indices(DARK).size else
                         "summed intensity (counts above median)",
                         x, stats.intensity, stats.x, stats.y,
                         set_positions, positions, times,
                         darks=int(frames.indices(DARK).size),
                         flats=int(frames.indices(FLAT).size))


def make_figure(look: QuickLook, out: Path) -> QuickLook:
    """Draw the quick look into `out` (PNG, Agg backend); return what was plotted."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    info = look.info
    unit = f" ({info.units})" if info.units else ""
    figure = Figure(figsize=(10, 7.5), layout="constrained")
    axes = figure.subplots(2, 2)
    figure.suptitle(f"{info.path.name}: {info.mode} scan of motor {info.motor}, "
                    f"{info.outcome}\n{info.pid}", fontsize=10)

    ax = axes[0, 0]
    ax.plot(look.signal_x, look.signal, "o", markersize=4)
    ax.set_xlabel(f"position{unit}")
    ax.set_ylabel(look.signal_label)
    if look.signal.size and np.nanmin(look.signal) > 0:
        ax.set_ylim(bottom=0)  # from zero: a steady beam looks steady, not noisy
    ax.set_title("signal against position", fontsize=10)

    ax = axes[0, 1]
    if look.centroid_x.size:
        ax.plot(look.signal_x, look.centroid_x, "o", markersize=4, label="column")
        ax.plot(look.signal_x, look.centroid_y, "s", markersize=3, label="row")
        ax.set_ylabel("spot centroid (px)")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no frames in this scan", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel(f"position{unit}")
    ax.set_title("spot centroid per data frame", fontsize=10)

    ax = axes[1, 0]
    ax.plot(look.set_positions, look.positions - look.set_positions, "o-")
    ax.axhline(0.0, color="grey", linewidth=0.8, label="_zero")
    ax.set_xlabel(f"set position{unit}")
    ax.set_ylabel(f"measured - set{unit}")
    ax.set_title("measured against set position", fontsize=10)

    ax = axes[1, 1]
    if look.times.size > 1:
        ax.plot(np.arange(1, look.times.size), np.diff(look.times), "o-")
    ax.set_xlabel("point")
    ax.set_ylabel("time since previous point (s)")
    ax.set_title("timing", fontsize=10)

    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    look.png = out
    look.plotted = {
        ax.get_title(): [(np.asarray(line.get_xdata(), dtype=float),
                          np.asarray(line.get_ydata(), dtype=float))
                         for line in ax.get_lines() if line.get_label() != "_zero"]
        for ax in axes.flat}
    return look


def _span(values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return "none"
    return f"{finite.min():.4g} to {finite.max():.4g}"


def summary(look: QuickLook) -> list[str]:
    """The quick look in words, a few lines."""
    info = look.info
    unit = f" {info.units}" if info.units else ""
    when = info.start.strftime("%Y-%m-%d %H:%M:%S") if info.start else "at an unknown time"
    lines = [f"{info.path.name}: {info.mode} scan of motor {info.motor}, {when}, "
             f"{info.outcome}; PID {info.pid}"]
    settings = info.settings
    asked = (f"asked {settings.get('start', '?')} to {settings.get('end', '?')}, "
             f"{settings.get('num_points', '?')} points")
    if info.outcome != "Done" and info.message:
        lines.append(f"{info.outcome}: {info.message}")
    lines.append(f"points: {info.points} from {_span(look.set_positions)}{unit} ({asked})"
                 if info.points else f"points: none ({asked})")
    if look.positions.size:
        error = np.abs(look.positions - look.set_positions)
        lines.append(f"measured positions: within {np.nanmax(error):.3g}{unit} of the set "
                     f"positions (mean {np.nanmean(error):.3g}{unit})")
    if look.times.size > 1:
        gaps = np.diff(look.times)
        lines.append(f"timing: {look.times[-1]:.3g} s from first to last point, "
                     f"{gaps.mean():.3g} s between points ({gaps.min():.3g} to "
                     f"{gaps.max():.3g} s)")
    if look.centroid_x.size:
        spot = (f"spot column {_span(look.centroid_x)} px, row {_span(look.centroid_y)} px"
                if np.isfinite(look.centroid_x).any() else "no spot above the background")
        lines.append(f"frames: {look.signal.size} data frames, {look.darks} dark, "
                     f"{look.flats} flat, {info.missed_frames} missed; intensity "
                     f"{_span(look.signal)}; {spot}")
        ok = np.isfinite(look.centroid_x) & np.isfinite(look.signal_x)
        if ok.sum() >= 2 and np.ptp(look.signal_x[ok]) > 0:
            slope = np.polyfit(look.signal_x[ok], look.centroid_x[ok], 1)[0]
            lines.append(f"the spot moves {slope:.4g} px per{unit or ' unit'} of motor "
                         f"{info.motor}")
    else:
        lines.append(f"no frames: signal is the frame number ({info.missed_frames} missed)")
    if look.png is not None:
        lines.append(f"quick look written to {look.png}")
    return lines


def quick_look(path: Path, out: Path) -> QuickLook:
    return make_figure(load(path), out)

