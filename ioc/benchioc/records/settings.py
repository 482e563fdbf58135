"""Config values behind records (`binds=MotorConfig(...)` / `BenchConfig(...)` in the spec).

A put is checked before the record takes it, written to the config file after, and
refused in words (the scope's Message, and a MAJOR write alarm on the record) otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .. import config as cfg
from .builder import clear_alarm, flag_refused
from .messages import MessageBoard


@dataclass
class ConfigSetting:
    """One config value: where it lives in the document and when it may change."""

    doc: Callable[[], cfg.ConfigDocument]  # the document in use (replaced by outside edits)
    name: str  # the config key, as users see it in the file
    current: Callable[[], Any]
    check: Callable[[Any], Any]  # raises ConfigError
    apply: Callable[[Any], None]  # edits the document (validated again there)
    busy: Callable[[], str | None]  # why the value cannot change now, if it cannot
    board: Callable[[], MessageBoard]  # the scope's Message (built with the records)
    record: Callable[[], Any]  # the record (built after this binding)
    wrote: Callable[[str], None]  # told each text this IOC writes (the follower skips it)
    after_save: Callable[[Any], Awaitable[None]] | None = None

    def handlers(self) -> dict[str, Callable]:
        return {"validate": self.validate, "on_update": self.put}

    def validate(self, record: Any, value: Any) -> bool:
        if self.current() == value:
            return True  # what the file already says (shown after an outside edit)
        refusal = self.busy()
        if refusal is not None:
            refusal = f"{self.name} not changed: {refusal}"
        else:
            try:
                self.check(value)
            except cfg.ConfigError as error:
                refusal = f"{self.name} = {value!r} refused: {first_line(error)}"
        if refusal is None:
            return True
        self.board().error(refusal)
        flag_refused(record)
        return False

    async def put(self, value: Any) -> None:
        if self.current() == value:
            return  # already so: shown after an outside edit of the file, nothing to save
        doc = self.doc()
        try:
            self.apply(value)
            self.wrote(doc.dumps())  # before the file changes: the follower may look at once
            await asyncio.get_running_loop().run_in_executor(None, doc.save)
        except (cfg.ConfigError, OSError) as error:
            self.board().error(f"{self.name} = {value!r} not saved: {first_line(error)}")
            return
        clear_alarm(self.record())  # a refusal alarm left by an earlier put
        self.board().say(f"{self.name} set to {value} and saved to {doc.path.name}")
        if self.after_save is not None:
            await self.after_save(value)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
