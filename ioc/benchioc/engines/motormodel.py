"""The motor model: what every engine reads about a motor record, as pure Python.

Data flows one way: the CA client (motor.EpicsMotor) turns monitor updates into
MotorStatus snapshots and publishes them on a MotorStatusFeed; the homing and sync
engines read the snapshots and wait on the feed. Nothing here imports softioc, aioca or
caproto, so the unit tests' fake motors publish on the same feed.
"""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

from ..facts.motorrecord import Msta, Spmg


class MotorError(Exception):
    """A motor could not do what was asked; the message says why, in words and numbers."""


class MotorDisconnected(MotorError):
    """The motor record's PVs are (or went) disconnected."""


class MotorTimeout(MotorError):
    """A condition on the motor status did not come true in time."""


class Direction(enum.Enum):
    HI = "hi"
    LO = "lo"

    @property
    def switch_name(self) -> str:
        return "high limit switch" if self is Direction.HI else "low limit switch"

    @property
    def jog_field(self) -> str:
        return "JOGF" if self is Direction.HI else "JOGR"

    @property
    def word(self) -> str:
        return "high" if self is Direction.HI else "low"


SPMG_NAMES = tuple(mode.name.capitalize() for mode in Spmg)
SPMG_GO = Spmg.GO


@dataclass(frozen=True)
class MotorStatus:
    """A snapshot of the motor record as monitored (user coordinates)."""

    connected: bool = False
    rbv: float = 0.0
    val: float = 0.0
    dmov: bool = True
    hls: bool = False
    lls: bool = False
    msta: int = 0
    spmg: int = SPMG_GO
    cnen: bool = True
    velo: float = 0.0
    jvel: float = 0.0
    accl: float = 0.0
    vmax: float = 0.0
    hlm: float = 0.0
    llm: float = 0.0
    dhlm: float = 0.0
    dllm: float = 0.0
    egu: str = ""
    prec: int = 3
    off: float = 0.0  # user = dial * (DIR sign) + OFF
    dir: int = 0  # 0 Pos, 1 Neg
    mres: float = 0.0
    drbv: float = 0.0  # the controller's (dial) readback
    # --- for homing method home_switch (the controller's HOMF/HOMR); the CA client
    # fills it from HVEL. ATHM needs no field of its own: it is MSTA bit 3 (HOMELS).
    hvel: float = 0.0  # HVEL, the speed of the controller's home routine

    def _bit(self, bit: Msta) -> bool:
        return bool(self.msta & bit)

    @property
    def done_bit(self) -> bool:
        return self._bit(Msta.DONE)

    @property
    def problem(self) -> bool:
        return self._bit(Msta.PROBLEM)

    @property
    def slip_stall(self) -> bool:
        return self._bit(Msta.SLIP_STALL)

    @property
    def comm_err(self) -> bool:
        return self._bit(Msta.COMM_ERR)

    @property
    def gain_support(self) -> bool:
        return self._bit(Msta.GAIN_SUPPORT)

    @property
    def homed_bit(self) -> bool:
        return self._bit(Msta.HOMED)

    @property
    def plus_ls(self) -> bool:
        return self._bit(Msta.PLUS_LS)

    @property
    def minus_ls(self) -> bool:
        return self._bit(Msta.MINUS_LS)

    @property
    def spmg_name(self) -> str:
        return SPMG_NAMES[self.spmg] if 0 <= self.spmg < len(SPMG_NAMES) else str(self.spmg)

    def on_switch(self, direction: Direction) -> bool:
        """On the user-sense switch homing in `direction` seeks (HLS for hi, LLS for lo)."""
        return self.hls if direction is Direction.HI else self.lls

    def settled(self) -> bool:
        return self.dmov and self.done_bit

    def fmt(self, value: float) -> str:
        """A position as the motor shows it: its precision and units."""
        text = f"{value:.{max(0, min(self.prec, 10))}f}"
        return f"{text} {self.egu}" if self.egu else text

    @property
    def speed_unit(self) -> str:
        return f"{self.egu}/s" if self.egu else "units/s"


def limit_order(
    current: tuple[float, float], new: tuple[float, float]
) -> tuple[str, str]:
    """Which of ("low", "high") to write first so that low <= high after each write.

    From (l0, h0) to (l1, h1): writing the low limit first leaves (l1, h0), valid when
    l1 <= h0; otherwise h1 >= l1 > h0 >= l0 and writing the high limit first is valid.
    """
    low, _high = new
    _low0, high0 = current
    return ("low", "high") if low <= high0 else ("high", "low")


class MotorStatusFeed:
    """The latest MotorStatus of one motor plus stale-value-safe waiting on it.

    Whoever monitors the motor calls publish() on every update; wait_for() checks the
    current status first and then every status published after the call, so an update
    that arrives between a put and the wait is never missed."""

    def __init__(self, name: str, status: MotorStatus | None = None) -> None:
        self.name = name
        self._status = status or MotorStatus()
        self._waiters: list[tuple[Callable[[MotorStatus], bool], asyncio.Future, str]] = []

    @property
    def status(self) -> MotorStatus:
        return self._status

    def publish(self, status: MotorStatus) -> None:
        self._status = status
        for predicate, future, what in list(self._waiters):
            if future.done():
                continue
            try:
                if predicate(status):
                    future.set_result(status)
                elif not status.connected:
                    future.set_exception(self._disconnected(what))
            except Exception as error:  # a broken predicate must fail its waiter only
                future.set_exception(error)

    def _disconnected(self, what: str) -> MotorDisconnected:
        return MotorDisconnected(f"{self.name}: motor record disconnected while waiting for {what}")

    async def wait_for(
        self, predicate: Callable[[MotorStatus], bool], timeout: float, what: str
    ) -> MotorStatus:
        status = self._status
        if predicate(status):
            return status
        if not status.connected:
            raise self._disconnected(what)
        future: asyncio.Future[MotorStatus] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future, what)
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(None if math.isinf(timeout) else max(timeout, 0.0)):
                return await future
        except TimeoutError:
            raise MotorTimeout(
                f"{self.name}: timed out after {timeout:.3g} s waiting for {what}"
            ) from None
        finally:
            self._waiters.remove(waiter)


class FeedBackedMotor:
    """The status/wait_for half of HomingMotor for a motor whose monitor updates go to
    a MotorStatusFeed (the aioca client and the unit tests' fake alike)."""

    feed: MotorStatusFeed

    @property
    def status(self) -> MotorStatus:
        return self.feed.status

    async def wait_for(
        self, predicate: Callable[[MotorStatus], bool], timeout: float, what: str
    ) -> MotorStatus:
        return await self.feed.wait_for(predicate, timeout, what)
