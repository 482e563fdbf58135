"""motion-box's look at the running bench over CA: which IOC serves this config, the
live status of each motor, and whether a motor is homing before an edit.

Every IOC record is named from the PV spec (records/spec.py), never by a string here.
Every read waits at most `timeout` (1 s by default), so a bench that is off costs about
a second, never a hang.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aioca

from ... import ownership
from ...config import ConfigDocument, ConfigError
from ...facts.motorrecord import Msta
from ...records.spec import BenchRecords, MotorRecords, Pv
from .display import number

CA_TIMEOUT = 1.0  # an offline bench must still list quickly

FROM_IOC = "IOC"
FROM_MOTOR_RECORD = "motor record"
UNREACHABLE = "unreachable"
MOTOR_RECORD_FIELDS = ("RBV", "DMOV", "HLS", "LLS", "MSTA", "EGU")

T = TypeVar("T")


def run_ca(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one CA conversation on a fresh event loop and close its channels after."""
    try:
        return asyncio.run(coroutine)
    finally:
        aioca.purge_channel_caches()


# --- which IOC serves this config ---------------------------------------------------------
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
    served = await aioca.caget(BenchRecords.ConfigFile.full_name(prefix),
                               datatype=aioca.DBR_CHAR_STR, timeout=timeout, throw=False)
    if not served.ok:
        return IocProbe(prefix)
    return IocProbe(prefix, str(served), same_file(str(served), document.path))


# --- live status (list, status) -------------------------------------------------------------
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


async def _read_from_ioc(prefix: str, name: str, timeout: float) -> MotorStatus | None:
    def pv(record: Pv) -> str:
        return record.full_name(prefix, name)

    state, position, homed, last, message = await asyncio.gather(
        aioca.caget(pv(MotorRecords.State), datatype=str, timeout=timeout, throw=False),
        aioca.caget(pv(MotorRecords.Position), timeout=timeout, throw=False),
        aioca.caget(pv(MotorRecords.Homed), timeout=timeout, throw=False),
        aioca.caget(pv(MotorRecords.LastHomed), datatype=str, timeout=timeout, throw=False),
        aioca.caget(pv(MotorRecords.Message), datatype=aioca.DBR_CHAR_STR, timeout=timeout,
                    throw=False),
    )
    if not state.ok:  # a motor the IOC does not serve (yet): ask its record instead
        return None
    summary = str(state)
    if position.ok:
        summary += f" at {number(float(position))}"
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
    summary = f"{'moving' if moving else 'idle'} at {number(float(fields['RBV']))}{unit}"
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
        if msta & Msta.PROBLEM:
            flags.append("PROBLEM")
        if msta & Msta.COMM_ERR:
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


# --- no edit of a homing motor (change, remove) ---------------------------------------------
@dataclass
class HomingAnswer:
    """What the IOC at a prefix said about some motors' homing."""

    served: str | None = None  # its $(P)ConfigFile; None: it did not answer
    homing: list[str] = field(default_factory=list)  # $(P)$(M):Busy is 1
    silent: list[str] = field(default_factory=list)  # PVs that did not answer in time


async def ask_homing(prefix: str, motors: Sequence[str], timeout: float) -> HomingAnswer:
    """$(P)ConfigFile and $(P)Motors, then $(P)$(M):Busy of each of `motors` it serves
    (a motor added to the file after the IOC started is not served yet, so not homing)."""
    config_file, motor_list = await asyncio.gather(
        aioca.caget(BenchRecords.ConfigFile.full_name(prefix), datatype=aioca.DBR_CHAR_STR,
                    timeout=timeout, throw=False),
        aioca.caget(BenchRecords.Motors.full_name(prefix), datatype=aioca.DBR_CHAR_STR,
                    timeout=timeout, throw=False))
    if not config_file.ok:
        return HomingAnswer(silent=[BenchRecords.ConfigFile.full_name(prefix)])
    served = str(motor_list).split(",") if motor_list.ok else list(motors)
    asked = [motor for motor in motors if motor in served]
    names = [MotorRecords.Busy.full_name(prefix, motor) for motor in asked]
    busy = await aioca.caget(names, timeout=timeout, throw=False) if names else []
    answer = HomingAnswer(served=str(config_file))
    for motor, name, value in zip(asked, names, busy, strict=True):
        if not value.ok:
            answer.silent.append(name)
        elif int(value):
            answer.homing.append(motor)
    return answer


def refuse_if_homing(document: ConfigDocument, motors: Sequence[str],
                     timeout: float = CA_TIMEOUT) -> None:
    """Refuse (ConfigError, one line) an edit of `motors` while the IOC serving this file
    homes one of them, as the IOC refuses the same put; and when such an IOC runs but
    cannot be asked within `timeout`, since the edit could then land in a homing.

    Whether an IOC serves the file is the `.owner` lock beside it (ownership.py): no lock
    held, no CA at all, and the edit goes ahead as it always has."""
    path = document.path
    try:
        owner = ownership.owner(path)
    except OSError as error:
        raise ConfigError(f"cannot tell whether an IOC serves {path}: "
                          f"{ownership.owner_path(path)} cannot be read "
                          f"({error.strerror}); nothing written") from None
    if owner is None:
        return
    prefix = str(owner.get("prefix") or document.config.ioc.prefix)
    answer = run_ca(ask_homing(prefix, motors, timeout))
    which = f"{_names(motors)} {'is' if len(motors) == 1 else 'are'}"
    if answer.served is not None and not same_file(answer.served, path):
        raise ConfigError(f"cannot tell whether {which} homing: "
                          f"{ownership.describe(owner)} serves this file, but the IOC "
                          f"answering at {prefix} serves {answer.served}; nothing written")
    if answer.silent:
        raise ConfigError(f"cannot tell whether {which} homing: "
                          f"{ownership.describe(owner)} serves this file, but "
                          f"{', '.join(answer.silent)} did not answer within {timeout:g} s "
                          "(is that IOC in this shell's EPICS_CA_ADDR_LIST?); nothing "
                          "written")
    if answer.homing:
        homing = answer.homing
        if len(homing) == 1:
            abort = MotorRecords.Abort.full_name(prefix, homing[0])
            raise ConfigError(f"{homing[0]} is homing; abort it first ({abort}) or let it "
                              "end; nothing written")
        abort = BenchRecords.AbortAll.full_name(prefix)
        raise ConfigError(f"{_names(homing)} are homing; abort them first ({abort}) or let "
                          "them end; nothing written")


def _names(motors: Sequence[str]) -> str:
    return ", ".join(motors)
