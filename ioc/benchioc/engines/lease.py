"""Who moves a motor: one owner at a time, a homing or a scan.

A homing jogs and recalibrates a motor; a scan moves it point by point. Either one would
fight the other over VAL, JOGF and the soft limits, so each takes the motor's lease for
its whole run and a second owner is refused with the first one's name and how to free
it. Config edits of a leased motor are refused the same way. The rule lives here and
nowhere else; homing, scans and the record layer ask these leases.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Holder:
    """Who holds a motor, in the words a refusal uses."""

    description: str  # "a scan", "homing"
    doing: str  # "is being scanned", "is homing": said of the motor
    release: str  # how a user frees it: "abort the scan first (Sync:Abort)"


HOMING = Holder("homing", "is homing", "wait for it to end or abort it")


class MotorInUse(Exception):
    """The motor is held by another owner; the text names the holder and the way out."""

    def __init__(self, motor: str, holder: Holder) -> None:
        super().__init__(f"{motor} {holder.doing}; {holder.release}")
        self.motor = motor
        self.holder = holder


class MotorLeases:
    """The lease of every motor of the bench."""

    def __init__(self) -> None:
        self._holders: dict[str, Holder] = {}
        self._on_release: list[Callable[[], None]] = []

    def holder(self, motor: str) -> Holder | None:
        return self._holders.get(motor)

    def first_held(self, motors: Iterable[str]) -> tuple[str, Holder] | None:
        for motor in motors:
            if motor in self._holders:
                return motor, self._holders[motor]
        return None

    @property
    def idle(self) -> bool:
        """No motor is held: nothing the IOC started is moving."""
        return not self._holders

    def subscribe_release(self, callback: Callable[[], None]) -> None:
        """callback() after any lease is given back (e.g. to act once nothing moves)."""
        self._on_release.append(callback)

    def take(self, motor: str, holder: Holder) -> Lease:
        """Hold the motor until the lease is released (use it as a context manager);
        raises MotorInUse, at once, if another owner holds it."""
        current = self._holders.get(motor)
        if current is not None:
            raise MotorInUse(motor, current)
        self._holders[motor] = holder
        return Lease(self, motor)

    def _release(self, motor: str) -> None:
        del self._holders[motor]
        for callback in list(self._on_release):
            try:
                callback()
            except Exception:  # noqa: BLE001 - a listener must not keep a lease
                log.exception("lease release listener %r failed", callback)


class Lease:
    """One motor held by one owner; released once, at the end of its `with` block."""

    def __init__(self, leases: MotorLeases, motor: str) -> None:
        self._leases = leases
        self.motor = motor
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._leases._release(self.motor)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
