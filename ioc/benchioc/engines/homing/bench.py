"""Homing controllers: one motor (MotorHoming, what the IOC records and the CLI bind
to) and every motor of the bench at once (BenchHoming)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..lease import HOMING, MotorInUse, MotorLeases
from ..motormodel import Direction, MotorError
from .procedure import home
from .settings import (
    HomingBusy,
    HomingMotor,
    HomingSettings,
    HomingState,
    HomingUpdate,
)

log = logging.getLogger(__name__)


class MotorHoming:
    """Homing controller of one motor: the object the IOC records and the CLI bind to."""

    def __init__(
        self, motor: HomingMotor, settings_provider: Callable[[], HomingSettings],
        leases: MotorLeases | None = None,
    ) -> None:
        self.motor = motor
        self.name = motor.name
        self._settings_provider = settings_provider
        self.leases = leases or MotorLeases()  # shared with scans in the IOC
        self.state = HomingState.NOT_HOMED
        self.progress = 0.0
        self.message = f"{motor.name}: not homed"
        self.busy = False
        self.last_homed: datetime | None = None
        self._subscribers: list[Callable[[HomingUpdate], None]] = []
        self._task: asyncio.Task | None = None
        self._abort_requested = False

    def subscribe(self, callback: Callable[[HomingUpdate], None]) -> None:
        """callback(update) on every state, progress or message change, and once more
        (repeating the last update) when busy goes back to False at the end."""
        self._subscribers.append(callback)

    def restore(self, homed: bool, last_homed: str | datetime | None = None,
                why: str = "") -> None:
        """Take over what a previous run knew (e.g. the IOC's saved state at start-up).

        last_homed: ISO 8601 text or a datetime; text that is not a time is ignored.
        why: the reason, shown in the message."""
        if self.busy:
            raise HomingBusy(f"motor {self.name} is homing; its state cannot be restored now")
        if isinstance(last_homed, str):
            try:
                last_homed = datetime.fromisoformat(last_homed)
            except ValueError:
                log.warning("%s: saved last homing time %r is not ISO 8601; ignored",
                            self.name, last_homed)
                last_homed = None
        self.last_homed = last_homed or self.last_homed
        if homed:
            self.state, self.progress = HomingState.HOMED, 100.0
            self.message = f"{self.name}: {why or 'restored as homed from the last run'}"
        else:
            self.state, self.progress = HomingState.NOT_HOMED, 0.0
            self.message = f"{self.name}: not homed" + (f": {why}" if why else "")
        self._notify(HomingUpdate(self.state, self.progress, self.message))

    def _on_update(self, update: HomingUpdate) -> None:
        self.state, self.progress, self.message = update.state, update.progress, update.message
        if update.state is HomingState.HOMED:
            self.last_homed = datetime.now().astimezone()
        self._notify(update)

    def _notify(self, update: HomingUpdate) -> None:
        for callback in list(self._subscribers):
            try:
                callback(update)
            except Exception:  # a broken display must not break homing
                log.exception("%s: homing subscriber %r failed", self.name, callback)

    def _publish_busy(self) -> None:
        self._notify(HomingUpdate(self.state, self.progress, self.message))

    async def home(self, direction: Direction) -> bool:
        """Home the motor; True if it ended HOMED, False if it failed or was aborted.

        Raises HomingBusy if this motor is already homing or another owner (a scan) moves
        it (refused, never queued)."""
        if self.busy:
            raise HomingBusy(f"motor {self.name} is already homing; abort it first")
        try:
            lease = self.leases.take(self.name, HOMING)
        except MotorInUse as taken:
            raise HomingBusy(f"{self.name}: homing refused: {taken.holder.description} is "
                             f"moving this motor; {taken.holder.release}") from None
        with lease:
            return await self._home_held(direction)

    async def _home_held(self, direction: Direction) -> bool:
        try:
            settings = self._settings_provider()
        except Exception as error:  # e.g. a config file that no longer validates
            self._on_update(HomingUpdate(HomingState.FAILED, 0.0,
                                         f"{self.name}: cannot home: {error}"))
            return False
        self.busy = True
        self._abort_requested = False
        try:
            self._task = asyncio.ensure_future(home(self.motor, direction, settings,
                                                    self._on_update))
            await self._task
            return True
        except MotorError:  # the engine reported it: FAILED with the reason
            return False
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._abort_requested and current is not None and not current.cancelling():
                return False  # our abort, not a cancellation of the caller
            raise
        finally:
            self._task = None
            self.busy = False
            self._publish_busy()

    def abort(self) -> None:
        """Cancel a running homing: the motor is stopped and its soft limits restored.
        Does nothing when idle; a second abort while the first is cleaning up is ignored."""
        if self._task is None or self._task.done() or self._abort_requested:
            return
        self._abort_requested = True
        log.info("%s: abort requested", self.name)
        self._task.cancel()


@dataclass(frozen=True)
class BenchUpdate:
    busy: bool
    all_homed: bool
    message: str


class BenchHoming:
    """Homing of every configured motor at once (or max_parallel at a time)."""

    def __init__(self, motors: dict[str, MotorHoming], max_parallel: int = 0,
                 leases: MotorLeases | None = None) -> None:
        self.motors = dict(motors)
        self.max_parallel = max_parallel
        self.leases = leases or MotorLeases()
        self.message = "idle"
        self._running = False
        self._abort_requested = False
        self._subscribers: list[Callable[[BenchUpdate], None]] = []
        for homing in self.motors.values():
            homing.subscribe(lambda _update: self._notify())

    @property
    def busy(self) -> bool:
        return self._running or any(m.busy for m in self.motors.values())

    @property
    def all_homed(self) -> bool:
        return bool(self.motors) and all(
            m.state is HomingState.HOMED for m in self.motors.values()
        )

    def subscribe(self, callback: Callable[[BenchUpdate], None]) -> None:
        """callback(BenchUpdate) after every change of any motor's homing."""
        self._subscribers.append(callback)

    def _notify(self) -> None:
        """Tell the subscribers after every change of any motor's homing. Every progress
        report comes through here: a subscriber that derives something of its own (the
        IOC's bench summary reads each motor) keeps its work small when nothing it shows
        changed (records/bench.py). Not filtered here: what a subscriber derives can
        change while busy, all_homed and the message stay as they were (Busy when the
        first motor starts, after HomeAll itself made the bench busy)."""
        update = BenchUpdate(self.busy, self.all_homed, self.message)
        for callback in list(self._subscribers):
            try:
                callback(update)
            except Exception:
                log.exception("bench homing subscriber %r failed", callback)

    def _set_message(self, message: str) -> None:
        self.message = message
        log.info("%s", message)
        self._notify()

    async def home_all(self, direction: Direction) -> dict[str, bool]:
        """Home every motor; returns {name: homed}. Raises HomingBusy if any is homing."""
        busy = [name for name, m in self.motors.items() if m.busy]
        if self._running or busy:
            raise HomingBusy(
                f"homing already running ({', '.join(busy) or 'all motors'}); abort it first"
            )
        held = self.leases.first_held(self.motors)
        if held is not None:
            motor, holder = held
            raise HomingBusy(f"home all refused: {holder.description} is moving motor "
                             f"{motor}; {holder.release}")
        if not self.motors:
            self._set_message("no motors configured: nothing to home")
            return {}
        self._running = True
        self._abort_requested = False
        limit = self.max_parallel if self.max_parallel > 0 else len(self.motors)
        semaphore = asyncio.Semaphore(limit)
        self._set_message(
            f"homing {len(self.motors)} motors {direction.word}"
            + (f", {limit} at a time" if limit < len(self.motors) else " in parallel")
        )
        try:
            results = await asyncio.gather(
                *(self._home_one(m, direction, semaphore) for m in self.motors.values())
            )
            outcome = dict(zip(self.motors, results, strict=True))
            self.message = self._summary(outcome, direction)
            log.info("%s", self.message)
            return outcome
        finally:
            self._running = False
            self._notify()

    async def _home_one(
        self, homing: MotorHoming, direction: Direction, semaphore: asyncio.Semaphore
    ) -> bool:
        async with semaphore:
            if self._abort_requested:
                return False
            try:
                return await homing.home(direction)
            except HomingBusy as error:
                log.warning("%s", error)
                return False

    def _summary(self, outcome: dict[str, bool], direction: Direction) -> str:
        homed = [name for name, ok in outcome.items() if ok]
        if len(homed) == len(outcome):
            return f"all {len(outcome)} motors homed {direction.word}"
        failed = "; ".join(self._why_not_homed(name) for name, ok in outcome.items() if not ok)
        return f"{len(homed)} of {len(outcome)} motors homed {direction.word}; {failed}"

    def _why_not_homed(self, name: str) -> str:
        homing = self.motors[name]
        if homing.state in (HomingState.FAILED, HomingState.ABORTED):
            return homing.message
        return f"{name}: not started (aborted)"

    def abort_all(self) -> None:
        """Abort every running homing; motors still queued are not started."""
        self._abort_requested = self._running
        for homing in self.motors.values():
            homing.abort()
