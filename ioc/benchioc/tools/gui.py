"""The PyDM operator screen (opi/bench.ui): pick one motor or all, see and edit its config,
home hi/lo, abort, add and remove motors, with live state, position and message.

Every widget is bound straight to the IOC's records. The motor chooser switches the
widgets' channels; "All" points the homing buttons at the bench-wide records. Add and
Remove run `motion-box add/remove` on the file the IOC names in `$(P)ConfigFile` (no path
is written into the screen); the IOC notices the edit and serves the new motor set, which
arrives here through `$(P)Motors`.

Launch: `bench-gui` (or `pydm -m P=BENCH: opi/bench.py`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..records.spec import BenchRecords, Kind, MotorRecords, Pv, Scope

log = logging.getLogger(__name__)

ALL = "All"
DEFAULT_PREFIX = "BENCH:"
CA = "ca://"


@dataclass(frozen=True)
class Binding:
    """Which record one screen widget shows for a motor, and for "All" (None: disabled)."""

    widget: str
    motor_pv: Pv
    all_pv: Pv | None


# Widget object names in opi/bench.ui and the record each one follows.
BINDINGS: tuple[Binding, ...] = (
    Binding("pvRootEdit", MotorRecords.PvRoot, None),
    Binding("loLimEdit", MotorRecords.LoLim, None),
    Binding("centerEdit", MotorRecords.Center, None),
    Binding("hiLimEdit", MotorRecords.HiLim, None),
    Binding("stateLabel", MotorRecords.State, None),
    Binding("positionLabel", MotorRecords.Position, None),
    Binding("progressLabel", MotorRecords.Progress, None),
    Binding("homedLabel", MotorRecords.Homed, BenchRecords.AllHomed),
    Binding("busyLabel", MotorRecords.Busy, BenchRecords.Busy),
    Binding("lastHomedLabel", MotorRecords.LastHomed, None),
    Binding("messageLabel", MotorRecords.Message, BenchRecords.Message),
    Binding("homeHiButton", MotorRecords.HomeHi, BenchRecords.HomeAllHi),
    Binding("homeLoButton", MotorRecords.HomeLo, BenchRecords.HomeAllLo),
    Binding("abortButton", MotorRecords.Abort, BenchRecords.AbortAll),
)
# Bench-wide widgets: the same record whatever is chosen.
BENCH_BINDINGS: dict[str, Pv] = {
    "toleranceEdit": BenchRecords.Tolerance,
    "benchMessageLabel": BenchRecords.Message,
    "configFileLabel": BenchRecords.ConfigFile,
    "allHomedLabel": BenchRecords.AllHomed,
}
# The live table of every motor: its columns and the record each follows.
TABLE_COLUMNS: tuple[Pv, ...] = (MotorRecords.State, MotorRecords.Position,
                                 MotorRecords.Homed, MotorRecords.Message)
# Read-only text records: a label shows them as text.
TEXT_KINDS = frozenset({Kind.STRING_IN, Kind.LONG_STRING_IN})


def _check_scopes() -> None:
    """Fail at import if a binding takes a record from the wrong scope."""
    for binding in BINDINGS:
        assert binding.motor_pv.scope is Scope.MOTOR, binding
        assert binding.all_pv is None or binding.all_pv.scope is Scope.BENCH, binding
    assert all(pv.scope is Scope.BENCH for pv in BENCH_BINDINGS.values())
    assert all(pv.scope is Scope.MOTOR for pv in TABLE_COLUMNS)


_check_scopes()


def channel(pv: Pv, prefix: str, motor: str | None = None) -> str:
    """The PyDM channel address of one record."""
    return f"{CA}{pv.full_name(prefix, motor)}"


def channels_for(prefix: str, choice: str) -> dict[str, str]:
    """Channel address of each bound widget for a motor name or ALL ("" = no channel)."""
    channels = {}
    for binding in BINDINGS:
        if choice == ALL:
            channels[binding.widget] = (channel(binding.all_pv, prefix) if binding.all_pv
                                        else "")
        else:
            channels[binding.widget] = channel(binding.motor_pv, prefix, choice)
    return channels


def table_cell_name(motor: str, pv: Pv) -> str:
    """Object name of one cell of the live table (a test finds the cell by it)."""
    return f"table{motor}{pv.name}"


def text_widgets() -> set[str]:
    """The bound widgets that show a text record whatever is chosen (PyDM's String
    format: a long string arrives as a char array)."""
    bound = [(b.widget, pv) for b in BINDINGS for pv in (b.motor_pv, b.all_pv) if pv]
    bound += list(BENCH_BINDINGS.items())
    return {widget for widget, _ in bound
            if all(pv.kind in TEXT_KINDS for other, pv in bound if other == widget)}


def parse_motors(value: Any) -> list[str]:
    """Motor names from the `$(P)Motors` value (a long string: str, bytes or char array)."""
    text = as_text(value)
    return [name.strip() for name in text.split(",") if name.strip()]


def as_text(value: Any) -> str:
    """A long-string record's value as text, however the CA client delivered it."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.split("\0", 1)[0]
    if isinstance(value, bytes | bytearray):
        return value.split(b"\0", 1)[0].decode(errors="replace")
    try:
        data = bytes(int(c) & 0xFF for c in value)
    except TypeError:
        return str(value)
    return data.split(b"\0", 1)[0].decode(errors="replace")


def motion_box_args(verb: str, config_file: str, name: str,
                    settings: Sequence[str] = ()) -> list[str]:
    """Arguments for `python -m benchioc.tools.motionbox` to add or remove a motor."""
    if verb not in ("add", "remove"):
        raise ValueError(f"motion-box verb {verb!r} is not add or remove")
    if not config_file:
        raise ValueError("the IOC has not said which config file it uses "
                         f"({BenchRecords.ConfigFile.full_name('$(P)')} is empty or not connected)")
    if not name:
        raise ValueError("give the motor a name (1-16 of A-Z a-z 0-9 _ -)")
    if verb == "add" and len(settings) != 4:
        raise ValueError(f"adding a motor needs pv_root, lo_lim, center and hi_lim; "
                         f"got {len(settings)} values")
    return ["-m", "benchioc.tools.motionbox", verb, config_file, name, *settings]


def default_display() -> Path:
    """opi/bench.py of this checkout (the folder next to ioc/), or of the working folder."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        candidate = root / "opi" / "bench.py"
        if candidate.exists():
            return candidate
    raise FileNotFoundError("no opi/bench.py in the working folder or next to the package: "
                            "run from the project folder or pass --display")


def main(argv: list[str] | None = None) -> None:
    """`bench-gui`: open the PyDM screen with the prefix macro."""
    parser = argparse.ArgumentParser(prog="bench-gui", description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default=os.environ.get("BENCH_PREFIX", DEFAULT_PREFIX),
                        help=f"IOC PV prefix, macro P (default {DEFAULT_PREFIX})")
    parser.add_argument("--motor", default="", help="motor to show first (default: the first)")
    parser.add_argument("--display", help="PyDM display file (default opi/bench.py)")
    args = parser.parse_args(argv)
    display = Path(args.display) if args.display else default_display()
    macros = f"P={args.prefix}" + (f",M={args.motor}" if args.motor else "")
    from pydm import PyDMApplication  # imported late: Qt is only needed for the screen

    app = PyDMApplication(ui_file=str(display), macros=_macro_dict(macros),
                          hide_nav_bar=True, hide_menu_bar=False, hide_status_bar=False)
    sys.exit(app.exec_())


def _macro_dict(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if item)


if __name__ == "__main__":
    main()
