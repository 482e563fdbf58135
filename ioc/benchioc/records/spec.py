"""The PV spec: every record the IOC serves, each named once and told what it binds to.

A record's name is the attribute name in its scope's class below (``MotorRecords.LoLim``
serves ``$(P)$(M):LoLim``). Everything that names a PV takes it from here: the record
builder, the bindings (records/), the db/ snapshot, the Phoebus screens, the PyDM screen
and motion-box's CA probing. Code refers to an entry by attribute (``MotorRecords.LoLim``),
never by a string, so a renamed PV breaks at import time, not on a beamline.

What a record binds to is in its ``binds``:
- ``MotorConfig(key)`` / ``BenchConfig(key)`` / ``DataConfig(key)``: a value of the
  config file (a motor entry, the general section, the data section); a put is checked,
  saved and then applied (records/settings.py);
- ``ScanSetting(field)``: a field of the scan settings (engines/sync/model.py);
- ``Command(verb, direction)``: an Action; the scope's binding runs the verb;
- ``MotorField(field)``: a mirror of the motor model's MotorStatus field;
- ``Published(field)``: a field of what the engine publishes (HomingUpdate, ScanUpdate)
  or of the binding's own summary.
``motor_units`` marks a position record: its EGU and PREC follow the motor record's (the
motor's own, or for Sync the scanned one's).
Labels of state records come from the engines' enums, so the two cannot drift apart.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from ..engines.homing.settings import HomingState
from ..engines.motormodel import Direction
from ..engines.sync.model import ScanMode, ScanState


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


def scope_prefix(scope: Scope, motor: str | None = None) -> str:
    if scope is Scope.MOTOR:
        assert motor, "a motor PV needs the motor name"
        return f"{motor}:"
    if scope is Scope.SYNC:
        return "Sync:"
    return ""


# --- what a record binds to ------------------------------------------------------------
@dataclass(frozen=True)
class MotorConfig:
    key: str  # the motor entry's key in the config file (pv_root, lo_lim, ...)


@dataclass(frozen=True)
class BenchConfig:
    key: str  # a key of the config's general section


@dataclass(frozen=True)
class DataConfig:
    key: str  # a key of the config's data section (what the next scan file carries)


@dataclass(frozen=True)
class ScanSetting:
    field: str  # a ScanSettings field


@dataclass(frozen=True)
class Command:
    verb: str  # what the scope's binding does on a put ("home", "abort", "run", ...)
    direction: Direction | None = None


@dataclass(frozen=True)
class MotorField:
    field: str  # a MotorStatus field; shown as is (bool records: 0/1)
    inverted: bool = False  # DMOV shown as Moving
    throttled: bool = False  # a moving readback: at most POSITION_RATE_HZ updates a second


@dataclass(frozen=True)
class Published:
    field: str  # a field of the engine's update (or the binding's summary) shown as is


Binding = (MotorConfig | BenchConfig | DataConfig | ScanSetting | Command | MotorField
           | Published)
CONFIG_BINDINGS = (MotorConfig, BenchConfig, DataConfig)  # a put is saved to the file


# --- record shapes -----------------------------------------------------------------------
STRING_LENGTH = 40  # stringIn/stringOut: EPICS's fixed 40 bytes, terminator included
MESSAGE_LENGTH = 512
PATH_LENGTH = 1024
MAX_SCAN_POINTS = 10000

Option = str | tuple[str, str]  # an mbb label, or (label, severity MINOR/MAJOR/INVALID)


def homing_label(state: HomingState) -> str:
    return "".join(word.capitalize() for word in state.name.split("_"))  # NOT_HOMED


def state_options(labels: list[str], alarms: dict[int, str]) -> tuple[Option, ...]:
    return tuple((label, alarms[index]) if index in alarms else label
                 for index, label in enumerate(labels))


HOMING_STATES = state_options([homing_label(state) for state in HomingState],
                              {HomingState.ABORTED: "MINOR", HomingState.FAILED: "MAJOR"})
SYNC_STATES = state_options([state.label for state in ScanState],
                            {ScanState.ABORTED: "MINOR", ScanState.FAILED: "MAJOR"})
SYNC_MODES = tuple(mode.label for mode in ScanMode)
NO_YES = ("No", "Yes")
OFF_ON = ("Off", "On")


@dataclass(frozen=True, eq=False)
class Pv:
    """One record: what it holds, its screen group and what it binds to. Its name is the
    attribute it is assigned to in a Records class; its scope is that class's."""

    kind: Kind
    desc: str
    group: str = "Status"
    binds: Binding | None = None
    egu: str = ""
    prec: int | None = None
    options: tuple[Option, ...] = ()  # mbb labels, in value order
    labels: tuple[str, str] | tuple[()] = ()  # ZNAM/ONAM of bool records
    blocking: bool = False  # put-callback completes when the handler ends
    length: int = 0  # waveform elements or long-string bytes
    dtype: str = "float64"  # waveform element type
    low: float | None = None  # DRVL/DRVH of out records
    high: float | None = None
    motor_units: bool = False  # EGU and PREC follow the motor record's
    name: str = field(default="", init=False)
    scope: Scope = field(default=Scope.BENCH, init=False)

    def __set_name__(self, owner: type, name: str) -> None:
        object.__setattr__(self, "name", name)

    @property
    def writable(self) -> bool:
        return self.kind.writable

    @property
    def text_length(self) -> int:
        """Bytes of text the record holds (terminator excluded); 0 if it holds no text."""
        if self.kind in (Kind.STRING_IN, Kind.STRING_OUT):
            return STRING_LENGTH - 1
        if self.kind in (Kind.LONG_STRING_IN, Kind.LONG_STRING_OUT):
            return self.length - 1
        return 0

    def full_name(self, prefix: str, motor: str | None = None) -> str:
        return f"{prefix}{scope_prefix(self.scope, motor)}{self.name}"


