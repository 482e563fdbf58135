"""Soak benchmark: many homing cycles of every motor; memory and file descriptors flat.

    python tests/perf/soak.py                 # 40 cycles (HomeAllHi + HomeAllLo), ~3 min
    python tests/perf/soak.py --cycles 5      # a quick run
    python tests/perf/soak.py --json          # ... and one JSON object as the last line

Runs `bench-ioc --sim` (the IOC and its simulated bench, loopback only, free ports) and
homes all five motors hi then lo, over real CA (caput -c), `--cycles` times. After each
cycle it samples the IOC process's resident memory and open file descriptors (psutil),
and its devIocStats FD_CNT. The figures after a warm-up are compared with the last ones:
growth beyond the allowance (--max-rss-growth-mb, --max-fd-growth) is a leak and the
exit code is 1. It prints a table and the verdict.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/: the IOC harness

from iocharness import IocProcess  # noqa: E402

REPO = HERE.parents[1]


def sample(ioc: IocProcess) -> dict[str, float]:
    process = psutil.Process(ioc.process.pid)
    (fd_cnt,) = ioc.caget("IOC:FD_CNT")
    return {"rss_mb": process.memory_info().rss / 2**20, "fds": process.num_fds(),
            "ioc_fd_cnt": float(fd_cnt), "threads": process.num_threads()}


def home_all(ioc: IocProcess, direction: str) -> float:
    start = time.monotonic()
    result = ioc.caput(f"HomeAll{direction}", "1", timeout=300)
    if result.returncode != 0 or ioc.caget("AllHomed") != ["Yes"]:
        raise RuntimeError(f"HomeAll{direction} failed: {ioc.caget('Message')} "
                           f"{result.stdout}{result.stderr}")
    return time.monotonic() - start


def run(cycles: int, time_scale: float, warmup: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    config = folder / "bench.yaml"
    shutil.copy(REPO / "configs" / "bench.yaml", config)
    ioc = IocProcess(config, time_scale=time_scale)
    samples, durations = [], []
    try:
        for cycle in range(cycles):
            durations += [home_all(ioc, "Hi"), home_all(ioc, "Lo")]
            samples.append(sample(ioc))
            print(f"cycle {cycle + 1:3d}/{cycles}: rss {samples[-1]['rss_mb']:7.1f} MB  "
                  f"fds {samples[-1]['fds']:4d}  threads {samples[-1]['threads']:3d}  "
                  f"homing {durations[-2]:.2f}/{durations[-1]:.2f} s", flush=True)
        alive = ioc.process.poll() is None
    finally:
        ioc.stop()
        shutil.rmtree(folder, ignore_errors=True)
    base = samples[min(warmup, len(samples) - 1)]
    last = samples[-1]
    return {
        "cycles": cycles, "homings": cycles * 10, "time_scale": time_scale,
        "rss_mb_after_warmup": round(base["rss_mb"], 1), "rss_mb_last": round(last["rss_mb"], 1),
        "rss_growth_mb": round(last["rss_mb"] - base["rss_mb"], 1),
        "fds_after_warmup": base["fds"], "fds_last": last["fds"],
        "fd_growth": last["fds"] - base["fds"],
        "threads_last": last["threads"],
        "home_all_median_s": round(statistics.median(durations), 3),
        "ioc_alive": alive,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=40)
    parser.add_argument("--time-scale", type=float, default=20.0)
    parser.add_argument("--warmup", type=int, default=3, help="cycles before the baseline")
    parser.add_argument("--max-rss-growth-mb", type=float, default=10.0)
    parser.add_argument("--max-fd-growth", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = run(args.cycles, args.time_scale, args.warmup)
    leak = (figures["rss_growth_mb"] > args.max_rss_growth_mb
            or figures["fd_growth"] > args.max_fd_growth or not figures["ioc_alive"])
    print()
    for key, value in figures.items():
        print(f"{key:22s} {value}")
    print("verdict:", "LEAK or failure" if leak else
          f"flat (rss growth <= {args.max_rss_growth_mb:g} MB, fd growth <= "
          f"{args.max_fd_growth})")
    if args.json:
        print(json.dumps({**figures, "flat": not leak}))
    return 1 if leak else 0


if __name__ == "__main__":
    sys.exit(main())
