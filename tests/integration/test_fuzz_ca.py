"""Bad input on every writable PV, over real CA: wrong types, NaN, infinities, huge and
empty strings, names with spaces or quotes, values outside limits, rapid repeated puts
and puts while busy. The IOC stays up, every refusal shows, and the file stays valid."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchioc import config as cfg
from camon import CaMonitor
from iocharness import IocProcess

pytestmark = pytest.mark.integration

MOTOR = "B"


def read(ioc: IocProcess, *names: str) -> list[str]:
    result = ioc.run_tool("caget", "-w", "5", "-t", "-S", *[ioc.pv(n) for n in names])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def put(ioc: IocProcess, name: str, value: str) -> subprocess.CompletedProcess:
    return ioc.run_tool("caput", "-t", "-c", "-w", "10", ioc.pv(name), value, timeout=20)


def put_failed(result: subprocess.CompletedProcess) -> bool:
    text = result.stdout + result.stderr
    return result.returncode != 0 or "failed" in text or "Error" in text


def severity(ioc: IocProcess, name: str) -> str:
    fields = ioc.run_tool("caget", "-w", "5", "-a", ioc.pv(name)).stdout.split()
    return fields[-1] if fields[-1] in ("MINOR", "MAJOR", "INVALID") else "NO_ALARM"




NUMBERS = ["nan", "inf", "-inf", "1e999", "abc", "", "1,5", "9" * 300, "1000", "-1000"]
RECORDS = {f"{MOTOR}:LoLim": f"{MOTOR}:Message", f"{MOTOR}:HiLim": f"{MOTOR}:Message",
           "Tolerance": "Message"}


def value_and_stamp(ioc: IocProcess, record: str) -> tuple[str, str, str]:
    """The record's value, and its Message's text and timestamp (which changes when
    the IOC posts a new Message), in one caget."""
    names = [ioc.pv(record), ioc.pv(RECORDS[record])]
    lines = ioc.run_tool("caget", "-w", "5", "-a", "-S", *names).stdout.splitlines()
    value = lines[0].split()[3]
    message_fields = lines[1].split(None, 3) + [""]
    return value, " ".join(message_fields[1:3]), message_fields[3]


@pytest.mark.parametrize("record", list(RECORDS))
def test_bad_numbers_are_refused_visibly(sim_ioc, record):
    before_file = sim_ioc.config.read_bytes()
    for value in NUMBERS:
        before, posted, _ = value_and_stamp(sim_ioc, record)
        result = put(sim_ioc, record, value)
        after, stamp_after, message = value_and_stamp(sim_ioc, record)
        if after != before:  # accepted: only a finite number that keeps the config valid
            assert math.isfinite(float(after)), message
            cfg.load(sim_ioc.config)
            assert put(sim_ioc, record, before).returncode == 0
            continue
        refused_by_ioc = stamp_after != posted
        if refused_by_ioc:
            assert "refused" in message, message
            assert severity(sim_ioc, RECORDS[record]) == "MAJOR"
        elif value == "" and float(before) == 0:
            continue  # EPICS reads an empty string as 0: a put of the same value
        else:
            assert put_failed(result), (value, message, result.stdout)
    assert sim_ioc.config.read_bytes() == before_file


def test_refused_put_alarms_the_written_record(sim_ioc):
    put(sim_ioc, f"{MOTOR}:LoLim", "1000")
    assert severity(sim_ioc, f"{MOTOR}:LoLim") != "NO_ALARM"


@pytest.mark.parametrize("value", ["SIM:B C", 'SIM:"B"', "SIM:'B'", "SIM:B.VAL", "",
                                   " ", "SIM:B\t", "Ünïcode", "../B", "a;b c"])
def test_bad_pv_roots_are_refused_visibly(sim_ioc, value):
    before_file = sim_ioc.config.read_bytes()
    result = put(sim_ioc, f"{MOTOR}:PvRoot", value)
    root, message = read(sim_ioc, f"{MOTOR}:PvRoot", f"{MOTOR}:Message")
    assert root == "SIM:B", (value, message)
    assert ("refused" in message and "pv_root" in message) or put_failed(result), message
    assert sim_ioc.config.read_bytes() == before_file


@pytest.mark.parametrize("action", [f"{MOTOR}:Abort", "AbortAll"])
@pytest.mark.parametrize("value", ["abc", "-1", "2", "nan", "", "1e9"])
def test_odd_values_on_actions_do_no_harm(sim_ioc, action, value):
    put(sim_ioc, action, value)
    assert read(sim_ioc, f"{MOTOR}:Busy", "Busy") == ["No", "No"]


def test_rapid_repeated_puts_end_with_the_last_value_saved(sim_ioc):
    values = [f"{0.1 * (i % 7):.1f}" for i in range(15)] + ["0.3"]
    for value in values:  # no callback: as fast as a client can send them
        sim_ioc.run_tool("caput", "-t", sim_ioc.pv(f"{MOTOR}:Center"), value)
    assert put(sim_ioc, f"{MOTOR}:Center", "0.3").returncode == 0  # completes after the save
    assert read(sim_ioc, f"{MOTOR}:Center") == ["0.3"]
    assert cfg.load(sim_ioc.config).config.motors[MOTOR].center == 0.3
    put(sim_ioc, f"{MOTOR}:Center", "0")


@pytest.fixture
def slow_motor(sim_ioc):
    """B jogging and moving slowly, so its homing outlasts several caputs (~0.2 s each)."""
    speeds = sim_ioc.run_tool("caget", "-t", "SIM:B.JVEL", "SIM:B.VELO").stdout.split()
    for field in ("JVEL", "VELO"):
        assert sim_ioc.run_tool("caput", "-t", f"SIM:B.{field}", "0.5").returncode == 0
    yield
    for field, speed in zip(("JVEL", "VELO"), speeds, strict=True):
        sim_ioc.run_tool("caput", "-t", f"SIM:B.{field}", speed)


def home_in_background(ioc: IocProcess, direction: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "caput"), "-t", "-c", "-w", "60",
         ioc.pv(f"{MOTOR}:Home{direction}"), "1"], env=ioc.env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)


def homings_after(ioc: IocProcess, puts) -> tuple[list[str], list, str]:
    """Start homing B lo, run `puts` while it is busy, wait for the end plus a heartbeat;
    returns the State updates seen, what `puts` returned and every Message posted (the
    homing's progress overwrites a refusal on Message within ~0.1 s)."""
    state, busy, beat = (ioc.pv(f"{MOTOR}:State"), ioc.pv(f"{MOTOR}:Busy"),
                         ioc.pv("Heartbeat"))
    messages = (ioc.pv(f"{MOTOR}:Message"), ioc.pv("Message"))
    with CaMonitor(ioc.env, state, busy, beat, *messages) as mon:
        homing = home_in_background(ioc, "Lo")
        mon.wait_value(busy, "Yes", timeout=10)
        results = puts()
        output, _ = homing.communicate(timeout=60)
        assert homing.returncode == 0, output
        mon.wait_value(busy, "No", timeout=30)
        last = int(mon.values(beat)[-1])
        # one heartbeat later: long enough for a queued put to have started a homing
        mon.wait_for(beat, lambda v: int(v) > last, timeout=5)
        posted = "\n".join(text for name in messages for text in mon.texts(name))
        return mon.values(state), results, posted


def test_puts_while_homing_are_refused(sim_ioc, slow_motor):
    before_file = sim_ioc.config.read_bytes()

    def puts():
        return [put(sim_ioc, f"{MOTOR}:HomeHi", "1"), put(sim_ioc, f"{MOTOR}:LoLim", "-19"),
                put(sim_ioc, "Tolerance", "0.6")]

    states, (home_hi, _lo_lim, _tolerance), posted = homings_after(sim_ioc, puts)
    assert put_failed(home_hi), home_hi.stdout + home_hi.stderr
    assert "lo_lim not changed: B is homing" in posted, posted
    assert "Tolerance not changed: homing in progress" in posted, posted
    assert states.count("Seeking") == 1, states
    assert read(sim_ioc, f"{MOTOR}:LoLim", "Tolerance") == ["-20", "0.5"]
    assert sim_ioc.config.read_bytes() == before_file


def test_repeated_put_to_the_running_home_action_is_not_queued(sim_ioc, slow_motor):
    states, (again,), _ = homings_after(sim_ioc, lambda: [put(sim_ioc, f"{MOTOR}:HomeLo", "1")])
    assert states.count("Seeking") == 1, (states, again.stdout)


# A client that homes twice in a row: the second put-callback goes out a moment after the
# first completes (aioca raises CANothing if the IOC refuses it).
HOME_TWICE = """
import asyncio, sys
from aioca import caput
async def main():
    await caput(sys.argv[1], 1, wait=True, timeout=60)
    await asyncio.sleep(float(sys.argv[3]))
    await caput(sys.argv[2], 1, wait=True, timeout=60)
    print("both homings accepted")
asyncio.run(main())
"""


def test_a_homing_put_just_after_the_last_homing_is_accepted(sim_ioc):
    # 10 ms after the first put-callback completed: inside the 20 ms in which the
    # records used to refuse every put in case EPICS replayed one it had held
    state = sim_ioc.pv(f"{MOTOR}:State")
    with CaMonitor(sim_ioc.env, state) as mon:
        mon.wait_for(state, lambda _: True, timeout=10)  # connected
        result = subprocess.run(
            [sys.executable, "-c", HOME_TWICE, sim_ioc.pv(f"{MOTOR}:HomeHi"),
             sim_ioc.pv(f"{MOTOR}:HomeHi"), "0.01"],
            env=sim_ioc.env, capture_output=True, text=True, timeout=150)
        assert "both homings accepted" in result.stdout, result.stdout + result.stderr
        mon.wait_value(state, "Homed", timeout=10, start=len(mon.values(state)) - 1)
        assert mon.values(state).count("Seeking") == 2, mon.values(state)


def test_config_file_still_valid_and_ioc_alive(sim_ioc):
    doc = cfg.load(sim_ioc.config)
    assert doc.config.motors[MOTOR].pv_root == "SIM:B"
    assert yaml.safe_load(sim_ioc.config.read_text())["motors"][MOTOR]["lo_lim"] == -20
    assert sim_ioc.process.poll() is None
    assert read(sim_ioc, "Heartbeat")[0].isdigit()
