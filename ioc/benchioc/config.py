"""The bench configuration: one file, JSON (the seed's format) or YAML, validated.

The file is the single source of truth. The CLI and the IOC both edit it, so every write
is atomic (temp file + fsync + rename) under an advisory lock on a sidecar file, and a
document read from disk keeps its own layout (nested or the flat seed variant), key order
and indentation when written back.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MOTOR_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
# A CA PV name root: the characters EPICS record names may hold, no field separator
# (".FIELD" is appended to it), no spaces or quotes.
PV_ROOT_RE = re.compile(r"^[A-Za-z0-9_:;\-\[\]<>]{1,39}$")
PREFIX_RE = re.compile(r"^[A-Za-z0-9_:;\-\[\]<>]{0,30}$")
MAX_FILE_BYTES = 1_000_000
MOTOR_KEYS = ("pv_root", "lo_lim", "hi_lim", "center")


class ConfigError(ValueError):
    """A configuration a user wrote or asked for is not acceptable; the text says why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _finite(value: float, info) -> float:
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, not {value}")
    return value


HOMING_METHODS = {
    "limit": "two-speed homing onto the hard limit switch",
    "home_switch": "the controller's own home routine, HOMF/HOMR at HVEL",
}


class MotorConfig(_Strict):
    pv_root: str
    lo_lim: float
    hi_lim: float
    center: float
    # How the motor is homed (DESIGN.md "Homing"); a seed entry without it homes on its
    # limit switch. home_position: what the position reads on the controller's home
    # mark after a home_switch homing (absent: 0); only for home_switch.
    method: Literal["limit", "home_switch"] = "limit"
    home_position: float | None = None

    _finite = field_validator("lo_lim", "hi_lim", "center")(_finite)

    @field_validator("method", mode="before")
    @classmethod
    def _known_method(cls, value: Any) -> Any:
        choices = "; ".join(f"{name} ({what})" for name, what in HOMING_METHODS.items())
        if value is None or value == "":
            raise ValueError(f"no homing method given: use {choices}")
        if value not in HOMING_METHODS:
            raise ValueError(f"{value!r} is not a homing method: use {choices}")
        return value

    @field_validator("home_position")
    @classmethod
    def _finite_home(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"must be a finite number, not {value}")
        return value

    @field_validator("pv_root")
    @classmethod
    def _pv_root_syntax(cls, value: str) -> str:
        if not PV_ROOT_RE.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a PV root: use 1-39 of A-Z a-z 0-9 _ : ; - [ ] < >"
                " (no spaces, quotes or '.')"
            )
        return value

    @model_validator(mode="after")
    def _ordered(self) -> MotorConfig:
        if not self.lo_lim < self.hi_lim:
            raise ValueError(
                f"lo_lim ({self.lo_lim:g}) must be less than hi_lim ({self.hi_lim:g})"
            )
        if not self.lo_lim <= self.center <= self.hi_lim:
            raise ValueError(
                f"center ({self.center:g}) must lie between lo_lim ({self.lo_lim:g})"
                f" and hi_lim ({self.hi_lim:g})"
            )
        if self.method == "limit" and self.home_position is not None:
            raise ValueError(
                f"home_position ({self.home_position:g}) is used only with method:"
                f" home_switch; this motor homes on its limit switch (method: limit)"
            )
        return self


class GeneralConfig(_Strict):
    tolerance: float = Field(0.5, ge=0)

    _finite = field_validator("tolerance")(_finite)


class IocConfig(_Strict):
    prefix: str = "BENCH:"
    autosave_dir: str = "autosave"
    connection_timeout: float = Field(5.0, gt=0)
    file_poll_period: float = Field(1.0, gt=0)

    @field_validator("prefix")
    @classmethod
    def _prefix_syntax(cls, value: str) -> str:
        if not PREFIX_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a PV prefix (no spaces, quotes or '.')")
        return value


class HomingConfig(_Strict):
    max_parallel: int = Field(0, ge=0)  # 0: every motor at once
    seek_timeout: float = Field(0, ge=0)  # 0: derived from travel and jog speed
    settle_timeout: float = Field(10.0, gt=0)
    stall_time: float = Field(2.0, gt=0)
    move_timeout: float = Field(0, ge=0)  # 0: derived from distance and speed
    creep_speed: float = Field(0, ge=0)  # 0: a tenth of the motor's JVEL
    backoff: float = Field(0, ge=0)  # 0: what the creep speed covers in half a second


