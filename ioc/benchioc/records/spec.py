"""The declarative PV spec: the one description of every record the IOC serves.

ioc.py walks it to build the records, `bench-ioc --write-db` snapshots it into db/, and
screens.py turns it into the operator screens. Adding a PV is one entry here plus one
handler in ioc.py, never three hand-edited files.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Kind(enum.Enum):
    AI = "aIn"
    AO = "aOut"
    BI = "boolIn"
    BO = "boolOut"
    LONG_IN = "longIn"
    LONG_OUT = "longOut"
    MBB_IN = "mbbIn"
    MBB_OUT = "mbbOut"
    STRING_IN = "stringIn"
    STRING_OUT = "stringOut"
    LONG_STRING_IN = "longStringIn"
    LONG_STRING_OUT = "longStringOut"
    ACTION = "Action"
    WAVEFORM_IN = "WaveformIn"

    @property
    def writable(self) -> bool:
        return self in _WRITABLE


_WRITABLE = {Kind.AO, Kind.BO, Kind.LONG_OUT, Kind.MBB_OUT, Kind.STRING_OUT,
             Kind.LONG_STRING_OUT, Kind.ACTION}


class Scope(enum.Enum):
    MOTOR = "motor"  # $(P)$(M):name, one per configured motor
    BENCH = "bench"  # $(P)name
    SYNC = "sync"  # $(P)Sync:name


@dataclass(frozen=True, eq=False)
class Pv:
    """One record: its name under the scope's prefix, what it holds, and its screen group."""

    name: str
    kind: Kind
    desc: str
    group: str = "Status"
    egu: str = ""
    prec: int | None = None
    # mbb options: label or (label, severity) where severity is MINOR/MAJOR/INVALID
    options: tuple[str | tuple[str, str], ...] = ()
    labels: tuple[str, str] | tuple[()] = ()  # ZNAM/ONAM of bool records
    blocking: bool = False  # put-callback completes when the handler ends
    length: int = 0  # waveform elements or long-string bytes
    dtype: str = "float64"  # waveform element type
    low: float | None = None  # DRVL/DRVH of out records
    high: float | None = None

    @property
    def writable(self) -> bool:
        return self.kind.writable

    def full_name(self, prefix: str, motor: str | None = None) -> str:
        return f"{prefix}{scope_prefix(self.scope_of(), motor)}{self.name}"

    def scope_of(self) -> Scope:
        return _SCOPE_OF[self]


def scope_prefix(scope: Scope, motor: str | None = None) -> str:
    if scope is Scope.MOTOR:
        assert motor, "a motor PV needs the motor name"
        return f"{motor}:"
    if scope is Scope.SYNC:
        return "Sync:"
    return ""


MESSAGE_LENGTH = 512
PATH_LENGTH = 1024
MAX_SCAN_POINTS = 10000

HOMING_STATES = (
    "NotHomed", "Seeking", "Calibrating", "Centering", "Homed",
    ("Aborted", "MINOR"), ("Failed", "MAJOR"),
)
SYNC_MODES = ("Step", "Cont", "Fly")
SYNC_STATES = (
    "Idle", "Preparing", "Running", "Finishing", "Done",
    ("Aborted", "MINOR"), ("Failed", "MAJOR"),
)
NO_YES = ("No", "Yes")
OFF_ON = ("Off", "On")

MOTOR_PVS: tuple[Pv, ...] = (
    # configuration: a put-callback completes once the file is saved
    Pv("PvRoot", Kind.STRING_OUT, "Motor record PV root", group="Config", blocking=True),
    Pv("LoLim", Kind.AO, "Soft low limit after homing", group="Config", prec=3,
       blocking=True),
    Pv("Center", Kind.AO, "Position after homing", group="Config", prec=3, blocking=True),
    Pv("HiLim", Kind.AO, "Soft high limit after homing", group="Config", prec=3,
       blocking=True),
    # homing control
    Pv("HomeHi", Kind.ACTION, "Home on the high limit switch", group="Homing",
       blocking=True),
    Pv("HomeLo", Kind.ACTION, "Home on the low limit switch", group="Homing",
       blocking=True),
    Pv("Abort", Kind.ACTION, "Stop homing and the motor", group="Homing"),
    # homing status
    Pv("State", Kind.MBB_IN, "Homing state", options=HOMING_STATES),
    Pv("Busy", Kind.BI, "Homing in progress", labels=NO_YES),
    Pv("Homed", Kind.BI, "Homed since start or restore", labels=NO_YES),
    Pv("Progress", Kind.AI, "Homing progress", egu="%", prec=0),
    Pv("Message", Kind.LONG_STRING_IN, "Last status or error", length=MESSAGE_LENGTH),
    Pv("LastHomed", Kind.STRING_IN, "Time of the last successful homing"),
    # mirrors of the motor record
    Pv("Position", Kind.AI, "Motor readback (RBV)", group="Motor", prec=3),
    Pv("Moving", Kind.BI, "Motor moving (not DMOV)", group="Motor", labels=NO_YES),
    Pv("HighLimitSwitch", Kind.BI, "High limit switch (HLS)", group="Motor",
       labels=OFF_ON),
    Pv("LowLimitSwitch", Kind.BI, "Low limit switch (LLS)", group="Motor",
       labels=OFF_ON),
    Pv("Connected", Kind.BI, "Motor record PVs connected", group="Motor",
       labels=NO_YES),
)

