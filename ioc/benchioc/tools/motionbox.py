"""`motion-box`: the seed's Motion Box command line, on the shared bench config.

Verb for verb and argument for argument it is the seed script (``help``, ``add``,
``change``, ``remove``, ``home``), plus ``list``, ``status`` and ``validate``. Edits are
validated completely before the file is touched and then written atomically under the
lock the IOC shares, so a refused edit leaves the file byte-for-byte as it was.

Exit codes: 0 done; 1 homing (or a live read) did not succeed; 2 a usage or config
error (a one-line reason names the bad argument); 130 interrupted with Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import aioca
import click
from pydantic import ValidationError

from .. import config
from ..config import ConfigDocument, ConfigError, MotorConfig

log = logging.getLogger(__name__)

PROG = "motion-box"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
CA_TIMEOUT = 1.0  # an offline bench must still list quickly

# ignore_unknown_options lets "-5" through as a positional number instead of an option.
_CONTEXT = {"ignore_unknown_options": True, "help_option_names": ["--help", "-h"]}
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_NOT_FINITE = {"nan", "inf", "infinity"}


class Number(click.ParamType):
    """A finite decimal number as a person types it: "-5", "0.25", "1e-3".

    Python's float() would also take "nan", "inf", "1_000" and "1e999" (= inf); none of
    those is a position a motor can be sent to, so they are refused here, by name.
    """

    name = "number"

    def convert(self, value, param, ctx) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        if text.lower().lstrip("+-") in _NOT_FINITE:
            self.fail(f"must be a finite number, not {text!r}", param, ctx)
        if not _NUMBER_RE.match(text):
            self.fail(f"{text!r} is not a number", param, ctx)
        number = float(text)
        if not math.isfinite(number):
            self.fail(f"{text} is too large to be a number of millimetres or degrees",
                      param, ctx)
        return number


NUMBER = Number()


# --- helpers ---------------------------------------------------------------------------
def _complete_motor(ctx: click.Context, param: click.Parameter, incomplete: str) -> list:
    """Shell completion of motor names from the config named earlier on the line."""
    try:
        names = list(config.load(ctx.params["json_path"]).config.motors)
    except (ConfigError, KeyError):
        names = []
    if param.name == "motor_name" and ctx.command.name in ("remove", "home", "status"):
        names.append("all")
    return [name for name in names if name.startswith(incomplete)]


def json_path_argument() -> Callable:
    return click.argument("json_path", metavar="json_path", type=click.Path(dir_okay=True))


def motor_argument(required: bool = True) -> Callable:
    return click.argument("motor_name", metavar="motor_name", required=required,
                          shell_complete=_complete_motor)


def motor_settings_arguments(command: Callable) -> Callable:
    """pv_root lo_lim center hi_lim, in the seed's order (center between the limits)."""
    for name in reversed(("pv_root", "lo_lim", "center", "hi_lim")):
        kind = str if name == "pv_root" else NUMBER
        command = click.argument(name, metavar=name, type=kind)(command)
    return command