class CameraConfig(_Strict):
    prefix: str = "SIM:cam1:"
    # The camera's NDFileHDF5 plugin, armed for every scan ("" = the scan file holds no
    # frames). Relative to prefix's IOC prefix: "SIM:cam1:" -> "SIM:HDF1:".
    file_plugin: str = "HDF1:"
    # Flat fields: this motor moves the sample out of the beam to flat_position, and back.
    flat_motor: str = ""
    flat_position: float = 0.0


class TriggerConfig(_Strict):
    prefix: str = "SIM:PANDA:"


class DataConfig(_Strict):
    directory: str = "data"
    name: str = "scan"
    proposal: str = ""
    experiment: str = ""
    sample: str = ""
    user: str = ""
    embargo_years: float = Field(3, ge=0)
    # Mode of scan files, sidecars and autosave files, whatever the process umask: a data
    # pipeline or a colleague must be able to read them.
    file_mode: str = Field("0644", pattern=r"^0?[0-7]{3}$")


class SimMotorConfig(_Strict):
    """Physics of one simulated motor, in dial (raw) units."""

    low_switch: float = -60.0
    high_switch: float = 60.0
    start: float = 0.0
    velo: float = Field(10.0, gt=0)
    vmax: float = Field(0.0, ge=0)  # 0: no maximum
    jvel: float = Field(0.0, ge=0)  # 0: same as velo
    hvel: float = Field(0.0, ge=0)
    accl: float = Field(0.2, ge=0)
    mres: float = Field(0.001, gt=0)
    dir: Literal["Pos", "Neg"] = "Pos"
    offset: float = 0.0
    egu: str = "mm"
    prec: int = Field(3, ge=0, le=10)
    desc: str = ""
    # A controller with closed-loop (servo) support: MSTA GAIN_SUPPORT set, CNEN starts
    # at Enable and CNEN=Disable refuses motion. Without it (motorSim, steppers) CNEN
    # starts at Disable and motion works regardless, as on the genuine record.
    gain_support: bool = False
    # Homing: the controller's home mark (motorSim's home switch, dial 0 by default),
    # and how far back inside a tripped limit switch the axis must go for it to release.
    home: float = 0.0
    switch_hysteresis: float = Field(0.0, ge=0)

    _finite = field_validator("home", "switch_hysteresis")(_finite)

    @model_validator(mode="after")
    def _switches_ordered(self) -> SimMotorConfig:
        if not self.low_switch < self.high_switch:
            raise ValueError("low_switch must be less than high_switch")
        # (a home left at its default may lie outside: like motorSim's, never found)
        if "home" in self.model_fields_set and not self.low_switch < self.home < self.high_switch:
            raise ValueError(f"home ({self.home:g}) must lie between low_switch"
                             f" ({self.low_switch:g}) and high_switch ({self.high_switch:g})")
        if not self.switch_hysteresis < self.high_switch - self.low_switch:
            raise ValueError(f"switch_hysteresis ({self.switch_hysteresis:g}) must be less"
                             f" than the distance between the switches")
        return self


class SimConfig(_Strict):
    time_scale: float = Field(1.0, gt=0)
    motors: dict[str, SimMotorConfig] = Field(default_factory=dict)


class BenchConfig(_Strict):
    general: GeneralConfig = Field(default_factory=GeneralConfig)
    motors: dict[str, MotorConfig] = Field(default_factory=dict)
    ioc: IocConfig = Field(default_factory=IocConfig)
    homing: HomingConfig = Field(default_factory=HomingConfig)
    detector: CameraConfig = Field(default_factory=CameraConfig)
    trigger: TriggerConfig = Field(default_factory=TriggerConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    sim: SimConfig = Field(default_factory=SimConfig)

    @field_validator("motors")
    @classmethod
    def _motor_names(cls, motors: dict[str, MotorConfig]) -> dict[str, MotorConfig]:
        for name in motors:
            check_motor_name(name)
        roots: dict[str, str] = {}
        for name, motor in motors.items():
            if motor.pv_root in roots:
                raise ValueError(
                    f"motors {roots[motor.pv_root]} and {name} share pv_root {motor.pv_root!r}"
                )
            roots[motor.pv_root] = name
        return motors

    @property
    def tolerance(self) -> float:
        return self.general.tolerance


def check_motor_name(name: str) -> str:
    if not MOTOR_NAME_RE.fullmatch(name):
        raise ValueError(f"motor name {name!r} must be 1-16 of A-Z a-z 0-9 _ -")
    if name.lower() == "all":
        raise ValueError("'all' is reserved: it means every motor")
    return name


def motor_config(values: dict[str, Any], where: str) -> MotorConfig:
    """A motor entry checked on its own; a ConfigError says what is wrong with it."""
    try:
        return MotorConfig(**values)
    except ValidationError as error:
        raise ConfigError(_describe(error, where)) from None


def general_config(values: dict[str, Any], where: str = "general") -> GeneralConfig:
    try:
        return GeneralConfig(**values)
    except ValidationError as error:
        raise ConfigError(_describe(error, where)) from None


def _describe(error: ValidationError, where_empty: str = "file") -> str:
    """One line per problem, each naming the key path that broke."""
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or where_empty
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            msg = "unknown key (not part of the bench config)"
        lines.append(f"{where}: {msg}")
    return "; ".join(lines)


def validate(data: Any, source: str = "config") -> BenchConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, "
                          f"not {type(data).__name__}")
    try:
        return BenchConfig.model_validate(_nested(data))
    except ValidationError as error:
        raise ConfigError(f"{source}: {_describe(error)}") from None


