"""The records of one motor (`MotorRecords`), bound to its motor record client
(EpicsMotor), its homing engine (MotorHoming) and what its homing left (HomingMemory).

Data flows one way: CA monitors -> motor model -> engine -> records. A put reaches the
engine (a Command) or the config file (a MotorConfig setting); nothing here decides how
a motor is homed, when its calibration holds or who may move it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from softioc import alarm

from .. import config as cfg
from ..clients.motor import EpicsMotor
from ..engines.homing import HomingBusy, HomingSettings, HomingState, HomingUpdate, MotorHoming
from ..engines.motormodel import Direction, MotorStatus
from .autosave import HomingMemory
from .builder import command_handler, publish, set_put_disabled, show_units
from .messages import Announcing, Level, MessageBoard
from .settings import ConfigSetting
from .spec import Command, MotorConfig, MotorField, MotorRecords, Published, Pv

if TYPE_CHECKING:
    from .bench import Bench

log = logging.getLogger(__name__)

POSITION_RATE_HZ = 20  # at most this many Position updates a second while moving
MIRRORS = tuple(pv for pv in MotorRecords.all() if isinstance(pv.binds, MotorField))
HOME_ACTIONS = tuple(pv for pv in MotorRecords.all()
                     if isinstance(pv.binds, Command) and pv.binds.verb == "home")
IN_MOTOR_UNITS = tuple(pv for pv in MotorRecords.all() if pv.motor_units)


class MotorBinding(Announcing):
    def __init__(self, bench: Bench, name: str) -> None:
        self.bench = bench
        self.name = name
        self.motor: EpicsMotor | None = None
        self.homing: MotorHoming | None = None
        self.memory: HomingMemory | None = None
        self.board: MessageBoard | None = None
        self._shown: dict[Pv, tuple] = {}  # what each status record shows
        self._position_shown_at = -math.inf
        self._latest_position: tuple[float, int, int] = (math.nan, 0, 0)
        self._position_timer: asyncio.TimerHandle | None = None
        self.units: tuple[str, int] | None = None  # the motor record's EGU, PREC as shown
        self._homing_shown: tuple[HomingState, bool] | None = None  # told to the scan
        self._at_rest_shown: tuple | None = None  # the fields at rest the scan was told

    @property
    def entry(self) -> cfg.MotorConfig:
        return self.bench.config.motors[self.name]

    @property
    def homed(self) -> bool:
        return self.homing is not None and self.homing.state is HomingState.HOMED

    def rec(self, pv: Pv) -> Any:
        return self.bench.record(pv, self.name)

    # --- records (before iocInit) -----------------------------------------------------
    def build(self) -> None:
        saved = self.bench.store.get(self.name)
        published = {  # Homed in the last run is not Homed now until the motor confirms it
            "state": int(HomingState.NOT_HOMED), "homed": 0,
            "last_homed": saved.get("last_homed", ""),
            "message": (f"{self.name}: homed in the last run; its calibration is checked"
                        " when the motor connects") if saved.get("homed") else "",
        }
        for pv in MotorRecords.all():
            initial = None
            if isinstance(pv.binds, MotorConfig):
                initial = getattr(self.entry, pv.binds.key)
            elif isinstance(pv.binds, Published):
                initial = published.get(pv.binds.field)
            if isinstance(initial, str):
                initial = initial[: pv.text_length]
            self.bench.add_record(pv, self.name, initial=initial, **self._handlers(pv))
        self.board = MessageBoard(self.rec(MotorRecords.Message), MotorRecords.Message,
                                  f"{self.name}: ")

    def _handlers(self, pv: Pv) -> dict[str, Callable]:
        if isinstance(pv.binds, Command):
            return {"on_update": command_handler(self, pv.binds)}
        if isinstance(pv.binds, MotorConfig):
            return self._config_setting(pv, pv.binds.key).handlers()
        return {}

    def _config_setting(self, pv: Pv, key: str) -> ConfigSetting:
        async def after_save(value: Any) -> None:
            if key == "pv_root":
                await self.replace_motor(value)

        return ConfigSetting(
            doc=lambda: self.bench.doc, name=key,
            current=lambda: getattr(self.entry, key),
            check=lambda value: cfg.motor_config({**self.entry.model_dump(), key: value},
                                                 f"motor {self.name}"),
            apply=lambda value: self.bench.doc.update_motor_field(self.name, key, value),
            busy=self._why_not_editable, board=lambda: self.message_board,
            record=lambda: self.rec(pv), wrote=self.bench.own_texts.append,
            after_save=after_save)

    def _why_not_editable(self) -> str | None:
        holder = self.bench.leases.holder(self.name)
        return None if holder is None else f"{self.name} {holder.doing}; {holder.release}"

    def show_config(self) -> None:
        """Reflect the config entry on the records (after an outside edit of the file)."""
        for pv in MotorRecords.all():
            if isinstance(pv.binds, MotorConfig):
                # processed so that monitors see it; the put handler finds nothing to save
                self.rec(pv).set(getattr(self.entry, pv.binds.key))

    def publish(self, **values: Any) -> None:
        """Show values on the records that publish those fields (Published in the spec)."""
        publish(MotorRecords.all(), self.rec, values)

    # --- engines (in the asyncio loop, after iocInit) -----------------------------------
    def start(self) -> None:
        self.motor = EpicsMotor(self.name, self.entry.pv_root, on_change=self._on_motor)
        self.homing = MotorHoming(
            self.motor, lambda: HomingSettings.from_config(self.bench.config, self.name),
            leases=self.bench.leases)
        self.memory = HomingMemory(
            self.name, self.bench.store, self.homing,
            say=lambda text, error: self.say(text, Level.ERROR if error else Level.INFO))
        self.homing.subscribe(self._on_homing)

    async def connect(self) -> None:
        assert self.motor is not None and self.memory is not None
        self.memory.connecting = True  # the checks below run here, once connected
        try:
            await self.motor.connect(self.bench.config.ioc.connection_timeout)
            self.say(f"connected to {self.motor.pv_root}")
            await self.memory.restore_interrupted_limits(self.motor)  # before confirm()
            self.memory.confirm(self.motor.status)
            if self.bench.sync is not None:
                self.bench.sync.refresh_preview()  # the scan preview needs VELO, ACCL...
        except Exception as error:  # noqa: BLE001 - any failure is shown, CA keeps trying
            self.say(f"{error}; will connect when it appears", Level.ERROR)
        finally:
            self.memory.connecting = False

    async def replace_motor(self, pv_root: str) -> None:
        """The config names a new motor record: drop the old client, watch the new one."""
        assert self.homing is not None
        if self.motor is not None:
            self.motor.close()
        self.motor = EpicsMotor(self.name, pv_root, on_change=self._on_motor)
        self.homing.motor = self.motor
        if self.bench.sync is not None:
            self.bench.sync.replace_motor(self.name, self.motor)
        self._show(MotorRecords.Connected, 0)
        await self.connect()

    def close(self) -> None:
        if self.motor is not None:
            self.motor.close()

    # --- commands (Command verbs of MotorRecords) ----------------------------------------
    async def home(self, direction: Direction) -> None:
        assert self.homing is not None
        try:
            await self.homing.home(direction)
        except HomingBusy as error:
            self.say(str(error), Level.ERROR)
        except Exception:  # noqa: BLE001 - the engine reports why on Message
            log.debug("homing %s ended with an error", self.name, exc_info=True)

    async def abort(self) -> None:
        """Abort means "stop this motor", whether or not a homing is running."""
        if self.homing is not None and self.homing.busy:
            self.homing.abort()
        elif self.motor is not None:
            try:
                await self.motor.stop()
                self.say(f"{self.name}: STOP sent (no homing was running)")
            except Exception as error:  # noqa: BLE001 - shown on Message
                self.say(f"{self.name}: STOP could not be sent: {error}", Level.ERROR)

    # --- what the engines report --------------------------------------------------------
    def _on_homing(self, update: HomingUpdate) -> None:
        assert self.homing is not None and self.memory is not None
        self.publish(state=int(update.state), progress=update.progress)
        failed = update.state is HomingState.FAILED
        self.message_board.say(update.message, Level.ERROR if failed else Level.INFO,
                               logged=True)
        busy = self.homing.busy
        if self._show(MotorRecords.Busy, int(busy)):
            # While homing, puts to HomeHi/HomeLo are refused by the record (DISP)
            # rather than queued behind the running put-callback for later.
            for pv in HOME_ACTIONS:
                set_put_disabled(self.rec(pv), busy)
        status = self.motor.status if self.motor is not None else None
        if self.memory.remember(update.state, status):
            self.publish(homed=int(self.homed), last_homed=self.memory.last_homed)
        # A scan's preview and Run follow whether the motor is homed and whether a homing
        # holds it: told when a homing begins and when the state changes outside one
        # (restored, forgotten, refused); a homing's end reaches the scan through the
        # release of its lease, which comes last.
        shown, self._homing_shown = self._homing_shown, (update.state, busy)
        was_busy = shown is not None and shown[1]
        began = busy and not was_busy
        changed_outside = not busy and not was_busy and shown != self._homing_shown
        if self.bench.sync is not None and (began or changed_outside):
            self.bench.sync.motor_changed(self.name)

    def _on_motor(self, status: MotorStatus) -> None:
        """Mirror the motor record. Every monitor update of every field lands here, so
        only what changed is written, and a moving readback at most POSITION_RATE_HZ
        times a second (plenty for a screen; the position at rest always goes out)."""
        if self.memory is not None:
            self.memory.track(status)
        if status.connected and (status.egu, status.prec) != self.units:
            self._show_units(status.egu, status.prec)
        if not status.dmov:
            self._at_rest_shown = None  # the first update at rest after a move tells
        elif self.bench.sync is not None:
            self._tell_scan_at_rest(status)
        severity = alarm.NO_ALARM if status.connected else alarm.INVALID_ALARM
        status_alarm = alarm.NO_ALARM if status.connected else alarm.COMM_ALARM
        for pv in MIRRORS:
            assert isinstance(pv.binds, MotorField)
            value = getattr(status, pv.binds.field)
            if pv.binds.throttled:
                if math.isfinite(value):
                    self._show_throttled(pv, value, severity, status_alarm,
                                         now=status.dmov or not status.connected)
                continue
            self._show(pv, int(not value if pv.binds.inverted else value),
                       severity, status_alarm)

    def _tell_scan_at_rest(self, status: MotorStatus) -> None:
        """The scan's preview reads the motor at rest (position, speeds, soft limits,
        units, and the readback interval a move measured): tell it when a move ended or
        one of those changed, not at every monitor update."""
        assert self.bench.sync is not None
        shown = (status.connected, status.rbv, status.velo, status.accl, status.vmax,
                 status.hlm, status.llm, status.egu)
        if shown != self._at_rest_shown:
            self._at_rest_shown = shown
            self.bench.sync.motor_changed(self.name)

    def _show_units(self, egu: str, prec: int) -> None:
        """The motor record's EGU and PREC, on this motor's position records and, if it
        is the one being scanned, on the scan's."""
        self.units = (egu, prec)
        for pv in IN_MOTOR_UNITS:
            show_units(self.rec(pv), egu, prec)
        if self.bench.sync is not None:
            self.bench.sync.motor_units_changed(self.name)

    def _show_throttled(self, pv: Pv, value: float, severity: int, status_alarm: int,
                        now: bool) -> None:
        self._latest_position = (value, severity, status_alarm)
        wait = self._position_shown_at + 1 / POSITION_RATE_HZ - time.monotonic()
        if now or wait <= 0:
            self._flush_position(pv)
        elif self._position_timer is None:  # the last value before a pause still goes out
            self._position_timer = asyncio.get_running_loop().call_later(
                wait, self._flush_position, pv)

    def _flush_position(self, pv: Pv) -> None:
        if self._position_timer is not None:
            self._position_timer.cancel()
            self._position_timer = None
        if self._show(pv, *self._latest_position):
            self._position_shown_at = time.monotonic()

    def _show(self, pv: Pv, value: Any, severity: int = alarm.NO_ALARM,
              status_alarm: int = alarm.NO_ALARM) -> bool:
        """Set a status record if its value or alarm changed; True if it was set."""
        shown = (value, severity, status_alarm)
        if self._shown.get(pv) == shown:
            return False
        self._shown[pv] = shown
        self.rec(pv).set(value, severity=severity, alarm=status_alarm)
        return True
