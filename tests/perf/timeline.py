"""Where a homing's time goes: the IOC's homing of one motor against the floor's, step by
step, on the simulated bench (loopback, free ports).

    python tests/perf/timeline.py [--motor A] [--time-scale 5] [--repeat 3]

Runs `bench-ioc --sim -v` (its DEBUG log names every CA write of the homing engine, with
a millisecond wall-clock stamp), homes the motor once to bring it to center, then, from
center, alternately: HomeHi through the IOC (its log lines of the motor printed with their
time since the put), and the floor homing of floor.py (a bare pyepics client, each step's
end stamped). The ideal motion phases of each homing come from the sim's own physics
(ideal.py). The IOC's debug logging costs some time of its own: the totals here are a
little above bench.py's.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import floor  # noqa: E402
import parts  # noqa: E402
from caclient import CaClient  # noqa: E402
from ideal import ShadowBench  # noqa: E402

from benchioc.config import load  # noqa: E402
from benchioc.engines.homing.settings import HomingSettings  # noqa: E402
from iocharness import IocProcess  # noqa: E402

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) ([\w.]+): (.*)$")


def log_lines(lines: list[str], motor: str, root: str, since: float) -> list[tuple[float, str]]:
    """(ms since `since`, text) of the IOC's log lines about this motor."""
    out = []
    for line in lines:
        match = STAMP.match(line)
        if not match or not (f"{motor}: " in match.group(4) or root in match.group(4)):
            continue
        stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        out.append(((stamp - since) * 1000, f"{match.group(3).rsplit('.', 1)[-1]}: "
                                            f"{match.group(4)[:110]}"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--motor", default="A")
    parser.add_argument("--time-scale", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", choices=("sim", "genuine"), default="sim",
                        help="genuine (homing only; after `. PREFIX/env.sh`): the motor "
                             "record of motorSim, no ideal times")
    parser.add_argument("--step", action="store_true",
                        help="the step scan instead: the IOC's and the floor loop's, seen "
                             "through the motor's DMOV and the camera's Acquire_RBV monitors")
    args = parser.parse_args(argv)
    if args.step:
        return step_main(args)
    folder = parts._work_dir()
    servers: list = []
    if args.backend == "genuine":
        servers, config_path, ioc = _genuine(folder)
        shadow = None
    else:
        config_path = parts.copy_bench_config(folder)
        ioc = IocProcess(config_path, time_scale=args.time_scale, extra=("-v",))
    config = load(config_path).config
    if args.backend == "sim":
        shadow = ShadowBench(config)
    motor, root = args.motor, config.motors[args.motor].pv_root
    settings = HomingSettings.from_config(config, motor)
    totals: dict[str, list[float]] = {"ioc": [], "floor": []}
    try:
        client = CaClient(ioc.env)
        prefix = ioc.prefix
        client.wait_all([f"{prefix}{motor}:Connected"], 1, timeout=60)
        if shadow is not None:
            shadow.home(motor)
        floor.home_high(client, root, settings)  # to center
        for index in range(args.repeat):
            # a HomeHi put right after the same motor's last homing was seen to complete
            # at once (0.2 ms) here: give the IOC a moment
            time.sleep(0.5)
            phases = shadow.home(motor) if shadow is not None else None
            ideal = phases.total / args.time_scale if phases is not None else 0.0
            seen = len(ioc.lines)
            since = time.time()
            wall, _ = parts.home_one(client, prefix, motor, ideal)
            time.sleep(0.2)  # the log lines reach us through a pipe
            print(f"\n== IOC homing {index + 1} of {motor}: wall {wall * 1000:.1f} ms, ideal "
                  f"{ideal * 1000:.1f} ms ({_phases(phases, args.time_scale)})")
            previous = 0.0
            for offset, words in log_lines(ioc.lines[seen:], motor, root, since):
                print(f"  {offset:8.1f} ms (+{offset - previous:6.1f})  {words}")
                previous = offset
            totals["ioc"].append((wall - ideal) * 1000)
            time.sleep(0.5)
            phases = shadow.home(motor) if shadow is not None else None
            ideal = phases.total / args.time_scale if phases is not None else 0.0
            marks: list[tuple[str, float]] = []
            client.wait_all([f"{prefix}{motor}:Busy", f"{prefix}Busy"], 0, timeout=10)
            result = floor.home_high(client, root, settings, marks=marks)
            print(f"\n== floor homing {index + 1} of {motor}: wall {result.wall_s * 1000:.1f} "
                  f"ms, ideal {ideal * 1000:.1f} ms ({_phases(phases, args.time_scale)}), "
                  f"{result.requests} CA writes")
            start = marks[0][1]
            previous = 0.0
            for step, stamp in marks[1:]:
                offset = (stamp - start) * 1000
                print(f"  {offset:8.1f} ms (+{offset - previous:6.1f})  {step}")
                previous = offset
            totals["floor"].append((result.wall_s - ideal) * 1000)
    finally:
        ioc.stop()
        for server in servers:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    for name, values in totals.items():
        print(f"{name}: wall − ideal {', '.join(f'{v:.1f}' for v in values)} ms "
              f"(median {statistics.median(values):.1f})")
    return 0


def step_main(args: argparse.Namespace) -> int:
    """Per point of a step scan, from the servers' own monitors (stamped on arrival here):
    the move (DMOV 1->0->1), the gap to the acquisition (Acquire_RBV 0->1), the
    acquisition, and the gap to the next move; medians, IOC and floor loop."""
    folder = parts._work_dir()
    config_path = parts.copy_bench_config(folder, scan_axis=True)
    config = load(config_path).config
    s = parts.STEP_SCAN
    root = config.motors[s["motor"]].pv_root
    camera = config.detector.prefix
    step = (s["end"] - s["start"]) / (s["points"] - 1)
    targets = [s["start"] + i * step for i in range(s["points"])]
    ioc = IocProcess(config_path, time_scale=args.time_scale)
    try:
        client = CaClient(ioc.env)
        prefix = ioc.prefix
        client.wait_all([f"{prefix}{m}:Connected" for m in config.motors], 1, timeout=60)
        parts.home_all(client, prefix, 0.0)
        for index in range(args.repeat):
            client.put_wait(f"{root}.VAL", s["end"], timeout=60)
            parts._configure_scan(client, prefix, mode=0, motor=s["motor"],
                                  points=s["points"], start=s["start"], end=s["end"],
                                  exposure=s["exposure"], settle=s["settle"])
            with _Events(client, root, camera) as events:
                wall = client.put_wait(f"{prefix}Sync:Run", 1, timeout=120)
            _print_gaps(f"IOC step scan {index + 1}: wall {wall * 1000:.1f} ms "
                        f"(settle {s['settle'] * 1000:g} ms a point)", events)
            floor.configure_camera(client, camera, exposure=s["exposure"],
                                   period=2 * s["exposure"] + 0.01)
            with _Events(client, root, camera) as events:
                wall = floor.step_scan(client, root, camera, targets)
            _print_gaps(f"floor loop {index + 1}: wall {wall * 1000:.1f} ms", events)
    finally:
        ioc.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


class _Events:
    """Monitors of DMOV and Acquire_RBV while a scan runs: (stamp, what) in order."""

    def __init__(self, client: CaClient, root: str, camera: str) -> None:
        self.client, self.names = client, (f"{root}.DMOV", f"{camera}Acquire_RBV")
        self.items: list[tuple[float, str]] = []

    def __enter__(self) -> _Events:
        labels = {(self.names[0], 0): "move start", (self.names[0], 1): "move end",
                  (self.names[1], 1): "acquire start", (self.names[1], 0): "acquire end"}
        last = {name: int(self.client.pv(name).get(timeout=5.0)) for name in self.names}

        def seen(pvname=None, value=None, **_kw) -> None:
            value = int(value)
            if last[pvname] != value:
                self.items.append((time.perf_counter(), labels[(pvname, value)]))
            last[pvname] = value

        for name in self.names:
            self.client.pv(name).add_callback(seen)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.1)
        for name in self.names:
            self.client.pv(name).clear_callbacks()


def _print_gaps(title: str, events: _Events) -> None:
    """Median ms between consecutive kinds of event over the scan's points."""
    gaps: dict[str, list[float]] = {}
    for (t0, a), (t1, b) in zip(events.items, events.items[1:], strict=False):
        gaps.setdefault(f"{a} -> {b}", []).append((t1 - t0) * 1000)
    print(f"\n== {title}")
    for what, values in gaps.items():
        print(f"  {what:32} median {statistics.median(values):7.2f} ms over {len(values)}")


def _genuine(folder: Path) -> tuple[list, Path, IocProcess]:
    """The motorSim and simDetector IOCs and bench-ioc -v on them (as bench.py's genuine
    backend, parts.Backend, with the IOC's debug log)."""
    import yaml

    import genuine
    from benches import prepare_axes

    config_path = parts.genuine_config(folder)
    document = yaml.safe_load(config_path.read_text())
    servers = [genuine.start_motor_ioc(), genuine.start_ad_ioc()]
    try:
        prepare_axes(servers[0], document)
        ioc = IocProcess(config_path, server_ports=[s.port for s in servers], extra=("-v",))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers, config_path, ioc


def _phases(phases, scale: float) -> str:
    if phases is None:
        return "no ideal on the genuine bench"
    return ", ".join(f"{name} {getattr(phases, name) / scale * 1000:.1f}"
                     for name in ("seek", "settle", "approach", "center"))


if __name__ == "__main__":
    sys.exit(main())