BENCH_PVS: tuple[Pv, ...] = (
    Pv("Tolerance", Kind.AO, "Switch distance beyond soft limits", group="Config", prec=3,
       low=0, blocking=True),
    Pv("HomeAllHi", Kind.ACTION, "Home every motor high", group="Homing", blocking=True),
    Pv("HomeAllLo", Kind.ACTION, "Home every motor low", group="Homing", blocking=True),
    Pv("AbortAll", Kind.ACTION, "Stop all homing and motors", group="Homing"),
    Pv("AllHomed", Kind.BI, "Every motor homed", labels=NO_YES),
    Pv("Busy", Kind.BI, "Any homing in progress", labels=NO_YES),
    Pv("Message", Kind.LONG_STRING_IN, "Last bench status or error", length=MESSAGE_LENGTH),
    Pv("Motors", Kind.LONG_STRING_IN, "Configured motor names", length=MESSAGE_LENGTH),
    Pv("ConfigFile", Kind.LONG_STRING_IN, "Config file in use", length=PATH_LENGTH),
    Pv("Heartbeat", Kind.LONG_IN, "Counts up once a second while the IOC runs"),
)

SYNC_PVS: tuple[Pv, ...] = (
    Pv("Mode", Kind.MBB_OUT, "Synchronisation mode", group="Setup", options=SYNC_MODES),
    Pv("Motor", Kind.STRING_OUT, "Motor to scan", group="Setup"),
    Pv("Start", Kind.AO, "First position", group="Setup", prec=3),
    Pv("End", Kind.AO, "Last position", group="Setup", prec=3),
    # no DRVL/DRVH: the record would clamp silently; the scan planner refuses in words
    Pv("NumPoints", Kind.LONG_OUT, "Number of points", group="Setup"),
    Pv("FramesPerPoint", Kind.LONG_OUT, "Frames at each point", group="Setup"),
    Pv("Exposure", Kind.AO, "Camera exposure", group="Setup", egu="s", prec=4, low=0),
    Pv("Period", Kind.AO, "Camera period", group="Setup", egu="s", prec=4, low=0),
    Pv("SettleTime", Kind.AO, "Settle after each step", group="Setup", egu="s", prec=3,
       low=0),
    Pv("RequireHomed", Kind.BO, "Refuse a scan on an unhomed motor", group="Setup",
       labels=NO_YES),
    Pv("Run", Kind.ACTION, "Run the scan", group="Control", blocking=True),
    Pv("Abort", Kind.ACTION, "Abort the scan", group="Control"),
    Pv("State", Kind.MBB_IN, "Scan state", options=SYNC_STATES),
    Pv("Busy", Kind.BI, "Scan in progress", labels=NO_YES),
    Pv("Point", Kind.LONG_IN, "Current point"),
    Pv("FramesAcquired", Kind.LONG_IN, "Frames acquired"),
    Pv("MissedFrames", Kind.LONG_IN, "Triggers sent minus frames counted"),
    Pv("Progress", Kind.AI, "Scan progress", egu="%", prec=0),
    Pv("Velocity", Kind.AI, "Scan velocity (preview)", group="Preview", prec=4),
    Pv("RunUp", Kind.AI, "Run-up distance (preview)", group="Preview", prec=4),
    Pv("EstimatedTime", Kind.AI, "Estimated scan time (preview)", group="Preview",
       egu="s", prec=1),
    Pv("Positions", Kind.WAVEFORM_IN, "Measured positions", group="Data",
       length=MAX_SCAN_POINTS),
    Pv("SetPositions", Kind.WAVEFORM_IN, "Set positions", group="Data",
       length=MAX_SCAN_POINTS),
    Pv("Timestamps", Kind.WAVEFORM_IN, "Frame times (POSIX seconds)", group="Data",
       length=MAX_SCAN_POINTS),
    Pv("FrameNumbers", Kind.WAVEFORM_IN, "Camera frame numbers", group="Data",
       length=MAX_SCAN_POINTS, dtype="int32"),
    Pv("NumValid", Kind.LONG_IN, "Filled length of the arrays", group="Data"),
    Pv("Message", Kind.LONG_STRING_IN, "Last scan status or error", length=MESSAGE_LENGTH),
    Pv("DataFile", Kind.LONG_STRING_IN, "Last scan file", length=PATH_LENGTH),
    Pv("ScanId", Kind.LONG_STRING_IN, "Persistent identifier of the last scan",
       length=MESSAGE_LENGTH),
)

SPECS: dict[Scope, tuple[Pv, ...]] = {
    Scope.MOTOR: MOTOR_PVS,
    Scope.BENCH: BENCH_PVS,
    Scope.SYNC: SYNC_PVS,
}
_SCOPE_OF: dict[Pv, Scope] = {pv: scope for scope, pvs in SPECS.items() for pv in pvs}


def by_name(scope: Scope) -> dict[str, Pv]:
    return {pv.name: pv for pv in SPECS[scope]}


@dataclass(frozen=True)
class Served:
    """A record the IOC serves for a given prefix and motor set."""

    pv: Pv
    name: str
    motor: str | None = field(default=None)


def served(prefix: str, motors: list[str], with_sync: bool = True) -> list[Served]:
    """Every record name the IOC serves for this prefix and these motors."""
    names = [Served(pv, pv.full_name(prefix)) for pv in BENCH_PVS]
    for motor in motors:
        names += [Served(pv, pv.full_name(prefix, motor), motor) for pv in MOTOR_PVS]
    if with_sync:
        names += [Served(pv, pv.full_name(prefix)) for pv in SYNC_PVS]
    return names