def _describe_motor_error(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def build_motor(pv_root: str, lo_lim: float, center: float, hi_lim: float) -> MotorConfig:
    """The motor settings as typed, checked on their own (before the file is read)."""
    try:
        return MotorConfig(pv_root=pv_root, lo_lim=lo_lim, hi_lim=hi_lim, center=center)
    except ValidationError as error:
        raise ConfigError(_describe_motor_error(error)) from None


def edit_config(json_path: str, edit: Callable[[ConfigDocument], str]) -> str:
    """Apply an edit and write the file atomically under the shared lock.

    The edit runs once on a fresh read to surface every error before any lock file
    exists, then again under the lock on a re-read, so an edit the IOC made in between
    is not lost. The file is written only if its text changes.
    """
    _checked_edit(edit, config.load(json_path))
    with config.locked(Path(json_path)):
        document = config.load(json_path)
        message = _checked_edit(edit, document)
        text = document.dumps()
        if text != document.text:
            try:
                config.atomic_write(document.path, text)
            except OSError as error:
                raise ConfigError(f"{json_path}: cannot be written ({error.strerror})") \
                    from None
    return message


def _checked_edit(edit: Callable[[ConfigDocument], str], document: ConfigDocument) -> str:
    try:
        return edit(document)
    except ConfigError:
        raise
    except ValueError as error:  # a name check in config.py speaks plain ValueError
        raise ConfigError(str(error)) from None


def _number(value: float) -> str:
    # a readback of -1e-15 or -0.0 shows as 0 (+ 0.0 turns -0.0 into 0.0)
    return f"{round(value, 9) + 0.0:g}"


def _settings_text(motor: MotorConfig) -> str:
    return (f"pv_root {motor.pv_root}, lo_lim {_number(motor.lo_lim)}, "
            f"center {_number(motor.center)}, hi_lim {_number(motor.hi_lim)}")


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows,
                                                                          strict=False)]
    lines = [header, *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True))
        .rstrip()
        for line in lines
    )


def _is_all(motor_name: str) -> bool:
    return motor_name.lower() == "all"


# --- live bench: status over CA ----------------------------------------------------------
FROM_IOC = "IOC"
FROM_MOTOR_RECORD = "motor record"
UNREACHABLE = "unreachable"
# Motor record MSTA bits (motor module, motor.h): the ones a person needs to know about.
MSTA_PROBLEM = 1 << 9
MSTA_COMM_ERR = 1 << 12
MOTOR_RECORD_FIELDS = ("RBV", "DMOV", "HLS", "LLS", "MSTA", "EGU")


@dataclass
class MotorStatus:
    name: str
    source: str
    summary: str
    details: list[tuple[str, str]] = field(default_factory=list)

    def describe(self) -> str:
        origin = "" if self.source == UNREACHABLE else f" (from {self.source})"
        lines = [f"{self.name}: {self.summary}{origin}"]
        lines += [f"    {key}: {value}" for key, value in self.details]
        return "\n".join(lines)


@dataclass
class IocProbe:
    """What answered on $(P)ConfigFile: nothing, an IOC of another file, or ours."""

    prefix: str
    served: str | None = None
    ours: bool = False


def same_file(served: str, path: Path) -> bool:
    try:
        return os.path.samefile(served, path)
    except OSError:
        return os.path.abspath(served) == str(path.absolute())


async def find_ioc(document: ConfigDocument, timeout: float) -> IocProbe:
    prefix = document.config.ioc.prefix
    served = await aioca.caget(f"{prefix}ConfigFile", datatype=aioca.DBR_CHAR_STR,
                               timeout=timeout, throw=False)
    if not served.ok:
        return IocProbe(prefix)
    return IocProbe(prefix, str(served), same_file(str(served), document.path))


async def _read_from_ioc(prefix: str, name: str, timeout: float) -> MotorStatus | None:
    base = f"{prefix}{name}:"
    state, position, homed, last, message = await asyncio.gather(
        aioca.caget(f"{base}State", datatype=str, timeout=timeout, throw=False),
        aioca.caget(f"{base}Position", timeout=timeout, throw=False),
        aioca.caget(f"{base}Homed", timeout=timeout, throw=False),
        aioca.caget(f"{base}LastHomed", datatype=str, timeout=timeout, throw=False),
        aioca.caget(f"{base}Message", datatype=aioca.DBR_CHAR_STR, timeout=timeout,
                    throw=False),
    )
    if not state.ok:  # a motor the IOC does not serve (yet): ask its record instead
        return None
    summary = str(state)
    if position.ok:
        summary += f" at {_number(float(position))}"
    details = [("homed", "yes" if homed.ok and int(homed) else "no")]
    if last.ok and str(last):
        details.append(("last homed", str(last)))
    if message.ok and str(message):
        details.append(("message", str(message)))
    return MotorStatus(name, f"{FROM_IOC} {prefix}", summary, details)


