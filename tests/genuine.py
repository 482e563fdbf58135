"""The genuine EPICS IOCs as test subprocesses: the motor record with motorSim, and
areaDetector's simDetector with its HDF5 plugin, built by
`../shared/tools/build-genuine-epics.sh PREFIX --with-ad` (the product never needs them).

The build is found through the variables its `PREFIX/env.sh` exports. Without them
the genuine tier is skipped with a line that says how to enable it:

    . PREFIX/env.sh && .venv/bin/pytest        # (.ci/run builds PREFIX and does this)

Each IOC serves on a loopback port of the test process's own (camon.server_port: never
a fixed one, nor one another parallel test process may be handed; its start-up script
takes the port from EPICS_CAS_SERVER_PORT) and is ready when it prints iocInit's last
line.
"""

from __future__ import annotations

import os
import queue
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from benchioc import epicsenv
from camon import end, server_port

MOTOR_VARS = ("GENUINE_MOTOR_IOC", "GENUINE_MOTOR_CMD")
AD_VARS = ("GENUINE_AD_IOC", "GENUINE_AD_CMD")
HOW_TO_ENABLE = ("build it with ../shared/tools/build-genuine-epics.sh PREFIX --with-ad, then"
                 " `. PREFIX/env.sh` before pytest (.ci/run does both)")
READY_LINE = "iocRun: All initialization complete"
MOTOR_AXES = ("m1", "m2", "m3", "m4", "m5", "m6")  # bench/motor.cmd: SIM:m1..m6


def missing(names: tuple[str, ...]) -> list[str]:
    """The variables of env.sh that are unset or name no file."""
    return [name for name in names if not Path(os.environ.get(name, "")).is_file()]


def skip_unless_built(names: tuple[str, ...], what: str) -> None:
    """Skip when the build is absent; fail instead where it must be there (.ci/run sets
    BENCH_REQUIRE_GENUINE=1, so the tier cannot silently stop running in CI)."""
    absent = missing(names)
    if not absent:
        return
    reason = f"{what} not built ({', '.join(absent)} unset); {HOW_TO_ENABLE}"
    if os.environ.get("BENCH_REQUIRE_GENUINE") == "1":
        pytest.fail(f"genuine tier required (BENCH_REQUIRE_GENUINE=1) but {reason}")
    pytest.skip(f"genuine tier skipped: {reason}")


@dataclass
class GenuineIoc:
    """A running genuine IOC; a context manager that stops it (SIGTERM) on exit."""

    process: subprocess.Popen
    port: int
    log_path: Path
    prefix: str
    _log_file: object = field(repr=False, default=None)

    @property
    def env(self) -> dict[str, str]:
        return epicsenv.loopback_env(ca_ports=[self.port])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM to its process group (SIGKILL if it hangs), reaped."""
        if self.process.poll() is None:
            end(self.process)

    def __enter__(self) -> GenuineIoc:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _start(executable: str, script: str, prefix_var: str, prefix: str, what: str,
           port: int | None = None, ready_timeout: float = 30.0) -> GenuineIoc:
    port = port or server_port()
    env = epicsenv.loopback_env(server_port=port)
    env[prefix_var] = prefix
    # the start-up scripts use relative paths nowhere; the log keeps stdout and stderr
    log = tempfile.NamedTemporaryFile("w+", prefix=f"genuine-{what}-", suffix=".log",  # noqa: SIM115
                                      delete=False)
    process = subprocess.Popen([executable, script], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env, start_new_session=True)
    ioc = GenuineIoc(process, port, Path(log.name), prefix, log)
    lines: queue.Queue[str | None] = queue.Queue()

    def copy_output() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            log.flush()
            lines.put(line)
        lines.put(None)

    threading.Thread(target=copy_output, daemon=True).start()
    try:
        while True:
            line = lines.get(timeout=ready_timeout)
            if line is None:
                raise RuntimeError(f"genuine {what} IOC exited during start-up:\n"
                                   f"{ioc.log_text()[-3000:]}")
            if READY_LINE in line:
                return ioc
    except queue.Empty:
        ioc.stop()
        raise RuntimeError(f"genuine {what} IOC not ready within {ready_timeout:g} s:\n"
                           f"{ioc.log_text()[-3000:]}") from None


def start_motor_ioc(prefix: str = "SIM:", port: int | None = None) -> GenuineIoc:
    """motorSim IOC: motor records {prefix}m1..m6, switches at dial +-100 mm."""
    return _start(os.environ["GENUINE_MOTOR_IOC"], os.environ["GENUINE_MOTOR_CMD"],
                  "MOTOR_PREFIX", prefix, "motor", port)


def start_ad_ioc(prefix: str = "SIM:") -> GenuineIoc:
    """simDetector IOC: {prefix}cam1:, image1: (NDStdArrays), HDF1: (NDFileHDF5)."""
    return _start(os.environ["GENUINE_AD_IOC"], os.environ["GENUINE_AD_CMD"],
                  "AD_PREFIX", prefix, "areaDetector")
