"""Fixtures the integration modules share, each defined once here (the suite-wide ones,
such as `sim_ioc` and `bench_config`, are in tests/conftest.py).

- bench: the module's bench on each backend, "sim" then "genuine" (tests/benches.py):
  bench-ioc and the servers of the motors (and camera) it wraps, started once per module
  and backend in a folder of the module's own. The module's TIME_SCALE sets the simulated
  bench's time scale (default 20; the genuine bench runs in real time); a module whose
  tests need the genuine camera sets GENUINE_CAMERA = True (without that build the genuine
  half is skipped, or fails under BENCH_REQUIRE_GENUINE=1, before anything starts).
- ioc: that bench's IOC (a module's WAIT_FOR_MOTOR = "A": once motor A is connected).
- bench_copy: a copy of configs/bench.yaml in the test's own folder.
- external_sim: that copy served by a simulated bench of its own (not a child of an IOC),
  so a test can stop, kill and restart the IOC and the sim separately.

With pytest-xdist a module-scoped fixture starts once per worker that runs tests of the
module; the suite distributes whole modules (--dist loadfile), so it starts once.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import genuine
from benches import BACKENDS, Bench, open_bench
from iocharness import IocProcess
from simharness import SimProcess, start_sim


@pytest.fixture(scope="module", params=BACKENDS)
def bench(request, tmp_path_factory) -> Bench:
    module = request.module
    if request.param == "genuine" and getattr(module, "GENUINE_CAMERA", False):
        genuine.skip_unless_built(genuine.AD_VARS, "the genuine simDetector")
    folder = tmp_path_factory.mktemp(module.__name__.rsplit(".", 1)[-1])
    opened = open_bench(request.param, folder, time_scale=getattr(module, "TIME_SCALE", 20))
    yield opened
    opened.stop()


@pytest.fixture(scope="module")
def ioc(request, bench: Bench) -> IocProcess:
    """The bench's IOC; once the module's WAIT_FOR_MOTOR (if it names one) is connected."""
    motor = getattr(request.module, "WAIT_FOR_MOTOR", "")
    if motor:
        bench.ioc.wait_motor_connected(motor)
    return bench.ioc


@pytest.fixture
def bench_copy(repo_root, tmp_path) -> Path:
    path = tmp_path / "bench.yaml"
    shutil.copy(repo_root / "configs" / "bench.yaml", path)
    return path


@pytest.fixture
def external_sim(request, bench_copy) -> SimProcess:
    """The simulated bench on bench_copy, at the module's TIME_SCALE (default 10)."""
    sim = start_sim(bench_copy, time_scale=getattr(request.module, "TIME_SCALE", 10))
    yield sim
    sim.stop()
