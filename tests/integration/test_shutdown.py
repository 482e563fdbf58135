"""SIGTERM at any moment of start-up ends `bench-ioc --sim`, with its simulated bench.

Under load, an IOC sent SIGTERM a second or two after start kept running for half an
hour, its simulated bench a zombie: softioc's wait for the signal blocked the main thread
in one untimed wait, and a signal delivered to an EPICS thread never woke it.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import psutil
import pytest

from benchioc import epicsenv
from camon import server_port

pytestmark = pytest.mark.integration

EXIT_LIMIT_S = 25.0  # ioc.SHUTDOWN_LIMIT_S (20 s) plus the process's own start
START_SPAN_S = 3.0  # start-up to ready takes about 1.5-2.5 s here


def start_ioc(config) -> subprocess.Popen:
    ports = [f"--{name}={server_port()}" for name in ("port", "pva-port", "pva-udp-port",
                                                      "sim-port")]
    return subprocess.Popen(
        [sys.executable, "-m", "benchioc.tools.cli", "--config", str(config), "--sim",
         "--time-scale", "20", *ports],
        env=epicsenv.loopback_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)


# Seeded, so a failure names the moment it happened at; different moments each trial.
_RNG = random.Random(20261129)
MOMENTS = sorted(_RNG.uniform(0.05, START_SPAN_S) for _ in range(6))


@pytest.mark.parametrize("delay", MOMENTS, ids=[f"{m:.2f}s" for m in MOMENTS])
def test_sigterm_during_start_up_ends_the_ioc_and_its_sim(bench_config, delay):
    process = start_ioc(bench_config)
    try:
        time.sleep(delay)  # the moment under test, not a synchronisation
        children = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        output, _ = process.communicate(timeout=EXIT_LIMIT_S)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert took < EXIT_LIMIT_S, output
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, f"left running: {alive}\n{output}"
