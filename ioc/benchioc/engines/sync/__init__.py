"""Detector synchronisation: step, continuous and fly scans of one motor with a camera.

The engines are pure asyncio over the Protocols in `devices`; `clients` holds the aioca
implementations; `SyncController` is what the IOC binds its `$(P)Sync:` records to.
"""

from .controller import DataTarget, ScanResult, ScanUpdate, SyncController
from .model import (
    MAX_POINTS,
    MotorSnapshot,
    Preview,
    ScanMode,
    ScanRefused,
    ScanSettings,
    ScanState,
)

__all__ = [
    "MAX_POINTS", "DataTarget", "MotorSnapshot", "Preview", "ScanMode", "ScanRefused",
    "ScanResult", "ScanSettings", "ScanState", "ScanUpdate", "SyncController",
]