class Records:
    """The records of one scope, in the order they are built and shown."""

    scope: ClassVar[Scope]

    def __init_subclass__(cls, scope: Scope, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.scope = scope
        for value in vars(cls).values():
            if isinstance(value, Pv):
                object.__setattr__(value, "scope", scope)

    @classmethod
    def all(cls) -> tuple[Pv, ...]:
        return tuple(value for value in vars(cls).values() if isinstance(value, Pv))

    @classmethod
    def named(cls, name: str) -> Pv:
        """The entry for a record name read from outside (a db file, a screen)."""
        value = vars(cls).get(name)
        if not isinstance(value, Pv):
            raise KeyError(f"no {cls.scope.value} record {name!r}")
        return value


class MotorRecords(Records, scope=Scope.MOTOR):
    """Per motor: `$(P)$(M):`"""

    # configuration: a put-callback completes once the file is saved
    PvRoot = Pv(Kind.STRING_OUT, "Motor record PV root", group="Config",
                binds=MotorConfig("pv_root"), blocking=True)
    LoLim = Pv(Kind.AO, "Soft low limit after homing", group="Config",
               binds=MotorConfig("lo_lim"), prec=3, motor_units=True, blocking=True)
    Center = Pv(Kind.AO, "Position after homing", group="Config",
                binds=MotorConfig("center"), prec=3, motor_units=True, blocking=True)
    HiLim = Pv(Kind.AO, "Soft high limit after homing", group="Config",
               binds=MotorConfig("hi_lim"), prec=3, motor_units=True, blocking=True)
    # homing control
    HomeHi = Pv(Kind.ACTION, "Home on the high limit switch", group="Homing",
                binds=Command("home", Direction.HI), blocking=True)
    HomeLo = Pv(Kind.ACTION, "Home on the low limit switch", group="Homing",
                binds=Command("home", Direction.LO), blocking=True)
    Abort = Pv(Kind.ACTION, "Stop homing and the motor", group="Homing",
               binds=Command("abort"))
    # homing status
    State = Pv(Kind.MBB_IN, "Homing state", binds=Published("state"), options=HOMING_STATES)
    Busy = Pv(Kind.BI, "Homing in progress", binds=Published("busy"), labels=NO_YES)
    Homed = Pv(Kind.BI, "Homed since start or restore", binds=Published("homed"),
               labels=NO_YES)
    Progress = Pv(Kind.AI, "Homing progress", binds=Published("progress"), egu="%", prec=0)
    Message = Pv(Kind.LONG_STRING_IN, "Last status or error", binds=Published("message"),
                 length=MESSAGE_LENGTH)
    LastHomed = Pv(Kind.STRING_IN, "Time of the last successful homing",
                   binds=Published("last_homed"))
    # mirrors of the motor record
    Position = Pv(Kind.AI, "Motor readback (RBV)", group="Motor",
                  binds=MotorField("rbv", throttled=True), prec=3, motor_units=True)
    Moving = Pv(Kind.BI, "Motor moving (not DMOV)", group="Motor",
                binds=MotorField("dmov", inverted=True), labels=NO_YES)
    HighLimitSwitch = Pv(Kind.BI, "High limit switch (HLS)", group="Motor",
                         binds=MotorField("hls"), labels=OFF_ON)
    LowLimitSwitch = Pv(Kind.BI, "Low limit switch (LLS)", group="Motor",
                        binds=MotorField("lls"), labels=OFF_ON)
    Connected = Pv(Kind.BI, "Motor record PVs connected", group="Motor",
                   binds=MotorField("connected"), labels=NO_YES)


class BenchRecords(Records, scope=Scope.BENCH):
    """Bench-wide: `$(P)`"""

    Tolerance = Pv(Kind.AO, "Switch distance beyond soft limits", group="Config",
                   binds=BenchConfig("tolerance"), prec=3, low=0, blocking=True)
    HomeAllHi = Pv(Kind.ACTION, "Home every motor high", group="Homing",
                   binds=Command("home_all", Direction.HI), blocking=True)
    HomeAllLo = Pv(Kind.ACTION, "Home every motor low", group="Homing",
                   binds=Command("home_all", Direction.LO), blocking=True)
    AbortAll = Pv(Kind.ACTION, "Stop all homing and motors", group="Homing",
                  binds=Command("abort_all"))
    AllHomed = Pv(Kind.BI, "Every motor homed", binds=Published("all_homed"), labels=NO_YES)
    Busy = Pv(Kind.BI, "Any homing in progress", binds=Published("busy"), labels=NO_YES)
    Message = Pv(Kind.LONG_STRING_IN, "Last bench status or error",
                 binds=Published("message"), length=MESSAGE_LENGTH)
    Motors = Pv(Kind.LONG_STRING_IN, "Configured motor names", binds=Published("motors"),
                length=MESSAGE_LENGTH)
    ConfigFile = Pv(Kind.LONG_STRING_IN, "Config file in use",
                    binds=Published("config_file"), length=PATH_LENGTH)
    Heartbeat = Pv(Kind.LONG_IN, "Counts up once a second while the IOC runs",
                   binds=Published("heartbeat"))


class SyncRecords(Records, scope=Scope.SYNC):
    """Detector-synchronised scans: `$(P)Sync:`"""

    # The settings are blocking: a put-callback completes once the preview (and Run's
    # DISP) shows the new value, so a client that put them can read the preview next.

    Mode = Pv(Kind.MBB_OUT, "Synchronisation mode", group="Setup", binds=ScanSetting("mode"),
              options=SYNC_MODES, blocking=True)
    Motor = Pv(Kind.STRING_OUT, "Motor to scan", group="Setup", binds=ScanSetting("motor"),
               blocking=True)
    Start = Pv(Kind.AO, "First position", group="Setup", binds=ScanSetting("start"), prec=3,
               motor_units=True, blocking=True)
    End = Pv(Kind.AO, "Last position", group="Setup", binds=ScanSetting("end"), prec=3,
             motor_units=True, blocking=True)
    # no DRVL/DRVH: the record would clamp silently; the scan planner refuses in words
    NumPoints = Pv(Kind.LONG_OUT, "Number of points", group="Setup",
                   binds=ScanSetting("num_points"), blocking=True)
    FramesPerPoint = Pv(Kind.LONG_OUT, "Frames at each point", group="Setup",
                        binds=ScanSetting("frames_per_point"), blocking=True)
    Exposure = Pv(Kind.AO, "Camera exposure", group="Setup", binds=ScanSetting("exposure"),
                  egu="s", prec=4, low=0, blocking=True)
    Period = Pv(Kind.AO, "Camera period", group="Setup", binds=ScanSetting("period"),
                egu="s", prec=4, low=0, blocking=True)
    SettleTime = Pv(Kind.AO, "Settle after each step", group="Setup",
                    binds=ScanSetting("settle_time"), egu="s", prec=3, low=0, blocking=True)
    RequireHomed = Pv(Kind.BO, "Refuse a scan on an unhomed motor", group="Setup",
                      binds=ScanSetting("require_homed"), labels=NO_YES, blocking=True)
    DarkFrames = Pv(Kind.LONG_OUT, "Dark frames before the scan", group="Setup",
                    binds=ScanSetting("dark_frames"), low=0, blocking=True)
    FlatFrames = Pv(Kind.LONG_OUT, "Flat-field frames before the scan", group="Setup",
                    binds=ScanSetting("flat_frames"), low=0, blocking=True)
    # what the next scan file carries (the config's data section; saved to the file).
    # stringout: a plain `caput PV "text"` works; at most 39 characters.
    Proposal = Pv(Kind.STRING_OUT, "Proposal of the next scans", group="Metadata",
                  binds=DataConfig("proposal"), blocking=True)
    Experiment = Pv(Kind.STRING_OUT, "Experiment of the next scans", group="Metadata",
                    binds=DataConfig("experiment"), blocking=True)
    Sample = Pv(Kind.STRING_OUT, "Sample of the next scans", group="Metadata",
                binds=DataConfig("sample"), blocking=True)
    User = Pv(Kind.STRING_OUT, "User of the next scans", group="Metadata",
              binds=DataConfig("user"), blocking=True)
    Run = Pv(Kind.ACTION, "Run the scan", group="Control", binds=Command("run"),
             blocking=True)
    Abort = Pv(Kind.ACTION, "Abort the scan", group="Control", binds=Command("abort"))
    State = Pv(Kind.MBB_IN, "Scan state", binds=Published("state"), options=SYNC_STATES)
    Busy = Pv(Kind.BI, "Scan in progress", binds=Published("busy"), labels=NO_YES)
    Point = Pv(Kind.LONG_IN, "Current point", binds=Published("point"))
    FramesAcquired = Pv(Kind.LONG_IN, "Frames acquired", binds=Published("frames_acquired"))
    MissedFrames = Pv(Kind.LONG_IN, "Triggers sent minus frames counted",
                      binds=Published("missed_frames"))
    Progress = Pv(Kind.AI, "Scan progress", binds=Published("progress"), egu="%", prec=0)
    Velocity = Pv(Kind.AI, "Scan velocity (preview)", group="Preview",
                  binds=Published("velocity"), prec=4)
    RunUp = Pv(Kind.AI, "Run-up distance (preview)", group="Preview",
               binds=Published("run_up"), prec=4)
    EstimatedTime = Pv(Kind.AI, "Estimated scan time (preview)", group="Preview",
                       binds=Published("estimated_time"), egu="s", prec=1)
    Positions = Pv(Kind.WAVEFORM_IN, "Measured positions", group="Data",
                   binds=Published("positions"), length=MAX_SCAN_POINTS, prec=3,
                   motor_units=True)
    SetPositions = Pv(Kind.WAVEFORM_IN, "Set positions", group="Data",
                      binds=Published("set_positions"), length=MAX_SCAN_POINTS, prec=3,
                      motor_units=True)
    Timestamps = Pv(Kind.WAVEFORM_IN, "Frame times (POSIX seconds)", group="Data",
                    binds=Published("timestamps"), length=MAX_SCAN_POINTS)
    FrameNumbers = Pv(Kind.WAVEFORM_IN, "Camera frame numbers", group="Data",
                      binds=Published("frame_numbers"), length=MAX_SCAN_POINTS,
                      dtype="int32")
    NumValid = Pv(Kind.LONG_IN, "Filled length of the arrays", group="Data",
                  binds=Published("num_valid"))
    Message = Pv(Kind.LONG_STRING_IN, "Last scan status or error", binds=Published("message"),
                 length=MESSAGE_LENGTH)
    DataFile = Pv(Kind.LONG_STRING_IN, "Last scan file", binds=Published("data_file"),
                  length=PATH_LENGTH)
    ScanId = Pv(Kind.LONG_STRING_IN, "Persistent identifier of the last scan",
                binds=Published("scan_id"), length=MESSAGE_LENGTH)


SCOPES: dict[Scope, type[Records]] = {
    Scope.MOTOR: MotorRecords,
    Scope.BENCH: BenchRecords,
    Scope.SYNC: SyncRecords,
}
MOTOR_PVS = MotorRecords.all()
BENCH_PVS = BenchRecords.all()
SYNC_PVS = SyncRecords.all()


@dataclass(frozen=True)
class Served:
    """A record the IOC serves for a given prefix and motor set."""

    pv: Pv
    name: str
    motor: str | None = None


def served(prefix: str, motors: list[str], with_sync: bool = True) -> Iterator[Served]:
    """Every record the IOC serves for this prefix and these motors."""
    for pv in BENCH_PVS:
        yield Served(pv, pv.full_name(prefix))
    for motor in motors:
        for pv in MOTOR_PVS:
            yield Served(pv, pv.full_name(prefix, motor), motor)
    if with_sync:
        for pv in SYNC_PVS:
            yield Served(pv, pv.full_name(prefix))
