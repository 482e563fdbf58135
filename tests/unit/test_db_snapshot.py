"""db/bench.db is the snapshot of every record the IOC serves (the spec's and
devIocStats'); it must match what `bench-ioc --write-db` makes."""

from __future__ import annotations

import subprocess
import sys

from benchioc import config
from benchioc.records import spec as pvs


def test_db_snapshot_is_current(repo_root, tmp_path):
    fresh = tmp_path / "bench.db"
    subprocess.run(
        [sys.executable, "-m", "benchioc.tools.cli", "--config", "configs/bench.yaml",
         "--write-db", str(fresh)],
        cwd=repo_root, check=True, capture_output=True, timeout=60)
    checked_in = (repo_root / "db" / "bench.db").read_text()
    assert fresh.read_text() == checked_in, (
        "db/bench.db is stale: regenerate it with "
        "`bench-ioc --config configs/bench.yaml --write-db db/bench.db`")


def test_snapshot_holds_every_spec_record(repo_root):
    doc = config.load(repo_root / "configs" / "bench.yaml")
    text = (repo_root / "db" / "bench.db").read_text()
    names = {line.split('"')[1] for line in text.splitlines() if line.startswith("record(")}
    expected = {served.name for served in
                pvs.served(doc.config.ioc.prefix, list(doc.config.motors))}
    assert expected <= names


def test_snapshot_holds_the_ioc_health_records(repo_root):
    """devIocStats' records are served under $(P)IOC: beside the spec's."""
    text = (repo_root / "db" / "bench.db").read_text()
    for name in ("BENCH:IOC:HEARTBEAT", "BENCH:IOC:IOC_CPU_LOAD", "BENCH:IOC:FD_CNT",
                 "BENCH:IOC:MEM_USED", "BENCH:IOC:UPTIME"):
        assert f'"{name}"' in text, name