async def _read_motor_record(name: str, pv_root: str, timeout: float) -> MotorStatus:
    values = await aioca.caget([f"{pv_root}.{fld}" for fld in MOTOR_RECORD_FIELDS],
                               timeout=timeout, throw=False)
    fields = dict(zip(MOTOR_RECORD_FIELDS, values, strict=True))
    if not fields["RBV"].ok:
        return MotorStatus(name, UNREACHABLE, UNREACHABLE,
                           [("reason", f"{pv_root}.RBV did not answer within {timeout:g} s")])
    unit = f" {fields['EGU']}" if fields["EGU"].ok and str(fields["EGU"]) else ""
    moving = fields["DMOV"].ok and not int(fields["DMOV"])
    summary = f"{'moving' if moving else 'idle'} at {_number(float(fields['RBV']))}{unit}"
    flags = _motor_flags(fields)
    if flags:
        summary += ", " + ", ".join(flags)
    details = [("pv_root", pv_root), ("homed", "unknown (no IOC serves this config)")]
    return MotorStatus(name, f"{FROM_MOTOR_RECORD} {pv_root}", summary, details)


def _motor_flags(fields: dict) -> list[str]:
    flags = []
    if fields["HLS"].ok and int(fields["HLS"]):
        flags.append("on high limit switch")
    if fields["LLS"].ok and int(fields["LLS"]):
        flags.append("on low limit switch")
    if fields["MSTA"].ok:
        msta = int(fields["MSTA"])
        if msta & MSTA_PROBLEM:
            flags.append("PROBLEM")
        if msta & MSTA_COMM_ERR:
            flags.append("COMM ERROR")
    return flags


async def read_statuses(document: ConfigDocument, names: list[str],
                        timeout: float) -> dict[str, MotorStatus]:
    """Per motor: from the IOC serving this config, else its motor record, else
    unreachable. The IOC probe and the record reads run at once, so an offline bench
    costs one timeout, not one per motor."""
    motors = document.config.motors
    probe, direct = await asyncio.gather(
        find_ioc(document, timeout),
        asyncio.gather(*(_read_motor_record(n, motors[n].pv_root, timeout) for n in names)),
    )
    statuses = dict(zip(names, direct, strict=True))
    if probe.ours:
        from_ioc = await asyncio.gather(*(_read_from_ioc(probe.prefix, n, timeout)
                                          for n in names))
        statuses.update({n: s for n, s in zip(names, from_ioc, strict=True) if s})
    return statuses


# --- live bench: homing ----------------------------------------------------------------
@dataclass
class HomeOutcome:
    homed: bool
    reason: str = ""


@dataclass
class HomeRequest:
    document: ConfigDocument
    names: list[str]
    direction: str  # "hi" or "lo"
    every_motor: bool
    direct: bool = False
    connect_timeout: float = 5.0
    ca_timeout: float = 1.0


@dataclass
class _Row:
    state: str = "waiting"
    progress: float = 0.0
    message: str = ""


