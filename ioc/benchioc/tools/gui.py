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

from ..records.spec import Scope, by_name

log = logging.getLogger(__name__)

ALL = "All"
DEFAULT_PREFIX = "BENCH:"
CA = "ca://"


@dataclass(frozen=True)
class Binding:
    """Which record one screen widget shows for a motor, and for "All" (None: disabled)."""

    widget: str
    motor_pv: str
    all_pv: str | None


# Widget object names in opi/bench.ui and the record each one follows.
BINDINGS: tuple[Binding, ...] = (
    Binding("pvRootEdit", "PvRoot", None),
    Binding("loLimEdit", "LoLim", None),
    Binding("centerEdit", "Center", None),
    Binding("hiLimEdit", "HiLim", None),
    Binding("stateLabel", "State", None),
    Binding("positionLabel", "Position", None),
    Binding("progressLabel", "Progress", None),
    Binding("homedLabel", "Homed", "AllHomed"),
    Binding("busyLabel", "Busy", "Busy"),
    Binding("lastHomedLabel", "LastHomed", None),
    Binding("messageLabel", "Message", "Message"),
    Binding("homeHiButton", "HomeHi", "HomeAllHi"),
    Binding("homeLoButton", "HomeLo", "HomeAllLo"),
    Binding("abortButton", "Abort", "AbortAll"),
)
# Bench-wide widgets: the same record whatever is chosen.
BENCH_BINDINGS: dict[str, str] = {
    "toleranceEdit": "Tolerance",
    "benchMessageLabel": "Message",
    "configFileLabel": "ConfigFile",
    "allHomedLabel": "AllHomed",
}
# The live table of every motor: its columns and the record each follows.
TABLE_COLUMNS: tuple[str, ...] = ("State", "Position", "Homed", "Message")


def _check_spec() -> None:
    """Fail at import if a binding names a record the spec does not have."""
    motor, bench = by_name(Scope.MOTOR), by_name(Scope.BENCH)
    for binding in BINDINGS:
        assert binding.motor_pv in motor, binding
        assert binding.all_pv is None or binding.all_pv in bench, binding
    assert set(BENCH_BINDINGS.values()) <= set(bench)
    assert set(TABLE_COLUMNS) <= set(motor)


_check_spec()


def channels_for(prefix: str, choice: str) -> dict[str, str]:
    """Channel address of each bound widget for a motor name or ALL ("" = no channel)."""
    channels = {}
    for binding in BINDINGS:
        if choice == ALL:
            pv = f"{prefix}{binding.all_pv}" if binding.all_pv else ""
        else:
            pv = f"{prefix}{choice}:{binding.motor_pv}"
        channels[binding.widget] = f"{CA}{pv}" if pv else ""
    return channels


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
                         "($(P)ConfigFile is empty or not connected)")
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
