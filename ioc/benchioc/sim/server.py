"""`bench-sim`: serve the simulated bench over CA on loopback.

The PV database is built in one place, `BenchSim.build_pvdb`, from a list of group
factories. Each factory takes (config, motors_by_name, time_scale) and returns PV groups;
the motor records come first, and other simulated devices (camera, trigger box) append
their factory to `GROUP_FACTORIES` (or pass `factories=`) and find the motor physics by
name in `motors_by_name` (each has `.clock`, `.trajectory`, `.position_at(t)`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .. import epicsenv
from ..config import BenchConfig, ConfigError, load
from .motion import MotorSim, default_params, params_from_config

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("configs/bench.yaml")
READY_TIMEOUT = 10.0

# (config, motors_by_name, time_scale) -> PV groups to serve.
GroupFactory = Callable[[BenchConfig, dict[str, MotorSim], float], Iterable]


def build_motors(config: BenchConfig, clock) -> dict[str, MotorSim]:
    """One MotorSim per configured motor; physics from config.sim.motors or defaults."""
    motors = {}
    for name, motor in config.motors.items():
        limits = (motor.lo_lim, motor.hi_lim)
        sim = config.sim.motors.get(name)
        params = (params_from_config(sim, limits) if sim is not None
                  else default_params(motor.lo_lim, motor.hi_lim, config.tolerance))
        motors[name] = MotorSim(name, params, clock)
    return motors


def motor_groups(config: BenchConfig, motors: dict[str, MotorSim], time_scale: float):
    """A motor record (and its fault knobs) at each motor's pv_root."""
    from .motor import MotorGroup, SimClock

    groups = []
    for name, physics in motors.items():
        assert isinstance(physics.clock, SimClock)  # the bench's clock (build_motors)
        groups.append(MotorGroup(prefix=config.motors[name].pv_root, physics=physics,
                                 clock=physics.clock))
    return groups


def detector_groups(config: BenchConfig, motors: dict[str, MotorSim], time_scale: float):
    """The camera and the trigger box (sim/camera.py, sim/triggerbox.py), and the
    camera's areaDetector plugins `image1:` and `HDF1:` beside `cam1:` (a camera prefix
    `P:cam1:` puts them at `P:image1:` and `P:HDF1:`)."""
    from .camera import CameraGroup
    from .hdf5plugin import HDF5PluginGroup
    from .plugins import StdArraysGroup
    from .triggerbox import SimMotorPositions
    from .triggerbox import detector_groups as build

    groups = list(build(config, motors, time_scale))
    for camera in [g for g in groups if isinstance(g, CameraGroup)]:
        ranges = {name: (m.lo_lim, m.hi_lim) for name, m in config.motors.items()}
        camera.attach_motors(SimMotorPositions(motors), ranges)
        stem = camera.prefix.rstrip(":").rpartition(":")[0]
        device = f"{stem}:" if stem else ""
        camera.plugins = [StdArraysGroup(prefix=f"{device}image1:"),
                          HDF5PluginGroup(prefix=f"{device}HDF1:")]
        groups.extend(camera.plugins)
    return groups


GROUP_FACTORIES: list[GroupFactory] = [motor_groups, detector_groups]


class BenchSim:
    """The simulated bench: motor physics by name, PV groups, and the CA server."""

    def __init__(self, config: BenchConfig, time_scale: float | None = None,
                 factories: Iterable[GroupFactory] | None = None):
        from .motor import SimClock

        self.config = config
        self.time_scale = time_scale if time_scale is not None else config.sim.time_scale
        self.clock = SimClock(self.time_scale)
        self.motors: dict[str, MotorSim] = build_motors(config, self.clock)
        self.factories = list(GROUP_FACTORIES if factories is None else factories)
        self.groups: list = []
        self.pvdb: dict = self.build_pvdb()
        self.port: int | None = None

    def build_pvdb(self) -> dict:
        """Every group of every factory, merged; a PV name served twice is an error."""
        pvdb: dict = {}
        for factory in self.factories:
            for group in factory(self.config, self.motors, self.time_scale):
                self.groups.append(group)
                clash = pvdb.keys() & group.pvdb.keys()
                if clash:
                    raise ConfigError(f"PV names served twice: {', '.join(sorted(clash))}")
                pvdb.update(group.pvdb)
        return pvdb

    async def serve(self, on_ready: Callable[[int], None] | None = None) -> None:
        """Run the CA server until cancelled; `on_ready(port)` once it accepts clients."""
        from caproto.asyncio.server import Context

        from . import caproto_fixes

        caproto_fixes.apply()
        context = Context(self.pvdb)
        for group in self.groups:
            if hasattr(group, "ca_context"):
                group.ca_context = context

        async def ready_hook(async_lib) -> None:
            await _wait_listening(context)
            self.port = context.port
            if on_ready is not None:
                on_ready(context.port)

        await context.run(startup_hook=ready_hook)


async def _wait_listening(context) -> None:
    """Until the server's TCP port accepts a connection (caproto listens in a task)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        port = getattr(context, "port", None)
        if port:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(epicsenv.LOOPBACK, port)
                writer.close()
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the CA server did not listen within {READY_TIMEOUT:g} s")
        await asyncio.sleep(0.01)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench-sim", description="Serve the simulated motion bench over CA (loopback).")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="bench config file (default: configs/bench.yaml in the CWD)")
    parser.add_argument("--port", type=int, default=0,
                        help="CA server port (default: a free port)")
    parser.add_argument("--time-scale", type=float, default=None,
                        help="simulated seconds per real second (default: config sim.time_scale)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # caproto is chatty at INFO, and each beacon sent to a CA repeater that is not
    # running (the usual case on loopback) would log a traceback.
    caproto_log = logging.getLogger("caproto")
    caproto_log.setLevel(logging.WARNING)
    logging.getLogger("caproto.ctx").addFilter(_no_beacon_errors)


def _no_beacon_errors(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Failed to send beacon")


def main(argv: list[str] | None = None) -> int:
    """`bench-sim [--config FILE] [--port N] [--time-scale X]`; returns the exit code."""
    args = _parse(argv)
    _configure_logging(args.verbose)
    if args.time_scale is not None and not args.time_scale > 0:
        print(f"bench-sim: --time-scale must be above 0, not {args.time_scale:g}",
              file=sys.stderr)
        return 2
    try:
        config = load(args.config).config
    except ConfigError as error:
        print(f"bench-sim: {error}", file=sys.stderr)
        return 2
    port = args.port or epicsenv.free_port()
    # Before caproto is imported: it reads the environment at import time.
    epicsenv.apply_loopback_env(server_port=port)
    try:
        sim = BenchSim(config, args.time_scale)
    except ConfigError as error:
        print(f"bench-sim: {error}", file=sys.stderr)
        return 2
    names = ",".join(sim.motors)

    def announce(actual_port: int) -> None:
        log.info("serving %d PVs on 127.0.0.1:%d, time scale %g", len(sim.pvdb), actual_port,
                 sim.time_scale)
        print(f"bench-sim ready port={actual_port} motors={names}", flush=True)

    return asyncio.run(_serve_until_signal(sim, announce))


async def _serve_until_signal(sim: BenchSim, on_ready: Callable[[int], None]) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server = asyncio.create_task(sim.serve(on_ready))
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({server, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if server.done():
        stopper.cancel()
        error = server.exception()
        if error is not None:
            log.error("the simulated bench stopped: %s", error)
            return 1
        return 0
    log.info("stopping (signal)")
    server.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await server
    return 0