def _is_flat(data: dict) -> bool:
    """The seed's flat variant: tolerance and motor entries at the top level.

    A top-level tolerance alone counts too: it is what `remove all` leaves of a flat file.
    """
    if "motors" in data:
        return False
    return any(isinstance(value, dict) and "pv_root" in value for value in data.values()) or (
        "tolerance" in data and "general" not in data
    )


def _nested(data: dict) -> dict:
    if not _is_flat(data):
        return data
    nested: dict[str, Any] = {"general": {}, "motors": {}}
    for key, value in data.items():
        if key == "tolerance":
            nested["general"]["tolerance"] = value
        elif isinstance(value, dict) and "pv_root" in value:
            nested["motors"][key] = value
        else:
            nested[key] = value
    return nested


@dataclass
class ConfigDocument:
    """A config file as read: the validated model plus what is needed to write it back
    in the same style (format, layout, key order, indentation)."""

    path: Path
    raw: dict
    config: BenchConfig
    fmt: Literal["json", "yaml"] = "json"
    indent: int | None = 4
    flat: bool = False
    text: str = field(default="", repr=False)

    # --- edits (validated before they touch raw) -------------------------------------
    def _motor_table(self) -> dict:
        if self.flat:
            return self.raw
        return self.raw.setdefault("motors", {})

    def set_motor(self, name: str, motor: MotorConfig, *, must_exist: bool | None) -> None:
        check_motor_name(name)
        table = self._motor_table()
        exists = name in self.config.motors
        if must_exist is True and not exists:
            raise ConfigError(f"there is no motor {name!r} (motors: {self.names_text()})")
        if must_exist is False and exists:
            raise ConfigError(f"motor {name!r} already exists; use change to edit it")
        entry = dict(table.get(name, {})) if exists else {}
        for key in MOTOR_KEYS:
            entry[key] = _plain_number(getattr(motor, key))
        self._apply(lambda: table.__setitem__(name, entry))

    def remove_motor(self, name: str) -> list[str]:
        names = list(self.config.motors) if name == "all" else [name]
        for one in names:
            if one not in self.config.motors:
                raise ConfigError(f"there is no motor {one!r} (motors: {self.names_text()})")
        table = self._motor_table()
        self._apply(lambda: [table.pop(one) for one in names])
        return names

    def set_tolerance(self, tolerance: float) -> None:
        def edit() -> None:
            if self.flat:
                self.raw["tolerance"] = _plain_number(tolerance)
            else:
                self.raw.setdefault("general", {})["tolerance"] = _plain_number(tolerance)

        self._apply(edit)

    def set_data_field(self, key: str, value: Any) -> None:
        """One key of the data section (proposal, sample...), validated like any edit."""
        if key not in DataConfig.model_fields:
            raise ConfigError(f"data.{key} is not a data setting: "
                              f"{', '.join(DataConfig.model_fields)}")
        self._apply(lambda: self.raw.setdefault("data", {}).__setitem__(key, value))

    def update_motor_field(self, name: str, key: str, value: Any) -> None:
        if name not in self.config.motors:
            raise ConfigError(f"there is no motor {name!r} (motors: {self.names_text()})")
        if key not in MOTOR_KEYS:
            raise ConfigError(f"{key!r} is not a motor setting ({', '.join(MOTOR_KEYS)})")
        table = self._motor_table()
        value = _plain_number(value) if key != "pv_root" else value
        self._apply(lambda: table[name].__setitem__(key, value))

    def _apply(self, edit) -> None:
        """Run an edit on a copy of raw; keep it only if the result validates."""
        backup = copy.deepcopy(self.raw)
        try:
            edit()
            self.config = validate(self.raw, str(self.path))
        except Exception:
            self.raw.clear()
            self.raw.update(backup)
            raise

    def names_text(self) -> str:
        return ", ".join(self.config.motors) or "none"

    # --- output -----------------------------------------------------------------------
    def dumps(self) -> str:
        if self.fmt == "yaml":
            out = io.StringIO()
            _round_trip_yaml().dump(self.raw, out)
            return out.getvalue()
        return json.dumps(self.raw, indent=self.indent) + "\n"

    def save(self) -> None:
        with locked(self.path):
            atomic_write(self.path, self.dumps())
        self.text = self.dumps()


