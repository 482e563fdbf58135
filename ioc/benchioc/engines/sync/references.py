"""Dark and flat fields, taken before a scan as tomoscan takes them.

Darks: the camera's shutter closed (ShutterControl), so a frame holds only the
detector's noise and offset. Flats: the shutter open and the sample out of the beam (a
configured motor moved to a configured position, then back), so a frame holds the beam
alone. A reduction subtracts the dark and divides by the flat. The scan file keeps them
in the same stack as the data frames, told apart by NXtomo's `image_key` (0 data,
1 flat, 2 dark).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ...facts.areadetector import ImageMode, TriggerMode
from .devices import SyncMotor
from .engines import ScanContext, ScanFailed

log = logging.getLogger(__name__)

IMAGE_KEY_DATA = 0
IMAGE_KEY_FLAT = 1
IMAGE_KEY_DARK = 2
ACQUIRE_MARGIN_S = 2.0


@dataclass
class References:
    """How many dark and flat frames the camera delivered, and where the scanned motor
    stood meanwhile (their position in the per-frame arrays)."""

    darks: int = 0
    flats: int = 0
    position: float = float("nan")

    @property
    def frames(self) -> int:
        return self.darks + self.flats

    def image_keys(self) -> list[int]:
        return [IMAGE_KEY_DARK] * self.darks + [IMAGE_KEY_FLAT] * self.flats


@dataclass(frozen=True)
class FlatMotion:
    """What takes the sample out of the beam for flats: a motor and where to put it."""

    motor: SyncMotor
    position: float


async def take_references(ctx: ScanContext, flat: FlatMotion | None) -> References:
    """Darks then flats with the scan's exposure and period, before its first point."""
    s = ctx.settings
    refs = References(position=ctx.motor.snapshot().position)
    if s.dark_frames > 0:
        await ctx.camera.set_shutter(False)
        try:
            refs.darks = await _acquire_series(ctx, s.dark_frames, "dark")
        finally:
            await ctx.camera.set_shutter(True)
    if s.flat_frames > 0:
        if flat is None:
            raise ScanFailed("FlatFrames needs a motor that takes the sample out of the "
                             "beam: set detector.flat_motor and flat_position in the config")
        refs.flats = await _flats(ctx, flat, s.flat_frames)
    return refs


async def _flats(ctx: ScanContext, flat: FlatMotion, count: int) -> int:
    back_to = flat.motor.snapshot().position
    await _move(ctx, flat.motor, flat.position, "out of the beam")
    got = await _acquire_series(ctx, count, "flat")
    # Only on success: after a failure or an abort the scan's cleanup stops every motion,
    # and the Message says where the flat motor was left.
    await _move(ctx, flat.motor, back_to, "back into the beam")
    return got


async def _move(ctx: ScanContext, motor: SyncMotor, target: float, why: str) -> None:
    try:
        await motor.move(target, ctx.move_timeout(target, motor=motor))
    except TimeoutError:
        raise ScanFailed(f"flat-field motor {motor.name} did not reach {target:g} "
                         f"({why}) in time") from None


async def _acquire_series(ctx: ScanContext, count: int, kind: str) -> int:
    s = ctx.settings
    await ctx.camera.configure(exposure=s.exposure, period=s.period,
                               image_mode=ImageMode.MULTIPLE, num_images=count,
                               trigger_mode=TriggerMode.INTERNAL)
    before = await ctx.camera.frame_counter()
    try:
        await ctx.camera.acquire(count * s.period * 2 + ACQUIRE_MARGIN_S)
    except TimeoutError:
        raise ScanFailed(f"camera {ctx.camera.prefix} did not finish {count} {kind} "
                         "frame(s)") from None
    got = await ctx.camera.frame_counter() - before
    if got < count:
        ctx.tally.missed_frames += count - got
    log.info("%d of %d %s frame(s) taken", got, count, kind)
    return max(got, 0)
