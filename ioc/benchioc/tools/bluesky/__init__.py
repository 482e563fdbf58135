"""bluesky on the bench: ophyd-async devices on the IOC's PV contract and plans that use
them in a RunEngine (issue #15).

    from benchioc.tools.bluesky import BenchHoming, SyncScan, ScanSettings, home_all_plan

ophyd-async and bluesky are optional dependencies of bench-ioc (the `test` extra has
them): importing this package without them raises an ImportError that says so.
"""

from __future__ import annotations

try:
    import bluesky  # noqa: F401
    import ophyd_async  # noqa: F401
except ImportError as missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"benchioc.tools.bluesky needs ophyd-async (with CA) and bluesky ({missing.name} "
        "is not installed): pip install 'ophyd-async[ca]' bluesky"
    ) from missing

from .devices import (
    BenchHoming,
    HomingFailed,
    MotorHoming,
    ScanRefused,
    ScanSettings,
    SyncScan,
    bench_motors,
)
from .plans import fly_scan, home_all_plan, home_plan, sync_scan_plan

__all__ = [
    "BenchHoming",
    "HomingFailed",
    "MotorHoming",
    "ScanRefused",
    "ScanSettings",
    "SyncScan",
    "bench_motors",
    "fly_scan",
    "home_all_plan",
    "home_plan",
    "sync_scan_plan",
]
