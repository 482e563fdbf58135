"""The PV layer of one simulated motor: a caproto motor record over a `MotorSim`.

Thin on purpose: putters hand the write to the physics under a lock, then publish what
changed; one task per motor advances the physics on a timer at its next exact event and
at a readback rate while the axis moves. Writes that start a motion complete (put-callback)
when DMOV returns to 1; caproto runs every write in its own task, so a STOP from the same
client is still processed while a VAL put-callback is pending.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from caproto import AlarmSeverity, AlarmStatus, ChannelType
from caproto._data import SkipWrite
from caproto.server import PVGroup, pvproperty

from . import caproto_fixes
from .motion import MotorSim, MotorState, Result

log = logging.getLogger(__name__)

# Readbacks while moving: every 25 ms of simulated time, but no more often than
# (a fast time scale must not flood two shared cores: 200 per real second at most).
READBACK_PERIOD_SIM = 0.025
READBACK_PERIOD_REAL_MIN = 0.005

# MotorState field -> caproto MotorFields attribute, in publishing order: positions first,
# then switches and status, then settings. DMOV is handled apart (first when it drops,
# last when it rises), and VAL is the record itself.
FIELD_ATTRS: dict[str, str] = {
    "drbv": "dial_readback_value",
    "rbv": "user_readback_value",
    "rrbv": "raw_readback_value",
    "diff": "difference_dval_drbv",
    "rhls": "raw_high_limit_switch",
    "rlls": "raw_low_limit_switch",
    "hls": "user_high_limit_switch",
    "lls": "user_low_limit_switch",
    "tdir": "direction_of_travel",
    "athm": "at_home",
    "msta": "motor_status",
    "movn": "motor_is_moving",
    "lvio": "limit_violation",
    "dval": "dial_desired_value",
    "off": "user_offset",
    "dir": "user_direction",
    "set": "set_use_switch",
    "foff": "offset_freeze_switch",
    "dhlm": "dial_high_limit",
    "dllm": "dial_low_limit",
    "hlm": "user_high_limit",
    "llm": "user_low_limit",
    "jogf": "jog_motor_forward",
    "jogr": "jog_motor_reverse",
    "homf": "home_forward",
    "homr": "home_reverse",
    "spmg": "stop_pause_move_go",
    "cnen": "enable_control",
    "velo": "velocity",
    "jvel": "jog_velocity",
    "hvel": "home_velocity",
    "accl": "seconds_to_velocity",
    "vmax": "max_velocity",
    "mres": "motor_step_size",
}
ENUM_FIELDS = {"dir", "set", "foff", "spmg", "cnen"}


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


def _field_putter(action: Callable[[MotorGroup, Any], Result | None], *, wait: bool = False,
                  enum: bool = False):
    """A field putter that runs `action(group, value)` on the physics, publishes, and (for
    motions) completes when the motion ends. The published snapshot holds the field's
    new value, so caproto's own store is skipped."""

    async def putter(fields, instance, value):
        group: MotorGroup = fields.parent.group
        value = _enum_index(instance, value) if enum else value
        await group.command(lambda: action(group, value), wait=wait)
        raise SkipWrite()

    return putter


def _on(flag_action: Callable[[MotorSim], Result | None]):
    """An action for a trigger field (STOP, SYNC): runs only on a non-zero write."""
    return lambda group, value: flag_action(group.physics) if value else None


