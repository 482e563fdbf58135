"""motion-box over real CA, on the simulated bench and on the genuine motor record:
through the IOC that serves the config, with its own engine when the IOC serves another
file, and against a bench that is not there."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from benches import BACKENDS, Bench, open_bench
from benchioc import epicsenv
from iocharness import IocProcess

pytestmark = pytest.mark.integration

MOTION_BOX = [sys.executable, "-m", "benchioc.tools.motionbox"]


def motion_box(env: dict[str, str], *args: str | Path,
               timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*MOTION_BOX, *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


class Running:
    """motion-box in the background; its stdout lines are kept as they arrive."""

    def __init__(self, env: dict[str, str], *args: str | Path) -> None:
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self.process = subprocess.Popen([*MOTION_BOX, *map(str, args)], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._seen:
                self.lines.append(line.rstrip("\n"))
                self._seen.notify_all()

    def wait_for_line(self, text: str, timeout: float = 60) -> str:
        with self._seen:
            found = self._seen.wait_for(
                lambda: any(text in line for line in self.lines) or self.process.poll()
                is not None, timeout)
        matches = [line for line in self.lines if text in line]
        assert found and matches, f"no line with {text!r} in {self.lines}"
        return matches[0]


@pytest.fixture(scope="module", params=BACKENDS)
def bench(request, tmp_path_factory):
    opened = open_bench(request.param, tmp_path_factory.mktemp("served"), time_scale=20)
    yield opened
    opened.stop()


@pytest.fixture(scope="module")
def ioc(bench: Bench) -> IocProcess:
    return bench.ioc


@pytest.fixture(scope="module")
def served_config(ioc: IocProcess) -> Path:
    return ioc.config


@pytest.fixture
def other_config(served_config, tmp_path) -> Path:
    """The same bench in another file: no IOC serves it, so motion-box homes directly."""
    path = tmp_path / served_config.name
    shutil.copy(served_config, path)
    return path


def motor_entry(config: Path, motor: str) -> dict:
    return yaml.safe_load(config.read_text())["motors"][motor]


# --- through the IOC -------------------------------------------------------------------
def test_home_one_motor_goes_through_the_ioc(ioc, served_config):
    result = motion_box(ioc.env, "home", served_config, "B", "hi")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "through the IOC at BENCH:" in result.stdout
    assert "B: Seeking" in result.stdout  # live lines from the IOC's records
    assert result.stdout.rstrip().endswith("B: homed")
    assert ioc.caget("B:State", "B:Homed") == ["Homed", "Yes"]


def test_home_all_through_the_ioc_reports_every_motor(ioc, served_config):
    result = motion_box(ioc.env, "home", served_config, "all", "lo")
    assert result.returncode == 0, result.stdout + result.stderr
    for motor in "ABCDE":
        assert f"{motor}: homed" in result.stdout
    assert ioc.caget("AllHomed") == ["Yes"]


def test_status_and_list_read_the_ioc_records(ioc, served_config):
    assert motion_box(ioc.env, "home", served_config, "A", "hi").returncode == 0
    status = motion_box(ioc.env, "status", served_config, "A")
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("A: Homed at 0 (from IOC BENCH:)")
    assert "last homed: 20" in status.stdout
    listing = motion_box(ioc.env, "list", served_config)
    assert listing.returncode == 0
    row = next(line for line in listing.stdout.splitlines() if line.startswith("A "))
    a = motor_entry(served_config, "A")
    assert row.split()[:6] == ["A", a["pv_root"], *(f"{a[key]:g}" for key in
                                                    ("lo_lim", "center", "hi_lim")), "Homed"]


def test_ctrl_c_aborts_homing_through_the_ioc(ioc, served_config):
    running = Running(ioc.env, "home", served_config, "C", "hi")
    running.wait_for_line("C: Seeking")
    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(timeout=30) == 130
    ioc_state = ioc.caget("C:State", "C:Busy")
    assert ioc_state == ["Aborted", "No"], ioc.caget("C:Message")
    assert ioc.caget("C:Moving") == ["No"]


# --- with its own engine ---------------------------------------------------------------
def test_home_refused_when_an_ioc_serves_another_file_unless_direct(ioc, other_config):
    refused = motion_box(ioc.env, "home", other_config, "E", "lo")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert f"serves {ioc.config.resolve()}" in line and "--direct" in line, line
    assert ioc.caget("E:Busy") == ["No"]
    result = motion_box(ioc.env, "home", "--direct", other_config, "E", "lo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "directly over CA" in result.stdout
    assert result.stdout.rstrip().endswith("E: homed")
    e = motor_entry(other_config, "E")
    (rbv,) = ioc.run_tool("caget", "-t", f"{e['pv_root']}.RBV").stdout.split()
    assert float(rbv) == pytest.approx(e["center"], abs=0.01)


def test_home_fails_with_the_reason_for_a_missing_motor(ioc, other_config):
    added = motion_box(ioc.env, "add", other_config, "F", "SIM:NOPE", "-5", "0", "5")
    assert added.returncode == 0, added.stderr
    result = motion_box(ioc.env, "home", "--direct", "--connect-timeout", "1", other_config,
                        "F", "hi")
    assert result.returncode == 1
    assert "F: NOT homed: not connected" in result.stderr


def test_ctrl_c_stops_a_motor_homed_directly(ioc, other_config):
    running = Running(ioc.env, "home", "--direct", other_config, "C", "lo")
    running.wait_for_line("C: Seeking")
    running.process.send_signal(signal.SIGINT)
    assert running.process.wait(timeout=30) == 130
    dmov, = ioc.run_tool("caget", "-t", f"{motor_entry(other_config, 'C')['pv_root']}.DMOV"
                         ).stdout.split()
    assert dmov == "1"


# --- no bench --------------------------------------------------------------------------
def test_an_offline_bench_lists_quickly_as_unreachable(other_config):
    env = epicsenv.loopback_env(ca_ports=[epicsenv.free_port()])
    started = time.monotonic()
    result = motion_box(env, "list", other_config)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()[1:6]
    assert [row.split()[-1] for row in rows] == ["unreachable"] * 5
    assert elapsed < 5, f"list took {elapsed:.1f} s with nothing answering"
    status = motion_box(env, "status", other_config, "A")
    assert status.returncode == 1
    assert "A: unreachable" in status.stdout and "did not answer within 1 s" in status.stdout
