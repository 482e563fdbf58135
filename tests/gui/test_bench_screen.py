"""The PyDM screen, headless (QT_QPA_PLATFORM=offscreen), against bench-ioc on the simulated
bench: press Home hi for motor A on the screen and see its State reach Homed there.

Skipped only when PyQt5 or pydm cannot be imported (CI installs both with the test extra).
A screenshot goes to the test's tmp folder, and to docs/qt-screen.png with
BENCH_SCREENSHOTS=1 (so an ordinary run leaves the checked-in picture alone).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from iocharness import IocProcess

pytest.importorskip("PyQt5", reason="PyQt5 is not installed (pip install -e '.[gui]')")
pytest.importorskip("pydm", reason="pydm is not installed (pip install -e '.[gui]')")

pytestmark = pytest.mark.integration

os.environ["QT_QPA_PLATFORM"] = "offscreen"

from qtpy.QtCore import QEventLoop, Qt, QTimer  # noqa: E402
from qtpy.QtTest import QTest  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

HOMING_TIMEOUT = 60.0  # seconds; homing A at time scale 20 takes a few


def wait_until(condition: Callable[[], bool], timeout: float,
               what: str | Callable[[], str]) -> None:
    """Run the Qt event loop until condition() holds, for at most timeout seconds.

    PyDM updates widgets from Qt signals queued to this thread, so the loop must run for
    them to arrive; the condition is looked at between events (every 20 ms at most).
    """
    deadline = time.monotonic() + timeout
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: (condition() or time.monotonic() > deadline) and loop.quit())
    timer.start()
    if not condition():
        loop.exec_()
    timer.stop()
    if not condition():
        told = what() if callable(what) else what
        pytest.fail(f"after {timeout:.0f} s still waiting for {told}")


@pytest.fixture(scope="module")
def ioc(repo_root, tmp_path_factory):
    path = tmp_path_factory.mktemp("gui") / "bench.yaml"
    shutil.copy(repo_root / "configs" / "bench.yaml", path)
    process = IocProcess(path, time_scale=20)
    yield process
    process.stop()


_APP: list[QApplication] = []  # one for the whole session: Qt objects outlive modules


@pytest.fixture(scope="module")
def app():
    if not _APP:
        _APP.append(QApplication.instance() or QApplication(["bench-gui-test"]))
    return _APP[0]


@pytest.fixture(scope="module")
def screen(ioc, app, repo_root):
    """One screen for the module: its CA channels live as long as the CA context."""
    with pytest.MonkeyPatch.context() as patch:
        # PyDM's CA plugin (pyepics) reads the CA environment when its context starts:
        # point it at this IOC and its simulated bench only, on loopback.
        for key, value in ioc.env.items():
            if key.startswith("EPICS_"):
                patch.setenv(key, value)
        _restart_pyepics_context()
        from pydm.display import load_file

        display = load_file(str(repo_root / "opi" / "bench.py"),
                            macros={"P": ioc.prefix}, target=None)
        display.resize(900, 760)
        display.show()
        yield display
        display.close()


def _restart_pyepics_context() -> None:
    """A CA context made earlier in this process would still use the old address list.

    Only safe while no PV of that context is alive, hence the module-scoped screen.
    """
    import epics.ca

    if epics.ca.libca is not None:
        epics.ca.finalize_libca()
        epics.ca.initialize_libca()


def test_home_hi_pressed_on_the_screen_reaches_homed_on_the_screen(screen, ioc, repo_root,
                                                                   tmp_path):
    ui = screen.ui
    wait_until(lambda: ui.motorCombo.findText("A") >= 0, 20, "the motor list from $(P)Motors")
    assert [ui.motorCombo.itemText(i) for i in range(ui.motorCombo.count())] == [
        *ioc.motors, "All"]
    ui.motorCombo.setCurrentText("A")
    wait_until(lambda: ui.homeHiButton.isEnabled() and ui.stateLabel.text() == "NotHomed",
               20, "Home hi to connect and State to read NotHomed")
    wait_until(lambda: ui.pvRootEdit.text() == "SIM:A", 10, "PvRoot to show SIM:A")

    QTest.mouseClick(ui.homeHiButton, Qt.LeftButton)

    wait_until(lambda: ui.stateLabel.text() == "Homed", HOMING_TIMEOUT,
               lambda: "State to read Homed; the IOC said:\n" + "\n".join(ioc.lines[-40:]))
    # Homed, Position and the table follow in their own monitor updates.
    wait_until(lambda: screen.findChild(type(ui.stateLabel), "tableAState").text() == "Homed",
               5, "the live table row of A to read Homed")
    wait_until(lambda: ui.homedLabel.text() == "Yes", 5, "Homed to read Yes")
    wait_until(lambda: ui.busyLabel.text() == "No", 5, "Busy to read No")
    wait_until(lambda: abs(float(ui.positionLabel.text().split()[0])) < 0.5, 5,
               "Position to be at A's center, 0")
    assert ioc.caget("A:State") == ["Homed"]  # the screen showed what the IOC holds

    _save_screenshot(screen, tmp_path, repo_root)


def test_all_points_the_buttons_at_the_bench_records(screen):
    ui = screen.ui
    wait_until(lambda: ui.motorCombo.findText("All") >= 0, 20, "the motor list")
    ui.motorCombo.setCurrentText("All")
    assert ui.homeHiButton.channel.endswith(":HomeAllHi")
    assert not ui.pvRootEdit.isEnabled()
    wait_until(lambda: ui.homeHiButton.isEnabled(), 20, "HomeAllHi to connect")
    assert ui.motorBox.title() == "All motors"


def _save_screenshot(screen, tmp_path: Path, repo_root: Path) -> None:
    picture = screen.grab()
    assert picture.save(str(tmp_path / "qt-screen.png"))
    if os.environ.get("BENCH_SCREENSHOTS") == "1":
        assert picture.save(str(repo_root / "docs" / "qt-screen.png"))

