"""The IOC: records built from the PV spec, bound to the homing engine and the config.

This module only binds. Procedures live in homing/ (and sync/), the config rules in
config.py, the record shapes in records.py. Data flows one way: CA monitors -> motor
model -> engine -> records; puts from clients go to the engine or to the config file.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from softioc import alarm

from .. import config as cfg
from ..clients.motor import EpicsMotor
from ..engines.homing import (
    BenchHoming,
    HomingBusy,
    HomingSettings,
    HomingState,
    HomingUpdate,
    MotorHoming,
    calibration,
)
from ..engines.homing.calibration import Calibration
from ..engines.motormodel import Direction, MotorStatus
from .autosave import HomingStateStore
from .builder import (
    clear_alarm,
    flag_refused,
    make_record,
    message_severity,
    set_put_disabled,
    use_loop,
)
from .spec import BENCH_PVS, MOTOR_PVS, Pv, Scope, scope_prefix

log = logging.getLogger(__name__)

POSITION_RATE_HZ = 20  # at most this many Position updates a second while moving


@dataclass
class Bench:
    """What the handlers share: the config document, the engines and the records."""

    doc: cfg.ConfigDocument
    prefix: str
    store: HomingStateStore
    records: dict[str, Any] = field(default_factory=dict)
    motors: dict[str, MotorBinding] = field(default_factory=dict)
    homing: BenchHoming | None = None
    sync: Any = None  # scanrecords.SyncBinding: the $(P)Sync: records
    restart_requested: bool = False
    on_restart: Callable[[], None] | None = None  # re-serve a changed motor set

    @property
    def config(self) -> cfg.BenchConfig:
        return self.doc.config

    def record(self, scope: Scope, name: str, motor: str | None = None):
        return self.records[f"{self.prefix}{scope_prefix(scope, motor)}{name}"]

    def add_record(self, pv: Pv, scope: Scope, motor: str | None = None, /,
                   **kwargs: Any) -> Any:
        name = f"{self.prefix}{scope_prefix(scope, motor)}{pv.name}"
        self.records[name] = make_record(pv, name, **kwargs)
        return self.records[name]

    def bench_message(self, text: str, error: bool = False) -> None:
        log.log(logging.WARNING if error else logging.INFO, "%s", text)
        self.record(Scope.BENCH, "Message").set(
            text[:511], severity=message_severity(error), alarm=_alarm_of(error))

    def update_summary(self) -> None:
        homings = [binding.homing for binding in self.motors.values() if binding.homing]
        busy = any(h.busy for h in homings)
        self.record(Scope.BENCH, "Busy").set(int(busy))
        all_homed = bool(homings) and all(h.state is HomingState.HOMED for h in homings)
        self.record(Scope.BENCH, "AllHomed").set(int(all_homed))
        scanning = self.sync is not None and self.sync.scanning_motor is not None
        if self.restart_requested and not busy and not scanning and self.on_restart:
            self.on_restart()  # a changed motor set, served once nothing moves

    async def save_config(self) -> None:
        """Write the document to its file (atomically, under the shared lock)."""
        await asyncio.get_running_loop().run_in_executor(None, self.doc.save)


def _alarm_of(error: bool) -> int:
    return alarm.STATE_ALARM if error else alarm.NO_ALARM


@dataclass
class ConfigSetting:
    """One config value behind a record: checked before the record takes it, written to
    the file after, refused in words (Message + MAJOR alarm on the record) otherwise."""

    bench: Bench
    name: str  # the config key, as users see it in the file
    current: Callable[[], Any]
    check: Callable[[Any], Any]  # raises ConfigError
    apply: Callable[[Any], None]  # edits the document (validated again there)
    busy: Callable[[], str | None]  # why the value cannot change now, if it cannot
    say: Callable[..., None]  # message(text, error=False)
    record: Callable[[], Any]  # the record (built after this binding)
    after_save: Callable[[Any], Awaitable[None]] | None = None

    def handlers(self) -> dict[str, Callable]:
        return {"validate": self.validate, "on_update": self.put}

    def validate(self, record, value: Any) -> bool:
        if self.current() == value:
            return True  # what the file already says (shown after an outside edit)
        refusal = self.busy()
        if refusal is not None:
            refusal = f"{self.name} not changed: {refusal}"
        else:
            try:
                self.check(value)
            except cfg.ConfigError as error:
                refusal = f"{self.name} = {value!r} refused: {_first_line(error)}"
        if refusal is None:
            return True
        self.say(refusal, error=True)
        flag_refused(record)
        return False

    async def put(self, value: Any) -> None:
        if self.current() == value:
            return  # already so: shown after an outside edit of the file, nothing to save
        try:
            self.apply(value)
            await self.bench.save_config()
        except (cfg.ConfigError, OSError) as error:
            self.say(f"{self.name} = {value!r} not saved: {_first_line(error)}", error=True)
            return
        clear_alarm(self.record())  # a refusal alarm left by an earlier put
        self.say(f"{self.name} set to {value} and saved to {self.bench.doc.path.name}")
        if self.after_save is not None:
            await self.after_save(value)


class MotorBinding:
    """The records of one motor, bound to its EpicsMotor and MotorHoming."""

    def __init__(self, bench: Bench, name: str) -> None:
        self.bench = bench
        self.name = name
        self.motor: EpicsMotor | None = None
        self.homing: MotorHoming | None = None
        self._shown: dict[str, tuple] = {}  # what each mirror record shows
        self._position_shown_at = -math.inf
        self._persisted_state: HomingState | None = None
        self._latest_position: tuple[float, int, int] = (math.nan, 0, 0)
        self._position_timer: asyncio.TimerHandle | None = None
        self._last_status = MotorStatus(connected=False)
        self._connecting = False  # connect() runs its own checks once connected

    # --- records -----------------------------------------------------------------------
    def build(self) -> None:
        handlers: dict[str, dict[str, Callable]] = {
            record: self._config_setting(key).handlers()
            for record, key in (("PvRoot", "pv_root"), ("LoLim", "lo_lim"),
                                ("Center", "center"), ("HiLim", "hi_lim"))
        }
        handlers |= {
            "HomeHi": {"on_update": self._home_handler(Direction.HI)},
            "HomeLo": {"on_update": self._home_handler(Direction.LO)},
            "Abort": {"on_update": self.abort},
        }
        entry = self.bench.config.motors[self.name]
        saved = self.bench.store.get(self.name)
        # Homed in the last run is not Homed now until the motor record confirms it
        initial = {
            "PvRoot": entry.pv_root, "LoLim": entry.lo_lim, "Center": entry.center,
            "HiLim": entry.hi_lim, "Homed": 0, "State": int(HomingState.NOT_HOMED),
            "LastHomed": saved.get("last_homed", "")[:39],
            "Message": (f"{self.name}: homed in the last run; its calibration is checked"
                        " when the motor connects") if saved.get("homed") else "",
        }
        for pv in MOTOR_PVS:
            self.bench.add_record(pv, Scope.MOTOR, self.name,
                                  initial=initial.get(pv.name), **handlers.get(pv.name, {}))

    def rec(self, name: str):
        return self.bench.record(Scope.MOTOR, name, self.name)

    def message(self, text: str, error: bool = False, logged: bool = False) -> None:
        """Show text on $(P)$(M):Message (MAJOR if error); logged: the engine already
        wrote it to the log."""
        if not logged:
            named = text if text.startswith(f"{self.name}:") else f"{self.name}: {text}"
            log.log(logging.WARNING if error else logging.INFO, "%s", named)
        self.rec("Message").set(text[:511], severity=message_severity(error),
                                alarm=_alarm_of(error))

    # --- engine wiring (runs in the asyncio loop after iocInit) -----------------------
    async def start(self) -> None:
        entry = self.bench.config.motors[self.name]
        self.motor = EpicsMotor(self.name, entry.pv_root, on_change=self._on_motor)
        self.homing = MotorHoming(
            self.motor, lambda: HomingSettings.from_config(self.bench.config, self.name))
        saved = self.bench.store.get(self.name)
        if saved.get("last_homed"):
            self.homing.last_homed = datetime.fromisoformat(saved["last_homed"])
        self.homing.subscribe(self._on_homing)

    async def connect(self) -> None:
        assert self.motor is not None
        self._connecting = True
        try:
            await self.motor.connect(self.bench.config.ioc.connection_timeout)
            self.message(f"connected to {self.motor.pv_root}")
            await self.restore_interrupted_limits()  # before the check forgets them
            self.confirm_calibration()
            if self.bench.sync is not None:
                self.bench.sync.refresh_preview()  # the scan preview needs VELO, ACCL...
        except Exception as error:  # noqa: BLE001 - any failure is shown, CA keeps trying
            self.message(f"{error}; will connect when it appears", error=True)
        finally:
            self._connecting = False

    async def replace_motor(self, pv_root: str) -> None:
        """The config names a new motor record: drop the old client, watch the new one."""
        assert self.homing is not None
        if self.motor is not None:
            self.motor.close()
        self.motor = EpicsMotor(self.name, pv_root, on_change=self._on_motor)
        self.homing.motor = self.motor
        sync = self.bench.sync.controller if self.bench.sync else None
        if sync is not None:
            from ..clients.scan import EpicsMotorSync

            sync.motors[self.name] = EpicsMotorSync(self.motor)
        self.rec("Connected").set(0)
        await self.connect()

    def confirm_calibration(self) -> None:
        """Homed only while the record shows the calibration its homing left: checked
        when the motor connects (at start-up and after its IOC came back). Nothing
        moves either way."""
        assert self.homing is not None and self.motor is not None
        saved = self.bench.store.get(self.name)
        if not saved.get("homed") or self.homing.busy:
            return
        reason = calibration.doubt(self.bench.store.calibration(self.name), self.motor.status)
        if reason is None:
            self.homing.restore(True, saved.get("last_homed"), why=(
                "homed: its calibration still holds (OFF, DIR, MRES and the controller"
                " position are as the homing left them)"))
        else:
            self.homing.restore(False, why=f"{reason}; home it again")

    def _track_calibration(self, status: MotorStatus) -> None:
        """A (re)connection is a moment to doubt the calibration (its IOC or controller
        may have restarted); a homed motor coming to rest is where it must be found next
        time."""
        before, self._last_status = self._last_status, status
        if self.homing is None:
            return
        if status.connected and not before.connected:
            if not (self._connecting or self.homing.busy):
                self.confirm_calibration()
        elif status.connected and status.dmov and self.homing.state is HomingState.HOMED:
            # every update at rest, busy or not: the DRBV monitor may come after DMOV=1
            # and even after HOMED, while the homing task is still ending
            self.bench.store.note_rest(self.name, status.drbv,
                                       calibration.resolution(status))

    def _on_motor(self, status: MotorStatus) -> None:
        """Mirror the motor record. Every monitor update of every field lands here, so
        only what changed is written, and a moving readback at most POSITION_RATE_HZ
        times a second (plenty for a screen; the position at rest always goes out)."""
        self._track_calibration(status)
        severity = alarm.NO_ALARM if status.connected else alarm.INVALID_ALARM
        status_alarm = alarm.NO_ALARM if status.connected else alarm.COMM_ALARM
        if math.isfinite(status.rbv):
            self._show_position(status.rbv, severity, status_alarm,
                                now_or_later=status.dmov or not status.connected)
        self._show("Moving", int(not status.dmov))
        self._show("HighLimitSwitch", int(status.hls))
        self._show("LowLimitSwitch", int(status.lls))
        self._show("Connected", int(status.connected), severity, status_alarm)

    def _show_position(self, rbv: float, severity: int, status_alarm: int,
                       now_or_later: bool) -> None:
        self._latest_position = (rbv, severity, status_alarm)
        wait = self._position_shown_at + 1 / POSITION_RATE_HZ - time.monotonic()
        if now_or_later or wait <= 0:
            self._flush_position()
        elif self._position_timer is None:  # the last value before a pause still goes out
            self._position_timer = asyncio.get_running_loop().call_later(
                wait, self._flush_position)

    def _flush_position(self) -> None:
        if self._position_timer is not None:
            self._position_timer.cancel()
            self._position_timer = None
        if self._show("Position", *self._latest_position):
            self._position_shown_at = time.monotonic()

    def _show(self, record: str, value: Any, severity: int = alarm.NO_ALARM,
              status_alarm: int = alarm.NO_ALARM) -> bool:
        """Set a status record if its value or alarm changed; True if it was set."""
        shown = (value, severity, status_alarm)
        if self._shown.get(record) == shown:
            return False
        self._shown[record] = shown
        self.rec(record).set(value, severity=severity, alarm=status_alarm)
        return True

    def _on_homing(self, update: HomingUpdate) -> None:
        assert self.homing is not None
        self.rec("State").set(int(update.state))
        self.rec("Progress").set(update.progress)
        self.message(update.message, error=update.state is HomingState.FAILED, logged=True)
        busy = self.homing.busy
        if self._show("Busy", int(busy)):
            # While homing, puts to HomeHi/HomeLo are refused by the record (DISP)
            # rather than queued behind the running put-callback for later.
            for action in ("HomeHi", "HomeLo"):
                set_put_disabled(self.rec(action), busy)
        if update.state is not self._persisted_state:
            self._persisted_state = update.state
            self._persist(update.state)
        self.bench.update_summary()

    def _persist(self, state: HomingState) -> None:
        """Homed, LastHomed and, while a homing runs, the soft limits it will restore:
        an IOC killed meanwhile puts them back when it comes up again."""
        assert self.homing is not None
        store = self.bench.store
        if state is HomingState.SEEKING and self.motor is not None:
            status = self.motor.status  # reported before the limits are touched
            store.record(self.name, False, limits=(status.dllm, status.dhlm))
        elif state in (HomingState.FAILED, HomingState.ABORTED):
            store.record(self.name, False, limits=None)
        elif state is HomingState.HOMED and self.motor is not None:
            last = self.homing.last_homed
            stamp = last.isoformat(timespec="seconds") if last else None
            if stamp:
                self.rec("LastHomed").set(stamp[:39])
            store.record(self.name, True, stamp, limits=None,
                         calibration=Calibration.of(self.motor.status))
        elif state is HomingState.NOT_HOMED:  # a saved homing that no longer holds
            store.forget_homed(self.name)
        else:
            return
        self.rec("Homed").set(int(state is HomingState.HOMED))

    async def restore_interrupted_limits(self) -> None:
        """A homing was cut short by the IOC stopping: put back the dial soft limits it
        had disabled (the motor does not move)."""
        limits = self.bench.store.get(self.name).get("limits_before_homing")
        if not limits or self.motor is None:
            return
        try:
            await self.motor.set_dial_limits(*limits)
        except Exception as error:  # noqa: BLE001 - shown; the entry stays for next time
            self.message(f"soft limits left disabled by an interrupted homing could not be "
                         f"restored: {error}", error=True)
            return
        self.bench.store.record(self.name, False, limits=None)
        self.message(f"soft limits DLLM={limits[0]:g} DHLM={limits[1]:g} restored: a homing "
                     "was interrupted when the IOC stopped; home this motor again")

    # --- handlers ----------------------------------------------------------------------
    def _home_handler(self, direction: Direction):
        async def home(_value: Any) -> None:
            assert self.homing is not None
            if self.bench.sync is not None and self.bench.sync.scanning_motor == self.name:
                self.message(f"{self.name}: homing refused: a scan is moving this motor; "
                             "abort the scan first (Sync:Abort)", error=True)
                return
            try:
                await self.homing.home(direction)
            except HomingBusy as error:
                self.message(str(error), error=True)
            except Exception:  # noqa: BLE001 - the engine reports why on Message
                log.debug("homing %s ended with an error", self.name, exc_info=True)

        return home

    async def abort(self, _value: Any = None) -> None:
        """Abort means "stop this motor", whether or not a homing is running."""
        if self.homing is not None and self.homing.busy:
            self.homing.abort()
        elif self.motor is not None:
            try:
                await self.motor.stop()
                self.message(f"{self.name}: STOP sent (no homing was running)")
            except Exception as error:  # noqa: BLE001 - shown on Message
                self.message(f"{self.name}: STOP could not be sent: {error}", error=True)

    def _config_setting(self, key: str) -> ConfigSetting:
        async def after_save(value: Any) -> None:
            if key == "pv_root":
                await self.replace_motor(value)

        return ConfigSetting(
            bench=self.bench, name=key,
            current=lambda: getattr(self.bench.config.motors[self.name], key),
            check=lambda value: cfg.motor_config(
                {**self.bench.config.motors[self.name].model_dump(), key: value},
                f"motor {self.name}"),
            apply=lambda value: self.bench.doc.update_motor_field(self.name, key, value),
            busy=lambda: (f"{self.name} is homing; abort it first"
                          if self.homing is not None and self.homing.busy else None),
            say=self.message, record=lambda: self.rec(_RECORD_OF[key]), after_save=after_save)

    def show_config(self) -> None:
        """Reflect the config entry on the records (after an outside edit of the file)."""
        entry = self.bench.config.motors[self.name]
        for record, value in (("PvRoot", entry.pv_root), ("LoLim", entry.lo_lim),
                              ("Center", entry.center), ("HiLim", entry.hi_lim)):
            # processed so that monitors see it; the put handler finds nothing to save
            self.rec(record).set(value)


_RECORD_OF = {"pv_root": "PvRoot", "lo_lim": "LoLim", "center": "Center", "hi_lim": "HiLim"}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def build_bench_records(bench: Bench) -> None:
    config = bench.config
    handlers: dict[str, dict[str, Callable]] = {
        "Tolerance": ConfigSetting(
            bench=bench, name="Tolerance", current=lambda: bench.config.tolerance,
            check=lambda value: cfg.general_config({"tolerance": value}),
            apply=lambda value: bench.doc.set_tolerance(value),
            record=lambda: bench.record(Scope.BENCH, "Tolerance"),
            busy=lambda: ("homing in progress"
                          if bench.homing is not None and bench.homing.busy else None),
            say=bench.bench_message).handlers(),
        "HomeAllHi": {"on_update": _home_all_handler(bench, Direction.HI)},
        "HomeAllLo": {"on_update": _home_all_handler(bench, Direction.LO)},
        "AbortAll": {"on_update": _abort_all_handler(bench)},
    }
    initial = {
        "Tolerance": config.tolerance,
        "Motors": ",".join(config.motors),
        "ConfigFile": str(bench.doc.path.resolve()),
    }
    for pv in BENCH_PVS:
        bench.add_record(pv, Scope.BENCH, initial=initial.get(pv.name),
                         **handlers.get(pv.name, {}))


def _abort_all_handler(bench: Bench):
    async def abort_all(_value: Any) -> None:
        if bench.sync is not None and bench.sync.controller is not None:
            bench.sync.controller.abort()
        await asyncio.gather(*(binding.abort() for binding in bench.motors.values()))
        if bench.homing is not None:
            bench.homing.abort_all()  # also keeps queued motors of a HomeAll from starting

    return abort_all


def _home_all_handler(bench: Bench, direction: Direction):
    async def home_all(_value: Any) -> None:
        assert bench.homing is not None
        scanned = bench.sync.scanning_motor if bench.sync is not None else None
        if scanned is not None:
            bench.bench_message(f"home all refused: a scan is moving motor {scanned}; "
                                "abort the scan first (Sync:Abort)", error=True)
            return
        records = [bench.record(Scope.BENCH, name) for name in ("HomeAllHi", "HomeAllLo")]
        for record in records:
            set_put_disabled(record, True)
        try:
            results = await bench.homing.home_all(direction)
        except HomingBusy as error:
            bench.bench_message(str(error), error=True)
            return
        finally:
            for record in records:
                set_put_disabled(record, False)
        failed = [name for name, ok in results.items() if not ok]
        bench.bench_message(bench.homing.message, error=bool(failed))

    return home_all


def build_records(bench: Bench) -> None:
    """Create every record for the current config (before iocInit)."""
    from .sync import SyncBinding

    build_bench_records(bench)
    for name in bench.config.motors:
        binding = MotorBinding(bench, name)
        binding.build()
        bench.motors[name] = binding
    bench.sync = SyncBinding(bench)
    bench.sync.build()


async def start_engines(bench: Bench) -> None:
    """After iocInit: connect the motors, create the engines, start the background jobs."""
    for binding in bench.motors.values():
        await binding.start()
    # "ready" means every motor is connected or has said why not (each waits at most
    # ioc.connection_timeout; CA keeps trying in the background after that)
    await asyncio.gather(*(binding.connect() for binding in bench.motors.values()))
    bench.homing = BenchHoming(
        {name: b.homing for name, b in bench.motors.items() if b.homing},
        max_parallel=bench.config.homing.max_parallel,
    )
    bench.update_summary()
    bench.sync.start(_sync_controller(bench))
    bench.bench_message(
        f"serving {len(bench.motors)} motors ({', '.join(bench.motors) or 'none'}) "
        f"from {bench.doc.path}")
    asyncio.create_task(_heartbeat(bench))


def _sync_controller(bench: Bench):
    from ..clients.scan import build_controller

    def is_homed(name: str) -> bool:
        homing = bench.motors[name].homing
        return homing is not None and homing.state is HomingState.HOMED

    return build_controller(
        bench.config, {name: b.motor for name, b in bench.motors.items() if b.motor},
        config_dir=bench.doc.path.resolve().parent, is_homed=is_homed)


async def _heartbeat(bench: Bench) -> None:
    record = bench.record(Scope.BENCH, "Heartbeat")
    count = 0
    while True:
        await asyncio.sleep(1.0)
        count = (count + 1) % 2**31
        record.set(count)


# --- following the config file ----------------------------------------------------------
class ConfigFollower:
    """Polls the config file; applies outside edits, reports malformed ones.

    Polling (not inotify) because the file may live on NFS and editors replace it by
    rename; a poll of a stat() a second is cheap.
    """

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self._stamp = self._stat()
        self._reported_bad: str | None = None

    def _stat(self) -> tuple[int, int] | None:
        try:
            stat = self.bench.doc.path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    async def run(self) -> None:
        period = self.bench.config.ioc.file_poll_period
        while True:
            await asyncio.sleep(period)
            try:
                await self.check()
            except Exception:  # noqa: BLE001 - the follower must never die
                log.exception("checking the config file failed")

    async def check(self) -> None:
        stamp = self._stat()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        path = self.bench.doc.path
        try:
            doc = await asyncio.get_running_loop().run_in_executor(None, cfg.load, path)
        except cfg.ConfigError as error:
            if str(error) != self._reported_bad:
                self._reported_bad = str(error)
                self.bench.bench_message(
                    f"config file edit ignored, last good configuration kept: {error}",
                    error=True)
            return
        self._reported_bad = None
        if doc.text == self.bench.doc.text:
            return
        await self.apply(doc)

    async def apply(self, doc: cfg.ConfigDocument) -> None:
        bench = self.bench
        old = bench.doc.config
        bench.doc = doc
        if list(doc.config.motors) != list(old.motors):
            bench.bench_message(
                f"motors changed in {doc.path.name} ({', '.join(old.motors) or 'none'} -> "
                f"{', '.join(doc.config.motors) or 'none'}); the IOC restarts to serve them "
                "as soon as no homing or scan runs")
            bench.restart_requested = True
            bench.update_summary()
            return
        bench.record(Scope.BENCH, "Tolerance").set(doc.config.tolerance)
        for name, binding in bench.motors.items():
            binding.show_config()
            if doc.config.motors[name].pv_root != old.motors[name].pv_root:
                await binding.replace_motor(doc.config.motors[name].pv_root)
        bench.bench_message(f"applied an outside edit of {doc.path.name}")




# --- serving ------------------------------------------------------------------------------
START_TIMEOUT_S = 30.0  # engines started, motors connected or reported missing
STOP_ALL_TIMEOUT_S = 10.0  # scans and homings aborted, motors told to stop
SHUTDOWN_LIMIT_S = 20.0  # from the signal to the end of the process, whatever hangs
class QuitSignal:
    """SIGINT/SIGTERM, caught from the very start of serve() (a signal during start-up is
    kept, not lost) and waited for in short slices.

    softioc's wait_for_quit() blocks the main thread in one untimed Event.wait(); a
    signal the kernel delivers to one of EPICS's threads then runs Python's handler only
    when the main thread next runs bytecode, which it never does: the IOC kept running
    for half an hour after SIGTERM. A timed wait returns to bytecode every slice."""

    SLICE_S = 0.2

    def __init__(self) -> None:
        self.received = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        log.info("%s received", signal.Signals(signum).name)
        self.received.set()

    def wait(self) -> None:
        while not self.received.wait(self.SLICE_S):
            pass


def exit_within(seconds: float) -> None:
    """Make sure the process ends: if the orderly exit (motor clean-up, EPICS exit
    handlers) has not finished by then, end it anyway."""
    def force() -> None:
        log.error("shutdown did not finish within %g s; exiting now", seconds)
        os._exit(1)

    timer = threading.Timer(seconds, force)
    timer.daemon = True
    timer.start()


@dataclass
class ServeOptions:
    prefix: str
    on_ready: Callable[[Bench], None] = lambda bench: None
    on_restart: Callable[[], None] | None = None  # how to re-serve a changed motor set
    acf: Path | None = None  # EPICS access security file
    quit_signal: QuitSignal | None = None  # installed by the caller, earlier than serve()


def create_bench(doc: cfg.ConfigDocument, prefix: str) -> Bench:
    """Build every record for this config (before iocInit); nothing is connected yet."""
    # no device prefix: full record names, so the prefix need not end in ":"
    store = HomingStateStore(_autosave_dir(doc))
    bench = Bench(doc=doc, prefix=prefix, store=store)
    build_records(bench)
    return bench


def _autosave_dir(doc: cfg.ConfigDocument) -> Path:
    directory = Path(doc.config.ioc.autosave_dir)
    if not directory.is_absolute():
        directory = doc.path.resolve().parent / directory
    return directory


def write_db(doc: cfg.ConfigDocument, prefix: str, path: Path) -> None:
    """The db/ snapshot: every record the IOC serves for this config, as EPICS db text."""
    from softioc import builder

    create_bench(doc, prefix)
    header = (f"Generated by `bench-ioc --write-db` from benchioc/pvs.py for "
              f"{doc.path.name} with prefix {prefix}. Do not edit.\n")
    builder.WriteRecords(str(path), header=header)


def serve(doc: cfg.ConfigDocument, options: ServeOptions) -> None:
    """Run the IOC until SIGINT/SIGTERM; on the way out stop any motor we are homing."""
    quit_signal = options.quit_signal or QuitSignal()
    if quit_signal.received.is_set():
        return
    from softioc import asyncio_dispatcher, builder, softioc

    dispatcher = asyncio_dispatcher.AsyncioDispatcher()
    use_loop(dispatcher.loop)
    bench = create_bench(doc, options.prefix)
    bench.on_restart = options.on_restart
    builder.LoadDatabase()
    # IOC health records (CPU, memory, file descriptors, uptime) under $(P)IOC:
    softioc.devIocStats(f"{options.prefix}IOC".replace("::", ":"))
    if options.acf is not None:
        load_access_security(options.acf)
    softioc.iocInit(dispatcher)

    async def start() -> None:
        await start_engines(bench)
        asyncio.create_task(ConfigFollower(bench).run())

    starting = asyncio.run_coroutine_threadsafe(start(), dispatcher.loop)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (starting.done() or quit_signal.received.is_set()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"start-up did not finish within {START_TIMEOUT_S:g} s")
        quit_signal.received.wait(QuitSignal.SLICE_S)
    if starting.done():
        starting.result()  # start-up errors surface here
        options.on_ready(bench)
        quit_signal.wait()
    else:  # a signal during start-up: connecting goes no further
        starting.cancel()
    exit_within(SHUTDOWN_LIMIT_S)
    log.info("stopping: aborting any homing so no motor is left moving")
    stopping = asyncio.run_coroutine_threadsafe(stop_all(bench), dispatcher.loop)
    try:
        stopping.result(timeout=STOP_ALL_TIMEOUT_S)
    except TimeoutError:
        log.warning("motor clean-up still running after %g s; exiting anyway",
                    STOP_ALL_TIMEOUT_S)


def load_access_security(path: Path) -> None:
    """Load an EPICS access security file; call before iocInit. The writable records
    belong to the ASG named in records.WRITE_ASG, everything else to DEFAULT."""
    from epicscorelibs.ioc import dbCore

    status = dbCore.asSetFilename(str(path.resolve()).encode())
    if status != 0:
        raise cfg.ConfigError(f"{path}: access security file not accepted (status {status})")


async def stop_all(bench: Bench, grace: float = 5.0) -> None:
    """On the way out: abort scan and homing (motors told to stop), then drop the
    motor monitors so that the simulated bench stopping next is not logged as a fault."""
    if bench.sync is not None and bench.sync.controller is not None:
        bench.sync.controller.abort()
    if bench.homing is not None and bench.homing.busy:
        await _abort_homing(bench, grace)
    for binding in bench.motors.values():
        if binding.motor is not None:
            binding.motor.close()


async def _abort_homing(bench: Bench, grace: float) -> None:
    assert bench.homing is not None
    idle = asyncio.Event()
    bench.homing.subscribe(lambda update: None if update.busy else idle.set())
    bench.homing.abort_all()
    try:  # the motors are told to stop; give the clean-up (limits) a moment to finish
        await asyncio.wait_for(idle.wait(), grace)
    except TimeoutError:
        log.warning("homing clean-up still running after %g s; exiting anyway", grace)
