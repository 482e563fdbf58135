"""Plans for the bench devices, usable in a RunEngine as they are:

    RE(home_all_plan(bench, "hi"))
    RE(sync_scan_plan(bench, scan, ScanSettings(mode=ScanMode.FLY, motor="A", end=2)))

Each opens a run: homing runs record the motors' readings before and after; a scan run
has a "primary" stream with one event per point (from the IOC's Sync arrays) and a
"frames" stream declaring the scan's NeXus file as a StreamResource.
"""

from __future__ import annotations

from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import MsgGenerator

from ...engines.motormodel import Direction
from ...engines.sync.model import ScanMode, ScanSettings
from .devices import BenchHoming, MotorHoming, SyncScan

POINTS_STREAM = "primary"
FRAMES_STREAM = "frames"
# A run without dimension hints leaves BestEffortCallback guessing, and its guess outlives
# the run (the next scan's plot then looks for fields that are not there)
HOMING_HINTS = {"dimensions": [(["time"], "after")]}


def _direction(direction: Direction | str) -> str:
    return direction.value if isinstance(direction, Direction) else str(direction).lower()


def home_plan(motor: MotorHoming, direction: Direction | str = Direction.HI,
              md: dict[str, Any] | None = None) -> MsgGenerator[None]:
    """Home one motor: a run with its readings before and after. Fails (and the run
    ends "fail") with the IOC's Message when the homing does not end Homed."""
    towards = _direction(direction)

    @bpp.stage_decorator([motor])
    @bpp.run_decorator(md={"plan_name": "home_plan", "motor": motor.motor,
                           "direction": towards, "hints": HOMING_HINTS, **(md or {})})
    def inner() -> MsgGenerator[None]:
        yield from bps.trigger_and_read([motor], name="before")
        yield from bps.mv(motor, towards)
        yield from bps.trigger_and_read([motor], name="after")

    return (yield from inner())


def home_all_plan(bench: BenchHoming, direction: Direction | str = Direction.HI,
                  md: dict[str, Any] | None = None) -> MsgGenerator[None]:
    """Home every motor of the bench in parallel (HomeAllHi/Lo)."""
    towards = _direction(direction)

    @bpp.run_decorator(md={"plan_name": "home_all_plan", "direction": towards,
                           "bench_motors": list(bench.motors), "hints": HOMING_HINTS,
                           **(md or {})})
    def inner() -> MsgGenerator[None]:
        yield from bps.trigger_and_read([bench], name="before")
        yield from bps.mv(bench, towards)
        yield from bps.trigger_and_read([bench], name="after")

    return (yield from inner())


def sync_scan_plan(bench: BenchHoming, scan: SyncScan, settings: ScanSettings,
                   home_direction: Direction | str = Direction.HI,
                   md: dict[str, Any] | None = None) -> MsgGenerator[None]:
    """Home the scanned motor if the scan wants it homed and it is not, then run the
    Sync scan and emit one event per point and the scan's frames file."""
    motor = bench.motors[settings.motor]
    if settings.require_homed:
        homed = yield from bps.rd(motor.homed)
        if not homed:
            yield from home_plan(motor, home_direction)
    yield from fly_scan(scan, settings, md=md)


def fly_scan(scan: SyncScan, settings: ScanSettings,
             md: dict[str, Any] | None = None) -> MsgGenerator[None]:
    """The Sync scan alone: prepare (refused before the run opens if the IOC's preview
    says no), kickoff, complete, collect."""
    yield from bps.prepare(scan, settings, wait=True)
    meta = {"plan_name": "sync_scan_plan", "settings": settings.as_dict(),
            "scanned_motor": settings.motor, "num_points": settings.num_points,
            "scan_mode": ScanMode(settings.mode).label,
            # plotted (BestEffortCallback): measured against set position, per point
            "hints": {"dimensions": [([scan.set_position_key], POINTS_STREAM)]},
            **(md or {})}

    @bpp.run_decorator(md=meta)
    def inner() -> MsgGenerator[None]:
        yield from bps.declare_stream(scan, name=POINTS_STREAM, collect=True)
        yield from bps.declare_stream(scan.frames, name=FRAMES_STREAM, collect=True)
        yield from bps.kickoff(scan, wait=True)
        yield from bps.complete(scan, wait=True)
        yield from bps.collect(scan, name=POINTS_STREAM)
        yield from bps.collect(scan.frames, name=FRAMES_STREAM)

    return (yield from inner())
