"""The PyDM screen, headless (QT_QPA_PLATFORM=offscreen), against bench-ioc on the simulated
bench: press Home hi for motor A on the screen and see its State reach Homed there.

The screen runs in its own process (drive_bench_screen.py), as it does for an operator,
with the CA environment of this IOC: loopback only. Skipped only when PyQt5 or pydm
cannot be imported (CI installs both with the test extra). A screenshot goes to the
test's tmp folder, and to docs/qt-screen.png with BENCH_SCREENSHOTS=1 (so an ordinary run
leaves the checked-in picture alone).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from iocharness import IocProcess

pytest.importorskip("PyQt5", reason="PyQt5 is not installed (pip install -e '.[gui]')")
pytest.importorskip("pydm", reason="pydm is not installed (pip install -e '.[gui]')")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ioc(repo_root, tmp_path_factory):
    path = tmp_path_factory.mktemp("gui") / "bench.yaml"
    shutil.copy(repo_root / "configs" / "bench.yaml", path)
    process = IocProcess(path, time_scale=20)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def steps(ioc, repo_root, tmp_path_factory) -> dict[str, dict]:
    """What the screen showed at each step of the operator's session, by step name."""
    folder = tmp_path_factory.mktemp("screen")
    report = folder / "report.json"
    shots = [str(folder / "qt-screen.png")]
    if os.environ.get("BENCH_SCREENSHOTS") == "1":
        shots.append(str(repo_root / "docs" / "qt-screen.png"))
    env = {**ioc.env, "QT_QPA_PLATFORM": "offscreen"}
    # The driver's own deadlines add up to 140 s; this one only stops a hung process.
    result = subprocess.run(
        [sys.executable, str(repo_root / "tests" / "gui" / "drive_bench_screen.py"),
         ioc.prefix, str(repo_root / "opi" / "bench.py"), str(report), *shots],
        env=env, capture_output=True, text=True, timeout=180)
    assert report.exists(), f"the screen driver wrote no report:\n{result.stderr[-3000:]}"
    taken = json.loads(report.read_text())
    failed = [s for s in taken if not s.get("ok")]
    if failed:
        pytest.fail(_failure(failed[0], ioc), pytrace=False)
    assert (folder / "qt-screen.png").stat().st_size > 10_000
    return {s["step"]: s for s in taken}


def _failure(step: dict, ioc: IocProcess) -> str:
    """Which step of the screen session failed, on what, and what the screen showed."""
    shown = {k: v for k, v in step.items() if k not in ("step", "ok", "unmet", "error",
                                                       "waiting_for")}
    lines = [f"screen step {step['step']!r} failed"]
    if step.get("unmet"):
        lines.append("still not so at its deadline: " + "; ".join(step["unmet"]))
    if step.get("error"):
        lines.append(step["error"])
    lines += [f"the screen showed: {json.dumps(shown)}", "IOC:", *ioc.lines[-30:]]
    return "\n".join(lines)


def test_motor_chooser_lists_the_served_motors_and_all(steps, ioc):
    assert steps["motor list"]["combo"] == [*ioc.motors, "All"]


def test_chosen_motor_shows_its_config_and_state(steps):
    connected = steps["connected"]
    assert connected["pv_root"] == "SIM:A"
    assert connected["state"] == "NotHomed"
    assert connected["box"] == "Motor A"


def test_home_hi_pressed_on_the_screen_reaches_homed_on_the_screen(steps, ioc):
    settled = steps["settled"]
    assert settled["state"] == "Homed"
    assert settled["homed"] == "Yes" and settled["busy"] == "No"
    assert settled["table_state"] == "Homed"
    assert abs(float(settled["position"].split()[0])) < 0.5  # A's center is 0
    assert "homed" in settled["message"]
    assert ioc.caget("A:State") == ["Homed"]  # the screen showed what the IOC holds


def test_home_hi_was_pressed_once_it_could_write(steps):
    press = steps["press Home hi"]["press"]
    assert press["channel"] == "ca://BENCH:A:HomeHi"
    assert press["connected"] and press["write_access"] and press["writes_hooked"]
    assert press["sent"] == [1]  # the button's one write, which started the homing


def test_all_points_the_buttons_at_the_bench_records(steps):
    chosen = steps["all"]
    assert chosen["home_hi_channel"] == "ca://BENCH:HomeAllHi"
    assert chosen["home_hi_enabled"] and not chosen["pv_root_enabled"]
    assert chosen["box"] == "All motors"
