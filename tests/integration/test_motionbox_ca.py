"""motion-box over real CA, on the simulated bench and on the genuine motor record:
through the IOC that serves the config, with its own engine when the IOC serves another
file, refusing to edit a motor the IOC is homing, and against a bench that is not there."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from benches import Bench, put_many
from benchioc import epicsenv
from camon import CaMonitor, server_port
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


# Every phase of a homing slow (seek and creep at JVEL, centring at VELO), so that it
# lasts many motion-box runs wherever the motor starts from: what a test does "while it
# homes" then meets a homing, however loaded the machine.
SLOW_SPEEDS = {"JVEL": 0.05, "VELO": 0.05}
HOMING_PHASES = ("Seeking", "Calibrating", "Centering")


@contextlib.contextmanager
def slowed(bench: Bench, motor: str):
    """The motor record behind `motor` at SLOW_SPEEDS; its own speeds put back after."""
    root = bench.root(motor)
    fields = [f"{root}.{field}" for field in SLOW_SPEEDS]
    speeds = bench.ioc.run_tool("caget", "-t", "-w", "5", *fields).stdout.split()
    assert len(speeds) == len(fields), speeds
    put_many(bench.env, dict(zip(fields, SLOW_SPEEDS.values(), strict=True)))
    try:
        yield
    finally:  # plain puts: a put-callback would wait for a motor a failed test left moving
        for field, speed in zip(fields, speeds, strict=True):
            bench.ioc.run_tool("caput", "-t", field, speed)


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


def test_ctrl_c_aborts_homing_through_the_ioc(bench, ioc, served_config):
    state, busy, moving = (ioc.pv(f"C:{name}") for name in ("State", "Busy", "Moving"))
    with slowed(bench, "C"), CaMonitor(ioc.env, state, busy, moving) as monitor:
        running = Running(ioc.env, "home", served_config, "C", "hi")
        running.wait_for_line("C: Seeking")
        running.process.send_signal(signal.SIGINT)
        assert running.process.wait(timeout=30) == 130
        assert "interrupted: putting BENCH:C:Abort to stop the motors" in running.lines
        # the IOC ends the homing on the Abort put (a moment after motion-box has gone)
        monitor.wait_value(state, "Aborted", timeout=30)
        monitor.wait_value(busy, "No", timeout=30)
        monitor.wait_for(moving, lambda v: v == "No",
                         start=monitor.count(moving) - 1, timeout=30)


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


def test_ctrl_c_stops_a_motor_homed_directly(bench, ioc, other_config):
    with slowed(bench, "C"):
        running = Running(ioc.env, "home", "--direct", other_config, "C", "lo")
        running.wait_for_line("C: Seeking")
        running.process.send_signal(signal.SIGINT)
        assert running.process.wait(timeout=30) == 130
    dmov, = ioc.run_tool("caget", "-t", f"{motor_entry(other_config, 'C')['pv_root']}.DMOV"
                         ).stdout.split()
    assert dmov == "1"


# --- no edit of a motor the IOC is homing -------------------------------------------------
@pytest.fixture
def homing_slowly(bench: Bench, ioc: IocProcess):
    """B homing lo through the IOC, slowed down so that the homing outlasts the test;
    yields a monitor on B's State and Busy, on which the homing is seen under way (Busy
    Yes, State Seeking) before the test runs. Aborted after."""
    state, busy = ioc.pv("B:State"), ioc.pv("B:Busy")
    with slowed(bench, "B"), CaMonitor(ioc.env, state, busy) as monitor:
        monitor.wait_value(busy, "No", timeout=10)
        started = ioc.caput("B:HomeLo", "1", callback=False)
        assert started.returncode == 0, started.stdout + started.stderr
        under_way = monitor.wait_value(busy, "Yes", timeout=10)
        monitor.wait_value(state, "Seeking", timeout=10)
        yield monitor
        # still homing after everything the test tried: the refusals met a homing
        assert "No" not in monitor.values(busy)[under_way:], monitor.texts(state)
        assert ioc.caput("B:Abort", "1").returncode == 0
        monitor.wait_value(busy, "No", timeout=30, start=under_way)


def test_edits_of_a_motor_the_ioc_is_homing_are_refused(ioc, served_config, homing_slowly):
    before = served_config.read_bytes()
    b = motor_entry(served_config, "B")
    settings = [b["pv_root"], str(b["lo_lim"] - 1), str(b["center"]), str(b["hi_lim"])]
    for args, verb in (((served_config, "B", *settings), "change"),
                       ((served_config, "B"), "remove")):
        refused = motion_box(ioc.env, verb, *args)
        assert (refused.returncode, refused.stdout) == (2, ""), refused.stderr
        assert refused.stderr == (f"motion-box {verb}: B is homing; abort it first "
                                  f"(BENCH:B:Abort) or let it end; nothing written\n")
    every = motion_box(ioc.env, "remove", served_config, "all")
    assert every.returncode == 2, every.stdout + every.stderr
    assert every.stderr == ("motion-box remove: B is homing; abort it first "
                            "(BENCH:B:Abort) or let it end; nothing written\n")
    assert served_config.read_bytes() == before
    assert float(ioc.caget("B:LoLim")[0]) == b["lo_lim"]
    busy, state = ioc.caget("B:Busy", "B:State")  # still homing, after all that
    assert (busy, state in HOMING_PHASES) == ("Yes", True), state


def test_edits_of_other_motors_and_other_files_go_ahead_while_one_homes(
        ioc, served_config, other_config, homing_slowly):
    a = motor_entry(served_config, "A")
    moved = [a["pv_root"], str(a["lo_lim"]), str(a["center"] + 1), str(a["hi_lim"])]
    changed = motion_box(ioc.env, "change", served_config, "A", *moved)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert motor_entry(served_config, "A")["center"] == a["center"] + 1
    back = motion_box(ioc.env, "change", served_config, "A", a["pv_root"], str(a["lo_lim"]),
                      str(a["center"]), str(a["hi_lim"]))
    assert back.returncode == 0, back.stdout + back.stderr
    # the same motors in a file no IOC serves: no IOC holds it, so nothing to ask
    removed = motion_box(ioc.env, "remove", other_config, "B")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "B" not in yaml.safe_load(other_config.read_text())["motors"]


def test_an_edit_is_refused_when_the_serving_ioc_cannot_be_reached(ioc, served_config):
    """The IOC holds the file, but this shell's CA does not reach it: refused at once,
    since the edit could land in a homing."""
    env = epicsenv.loopback_env(ca_ports=[server_port()])
    before = served_config.read_bytes()
    started = time.monotonic()
    refused = motion_box(env, "remove", served_config, "E")
    elapsed = time.monotonic() - started
    assert refused.returncode == 2, refused.stdout + refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("motion-box remove: cannot tell whether E is homing: bench-ioc "
                           "with prefix BENCH: on "), line
    assert "BENCH:ConfigFile did not answer within 1 s" in line
    assert "EPICS_CA_ADDR_LIST" in line and line.endswith("nothing written")
    assert served_config.read_bytes() == before
    assert elapsed < 8, f"the refusal took {elapsed:.1f} s"  # 1 s of CA, the rest start-up


# --- no bench --------------------------------------------------------------------------
def test_an_offline_bench_lists_quickly_as_unreachable(other_config):
    env = epicsenv.loopback_env(ca_ports=[server_port()])
    started = time.monotonic()
    motion_box(env, "help")  # what starting the program costs on this machine, now
    startup = time.monotonic() - started
    started = time.monotonic()
    result = motion_box(env, "list", other_config)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()[1:6]
    assert [row.split()[-1] for row in rows] == ["unreachable"] * 5
    # the five 1 s reads run together: one after the other they would add 5 s
    assert elapsed - startup < 4, f"list took {elapsed:.1f} s (start-up {startup:.1f} s)"
    status = motion_box(env, "status", other_config, "A")
    assert status.returncode == 1
    assert "A: unreachable" in status.stdout and "did not answer within 1 s" in status.stdout
