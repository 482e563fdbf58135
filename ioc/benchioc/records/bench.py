"""The bench: what every binding shares (config document, records, leases, background
jobs), and the bench-wide records (`BenchRecords`): tolerance, HomeAll, AbortAll and the
summary."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import config as cfg
from ..clients.motor import EpicsMotor
from ..engines.homing import BenchHoming, HomingBusy, MotorHoming
from ..engines.lease import MotorLeases
from ..engines.motormodel import Direction
from .autosave import HomingStateStore
from .builder import command_handler, make_record, publish, set_put_disabled
from .messages import Announcing, Level, MessageBoard
from .settings import ConfigSetting
from .spec import BenchConfig, BenchRecords, Command, Published, Pv
from .tasks import BackgroundTasks

log = logging.getLogger(__name__)


class MotorScope(Protocol):
    """What the bench asks of a motor's binding (records/motor.py); a protocol, so that
    the scopes' bindings import the bench and never each other or back."""

    homing: MotorHoming | None
    motor: EpicsMotor | None
    units: tuple[str, int] | None  # the motor record's EGU and PREC, once connected

    @property
    def homed(self) -> bool: ...
    def start(self) -> None: ...
    async def connect(self) -> None: ...
    async def replace_motor(self, pv_root: str) -> None: ...
    def show_config(self) -> None: ...
    async def abort(self) -> None: ...
    def close(self) -> None: ...


class SyncScope(Protocol):
    """What the bench asks of the scans' binding (records/sync.py)."""

    def refresh_preview(self) -> None: ...
    def replace_motor(self, name: str, motor: EpicsMotor) -> None: ...
    def motor_units_changed(self, name: str) -> None: ...
    def motor_changed(self, name: str) -> None: ...
    def show_data_config(self) -> None: ...
    def abort(self) -> None: ...


@dataclass
class Bench(Announcing):
    """The shared context of the bindings, and the binding of the bench-wide records."""

    doc: cfg.ConfigDocument
    prefix: str
    store: HomingStateStore
    leases: MotorLeases = field(default_factory=MotorLeases)
    tasks: BackgroundTasks = field(default_factory=BackgroundTasks)
    records: dict[str, Any] = field(default_factory=dict)
    motors: dict[str, MotorScope] = field(default_factory=dict)
    homing: BenchHoming | None = None
    sync: SyncScope | None = None
    board: MessageBoard | None = None
    summary_listeners: list[Callable[[], None]] = field(default_factory=list)
    _last_summary: tuple[int, int] | None = None  # (Busy, AllHomed) as last written
    # what this IOC wrote to its config file lately: the follower must not take its own
    # earlier save, read while a later put is being saved, for an outside edit
    own_texts: deque[str] = field(default_factory=lambda: deque(maxlen=16))

    @property
    def config(self) -> cfg.BenchConfig:
        return self.doc.config

    # --- records -------------------------------------------------------------------------
    def record(self, pv: Pv, motor: str | None = None) -> Any:
        return self.records[pv.full_name(self.prefix, motor)]

    def add_record(self, pv: Pv, motor: str | None = None, /, **kwargs: Any) -> Any:
        name = pv.full_name(self.prefix, motor)
        self.records[name] = make_record(pv, name, **kwargs)
        return self.records[name]

    def build(self) -> None:
        published = {"motors": ",".join(self.config.motors),
                     "config_file": str(self.doc.path.resolve())}
        for pv in BenchRecords.all():
            initial = None
            if isinstance(pv.binds, BenchConfig):
                initial = getattr(self.config, pv.binds.key)
            elif isinstance(pv.binds, Published):
                initial = published.get(pv.binds.field)
            self.add_record(pv, initial=initial, **self._handlers(pv))
        self.board = MessageBoard(self.record(BenchRecords.Message), BenchRecords.Message)

    def _handlers(self, pv: Pv) -> dict[str, Callable]:
        if isinstance(pv.binds, Command):
            return {"on_update": command_handler(self, pv.binds)}
        if isinstance(pv.binds, BenchConfig):
            return self._config_setting(pv, pv.binds.key).handlers()
        return {}

    def _config_setting(self, pv: Pv, key: str) -> ConfigSetting:
        assert key == "tolerance", f"no handler for the bench config key {key}"
        return ConfigSetting(
            doc=lambda: self.doc, name=pv.name, current=lambda: self.config.tolerance,
            check=lambda value: cfg.general_config({"tolerance": value}),
            apply=lambda value: self.doc.set_tolerance(value),
            record=lambda: self.record(pv), wrote=self.own_texts.append,
            busy=lambda: ("homing in progress"
                          if self.homing is not None and self.homing.busy else None),
            board=lambda: self.message_board)

    def publish(self, **values: Any) -> None:
        """Show values on the bench records that publish those fields."""
        publish(BenchRecords.all(), self.record, values)

    def update_summary(self) -> None:
        """Busy and AllHomed, after any homing's update; nothing is written (and nobody
        told) when neither changed: every progress report of every motor comes here."""
        homings = [binding.homing for binding in self.motors.values() if binding.homing]
        summary = (int(any(h.busy for h in homings)),
                   int(bool(homings) and all(b.homed for b in self.motors.values())))
        if summary == self._last_summary:
            return
        self._last_summary = summary
        self.publish(busy=summary[0], all_homed=summary[1])
        for listener in list(self.summary_listeners):
            listener()

    # --- commands (Command verbs of BenchRecords) -----------------------------------------
    async def home_all(self, direction: Direction) -> None:
        assert self.homing is not None
        actions = [pv for pv in BenchRecords.all()
                   if isinstance(pv.binds, Command) and pv.binds.verb == "home_all"]
        for pv in actions:
            set_put_disabled(self.record(pv), True)
        try:
            results = await self.homing.home_all(direction)
        except HomingBusy as error:
            self.say(str(error), Level.ERROR)
            return
        finally:
            for pv in actions:
                set_put_disabled(self.record(pv), False)
        failed = [name for name, ok in results.items() if not ok]
        self.say(self.homing.message, Level.ERROR if failed else Level.INFO)

    async def abort_all(self) -> None:
        if self.sync is not None:
            self.sync.abort()
        await asyncio.gather(*(binding.abort() for binding in self.motors.values()))
        if self.homing is not None:
            self.homing.abort_all()  # also keeps queued motors of a HomeAll from starting

    async def heartbeat(self) -> None:
        count = 0
        while True:
            await asyncio.sleep(1.0)
            count = (count + 1) % 2**31
            self.publish(heartbeat=count)
