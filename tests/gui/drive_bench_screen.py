"""Drive the PyDM bench screen headless, as an operator would, and report what it showed.

Run by tests/gui/test_bench_screen.py in its own process, with the CA environment of the
IOC under test: a GUI is its own process in real use too, and a fresh process gives
pyepics (PyDM's CA plugin) a CA context of its own, whatever the test process loaded.

    python drive_bench_screen.py PREFIX DISPLAY REPORT.json SCREENSHOT.png [MORE.png ...]

Each step waits, in the Qt event loop, until all its named checks hold (bounded by a
deadline; no fixed sleeps). The report lists every step with what the screen showed; the
first step that did not complete has ok=false, and names the checks still unmet (or the
error it raised), so a failure says which step and which condition.

A button is pressed only once PyDM can write with it. PyDMPushButton writes nothing while
its channel has not delivered a first value, and the pyepics plugin hooks the button's
writes to the PV (add_listener, in a worker thread) separately from the connection and
value signals the widget sees, so under load a button can be enabled, connected, even
holding a value, while a press still goes nowhere. press_checks() waits for each of these.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

os.environ["QT_QPA_PLATFORM"] = "offscreen"

from qtpy.QtCore import QEventLoop, Qt, QTimer  # noqa: E402
from qtpy.QtTest import QTest  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

from benchioc.records.spec import MotorRecords  # noqa: E402
from benchioc.tools import gui  # noqa: E402

MOTOR = "A"
HOMING_TIMEOUT = 60.0  # seconds; homing A at time scale 20 takes a few
PRESS_TIMEOUT = 15.0  # a press that reached the IOC shows on State well within this

Check = tuple[str, Callable[[], bool]]  # what is waited for, in words, and the test


class StepFailed(Exception):
    pass


def wait_until(checks: Sequence[Check], timeout: float) -> float:
    """Run the Qt event loop until every check holds; return the seconds it took.

    PyDM updates widgets from Qt signals queued to this thread, so the loop must run for
    them to arrive; the checks are looked at between events (every 20 ms at most).
    Raises StepFailed naming the checks that still did not hold at the deadline.
    """
    start = time.monotonic()
    deadline = start + timeout

    def done() -> bool:
        return all(test() for _, test in checks)

    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: (done() or time.monotonic() > deadline) and loop.quit())
    timer.start()
    if not done():
        loop.exec_()
    timer.stop()
    unmet = [words for words, test in checks if not test()]
    if unmet:
        raise StepFailed(unmet)
    return time.monotonic() - start


def writes_hooked(button: Any) -> bool:
    """Whether the button's send_value_signal reaches anything: the data plugin connects
    it to its put only at the end of add_listener, after the widget may have seen the
    connection and the value."""
    try:
        signal = button.send_value_signal[button.channeltype]
    except (KeyError, IndexError, TypeError):
        signal = button.send_value_signal[object]
    return bool(button.receivers(signal))


def button_state(button: Any) -> dict:
    """What PyDM knows about a button's channel (pydm keeps it in these attributes)."""
    return {"channel": button.channel, "connected": bool(getattr(button, "_connected", False)),
            "write_access": bool(getattr(button, "_write_access", False)),
            "value": None if button.value is None else repr(button.value),
            "enabled": button.isEnabled(), "writes_hooked": writes_hooked(button),
            "tooltip": button.toolTip()}


def press_checks(name: str, button: Any, address: str) -> list[Check]:
    """What must hold before a press on a PyDMPushButton can write to address."""
    return [
        (f"{name} is bound to {address}", lambda: button.channel == address),
        (f"{name}'s channel is connected", lambda: bool(getattr(button, "_connected", False))),
        (f"{name} has write access", lambda: bool(getattr(button, "_write_access", False))),
        (f"{name} has its channel's first value (PyDMPushButton sends nothing before)",
         lambda: button.value is not None),
        (f"{name} is enabled", button.isEnabled),
        (f"{name}'s writes are hooked to the PV", lambda: writes_hooked(button)),
    ]


def press(button: Any, sent: list[Any]) -> None:
    """Click the button; sent gets what it emitted to its channel (nothing: no write)."""
    kinds = (int, float, str)
    spy = sent.append
    for kind in kinds:
        button.send_value_signal[kind].connect(spy)
    try:
        QTest.mouseClick(button, Qt.LeftButton)  # the button emits within the click
    finally:
        for kind in kinds:  # or writes_hooked() would count this listener later
            button.send_value_signal[kind].disconnect(spy)


def near(text: str, target: float, within: float) -> bool:
    """Whether a label's text ("0.000" or "0.000 mm") is a number near target."""
    try:
        return abs(float(text.split()[0]) - target) < within
    except (ValueError, IndexError):
        return False


