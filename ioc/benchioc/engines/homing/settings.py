"""What homing one motor needs to know, what it reports, and what it needs from a motor."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..motormodel import Direction, MotorError, MotorStatus

if TYPE_CHECKING:
    from ...config import BenchConfig


class HomingState(enum.IntEnum):
    """Homing state of one motor; the values are the mbbIn values of the State record."""

    NOT_HOMED = 0
    SEEKING = 1
    CALIBRATING = 2
    CENTERING = 3
    HOMED = 4
    ABORTED = 5
    FAILED = 6


class HomingMethod(enum.Enum):
    """How a motor is homed (config `motors.<name>.method`)."""

    LIMIT = "limit"  # two-speed homing onto the hard limit switch (the seed's)
    HOME_SWITCH = "home_switch"  # the controller's own routine: HOMF/HOMR at HVEL


# The motor record field that starts the controller's home routine in each direction.
HOME_FIELD = {Direction.HI: "HOMF", Direction.LO: "HOMR"}


class HomingError(MotorError):
    """Homing could not be done or failed; the message says why, in words and numbers."""


class HomingBusy(HomingError):
    """A homing was requested while one is running: refused, never queued."""


class HomingMotor(Protocol):
    """What the homing engine needs from a motor (user coordinates throughout)."""

    name: str

    @property
    def status(self) -> MotorStatus: ...

    async def wait_for(
        self, predicate: Callable[[MotorStatus], bool], timeout: float, what: str
    ) -> MotorStatus:
        """Return the first status (current or later) for which predicate holds.

        Raises MotorTimeout naming `what` on timeout, MotorDisconnected when the
        connection is (or goes) down before the predicate holds."""
        ...

    async def jog(self, direction: Direction) -> None: ...

    async def stop(self) -> None: ...

    async def sync(self) -> None: ...

    async def set_jog_speed(self, jvel: float) -> None: ...

    async def set_position(self, value: float) -> None: ...

    async def set_dial_limits(self, dllm: float, dhlm: float) -> None: ...

    async def set_user_limits(self, llm: float, hlm: float) -> None: ...

    async def move(self, value: float, timeout: float) -> None: ...


@runtime_checkable
class HomeSwitchMotor(HomingMotor, Protocol):
    """A HomingMotor that can also start the controller's own home routine: what the
    `home_switch` method needs. Its status must carry HVEL (MotorStatus.hvel) and MSTA
    (HOMED, bit 14; ATHM is MSTA bit 3)."""

    async def start_home(self, direction: Direction) -> None:
        """HOMF=1 (HI) or HOMR=1 (LO), without put-callback (like a jog: the engine
        follows the status; a put-callback to HOMF completes at DMOV=1, which a home
        that meets a limit switch first reaches before the controller is home)."""
        ...


@dataclass
class HomingSettings:
    """What homing one motor needs to know (config general.tolerance + motor + homing)."""

    lo_lim: float
    hi_lim: float
    center: float
    tolerance: float
    seek_timeout: float = 0  # 0: derived from the travel and JVEL
    settle_timeout: float = 10
    stall_time: float = 2.0
    move_timeout: float = 0  # 0: derived from the distance to center and VELO
    position_tolerance: float = 0  # 0: max(1e-3, 10**-PREC) in motor units
    stall_distance: float = 0  # 0: 5 % of what JVEL covers in stall_time
    creep_speed: float = 0  # 0: a tenth of VELO; the speed of the final approach
    backoff: float = 0  # 0: what the creep speed covers in half a second
    method: HomingMethod = HomingMethod.LIMIT
    home_position: float = 0.0  # home_switch: what the position reads on the home mark

    @classmethod
    def from_config(cls, config: BenchConfig, motor: str) -> HomingSettings:
        """The settings of one motor from the bench config (IOC and motion-box alike)."""
        entry, homing = config.motors[motor], config.homing
        return cls(
            lo_lim=entry.lo_lim, hi_lim=entry.hi_lim, center=entry.center,
            tolerance=config.tolerance, seek_timeout=homing.seek_timeout,
            settle_timeout=homing.settle_timeout, stall_time=homing.stall_time,
            move_timeout=homing.move_timeout, creep_speed=homing.creep_speed,
            backoff=homing.backoff, method=HomingMethod(entry.method),
            home_position=0.0 if entry.home_position is None else entry.home_position)

    def check(self, name: str) -> None:
        numbers = (self.lo_lim, self.hi_lim, self.center, self.tolerance)
        if not all(math.isfinite(x) for x in numbers):
            raise HomingError(f"{name}: limits, center and tolerance must be finite numbers")
        if not math.isfinite(self.home_position):
            raise HomingError(f"{name}: home_position ({self.home_position:g}) must be a"
                              f" finite number")
        if not self.lo_lim < self.hi_lim:
            raise HomingError(
                f"{name}: lo_lim ({self.lo_lim:g}) must be less than hi_lim ({self.hi_lim:g})"
            )
        if not self.lo_lim <= self.center <= self.hi_lim:
            raise HomingError(
                f"{name}: center ({self.center:g}) must lie between lo_lim ({self.lo_lim:g})"
                f" and hi_lim ({self.hi_lim:g})"
            )
        if self.tolerance < 0:
            raise HomingError(f"{name}: tolerance ({self.tolerance:g}) must not be negative")
        for field in ("seek_timeout", "move_timeout", "position_tolerance", "stall_distance",
                      "creep_speed", "backoff"):
            if getattr(self, field) < 0:
                raise HomingError(f"{name}: {field} ({getattr(self, field):g}) must be >= 0")
        for field in ("settle_timeout", "stall_time"):
            if not getattr(self, field) > 0:
                raise HomingError(f"{name}: {field} ({getattr(self, field):g} s) must be > 0")

    @property
    def travel(self) -> float:
        """Longest way between the two switches: the soft range plus both tolerances."""
        return self.hi_lim - self.lo_lim + 2 * self.tolerance

    def switch_position(self, direction: Direction) -> float:
        """The user position the switch is calibrated to."""
        if direction is Direction.HI:
            return self.hi_lim + self.tolerance
        return self.lo_lim - self.tolerance

    def calibrated_position(self, direction: Direction) -> float:
        """What the position reads where homing calibrates: the limit switch's position,
        or home_position on the controller's home mark."""
        if self.method is HomingMethod.HOME_SWITCH:
            return self.home_position
        return self.switch_position(direction)


@dataclass(frozen=True)
class HomingUpdate:
    state: HomingState
    progress: float  # 0-100 %
    message: str
