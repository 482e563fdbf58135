"""The IOC killed (SIGKILL) and restarted, over real CA against an external simulated bench.

Killed mid-homing, it comes back with the config from the file and Homed/LastHomed from
its autosave, and moves nothing on its own. Killed while config puts are being saved,
many times over, the file is always loadable and holds either the old or a new value.
"""

from __future__ import annotations

import random
import signal
import threading
import time

import pytest
import yaml

from benchioc import config as cfg
from camon import CaMonitor, server_port
from iocharness import IocProcess
from simharness import caget, caput, start_sim

pytestmark = pytest.mark.integration

TIME_SCALE = 10
MOTORS = ["A", "B", "C", "D", "E"]


def test_killed_mid_homing_restarts_from_file_and_autosave(bench_copy, external_sim):
    path, sim = bench_copy, external_sim
    # soft limits the homing of A will disable; the restarted IOC must put them back
    for field, value in (("DHLM", "42"), ("DLLM", "-42")):
        caput(f"SIM:A.{field}", value, sim.env, callback=True)
    ioc = IocProcess(path, sim_port=sim.port)
    try:
        assert ioc.caput("B:HomeLo", "1").returncode == 0
        assert ioc.caget("B:State") == ["Homed"]
        (last_homed_b,) = ioc.caget("B:LastHomed")
        with CaMonitor(ioc.env, ioc.pv("A:Moving")) as moving:
            ioc.caput("A:HomeHi", "1", callback=False)
            moving.wait_value(ioc.pv("A:Moving"), "Yes", timeout=15)
            ioc.stop(signal.SIGKILL)
    finally:
        ioc.stop()
    # the sim finishes A's jog on the switch by itself; the dead IOC cannot stop it
    with CaMonitor(sim.env, "SIM:A.DMOV") as dmov:
        dmov.wait_value("SIM:A.DMOV", "1", timeout=20)
    # an outside edit while the IOC is down is what the new IOC must serve
    text = path.read_text().replace("center: 50}", "center: 60}")
    assert "center: 60}" in text
    path.write_text(text)

    dmovs = [f"SIM:{m}.DMOV" for m in MOTORS]
    with CaMonitor(sim.env, *dmovs) as motion:
        for pv in dmovs:
            motion.wait_for(pv, lambda v: True, timeout=10)
        restarted = IocProcess(path, sim_port=sim.port)
        try:
            check_restored(restarted, last_homed_b)
            assert [caget(f"SIM:A.{f}", sim.env) for f in ("DLLM", "DHLM")] == ["-42", "42"]
            (message,) = restarted.caget("A:Message", options=("-t", "-S"))
            assert "restored: a homing was interrupted" in message, message
            # two heartbeats later still no motor has moved: nothing was started
            beat = restarted.pv("Heartbeat")
            with CaMonitor(restarted.env, beat) as heartbeat:
                index = heartbeat.wait_for(beat, lambda v: True)
                first = int(heartbeat.values(beat)[index])
                heartbeat.wait_for(beat, lambda v: int(v) >= first + 2, timeout=10)
            assert all(set(motion.values(pv)) == {"1"} for pv in dmovs), motion.updates
            assert restarted.caget("Busy") == ["No"]
        finally:
            restarted.stop()


def check_restored(ioc: IocProcess, last_homed_b: str) -> None:
    assert ioc.caget("C:Center") == ["60"]
    assert ioc.caget("B:State", "B:Homed", "B:LastHomed") == ["Homed", "Yes", last_homed_b], \
        ioc.caget("B:Message", options=("-t", "-S"))
    # A was mid-homing: not homed, and its last homing time is not invented
    assert ioc.caget("A:State", "A:Homed") == ["NotHomed", "No"]
    saved = yaml.safe_load((ioc.config.parent / "autosave" / "homing-state.json").read_text())
    assert saved["A"]["homed"] is False and saved["B"]["homed"] is True


# --- killed while saving -------------------------------------------------------------
KILL_ROUNDS = 4  # each starts an IOC: about 5 s a round on 2 busy cores
CENTERS = ("0.25", "0.5", "0.75", "1")


