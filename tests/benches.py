"""The bench an integration test drives, on either backend, from the same test code.

- "sim": `bench-ioc --sim` on a copy of configs/bench.yaml (the simulated bench);
- "genuine": the genuine motorSim IOC (and simDetector IOC when built) as subprocesses,
  and `bench-ioc` on a copy of configs/genuine.yaml wrapping them. Skipped, with a line
  that says how to enable it, when the genuine build is absent (see genuine.py).

A test module asks for the backends with `params=BACKENDS` on its module fixture and
opens the bench with open_bench(); what differs between the backends is here, not in
the tests.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

import genuine
from iocharness import IocProcess

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ("sim", "genuine")

# The genuine axes as the tests set them up: motor.cmd's 10 mm/s would make a homing
# over the +-100 mm range last 20 s; D is reversed like the simulated bench's D. Not
# faster: at 80 mm/s an axis that never made an absolute move overshoots its switch by
# 60 mm and motorSim's return (at 1 step/s, see homing's settle) then ignores a STOP.
GENUINE_AXIS_FIELDS = {"VMAX": 50, "VELO": 40, "JVEL": 40, "ACCL": 0.1}
GENUINE_REVERSED = ("D",)

# Many puts in one CA client process (each caput process costs ~0.2 s to start).
_PUT_MANY = r"""
import asyncio, sys
from aioca import caput
async def main(pairs):
    for pv, value in pairs:  # in order: VMAX before the speeds it bounds
        await caput(pv, value, wait=True, timeout=10)
asyncio.run(main([arg.split("=", 1) for arg in sys.argv[1:]]))
"""


def put_many(env: dict[str, str], values: dict[str, Any]) -> None:
    """caput with callback of each PV=value, in one process."""
    result = subprocess.run([sys.executable, "-c", _PUT_MANY,
                             *(f"{pv}={value}" for pv, value in values.items())],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@dataclass
class Bench:
    """A running bench: the IOC under test and, on the genuine backend, its servers."""

    backend: str
    ioc: IocProcess
    servers: list[genuine.GenuineIoc] = field(default_factory=list)

    @property
    def genuine(self) -> bool:
        return self.backend == "genuine"

    @property
    def env(self) -> dict[str, str]:
        return self.ioc.env

    def config(self) -> dict[str, Any]:
        return yaml.safe_load(self.ioc.config.read_text())

    def root(self, motor: str) -> str:
        """The motor record behind a bench motor (SIM:A on the sim, SIM:m1 genuine)."""
        return self.config()["motors"][motor]["pv_root"]

    def skip_on_genuine(self, why: str) -> None:
        if self.genuine:
            pytest.skip(f"not on the genuine backend: {why}")

    def stop(self) -> None:
        self.ioc.stop()
        for server in self.servers:
            server.stop()


def open_bench(backend: str, folder: Path, *, time_scale: float = 20.0,
               edit: Callable[[dict[str, Any]], None] | None = None,
               extra: tuple[str, ...] = ()) -> Bench:
    """Start the bench of `backend` with its config copied into `folder` (edited by
    `edit(config)` first, if given)."""
    if backend == "sim":
        config = _copy_config("bench.yaml", folder, edit)
        return Bench(backend, IocProcess(config, time_scale=time_scale, extra=extra))
    genuine.skip_unless_built(genuine.MOTOR_VARS, "the genuine motor record")
    config = _copy_config("genuine.yaml", folder, edit)
    servers = [genuine.start_motor_ioc()]
    try:
        if not genuine.missing(genuine.AD_VARS):
            servers.append(genuine.start_ad_ioc())
        prepare_axes(servers[0], yaml.safe_load(config.read_text()))
        ioc = IocProcess(config, extra=extra, server_ports=[s.port for s in servers])
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return Bench(backend, ioc, servers)


def _copy_config(name: str, folder: Path, edit: Callable[[dict[str, Any]], None] | None
                 ) -> Path:
    path = folder / name
    if edit is None:
        shutil.copy(REPO / "configs" / name, path)  # comments and layout kept
    else:
        config = yaml.safe_load((REPO / "configs" / name).read_text())
        edit(config)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def prepare_axes(motor_ioc: genuine.GenuineIoc, config: dict[str, Any]) -> None:
    """Speeds and directions of the genuine axes as the tests want them (a motorSim IOC
    starts with motor.cmd's own)."""
    values: dict[str, Any] = {}
    for name, motor in config["motors"].items():
        root = motor["pv_root"]
        values.update({f"{root}.{f}": v for f, v in GENUINE_AXIS_FIELDS.items()})
        if name in GENUINE_REVERSED:
            values[f"{root}.DIR"] = 1  # Neg
    put_many(motor_ioc.env, values)
