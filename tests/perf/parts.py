"""The benchmark's measurements, one function per part; bench.py runs each in its own
process (pyepics has one CA context per process and fixes its address list at start).

Every part starts its own servers on free loopback ports and returns a dict of plain
numbers (None where a part of the IOC is not built yet) plus notes in words.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchioc import epicsenv
from benchioc.config import load
from benchioc.engines.homing.settings import HomingSettings
from benchioc.sim.camera import DEFAULT_READOUT_S

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests"))

import floor  # noqa: E402
from caclient import CaClient  # noqa: E402
from ideal import ShadowBench  # noqa: E402

from camon import server_port  # noqa: E402
from iocharness import IocProcess  # noqa: E402

BENCH_YAML = REPO / "configs" / "bench.yaml"
BENCH_MOTORS = ("A", "B", "C", "D", "E")
SCAN_AXIS = "S"
HOMED, NOT_HOMED = 4, 0
# Gets of the status record while measuring latency: paced so that the probe itself
# does not load the IOC (200 gets per second at most).
PROBE_PERIOD_S = 0.005
IDLE_PROBES = 200


def _work_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="bench-perf-"))


def copy_bench_config(folder: Path, scan_axis: bool = False) -> Path:
    """The five-motor bench, copied so the IOC's autosave state lands in a temp dir.

    With scan_axis, a sixth, short and fast motor S is added for the scan that runs
    while A-E home (a scan on a motor that is being homed would disturb its homing)."""
    path = folder / "bench.yaml"
    shutil.copy(BENCH_YAML, path)
    if scan_axis:
        document = yaml.safe_load(path.read_text())
        document["motors"][SCAN_AXIS] = {"pv_root": f"SIM:{SCAN_AXIS}", "lo_lim": -3,
                                         "hi_lim": 3, "center": 0}
        document["sim"]["motors"][SCAN_AXIS] = {"low_switch": -3.8, "high_switch": 3.8,
                                                "start": 0.0, "velo": 10, "accl": 0.1}
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) used so far by a process and by each of its children."""
    import psutil

    process = psutil.Process(pid)
    used = {"ioc": sum(process.cpu_times()[:2])}
    for child in process.children(recursive=True):
        used[f"child {child.pid}"] = sum(child.cpu_times()[:2])
    return used


def cpu_during(pid: int, before: dict[str, float], seconds: float) -> str:
    """Each process's CPU use since `before`, as a share of one core over `seconds`."""
    after = cpu_seconds(pid)
    names = {"ioc": "IOC"}
    return ", ".join(f"{names.get(k, 'sim')} {100 * (v - before.get(k, 0.0)) / seconds:.0f} %"
                     for k, v in after.items())


def rss_mb(pid: int) -> float:
    """Resident set size of one process (not its children), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def text(client: CaClient, name: str) -> str:
    """A longString record's value as text (CA serves it as a char array)."""
    value = client.get(name)
    if isinstance(value, str):
        return value
    return bytes(value).split(b"\0", 1)[0].decode(errors="replace")


def ioc_log(ioc: IocProcess, lines: int = 25) -> str:
    """The IOC's last log lines, for an error report."""
    return "\n".join(ioc.lines[-lines:])


def _homing_timeout(ideal_s: float) -> float:
    return 30.0 + 3 * ideal_s


def _check_ran(client: CaClient, message: str, wall_s: float, ideal_s: float) -> None:
    """A homing that ended faster than the motion it needs was refused, not run."""
    if wall_s < 0.9 * ideal_s:
        raise RuntimeError(f"a homing ended after {wall_s * 1000:.1f} ms, less than the "
                           f"{ideal_s * 1000:.1f} ms its motion needs: {text(client, message)}")