class ProgressDisplay:
    """Live homing progress per motor.

    On a terminal: one line per motor with a bar, redrawn in place. Otherwise (a log,
    a pipe, the Qt GUI's process reader): a plain line whenever a motor's state or
    message changes, never a progress-only line (that would flood a log file).
    """

    BAR_WIDTH = 20

    def __init__(self, names: Sequence[str], stream: TextIO, tty: bool | None = None) -> None:
        self._names = list(names)
        self._stream = stream
        self._tty = stream.isatty() if tty is None else tty
        self._rows = {name: _Row() for name in names}
        self._width = max(len(name) for name in names)
        self._drawn = False

    def row(self, name: str) -> _Row:
        return self._rows[name]

    def note(self, text: str) -> None:
        """A line above the live rows (which way homing goes, a warning)."""
        self._stream.write(text + "\n")
        self._stream.flush()

    def update(self, name: str, state: str | None = None, progress: float | None = None,
               message: str | None = None) -> None:
        row = self._rows.get(name)
        if row is None:
            return
        worded = (state is not None and state != row.state) or (
            message is not None and message != row.message)
        row.state = row.state if state is None else state
        row.message = row.message if message is None else message
        row.progress = row.progress if progress is None else max(0.0, min(100.0, progress))
        if self._tty:
            self._redraw()
        elif worded:
            self._stream.write(self._plain_line(name) + "\n")
            self._stream.flush()

    def close(self) -> None:
        if self._tty and self._drawn:
            self._stream.flush()

    def _plain_line(self, name: str) -> str:
        row = self._rows[name]
        text = f"{name}: {row.state} {row.progress:.0f}%"
        return f"{text} {row.message}" if row.message else text

    def _bar_line(self, name: str) -> str:
        row = self._rows[name]
        filled = round(self.BAR_WIDTH * row.progress / 100)
        bar = "#" * filled + "-" * (self.BAR_WIDTH - filled)
        line = f"{name:<{self._width}} [{bar}] {row.progress:3.0f}% {row.state:<11} {row.message}"
        columns = shutil.get_terminal_size().columns
        return line[: max(columns - 1, 20)].rstrip()

    def _redraw(self) -> None:
        if self._drawn:  # back to the first live row, then overwrite every row
            self._stream.write(f"\x1b[{len(self._names)}F")
        for name in self._names:
            self._stream.write("\x1b[2K" + self._bar_line(name) + "\n")
        self._drawn = True
        self._stream.flush()


async def home_motors(request: HomeRequest, display: ProgressDisplay) -> dict[str, HomeOutcome]:
    """Home through the IOC that serves this config, or with the engine here over CA."""
    probe = None if request.direct else await find_ioc(request.document, request.ca_timeout)
    if probe is not None and probe.ours:
        display.note(f"homing {', '.join(request.names)} {request.direction} through the "
                     f"IOC at {probe.prefix} (it serves {probe.served})")
        return await _home_via_ioc(probe.prefix, request, display)
    if probe is not None and probe.served:
        # its motors may well be these: two owners would command them at once
        raise ConfigError(f"the IOC at {probe.prefix} serves {probe.served}, not "
                          f"{request.document.path}: home through that IOC (motion-box home"
                          f" {probe.served} ...), or give --direct to home here anyway")
    display.note(f"homing {', '.join(request.names)} {request.direction} directly over CA")
    return await _home_with_engine(request, display)


async def _home_via_ioc(prefix: str, request: HomeRequest,
                        display: ProgressDisplay) -> dict[str, HomeOutcome]:
    suffix = "Hi" if request.direction == "hi" else "Lo"
    if request.every_motor:
        action, abort = f"{prefix}HomeAll{suffix}", f"{prefix}AbortAll"
    else:
        base = f"{prefix}{request.names[0]}:"
        action, abort = f"{base}Home{suffix}", f"{base}Abort"
    connected = await aioca.connect(action, timeout=request.ca_timeout, throw=False)
    if not connected.ok:
        return _all_failed(request, f"the IOC at {prefix} serves this config but {action} "
                                    f"did not answer ({connected}); is the motor new to it?")
    monitors, first_values = _monitor_ioc_rows(prefix, request.names, display)
    # Start only once the rows show their current values, so no early state is missed.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in first_values)),
                               request.ca_timeout * 2)
    try:
        # Put with callback: the IOC completes it when homing has ended, one way or another.
        await aioca.caput(action, 1, wait=True, timeout=None)
    except aioca.CANothing as error:  # refused (already homing) or the IOC went away
        return _all_failed(request, f"the IOC did not complete {action}: {error}")
    except asyncio.CancelledError:
        display.note(f"interrupted: putting {abort} to stop the motors")
        await aioca.caput(abort, 1, timeout=request.ca_timeout * 2, throw=False)
        raise
    finally:
        for monitor in monitors:
            monitor.close()
    return await _ioc_outcomes(prefix, request)


