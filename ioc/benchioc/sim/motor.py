"""The PV layer of one simulated motor: a caproto motor record over a `MotorSim`.

Thin on purpose: a putter takes the record lock, echoes the written value (as dbPut
posts it), hands the write to the physics and publishes what changed, in the order the
genuine record posts its monitors. One task per motor steps the physics through its
events (publishing after each, as each is a record processing of its own) and
publishes readbacks while the axis moves.

Put-callbacks follow EPICS: one put-callback per record at a time (a second one waits
for the first, whichever field it writes); a put-callback to a process-passive field
completes when the record is done (DMOV=1), which for a motion is its end, and its reply
goes out before the monitors of that last processing (it races them on the genuine IOC).
caproto runs every write in its own task, so a plain STOP is served while a VAL
put-callback waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from caproto import AlarmSeverity, AlarmStatus, ChannelType
from caproto._data import SkipWrite
from caproto.server import PVGroup, menus, pvproperty, records
from caproto.server.records import MotorFields
from caproto.server.server import (
    PvpropertyDouble,
    PvpropertyDoubleRO,
    PvpropertyEnum,
    PvpropertyInteger,
    PvpropertyIntegerRO,
)

from . import caproto_fixes
from .motion import MotorSim, MotorState

log = logging.getLogger(__name__)

# Readbacks while moving: every 25 ms of simulated time, but no more often than
# (a fast time scale must not flood two shared cores: 200 per real second at most).
READBACK_PERIOD_SIM = 0.025
READBACK_PERIOD_REAL_MIN = 0.005

RECORD_VERSION = 7.3  # VERS of the genuine record whose behaviour is copied
STEPS_PER_REV = 200  # SREV's default; UREV = MRES * SREV
SEVERITIES = menus.menuAlarmSevr.get_string_tuple()


class SimMotorFields(MotorFields):
    """caproto 1.3.0's motor record fields, typed and defaulted as motor R7-3's
    motorRecord.dbd has them (what a client sees with caget -d DBR_CTRL / cainfo)."""

    _record_type = "motor"
    # DBF_ULONG: Channel Access has no unsigned long, so these travel as DOUBLE.
    motor_status = pvproperty(name="MSTA", dtype=PvpropertyDoubleRO, value=0.0,
                              read_only=True, doc="Motor Status")
    monitor_mask = pvproperty(name="MMAP", dtype=PvpropertyDoubleRO, value=0.0,
                              read_only=True, doc="Monitor Mask")
    monitor_mask_more = pvproperty(name="NMAP", dtype=PvpropertyDoubleRO, value=0.0,
                                   read_only=True, doc="Monitor Mask (more)")
    # DBF_USHORT: travels as LONG.
    motion_in_progress = pvproperty(name="MIP", dtype=PvpropertyIntegerRO, value=0,
                                    read_only=True, doc="Motion In Progress")
    ntm_deadband_factor = pvproperty(name="NTMF", dtype=PvpropertyInteger, value=2,
                                     doc="NTM Deadband Factor")
    # The record's alarm severities default to NO_ALARM (caproto's mixin: MINOR/MAJOR).
    hihi_severity = pvproperty(name="HHSV", dtype=ChannelType.ENUM, enum_strings=SEVERITIES,
                               value=SEVERITIES[0], doc="Hihi Severity")
    lolo_severity = pvproperty(name="LLSV", dtype=ChannelType.ENUM, enum_strings=SEVERITIES,
                               value=SEVERITIES[0], doc="Lolo Severity")
    high_severity = pvproperty(name="HSV", dtype=ChannelType.ENUM, enum_strings=SEVERITIES,
                               value=SEVERITIES[0], doc="High Severity")
    low_severity = pvproperty(name="LSV", dtype=ChannelType.ENUM, enum_strings=SEVERITIES,
                              value=SEVERITIES[0], doc="Low Severity")
    # Fields newer than caproto's record definition.
    accel_egu = pvproperty(name="ACCS", dtype=PvpropertyDouble, doc="Move Accel. (EGU/s^2)")
    accel_used = pvproperty(name="ACCU", dtype=PvpropertyEnum,
                            enum_strings=("Use ACCL", "Use ACCS"), value="Use ACCL",
                            doc="ACCL or ACCS used")
    raw_high_limit = pvproperty(name="RHLM", dtype=PvpropertyDoubleRO, read_only=True,
                                doc="Raw High Limit")
    raw_low_limit = pvproperty(name="RLLM", dtype=PvpropertyDoubleRO, read_only=True,
                               doc="Raw Low Limit")
    restore_mode = pvproperty(name="RSTM", dtype=PvpropertyEnum,
                              enum_strings=("Never", "Always", "NearZero", "Conditional"),
                              value="NearZero", doc="Restore Mode")


# Every record named "motor" in this process (the simulated bench's own) gets these
# fields; pvproperty(record=<class>) would report the class name as RTYP.
records.records["motor"] = SimMotorFields

# MotorState field -> field attribute, in the order motorRecord.cc's monitor() posts
# them (readbacks and MSTA first, DMOV after MOVN, the buttons last). SYNC, TWF and TWR
# are cleared and posted by do_work() before that; settings (changed by their own put,
# or clamped by the physics) come last. "val" is the record itself.
FIELD_ATTRS: dict[str, str] = {
    "sync": "sync_position",
    "twf": "tweak_motor_forward",
    "twr": "tweak_motor_reverse",
    "rbv": "user_readback_value",
    "rrbv": "raw_readback_value",
    "drbv": "dial_readback_value",
    "diff": "difference_dval_drbv",
    "msta": "motor_status",
    "val": "",
    "dval": "dial_desired_value",
    "tdir": "direction_of_travel",
    "mip": "motion_in_progress",
    "hlm": "user_high_limit",
    "llm": "user_low_limit",
    "spmg": "stop_pause_move_go",
    "rcnt": "retry_count",
    "off": "user_offset",
    "dhlm": "dial_high_limit",
    "dllm": "dial_low_limit",
    "hls": "user_high_limit_switch",
    "rhls": "raw_high_limit_switch",
    "lls": "user_low_limit_switch",
    "rlls": "raw_low_limit_switch",
    "athm": "at_home",
    "mres": "motor_step_size",
    "lvio": "limit_violation",
    "stop": "stop",
    "velo": "velocity",
    "miss": "ran_out_of_retries",
    "movn": "motor_is_moving",
    "dmov": "done_moving_to_value",
    "jogf": "jog_motor_forward",
    "jogr": "jog_motor_reverse",
    "homf": "home_forward",
    "homr": "home_reverse",
    "dir": "user_direction",
    "set": "set_use_switch",
    "foff": "offset_freeze_switch",
    "cnen": "enable_control",
    "jvel": "jog_velocity",
    "hvel": "home_velocity",
    "accl": "seconds_to_velocity",
    "vmax": "max_velocity",
    "rdbd": "retry_deadband",
    "rhlm": "raw_high_limit",
    "rllm": "raw_low_limit",
}
NAME_OF_ATTR = {attr: name for name, attr in FIELD_ATTRS.items()}
ENUM_FIELDS = {"dir", "set", "foff", "spmg", "cnen"}
# The controller's status as the record shows it: a command's own processing does not
# show it changed yet; the controller's callback that follows does (the timer's next
# publish). A command that follows at once meets the record as it was (MOVN still 0).
STATUS_FIELDS = {"msta", "tdir", "hls", "rhls", "lls", "rlls", "athm", "movn"}
# motorRecord.cc get_units(): units other than EGU.
UNITS = {
    "velocity": "{egu}/sec", "max_velocity": "{egu}/sec", "bl_velocity": "{egu}/sec",
    "base_velocity": "{egu}/sec", "jog_velocity": "{egu}/sec", "home_velocity": "{egu}/sec",
    "jog_accel": "{egu}/s/s", "seconds_to_velocity": "sec", "bl_seconds_to_velocity": "sec",
    "speed": "rev/sec", "base_speed": "rev/sec", "bl_speed": "rev/sec",
    "steps_per_revolution": "steps/rev", "egu_s_per_revolution": "{egu}/rev",
}


class SimClock:
    """Simulated seconds: real monotonic time times the time scale."""

    def __init__(self, time_scale: float):
        if not time_scale > 0:
            raise ValueError(f"the time scale must be above 0, not {time_scale:g}")
        self.time_scale = time_scale
        self._origin = time.monotonic()

    def __call__(self) -> float:
        return (time.monotonic() - self._origin) * self.time_scale

    def to_real(self, sim_seconds: float) -> float:
        return sim_seconds / self.time_scale


def _enum_index(instance, value: Any) -> int:
    if isinstance(value, str):
        return list(instance.enum_strings).index(value)
    return int(value)


Action = Callable[["MotorGroup", Any], object]


def _field_putter(action: Action, *, pp: bool = True, drive: bool = False,
                  enum: bool = False):
    """A field putter: the write goes through MotorGroup.put (echo, physics, publish,
    put-callback completion). `pp`: the field is process-passive (its put-callback
    waits for DMOV=1); `drive`: a drive field (VAL, DVAL, RLV, TWF, TWR), for which the
    record blinks DMOV before processing."""

    async def putter(fields, instance, value):
        group: MotorGroup = fields.parent.group
        value = _enum_index(instance, value) if enum else value
        await group.put(instance, value, action, pp=pp, drive=drive)
        raise SkipWrite()

    return putter


def _trigger(method: Callable[[MotorSim], object]) -> Action:
    """An action for a trigger field (STOP, SYNC): runs only on a non-zero write."""
    return lambda group, value: method(group.physics) if value else None


def _set_mres(group: MotorGroup, value: Any) -> None:
    if float(value) <= 0:
        raise ValueError(f"MRES must be above 0, not {float(value):g}")
    group.physics.mres = float(value)
    group.physics.set_rdbd(group.physics.rdbd)


class MotorGroup(PVGroup):
    """A motor record at `prefix` (the motor's pv_root) plus fault knobs under it.

    Fault knobs (simulation only, all at `<pv_root>:Sim:`):
    StallAt (ao, user units, NaN = off), BrokenSwitch (None/High/Low, user sense),
    AmpFault, CommError, IgnoreStop (bo Off/On).
    """

    motor = pvproperty(value=0.0, name="", record="motor", precision=3)

    stall_at = pvproperty(value=math.nan, name=":Sim:StallAt", alarm_group="sim",
                          doc="Stall at this user position (NaN: off)")
    broken_switch = pvproperty(value="None", name=":Sim:BrokenSwitch", alarm_group="sim",
                               dtype=ChannelType.ENUM, enum_strings=("None", "High", "Low"),
                               doc="This limit switch (user sense) never asserts")
    amp_fault = pvproperty(value=False, name=":Sim:AmpFault", alarm_group="sim",
                           doc="Amplifier fault: PROBLEM bit, motion stops and is refused")
    comm_error = pvproperty(value=False, name=":Sim:CommError", alarm_group="sim",
                            doc="Controller communication lost: readbacks freeze")
    ignore_stop = pvproperty(value=False, name=":Sim:IgnoreStop", alarm_group="sim",
                             doc="The controller ignores STOP")

    def __init__(self, *args, physics: MotorSim, clock: SimClock, **kwargs):
        super().__init__(*args, **kwargs)
        self.physics = physics
        self.clock = clock
        self._lock = asyncio.Lock()  # the record lock (dbScanLock)
        self._notify_lock = asyncio.Lock()  # one put-callback per record (dbNotify)
        self._wake = asyncio.Event()
        self._published: dict[str, Any] = {}
        self._published_at = -math.inf
        self._status_due: float | None = None  # a command's controller callback, to post
        self._done_waiters: list[asyncio.Future] = []
        self.ca_context = None  # set by the server

    # --- the motor record (VAL and fields) -----------------------------------------------
    @motor.putter
    async def motor(self, instance, value):
        await self.put(None, value, lambda g, v: g.physics.move_user(float(v)), pp=True,
                       drive=True)
        raise SkipWrite()

    @motor.startup
    async def motor(self, instance, async_lib):
        await self._configure_display()
        async with self._lock:
            await self._publish(force=True)
        await self._run_timer()

    motor.fields.dial_desired_value.putter(
        _field_putter(lambda g, v: g.physics.move_dial(float(v)), drive=True))
    motor.fields.relative_value.putter(_field_putter(
        lambda g, v: g.physics.move_user(g.physics.val + float(v)) if float(v) else None,
        drive=True))
    motor.fields.tweak_motor_forward.putter(_field_putter(
        lambda g, v: g.physics.move_user(g.physics.val + g.twv) if v else None, drive=True))
    motor.fields.tweak_motor_reverse.putter(_field_putter(
        lambda g, v: g.physics.move_user(g.physics.val - g.twv) if v else None, drive=True))
    motor.fields.jog_motor_forward.putter(
        _field_putter(lambda g, v: g.physics.jog(True, bool(v))))
    motor.fields.jog_motor_reverse.putter(
        _field_putter(lambda g, v: g.physics.jog(False, bool(v))))
    motor.fields.home_forward.putter(
        _field_putter(lambda g, v: g.physics.home(True) if v else None))
    motor.fields.home_reverse.putter(
        _field_putter(lambda g, v: g.physics.home(False) if v else None))
    motor.fields.stop.putter(_field_putter(_trigger(MotorSim.stop)))
    motor.fields.sync_position.putter(_field_putter(_trigger(MotorSim.sync)))
    motor.fields.stop_pause_move_go.putter(
        _field_putter(lambda g, v: g.physics.set_spmg(v), enum=True))
    motor.fields.enable_control.putter(
        _field_putter(lambda g, v: g.physics.set_cnen(bool(v)), enum=True))
    motor.fields.set_use_switch.putter(
        _field_putter(lambda g, v: setattr(g.physics, "set_mode", v), pp=False, enum=True))
    motor.fields.offset_freeze_switch.putter(
        _field_putter(lambda g, v: setattr(g.physics, "foff", v), pp=False, enum=True))
    motor.fields.user_direction.putter(
        _field_putter(lambda g, v: g.physics.set_dir(v), enum=True))
    motor.fields.user_offset.putter(_field_putter(lambda g, v: g.physics.set_offset(v)))
    motor.fields.user_high_limit.putter(_field_putter(lambda g, v: g.physics.set_hlm(v)))
    motor.fields.user_low_limit.putter(_field_putter(lambda g, v: g.physics.set_llm(v)))
    motor.fields.dial_high_limit.putter(
        _field_putter(lambda g, v: setattr(g.physics, "dhlm", float(v))))
    motor.fields.dial_low_limit.putter(
        _field_putter(lambda g, v: setattr(g.physics, "dllm", float(v))))
    motor.fields.hw_limit_violation_svr.putter(
        _field_putter(lambda g, v: setattr(g.physics, "hlsv", v), enum=True))
    motor.fields.velocity.putter(
        _field_putter(lambda g, v: g.physics.set_velo(float(v)), pp=False))
    motor.fields.max_velocity.putter(
        _field_putter(lambda g, v: g.physics.set_vmax(float(v)), pp=False))
    motor.fields.jog_velocity.putter(
        _field_putter(lambda g, v: setattr(g.physics, "jvel", float(v)), pp=False))
    motor.fields.home_velocity.putter(
        _field_putter(lambda g, v: setattr(g.physics, "hvel", float(v)), pp=False))
    motor.fields.seconds_to_velocity.putter(_field_putter(
        lambda g, v: setattr(g.physics, "accl", max(float(v), 0.0)), pp=False))
    motor.fields.retry_deadband.putter(
        _field_putter(lambda g, v: g.physics.set_rdbd(float(v)), pp=False))
    motor.fields.max_retry_count.putter(
        _field_putter(lambda g, v: setattr(g.physics, "rtry", max(int(v), 0)), pp=False))
    motor.fields.new_target_monitor.putter(
        _field_putter(lambda g, v: setattr(g.physics, "ntm", bool(v)), pp=False, enum=True))
    motor.fields.motor_step_size.putter(_field_putter(_set_mres))

    # --- fault knobs ---------------------------------------------------------------------
    @stall_at.putter
    async def stall_at(self, instance, value):
        await self.command(lambda: self.physics.set_stall_at(float(value)))

    @broken_switch.putter
    async def broken_switch(self, instance, value):
        await self.command(lambda: self.physics.set_broken(_enum_index(instance, value)))

    @amp_fault.putter
    async def amp_fault(self, instance, value):
        await self.command(lambda: self.physics.set_amp_fault(_enum_index(instance, value)
                                                              == 1))

    @comm_error.putter
    async def comm_error(self, instance, value):
        await self.command(lambda: self.physics.set_comm_error(_enum_index(instance, value)
                                                               == 1))

    @ignore_stop.putter
    async def ignore_stop(self, instance, value):
        await self.command(lambda: setattr(self.physics, "ignore_stop",
                                           _enum_index(instance, value) == 1))

    # --- machinery -----------------------------------------------------------------------
    @property
    def fields(self):
        return self.motor.field_inst

    @property
    def twv(self) -> float:
        return float(self.fields.tweak_step_size.value)

    async def put(self, channel, value: Any, action: Action, *, pp: bool,
                  drive: bool) -> None:
        """One CA write to the record: `channel` is the field written (None: VAL)."""
        callback = caproto_fixes.is_put_callback()
        if callback:
            await self._notify_lock.acquire()  # behind any put-callback still pending
        try:
            waiter = None
            async with self._lock:
                now = await self._catch_up()
                if drive and self._published.get("dmov", 1):
                    await self._write_dmov(0)  # special(): DMOV blinks first
                if channel is not None:
                    await self._echo(channel, value)
                self.physics.record_movn = self._published.get("movn", 0)
                with self.physics.at(now):
                    action(self, value)
                await self._publish(now, command=True)
                if self._status_due is None:
                    self._status_due = now
                if callback and pp and not self._published.get("dmov", 1):
                    waiter = asyncio.get_running_loop().create_future()
                    self._done_waiters.append(waiter)
            self._wake.set()
            if waiter is not None:
                await waiter
        finally:
            if callback:
                self._notify_lock.release()

    async def command(self, action: Callable[[], object]) -> None:
        """A fault knob: applied to the physics, published (no put-callback semantics)."""
        async with self._lock:
            now = await self._catch_up()
            with self.physics.at(now):
                action()
            await self._publish(now)
        self._wake.set()

    async def _echo(self, channel, value: Any) -> None:
        """dbPut posts the new value of a field (other than VAL) before processing."""
        name = NAME_OF_ATTR.get(channel.pvspec.attr)
        enum_strings = getattr(channel, "enum_strings", None)
        wire = enum_strings[value] if enum_strings and isinstance(value, int) else value
        await channel.write(wire, verify_value=False)
        if name is not None:
            self._published[name] = value

    async def _catch_up(self) -> float:
        """Process the events due by now, publishing after each (each is a processing of
        the record, shown as it was at its time); returns now."""
        now = self.clock()
        while True:
            due = self.physics.next_event_time()
            if due is None or due > now or not self.physics.step(now):
                return now
            await self._publish(due)

    async def _run_timer(self) -> None:
        """Step the physics through its events and publish readbacks while it moves."""
        while True:
            async with self._lock:
                self._wake.clear()
                if self._status_due is not None:
                    # The controller's answer to the last command, as at that command
                    # (accepted, not done, not yet moving); readbacks follow.
                    await self._publish(self._status_due, only=STATUS_FIELDS)
                    self._status_due = None
                now = await self._catch_up()
                await self._publish(now)
                timeout = self._sleep_after(now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _sleep_after(self, now: float) -> float | None:
        """Real seconds until the next event or readback tick (None: until a command)."""
        candidates = []
        event = self.physics.next_event_time()
        if event is not None:
            candidates.append(max(event - now, 0.0))
        if self.physics.is_moving(now):
            candidates.append(max(READBACK_PERIOD_SIM,
                                  READBACK_PERIOD_REAL_MIN * self.clock.time_scale))
        return self.clock.to_real(min(candidates)) if candidates else None

    async def _publish(self, t: float | None = None, *, force: bool = False,
                       command: bool = False, only: set[str] | None = None) -> None:
        """Post what changed since the last publish. `command`: the record's processing
        of a command; the controller status it changed is left to the timer's publish
        (the controller's callback), which the command wakes."""
        t = self.clock() if t is None else t
        if only is None:
            t = max(t, self._published_at)  # readbacks never step back in time
            self._published_at = t
        state = self.physics.snapshot(t)
        published = self._published
        changed = [name for name in FIELD_ATTRS
                   if (only is None or name in only) and
                   (force or published.get(name) != getattr(state, name))]
        if self.physics.waiting_for_go and not force:
            changed = [name for name in changed if name != "dval"]
        if state.dmov == 1 and published.get("dmov") == 0:
            # The record is done: put-callbacks complete now, their replies ahead of
            # this processing's monitors (as rsrv's often are).
            self._complete_waiters()
        await self._publish_alarm(state, force)
        if command:
            changed = [n for n in changed if n not in STATUS_FIELDS]
        for name in changed:
            await self._write_field(name, getattr(state, name))

    async def _write_field(self, name: str, value: Any) -> None:
        if name == "val":
            await self.motor.write(value, verify_value=False)
        elif name == "dmov":
            await self._write_dmov(value)
            return
        else:
            prop = getattr(self.fields, FIELD_ATTRS[name])
            if name in ENUM_FIELDS:
                wire = prop.enum_strings[value]
            elif name == "msta":
                wire = float(value)
            else:
                wire = value
            await prop.write(wire, verify_value=False)
        self._published[name] = value

    async def _write_dmov(self, value: int) -> None:
        if value == 1:
            self._complete_waiters()
        await self.fields.done_moving_to_value.write(value, verify_value=False)
        self._published["dmov"] = value

    def _complete_waiters(self) -> None:
        waiters, self._done_waiters = self._done_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _publish_alarm(self, state: MotorState, force: bool) -> None:
        alarm = (state.severity, state.status)
        if not force and self._published.get("alarm") == alarm:
            return
        self._published["alarm"] = alarm
        for channel in (self.motor, self.fields.user_readback_value):
            await channel.alarm.write(severity=AlarmSeverity(state.severity),
                                      status=AlarmStatus(state.status))

    async def _configure_display(self) -> None:
        """Metadata and the static fields a client reads, as the genuine record has them
        (units per motorRecord.cc get_units(), derived speeds, VERS, UDF)."""
        params, physics = self.physics.params, self.physics
        precision, egu = params.prec, params.egu
        await self.motor.write_metadata(precision=precision, units=egu)
        for attr, prop in self._field_props():
            metadata: dict[str, Any] = {}
            if hasattr(prop, "precision"):
                metadata["precision"] = precision
            if hasattr(prop, "units"):
                # DBR units hold 8 bytes with the NUL: "steps/rev" arrives as "steps/r"
                metadata["units"] = UNITS.get(attr, "{egu}").format(egu=egu)[:7]
            if metadata:
                await prop.write_metadata(**metadata)
        fields = self.fields
        urev = physics.mres * STEPS_PER_REV
        accel = physics.velo / physics.accl if physics.accl > 0 else 0.0
        static = {
            "engineering_units": egu,
            # the PREC field itself, not only the channels' metadata: clients read it
            "display_precision": precision,
            "tweak_step_size": 1.0,
            "jog_accel": physics.jvel / max(physics.accl, 1e-3),
            "accel_egu": accel,
            "encoder_step_size": physics.mres,
            "egu_s_per_revolution": urev,
            "speed": physics.velo / urev,
            "max_speed": physics.vmax / urev,
            "bl_velocity": physics.velo,
            "bl_speed": physics.velo / urev,
            "bl_seconds_to_velocity": physics.accl,
            "code_version": RECORD_VERSION,
        }
        if params.desc:
            static["description"] = params.desc
        for attr, value in static.items():
            await getattr(fields, attr).write(value, verify_value=False)
        for attr in ("output_specification", "readback_location", "desired_output_loc",
                     "readback_outlink", "stop_outlink", "dmov_input_link", "rmp_input_link"):
            await getattr(fields, attr).write("", verify_value=False)  # links: empty
        # UDF is a one-byte CHAR field; caproto strips a written zero byte, so the value
        # is set as stored data (the record is defined: UDF 0, as on the genuine IOC).
        fields.undefined._data["value"] = b"\x00"
        for attr, precision in (("code_version", 2), ("motor_status", 0),
                                ("monitor_mask", 0), ("monitor_mask_more", 0)):
            await getattr(fields, attr).write_metadata(precision=precision)

    def _field_props(self):
        for attr in dir(type(self.fields)):
            prop = getattr(self.fields, attr, None)
            if hasattr(prop, "write_metadata") and hasattr(prop, "pvspec"):
                yield attr, prop
