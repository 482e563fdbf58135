"""Facts about an areaDetector camera's `cam` records, shared by the camera client
(sync/) and the simulated camera (sim/camera.py): the enum values of ImageMode,
TriggerMode and DetectorState_RBV, and the labels of ShutterControl and ShutterMode."""

from __future__ import annotations

import enum


class ImageMode(enum.IntEnum):
    SINGLE = 0
    MULTIPLE = 1
    CONTINUOUS = 2


class TriggerMode(enum.IntEnum):
    INTERNAL = 0
    EXTERNAL = 1


class DetectorState(enum.IntEnum):
    """areaDetector's ADStatus, in its order."""

    IDLE = 0
    ACQUIRE = 1
    READOUT = 2
    CORRECT = 3
    SAVING = 4
    ABORTING = 5
    ERROR = 6
    WAITING = 7
    INITIALIZING = 8
    DISCONNECTED = 9
    ABORTED = 10


SHUTTER_LABELS = ("Close", "Open")  # ShutterControl (bo ZNAM/ONAM), ShutterStatus_RBV
SHUTTER_MODE_LABELS = ("None", "EPICS PV", "Detector output")  # ShutterMode (mbbo)