def _all_failed(request: HomeRequest, reason: str) -> dict[str, HomeOutcome]:
    return {name: HomeOutcome(False, reason) for name in request.names}


def _monitor_ioc_rows(prefix: str, names: list[str],
                      display: ProgressDisplay) -> tuple[list, list[asyncio.Event]]:
    """Monitors that feed the display; each event is set by its monitor's first value."""
    monitors, first_values = [], []
    for name in names:
        base = f"{prefix}{name}:"
        fields = [("State", "state", str, str), ("Progress", "progress", None, float),
                  ("Message", "message", aioca.DBR_CHAR_STR, str)]
        for field_name, keyword, datatype, convert in fields:
            seen = asyncio.Event()

            def show(value, name=name, keyword=keyword, convert=convert, seen=seen) -> None:
                seen.set()
                display.update(name, **{keyword: convert(value)})

            monitors.append(aioca.camonitor(f"{base}{field_name}", show, datatype=datatype))
            first_values.append(seen)
    return monitors, first_values


async def _ioc_outcomes(prefix: str, request: HomeRequest) -> dict[str, HomeOutcome]:
    # State is an enum (read as its label), Message a long string (read as text)
    states, messages = await asyncio.gather(
        aioca.caget([f"{prefix}{n}:State" for n in request.names], datatype=str,
                    timeout=request.ca_timeout, throw=False),
        aioca.caget([f"{prefix}{n}:Message" for n in request.names],
                    datatype=aioca.DBR_CHAR_STR, timeout=request.ca_timeout, throw=False))
    outcomes = {}
    for name, state, message in zip(request.names, states, messages, strict=True):
        if not state.ok:
            outcomes[name] = HomeOutcome(False, f"the IOC did not report {prefix}{name}:State")
        elif str(state) == "Homed":
            outcomes[name] = HomeOutcome(True, str(message) if message.ok else "")
        else:
            why = str(message) if message.ok and str(message) else "no message from the IOC"
            outcomes[name] = HomeOutcome(False, f"ended {state}: {why}")
    return outcomes


async def _home_with_engine(request: HomeRequest,
                            display: ProgressDisplay) -> dict[str, HomeOutcome]:
    # Imported here so that editing a config never loads the CA motor client.
    from ..clients.motor import EpicsMotor
    from ..engines import homing as engine
    from ..engines.motormodel import Direction

    bench = request.document.config
    motors = {n: EpicsMotor(n, bench.motors[n].pv_root, on_change=lambda _status: None)
              for n in request.names}
    try:
        outcomes = await _connect_motors(motors, request.connect_timeout, display)
        settings = engine.HomingSettings.from_config
        homings = {n: engine.MotorHoming(motors[n], functools.partial(settings, bench, n))
                   for n in motors if n not in outcomes}
        for name, homing in homings.items():
            homing.subscribe(functools.partial(_show_update, display, name))
        direction = Direction(request.direction)
        together = engine.BenchHoming(homings, max_parallel=bench.homing.max_parallel)
        try:
            results = await together.home_all(direction)
        except asyncio.CancelledError:
            # Cancelling home_all has already stopped each motor and restored its limits.
            display.note("interrupted: homing aborted, motors stopped")
            raise
        outcomes.update({n: HomeOutcome(ok, _own_words(n, homings[n].message))
                         for n, ok in results.items()})
    finally:
        for motor in motors.values():
            motor.close()
    return {n: outcomes[n] for n in request.names}


async def _connect_motors(motors: dict, timeout: float,
                          display: ProgressDisplay) -> dict[str, HomeOutcome]:
    """Connect every motor at once; those that do not connect are failed outcomes."""
    results = await asyncio.gather(*(m.connect(timeout) for m in motors.values()),
                                   return_exceptions=True)
    failed = {}
    for name, result in zip(motors, results, strict=True):
        if isinstance(result, BaseException):
            if isinstance(result, asyncio.CancelledError):
                raise result
            reason = f"not connected: {result or type(result).__name__}"
            display.update(name, state="Failed", message=reason)
            failed[name] = HomeOutcome(False, reason)
    return failed