def home_one(client: CaClient, prefix: str, motor: str, ideal_s: float) -> tuple[float, float]:
    """HomeHi with put-callback: (wall seconds, seconds until State left NotHomed/Homed)."""
    # A Home put while the IOC still shows Busy is refused at once (see the docs)
    client.wait_all([f"{prefix}{motor}:Busy", f"{prefix}Busy"], 0, timeout=10)
    state = client.monitor(f"{prefix}{motor}:State")
    result = client.put_callback(f"{prefix}{motor}:HomeHi", 1)
    if not result.event.wait(_homing_timeout(ideal_s)):
        raise RuntimeError(f"{motor}: HomeHi did not complete within "
                           f"{_homing_timeout(ideal_s):.0f} s")
    final = client.get(f"{prefix}{motor}:State")
    if final != HOMED:
        message = text(client, f"{prefix}{motor}:Message")
        raise RuntimeError(f"{motor}: homing ended in state {final}, not Homed: {message}")
    _check_ran(client, f"{prefix}{motor}:Message", result.seconds, ideal_s)
    left = state.first_after(result.started, lambda v: v not in (NOT_HOMED, HOMED))
    client.pv(f"{prefix}{motor}:State").clear_callbacks()
    latency = (left - result.started) if left is not None else float("nan")
    return result.seconds, latency


def home_all(client: CaClient, prefix: str, ideal_s: float, probe: str | None = None
             ) -> tuple[float, list[float]]:
    """HomeAllHi with put-callback: wall seconds, and get latencies of `probe` meanwhile."""
    client.wait_all([f"{prefix}Busy"], 0, timeout=10)
    result = client.put_callback(f"{prefix}HomeAllHi", 1)
    latencies: list[float] = []
    if probe is not None:
        latencies = client.paced_get_latencies(probe, PROBE_PERIOD_S, result.event.is_set)
    if not result.event.wait(_homing_timeout(ideal_s)):
        raise RuntimeError(f"HomeAllHi did not complete within {_homing_timeout(ideal_s):.0f} s")
    _check_ran(client, f"{prefix}Message", result.seconds, ideal_s)
    if client.get(f"{prefix}AllHomed") != 1:
        raise RuntimeError(f"HomeAllHi ended without AllHomed: {text(client, prefix + 'Message')}")
    return result.seconds, latencies


def home_each(client: CaClient, prefix: str, motors: tuple[str, ...], ideal_s: float,
              probe: str) -> list[float]:
    """HomeHi on each motor at once (put-callbacks), get latencies of `probe` meanwhile."""
    client.wait_all([f"{prefix}{m}:Busy" for m in motors] + [f"{prefix}Busy"], 0, timeout=10)
    puts = [client.put_callback(f"{prefix}{m}:HomeHi", 1) for m in motors]
    latencies = client.paced_get_latencies(
        probe, PROBE_PERIOD_S, lambda: all(p.event.is_set() for p in puts))
    for motor, put in zip(motors, puts, strict=True):
        if not put.event.wait(_homing_timeout(ideal_s)):
            raise RuntimeError(f"{motor}: HomeHi did not complete")
        if client.get(f"{prefix}{motor}:State") != HOMED:
            raise RuntimeError(f"{motor}: not homed: {text(client, prefix + motor + ':Message')}")
    return latencies


class Backend:
    """The bench a part runs on: the simulated one (bench-ioc --sim), or the genuine motor
    record (motorSim) and simDetector IOCs with bench-ioc wrapping them."""

    def __init__(self, name: str, folder: Path, time_scale: float) -> None:
        self.name = name
        self.servers: list = []
        self.time_scale = time_scale
        if name == "sim":
            self.config_path = copy_bench_config(folder, scan_axis=True)
            self.config = load(self.config_path).config
            self.shadow: ShadowBench | None = ShadowBench(self.config)
            self.ioc = IocProcess(self.config_path, time_scale=time_scale)
            return
        import genuine  # tests/genuine.py: the genuine IOCs as subprocesses
        from benches import prepare_axes

        self.config_path = genuine_config(folder)
        document = yaml.safe_load(self.config_path.read_text())
        self.config = load(self.config_path).config
        self.shadow = None  # no exact motion model of motorSim: ideal times unknown
        try:
            self.servers = [genuine.start_motor_ioc(), genuine.start_ad_ioc()]
            prepare_axes(self.servers[0], document)
            self.ioc = IocProcess(self.config_path, server_ports=[s.port for s in self.servers])
        except BaseException:
            self.stop_servers()
            raise

    @property
    def genuine(self) -> bool:
        return self.name == "genuine"

    def ideal_home(self, motor: str) -> float | None:
        """Real seconds of the motion of the next homing of `motor`, or None (genuine)."""
        if self.shadow is None:
            return None
        return self.shadow.home(motor).total / self.time_scale

    def stop_servers(self) -> None:
        for server in self.servers:
            server.stop()

    def stop(self) -> None:
        self.ioc.stop()
        self.stop_servers()


