"""What the IOC adds on top of the motion: the bench-ioc benchmark (issue 7).

    python tests/perf/bench.py            # the full run, a readable table (a few minutes)
    python tests/perf/bench.py --json     # ... and one JSON object as the last line
    python tests/perf/bench.py --tiny     # a quick run with the same code paths (smoke)
    python tests/perf/bench.py --repeat 3 # median of three full runs
    python tests/perf/bench.py --backend genuine --json   # after `. PREFIX/env.sh`: the
                                          # motor record (motorSim) and simDetector IOCs

Beside each overhead over the ideal motion, the floor: the same CA operations issued by a
bare client with nothing else (floor.py), and what the IOC adds above it.

Everything runs on the simulated bench on loopback ports chosen free at run time. Each
part runs in its own process (pyepics keeps one CA context per process). Times are real
seconds; the ideal motion time of a homing comes from the sim's own motion profile (see
ideal.py) divided by the time scale. Nothing here asserts a target: the table says which
figures meet theirs.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
log = logging.getLogger("bench")


@dataclass(frozen=True)
class Target:
    key: str
    what: str
    limit: float | None  # None: a figure for reference (a floor), no target
    unit: str


TARGETS = (
    Target("homing_overhead_ms", "homing wall time − ideal motion time, median of motors",
           15, "ms"),
    Target("homing_floor_ms", "the same homing by a bare CA client − ideal (the floor)",
           None, "ms"),
    Target("homing_overhead_above_floor_ms", "IOC homing − bare-client homing, same "
           "motor and start", 3, "ms"),
    Target("home_all_ratio", "HomeAll (5 + scan axis S) / slowest single motor", 1.05, ""),
    Target("home_all_100_ratio", "HomeAll of a generated bench / its slowest motor", 1.2, ""),
    Target("state_latency_ms", "caput HomeHi -> monitor sees State leave NotHomed/Homed", 2,
           "ms"),
    Target("latency_under_load_ratio", "status get latency: A-E homing + scan on S / idle", 2, ""),
    Target("step_overhead_ms", "step scan, per point, wall − (motion + settle + exposure)", 3,
           "ms"),
    Target("step_floor_ms", "bare loop VAL + Acquire put-callbacks, per point, wall − "
           "(motion + exposure)", None, "ms"),
    Target("step_overhead_above_floor_ms", "step scan − settle − bare loop, per point", 1,
           "ms"),
    Target("step_points_above_floor_ms", "the same, its points only (Sync:State Running "
           "to Finishing) − settle − bare loop, per point", None, "ms"),
    Target("scan_fixed_ms", "the scan's fixed cost: wall − its points (arming the camera "
           "and file plugin, closing the frames file, writing the scan file)", None, "ms"),
    Target("fly_position_error", "fly scan max |position − set position| / step", 0.01, ""),
    Target("startup_s_5", "IOC process start -> first successful get, 5 motors", 2, "s"),
    Target("startup_s_100", "IOC process start -> first successful get, 100 motors", 5, "s"),
    Target("rss_ratio_5", "IOC RSS after a homing cycle / bare softioc, 10 records", 1.3, ""),
)
KEYS = [t.key for t in TARGETS]
BACKENDS = ("sim", "genuine")


@dataclass(frozen=True)
class Plan:
    time_scale: float
    passes: int
    many: int
    backend: str = "sim"
    # --tiny is a smoke run whose figures mean nothing: its parts run side by side, so
    # that it costs the test suite half the time
    side_by_side: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Plan:
        if args.tiny:
            return cls(time_scale=args.time_scale or 40.0, passes=1, many=args.many or 10,
                       backend=args.backend, side_by_side=True)
        return cls(time_scale=args.time_scale or 5.0, passes=args.passes, many=args.many or 100,
                   backend=args.backend)


def run_part(name: str, **kwargs) -> dict:
    """One part in a fresh Python process; its last stdout line is its JSON result."""
    command = [sys.executable, str(HERE / "bench.py"), "--part", name,
               "--kwargs", json.dumps(kwargs)]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        tail = (result.stderr or result.stdout).strip().splitlines()[-40:]
        raise RuntimeError(f"part {name} failed (exit {result.returncode}):\n" +
                           "\n".join(tail))
    log.info("part %s took %.1f s", name, time.monotonic() - started)
    return json.loads(lines[-1])


GENUINE_NO_MANY = ("the genuine motorSim IOC has six axes: no 100-motor bench to home "
                   "(bench/motor.cmd)")


def one_run(plan: Plan) -> tuple[dict, dict, list[str]]:
    """Every part once: (the issue's keys, details, errors)."""
    details: dict = {}
    errors: list[str] = []
    parts = [("startup", {"many": plan.many, "backend": plan.backend}),
             ("bench5", {"time_scale": plan.time_scale, "passes": plan.passes,
                         "backend": plan.backend})]
    if plan.backend == "sim":
        parts.append(("many", {"time_scale": plan.time_scale, "count": plan.many}))
    else:
        details["many"] = {}
    def run(name: str, kwargs: dict) -> None:
        try:
            details[name] = run_part(name, **kwargs)
        except Exception as error:  # noqa: BLE001 - report every part, then fail
            errors.append(str(error))
            details[name] = {"error": _first_words(str(error))}

    with ThreadPoolExecutor(max_workers=len(parts) if plan.side_by_side else 1) as pool:
        for _ in pool.map(lambda part: run(*part), parts):
            pass
    return keys_from(details, plan.backend), details, errors


def _first_words(error: str) -> str:
    """The reason a part failed, short: the last line of its traceback, cut."""
    lines = [line for line in error.splitlines() if line.strip()]
    last = next((line for line in lines if line.startswith("RuntimeError")), lines[-1]
                if lines else "")
    return last[:400]


def keys_from(details: dict, backend: str = "sim") -> dict:
    bench5, many, startup = details["bench5"], details["many"], details["startup"]
    rss, bare = bench5.get("rss_mb_5"), startup.get("rss_mb_bare")
    keys = {key: bench5.get(key) for key in KEYS}
    keys.update({
        "home_all_100_ratio": many.get("home_all_ratio"),
        "startup_s_5": startup.get("startup_s_5"),
        "startup_s_100": startup.get(f"startup_s_{many.get('motors', 100)}"),
        "rss_ratio_5": rss / bare if rss and bare else None,
    })
    reasons = dict(bench5.get("null_reasons", {}))
    if backend == "genuine":
        reasons["home_all_100_ratio"] = reasons["startup_s_100"] = GENUINE_NO_MANY
    failed = {"home_all_100_ratio": many, "startup_s_100": startup, "startup_s_5": startup,
              "rss_ratio_5": bench5 if "error" in bench5 else startup}
    for key in KEYS:
        if keys[key] is None and key not in reasons:
            part = failed.get(key, bench5)
            reasons[key] = (f"its part failed: {part['error']}" if "error" in part
                            else "not measured (see ERROR lines)")
    keys["null_reasons"] = {k: v for k, v in reasons.items() if keys.get(k) is None}
    return keys


def median_keys(runs: list[dict]) -> dict:
    merged: dict = {}
    for key in KEYS:
        values = [run[key] for run in runs if _number(run.get(key))]
        merged[key] = statistics.median(values) if values else None
    reasons: dict = {}
    for run in runs:
        reasons.update(run.get("null_reasons", {}))
    merged["null_reasons"] = {k: v for k, v in reasons.items() if merged.get(k) is None}
    return merged


def _number(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def table(keys: dict, plan: Plan, runs: int) -> str:
    rows = [f"bench-ioc benchmark on the {plan.backend} bench: {runs} run(s), time scale "
            f"{plan.time_scale:g}, "
            f"{plan.passes} homing pass(es) per motor, generated bench of {plan.many} motors",
            f"machine: {machine()}", ""]
    rows.append(f"{'key':30} {'value':>10} {'target':>9}  {'met':4} what")
    for t in TARGETS:
        value = keys.get(t.key)
        shown = f"{value:.3f}" if _number(value) else "null"
        limit = "-" if t.limit is None else "≤ " + format(t.limit, "g")
        met = "-" if not _number(value) or t.limit is None else (
            "yes" if value <= t.limit else "NO")
        rows.append(f"{t.key:30} {shown:>10} {limit:>9}  {met:4} "
                    f"{t.what}{' (' + t.unit + ')' if t.unit else ''}")
    for key, why in keys.get("null_reasons", {}).items():
        rows.append(f"null {key}: {why}")
    return "\n".join(rows)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return (f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, load "
            f"average {load()} at the end")


def load() -> str:
    import os

    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def explain(details: list[dict]) -> str:
    """How the figures were made, with the raw numbers of the last run."""
    import ideal

    last = details[-1]
    b5, many, st = ({} if "error" in part else part for part in (
        last.get("bench5", {}), last.get("many", {}), last.get("startup", {})))
    lines = ["", "how: " + ideal.HOW + ".",
             "homing wall time: put-callback of $(P)M:HomeHi from an in-process pyepics "
             "client, start to completion; each motor homed alone, once from the config's "
             "start position and then from center."]
    lines.append("floor: the same CA operations issued in sequence by a bare pyepics "
                 "client straight to the motor record (floor.py), right after each IOC "
                 "homing of the same motor; above the floor = IOC wall − floor wall, same "
                 "motor, same start (center).")
    for run, fl in zip(b5.get("homing_runs", []), b5.get("floor_runs", []), strict=False):
        ideal_ms = "     n/a" if run["ideal_s"] is None else f"{run['ideal_s'] * 1000:8.1f}"
        floor_ideal = "n/a" if fl["ideal_s"] is None else f"{fl['ideal_s'] * 1000:.1f}"
        lines.append(f"  {run['motor']}: IOC wall {run['wall_s'] * 1000:8.1f} ms, ideal "
                     f"{ideal_ms} ms; floor wall {fl['wall_s'] * 1000:8.1f} ms (ideal "
                     f"{floor_ideal} ms)")
    if "step_wall_s" in b5:
        lines.append(f"step scan: IOC {b5['step_wall_s'] * 1000:.1f} ms, bare loop "
                     f"{b5['step_floor_wall_s'] * 1000:.1f} ms")
    if b5:
        lines.append(f"HomeAll {b5['home_all_s']:.3f} s vs slowest single "
                     f"{b5['slowest_single_s']:.3f} s (both from center); get of A:State "
                     f"idle {b5['idle_get_ms']:.3f} ms, during HomeAll "
                     f"{b5['loaded_get_ms']:.3f} ms ({b5['loaded_gets']} gets; "
                     f"{b5['load_scan']}); IOC RSS {b5['rss_mb_5']:.0f} MB; CPU during "
                     f"HomeAll: {b5['cpu_during_home_all']}")
        lines.append(f"sync: {b5.get('sync_note', '')}")
    if many:
        lines.append(f"{many['motors']} motors: HomeAll {many['home_all_s']:.3f} s vs "
                     f"{many['slowest_motor']} alone {many['slowest_single_s']:.3f} s "
                     f"(ideal {many['ideal_slowest_s']:.3f} s); CPU during HomeAll: "
                     f"{many['cpu_during_home_all']}")
    if st:
        lines.append(f"start-up: bare softioc {st['startup_bare_s']:.2f} s "
                     f"(RSS {st['rss_mb_bare']:.0f} MB); bench-ioc against its "
                     "motor and camera servers already running")
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object with the issue's keys as the last line")
    parser.add_argument("--tiny", action="store_true",
                        help="fast time scale, one pass, a 10-motor generated bench")
    parser.add_argument("--time-scale", type=float, default=0,
                        help="simulated seconds per real second (default 5; tiny 40)")
    parser.add_argument("--passes", type=int, default=2,
                        help="homings of each motor alone (default 2)")
    parser.add_argument("--many", type=int, default=0,
                        help="motors of the generated bench (default 100; tiny 10)")
    parser.add_argument("--repeat", type=int, default=1, help="runs; figures are medians")
    parser.add_argument("--backend", choices=BACKENDS, default="sim",
                        help="sim (default): the simulated bench; genuine: the motor record "
                             "(motorSim) and simDetector IOCs, after `. PREFIX/env.sh`")
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    if args.part:
        import parts

        result = parts.PARTS[args.part](**json.loads(args.kwargs))
        sys.stdout.write(json.dumps(result) + "\n")
        return 0
    plan = Plan.from_args(args)
    if plan.backend == "genuine":
        sys.path.insert(0, str(HERE.parent))
        import genuine

        absent = genuine.missing(genuine.MOTOR_VARS + genuine.AD_VARS)
        if absent:
            sys.stderr.write(f"--backend genuine: {', '.join(absent)} unset; "
                             f"{genuine.HOW_TO_ENABLE}\n")
            return 2
    load_before = load()
    runs, details, errors = [], [], []
    for index in range(max(args.repeat, 1)):
        log.info("run %d of %d", index + 1, args.repeat)
        keys, detail, run_errors = one_run(plan)
        runs.append(keys)
        details.append(detail)
        errors += run_errors
    keys = median_keys(runs)
    sys.stdout.write(table(keys, plan, len(runs)) + "\n")
    sys.stdout.write(explain(details) + "\n")
    for error in errors:
        sys.stdout.write(f"ERROR: {error}\n")
    if args.json:
        keys.update(backend=plan.backend, load_before=load_before, load_after=load())
        sys.stdout.write(json.dumps(keys) + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
