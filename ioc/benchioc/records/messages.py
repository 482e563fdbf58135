"""The one way a status, a refusal or a failure reaches a client: a Message record.

Each scope (a motor, the bench, the scans) has one MessageBoard. What it says is logged
and shown on that scope's Message record, cut to what the record holds, with an alarm
that tells how bad it is, so `camonitor`, a screen's colour rule and an alarm handler all
see the same thing.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from softioc import alarm

from .spec import Pv

log = logging.getLogger("benchioc")


class Level(enum.Enum):
    """How bad a message is: its record alarm and its log level."""

    INFO = (alarm.NO_ALARM, alarm.NO_ALARM, logging.INFO)
    NOT_READY = (alarm.MINOR_ALARM, alarm.STATE_ALARM, logging.INFO)  # e.g. half-typed settings
    ERROR = (alarm.MAJOR_ALARM, alarm.STATE_ALARM, logging.WARNING)  # refused or failed

    @property
    def severity(self) -> int:
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]

    @property
    def log_level(self) -> int:
        return self.value[2]


def fit(pv: Pv, text: str) -> str:
    """Text cut to what the record holds (longer text would be refused by the record)."""
    return text[: pv.text_length] if pv.text_length else text


class MessageBoard:
    """The Message record of one scope, and the log beside it."""

    def __init__(self, record: Any, pv: Pv, log_prefix: str = "") -> None:
        self.record = record
        self.pv = pv
        self.log_prefix = log_prefix  # "A: ", "sync: ": what a log reader needs to place it

    @property
    def text(self) -> str:
        return str(self.record.get())

    def say(self, text: str, level: Level = Level.INFO, logged: bool = False) -> None:
        """Show text (logged: the engine already wrote it to the log)."""
        if not logged:
            named = text if text.startswith(self.log_prefix) else self.log_prefix + text
            log.log(level.log_level, "%s", named)
        self.record.set(fit(self.pv, text), severity=level.severity, alarm=level.status)

    def error(self, text: str) -> None:
        self.say(text, Level.ERROR)


class Announcing:
    """A scope's binding that speaks through its MessageBoard (built with its records)."""

    board: MessageBoard | None

    @property
    def message_board(self) -> MessageBoard:
        assert self.board is not None, "records not built"
        return self.board

    def say(self, text: str, level: Level = Level.INFO) -> None:
        self.message_board.say(text, level)
