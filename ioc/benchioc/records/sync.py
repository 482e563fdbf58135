"""The `$(P)Sync:` records, bound to the SyncController (detector-synchronised scans).

Only binding: the scan procedures live in sync/, the record shapes in pvs.py/records.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy
from softioc import alarm

from ..engines.sync import Preview, ScanRefused, ScanSettings, ScanState, ScanUpdate, SyncController
from .builder import message_severity, set_put_disabled
from .spec import SYNC_PVS, Scope

if TYPE_CHECKING:
    from .ioc import Bench

log = logging.getLogger(__name__)

# setting record -> ScanSettings field
SETTINGS = {
    "Mode": "mode", "Motor": "motor", "Start": "start", "End": "end",
    "NumPoints": "num_points", "FramesPerPoint": "frames_per_point",
    "Exposure": "exposure", "Period": "period", "SettleTime": "settle_time",
    "RequireHomed": "require_homed",
}
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "mode": int, "motor": str, "num_points": int, "frames_per_point": int,
    "require_homed": bool,
}


class SyncBinding:
    """Records of the scan: settings in, preview and progress out."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.controller: SyncController | None = None
        self.scanning_motor: str | None = None  # the motor a running scan owns

    def rec(self, name: str):
        return self.bench.record(Scope.SYNC, name)

    def build(self) -> None:
        defaults = ScanSettings(motor=next(iter(self.bench.config.motors), ""))
        handlers: dict[str, dict[str, Callable]] = {
            record: {"on_update": self._setting_put(field)} for record, field in SETTINGS.items()
        }
        handlers["Run"] = {"on_update": self._run}
        handlers["Abort"] = {"on_update": self._abort}
        initial = {record: _record_value(getattr(defaults, field))
                   for record, field in SETTINGS.items()}
        for pv in SYNC_PVS:
            self.bench.add_record(pv, Scope.SYNC, initial=initial.get(pv.name),
                                  **handlers.get(pv.name, {}))

    def start(self, controller: SyncController) -> None:
        self.controller = controller
        controller.update(**self._settings_from_records())
        controller.subscribe(self._on_update)
        # The preview says whether the camera (and, for Fly, the box) answers: follow them.
        controller.watch_devices(self.refresh_preview)
        self.show_preview(controller.preview())

    def _settings_from_records(self) -> dict[str, Any]:
        return {field: _CONVERT.get(field, float)(self.rec(record).get())
                for record, field in SETTINGS.items()}

    def message(self, text: str, error: bool = False, warning: bool = False) -> None:
        """error: a refusal or failure (MAJOR); warning: the settings are not ready to
        run yet, which is normal while someone types them (MINOR)."""
        severity = message_severity(error) if error or not warning else alarm.MINOR_ALARM
        log.log(logging.WARNING if error else logging.INFO, "sync: %s", text)
        self.rec("Message").set(text[:511], severity=severity,
                                alarm=alarm.STATE_ALARM if severity else alarm.NO_ALARM)

    # --- handlers ----------------------------------------------------------------------
    def _setting_put(self, field: str):
        def put(value: Any) -> None:
            if self.controller is None:
                return
            try:
                preview = self.controller.update(**{field: _CONVERT.get(field, float)(value)})
            except (ValueError, TypeError) as error:
                self.message(f"{field} = {value!r} refused: {error}", error=True)
                return
            self.show_preview(preview)

        return put

    def refresh_preview(self) -> None:
        if self.controller is not None:
            self.show_preview(self.controller.preview())

    def show_preview(self, preview: Preview) -> None:
        self.rec("Velocity").set(preview.velocity)
        self.rec("RunUp").set(preview.run_up)
        self.rec("EstimatedTime").set(preview.estimated_time)
        if not self.controller or not self.controller.busy:
            text = preview.message or ("ready: estimated "
                                       f"{preview.estimated_time:.1f} s")
            text = text if preview.ok else f"not ready: {text}"
            if text != self.rec("Message").get():
                self.message(text, warning=not preview.ok)

    async def _run(self, _value: Any) -> None:
        if self.controller is None:
            return
        motor = self.controller.settings.motor
        binding = self.bench.motors.get(motor)
        if binding is not None and binding.homing is not None and binding.homing.busy:
            # one owner per motor: a scan would fight the homing's jog and moves
            self.message(f"scan refused: motor {motor} is homing; wait for it to end or "
                         "abort it", error=True)
            return
        set_put_disabled(self.rec("Run"), True)
        self.scanning_motor = motor
        try:
            await self.controller.run()
        except ScanRefused as refusal:
            self.message(f"scan refused: {refusal}", error=True)
        except Exception as error:  # noqa: BLE001 - shown on Message, the IOC carries on
            log.exception("scan ended with an error")
            self.message(f"scan failed: {error}", error=True)
        finally:
            self.scanning_motor = None
            set_put_disabled(self.rec("Run"), False)
            self.bench.update_summary()  # e.g. a restart that waited for the scan

    def _abort(self, _value: Any) -> None:
        if self.controller is not None:
            self.controller.abort()

    def _on_update(self, update: ScanUpdate) -> None:
        self.rec("State").set(int(update.state))
        self.rec("Busy").set(int(update.busy))
        for record, value in (("Point", update.point),
                              ("FramesAcquired", update.frames_acquired),
                              ("MissedFrames", update.missed_frames),
                              ("Progress", update.progress),
                              ("NumValid", update.num_valid)):
            self.rec(record).set(value)
        for record, values, dtype in (("Positions", update.positions, "float64"),
                                      ("SetPositions", update.set_positions, "float64"),
                                      ("Timestamps", update.timestamps, "float64"),
                                      ("FrameNumbers", update.frame_numbers, "int32")):
            self.rec(record).set(numpy.asarray(values, dtype=dtype))
        self.rec("DataFile").set(update.data_file[:1023])
        self.rec("ScanId").set(update.scan_id[:511])
        # Every frame publishes an update carrying the same text: post (and log) the
        # Message only when it says something new.
        if update.message and update.message != self.rec("Message").get():
            failed = update.state is ScanState.FAILED or update.message.startswith("refused")
            self.message(update.message, error=failed)


def _record_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if hasattr(value, "value") and not isinstance(value, str):
        return int(value)  # enum
    return value