def state_word(state) -> str:
    """HomingState.NOT_HOMED -> "NotHomed", the label the IOC's State record shows."""
    return state.name.title().replace("_", "")


def _own_words(name: str, message: str) -> str:
    return message.removeprefix(f"{name}: ")


def _show_update(display: ProgressDisplay, name: str, update) -> None:
    display.update(name, state=state_word(update.state), progress=update.progress,
                   message=_own_words(name, update.message))


# --- commands --------------------------------------------------------------------------
@click.group(context_settings=_CONTEXT, invoke_without_command=False)
@click.version_option(package_name="bench-ioc", prog_name=PROG)
def cli() -> None:
    """Motion Box: configure and home the test-bench motors.

    Every command takes the bench config (the seed's JSON, or YAML) as json_path.
    Shell completion: eval "$(_MOTION_BOX_COMPLETE=bash_source motion-box)".
    """


@cli.command("help", context_settings=_CONTEXT)
@click.argument("command_name", metavar="command_name", required=False)
@click.pass_context
def help_command(ctx: click.Context, command_name: str | None) -> int:
    """Show how to use a command (or list the commands)."""
    assert ctx.parent is not None and isinstance(ctx.parent.command, click.Group)
    group = ctx.parent.command
    if command_name is None:
        click.echo(group.get_help(ctx.parent))
        return EXIT_OK
    command = group.get_command(ctx.parent, command_name)
    if command is None:
        known = ", ".join(group.list_commands(ctx.parent))
        raise click.BadParameter(f"there is no command {command_name!r} (commands: {known})",
                                 ctx=ctx, param=ctx.command.params[0])
    with click.Context(command, info_name=command_name, parent=ctx.parent) as sub:
        click.echo(command.get_help(sub))
    return EXIT_OK


@cli.command(context_settings=_CONTEXT)
@json_path_argument()
@motor_argument()
@motor_settings_arguments
def add(json_path: str, motor_name: str, pv_root: str, lo_lim: float, center: float,
        hi_lim: float) -> int:
    """Add a new motor to the config file.

    \b
    json_path   the bench config (JSON or YAML)
    motor_name  the new motor's name (1-16 of A-Z a-z 0-9 _ -)
    pv_root     the motor record's PV name, e.g. SIM:A
    lo_lim      soft low limit
    center      where the motor goes after homing
    hi_lim      soft high limit
    """
    motor = build_motor(pv_root, lo_lim, center, hi_lim)

    def edit(document: ConfigDocument) -> str:
        document.set_motor(_checked_name(motor_name), motor, must_exist=False)
        return f"added motor {motor_name} ({_settings_text(motor)}) to {json_path}"

    click.echo(edit_config(json_path, edit))
    return EXIT_OK


@cli.command(context_settings=_CONTEXT)
@json_path_argument()
@motor_argument()
@motor_settings_arguments
def change(json_path: str, motor_name: str, pv_root: str, lo_lim: float, center: float,
           hi_lim: float) -> int:
    """Change an existing motor's settings.

    \b
    json_path   the bench config (JSON or YAML)
    motor_name  the motor to change
    pv_root     the motor record's PV name
    lo_lim      soft low limit
    center      where the motor goes after homing
    hi_lim      soft high limit
    """
    motor = build_motor(pv_root, lo_lim, center, hi_lim)

    def edit(document: ConfigDocument) -> str:
        before = document.config.motors.get(_checked_name(motor_name))
        document.set_motor(motor_name, motor, must_exist=True)
        if before == motor:
            return f"motor {motor_name} already has {_settings_text(motor)}; nothing changed"
        assert before is not None  # set_motor(must_exist=True) refused a new name
        return f"changed motor {motor_name}: {_settings_text(motor)} (was {_settings_text(before)})"

    click.echo(edit_config(json_path, edit))
    return EXIT_OK


