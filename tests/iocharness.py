"""Start `bench-ioc` as a subprocess on loopback and talk to it with real CA tools.

Like pythonSoftIOC's own tests: a subprocess, a ready line on stdout, real clients,
a signal to stop. Ports are free ones, so runs never collide.
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
        if not self.server_ports:
            command += ["--sim", "--time-scale", str(time_scale)]
            env = epicsenv.loopback_env()
        else:
            self.port = epicsenv.free_port()
            self.pva_udp_port = epicsenv.free_port()
            command += ["--port", str(self.port), "--pva-port", str(epicsenv.free_port()),
                        "--pva-udp-port", str(self.pva_udp_port)]
            env = epicsenv.loopback_env(ca_ports=self.server_ports, server_port=self.port)
        self.sim_port = sim_port
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
            if "clients: export" in line and not self.server_ports:
                self.sim_port = int(line.rsplit(":", 1)[1].strip('"\n '))
                self.server_ports = [self.sim_port]
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

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
