"""Every PV the checked-in Phoebus screens refer to is served: the IOC on the simulated
bench (`bench-ioc --sim`) answers each one over loopback CA, macros expanded for motor A
of the default config."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchioc import config as cfg
from benchioc.tools import screens
from iocharness import IocProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ioc(bench_config):
    process = IocProcess(bench_config, time_scale=20)
    yield process
    process.stop()


def _macros_for_motor_a(repo_root: Path) -> dict[str, str]:
    motor = cfg.load(repo_root / "configs" / "bench.yaml").config.motors["A"]
    return {"P": "BENCH:", "M": "A", "ROOT": motor.pv_root}


def _unanswered(ioc: IocProcess, names: list[str]) -> list[str]:
    """The names no server answered over CA.

    pvget (CA provider) prints "NAME  value" for each PV it read, and "Timeout" then the
    names it could not read on one line; caget cannot tell which: once one PV is missing
    it prints only "some PV(s) not found".
    """
    result = ioc.run_tool("pvget", "-w", "5", "-p", "ca", *names, timeout=60)
    asked = set(names)
    answered = {words[0] for words in map(str.split, result.stdout.splitlines())
                if len(words) >= 2 and words[1] not in asked}
    return [name for name in names if name not in answered]


@pytest.mark.parametrize("screen", screens.SCREENS)
def test_every_pv_on_the_screen_is_served(ioc, repo_root, screen):
    data = (repo_root / "opi" / screen).read_bytes()
    names = sorted(screens.referenced_pvs(data, _macros_for_motor_a(repo_root)))
    assert len(names) > 5
    assert _unanswered(ioc, names) == []


def test_a_name_nobody_serves_is_reported(ioc):
    # The check above must be able to fail: a made-up record is named as missing.
    assert _unanswered(ioc, ["BENCH:A:State", "BENCH:A:NoSuchRecord"]) == [
        "BENCH:A:NoSuchRecord"]
