"""Speed-independent calibration, shown over CA: bench-ioc and the simulated bench as
subprocesses, motor E homed high with its jog speed JVEL at 1x, 3x and 10x its default.

The simulated stage stops past a limit switch by a distance that grows with the speed it
met it at (speed x 0.04 s). Homing calibrates after a second, slow approach at the creep
speed, so where the switch reads does not depend on JVEL: approaching it again slowly
(at the creep speed) reads hi_lim + tolerance within 2 x MRES + creep x readback period
(the readback period: how late a polled trip may be seen). The same approach at JVEL
stops (JVEL - creep) x 0.04 s further on, which is the error the old one-speed homing
(calibrating where the jog stopped) had: the test checks that too, so that it would
notice a simulation whose stop no longer depends on speed.

The creep speed is left at its default, a tenth of the motor's VELO: it does not move
with JVEL (tests/perf/homing_speed.py prints the figures). Motor E's switches get
hysteresis (sim switch_hysteresis), so the back-off
doubles before the switch lets go.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from benches import Bench, open_bench
from camon import CaMonitor

pytestmark = pytest.mark.integration

MOTOR = "E"  # the short, fine stage: lo_lim -5, hi_lim 5, VELO=JVEL 1 mm/s, MRES 0.1 um
SPEED_FACTORS = (1, 3, 10)
CREEP = 0.1  # mm/s, the default creep speed: a tenth of E's VELO, whatever JVEL is
HYSTERESIS = 0.15  # mm: the back-off doubles 0.05 -> 0.1 -> 0.2 before the switch lets go
STOP_TIME = 0.04  # s: the sim stops past a switch by speed x this (TRIP_SETTLE_TIME / 2)
TIME_SCALE = 5.0  # the sim's readbacks stay every 25 ms of simulated time
READBACK_PERIOD = 0.025  # s (simulated): sim/motor.py READBACK_PERIOD_SIM at this scale


def configure(config: dict[str, Any], creep: float | None = None) -> None:
    """The bench.yaml edits: a fixed creep speed (None: the default, VELO/10), E's switch
    hysteresis and no VMAX (10x JVEL is above bench.yaml's)."""
    if creep is not None:
        config.setdefault("homing", {})["creep_speed"] = creep
    sim = config["sim"]["motors"][MOTOR]
    sim.update(switch_hysteresis=HYSTERESIS, vmax=0)


# One CA client process per check (libca reads its address list once per process).
_APPROACH = r"""
import asyncio, json, sys
from aioca import caget, caput

async def main(root, target, start, speed):
    high = target > start
    saved = await caget([f"{root}.DLLM", f"{root}.DHLM", f"{root}.JVEL"])
    await caput(f"{root}.DLLM", 0, wait=True)
    await caput(f"{root}.DHLM", 0, wait=True)
    await caput(f"{root}.VAL", start, wait=True, timeout=60)
    await caput(f"{root}.JVEL", speed, wait=True)
    # the put-callback ends at the trip (DMOV=1); the controller settles after (DONE)
    await caput(f"{root}.JOGF" if high else f"{root}.JOGR", 1, wait=True, timeout=60)
    for _ in range(3000):
        msta, dmov = await caget([f"{root}.MSTA", f"{root}.DMOV"])
        if int(msta) & 2 and dmov:
            break
        await asyncio.sleep(0.01)
    rbv = await caget(f"{root}.RBV")
    await caput(f"{root}.JVEL", saved[2], wait=True)
    await caput(f"{root}.DHLM", saved[1], wait=True)  # never an inverted range
    await caput(f"{root}.DLLM", saved[0], wait=True)
    print(json.dumps({"rbv": float(rbv)}))

asyncio.run(main(sys.argv[1], *map(float, sys.argv[2:])))
"""


def approach(env: dict[str, str], root: str, switch: float, speed: float,
             run_up: float = 0.5) -> float:
    """Move `run_up` short of where the switch should read (soft limits off), jog onto
    it at `speed`, and return the readback once the controller is at rest."""
    start = switch - run_up if switch > 0 else switch + run_up
    result = subprocess.run([sys.executable, "-c", _APPROACH, root, str(switch), str(start),
                             str(speed)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    import json

    return float(json.loads(result.stdout.strip().splitlines()[-1])["rbv"])


def caget_values(bench: Bench, *pvs: str) -> list[str]:
    result = bench.ioc.run_tool("caget", "-w", "5", "-t", *pvs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.split()


def caput_value(bench: Bench, pv: str, value: str) -> None:
    result = bench.ioc.run_tool("caput", "-c", "-w", "10", "-t", pv, value)
    assert result.returncode == 0, result.stdout + result.stderr


def home_at(bench: Bench, jvel: float) -> str:
    """Home E high with JVEL=jvel; returns the IOC's last message."""
    root = bench.root(MOTOR)
    caput_value(bench, f"{root}.JVEL", f"{jvel:g}")
    result = bench.ioc.caput(f"{MOTOR}:HomeHi", "1", timeout=200)
    assert result.returncode == 0, result.stdout + result.stderr
    state, message = bench.ioc.caget(f"{MOTOR}:State", f"{MOTOR}:Message",
                                     options=("-t", "-S"))
    assert state == "Homed", message
    (after,) = caget_values(bench, f"{root}.JVEL")
    assert float(after) == pytest.approx(jvel)  # put back after the creep
    return message


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    opened = open_bench("sim", tmp_path_factory.mktemp("homing_speed"),
                        time_scale=TIME_SCALE, edit=configure)
    yield opened
    opened.stop()


def switch_reads(bench: Bench) -> float:
    config = bench.config()
    return config["motors"][MOTOR]["hi_lim"] + config["general"]["tolerance"]


@pytest.fixture(scope="module")
def default_jvel(bench: Bench) -> float:
    (jvel,) = caget_values(bench, f"{bench.root(MOTOR)}.JVEL")
    return float(jvel)


@pytest.mark.parametrize("factor", SPEED_FACTORS)
def test_the_switch_reads_the_same_whatever_the_jog_speed(bench, default_jvel, factor):
    root = bench.root(MOTOR)
    jvel = factor * default_jvel
    home_at(bench, jvel)
    mres = float(caget_values(bench, f"{root}.MRES")[0])
    expected = switch_reads(bench)
    bound = 2 * mres + CREEP * READBACK_PERIOD
    slow = approach(bench.env, root, expected, CREEP)
    assert abs(slow - expected) <= bound, (
        f"JVEL {jvel:g}: the switch reads {slow:.4f}, not {expected:g} within {bound:.4f}")
    # The same approach at the jog speed stops later by (JVEL - creep) x 0.04 s: what a
    # calibration taken there (the old one-speed homing) would have been off by.
    fast = approach(bench.env, root, expected, jvel)
    assert fast - slow == pytest.approx((jvel - CREEP) * STOP_TIME, abs=bound)


def test_the_back_off_doubled_past_the_switch_hysteresis(bench, default_jvel):
    """E's switch releases only 0.15 mm back inside: the back-offs of 0.05 and 0.1 mm
    from the trip are not enough, 0.2 mm is."""
    name = bench.ioc.pv(f"{MOTOR}:Message")
    with CaMonitor(bench.env, name) as messages:
        messages.wait_for(name, lambda _value: True)  # connected: its first update
        home_at(bench, default_jvel)
        texts = messages.texts(name)
    # (Message is posted again with each progress update: the same text repeats)
    backoffs = {text for text in texts if "backing off the high limit switch to" in text}
    assert len(backoffs) == 3, texts