def test_killed_while_saving_config_leaves_old_or_new_file(bench_copy):
    path = bench_copy
    original = yaml.safe_load(path.read_text())
    nobody = server_port()  # no motors answer: config puts need none
    rng = random.Random(7)
    deadline = time.monotonic() + 20
    changed = 0
    for round_number in range(KILL_ROUNDS):
        if time.monotonic() > deadline:
            break
        before = cfg.load(path).config.motors["E"].center
        ioc = IocProcess(path, sim_port=nobody)
        try:
            stop, saved = threading.Event(), threading.Event()
            hammer = threading.Thread(target=put_centers, args=(ioc, stop, saved),
                                      daemon=True)
            hammer.start()
            # Kill while the puts are being saved: from the first completed put on (each
            # caput is a process start, tenths of a second on a loaded machine, so a
            # moment counted from the IOC's start could come before any put).
            saved.wait(10)
            time.sleep(rng.uniform(0.05, 0.6))  # a random moment to kill at, not a sync
            ioc.stop(signal.SIGKILL)
            stop.set()
            hammer.join(10)
        finally:
            ioc.stop()
        doc = cfg.load(path)  # never half a file
        center = doc.config.motors["E"].center
        assert center == before or str(_plain(center)) in CENTERS, round_number
        changed += center != before
        expected = original
        expected["motors"]["E"]["center"] = _plain(center)
        assert yaml.safe_load(path.read_text()) == expected
    assert changed >= 2, "the kills never came after a save: the test proved nothing"
    leftovers = [p.name for p in path.parent.iterdir() if p.suffix == ".tmp"]
    assert len(leftovers) <= KILL_ROUNDS, leftovers


def _plain(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def put_centers(ioc: IocProcess, stop: threading.Event, saved: threading.Event) -> None:
    """Center puts, one after the other; `saved` is set once one has completed (a config
    put completes when the file is saved)."""
    index = 0
    while not stop.is_set():
        result = ioc.run_tool("caput", "-t", "-c", "-w", "2", ioc.pv("E:Center"),
                              CENTERS[index % len(CENTERS)], timeout=5)
        if result.returncode == 0:
            saved.set()
        index += 1


# --- a Homed that is true -----------------------------------------------------------
def homed_then(ioc: IocProcess, motor: str) -> None:
    assert ioc.caput(f"{motor}:HomeHi", "1").returncode == 0
    assert ioc.caget(f"{motor}:State", f"{motor}:Homed") == ["Homed", "Yes"]


def test_restarted_with_a_new_simulated_bench_the_motor_is_not_homed(bench_copy):
    """`bench-ioc --sim` restarted starts a new simulated bench: its controllers start
    afresh, as real ones do after a power cycle, so the saved Homed cannot be trusted."""
    path = bench_copy
    ioc = IocProcess(path, time_scale=TIME_SCALE)
    try:
        homed_then(ioc, "B")
    finally:
        ioc.stop()
    restarted = IocProcess(path, time_scale=TIME_SCALE)
    try:
        assert restarted.caget("B:State", "B:Homed") == ["NotHomed", "No"]
        (message,) = restarted.caget("B:Message", options=("-t", "-S"))
        # the controller came back at its start position with OFF=0
        assert "changed" in message and "home it again" in message, message
        # a scan that requires a homed motor refuses it
        restarted.caput("Sync:Motor", "B", callback=False)
        restarted.caput("Sync:RequireHomed", "Yes", callback=False)
        (sync_message,) = restarted.caget("Sync:Message", options=("-t", "-S"))
        assert "not homed" in sync_message, sync_message
    finally:
        restarted.stop()


def test_the_motor_ioc_restarted_under_a_running_ioc_unhomes_its_motors(bench_copy,
                                                                       external_sim):
    path, sim = bench_copy, external_sim
    ioc = IocProcess(path, sim_port=sim.port)
    try:
        homed_then(ioc, "E")
        state = ioc.pv("E:State")
        with CaMonitor(ioc.env, state, ioc.pv("E:Connected")) as mon:
            sim.stop()
            mon.wait_value(ioc.pv("E:Connected"), "No", timeout=15)
            revived = start_sim(path, time_scale=TIME_SCALE, port=sim.port)
            try:
                mon.wait_value(state, "NotHomed", timeout=30)
                (message,) = ioc.caget("E:Message", options=("-t", "-S"))
                assert "changed" in message, message
            finally:
                revived.stop()
    finally:
        ioc.stop()


def test_an_ioc_restart_alone_keeps_the_motor_homed(bench_copy, external_sim):
    path, sim = bench_copy, external_sim
    ioc = IocProcess(path, sim_port=sim.port)
    try:
        homed_then(ioc, "C")
        # moved after homing, by a client other than the IOC: the IOC saw it come to rest
        caput("SIM:C.VAL", "55", sim.env, callback=True)
    finally:
        ioc.stop()
    restarted = IocProcess(path, sim_port=sim.port)
    try:
        assert restarted.caget("C:State", "C:Homed") == ["Homed", "Yes"]
        (message,) = restarted.caget("C:Message", options=("-t", "-S"))
        assert "calibration still holds" in message, message
    finally:
        restarted.stop()