GENUINE_SCAN_ROOT = "SIM:m6"  # motor.cmd's sixth axis, free on the genuine bench


def genuine_config(folder: Path) -> Path:
    """configs/genuine.yaml with the scan axis S on the sixth motorSim axis."""
    document = yaml.safe_load((REPO / "configs" / "genuine.yaml").read_text())
    document["motors"][SCAN_AXIS] = {"pv_root": GENUINE_SCAN_ROOT, "lo_lim": -90,
                                     "hi_lim": 90, "center": 0}
    path = folder / "genuine.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _median_or_none(values: list[float | None]) -> float | None:
    numbers = [v for v in values if v is not None]
    return statistics.median(numbers) if numbers else None


def floor_home(client: CaClient, bench: Backend, motor: str) -> float:
    """The floor homing of one motor (floor.py), straight to its motor record: seconds."""

    client.wait_all([f"{bench.ioc.prefix}{motor}:Busy", f"{bench.ioc.prefix}Busy"], 0,
                    timeout=10)
    settings = HomingSettings.from_config(bench.config, motor)
    return floor.home_high(client, bench.config.motors[motor].pv_root, settings).wall_s


def part_bench5(time_scale: float, passes: int, backend: str = "sim") -> dict:
    """Homing overhead and its floor, state latency, HomeAll ratio, latency under load,
    RSS, sync (step overhead and its floor, fly position error)."""
    folder = _work_dir()
    bench = Backend(backend, folder, time_scale)
    ioc, config = bench.ioc, bench.config
    try:
        client = CaClient(ioc.env)
        prefix = ioc.prefix
        client.wait_all([f"{prefix}{m}:Connected" for m in config.motors], 1, timeout=60)
        overheads, floors, latencies, singles = [], [], [], {}
        for _ in range(passes):
            for motor in BENCH_MOTORS:
                ideal = bench.ideal_home(motor)
                wall, latency = home_one(client, prefix, motor, ideal or 0.0)
                overheads.append((motor, wall, ideal))
                latencies.append(latency)
                singles[motor] = wall  # the last pass starts from center, like HomeAll
                # the floor: the same homing from the same place (center, after the first
                # pass) by a bare client; the shadow follows it like the IOC's
                floor_ideal = bench.ideal_home(motor)
                floors.append((motor, floor_home(client, bench, motor), floor_ideal))
        ideals_all = [bench.ideal_home(m) for m in config.motors]
        ideal_all = max(ideals_all) if None not in ideals_all else 0.0
        before = cpu_seconds(ioc.process.pid)
        all_wall, _ = home_all(client, prefix, ideal_all)
        cpu = cpu_during(ioc.process.pid, before, all_wall)
        probe = f"{prefix}A:State"
        idle = [client.get_latency(probe) for _ in range(IDLE_PROBES)]
        scan = _start_load_scan(client, prefix)
        ideals = [bench.ideal_home(m) for m in BENCH_MOTORS]
        loaded = home_each(client, prefix, BENCH_MOTORS,
                           max(ideals) if None not in ideals else 0.0, probe)
        scan_note = _finish_load_scan(client, prefix, scan)
        rss = rss_mb(ioc.process.pid)
        sync = measure_sync(client, prefix, bench)
    except RuntimeError as error:
        raise RuntimeError(f"{error}\nIOC log:\n{ioc_log(ioc)}") from None
    finally:
        bench.stop()
        shutil.rmtree(folder, ignore_errors=True)
    excess_ms = [(w - i) * 1000 for _, w, i in overheads if i is not None]
    floor_ms = [(w - i) * 1000 for _, w, i in floors if i is not None]
    # above the floor: each IOC homing against the floor homing of the same motor from
    # the same place (center; the first pass's IOC homings start elsewhere, so from the
    # second pass on when there is one)
    paired = [(o[1] - f[1]) * 1000 for o, f in zip(overheads, floors, strict=True)]
    if passes > 1:
        paired = paired[len(BENCH_MOTORS):]
    homing_overhead = _median_or_none(excess_ms)
    homing_floor = _median_or_none(floor_ms)
    result = {
        "homing_overhead_ms": homing_overhead,
        "homing_floor_ms": homing_floor,
        "homing_overhead_above_floor_ms": statistics.median(paired),
        "homing_runs": [{"motor": m, "wall_s": w, "ideal_s": i} for m, w, i in overheads],
        "floor_runs": [{"motor": m, "wall_s": w, "ideal_s": i} for m, w, i in floors],
        "state_latency_ms": statistics.median(latencies) * 1000,
        "home_all_s": all_wall,
        "slowest_single_s": max(singles.values()),
        "home_all_ratio": all_wall / max(singles.values()),
        "idle_get_ms": statistics.median(idle) * 1000,
        "loaded_get_ms": statistics.median(loaded) * 1000,
        "loaded_gets": len(loaded),
        "latency_under_load_ratio": statistics.median(loaded) / statistics.median(idle),
        "load_scan": scan_note,
        "rss_mb_5": rss,
        "cpu_during_home_all": cpu,
        **sync,
    }
    reasons = dict(sync.get("null_reasons", {}))
    if bench.genuine:
        why = ("no exact motion model of motorSim on the genuine bench: the ideal motion "
               "time is unknown, so only the figures above the floor are measured")
        reasons.update(homing_overhead_ms=why, homing_floor_ms=why)
    result["null_reasons"] = reasons
    return result


