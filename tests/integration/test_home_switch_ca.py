"""Homing method home_switch end to end: bench-ioc as a subprocess homes motor B with the
controller's own HOMF/HOMR, on the simulated bench and on the genuine motor record
(motorSim: home switch at dial 0, HVEL 10 mm/s), real caput -c / caget.
"""

from __future__ import annotations

from typing import Any

import pytest

from benches import BACKENDS, Bench, open_bench

pytestmark = pytest.mark.integration

MOTOR = "B"  # sim: switches at dial -23 / 22, home mark at dial 0; genuine: SIM:m2
HOME_POSITION = 2.0  # what the mark reads once homed
SIM_HVEL = 5.0  # bench.yaml's sim motors have HVEL 0 (the routine would do nothing)
MSTA_DONE, MSTA_HOMED = 1 << 1, 1 << 14


def configure(config: dict[str, Any]) -> None:
    config["motors"][MOTOR].update(method="home_switch", home_position=HOME_POSITION)
    if MOTOR in config.get("sim", {}).get("motors", {}):
        config["sim"]["motors"][MOTOR]["hvel"] = SIM_HVEL


@pytest.fixture(scope="module", params=BACKENDS)
def bench(request, tmp_path_factory):
    opened = open_bench(request.param, tmp_path_factory.mktemp("home_switch"),
                        time_scale=10, edit=configure)
    # An absolute move first: motorSim returns to the mark at the speed of the axis's last
    # move, 1 step/s on an axis that never made one (the engine's stall watch then fails
    # the homing: "motor stalled at 0.999 mm while homing with HOMF").
    opened.ioc.write(f"{opened.root(MOTOR)}.VAL", "5", callback=True)
    yield opened
    opened.stop()


def home(bench: Bench, direction: str) -> tuple[str, str]:
    result = bench.ioc.caput(f"{MOTOR}:Home{direction}", "1", timeout=200)
    assert result.returncode == 0, result.stdout + result.stderr
    state, text = bench.ioc.read(bench.ioc.pv(f"{MOTOR}:State"),
                                 bench.ioc.pv(f"{MOTOR}:Message"))
    return state, text


def mark_reads(bench: Bench) -> float:
    """HOMR on the record itself, then the readback at rest on the mark."""
    root = bench.root(MOTOR)
    bench.ioc.write(f"{root}.HOMR", "1", callback=True)
    for _ in range(200):  # the put-callback may end at a limit switch (far side)
        msta, dmov, rbv = bench.ioc.numbers(f"{root}.MSTA", f"{root}.DMOV", f"{root}.RBV")
        if dmov and int(msta) & MSTA_DONE and int(msta) & MSTA_HOMED:
            return rbv
    raise AssertionError(f"{root}: not at rest on the home mark after HOMR")


@pytest.mark.parametrize("direction", ["Hi", "Lo"])
def test_home_switch_homes_and_the_mark_reads_home_position(bench, direction):
    state, text = home(bench, direction)
    assert state == "Homed", text
    config = bench.config()["motors"][MOTOR]
    root = bench.root(MOTOR)
    position, llm, hlm, mres, msta = bench.ioc.numbers(
        bench.ioc.pv(f"{MOTOR}:Position"), f"{root}.LLM", f"{root}.HLM", f"{root}.MRES",
        f"{root}.MSTA")
    assert position == pytest.approx(config["center"], abs=0.01)
    assert (llm, hlm) == pytest.approx((config["lo_lim"], config["hi_lim"]))
    assert int(msta) & MSTA_HOMED
    assert bench.ioc.read(f"{root}.SET") == ["Use"]
    assert mark_reads(bench) == pytest.approx(HOME_POSITION, abs=2 * mres)
    bench.ioc.write(f"{root}.VAL", str(config["center"]), callback=True)


def test_hvel_0_is_refused_in_words(bench):
    root = bench.root(MOTOR)
    (hvel,) = bench.ioc.read(f"{root}.HVEL")
    bench.ioc.write(f"{root}.HVEL", "0", callback=True)
    try:
        state, text = home(bench, "Hi")
    finally:
        bench.ioc.write(f"{root}.HVEL", hvel, callback=True)
    assert state == "Failed"
    assert "home speed HVEL is 0" in text and "HOMF/HOMR do nothing at HVEL=0" in text
