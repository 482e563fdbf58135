"""`motion-box`'s command line: the arguments, the commands and their exit codes.

Verb for verb and argument for argument it is the seed script (``help``, ``add``,
``change``, ``remove``, ``home``), plus ``list``, ``status`` and ``validate``. What the
commands do lives beside: edits.py (add, change, remove), probe.py (the running bench
over CA), homing.py (home) and display.py (what the terminal shows).

Exit codes: 0 done; 1 homing (or a live read) did not succeed; 2 a usage or config
error, or an edit refused (a one-line reason names the bad argument or what refused);
130 interrupted with Ctrl-C.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable

import click

from ... import config
from ...config import ConfigDocument, ConfigError
from . import edits
from .display import ProgressDisplay, format_table, number
from .homing import HomeOutcome, HomeRequest, home_motors
from .probe import CA_TIMEOUT, UNREACHABLE, MotorStatus, read_statuses, refuse_if_homing, run_ca

PROG = "motion-box"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

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


# --- arguments ---------------------------------------------------------------------------
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


def _motor_names(document: ConfigDocument, motor_name: str | None) -> list[str]:
    motors = document.config.motors
    if motor_name is None or edits.is_all(motor_name):
        return list(motors)
    if motor_name not in motors:
        raise ConfigError(f"motor_name: there is no motor {motor_name!r} "
                          f"(motors: {document.names_text()})")
    return [motor_name]


def _positive(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value <= 0:
        raise click.BadParameter(f"must be more than 0 seconds, not {number(value)}",
                                 ctx=ctx, param=param)
    return value


def _live_statuses(document: ConfigDocument, names: list[str]) -> dict[str, MotorStatus]:
    return run_ca(read_statuses(document, names, CA_TIMEOUT))


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
    motor = edits.build_motor(pv_root, lo_lim, center, hi_lim)
    click.echo(edits.edit_config(json_path, edits.add_motor(json_path, motor_name, motor)))
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

    Refused while the IOC serving this file homes the motor.
    """
    motor = edits.build_motor(pv_root, lo_lim, center, hi_lim)
    edit = edits.change_motor(json_path, motor_name, motor)
    click.echo(edits.edit_config(json_path, edit, guard=refuse_if_homing))
    return EXIT_OK


@cli.command(context_settings=_CONTEXT)
@json_path_argument()
@motor_argument()
def remove(json_path: str, motor_name: str) -> int:
    """Remove a motor, or every motor with "all" (the general settings stay).

    \b
    json_path   the bench config (JSON or YAML)
    motor_name  the motor to remove, or all

    Refused while the IOC serving this file homes the motor (with "all": any motor).
    """
    edit = edits.remove_motor(json_path, motor_name)
    click.echo(edits.edit_config(json_path, edit, guard=refuse_if_homing))
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
               f"tolerance {number(bench.tolerance)}")
    return EXIT_OK


@cli.command("list", context_settings=_CONTEXT)
@json_path_argument()
@click.option("--offline", is_flag=True, help="Only the config; do not ask the bench.")
def list_command(json_path: str, offline: bool) -> int:
    """List the motors with their settings and live status."""
    document = config.load(json_path)
    motors = document.config.motors
    header = ["motor", "pv_root", "lo_lim", "center", "hi_lim"]
    rows = [[name, m.pv_root, number(m.lo_lim), number(m.center), number(m.hi_lim)]
            for name, m in motors.items()]
    if not offline:
        header.append("status")
        statuses = _live_statuses(document, list(motors))
        for row, name in zip(rows, motors, strict=True):
            row.append(statuses[name].summary)
    if not rows:
        click.echo(f"{json_path} has no motors (tolerance {number(document.config.tolerance)})")
        return EXIT_OK
    click.echo(format_table(header, rows))
    click.echo(f"tolerance {number(document.config.tolerance)}")
    return EXIT_OK


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
              callback=_positive, help="Seconds to wait for the motor records to connect.")
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
                          every_motor=edits.is_all(motor_name), direct=direct,
                          connect_timeout=connect_timeout, ca_timeout=CA_TIMEOUT)
    try:
        outcomes = run_ca(home_motors(request, display))
    finally:
        display.close()
    return report_homing(outcomes)


def report_homing(outcomes: dict[str, HomeOutcome]) -> int:
    """Each motor's end (the reason on stderr for those not homed); the exit code."""
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
    if isinstance(error, click.exceptions.NoArgsIsHelpError):  # no command at all
        group = error.ctx.command
        known = ", ".join(group.list_commands(error.ctx)) if isinstance(group, click.Group) \
            else ""
        return f"{where}: missing command (one of {known}; {PROG} help [command] says more)"
    if isinstance(error, click.MissingParameter) and error.param is not None:
        usage = " ".join(ctx.command.collect_usage_pieces(ctx)) if ctx else ""
        usage = usage.replace("[OPTIONS] ", "")
        return (f"{where}: missing argument {error.param.human_readable_name} "
                f"(usage: {where} {usage})")
    if isinstance(error, click.BadParameter) and error.param is not None:
        param = error.param
        name = param.opts[0] if isinstance(param, click.Option) else param.human_readable_name
        return f"{where}: {name}: {error.message}"
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
