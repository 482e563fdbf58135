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


SHUTTER_LABELS = ("Close", "Open")  # ShutterControl (bo ZNAM/ONAM)
SHUTTER_STATUS_LABELS = ("Closed", "Open")  # ShutterStatus_RBV, ShutterControlEPICS (bi)
# NDArray.timeStamp (a plugin's TimeStamp_RBV) and epicsTS (EpicsTSSec_RBV) count from
# the EPICS epoch, 1990-01-01 UTC: POSIX seconds = EPICS seconds + this.
EPICS_EPOCH_OFFSET_S = 631152000
SHUTTER_MODE_LABELS = ("None", "EPICS PV", "Detector output")  # ShutterMode (mbbo)
