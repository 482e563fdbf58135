"""How far the calibration of a homing depends on the jog speed: a table per JVEL.

    python tests/perf/homing_speed.py                 # JVEL 1x, 3x, 10x, two creep modes
    python tests/perf/homing_speed.py --factors 1 2 5 10 20

bench-ioc and the simulated bench run as subprocesses on loopback (benches.open_bench,
as tests/integration/test_homing_speed_ca.py does, whose checks this reuses). Motor E is
homed high at each JVEL, then its switch is approached again over CA from 0.5 mm short:

- slowly, at the fixed creep speed: where the switch then reads, minus hi_lim +
  tolerance, is the calibration error of the two-speed homing;
- at JVEL: the stage stops (JVEL - creep) x 0.04 s further on (the sim's stop past a
  switch); calibrating there is what the old one-speed homing did, so that difference
  is the error it would have had (measured, and ~speed x 0.04 s predicted).

Two runs: homing.creep_speed fixed (0.1 mm/s), and left at its default, a tenth of the
motor's VELO (E: 0.1 mm/s too), which does not move with JVEL. Nothing is asserted here;
the integration test asserts the bound with the default.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "integration")]

from test_homing_speed_ca import (  # noqa: E402
    CREEP,
    MOTOR,
    READBACK_PERIOD,
    STOP_TIME,
    TIME_SCALE,
    approach,
    caget_values,
    configure,
    home_at,
    switch_reads,
)

from benches import open_bench  # noqa: E402


def run(factors: list[float], creep: float | None) -> list[dict[str, float]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="homing-speed-") as folder:
        bench = open_bench("sim", Path(folder), time_scale=TIME_SCALE,
                           edit=lambda config: configure(config, creep))
        try:
            root = bench.root(MOTOR)
            default_jvel = float(caget_values(bench, f"{root}.JVEL")[0])
            mres = float(caget_values(bench, f"{root}.MRES")[0])
            expected = switch_reads(bench)
            for factor in factors:
                jvel = factor * default_jvel
                started = time.monotonic()
                home_at(bench, jvel)
                took = time.monotonic() - started
                slow = approach(bench.env, root, expected, CREEP)
                fast = approach(bench.env, root, expected, jvel)
                rows.append({
                    "jvel": jvel, "creep": creep if creep is not None else CREEP,
                    "error": slow - expected, "bound": 2 * mres + CREEP * READBACK_PERIOD,
                    "old_error": fast - slow, "old_predicted": (jvel - CREEP) * STOP_TIME,
                    "seconds": took,
                })
        finally:
            bench.stop()
    return rows


def show(title: str, rows: list[dict[str, float]]) -> None:
    print(f"\n{title}")
    print(f"{'JVEL mm/s':>9} {'creep':>6} {'error mm':>9} {'bound mm':>9}      "
          f"{'one-speed error mm':>18} {'(JVEL-creep) x 0.04 s':>21} {'homing s':>9}")
    for row in rows:
        within = "ok" if abs(row["error"]) <= row["bound"] else "OVER"
        print(f"{row['jvel']:9.3g} {row['creep']:6.3g} {row['error']:+9.4f} "
              f"{row['bound']:9.4f} {within:<4} {row['old_error']:18.4f} "
              f"{row['old_predicted']:21.4f} {row['seconds']:9.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", type=float, nargs="+", default=[1, 3, 10],
                        help="JVEL as multiples of motor E's default (1 mm/s)")
    args = parser.parse_args(argv)
    print(f"motor {MOTOR} of configs/bench.yaml on the simulated bench (time scale"
          f" {TIME_SCALE:g}); switch reads hi_lim + tolerance; checked by approaching it"
          f" again at {CREEP:g} mm/s")
    show(f"homing.creep_speed = {CREEP:g} mm/s (fixed)", run(args.factors, CREEP))
    show("homing.creep_speed default (VELO / 10)", run(args.factors, None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