def run(prefix: str, display_path: str, screenshots: list[str]) -> list[dict]:
    steps: list[dict] = []
    seen: Callable[[], dict] = dict  # what the screen shows, once it is loaded
    display = None

    def step(name: str, checks: Sequence[Check], timeout: float) -> None:
        record: dict = {"step": name, "waiting_for": [words for words, _ in checks]}
        steps.append(record)
        try:
            record["seconds"] = round(wait_until(checks, timeout), 3)
            record["ok"] = True
        except StepFailed as failed:
            record["unmet"] = failed.args[0]
            raise
        finally:
            record.update(seen())

    def action(name: str, do: Callable[[], Any]) -> Any:
        """A step that does something once (load, choose, press): its error is reported."""
        steps.append({"step": name})
        result = do()
        steps[-1]["ok"] = True
        return result

    try:
        from pydm.display import load_file

        display = action("load display",
                         lambda: load_file(display_path, macros={"P": prefix}, target=None))
        display.resize(900, 760)
        display.show()
        ui = display.ui
        button = ui.homeHiButton
        table_state = gui.table_cell_name(MOTOR, MotorRecords.State)

        def table_text() -> str | None:
            cell = display.findChild(type(ui.stateLabel), table_state)
            return cell.text() if cell else None

        def seen() -> dict:
            return {"combo": [ui.motorCombo.itemText(i) for i in range(ui.motorCombo.count())],
                    "state": ui.stateLabel.text(), "homed": ui.homedLabel.text(),
                    "busy": ui.busyLabel.text(), "position": ui.positionLabel.text(),
                    "pv_root": ui.pvRootEdit.text(), "table_state": table_text(),
                    "home_hi_channel": button.channel, "home_hi_enabled": button.isEnabled(),
                    "home_hi": button_state(button),
                    "pv_root_enabled": ui.pvRootEdit.isEnabled(), "box": ui.motorBox.title(),
                    "message": ui.messageLabel.text()}

        motor_channels = gui.channels_for(prefix, MOTOR)
        step("motor list", [(f"the chooser lists {MOTOR}",
                             lambda: ui.motorCombo.findText(MOTOR) >= 0)], 20)
        action(f"choose {MOTOR}", lambda: ui.motorCombo.setCurrentText(MOTOR))
        step("connected", [
            (f"motor {MOTOR} chosen", lambda: ui.motorCombo.currentText() == MOTOR),
            ("PvRoot shown", lambda: ui.pvRootEdit.text() != ""),
            ("State shows NotHomed", lambda: ui.stateLabel.text() == "NotHomed"),
            *press_checks("Home hi", button, motor_channels["homeHiButton"]),
        ], 20)
        sent: list[Any] = []
        action("press Home hi", lambda: press(button, sent))
        steps[-1]["press"] = {**button_state(button), "sent": list(sent)}
        step("homing started", [
            ("the press sent a value", lambda: bool(sent)),
            ("State left NotHomed (the IOC started homing)",
             lambda: ui.stateLabel.text() not in ("", "NotHomed")),
        ], PRESS_TIMEOUT)
        step("homed", [("State shows Homed", lambda: ui.stateLabel.text() == "Homed")],
             HOMING_TIMEOUT)
        # Homed, Busy, Position and the table follow in their own monitor updates.
        step("settled", [
            ("Homed shows Yes", lambda: ui.homedLabel.text() == "Yes"),
            ("Busy shows No", lambda: ui.busyLabel.text() == "No"),
            ("the table's State shows Homed", lambda: table_text() == "Homed"),
            ("Position is near the center 0", lambda: near(ui.positionLabel.text(), 0.0, 0.5)),
        ], 5)
        picture = display.grab()
        for path in screenshots:
            picture.save(path)
        action(f"choose {gui.ALL}", lambda: ui.motorCombo.setCurrentText(gui.ALL))
        step("all", press_checks("Home hi", button,
                                 gui.channels_for(prefix, gui.ALL)["homeHiButton"]), 20)
    except StepFailed:
        steps[-1]["ok"] = False
    except Exception:  # noqa: BLE001 - any error ends the session; the report says where
        if not steps or steps[-1].get("ok"):
            steps.append({"step": "(after the last step)"})
        steps[-1].update(ok=False, error=traceback.format_exc(limit=6))
    if display is not None:
        display.close()
    return steps


def main() -> int:
    prefix, display_path, report, *screenshots = sys.argv[1:]
    app = QApplication(["bench-gui-test"])  # noqa: F841 - Qt needs it alive
    steps = run(prefix, display_path, screenshots)
    with open(report, "w") as out:
        json.dump(steps, out, indent=1)
    return 0 if all(s.get("ok") for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
