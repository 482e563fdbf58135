"""Turn PV spec entries (pvs.py) into pythonSoftIOC records.

Kept apart from ioc.py so that the record shapes (fields, lengths, options) are decided
in one place for the served IOC and for the db/ snapshot alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from softioc import alarm, builder

from .pvs import Kind, Pv

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
        return builder.WaveformIn(name, length=pv.length, datatype=pv.dtype,
                                  **fields)
    raise ValueError(f"no record shape for {kind}")


def set_put_disabled(record, disabled: bool) -> None:
    """Refuse (DISP=1) or accept client puts on a record, without processing it.

    softioc's set_field() processes the record too, which for an Action would run its
    handler again; a busy Home* must refuse further puts, not queue or re-run them.
    """
    from ctypes import addressof, c_char

    from softioc import fields as dbf
    from softioc.imports import db_put_field_process

    data = (c_char * 40)()
    data.value = b"1" if disabled else b"0"
    db_put_field_process(f"{record.name}.DISP", dbf.DBF_STRING, addressof(data), 1, False)


def message_severity(error: bool) -> int:
    return alarm.MAJOR_ALARM if error else alarm.NO_ALARM
