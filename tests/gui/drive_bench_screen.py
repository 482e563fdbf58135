"""Drive the PyDM bench screen headless, as an operator would, and report what it showed.

Run by tests/gui/test_bench_screen.py in its own process, with the CA environment of the
IOC under test: a GUI is its own process in real use too, and a fresh process gives
pyepics (PyDM's CA plugin) a CA context of its own, whatever the test process loaded.

    python drive_bench_screen.py PREFIX DISPLAY REPORT.json SCREENSHOT.png [MORE.png ...]

Each step waits, in the Qt event loop, for what the screen should show (bounded by a
deadline); the report lists every step with what was seen, and stops at the first step
that timed out.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

os.environ["QT_QPA_PLATFORM"] = "offscreen"

from qtpy.QtCore import QEventLoop, Qt, QTimer  # noqa: E402
from qtpy.QtTest import QTest  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

HOMING_TIMEOUT = 60.0  # seconds; homing A at time scale 20 takes a few


class StepTimedOut(Exception):
    pass


def wait_until(condition: Callable[[], bool], timeout: float) -> float:
    """Run the Qt event loop until condition() holds; return the seconds it took.

    PyDM updates widgets from Qt signals queued to this thread, so the loop must run for
    them to arrive; the condition is looked at between events (every 20 ms at most).
    """
    start = time.monotonic()
    deadline = start + timeout
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: (condition() or time.monotonic() > deadline) and loop.quit())
    timer.start()
    if not condition():
        loop.exec_()
    timer.stop()
    if not condition():
        raise StepTimedOut
    return time.monotonic() - start


def near(text: str, target: float, within: float) -> bool:
    """Whether a label's text ("0.000" or "0.000 mm") is a number near target."""
    try:
        return abs(float(text.split()[0]) - target) < within
    except (ValueError, IndexError):
        return False


def run(prefix: str, display_path: str, screenshots: list[str]) -> list[dict]:
    from pydm.display import load_file

    display = load_file(display_path, macros={"P": prefix}, target=None)
    display.resize(900, 760)
    display.show()
    ui = display.ui
    steps: list[dict] = []

    def seen() -> dict:
        table = display.findChild(type(ui.stateLabel), "tableAState")
        return {"combo": [ui.motorCombo.itemText(i) for i in range(ui.motorCombo.count())],
                "state": ui.stateLabel.text(), "homed": ui.homedLabel.text(),
                "busy": ui.busyLabel.text(), "position": ui.positionLabel.text(),
                "pv_root": ui.pvRootEdit.text(), "table_state": table.text() if table else None,
                "home_hi_channel": ui.homeHiButton.channel,
                "home_hi_enabled": ui.homeHiButton.isEnabled(),
                "pv_root_enabled": ui.pvRootEdit.isEnabled(), "box": ui.motorBox.title(),
                "message": ui.messageLabel.text()}

    def step(name: str, condition: Callable[[], bool], timeout: float) -> None:
        record = {"step": name}
        steps.append(record)
        try:
            record["seconds"] = round(wait_until(condition, timeout), 3)
            record["ok"] = True
        finally:
            record.update(seen())

    try:
        step("motor list", lambda: ui.motorCombo.findText("A") >= 0, 20)
        ui.motorCombo.setCurrentText("A")
        step("connected", lambda: ui.homeHiButton.isEnabled() and ui.pvRootEdit.text() != ""
             and ui.stateLabel.text() == "NotHomed", 20)
        QTest.mouseClick(ui.homeHiButton, Qt.LeftButton)
        step("homed", lambda: ui.stateLabel.text() == "Homed", HOMING_TIMEOUT)
        # Homed, Busy, Position and the table follow in their own monitor updates.
        step("settled", lambda: ui.homedLabel.text() == "Yes" and ui.busyLabel.text() == "No"
             and display.findChild(type(ui.stateLabel), "tableAState").text() == "Homed"
             and near(ui.positionLabel.text(), 0.0, 0.5), 5)
        picture = display.grab()
        for path in screenshots:
            picture.save(path)
        ui.motorCombo.setCurrentText("All")
        step("all", lambda: ui.homeHiButton.isEnabled(), 20)
    except StepTimedOut:
        steps[-1]["ok"] = False
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
