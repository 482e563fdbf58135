"""Homing end to end, on the simulated bench and on the genuine motor record: bench-ioc as
a subprocess, real caput -c / caget / pvget."""

from __future__ import annotations

import re

import pytest
import yaml

from camon import CaMonitor
from iocharness import IocProcess

pytestmark = pytest.mark.integration

MOTORS = ["A", "B", "C", "D", "E"]  # D is the reversed (DIR=Neg) axis
GENUINE_MOTORS = ["A", "D"]  # the genuine axes are alike but for D's direction
DONE_BIT = 1 << 1
# bench, ioc: tests/integration/conftest.py, on both backends (the sim at time scale 20)


def limits(ioc: IocProcess, motor: str) -> dict[str, float]:
    config = yaml.safe_load(ioc.config.read_text())
    entry = config["motors"][motor]
    return {"lo": entry["lo_lim"], "hi": entry["hi_lim"], "center": entry["center"],
            "tol": config["general"]["tolerance"], "root": entry["pv_root"]}


def home(ioc: IocProcess, motor: str, direction: str) -> None:
    result = ioc.caput(f"{motor}:Home{direction.capitalize()}", "1")
    assert result.returncode == 0, result.stdout + result.stderr


def switch_reading(ioc: IocProcess, root: str, direction: str, expected: float) -> float:
    """Approach the switch again, slowly (a tenth of JVEL, like homing's last approach),
    from 1 mm short of where it should be, with soft limits off: the settled readback.
    At full speed the stage would stop past the switch by a speed-dependent distance,
    the same each time, and hide a calibration taken at the wrong speed."""
    dllm, dhlm, jvel = ioc.numbers(f"{root}.DLLM", f"{root}.DHLM", f"{root}.JVEL")
    ioc.write(f"{root}.DLLM", "0")
    ioc.write(f"{root}.DHLM", "0")
    ioc.write(f"{root}.VAL", str(expected - (1 if direction == "hi" else -1)), callback=True)
    ioc.write(f"{root}.JVEL", str(jvel / 10))
    with CaMonitor(ioc.env, f"{root}.MSTA") as msta:
        ioc.write(f"{root}.JOGF" if direction == "hi" else f"{root}.JOGR", "1",
                  callback=True)
        # the record reports DMOV before the readback has settled on the switch
        msta.wait_for(f"{root}.MSTA", lambda v: int(float(v)) & DONE_BIT != 0,
                      start=max(msta.count(f"{root}.MSTA") - 1, 0))
    (rbv,) = ioc.numbers(f"{root}.RBV")
    ioc.write(f"{root}.JVEL", str(jvel))
    # restore the limits in an order that never inverts the range
    ioc.write(f"{root}.DHLM", str(dhlm))
    ioc.write(f"{root}.DLLM", str(dllm))
    return rbv


@pytest.mark.parametrize("direction", ["hi", "lo"])
@pytest.mark.parametrize("motor", MOTORS)
def test_home_each_motor_calibrates_on_the_switch(bench, ioc, motor, direction):
    if bench.genuine and motor not in GENUINE_MOTORS:
        pytest.skip(f"genuine axes are alike: {' and '.join(GENUINE_MOTORS)} stand for them")
    home(ioc, motor, direction)
    state, homed, position = ioc.caget(f"{motor}:State", f"{motor}:Homed",
                                       f"{motor}:Position")
    assert (state, homed) == ("Homed", "Yes"), ioc.caget(f"{motor}:Message")
    lim = limits(ioc, motor)
    assert float(position) == pytest.approx(lim["center"], abs=0.01)
    hlm, llm = ioc.numbers(f"{lim['root']}.HLM", f"{lim['root']}.LLM")
    assert (llm, hlm) == pytest.approx((lim["lo"], lim["hi"]))
    expected = lim["hi"] + lim["tol"] if direction == "hi" else lim["lo"] - lim["tol"]
    assert ioc.run_tool("caget", "-w", "5", "-t", f"{lim['root']}.SET").stdout.split() == ["Use"]
    reading = switch_reading(ioc, lim["root"], direction, expected)
    assert reading == pytest.approx(expected, abs=0.005)


def test_home_all_runs_in_parallel(ioc):
    names = [ioc.pv(f"{m}:State") for m in MOTORS]
    with CaMonitor(ioc.env, *names) as states:
        result = ioc.caput("HomeAllLo", "1", timeout=200)
        assert result.returncode == 0, result.stderr
        seeking = {n: states.wait_value(n, "Seeking") for n in names}
        homed = {n: states.wait_value(n, "Homed", start=seeking[n]) for n in names}
        started = [states.updates[n][seeking[n]][0] for n in names]
        ended = [states.updates[n][homed[n]][0] for n in names]
    # every motor was seeking before any had finished: they ran together
    assert max(started) < min(ended)
    assert ioc.caget("AllHomed", "Busy") == ["Yes", "No"]


def test_config_put_refused_with_a_message(ioc):
    before = ioc.config.read_bytes()
    lim = limits(ioc, "A")
    result = ioc.caput("A:LoLim", f"{lim['hi'] + 10:g}", callback=False)
    assert result.returncode == 0
    (lo_lim,) = ioc.caget("A:LoLim")
    assert float(lo_lim) == lim["lo"]
    (message,) = ioc.caget("A:Message", options=("-t", "-S"))
    assert "refused" in message and "hi_lim" in message
    assert ioc.config.read_bytes() == before
    assert "MAJOR" in ioc.caget("A:LoLim", options=("-a",))[0]
    # the next accepted value clears the refusal alarm
    assert ioc.caput("A:LoLim", f"{lim['lo'] + 1:g}").returncode == 0
    assert ioc.caput("A:LoLim", f"{lim['lo']:g}").returncode == 0
    assert "MAJOR" not in ioc.caget("A:LoLim", options=("-a",))[0]


def test_config_put_saved_to_the_file(ioc):
    result = ioc.caput("B:Center", "1.5")
    assert result.returncode == 0
    assert yaml.safe_load(ioc.config.read_text())["motors"]["B"]["center"] == 1.5
    ioc.caput("B:Center", "0")


def test_status_records_over_pva(ioc):
    # one pvget per record: pvget given several once printed "<NULL>" for the name of an
    # NTEnum it had read (seen on the genuine backend), which is pvget's, not ours
    for record, value in (("A:State", r"\(\d\) \w+"), ("A:Position", r"-?\d")):
        result = ioc.run_tool("pvget", "-w", "5", ioc.pv(record))
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.match(rf"{re.escape(ioc.pv(record))}\s+\S+ \S+\s+{value}", result.stdout), (
            result.stdout)
