"""The config edits of motion-box (`add`, `change`, `remove`), checked completely before
the file is touched and then written atomically under the lock the IOC shares, so a
refused edit leaves the file byte-for-byte as it was.

No EPICS here. An edit that changes or removes motors can be given a guard that is asked
before anything is written (motion-box's guard asks the IOC serving the file whether one
of them is homing; see probe.refuse_if_homing)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from ... import config
from ...config import ConfigDocument, ConfigError, MotorConfig
from .display import number


@dataclass(frozen=True)
class Edited:
    """What an edit did to a document: the line to print, and the motors already in the
    file whose settings it changes or which it removes (those a homing must not see go)."""

    message: str
    motors: tuple[str, ...] = ()


Edit = Callable[[ConfigDocument], Edited]
# Asked before the write with the document and Edited.motors; refuses by raising
# ConfigError (one line), which leaves the file untouched.
Guard = Callable[[ConfigDocument, Sequence[str]], None]


def is_all(motor_name: str) -> bool:
    return motor_name.lower() == "all"


def checked_name(name: str) -> str:
    try:
        return config.check_motor_name(name)
    except ValueError as error:
        raise ConfigError(f"motor_name: {error}") from None


def _describe_motor_error(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def build_motor(pv_root: str, lo_lim: float, center: float, hi_lim: float) -> MotorConfig:
    """The motor settings as typed, checked on their own (before the file is read)."""
    try:
        return MotorConfig(pv_root=pv_root, lo_lim=lo_lim, hi_lim=hi_lim, center=center)
    except ValidationError as error:
        raise ConfigError(_describe_motor_error(error)) from None


def settings_text(motor: MotorConfig) -> str:
    return (f"pv_root {motor.pv_root}, lo_lim {number(motor.lo_lim)}, "
            f"center {number(motor.center)}, hi_lim {number(motor.hi_lim)}")


# --- the edits ---------------------------------------------------------------------------
def add_motor(json_path: str, motor_name: str, motor: MotorConfig) -> Edit:
    def edit(document: ConfigDocument) -> Edited:
        document.set_motor(checked_name(motor_name), motor, must_exist=False)
        return Edited(f"added motor {motor_name} ({settings_text(motor)}) to {json_path}")

    return edit


def change_motor(json_path: str, motor_name: str, motor: MotorConfig) -> Edit:
    def edit(document: ConfigDocument) -> Edited:
        before = document.config.motors.get(checked_name(motor_name))
        document.set_motor(motor_name, motor, must_exist=True)
        assert before is not None  # set_motor(must_exist=True) refused a new name
        if all(getattr(before, key) == getattr(motor, key) for key in config.MOTOR_KEYS):
            return Edited(f"motor {motor_name} already has {settings_text(motor)}; "
                          "nothing changed")
        return Edited(f"changed motor {motor_name}: {settings_text(motor)} "
                      f"(was {settings_text(before)})", (motor_name,))

    return edit


def remove_motor(json_path: str, motor_name: str) -> Edit:
    def edit(document: ConfigDocument) -> Edited:
        if is_all(motor_name) and not document.config.motors:
            return Edited(f"{json_path} has no motors; nothing removed")
        removed = document.remove_motor("all" if is_all(motor_name) else motor_name)
        if is_all(motor_name):
            return Edited(f"removed all {len(removed)} motors ({', '.join(removed)}) from "
                          f"{json_path}; general settings kept", tuple(removed))
        return Edited(f"removed motor {motor_name} from {json_path}", tuple(removed))

    return edit


# --- applying an edit --------------------------------------------------------------------
def edit_config(json_path: str, edit: Edit, guard: Guard | None = None) -> str:
    """Apply an edit and write the file atomically under the shared lock.

    The edit runs once on a fresh read to surface every error before any lock file
    exists; then the guard, if any, is asked about the motors the edit changes (outside
    the lock: it may wait on the network, and the IOC takes the same lock to save a put);
    then the edit runs again under the lock on a re-read, so an edit the IOC made in
    between is not lost. The file is written only if its text changes.
    """
    document = config.load(json_path)
    first = _checked_edit(edit, document)
    if guard is not None and first.motors:
        guard(document, first.motors)
    with config.locked(Path(json_path)):
        document = config.load(json_path)
        result = _checked_edit(edit, document)
        text = document.dumps()
        if text != document.text:
            try:
                config.atomic_write(document.path, text)
            except OSError as error:
                raise ConfigError(f"{json_path}: cannot be written ({error.strerror})") \
                    from None
    return result.message


def _checked_edit(edit: Edit, document: ConfigDocument) -> Edited:
    try:
        return edit(document)
    except ConfigError:
        raise
    except ValueError as error:  # a name check in config.py speaks plain ValueError
        raise ConfigError(str(error)) from None
