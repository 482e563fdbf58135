"""`motion-box home`: through the IOC that serves this config (put-callback to its Home
records, its State/Progress/Message shown as they change), or, when none does (or with
--direct), with the IOC's own homing engine run here over CA.

Every IOC record is named from the PV spec (records/spec.py)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import dataclass
from typing import Any

import aioca

from ...config import ConfigDocument, ConfigError
from ...engines.homing.settings import HomingState, HomingUpdate
from ...records.spec import BenchRecords, MotorRecords, Pv, homing_label
from .display import ProgressDisplay
from .probe import find_ioc

HOMED = homing_label(HomingState.HOMED)


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


# --- through the IOC ----------------------------------------------------------------------
def _ioc_actions(prefix: str, request: HomeRequest) -> tuple[str, str]:
    """The record to put (with callback) and the one that aborts it."""
    hi = request.direction == "hi"
    if request.every_motor:
        home = BenchRecords.HomeAllHi if hi else BenchRecords.HomeAllLo
        return home.full_name(prefix), BenchRecords.AbortAll.full_name(prefix)
    motor = request.names[0]
    home = MotorRecords.HomeHi if hi else MotorRecords.HomeLo
    return home.full_name(prefix, motor), MotorRecords.Abort.full_name(prefix, motor)


async def _home_via_ioc(prefix: str, request: HomeRequest,
                        display: ProgressDisplay) -> dict[str, HomeOutcome]:
    action, abort = _ioc_actions(prefix, request)
    # Abort too, now: on Ctrl-C its put must not wait for a search.
    connected = await aioca.connect([action, abort], timeout=request.ca_timeout,
                                    throw=False)
    silent = next((result for result in connected if not result.ok), None)
    if silent is not None:
        return _all_failed(request, f"the IOC at {prefix} serves this config but "
                                    f"{silent.name} did not answer ({silent}); is the motor"
                                    " new to it?")
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
        sent = await aioca.caput(abort, 1, timeout=request.ca_timeout * 2, throw=False)
        if not sent.ok:
            display.note(f"{abort} could not be put ({sent}): the IOC may still be homing;"
                         " put 1 to it by hand")
        raise
    finally:
        for monitor in monitors:
            monitor.close()
    return await _ioc_outcomes(prefix, request)


def _all_failed(request: HomeRequest, reason: str) -> dict[str, HomeOutcome]:
    return {name: HomeOutcome(False, reason) for name in request.names}


# The IOC records that feed a motor's row: (record, row field, CA datatype, conversion)
_ROW_RECORDS: tuple[tuple[Pv, str, Any, Any], ...] = (
    (MotorRecords.State, "state", str, str),  # an enum, read as its label
    (MotorRecords.Progress, "progress", None, float),
    (MotorRecords.Message, "message", aioca.DBR_CHAR_STR, str),  # a long string
)


def _monitor_ioc_rows(prefix: str, names: list[str],
                      display: ProgressDisplay) -> tuple[list, list[asyncio.Event]]:
    """Monitors that feed the display; each event is set by its monitor's first value."""
    monitors, first_values = [], []
    for name in names:
        for record, keyword, datatype, convert in _ROW_RECORDS:
            seen = asyncio.Event()

            def show(value, name=name, keyword=keyword, convert=convert, seen=seen) -> None:
                seen.set()
                display.update(name, **{keyword: convert(value)})

            monitors.append(aioca.camonitor(record.full_name(prefix, name), show,
                                            datatype=datatype))
            first_values.append(seen)
    return monitors, first_values


async def _ioc_outcomes(prefix: str, request: HomeRequest) -> dict[str, HomeOutcome]:
    states, messages = await asyncio.gather(
        aioca.caget([MotorRecords.State.full_name(prefix, n) for n in request.names],
                    datatype=str, timeout=request.ca_timeout, throw=False),
        aioca.caget([MotorRecords.Message.full_name(prefix, n) for n in request.names],
                    datatype=aioca.DBR_CHAR_STR, timeout=request.ca_timeout, throw=False))
    outcomes = {}
    for name, state, message in zip(request.names, states, messages, strict=True):
        if not state.ok:
            outcomes[name] = HomeOutcome(
                False, f"the IOC did not report {MotorRecords.State.full_name(prefix, name)}")
        elif str(state) == HOMED:
            outcomes[name] = HomeOutcome(True, str(message) if message.ok else "")
        else:
            why = str(message) if message.ok and str(message) else "no message from the IOC"
            outcomes[name] = HomeOutcome(False, f"ended {state}: {why}")
    return outcomes


# --- with the engine, here ----------------------------------------------------------------
async def _home_with_engine(request: HomeRequest,
                            display: ProgressDisplay) -> dict[str, HomeOutcome]:
    # Imported here so that editing a config never loads the CA motor client.
    from ...clients.motor import EpicsMotor
    from ...engines import homing as engine
    from ...engines.motormodel import Direction

    bench = request.document.config
    motors = {n: EpicsMotor(n, bench.motors[n].pv_root, on_change=lambda _status: None)
              for n in request.names}
    try:
        outcomes = await _connect_motors(motors, request.connect_timeout, display)
        settings = engine.HomingSettings.from_config
        homings = {n: engine.MotorHoming(motors[n], functools.partial(settings, bench, n))
                   for n in motors if n not in outcomes}
        for name, homing in homings.items():
            homing.subscribe(functools.partial(show_update, display, name))
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


def _own_words(name: str, message: str) -> str:
    return message.removeprefix(f"{name}: ")


def show_update(display: ProgressDisplay, name: str, update: HomingUpdate) -> None:
    """An engine update on the motor's row, its state worded as the IOC's State shows it."""
    display.update(name, state=homing_label(update.state), progress=update.progress,
                   message=_own_words(name, update.message))
