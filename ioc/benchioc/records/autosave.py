"""What the IOC keeps across its own restarts: per motor, whether it was homed, when, the
calibration that homing left (homing.calibration), and the soft limits a running homing
had disabled. One JSON file in the config's autosave directory, written atomically on
every change of state, so an IOC killed at any moment comes back knowing what it knew.
Where a homed motor came to rest is written at most once a second (a step scan brings
it to rest at every point, and each write costs the IOC's loop a few ms); an IOC killed
before that write finds the motor elsewhere than saved and does not restore Homed,
which is the safe side. No softioc here: files and engines only."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from .. import config as cfg
from ..engines.homing import HomingState, MotorHoming, calibration
from ..engines.homing.calibration import Calibration
from ..engines.motormodel import MotorStatus

log = logging.getLogger(__name__)

STATE_FILE = "homing-state.json"
REST_SAVE_DELAY_S = 1.0  # a rest position waits this long for the next before it is saved


class HomingStateStore:
    """Homed, LastHomed, the calibration and interrupted limits per motor."""

    def __init__(self, directory: Path, file_mode: int | None = None) -> None:
        self.path = directory / STATE_FILE
        self.file_mode = file_mode  # the config's data.file_mode
        self._pending: asyncio.TimerHandle | None = None  # a rest position to save
        self._directory_made = False
        self._syncing: asyncio.Future | None = None  # the fsync of the last write
        self._sync_again = False  # written again while that fsync ran
        self.data: dict[str, dict[str, Any]] = {}
        try:
            self.data = json.loads(self.path.read_text())
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as error:
            log.warning("ignoring unreadable homing state %s: %s", self.path, error)

    def get(self, motor: str) -> dict[str, Any]:
        return self.data.get(motor, {})

    def calibration(self, motor: str) -> Calibration | None:
        return Calibration.from_json(self.get(motor).get("calibration"))

    def record(self, motor: str, homed: bool, last_homed: str | None = None,
               limits: tuple[float, float] | None = None,
               calibration: Calibration | None = None, *, at_once: bool = True) -> None:
        """at_once: written before returning (what must be on file before the caller's
        next step); else in this loop's next turn, after the caller's next CA request
        has gone out."""
        entry = self.data.setdefault(motor, {})
        entry["homed"] = homed
        if last_homed:
            entry["last_homed"] = last_homed
        if limits is None:
            entry.pop("limits_before_homing", None)
        else:
            entry["limits_before_homing"] = list(limits)
        if calibration is None or not homed:
            entry.pop("calibration", None)
        else:
            entry["calibration"] = calibration.to_json()
        if at_once:
            self._write()
        else:
            self._write_soon(0.0)

    def forget_homed(self, motor: str) -> None:
        """Its calibration no longer holds: not homed (interrupted limits are kept)."""
        entry = self.data.setdefault(motor, {})
        entry["homed"] = False
        entry.pop("calibration", None)
        self._write()

    def note_rest(self, motor: str, dial: float, resolution: float) -> None:
        """A homed motor is at rest at this dial position (written only when it is more
        than `resolution` from the saved one)."""
        saved = self.calibration(motor)
        if saved is None or abs(saved.dial - dial) <= resolution:
            return
        self.data[motor]["calibration"] = saved.at_rest(dial).to_json()
        self._write_soon(REST_SAVE_DELAY_S)

    def _write_soon(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a tool, a test): now
            self._write()
            return
        if self._pending is not None:
            if self._pending.when() <= loop.time() + delay:
                return  # the write already planned takes this change too
            self._pending.cancel()
        self._pending = loop.call_later(delay, self._write)

    def flush(self) -> None:
        """Write what waits to be written, and have it on disk (the IOC calls it on the
        way out)."""
        if self._pending is not None:
            self._write()
        if self.path.exists():
            cfg.sync_to_disk(self.path)

    def _write(self) -> None:
        """Replace the file now, on the loop: a killed IOC finds this state at once.

        The fsync that also keeps it through a power cut runs in a worker thread: on the
        loop it was most of the write's 2 ms, twice on every homing's critical path
        (before the limits are touched, and at Homed)."""
        if self._pending is not None:  # this write takes the waiting rest position too
            self._pending.cancel()
            self._pending = None
        if not self._directory_made:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._directory_made = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a tool, a test): durable before returning
            loop = None
        cfg.atomic_write(self.path, json.dumps(self.data, indent=2) + "\n",
                         mode=self.file_mode, durable=loop is None)
        if loop is not None:
            self._sync_soon(loop)

    def _sync_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._syncing is not None and not self._syncing.done():
            self._sync_again = True  # that fsync may have begun before this write
            return
        self._sync_again = False
        self._syncing = loop.run_in_executor(None, cfg.sync_to_disk, self.path)
        self._syncing.add_done_callback(lambda _done: self._synced(loop))

    def _synced(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._syncing is not None and not self._syncing.cancelled() \
                and self._syncing.exception() is not None:
            log.warning("homing state %s not synced to disk: %s", self.path,
                        self._syncing.exception())
        self._syncing = None
        if self._sync_again:
            self._sync_soon(loop)


class HomingMemory:
    """One motor's homing, remembered across IOC restarts and checked against the motor.

    It writes the store as the homing goes (the soft limits it disabled, Homed, the time
    and the calibration it left), takes back at connection what still holds (a Homed whose
    OFF, DIR, MRES and dial position are unchanged; soft limits an interrupted homing had
    left disabled), and notes where a homed motor comes to rest."""

    def __init__(self, name: str, store: HomingStateStore, homing: MotorHoming,
                 say: Callable[[str, bool], None]) -> None:
        self.name = name
        self.store = store
        self.homing = homing
        self._say = say  # say(text, error): the motor's Message
        self._remembered: HomingState | None = None
        self._last_status = MotorStatus(connected=False)
        self.connecting = False  # a connection that runs its own checks (connect())
        saved = store.get(name)
        if saved.get("last_homed"):
            with contextlib.suppress(ValueError):
                homing.last_homed = datetime.fromisoformat(saved["last_homed"])

    @property
    def saved(self) -> dict[str, Any]:
        return self.store.get(self.name)

    @property
    def homed(self) -> bool:
        return self.homing.state is HomingState.HOMED

    @property
    def last_homed(self) -> str:
        last = self.homing.last_homed
        return last.isoformat(timespec="seconds") if last else self.saved.get("last_homed", "")

    def remember(self, state: HomingState, status: MotorStatus | None) -> bool:
        """Write what this state means for the next run; True if Homed may have changed.
        status: the motor as the update found it (None: no motor client)."""
        if state is self._remembered:
            return False
        self._remembered = state
        if state is HomingState.SEEKING and status is not None:
            # reported before the limits are touched: an IOC killed meanwhile restores them
            self.store.record(self.name, False, limits=(status.dllm, status.dhlm))
        # The ends of a homing are saved in the loop's next turn, off the critical path:
        # an IOC killed before that restores the limits the homing began with and does
        # not restore Homed, the state before the homing, which is safe.
        elif state in (HomingState.FAILED, HomingState.ABORTED):
            self.store.record(self.name, False, limits=None, at_once=False)
        elif state is HomingState.HOMED and status is not None:
            self.store.record(self.name, True, self.last_homed or None, limits=None,
                              calibration=Calibration.of(status), at_once=False)
        elif state is HomingState.NOT_HOMED:  # a saved homing that no longer holds
            self.store.forget_homed(self.name)
        else:
            return False
        return True

    def confirm(self, status: MotorStatus) -> None:
        """Homed only while the record shows the calibration its homing left: checked
        when the motor connects (at start-up and after its IOC came back). Nothing moves
        either way."""
        saved = self.saved
        if not saved.get("homed") or self.homing.busy:
            return
        reason = calibration.doubt(self.store.calibration(self.name), status)
        if reason is None:
            self.homing.restore(True, saved.get("last_homed"), why=(
                "homed: its calibration still holds (OFF, DIR, MRES and the controller"
                " position are as the homing left them)"))
        else:
            self.homing.restore(False, why=f"{reason}; home it again")

    def track(self, status: MotorStatus) -> None:
        """Every motor update: a (re)connection is a moment to doubt the calibration (its
        IOC or controller may have restarted); a homed motor coming to rest is where it
        must be found next time."""
        before, self._last_status = self._last_status, status
        if status.connected and not before.connected:
            if not (self.connecting or self.homing.busy):
                self.confirm(status)
        elif status.connected and status.dmov and self.homed:
            # every update at rest, busy or not: the DRBV monitor may come after DMOV=1
            # and even after HOMED, while the homing task is still ending
            self.store.note_rest(self.name, status.drbv, calibration.resolution(status))

    async def restore_interrupted_limits(self, motor: LimitedMotor) -> None:
        """A homing was cut short by the IOC stopping: put back the dial soft limits it
        had disabled (the motor does not move)."""
        limits = self.saved.get("limits_before_homing")
        if not limits:
            return
        try:
            await motor.set_dial_limits(*limits)
        except Exception as error:  # noqa: BLE001 - shown; the entry stays for next time
            self._say(f"soft limits left disabled by an interrupted homing could not be "
                      f"restored: {error}", True)
            return
        self.store.record(self.name, False, limits=None)
        self._say(f"soft limits DLLM={limits[0]:g} DHLM={limits[1]:g} restored: a homing "
                  "was interrupted when the IOC stopped; home this motor again", False)


class LimitedMotor(Protocol):
    async def set_dial_limits(self, dllm: float, dhlm: float) -> None: ...
