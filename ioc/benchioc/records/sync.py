"""The records of detector-synchronised scans (`SyncRecords`), bound to the
SyncController: settings in (`ScanSetting`), preview and progress out (`Published`).

Only binding: the scan procedures live in engines/sync/, the record shapes in spec.py.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy

from ..clients.motor import EpicsMotor
from ..engines.lease import Holder
from ..engines.sync import Preview, ScanRefused, ScanSettings, ScanState, ScanUpdate, SyncController
from .builder import command_handler, set_put_disabled
from .messages import Announcing, Level, MessageBoard
from .spec import Command, Kind, Published, Pv, ScanSetting, SyncRecords

if TYPE_CHECKING:
    from .bench import Bench

log = logging.getLogger(__name__)

SETTINGS = tuple(pv for pv in SyncRecords.all() if isinstance(pv.binds, ScanSetting))
# How a record's value becomes the setting's type (mode: the mbb index, an int)
_DEFAULTS = ScanSettings()
_CONVERT: dict[str, Callable[[Any], Any]] = {
    field.name: (int if isinstance(getattr(_DEFAULTS, field.name), int) else
                 type(getattr(_DEFAULTS, field.name)))
    for field in dataclasses.fields(ScanSettings)
}
_CONVERT["require_homed"] = bool

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

    def rec(self, pv: Pv) -> Any:
        return self.bench.record(pv)

    def build(self) -> None:
        defaults = ScanSettings(motor=next(iter(self.bench.config.motors), ""))
        for pv in SyncRecords.all():
            initial = None
            if isinstance(pv.binds, ScanSetting):
                initial = _record_value(getattr(defaults, pv.binds.field))
            self.bench.add_record(pv, initial=initial, **self._handlers(pv))
        self.board = MessageBoard(self.rec(SyncRecords.Message), SyncRecords.Message,
                                  "sync: ")

    def _handlers(self, pv: Pv) -> dict[str, Callable]:
        if isinstance(pv.binds, Command):
            return {"on_update": command_handler(self, pv.binds)}
        if isinstance(pv.binds, ScanSetting):
            return {"on_update": self._setting_put(pv.binds.field)}
        return {}

    def start(self, controller: SyncController) -> None:
        self.controller = controller
        controller.update(**{_setting(pv): _CONVERT[_setting(pv)](self.rec(pv).get())
                             for pv in SETTINGS})
        controller.subscribe(self._on_update)
        # The preview says whether the camera (and, for Fly, the box) answers: follow them.
        controller.watch_devices(self.refresh_preview)
        self.show_preview(controller.preview())

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
            self.rec(pv).set(value)

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
            self.show_preview(preview)

        return put

    def refresh_preview(self) -> None:
        if self.controller is not None:
            self.show_preview(self.controller.preview())

    def show_preview(self, preview: Preview) -> None:
        self.publish(preview)
        if not self.controller or not self.controller.busy:
            text = preview.message or ("ready: estimated "
                                       f"{preview.estimated_time:.1f} s")
            text = text if preview.ok else f"not ready: {text}"
            if text != self.message_board.text:
                self.say(text, Level.INFO if preview.ok else Level.NOT_READY)

    # --- commands (Command verbs of SyncRecords) -----------------------------------------
    async def run(self) -> None:
        if self.controller is None:
            return
        set_put_disabled(self.rec(SyncRecords.Run), True)
        try:
            await self.controller.run()
        except ScanRefused as refusal:
            self.say(f"scan refused: {refusal}", Level.ERROR)
        except Exception as error:  # noqa: BLE001 - shown on Message, the IOC carries on
            log.exception("scan ended with an error")
            self.say(f"scan failed: {error}", Level.ERROR)
        finally:
            set_put_disabled(self.rec(SyncRecords.Run), False)

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