def _sync_served(client: CaClient, prefix: str) -> bool:
    return client.served(f"{prefix}Sync:Run")


def _start_load_scan(client: CaClient, prefix: str):
    """A step scan running beside the homing, once $(P)Sync:Run exists (else None)."""
    if not _sync_served(client, prefix):
        return None
    try:
        _configure_scan(client, prefix, mode=0, motor=SCAN_AXIS, points=41, exposure=0.02)
        return client.put_callback(f"{prefix}Sync:Run", 1)
    except Exception as error:  # noqa: BLE001 - sync is being built; report, do not die
        return f"scan not started: {error}"


def _finish_load_scan(client: CaClient, prefix: str, scan) -> str:
    if scan is None:
        return "no scan ($(P)Sync:Run not served)"
    if isinstance(scan, str):
        return scan
    if not scan.event.wait(60):
        return "scan beside the homing did not finish within 60 s"
    state = client.get(f"{prefix}Sync:State")
    message = text(client, f"{prefix}Sync:Message")
    return (f"step scan on {SCAN_AXIS} beside the homing: {scan.seconds:.2f} s, "
            f"state {state}, {message}")


def _configure_scan(client: CaClient, prefix: str, *, mode: int, motor: str, points: int,
                    start: float = -2.0, end: float = 2.0, exposure: float = 0.01,
                    settle: float = 0.0) -> None:
    # the camera needs a period of at least exposure + readout
    settings = {"Mode": mode, "Motor": motor, "Start": start, "End": end,
                "NumPoints": points, "FramesPerPoint": 1, "Exposure": exposure,
                "Period": 2 * exposure + 0.01, "SettleTime": settle}
    for name, value in settings.items():
        client.put_wait(f"{prefix}Sync:{name}", value, timeout=10)


SCAN_RUNNING, SCAN_FINISHING = 2, 3  # $(P)Sync:State
STEP_SCAN = {"motor": SCAN_AXIS, "points": 11, "start": -2.0, "end": 2.0, "exposure": 0.01,
             "settle": 0.005}


