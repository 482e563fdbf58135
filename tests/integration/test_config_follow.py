"""The IOC follows its config file: edits by motion-box (or by hand) show on the records."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchioc import config
from camon import CaMonitor
from iocharness import IocProcess

pytestmark = pytest.mark.integration


CONFIG = "motion_box.json"  # sim_ioc serves a copy of configs/motion_box.json


def motion_box(ioc: IocProcess, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchioc.tools.motionbox", *args], env=ioc.env,
                          capture_output=True, text=True, timeout=60)


def test_motion_box_change_shows_on_the_records(sim_ioc):
    name = sim_ioc.pv("A:LoLim")
    with CaMonitor(sim_ioc.env, name) as monitor:
        monitor.wait_for(name, lambda v: True)  # the first (current) value
        result = motion_box(sim_ioc, "change", str(sim_ioc.config), "A", "SIM:A", "-30", "0", "30")
        assert result.returncode == 0, result.stderr
        monitor.wait_for(name, lambda v: float(v) == -30, timeout=15)
    assert sim_ioc.caget("A:HiLim") == ["30"]


def test_malformed_hand_edit_is_reported_and_ignored(sim_ioc):
    good = sim_ioc.config.read_text()
    name = sim_ioc.pv("Message")
    with CaMonitor(sim_ioc.env, name) as monitor:
        monitor.wait_for(name, lambda v: True)
        start = monitor.count(name)
        sim_ioc.config.write_text(good.replace('"hi_lim": 20', '"hi_lim": "twenty"'))
        index = monitor.wait_for(name, lambda v: True, timeout=15, start=start)
        text = monitor.texts(name)[index]
    sim_ioc.config.write_text(good)
    assert "ignored" in text and "motors.B.hi_lim" in text
    assert sim_ioc.caget("B:HiLim") == ["20"]


def test_added_motor_gets_its_records(sim_ioc):
    result = motion_box(sim_ioc, "add", str(sim_ioc.config), "F", "SIM:F", "-1", "0", "1")
    assert result.returncode == 0, result.stderr
    # the IOC re-executes itself to serve the new motor set; wait for F's records
    got = sim_ioc.run_tool("caget", "-w", "30", "-t", sim_ioc.pv("F:State"))
    assert got.stdout.split() == ["NotHomed"], got.stdout + got.stderr + sim_ioc.output()
    connected = sim_ioc.pv("F:Connected")
    with CaMonitor(sim_ioc.env, connected) as monitor:
        monitor.wait_value(connected, "Yes", timeout=15)
    assert "F" in config.load(sim_ioc.config).config.motors


def test_a_changed_camera_section_restarts_the_ioc(sim_ioc):
    """The camera's client is built at the start: an edit of the detector section is
    served by a restart (before, it was announced as applied and ignored)."""
    document = json.loads(sim_ioc.config.read_text())
    document.setdefault("detector", {})["flat_position"] = 7
    message, heartbeat = sim_ioc.pv("Message"), sim_ioc.pv("Heartbeat")
    with CaMonitor(sim_ioc.env, message, heartbeat) as monitor:
        monitor.wait_for(message, lambda v: True)
        start = monitor.count(message)
        sim_ioc.config.write_text(json.dumps(document, indent=2))
        index = monitor.wait_for(message, lambda v: True, timeout=15, start=start)
        assert "detector section changed" in monitor.texts(message)[index]
        # the IOC goes away and comes back (camonitor reconnects): its heartbeat restarts
        gone = monitor.wait_for(heartbeat, lambda v: v == "***", timeout=30)
        monitor.wait_for(heartbeat, lambda v: v.isdigit(), timeout=30, start=gone)