@cli.command(context_settings=_CONTEXT)
@json_path_argument()
@motor_argument()
def remove(json_path: str, motor_name: str) -> int:
    """Remove a motor, or every motor with "all" (the general settings stay).

    \b
    json_path   the bench config (JSON or YAML)
    motor_name  the motor to remove, or all
    """

    def edit(document: ConfigDocument) -> str:
        if _is_all(motor_name) and not document.config.motors:
            return f"{json_path} has no motors; nothing removed"
        removed = document.remove_motor("all" if _is_all(motor_name) else motor_name)
        if _is_all(motor_name):
            return (f"removed all {len(removed)} motors ({', '.join(removed)}) from "
                    f"{json_path}; general settings kept")
        return f"removed motor {motor_name} from {json_path}"

    click.echo(edit_config(json_path, edit))
    return EXIT_OK


@cli.command(context_settings=_CONTEXT)
@json_path_argument()
def validate(json_path: str) -> int:
    """Check a config file and say what it holds."""
    document = config.load(json_path)
    bench = document.config
    layout = "flat seed layout" if document.flat else "sections"
    click.echo(f"{json_path}: valid {document.fmt.upper()} ({layout}), "
               f"{len(bench.motors)} motors ({document.names_text()}), "
               f"tolerance {_number(bench.tolerance)}")
    return EXIT_OK


@cli.command("list", context_settings=_CONTEXT)
@json_path_argument()
@click.option("--offline", is_flag=True, help="Only the config; do not ask the bench.")
def list_command(json_path: str, offline: bool) -> int:
    """List the motors with their settings and live status."""
    document = config.load(json_path)
    motors = document.config.motors
    header = ["motor", "pv_root", "lo_lim", "center", "hi_lim"]
    rows = [[name, m.pv_root, _number(m.lo_lim), _number(m.center), _number(m.hi_lim)]
            for name, m in motors.items()]
    if not offline:
        header.append("status")
        statuses = _live_statuses(document, list(motors))
        for row, name in zip(rows, motors, strict=True):
            row.append(statuses[name].summary)
    if not rows:
        click.echo(f"{json_path} has no motors (tolerance {_number(document.config.tolerance)})")
        return EXIT_OK
    click.echo(format_table(header, rows))
    click.echo(f"tolerance {_number(document.config.tolerance)}")
    return EXIT_OK


def _checked_name(name: str) -> str:
    try:
        return config.check_motor_name(name)
    except ValueError as error:
        raise ConfigError(f"motor_name: {error}") from None


def _live_statuses(document: ConfigDocument, names: list[str]) -> dict[str, MotorStatus]:
    return _run_ca(read_statuses(document, names, CA_TIMEOUT))


def _run_ca(coroutine):
    """Run one CA conversation on a fresh event loop and close its channels after."""
    try:
        return asyncio.run(coroutine)
    finally:
        aioca.purge_channel_caches()


def _motor_names(document: ConfigDocument, motor_name: str | None) -> list[str]:
    motors = document.config.motors
    if motor_name is None or _is_all(motor_name):
        return list(motors)
    if motor_name not in motors:
        raise ConfigError(f"motor_name: there is no motor {motor_name!r} "
                          f"(motors: {document.names_text()})")
    return [motor_name]


@cli.command(context_settings=_CONTEXT)
@json_path_argument()
@motor_argument(required=False)
def status(json_path: str, motor_name: str | None) -> int:
    """Show the live status of one motor or every motor.

    Read from the IOC serving this config if it is up, else straight from the motor
    records; a motor that answers neither within a second is "unreachable".
    """
    document = config.load(json_path)
    names = _motor_names(document, motor_name)
    if not names:
        click.echo(f"{json_path} has no motors")
        return EXIT_OK
    statuses = _live_statuses(document, names)
    for name in names:
        click.echo(statuses[name].describe())
    reachable = all(statuses[name].source != UNREACHABLE for name in names)
    return EXIT_OK if reachable else EXIT_FAILED