def measure_sync(client: CaClient, prefix: str, bench: Backend) -> dict:
    """step_overhead_ms, its floor and the part above it, and fly_position_error (None,
    with a reason in null_reasons, where a figure cannot be made)."""
    keys = ("step_overhead_ms", "step_floor_ms", "step_overhead_above_floor_ms",
            "step_points_above_floor_ms", "scan_fixed_ms", "fly_position_error")
    result: dict = dict.fromkeys(keys)
    reasons: dict[str, str] = {}
    if not _sync_served(client, prefix):
        result["sync_note"] = "$(P)Sync:Run not served: step and fly scans not measured"
        result["null_reasons"] = dict.fromkeys(keys, result["sync_note"])
        return result
    notes = []
    try:
        result.update(_step_figures(client, prefix, bench))
    except Exception as error:  # noqa: BLE001 - a sync defect must not hide the rest
        notes.append(f"step scan failed: {error}")
    if bench.genuine:
        reasons["fly_position_error"] = ("no trigger box on the genuine bench: Fly scans "
                                         "are refused there")
    else:
        try:
            result["fly_position_error"] = _fly_position_error(client, prefix)
        except Exception as error:  # noqa: BLE001
            notes.append(f"fly scan failed: {error}")
    no_ideal = ("no exact motion model of motorSim on the genuine bench: the ideal time "
                "is unknown")
    for key in keys:
        if result[key] is None and key not in reasons:
            needs_ideal = key in ("step_overhead_ms", "step_floor_ms")
            reasons[key] = (no_ideal if bench.genuine and needs_ideal
                            else "; ".join(notes) or "not measured")
    result["sync_note"] = "; ".join(notes) or "step and fly scans measured"
    result["null_reasons"] = reasons
    return result


def _step_motion_s(physics, here: float, targets: list[float]) -> float:
    """Simulated seconds of the moves of a step scan (the sim's own trapezoid)."""
    from benchioc.sim.profile import trapezoid

    motion = 0.0
    for a, b in zip([here, *targets[:-1]], targets, strict=True):
        move = trapezoid(0.0, a, b, physics.velo, physics.accl)
        motion += move.end_time - move.start_time
    return motion


def _step_figures(client: CaClient, prefix: str, bench: Backend) -> dict:
    """The IOC's step scan and the floor loop over the same points from the same place.

    step_overhead_ms = (wall − ideal) / points, ideal = moves (sim profile) + settle +
    exposure + readout; step_floor_ms = (floor wall − ideal without the settle, which the
    bare loop does not do) / points; above the floor = (wall − settle − floor wall) /
    points, which needs no ideal (so it is measured on the genuine bench too)."""

    s = STEP_SCAN
    points = s["points"]
    root = bench.config.motors[s["motor"]].pv_root
    camera_prefix = bench.config.detector.prefix
    step = (s["end"] - s["start"]) / (points - 1)
    targets = [s["start"] + i * step for i in range(points)]
    camera_s = s["exposure"] + DEFAULT_READOUT_S

    def ideal(here: float, settle: float) -> float | None:
        if bench.shadow is None:
            return None
        motion = _step_motion_s(bench.shadow.motors[s["motor"]], here, targets)
        return (motion + points * camera_s) / bench.time_scale + points * settle

    # both start from the same place: the scan's end, after a first move there
    client.put_wait(f"{root}.VAL", s["end"], timeout=60)
    _configure_scan(client, prefix, mode=0, motor=s["motor"], points=points,
                    start=s["start"], end=s["end"], exposure=s["exposure"], settle=s["settle"])
    here = float(client.get(f"{root}.RBV"))
    states = client.monitor(f"{prefix}Sync:State")
    started = time.perf_counter()
    wall = client.put_wait(f"{prefix}Sync:Run", 1, timeout=120)
    state = client.get(f"{prefix}Sync:State")
    # the points: from Running (before the move to the first) to Finishing (after the
    # last frame); the rest of the wall is the scan's fixed cost (arming the camera and
    # its file plugin before, closing the frames file and writing the scan file after)
    running = states.first_after(started, lambda v: v == SCAN_RUNNING)
    finishing = states.first_after(started, lambda v: v == SCAN_FINISHING)
    client.pv(f"{prefix}Sync:State").clear_callbacks()
    points_s = (finishing - running) if running is not None and finishing is not None \
        else None
    if state != 4:
        raise RuntimeError(f"step scan ended in state {state}: "
                           f"{text(client, prefix + 'Sync:Message')}")
    ideal_ioc = ideal(here, s["settle"])
    floor.configure_camera(client, camera_prefix, exposure=s["exposure"],
                           period=2 * s["exposure"] + 0.01)
    here_floor = float(client.get(f"{root}.RBV"))
    floor_wall = floor.step_scan(client, root, camera_prefix, targets)
    ideal_floor = ideal(here_floor, 0.0)
    return {
        "step_overhead_ms": None if ideal_ioc is None else (wall - ideal_ioc) / points * 1000,
        "step_floor_ms": (None if ideal_floor is None
                          else (floor_wall - ideal_floor) / points * 1000),
        "step_overhead_above_floor_ms": (wall - points * s["settle"] - floor_wall)
        / points * 1000,
        "step_points_above_floor_ms": (None if points_s is None else
                                       (points_s - points * s["settle"] - floor_wall)
                                       / points * 1000),
        "scan_fixed_ms": None if points_s is None else (wall - points_s) * 1000,
        "step_wall_s": wall, "step_floor_wall_s": floor_wall,
    }


