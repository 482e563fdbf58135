"""The benchmark runs end to end in its tiny form and emits the issue's keys.

No timed assertions: the figures are the benchmark's output, not pass/fail criteria.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[1] / "perf" / "bench.py"
KEYS = {"homing_overhead_ms", "homing_floor_ms", "homing_overhead_above_floor_ms",
        "home_all_ratio", "home_all_100_ratio", "state_latency_ms",
        "latency_under_load_ratio", "step_overhead_ms", "step_floor_ms",
        "step_overhead_above_floor_ms", "step_points_above_floor_ms", "scan_fixed_ms",
        "fly_position_error", "startup_s_5",
        "startup_s_100", "rss_ratio_5"}
# Beside the figures: why a figure is null, which bench, the load average around the run.
ABOUT = {"null_reasons", "backend", "load_before", "load_after"}
SYNC_KEYS = {"step_overhead_ms", "step_floor_ms", "step_overhead_above_floor_ms",
             "step_points_above_floor_ms", "scan_fixed_ms", "fly_position_error"}
# Built parts: these must be numbers; the sync ones may be null until Sync:Run is served.
ALWAYS_MEASURED = KEYS - SYNC_KEYS


@pytest.fixture(scope="module")
def tiny_run() -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), "--tiny", "--json"],
                          capture_output=True, text=True, timeout=240)


def test_tiny_benchmark_ends_with_one_json_object_with_exactly_the_keys(tiny_run) -> None:
    assert tiny_run.returncode == 0, tiny_run.stdout[-3000:] + tiny_run.stderr[-3000:]
    keys = json.loads(tiny_run.stdout.strip().splitlines()[-1])
    assert set(keys) == KEYS | ABOUT
    assert keys["backend"] == "sim"


def test_tiny_benchmark_measures_every_built_part(tiny_run) -> None:
    keys = json.loads(tiny_run.stdout.strip().splitlines()[-1])
    for key in ALWAYS_MEASURED:
        assert isinstance(keys[key], int | float) and math.isfinite(keys[key]), key
    for key in KEYS - ALWAYS_MEASURED:
        assert keys[key] is None or isinstance(keys[key], int | float), key
        if keys[key] is None:
            assert keys["null_reasons"].get(key), key  # a null says why


def test_tiny_benchmark_prints_the_table_and_how_the_ideal_is_computed(tiny_run) -> None:
    assert "homing_overhead_ms" in tiny_run.stdout
    assert "homing_overhead_above_floor_ms" in tiny_run.stdout
    assert "floor: the same CA operations" in tiny_run.stdout
    assert "ideal = seek" in tiny_run.stdout
    assert "machine:" in tiny_run.stdout