def _set_mres(group: MotorGroup, value: Any) -> None:
    if float(value) <= 0:
        raise ValueError(f"MRES must be above 0, not {float(value):g}")
    group.physics.mres = float(value)


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
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._published: dict[str, Any] = {}
        self._done_waiters: list[asyncio.Future] = []
        self.ca_context = None  # set by the server: lets put-callback replies follow updates

    # --- the motor record (VAL and fields) -----------------------------------------------
    @motor.putter
    async def motor(self, instance, value):
        await self.command(lambda: self.physics.move_user(float(value)), wait=True)
        raise SkipWrite()

    @motor.startup
    async def motor(self, instance, async_lib):
        await self._configure_display()
        async with self._lock:
            await self._publish(force=True)
        await self._run_timer()

    motor.fields.dial_desired_value.putter(
        _field_putter(lambda g, v: g.physics.move_dial(float(v)), wait=True))
    motor.fields.relative_value.putter(
        _field_putter(lambda g, v: g.physics.move_user(g.physics.val + float(v)), wait=True))
    motor.fields.tweak_motor_forward.putter(_field_putter(
        lambda g, v: g.physics.move_user(g.physics.val + g.twv) if v else None, wait=True))
    motor.fields.tweak_motor_reverse.putter(_field_putter(
        lambda g, v: g.physics.move_user(g.physics.val - g.twv) if v else None, wait=True))
    motor.fields.jog_motor_forward.putter(
        _field_putter(lambda g, v: g.physics.jog(True, bool(v)), wait=True))
    motor.fields.jog_motor_reverse.putter(
        _field_putter(lambda g, v: g.physics.jog(False, bool(v)), wait=True))
    motor.fields.home_forward.putter(
        _field_putter(lambda g, v: g.physics.home(True) if v else None, wait=True))
    motor.fields.home_reverse.putter(
        _field_putter(lambda g, v: g.physics.home(False) if v else None, wait=True))
    motor.fields.stop.putter(_field_putter(_on(MotorSim.stop)))
    motor.fields.sync_position.putter(_field_putter(_on(MotorSim.sync)))
    motor.fields.stop_pause_move_go.putter(
        _field_putter(lambda g, v: g.physics.set_spmg(v), wait=True, enum=True))
    motor.fields.enable_control.putter(
        _field_putter(lambda g, v: g.physics.set_cnen(bool(v)), enum=True))
    motor.fields.set_use_switch.putter(
        _field_putter(lambda g, v: setattr(g.physics, "set_mode", v), enum=True))
    motor.fields.offset_freeze_switch.putter(
        _field_putter(lambda g, v: setattr(g.physics, "foff", v), enum=True))
    motor.fields.user_direction.putter(
        _field_putter(lambda g, v: g.physics.set_dir(v), enum=True))
    motor.fields.user_offset.putter(_field_putter(lambda g, v: g.physics.set_offset(v)))
    motor.fields.user_high_limit.putter(_field_putter(lambda g, v: g.physics.set_hlm(v)))
    motor.fields.user_low_limit.putter(_field_putter(lambda g, v: g.physics.set_llm(v)))
    motor.fields.dial_high_limit.putter(
        _field_putter(lambda g, v: setattr(g.physics, "dhlm", float(v))))
    motor.fields.dial_low_limit.putter(
        _field_putter(lambda g, v: setattr(g.physics, "dllm", float(v))))
    motor.fields.velocity.putter(_field_putter(lambda g, v: g.physics.set_velo(float(v))))
    motor.fields.max_velocity.putter(_field_putter(lambda g, v: g.physics.set_vmax(float(v))))
    motor.fields.jog_velocity.putter(
        _field_putter(lambda g, v: setattr(g.physics, "jvel", float(v))))
    motor.fields.home_velocity.putter(
        _field_putter(lambda g, v: setattr(g.physics, "hvel", float(v))))
    motor.fields.seconds_to_velocity.putter(
        _field_putter(lambda g, v: setattr(g.physics, "accl", max(float(v), 0.0))))
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

    async def command(self, action: Callable[[], Result | None], *, wait: bool = False) -> None:
        """Apply one client command to the physics and publish; with `wait`, return only
        when a motion it started has ended (DMOV back to 1)."""
        waiter = None
        async with self._lock:
            result = action()
            if result is Result.REFUSED and self._published.get("dmov", 1):
                await self._write_dmov(0)  # the genuine record processes, then is done
            await self._publish()
            if wait and result is Result.STARTED and not self._published.get("dmov", 1):
                waiter = asyncio.get_running_loop().create_future()
                self._done_waiters.append(waiter)
        self._wake.set()
        if waiter is not None:
            await waiter
        if wait and self.ca_context is not None:
            await caproto_fixes.flush_updates(self.ca_context)

    async def _run_timer(self) -> None:
        """Advance the physics at its next exact event, and at a readback rate in motion."""
        while True:
            async with self._lock:
                self._wake.clear()
                now = self.clock()
                self.physics.advance(now)
                await self._publish(now)
                timeout = self._sleep_after(now)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

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

    async def _publish(self, now: float | None = None, force: bool = False) -> None:
        state = self.physics.snapshot(now)
        published = self._published
        if force or state.dmov == 0 and published.get("dmov") != 0:
            await self._write_dmov(state.dmov)
        await self._publish_alarm(state, force)
        for name, attr in FIELD_ATTRS.items():
            value = getattr(state, name)
            if force or published.get(name) != value:
                await self._write_field(name, attr, value)
        if force or published.get("val") != state.val:
            await self.motor.write(state.val, verify_value=False)
            published["val"] = state.val
        if state.dmov == 1 and published.get("dmov") != 1:
            await self._write_dmov(1)

    async def _write_field(self, name: str, attr: str, value: Any) -> None:
        prop = getattr(self.fields, attr)
        wire = prop.enum_strings[value] if name in ENUM_FIELDS else value
        await prop.write(wire, verify_value=False)
        self._published[name] = value

    async def _write_dmov(self, value: int) -> None:
        await self.fields.done_moving_to_value.write(value, verify_value=False)
        self._published["dmov"] = value
        if value == 1:
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
        params = self.physics.params
        precision, units = params.prec, params.egu
        await self.motor.write_metadata(precision=precision, units=units)
        for prop in self.fields.pvdb.values():
            if hasattr(prop, "precision"):
                await prop.write_metadata(precision=precision, units=units)
        await self.fields.engineering_units.write(units, verify_value=False)
        # the PREC field itself, not only the channels' metadata: clients read it
        await self.fields.display_precision.write(precision, verify_value=False)
        if params.desc:
            await self.fields.description.write(params.desc, verify_value=False)
        await self.fields.tweak_step_size.write(1.0, verify_value=False)
        await self.fields.jog_accel.write(
            self.physics.jvel / max(self.physics.accl, 1e-3), verify_value=False)