def _fly_position_error(client: CaClient, prefix: str) -> float:
    points = 21
    _configure_scan(client, prefix, mode=2, motor=SCAN_AXIS, points=points, start=-2.0,
                    end=2.0)
    client.put_wait(f"{prefix}Sync:Run", 1, timeout=120)
    valid = int(client.get(f"{prefix}Sync:NumValid"))
    if valid < 2:
        raise RuntimeError(f"fly scan filled {valid} points of {points}")
    positions = client.get(f"{prefix}Sync:Positions")[:valid]
    targets = client.get(f"{prefix}Sync:SetPositions")[:valid]
    step = abs(targets[1] - targets[0])
    return max(abs(p - t) for p, t in zip(positions, targets, strict=True)) / step


# --- the generated big bench ----------------------------------------------------------
def generated_config(folder: Path, count: int) -> Path:
    """A bench of `count` simulated motors SIM:M000..., speeds and ranges varied."""
    motors, sim = {}, {}
    for index in range(count):
        name = f"M{index:03d}"
        half = 5.0 + index % 7  # soft range ±half
        motors[name] = {"pv_root": f"SIM:{name}", "lo_lim": -half, "hi_lim": half,
                        "center": 0.0}
        sim[name] = {"low_switch": -half - 0.8, "high_switch": half + 0.8,
                     "start": (index % 5) - 2.0, "velo": 4.0 + index % 4, "accl": 0.1}
    document = {"general": {"tolerance": 0.5}, "motors": motors,
                # 16 channels a motor: give a big bench time to connect them all
                "ioc": {"prefix": "BENCH:", "connection_timeout": 60},
                "sim": {"time_scale": 1.0, "motors": sim}}
    path = folder / f"bench{count}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def part_bench_many(time_scale: float, count: int) -> dict:
    """HomeAll of a generated bench against its slowest motor homed alone (both from
    center, after a first HomeAll that brings every motor there)."""
    folder = _work_dir()
    config_path = generated_config(folder, count)
    config = load(config_path).config
    shadow = ShadowBench(config)
    ioc = IocProcess(config_path, time_scale=time_scale, ready_timeout=120)
    try:
        client = CaClient(ioc.env)
        prefix = ioc.prefix
        client.wait_all([f"{prefix}{m}:Connected" for m in config.motors], 1, timeout=120)
        first = {m: shadow.home(m).total for m in config.motors}
        home_all(client, prefix, max(first.values()) / time_scale)
        ideals = {m: shadow.home(m).total for m in config.motors}
        slowest = max(ideals, key=ideals.get)
        single, _ = home_one(client, prefix, slowest, ideals[slowest] / time_scale)
        ideal_all = max(shadow.home(m).total for m in config.motors)
        before = cpu_seconds(ioc.process.pid)
        all_wall, _ = home_all(client, prefix, ideal_all / time_scale)
        cpu = cpu_during(ioc.process.pid, before, all_wall)
    except RuntimeError as error:
        raise RuntimeError(f"{error}\nIOC log:\n{ioc_log(ioc)}") from None
    finally:
        ioc.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return {"motors": count, "home_all_s": all_wall, "slowest_single_s": single,
            "slowest_motor": slowest, "ideal_slowest_s": ideals[slowest] / time_scale,
            "home_all_ratio": all_wall / single, "cpu_during_home_all": cpu}


