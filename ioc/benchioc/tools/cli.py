"""Command lines: `bench-ioc`, `bench-sim` and `motion-box` (the seed's script).

Errors a user can cause end here as one line in words and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

from .. import __version__, epicsenv, ownership
from .. import config as cfg

log = logging.getLogger("benchioc")

DEFAULT_CONFIG = Path("configs") / "bench.yaml"
EXIT_USAGE = 2
# The restart after an outside edit changed the motor set re-executes this program
# with the ports it first chose, so clients keep their EPICS_CA_ADDR_LIST.
RESTART_ENV = "BENCH_IOC_RESTARTED"


def _config_path(given: str | None) -> Path:
    if given:
        return Path(given)
    if DEFAULT_CONFIG.exists():
        return DEFAULT_CONFIG
    raise cfg.ConfigError(
        f"no --config given and no {DEFAULT_CONFIG} in {Path.cwd()}: "
        "run from the project folder or name a config file")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _ioc_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench-ioc",
        description="EPICS soft IOC for the motion test bench: homing, config and "
        "detector-sync records over Channel Access and PV Access.",
    )
    parser.add_argument("--config", help=f"bench config, JSON or YAML (default {DEFAULT_CONFIG})")
    parser.add_argument("--prefix", help="PV prefix (default: the config's ioc.prefix, BENCH:)")
    parser.add_argument("--sim", action="store_true",
                        help="also start the simulated bench and serve on loopback only")
    parser.add_argument("--sim-port", type=int, default=0,
                        help="CA port of the simulated bench (default: a free one)")
    parser.add_argument("--port", type=int, default=0,
                        help="CA server port of the IOC (default: EPICS_CA_SERVER_PORT, "
                        "or with --sim a free one)")
    parser.add_argument("--pva-port", type=int, default=0,
                        help="PVA server port of the IOC (default: EPICS's, or with --sim a "
                        "free one)")
    parser.add_argument("--pva-udp-port", type=int, default=0,
                        help="UDP port the IOC answers PVA searches on (default: EPICS's, "
                        "or with --sim a free one)")
    parser.add_argument("--time-scale", type=float, default=0,
                        help="with --sim: run the simulated motion this many times faster")
    parser.add_argument("--acf", metavar="FILE",
                        help="EPICS access security file (e.g. configs/bench.acf)")
    parser.add_argument("--write-db", metavar="FILE",
                        help="write every record the IOC would serve to FILE and exit")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--version", action="version", version=f"bench-ioc {__version__}")
    return parser


def bench_ioc_main(argv: list[str] | None = None) -> None:
    args = _ioc_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        doc = cfg.load(_config_path(args.config))
        prefix = args.prefix if args.prefix is not None else doc.config.ioc.prefix
        cfg.IocConfig(prefix=prefix)
        acf = Path(args.acf) if args.acf else None
        if acf is not None and not acf.is_file():
            raise cfg.ConfigError(f"{acf}: no such access security file")
    except (cfg.ConfigError, ValueError) as error:
        print(f"bench-ioc: {cfg_error_text(error)}", file=sys.stderr)
        sys.exit(EXIT_USAGE)

    from ..records import serve as serving  # imports softioc: only once the arguments are good

    if args.write_db:
        serving.write_db(doc, prefix, Path(args.write_db))
        return
    try:
        owned = ownership.claim(doc.path, prefix)  # held until the process ends
    except ownership.OwnedElsewhere as error:
        print(f"bench-ioc: {error}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    # From here on a SIGINT/SIGTERM is kept and ends the IOC in order, the sim included.
    quit_signal = serving.QuitSignal()
    sim = _start_sim(doc, args) if args.sim else None
    if not args.sim:
        _apply_server_ports(args)
    restart_args = _restart_argv(args)

    def on_ready(bench: serving.Bench) -> None:
        port = os.environ.get("EPICS_CAS_SERVER_PORT", "5064")
        ports = [port] + ([str(sim.port)] if sim else [])
        print(f"bench-ioc ready prefix={prefix} port={port} "
              f"pva_port={os.environ.get('EPICS_PVAS_SERVER_PORT', '5075')} "
              f"pva_udp_port={os.environ.get('EPICS_PVAS_BROADCAST_PORT', '5076')} "
              f"motors={','.join(bench.motors)} config={doc.path.resolve()}", flush=True)
        pva_udp = os.environ.get("EPICS_PVAS_BROADCAST_PORT", "5076")
        print("clients: export EPICS_CA_AUTO_ADDR_LIST=NO "
              f"EPICS_CA_ADDR_LIST=\"{' '.join(f'127.0.0.1:{p}' for p in ports)}\"",
              flush=True)
        # pvget searches EPICS_PVA_BROADCAST_PORT on the addresses of EPICS_PVA_ADDR_LIST
        print("clients (PVA): export EPICS_PVA_AUTO_ADDR_LIST=NO "
              f"EPICS_PVA_ADDR_LIST=127.0.0.1:{pva_udp} EPICS_PVA_BROADCAST_PORT={pva_udp}",
              flush=True)

    def on_restart() -> None:
        log.info("re-executing to serve the new motor set")
        if sim is not None:
            sim.stop()
        sys.stdout.flush()
        sys.stderr.flush()
        os.environ[RESTART_ENV] = "1"
        os.execv(sys.executable, [sys.executable, "-m", "benchioc.tools.cli", *restart_args])

    try:
        serving.serve(doc, serving.ServeOptions(prefix=prefix, on_ready=on_ready,
                                        on_restart=on_restart, acf=acf,
                                        quit_signal=quit_signal))
    finally:
        if sim is not None:
            sim.stop()
        owned.close()
    from softioc import softioc

    softioc.safeEpicsExit(0)


def cfg_error_text(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else repr(error)


class SimChild:
    """The simulated bench as a child process of `bench-ioc --sim`."""

    def __init__(self, config_path: Path, port: int, time_scale: float) -> None:
        self.port = port
        command = [sys.executable, "-m", "benchioc.sim", "--config", str(config_path),
                   "--port", str(port)]
        if time_scale:
            command += ["--time-scale", str(time_scale)]
        env = epicsenv.loopback_env(ca_ports=[port], server_port=port)
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "ready" not in line:
            self.stop()
            raise RuntimeError(f"the simulated bench did not start (said {line!r})")
        log.info("simulated bench: %s", line.strip())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _start_sim(doc: cfg.ConfigDocument, args: argparse.Namespace) -> SimChild:
    args.sim_port = args.sim_port or epicsenv.free_port()
    args.port = args.port or epicsenv.free_port()
    args.pva_port = args.pva_port or epicsenv.free_port()
    args.pva_udp_port = args.pva_udp_port or epicsenv.free_port()
    # The IOC is a CA client of the sim and a CA/PVA server, all on loopback only.
    epicsenv.apply_loopback_env(ca_ports=[args.sim_port], server_port=args.port,
                                pva_server_port=args.pva_port,
                                pva_udp_port=args.pva_udp_port)
    return SimChild(doc.path, args.sim_port, args.time_scale)


def _apply_server_ports(args: argparse.Namespace) -> None:
    """Ports given on the command line for a real bench; the rest of the EPICS
    environment is the site's own."""
    for value, names in ((args.port, ("EPICS_CA_SERVER_PORT", "EPICS_CAS_SERVER_PORT")),
                         (args.pva_port, ("EPICS_PVAS_SERVER_PORT",)),
                         (args.pva_udp_port, ("EPICS_PVAS_BROADCAST_PORT",))):
        if value:
            os.environ.update({name: str(value) for name in names})


def _restart_argv(args: argparse.Namespace) -> list[str]:
    argv = list(sys.argv[1:])
    for option, value in (("--port", args.port), ("--pva-port", args.pva_port),
                          ("--pva-udp-port", args.pva_udp_port),
                          ("--sim-port", args.sim_port)):
        if value and option not in argv:
            argv += [option, str(value)]
    return argv


def bench_sim_main(argv: list[str] | None = None) -> None:
    from ..sim.server import main

    sys.exit(main(argv))


def motion_box_main(argv: list[str] | None = None) -> None:
    from .motionbox import main

    sys.exit(main(argv))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        bench_ioc_main()
