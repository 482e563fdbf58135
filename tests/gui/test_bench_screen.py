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
    result = subprocess.run(
        [sys.executable, str(repo_root / "tests" / "gui" / "drive_bench_screen.py"),
         ioc.prefix, str(repo_root / "opi" / "bench.py"), str(report), *shots],
        env=env, capture_output=True, text=True, timeout=110)
    assert report.exists(), f"the screen driver wrote no report:\n{result.stderr[-3000:]}"
    taken = json.loads(report.read_text())
    failed = [s for s in taken if not s.get("ok")]
    assert not failed, (f"step {failed[0]['step']!r} timed out; the screen showed "
                        f"{failed[0]}\nIOC:\n" + "\n".join(ioc.lines[-30:]))
    assert (folder / "qt-screen.png").stat().st_size > 10_000
    return {s["step"]: s for s in taken}


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


def test_all_points_the_buttons_at_the_bench_records(steps):
    chosen = steps["all"]
    assert chosen["home_hi_channel"] == "ca://BENCH:HomeAllHi"
    assert chosen["home_hi_enabled"] and not chosen["pv_root_enabled"]
    assert chosen["box"] == "All motors"