# --- start-up and memory ----------------------------------------------------------------
BARE_IOC = HERE / "bare_ioc.py"


def _wait_listening(port: int, process: subprocess.Popen, timeout: float) -> None:
    """Bounded polling (no event exists for 'a server bound its port'): 2 ms steps."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process ended with {process.returncode} before serving")
        with socket.socket() as sock:
            if sock.connect_ex((epicsenv.LOOPBACK, port)) == 0:
                return
        time.sleep(0.002)
    raise RuntimeError(f"nothing listened on port {port} within {timeout:g} s")


def time_to_first_get(command: list[str], env: dict[str, str], port: int, pv: str,
                      client: CaClient, timeout: float = 60) -> tuple[float, subprocess.Popen]:
    """Seconds from Popen to the first successful CA get of `pv`; the process is left
    running for the caller (to read its memory, then stop it)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, cwd=REPO)
    try:
        _wait_listening(port, process, timeout)
        deadline = time.monotonic() + timeout
        while client.epics.caget(pv, timeout=1.0) is None:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{pv} not readable within {timeout:g} s")
    except BaseException:
        stop(process)
        raise
    return time.perf_counter() - start, process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ioc_command(config: Path, port: int, prefix: str) -> list[str]:
    return [sys.executable, "-m", "benchioc.tools.cli", "--config", str(config), "--prefix", prefix,
            "--port", str(port), "--pva-port", str(server_port()),
            "--pva-udp-port", str(server_port())]


def part_startup(many: int, backend: str = "sim") -> dict:
    """Start-up to first get: bare softioc, bench-ioc with 5 and `many` motors (each
    against a simulated bench already running, so only the IOC's own start is timed);
    the bare softioc's resident memory. On the genuine bench: bench-ioc on
    configs/genuine.yaml against the motorSim and simDetector IOCs already running (it
    has six axes: no `many`)."""
    from simharness import start_sim

    folder = _work_dir()
    ports = {key: server_port() for key in ("bare", "ioc5", "iocN")}
    client = CaClient(epicsenv.loopback_env(
        ca_ports=[ports["bare"], ports["ioc5"], ports["iocN"]]))
    try:
        bare_env = epicsenv.loopback_env(server_port=ports["bare"])
        bare_s, bare = time_to_first_get([sys.executable, str(BARE_IOC), "BARE:"], bare_env,
                                         ports["bare"], "BARE:AI0", client)
        bare_rss = rss_mb(bare.pid)
        stop(bare)
        results = {"startup_bare_s": bare_s, "rss_mb_bare": bare_rss}
        if backend == "genuine":
            results["startup_s_5"] = _genuine_startup(folder, ports["ioc5"], client)
            return results
        for key, config in (("5", copy_bench_config(folder)),
                            (str(many), generated_config(folder, many))):
            port = ports["ioc5" if key == "5" else "iocN"]
            with start_sim(config, time_scale=5, ready_timeout=120) as sim:
                env = epicsenv.loopback_env(ca_ports=[sim.port], server_port=port)
                # a prefix per IOC: a PV name seen before would wait on CA's search backoff
                prefix = f"BENCH{key}:"
                seconds, process = time_to_first_get(_ioc_command(config, port, prefix), env,
                                                     port, f"{prefix}Motors", client)
                stop(process)
            results[f"startup_s_{key}"] = seconds
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return results


def _genuine_startup(folder: Path, port: int, client: CaClient) -> float:
    import genuine

    config = genuine_config(folder)
    servers = []
    try:
        servers = [genuine.start_motor_ioc(), genuine.start_ad_ioc()]
        env = epicsenv.loopback_env(ca_ports=[s.port for s in servers], server_port=port)
        seconds, process = time_to_first_get(_ioc_command(config, port, "BENCH5:"), env,
                                             port, "BENCH5:Motors", client)
        stop(process)
        return seconds
    finally:
        for server in servers:
            server.stop()


PARTS = {"bench5": part_bench5, "many": part_bench_many, "startup": part_startup}
