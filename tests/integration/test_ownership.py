"""One running bench-ioc per config file: a second one refuses to start and names the
first (two IOCs with different prefixes would both write the file and the autosave and
command the same motors)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchioc import epicsenv, ownership
from iocharness import IocProcess

pytestmark = pytest.mark.integration


def test_a_second_ioc_on_the_same_config_refuses_and_names_the_owner(bench_config):
    first = IocProcess(bench_config, time_scale=20)
    try:
        second = subprocess.run(
            [sys.executable, "-m", "benchioc.tools.cli", "--config", str(bench_config),
             "--prefix", "OTHER:", "--sim"],
            env=epicsenv.loopback_env(), capture_output=True, text=True, timeout=60)
        assert second.returncode == 2, second.stdout + second.stderr
        (line,) = second.stderr.strip().splitlines()
        assert "is already served by bench-ioc with prefix BENCH:" in line, line
        assert f"process {first.process.pid}" in line, line
        assert ownership.owner(bench_config)["prefix"] == "BENCH:"
    finally:
        first.stop()
    assert ownership.owner(bench_config) is None  # the lock went with the process