def _mode_for(path: Path) -> int:
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without setting it (os.umask would change it for every
    thread for a moment); 022 where /proc does not say."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _plain_number(value: Any) -> Any:
    """Write 40.0 as 40, as a person would, and keep non-integral floats as they are."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def _detect_indent(text: str) -> int | None:
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" ")
        if stripped and stripped != line:
            return len(line) - len(stripped)
    return None if "\n" not in text.strip() else 4


def _format_of(path: Path, text: str) -> Literal["json", "yaml"]:
    if path.suffix.lower() == ".json":
        return "json"
    if path.suffix.lower() in (".yaml", ".yml"):
        return "yaml"
    return "json" if text.lstrip().startswith("{") else "yaml"


def parse_text(text: str, path: Path) -> tuple[dict, Literal["json", "yaml"]]:
    fmt = _format_of(path, text)
    if not text.strip():
        raise ConfigError(f"{path}: the file is empty")
    try:
        data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{path}: not valid JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a bench config") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of sections, not {type(data).__name__}"
        )
    if fmt == "yaml":
        # Parsed again, keeping comments and layout, so that a save changes only the
        # values that were edited (PyYAML above gives the clearer error messages).
        data = _round_trip_yaml().load(text)
    return data, fmt


def _round_trip_yaml():
    from ruamel.yaml import YAML

    round_trip = YAML(typ="rt")
    round_trip.preserve_quotes = True
    round_trip.width = 4096
    return round_trip


def load(path: str | os.PathLike) -> ConfigDocument:
    """Read and validate a config file; any problem is a ConfigError naming the place."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror})") from None
    if len(blob) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: {len(blob)} bytes is too large for a bench config "
                          f"(limit {MAX_FILE_BYTES})")
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as error:
        line = blob[: error.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (bad byte at line {line})") from None
    data, fmt = parse_text(text, path)
    config = validate(data, str(path))
    return ConfigDocument(
        path=path,
        raw=data,
        config=config,
        fmt=fmt,
        indent=_detect_indent(text) if fmt == "json" else None,
        flat=_is_flat(data),
        text=text,
    )


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Advisory lock shared by every writer of this config (CLI and IOC)."""
    lock_path = path.with_name(f".{path.name}.lock")
    try:
        lock_file = open(lock_path, "a+")  # noqa: SIM115 - closed by the with below
    except OSError as error:  # e.g. a read-only folder: one line, not a traceback
        raise ConfigError(f"{path}: cannot be changed: the lock file {lock_path.name} cannot"
                          f" be created in {lock_path.parent} ({error.strerror})") from None
    with lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def atomic_write(path: Path, text: str, mode: int | None = None, *,
                 durable: bool = True) -> None:
    """Replace path with text so that a reader (or a killed writer) sees old or new,
    never half. mode: the file's mode; None keeps the mode of the file replaced, and
    gives a new file what open() would (0666 less the umask), not mkstemp's 0600.
    durable: also on disk before returning (fsync of file and directory), so that a
    power cut keeps it too; without, call sync_to_disk(path) later, e.g. from a thread."""
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.chmod(tmp, _mode_for(path) if mode is None else mode)
        os.replace(tmp, path)
        if durable:
            fsync_path(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def sync_to_disk(path: Path) -> None:
    """fsync a file written by atomic_write(durable=False), and its directory."""
    with contextlib.suppress(FileNotFoundError):  # replaced again meanwhile: that one
        fsync_path(path)
    fsync_path(path.parent if str(path.parent) else Path("."))


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory: the names in it, e.g. after a rename)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
