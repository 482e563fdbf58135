"""Whether a homing's calibration still holds, told from the motor record alone.

A homing leaves its result in the record: the user offset OFF (SET changed it), the
direction DIR and the resolution MRES it was taken with, and the controller's position
(DRBV, dial). What is saved when a motor is homed, and each time it comes to rest while
the IOC watches it, is enough to tell later:
- OFF, DIR or MRES changed: someone recalibrated or reconfigured the axis;
- the dial position is not where the motor was last seen at rest: the controller lost
  its position (a reboot or power cycle reads 0 or whatever it starts at, and a motor
  record without autosave comes back with OFF=0 too), or something moved the axis while
  nobody watched. Either way the calibration cannot be confirmed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..motormodel import MotorStatus

DIR_NAMES = ("Pos", "Neg")


@dataclass(frozen=True)
class Calibration:
    off: float
    dir: int
    mres: float
    dial: float  # DRBV where the motor was last seen at rest

    @classmethod
    def of(cls, status: MotorStatus) -> Calibration:
        return cls(off=status.off, dir=status.dir, mres=status.mres, dial=status.drbv)

    def at_rest(self, dial: float) -> Calibration:
        return Calibration(self.off, self.dir, self.mres, dial)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Calibration | None:
        try:
            return cls(off=float(data["off"]), dir=int(data["dir"]),
                       mres=float(data["mres"]), dial=float(data["dial"]))
        except (TypeError, KeyError, ValueError):
            return None


def doubt(saved: Calibration | None, status: MotorStatus) -> str | None:
    """Why the saved calibration cannot be trusted for the motor as it is now, in
    words, or None when it still holds."""
    if saved is None:
        return "no calibration was saved with it (homed by an older version)"
    close = resolution(status)
    if status.dir != saved.dir:
        return (f"the direction changed since it was homed (DIR {_dir(saved.dir)} ->"
                f" {_dir(status.dir)})")
    if status.mres != saved.mres:
        return f"the resolution changed since it was homed (MRES {saved.mres:g} -> {status.mres:g})"
    if abs(status.off - saved.off) > close:
        return (f"the offset changed since it was homed (OFF {status.fmt(saved.off)} ->"
                f" {status.fmt(status.off)})")
    if abs(status.drbv - saved.dial) > close:
        return (f"the controller position changed while unobserved (dial"
                f" {status.fmt(saved.dial)} when last at rest, now {status.fmt(status.drbv)}):"
                f" controller position reset, or moved while the IOC was not watching")
    return None


def resolution(status: MotorStatus) -> float:
    """Positions closer than this are the same: ten motor steps, or the last digit the
    record shows (an encoder that jitters at rest must not look like a moved axis)."""
    return max(10 * abs(status.mres), 10.0 ** -max(status.prec, 0))


def _dir(value: int) -> str:
    return DIR_NAMES[value] if 0 <= value < len(DIR_NAMES) else str(value)