@cli.command(context_settings=_CONTEXT)
@json_path_argument()
@motor_argument()
@click.argument("homing_mode", metavar="hi|lo",
                type=click.Choice(["hi", "lo"], case_sensitive=False))
@click.option("--direct", is_flag=True,
              help="Home over CA with this process's own engine even if an IOC serves "
                   "this config.")
@click.option("--connect-timeout", type=NUMBER, default=5.0, show_default=True,
              help="Seconds to wait for the motor records to connect.")
def home(json_path: str, motor_name: str, homing_mode: str, direct: bool,
         connect_timeout: float) -> int:
    """Home one motor or all of them against the hi or lo limit switch.

    \b
    json_path    the bench config (JSON or YAML)
    motor_name   the motor to home, or all
    hi|lo        seek the high or the low hard limit switch

    Goes through the IOC's records when an IOC serves this same config file, so the
    motors have one owner; otherwise runs the homing engine here. Ctrl-C aborts and
    stops the motors. Exit code 0 only if every requested motor ended Homed.
    """
    document = config.load(json_path)
    names = _motor_names(document, motor_name)
    if not names:
        raise ConfigError(f"{json_path} has no motors to home")
    direction = homing_mode.lower()
    display = ProgressDisplay(names, stream=sys.stdout)
    request = HomeRequest(document=document, names=names, direction=direction,
                               every_motor=_is_all(motor_name), direct=direct,
                               connect_timeout=connect_timeout, ca_timeout=CA_TIMEOUT)
    try:
        outcomes = _run_ca(home_motors(request, display))
    finally:
        display.close()
    return _report_homing(outcomes)


def _report_homing(outcomes: dict[str, HomeOutcome]) -> int:
    failed = {name: outcome for name, outcome in outcomes.items() if not outcome.homed}
    for name, outcome in outcomes.items():
        if outcome.homed:
            click.echo(f"{name}: homed")
    for name, outcome in failed.items():
        click.echo(f"{name}: NOT homed: {outcome.reason}", err=True)
    if failed:
        click.echo(f"{len(failed)} of {len(outcomes)} motors not homed", err=True)
        return EXIT_FAILED
    return EXIT_OK


# --- entry point -----------------------------------------------------------------------
def _usage_line(error: click.UsageError) -> str:
    """One line: which command, what broke, and how the command is meant to be typed."""
    ctx = error.ctx
    where = ctx.command_path if ctx is not None else PROG
    if isinstance(error, click.MissingParameter) and error.param is not None:
        usage = " ".join(ctx.command.collect_usage_pieces(ctx)) if ctx else ""
        usage = usage.replace("[OPTIONS] ", "")
        return (f"{where}: missing argument {error.param.human_readable_name} "
                f"(usage: {where} {usage})")
    if isinstance(error, click.BadParameter) and error.param is not None:
        return f"{where}: {error.param.human_readable_name}: {error.message}"
    return f"{where}: {error.format_message()}"


def _command_path(argv: list[str] | None) -> str:
    """"motion-box add" for messages raised inside a command's body."""
    args = sys.argv[1:] if argv is None else argv
    name = next((arg for arg in args if not arg.startswith("-")), None)
    return f"{PROG} {name}" if name in cli.commands else PROG


def main(argv: list[str] | None = None) -> int:
    """Run motion-box with argv (default: the process arguments); return the exit code."""
    try:
        result = cli.main(args=argv, prog_name=PROG, standalone_mode=False)
    except click.UsageError as error:
        click.echo(_usage_line(error), err=True)
        return EXIT_USAGE
    except ConfigError as error:
        click.echo(f"{_command_path(argv)}: {error}", err=True)
        return EXIT_USAGE
    except (KeyboardInterrupt, click.Abort):
        click.echo(f"{PROG}: interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as error:
        click.echo(f"{PROG}: {error.format_message()}", err=True)
        return error.exit_code
    return result if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
