"""Turn PV spec entries (spec.py) into pythonSoftIOC records.

The record shapes (fields, lengths, options) are decided here, in one place, for the
served IOC and for the db/ snapshot alike.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable, Mapping
from ctypes import addressof, c_char
from typing import Any

import numpy
from softioc import alarm, builder
from softioc import fields as dbf
from softioc.imports import db_put_field_process

from .spec import Command, Kind, Published, Pv

# Access security group of every writable record; configs/bench.acf names who may write.
WRITE_ASG = "BENCH_WRITE"

SEVERITY = {"MINOR": alarm.MINOR_ALARM, "MAJOR": alarm.MAJOR_ALARM,
            "INVALID": alarm.INVALID_ALARM}


def _initial(pv: Pv) -> Any:
    if pv.kind in (Kind.STRING_IN, Kind.STRING_OUT, Kind.LONG_STRING_IN,
                   Kind.LONG_STRING_OUT):
        return ""
    if pv.kind is Kind.WAVEFORM_IN:
        return None
    return 0


def make_record(
    pv: Pv,
    name: str,
    on_update: Callable | None = None,
    validate: Callable | None = None,
    initial: Any = None,
):
    """Create the record for one spec entry under its full name."""
    fields: dict[str, Any] = {"DESC": pv.desc[:40]}
    if pv.writable:
        fields["ASG"] = WRITE_ASG
        if on_update is not None:
            fields["on_update"] = on_update
        if validate is not None:
            fields["validate"] = validate
        if pv.blocking:
            fields["blocking"] = True
    value = _initial(pv) if initial is None else initial
    if value is not None:
        fields["initial_value"] = value
    kind = pv.kind
    if kind in (Kind.AI, Kind.AO):
        fields.update(EGU=pv.egu or None, PREC=pv.prec)
        if kind is Kind.AO:
            fields.update(DRVL=pv.low, DRVH=pv.high)
        return getattr(builder, kind.value)(name, **fields)
    if kind in (Kind.LONG_IN, Kind.LONG_OUT):
        if kind is Kind.LONG_OUT:
            fields.update(DRVL=pv.low, DRVH=pv.high)
        return getattr(builder, kind.value)(name, **fields)
    if kind in (Kind.BI, Kind.BO):
        znam, onam = pv.labels or ("No", "Yes")
        return getattr(builder, kind.value)(name, ZNAM=znam, ONAM=onam, **fields)
    if kind is Kind.ACTION:
        return builder.Action(name, ZNAM="", ONAM="Go", **fields)
    if kind in (Kind.MBB_IN, Kind.MBB_OUT):
        return getattr(builder, kind.value)(name, *pv.options, **fields)
    if kind in (Kind.STRING_IN, Kind.STRING_OUT):
        return getattr(builder, kind.value)(name, **fields)
    if kind in (Kind.LONG_STRING_IN, Kind.LONG_STRING_OUT):
        return getattr(builder, kind.value)(name, length=pv.length, **fields)
    if kind is Kind.WAVEFORM_IN:
        fields.pop("initial_value", None)
        if pv.dtype.startswith("float"):
            fields.update(EGU=pv.egu or None, PREC=pv.prec)
        return builder.WaveformIn(name, length=pv.length, datatype=pv.dtype,
                                  **fields)
    raise ValueError(f"no record shape for {kind}")


# A put-callback that reaches a record while it is still processing is held by EPICS and
# replayed when the record completes, and DISP is only checked at that replay. So a record
# that was busy accepts puts again only once it has finished processing (PACT=0) and no
# put-callback waits for its replay: EPICS hands the record to the first waiting one as
# processing ends (dbCommon's PPN, dbNotify.c restartCheck) and clears PPN once it has
# been refused. A fresh put is then accepted within a poll of the end, not 20 ms later.
PACT_POLL_S = 0.001
_disp_generation: dict[str, int] = {}
_pending: set[asyncio.Task] = set()


def set_put_disabled(record, disabled: bool) -> None:
    """Refuse (DISP=1) or, once the record is done, accept client puts on a record again.

    softioc's set_field() would process the record too, which for an Action runs its
    handler again; here DISP is written without processing.
    """
    generation = _disp_generation.get(record.name, 0) + 1
    _disp_generation[record.name] = generation
    if disabled:
        _write_disp(record.name, True)
        return
    if _settled(record):
        # not processing (busy because of another record, e.g. HomeAll): puts were
        # refused outright, none is held for a replay, so accept at once
        _write_disp(record.name, False)
        return
    task = asyncio.get_running_loop().create_task(_accept_when_done(record, generation))
    _pending.add(task)  # held until it ends (a task nobody holds can be collected)
    task.add_done_callback(_pending.discard)


def _settled(record) -> bool:
    """Done processing, and no held put-callback waits to be replayed."""
    fields = record._record  # softioc's view of the dbCommon struct (after iocInit)
    return not fields.PACT and not fields.PPN


async def _accept_when_done(record, generation: int) -> None:
    for _ in range(int(5 / PACT_POLL_S)):  # a handler still running: wait for its end
        if _settled(record):
            break
        await asyncio.sleep(PACT_POLL_S)
    if _disp_generation.get(record.name) == generation:  # not busy again meanwhile
        _write_disp(record.name, False)


def _write_disp(name: str, disabled: bool) -> None:
    _write_field(name, "DISP", "1" if disabled else "0")


def _write_field(name: str, field: str, text: str) -> None:
    """Write one field of a record without processing it (softioc's set_field() would
    process it: an out record would run its put handler)."""
    data = (c_char * 40)()
    data.value = text.encode()[:39]
    db_put_field_process(f"{name}.{field}", dbf.DBF_STRING, addressof(data), 1, False)


EGU_LENGTH = 15  # the EGU field holds 16 bytes, terminator included


def show_units(record, egu: str, prec: int) -> None:
    """Show a position record in the motor's units: its EGU and PREC (clients that read
    the record's properties, DBR_CTRL or a screen, see the change at once)."""
    _write_field(record.name, "EGU", egu[:EGU_LENGTH])
    _write_field(record.name, "PREC", str(int(prec)))


