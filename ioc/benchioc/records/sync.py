"""The records of detector-synchronised scans (`SyncRecords`), bound to the
SyncController: settings in (`ScanSetting`), preview and progress out (`Published`), and
what the next scan file carries (`DataConfig`: the config's data section, saved to the
file like any config put and applied to the controller's DataTarget).

Only binding: the scan procedures live in engines/sync/, the record shapes in spec.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy

from .. import config as cfg
from ..clients.motor import EpicsMotor
from ..engines.lease import Holder
from ..engines.sync import (
    DataTarget,
    Preview,
    ScanRefused,
    ScanSettings,
    ScanState,
    ScanUpdate,
    SyncController,
)
from .builder import command_handler, set_if_changed, set_put_disabled, show_units
from .messages import Announcing, Level, MessageBoard, fit
from .settings import ConfigSetting
from .spec import Command, DataConfig, Kind, Published, Pv, ScanSetting, SyncRecords

if TYPE_CHECKING:
    from .bench import Bench

log = logging.getLogger(__name__)

SETTINGS = tuple(pv for pv in SyncRecords.all() if isinstance(pv.binds, ScanSetting))
DATA = tuple(pv for pv in SyncRecords.all() if isinstance(pv.binds, DataConfig))
IN_MOTOR_UNITS = tuple(pv for pv in SyncRecords.all() if pv.motor_units)
# How a record's value becomes the setting's type (mode: the mbb index, an int)
_DEFAULTS = ScanSettings()
_CONVERT: dict[str, Callable[[Any], Any]] = {
    field.name: (int if isinstance(getattr(_DEFAULTS, field.name), int) else
                 type(getattr(_DEFAULTS, field.name)))
    for field in dataclasses.fields(ScanSettings)
}
_CONVERT["require_homed"] = bool

FINISHED = (ScanState.DONE, ScanState.ABORTED, ScanState.FAILED)

# A scan holds its motor's lease; a homing or a config put refused by it says how to free it
SCAN_HOLDER = Holder("a scan", "is being scanned",
                     f"abort the scan first ({SyncRecords.Abort.full_name('')})")


def _setting(pv: Pv) -> str:
    assert isinstance(pv.binds, ScanSetting)
    return pv.binds.field


class SyncBinding(Announcing):
    """Records of the scan: settings in, preview and progress out."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.controller: SyncController | None = None
        self.board: MessageBoard | None = None
        self._data_pending = False  # the data section changed while a scan ran
        # Run takes puts (DISP=0) only while a scan could start: a put-callback's status
        # does not depend on what the record's processing returned, so a `caput -c` that
        # must fail has to meet DISP=1 (see _gate_run)
        self._run_open = True
        self._running = False  # this binding's run() is under way (it holds DISP)
        self._preview_ok = True  # the last preview shown said the scan could run
        self._preview_stale = False  # a motor it reads changed during a scan

    @property
    def data(self) -> cfg.DataConfig:
        return self.bench.config.data

    def rec(self, pv: Pv) -> Any:
        return self.bench.record(pv)

    def build(self) -> None:
        defaults = ScanSettings(motor=next(iter(self.bench.config.motors), ""))
        for pv in SyncRecords.all():
            initial = None
            if isinstance(pv.binds, ScanSetting):
                initial = _record_value(getattr(defaults, pv.binds.field))
            elif isinstance(pv.binds, DataConfig):
                initial = self._data_value(pv)
            self.bench.add_record(pv, initial=initial, **self._handlers(pv))
        self.board = MessageBoard(self.rec(SyncRecords.Message), SyncRecords.Message,
                                  "sync: ")

    def _handlers(self, pv: Pv) -> dict[str, Callable]:
        if isinstance(pv.binds, Command):
            handlers = {"on_update": command_handler(self, pv.binds)}
            if pv is SyncRecords.Run:
                handlers["validate"] = self._validate_run
            return handlers
        if isinstance(pv.binds, ScanSetting):
            return {"on_update": self._setting_put(pv.binds.field)}
        if isinstance(pv.binds, DataConfig):
            return self._data_setting(pv, pv.binds.key).handlers()
        return {}

    # --- the config's data section: what the next scan file carries ----------------------
    def _data_value(self, pv: Pv) -> str:
        """The data section's value as the record holds it (cut to its length)."""
        assert isinstance(pv.binds, DataConfig)
        return fit(pv, str(getattr(self.data, pv.binds.key)))

    def _data_setting(self, pv: Pv, key: str) -> ConfigSetting:
        async def after_save(_value: Any) -> None:
            self.apply_data_config()

        def apply(value: Any) -> None:
            self.bench.doc.set_data_field(key, value)  # the file keeps its comments

        return ConfigSetting(
            doc=lambda: self.bench.doc, name=key,
            current=lambda: self._data_value(pv),
            check=lambda value: cfg.validate(
                {"data": {**self.data.model_dump(), key: value}}, "config"),
            apply=apply, busy=lambda: None, board=lambda: self.message_board,
            record=lambda: self.rec(pv), wrote=self.bench.own_texts.append,
            after_save=after_save)

    def show_data_config(self) -> None:
        """Reflect the data section on the records and the next scan (after an outside
        edit of the file): each record is processed so that monitors see it; its put
        handler finds the file already says so."""
        for pv in DATA:
            record = self.rec(pv)
            if record.get() != self._data_value(pv):
                record.set(self._data_value(pv))
        self.apply_data_config()

    def apply_data_config(self) -> None:
        """The next scan file takes the config's data section (directory, name, proposal,
        ...). A running scan keeps what it started with: its file is written at its end,
        so the change waits for that."""
        if self.controller is None:
            return
        if self.controller.busy:
            self._data_pending = True
            return
        self._data_pending = False
        self.controller.data = DataTarget.from_config(
            self.data, self.bench.doc.path.resolve().parent)

    # --- units: the position records show the scanned motor's EGU and PREC ---------------
    def motor_changed(self, name: str) -> None:
        """Something the preview reads of a motor changed (its homing state, its record's
        fields at rest): the preview, and whether Run takes puts, follow, for the scanned
        motor and the flat-field one."""
        flat = self.controller.flat if self.controller is not None else None
        if name == self.rec(SyncRecords.Motor).get() or (flat and name == flat.motor):
            if self.controller is not None and self.controller.busy:
                # a scan brings its motor to rest at every point: the preview of the
                # next scan waits for this one's end, off the points' critical path
                self._preview_stale = True
            else:
                self.refresh_preview()

    def motor_units_changed(self, name: str) -> None:
        if name == self.rec(SyncRecords.Motor).get():
            self.show_units()

    def show_units(self) -> None:
        binding = self.bench.motors.get(str(self.rec(SyncRecords.Motor).get()))
        units = None if binding is None else binding.units
        if units is not None:  # an unknown or not yet connected motor: left as they were
            for pv in IN_MOTOR_UNITS:
                show_units(self.rec(pv), *units)

    def start(self, controller: SyncController) -> None:
        self.controller = controller
        self.bench.leases.subscribe_release(self._on_lease_release)
        controller.update(**{_setting(pv): _CONVERT[_setting(pv)](self.rec(pv).get())
                             for pv in SETTINGS})
        controller.subscribe(self._on_update)
        # The preview says whether the camera (and, for Fly, the box) answers: follow them.
        controller.watch_devices(self.refresh_preview)
        self.show_preview(controller.preview())
        self.show_units()

    def replace_motor(self, name: str, motor: EpicsMotor) -> None:
        if self.controller is not None:
            from ..clients.scan import EpicsMotorSync

            self.controller.motors[name] = EpicsMotorSync(motor)

    def publish(self, values: Any) -> None:
        """Show every Published field that `values` (ScanUpdate, Preview) carries; the
        Message goes through the board."""
        for pv in SyncRecords.all():
            if not isinstance(pv.binds, Published) or pv is SyncRecords.Message:
                continue
            if not hasattr(values, pv.binds.field):
                continue
            value = getattr(values, pv.binds.field)
            if pv.kind is Kind.WAVEFORM_IN:
                value = numpy.asarray(value, dtype=pv.dtype)
            elif isinstance(value, str):
                value = value[: pv.text_length]
            elif isinstance(value, bool | ScanState):
                value = int(value)
            set_if_changed(self.rec(pv), value)

    # --- puts ----------------------------------------------------------------------------
    def _setting_put(self, field: str) -> Callable[[Any], None]:
        def put(value: Any) -> None:
            if self.controller is None:
                return
            try:
                preview = self.controller.update(**{field: _CONVERT[field](value)})
            except (ValueError, TypeError) as error:
                self.say(f"{field} = {value!r} refused: {error}", Level.ERROR)
                return
            self.show_preview(preview, announce=True)
            if field == "motor":
                self.show_units()

        return put

    def refresh_preview(self) -> None:
        if self.controller is not None:
            self.show_preview(self.controller.preview())

    def _on_lease_release(self) -> None:
        """A homing or a scan gave its motor back. A preview that said no (it names a
        motor being homed) is shown again; one that said yes stays, and so does the
        Message of a scan that just ended."""
        if self._preview_stale:
            # after every lease of the scan is back (the scanned and the flat-field
            # motor are released one after the other, in this same loop iteration)
            self._preview_stale = False
            asyncio.get_running_loop().call_soon(self._show_preview_after_scan)
            return
        if self._preview_ok:
            self._gate_run()
        else:
            self.refresh_preview()

    def _show_preview_after_scan(self) -> None:
        """The motors moved during the scan: the next scan's figures follow. The Message
        of the scan that just ended stays unless the next one could not start."""
        if self.controller is None or self.controller.busy:
            return
        preview = self.controller.preview()
        if preview.ok:
            self._preview_ok = True
            self.publish(preview)
            self._gate_run()
        else:
            self.show_preview(preview)

    def show_preview(self, preview: Preview, announce: bool = False) -> None:
        self._preview_ok = preview.ok
        self.publish(preview)
        if not self.controller or not self.controller.busy:
            text = preview.message or ("ready: estimated "
                                       f"{preview.estimated_time:.1f} s")
            text = text if preview.ok else f"not ready: {text}"
            if text != self.message_board.text:
                self.say(text, Level.INFO if preview.ok else Level.NOT_READY)
        self._gate_run(announce)

    def _gate_run(self, announce: bool = False) -> None:
        """Run takes puts only while a scan could start (controller.why_not_run()).

        A refused Run must fail the client's put, `caput -c` included; EPICS completes a
        put-callback as written whatever the record's processing returns (validate only
        fails a plain put), and only DISP=1 fails it. So DISP follows why_not_run(): at
        every preview (settings, devices, the scanned or flat-field motor connected or
        changed, homing) and lease release; each of those is announced. The Message says
        why ("not ready: ..."). announce: the change is the user's own setting put; if
        it closes Run after a finished scan, State goes back to Idle with the reason
        ("refused: ...") so that a refused Run never reads as the last scan's Done.
        """
        controller = self.controller
        if controller is None or self._running:
            return
        reason = controller.why_not_run()
        if (not reason) == self._run_open:
            return
        self._run_open = not reason
        set_put_disabled(self.rec(SyncRecords.Run), bool(reason))
        if reason and announce and controller.state in FINISHED:
            controller.refuse(reason)

    # --- commands (Command verbs of SyncRecords) -----------------------------------------
    def _validate_run(self, _record: Any, _value: Any) -> bool:
        """A Run that would be refused is not taken: a plain put fails (a CA write
        error, as a refused config put does); a put-callback, which EPICS completes
        whatever this returns, is refused by DISP before it gets here unless Run was
        opened a moment before something changed (_gate_run). Called by the record's
        processing, in the CA server's thread, before the put is taken."""
        if self.controller is None:
            return True
        reason = self.controller.why_not_run()
        if not reason:
            return True
        if self.controller.busy:  # the running scan's State stays; only say why
            self.say(f"scan refused: {reason}", Level.ERROR)
        else:  # State back to Idle (not the last scan's Done), the reason on Message
            self.controller.refuse(reason)
        # no write alarm on Run: raising one processes an Action, which would run it
        return False

    async def run(self) -> None:
        if self.controller is None:
            return
        self._running, self._run_open = True, False
        set_put_disabled(self.rec(SyncRecords.Run), True)
        try:
            await self.controller.run()
        except ScanRefused as refusal:
            self.say(f"scan refused: {refusal}", Level.ERROR)
        except Exception as error:  # noqa: BLE001 - shown on Message, the IOC carries on
            log.exception("scan ended with an error")
            self.say(f"scan failed: {error}", Level.ERROR)
        finally:
            self._running = False
            if self._data_pending:  # the data section changed during the scan
                self.apply_data_config()
            self._gate_run()  # Run takes puts again, unless the next would be refused

    def abort(self) -> None:
        if self.controller is not None:
            self.controller.abort()

    # --- what the engine reports ----------------------------------------------------------
    def _on_update(self, update: ScanUpdate) -> None:
        self.publish(update)
        # Every frame publishes an update carrying the same text: post (and log) the
        # Message only when it says something new.
        if update.message and update.message != self.message_board.text:
            failed = update.state is ScanState.FAILED or update.message.startswith("refused")
            self.say(update.message, Level.ERROR if failed else Level.INFO)


def _record_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if hasattr(value, "value") and not isinstance(value, str):
        return int(value)  # enum
    return value
