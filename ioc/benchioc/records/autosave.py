"""What the IOC keeps across its own restarts: per motor, whether it was homed, when, the
calibration that homing left (homing.calibration), and the soft limits a running homing
had disabled. One JSON file in the config's autosave directory, written atomically on
every change, so an IOC killed at any moment comes back knowing what it knew."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .. import config as cfg
from ..engines.homing.calibration import Calibration

log = logging.getLogger(__name__)

STATE_FILE = "homing-state.json"


class HomingStateStore:
    """Homed, LastHomed, the calibration and interrupted limits per motor."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / STATE_FILE
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
               calibration: Calibration | None = None) -> None:
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
        self._write()

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
        self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cfg.atomic_write(self.path, json.dumps(self.data, indent=2) + "\n")