def flag_refused(record) -> None:
    """A put on this record was refused: show it as a MAJOR write alarm on the record
    (cleared by the next accepted value). Called from validate, so the alarm is set after
    the refused processing has finished, from the IOC's event loop."""

    def raise_alarm() -> None:
        record.set_alarm(alarm.MAJOR_ALARM, alarm.WRITE_ALARM)

    if _IOC_LOOP is None:
        raise_alarm()
    else:
        _IOC_LOOP.call_soon_threadsafe(raise_alarm)


def clear_alarm(record) -> None:
    """An accepted value: drop a refusal alarm left on the record (not for Actions,
    whose handler any processing would run)."""
    record.set_alarm(alarm.NO_ALARM, alarm.NO_ALARM)


_IOC_LOOP: asyncio.AbstractEventLoop | None = None


def use_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The IOC's asyncio loop, where record alarms are set from other threads."""
    global _IOC_LOOP
    _IOC_LOOP = loop


def message_severity(error: bool) -> int:
    return alarm.MAJOR_ALARM if error else alarm.NO_ALARM


def command_handler(target: object, command: Command) -> Callable:
    """The put handler of an Action whose spec entry says `binds=Command(verb, direction)`:
    it runs `target.<verb>(direction)` (the scope's binding), awaited if it is async."""
    action = getattr(target, command.verb)
    args = () if command.direction is None else (command.direction,)

    async def on_update(_value: Any) -> None:
        result = action(*args)
        if inspect.isawaitable(result):
            await result

    return on_update


def publish(entries: Iterable[Pv], record: Callable[[Pv], Any],
            values: Mapping[str, Any]) -> None:
    """Show values on the records whose spec entry publishes those fields
    (`binds=Published(field)`), text cut to what each record holds."""
    for pv in entries:
        if isinstance(pv.binds, Published) and pv.binds.field in values:
            value = values[pv.binds.field]
            if isinstance(value, str) and pv.text_length:
                value = value[: pv.text_length]
            set_if_changed(record(pv), value)


def set_if_changed(record: Any, value: Any) -> bool:
    """Process the record with value unless it already shows it; True if it did.

    Engines report whole snapshots (a homing's state, progress and message at every
    report; a scan's preview whenever a motor moves), most of whose fields did not
    change. Processing a record costs the loop its database work and every monitor's
    event, and a client learns nothing from an unchanged value: its TIME stays that of
    the last change, as with any EPICS record whose input did not change."""
    current = record.get()
    if isinstance(value, numpy.ndarray) or isinstance(current, numpy.ndarray):
        if numpy.array_equal(numpy.asarray(current), numpy.asarray(value)):
            return False
    elif current == value:
        return False
    record.set(value)
    return True
