"""Start `bench-ioc` as a subprocess on loopback and talk to it with real CA tools.

Like pythonSoftIOC's own tests: a subprocess, a ready line on stdout, real clients,
a signal to stop. Its ports come from camon.server_port, so parallel runs never collide.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from benchioc import epicsenv
from camon import server_port

BIN = Path(sys.executable).parent
READY_RE = re.compile(r"bench-ioc ready prefix=(\S*) port=(\d+) pva_port=(\d+) "
                      r"pva_udp_port=(\d+) motors=(\S*) config=(.*)$")


class IocProcess:
    """A running bench-ioc. With sim_port=None it starts its own simulated bench (--sim)."""

    def __init__(self, config: Path, *, time_scale: float = 20.0, prefix: str = "BENCH:",
                 sim_port: int | None = None, extra: Sequence[str] = (),
                 ready_timeout: float = 60.0, server_ports: Sequence[int] = ()) -> None:
        """sim_port: a simulated bench already running; server_ports: other CA servers
        the motors and devices are on (the genuine IOCs). Neither: --sim."""
        self.config = config
        self.prefix = prefix
        self.lines: list[str] = []
        self._ready = threading.Event()
        command = [sys.executable, "-m", "benchioc.tools.cli", "--config", str(config),
                   "--prefix", prefix, *extra]
        self.server_ports = [sim_port] if sim_port is not None else list(server_ports)
        # Every port is given (camon.server_port: unique across parallel test processes),
        # none left to the IOC's own pick of a free one.
        self.port = server_port()
        self.pva_udp_port = server_port()
        command += ["--port", str(self.port), "--pva-port", str(server_port()),
                    "--pva-udp-port", str(self.pva_udp_port)]
        self.sim_port = sim_port
        if not self.server_ports:
            # known now, not only once the IOC prints its "clients:" line after the ready
            # line: a client may use `env` the moment this returns
            self.sim_port = server_port()
            command += ["--sim", "--time-scale", str(time_scale),
                        "--sim-port", str(self.sim_port)]
            env = epicsenv.loopback_env()
            self.server_ports = [self.sim_port]
        else:
            env = epicsenv.loopback_env(ca_ports=self.server_ports, server_port=self.port)
        self.motors: list[str] = []
        self.ready_line = ""
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(ready_timeout) or not self.ready_line:
            self.stop()
            raise RuntimeError("bench-ioc did not become ready:\n" + self.output())

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            match = READY_RE.search(line)
            if match:
                self.ready_line = line
                self.port = int(match.group(2))
                self.pva_udp_port = int(match.group(4))
                self.motors = match.group(5).split(",") if match.group(5) else []
                self._ready.set()
        self._ready.set()  # the process ended: whoever waits must look at the output

    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def env(self) -> dict[str, str]:
        """Environment for a client that sees the IOC (CA and PVA) and the sim."""
        ports = [self.port, *self.server_ports]
        return epicsenv.loopback_env(ca_ports=ports, pva_udp_port=self.pva_udp_port)

    def pv(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def run_tool(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        tool = shutil.which(args[0], path=str(BIN)) or args[0]
        return subprocess.run([tool, *args[1:]], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def caget(self, *names: str, options: Sequence[str] = ("-t",)) -> list[str]:
        result = self.run_tool("caget", "-w", "5", *options, *[self.pv(n) for n in names])
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.splitlines()

    def caput(self, name: str, value: str, *, callback: bool = True,
              timeout: float = 120) -> subprocess.CompletedProcess:
        args = ["caput", "-t"]
        if callback:
            args += ["-c", "-w", str(timeout)]
        return self.run_tool(*args, self.pv(name), value, timeout=timeout + 10)

    # Any PV its clients see, by full name: the motor records' fields and the devices'
    # as well as the IOC's own. Each fails the test when the tool fails.
    def wait_motor_connected(self, motor: str, timeout: float = 30) -> None:
        """Until $(P)<motor>:Connected reads Yes: the ready line comes before the motors
        connect, and a scan or a homing needs its motor."""
        from camon import CaMonitor

        pv = self.pv(f"{motor}:Connected")
        with CaMonitor(self.env, pv) as connected:
            connected.wait_value(pv, "Yes", timeout=timeout)

    def read(self, *pvs: str) -> list[str]:
        """One caget for all (each CA tool start costs ~0.2 s here): each value as text
        (-t), long strings as strings (-S)."""
        result = self.run_tool("caget", "-w", "5", "-t", "-S", *pvs)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.splitlines()

    def numbers(self, *pvs: str) -> list[float]:
        return [float(value) for value in self.read(*pvs)]

    def write(self, pv: str, value: str, *, callback: bool = False,
              wait: float = 60) -> None:
        """caput; with callback, returns when the put completes (-c, at most `wait` s)."""
        args = ["caput", "-t"] + (["-c", "-w", f"{wait:g}"] if callback else [])
        result = self.run_tool(*args, pv, value, timeout=max(60, wait + 10))
        assert result.returncode == 0, result.stdout + result.stderr

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
