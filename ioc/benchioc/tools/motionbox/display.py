"""How motion-box shows things on the terminal: numbers as a person writes them, tables,
and the live progress of a homing (one bar per motor on a terminal, one plain line per
change anywhere else). No EPICS here: what to show is handed in."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO


def number(value: float) -> str:
    """A setting or readback as a person writes it: 40, -2.5, 0.001."""
    # a readback of -1e-15 or -0.0 shows as 0 (+ 0.0 turns -0.0 into 0.0)
    return f"{round(value, 9) + 0.0:g}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows,
                                                                          strict=False)]
    lines = [header, *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True))
        .rstrip()
        for line in lines
    )


@dataclass
class Row:
    state: str = "waiting"
    progress: float = 0.0
    message: str = ""


class ProgressDisplay:
    """Live homing progress per motor.

    On a terminal: one line per motor with a bar, redrawn in place. Otherwise (a log,
    a pipe, the Qt GUI's process reader): a plain line whenever a motor's state or
    message changes, never a progress-only line (that would flood a log file).
    """

    BAR_WIDTH = 20

    def __init__(self, names: Sequence[str], stream: TextIO, tty: bool | None = None) -> None:
        self._names = list(names)
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._rows = {name: Row() for name in names}
        self._width = max(len(name) for name in names)
        self._drawn = False

    def row(self, name: str) -> Row:
        return self._rows[name]

    def note(self, text: str) -> None:
        """A line above the live rows (which way homing goes, a warning)."""
        self._stream.write(text + "\n")
        self._stream.flush()

    def update(self, name: str, state: str | None = None, progress: float | None = None,
               message: str | None = None) -> None:
        row = self._rows.get(name)
        if row is None:
            return
        worded = (state is not None and state != row.state) or (
            message is not None and message != row.message)
        row.state = row.state if state is None else state
        row.message = row.message if message is None else message
        row.progress = row.progress if progress is None else max(0.0, min(100.0, progress))
        if self._tty:
            self._redraw()
        elif worded:
            self._stream.write(self._plain_line(name) + "\n")
            self._stream.flush()

    def close(self) -> None:
        if self._tty and self._drawn:
            self._stream.flush()

    def _plain_line(self, name: str) -> str:
        row = self._rows[name]
        text = f"{name}: {row.state} {row.progress:.0f}%"
        return f"{text} {row.message}" if row.message else text

    def _bar_line(self, name: str) -> str:
        row = self._rows[name]
        filled = round(self.BAR_WIDTH * row.progress / 100)
        bar = "#" * filled + "-" * (self.BAR_WIDTH - filled)
        line = f"{name:<{self._width}} [{bar}] {row.progress:3.0f}% {row.state:<11} {row.message}"
        columns = shutil.get_terminal_size().columns
        return line[: max(columns - 1, 20)].rstrip()

    def _redraw(self) -> None:
        if self._drawn:  # back to the first live row, then overwrite every row
            self._stream.write(f"\x1b[{len(self._names)}F")
        for name in self._names:
            self._stream.write("\x1b[2K" + self._bar_line(name) + "\n")
        self._drawn = True
        self._stream.flush()
