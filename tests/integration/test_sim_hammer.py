"""Hammer the simulated bench: clients come, monitor and leave while motors move.

caproto 1.3.0 shut down when a client unsubscribed during an update broadcast, and lost
monitor updates with its batching timeout at 0. With the fixes in place the server must
keep serving, and a steady monitor must see every DMOV transition of every move made.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from camon import end, spawn
from simharness import BIN, Monitor, caget, caput, start_sim, transitions

pytestmark = pytest.mark.integration

DURATION = 12.0  # seconds of churn, at least
MIN_MOVES = 10  # ... and until each mover has made more moves than this
MAX_DURATION = 40.0  # (each move is a caput process: slower on a loaded machine)
MOVERS = {"A": (-5.0, 5.0), "B": (-4.0, 2.0)}
CHURN_PVS = [f"SIM:{m}.{f}" for m in "ABC" for f in ("RBV", "DRBV", "MSTA", "DMOV", "MOVN")]

# A client that subscribes and unsubscribes (EventCancel) on one circuit, again and again.
SUBSCRIBER = """
import sys, time, epics
chids = [epics.ca.create_channel(name, auto_cb=False) for name in sys.argv[2:]]
for chid in chids:
    epics.ca.connect_channel(chid, timeout=10)
deadline = time.monotonic() + float(sys.argv[1])
cycles = 0
while time.monotonic() < deadline:
    subs = [epics.ca.create_subscription(chid, callback=lambda **kw: None) for chid in chids]
    epics.ca.poll(0.02)
    for sub in subs:
        epics.ca.clear_subscription(sub[2])
    epics.ca.poll(0.005)
    cycles += 1
print(cycles)
"""


def churn_camonitors(env: dict[str, str], stop: threading.Event, cycles: list[int]) -> None:
    """camonitor clients that connect, monitor for a moment and vanish (some killed)."""
    rng = random.Random()
    while not stop.is_set():
        client = spawn([str(BIN / "camonitor"), *rng.sample(CHURN_PVS, 8)], env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stop.wait(rng.uniform(0.05, 0.3))  # how long this client stays: churn, not a sync
        end(client, rng.choice((signal.SIGTERM, signal.SIGKILL)))
        cycles.append(1)


def move_back_and_forth(motor: str, env: dict[str, str], stop: threading.Event,
                        moves: list[str], errors: list[str], enough: threading.Event) -> None:
    low, high = MOVERS[motor]
    target = high
    while not stop.is_set():
        try:
            caput(f"SIM:{motor}.VAL", target, env, callback=True, timeout=20)
        except Exception as error:  # reported by the test, with the sim's log
            errors.append(f"{motor}: {error}")
            enough.set()
            return
        moves.append(motor)
        if all(moves.count(m) > MIN_MOVES for m in MOVERS):
            enough.set()
        target = low if target == high else high


def test_sim_keeps_serving_and_every_dmov_transition_arrives():
    with start_sim(time_scale=10.0) as sim:
        steady = Monitor([f"SIM:{m}.DMOV" for m in MOVERS], sim.env)
        for motor in MOVERS:
            steady.wait_value(f"SIM:{motor}.DMOV", "1")
        stop = threading.Event()
        moves: list[str] = []
        errors: list[str] = []
        churned: list[int] = []
        enough = threading.Event()
        subscriber = subprocess.Popen(
            [sys.executable, "-c", SUBSCRIBER, str(DURATION), *CHURN_PVS], env=sim.env,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        threads = [threading.Thread(target=churn_camonitors, args=(sim.env, stop, churned))
                   for _ in range(2)]
        threads += [threading.Thread(target=move_back_and_forth,
                                     args=(motor, sim.env, stop, moves, errors, enough))
                    for motor in MOVERS]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        time.sleep(DURATION)  # the length of the hammering itself
        enough.wait(MAX_DURATION - DURATION)
        stop.set()
        took = time.monotonic() - started
        for thread in threads:
            thread.join(30)
        subscriber_out, _ = subscriber.communicate(timeout=30)

        assert not errors, f"{errors}\n{sim.stderr_text()[-3000:]}"
        assert sim.alive(), sim.stderr_text()[-3000:]
        for motor in MOVERS:
            made = moves.count(motor)
            pv = f"SIM:{motor}.DMOV"
            # Every completed move is 1->0->1 on DMOV; the last put-callback has returned,
            # so its final DMOV=1 was sent before the reply.
            steady.wait_value(pv, "1", count=made + 1, timeout=10)
            seen = steady.values(pv)
            assert made > MIN_MOVES, f"only {made} moves of {motor} in {took:.0f} s"
            assert transitions(seen) == 2 * made, f"{motor}: {made} moves, DMOV seen {seen}"
        steady.close()
        assert caget("SIM:A.RTYP", sim.env) == "motor"
        assert int(subscriber_out.strip() or 0) > 20, "the subscribing client barely ran"
        assert len(churned) > 20
        log = sim.stderr_text()
        assert "Traceback" not in log and "mutated" not in log, log[-3000:]
