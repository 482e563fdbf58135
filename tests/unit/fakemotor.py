"""A fake motor record on a virtual clock, for unit tests of the homing engine.

FakeMotor implements benchioc.engines.homing.HomingMotor in user coordinates with simple
physics, and reproduces the quirks of the genuine motor record that homing depends on:

- a limit-switch trip sets DMOV=1 at once and leaves VAL at the trip position, while
  the motor decelerates past the trip point and the controller settles; the MSTA DONE
  bit comes last. A SET done from that stale VAL is off by the overshoot.
- JOGF/JOGR while on that switch is ignored.
- SET mode: a VAL put changes the offset so that the *dial setpoint* reads VAL (the
  record uses DVAL, not the readback), so calibrating without SYNC is visibly wrong.
- DHLM=DLLM=0 disables the soft limits; a jog stops at an enabled soft limit and a
  move beyond one sets LVIO, does not move, and still pulses DMOV.
- monitor updates arrive a little after the put that caused them (stale status).

Faults can be injected at a dial position or at once: stall (jammed, DMOV stays 0),
slip (SLIP_STALL bit), amp (PROBLEM bit), comm (COMM_ERR bit), disconnect, stop_early,
plus broken switches, ignore_stop and a motor slower than JVEL claims.

run_virtual() runs a coroutine on an event loop whose clock jumps to the next timer
whenever nothing is ready, so seconds of motion take milliseconds and timing never
depends on the load of the machine.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from virtualclock import run_virtual  # noqa: F401 - the tests import it from here

from benchioc.engines.motormodel import (
    Direction,
    FeedBackedMotor,
    MotorDisconnected,
    MotorStatus,
    MotorStatusFeed,
    MotorTimeout,
    limit_order,
)
from benchioc.facts.motorrecord import Msta


@dataclass
class FakePhysics:
    """Dial positions of the switches and the motor's speeds (mm, s)."""

    low_switch: float = -45.0
    high_switch: float = 44.0
    start: float = 5.0
    offset: float = 3.0  # user = dial + offset: the motor starts badly calibrated
    velo: float = 10.0
    jvel: float = 10.0
    accl: float = 0.2
    vmax: float = 20.0
    dllm: float = -40.0  # soft limits in force before homing
    dhlm: float = 40.0
    settle_time: float = 0.3  # from the end of the deceleration to MSTA DONE
    stop_ends_settling: bool = False  # a STOP while settling makes it DONE at once
    hard_stop: float = 2.0  # mechanical end this far beyond each switch
    egu: str = "mm"
    prec: int = 3
    tick: float = 0.01
    put_latency: float = 0.001
    monitor_latency: float = 0.002


@dataclass
class FakeFaults:
    at_position: list[tuple[str, float]] = field(default_factory=list)  # (kind, dial)
    broken_switches: set[Direction] = field(default_factory=set)
    ignore_stop: bool = False
    ignore_jog: bool = False
    speed_factor: float = 1.0  # < 1: slower than JVEL says


class FakeMotor(FeedBackedMotor):
    """A motor record with simple physics, in user coordinates (DIR=Pos)."""

    def __init__(self, name: str = "A", physics: FakePhysics | None = None) -> None:
        self.name = name
        self.p = physics or FakePhysics()
        self.faults = FakeFaults()
        self.feed = MotorStatusFeed(name)
        # controller state (dial units)
        self.dial = self.p.start
        self.offset = self.p.offset
        self.speed = 0.0  # signed, dial units per second
        self.mode = "idle"  # idle | jog | move | stopping | overshoot | settling
        self.jog_sign = 0
        self.target = 0.0
        self.settle_left = 0.0
        self.jammed = False
        # record fields
        self.val = self.user(self.dial)
        self.dmov = True
        self.done = True
        self.extra_msta = 0
        self.spmg = 3
        self.cnen = True
        self.connected = True
        self.dllm, self.dhlm = self.p.dllm, self.p.dhlm
        self.set_mode = False
        # what happened, for assertions
        self.calls: list[str] = []
        self.limit_history: list[tuple[str, float, float]] = []
        self.limit_violations: list[str] = []
        self.hooks: dict[str, Callable[[], Any]] = {}
        self._move_done: asyncio.Future | None = None
        self._ticker: asyncio.Task | None = None
        self._queue: collections.deque[MotorStatus] = collections.deque()
        self.feed.publish(self.snapshot())

    # --- coordinates and snapshot -----------------------------------------------------
    def user(self, dial: float) -> float:
        return dial + self.offset

    @property
    def rbv(self) -> float:
        return self.user(self.dial)

    @property
    def hls(self) -> bool:
        return Direction.HI not in self.faults.broken_switches and self.dial >= self.p.high_switch

    @property
    def lls(self) -> bool:
        return Direction.LO not in self.faults.broken_switches and self.dial <= self.p.low_switch

    @property
    def soft_limits_enabled(self) -> bool:
        return not (self.dllm == 0 and self.dhlm == 0)

    def snapshot(self) -> MotorStatus:
        msta = self.extra_msta | Msta.PRESENT
        if self.done:
            msta |= Msta.DONE
        if not self.dmov:
            msta |= Msta.MOVING
        if self.hls:
            msta |= Msta.PLUS_LS
        if self.lls:
            msta |= Msta.MINUS_LS
        return MotorStatus(
            connected=self.connected, rbv=round(self.rbv, 9), val=self.val, dmov=self.dmov,
            hls=self.hls, lls=self.lls, msta=int(msta), spmg=self.spmg, cnen=self.cnen,
            velo=self.p.velo, jvel=self.p.jvel, accl=self.p.accl, vmax=self.p.vmax,
            hlm=self.user(self.dhlm), llm=self.user(self.dllm), dhlm=self.dhlm,
            dllm=self.dllm, egu=self.p.egu, prec=self.p.prec,
        )

    def publish(self) -> None:
        """Queue the current snapshot; it reaches the feed after the monitor latency, in
        order (timers with equal deadlines are not ordered, the queue is)."""
        self._queue.append(self.snapshot())
        asyncio.get_running_loop().call_later(self.p.monitor_latency, self._deliver)

    def publish_now(self) -> None:
        self.feed.publish(self.snapshot())

    def _deliver(self) -> None:
        status = self._queue.popleft()
        if self.connected or not status.connected:
            self.feed.publish(status)

    # --- HomingMotor protocol -----------------------------------------------------------
    async def _put(self, what: str) -> None:
        """One CA put: a hook (for tests), a connection check, a round trip."""
        self.calls.append(what)
        hook = self.hooks.get(what.split("=")[0])
        if hook is not None:
            result = hook()
            if inspect.isawaitable(result):
                await result
        if not self.connected:
            raise MotorDisconnected(f"{self.name}: not connected, cannot put {what}")
        await asyncio.sleep(self.p.put_latency)

    async def jog(self, direction: Direction) -> None:
        await self._put(direction.jog_field + "=1")
        on_switch = self.hls if direction is Direction.HI else self.lls
        if on_switch or self.faults.ignore_jog:
            return  # the record ignores a jog into the active switch
        self.jog_sign = 1 if direction is Direction.HI else -1
        self._start("jog")

    async def stop(self) -> None:
        await self._put("STOP=1")
        if self.mode == "settling" and self.p.stop_ends_settling:
            self.settle_left = 0.0  # the next tick ends it
            return
        if self.faults.ignore_stop or self.mode in ("idle", "overshoot", "settling"):
            return
        self.mode = "stopping"

    async def sync(self) -> None:
        await self._put("SYNC=1")
        self.val = self.rbv
        self.publish()

    async def set_jog_speed(self, jvel: float) -> None:
        await self._put(f"JVEL={jvel:g}")
        self.p.jvel = jvel
        self.publish()

    async def set_position(self, value: float) -> None:
        self.set_mode = True  # a put cut short by a cancellation may still have landed
        try:
            await self._put("SET=1")
            await self._put(f"VAL={value:g}")
            dval = self.val - self.offset  # the dial setpoint, stale if VAL is
            self.offset = value - dval
            self.val = value
            self.publish()
        finally:
            self.calls.append("SET=0")
            self.set_mode = False

    async def set_dial_limits(self, dllm: float, dhlm: float) -> None:
        for which in limit_order((self.dllm, self.dhlm), (dllm, dhlm)):
            if which == "low":
                await self._put(f"DLLM={dllm:g}")
                self.dllm = dllm
            else:
                await self._put(f"DHLM={dhlm:g}")
                self.dhlm = dhlm
            self._record_limits()

    async def set_user_limits(self, llm: float, hlm: float) -> None:
        current = (self.user(self.dllm), self.user(self.dhlm))
        for which in limit_order(current, (llm, hlm)):
            if which == "low":
                await self._put(f"LLM={llm:g}")
                self.dllm = llm - self.offset
            else:
                await self._put(f"HLM={hlm:g}")
                self.dhlm = hlm - self.offset
            self._record_limits()

    def _record_limits(self) -> None:
        self.limit_history.append(("dial", self.dllm, self.dhlm))
        if self.dllm > self.dhlm:
            self.limit_violations.append(f"DLLM={self.dllm:g} > DHLM={self.dhlm:g}")
        self.publish()

    async def move(self, value: float, timeout: float) -> None:
        await self._put(f"VAL={value:g}")
        if self.soft_limits_enabled and not (
            self.user(self.dllm) <= value <= self.user(self.dhlm)
        ):
            self.dmov = False  # LVIO: no motion, but DMOV still pulses
            self.publish()
            self.dmov = True
            self.publish()
            return
        self.val = value
        self.target = value - self.offset
        self._move_done = asyncio.get_running_loop().create_future()
        self._start("move")
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._move_done)
        except TimeoutError:
            raise MotorTimeout(
                f"{self.name}: move to {value:g} did not complete within {timeout:g} s"
            ) from None

    # --- test controls -----------------------------------------------------------------
    def inject(self, kind: str) -> None:
        """Apply a fault now: stall, slip, amp, comm, disconnect, stop_early."""
        if kind == "stall":
            self.jammed = True
            self.speed = 0.0
        elif kind == "slip":
            self.extra_msta |= Msta.SLIP_STALL
            self.mode = "stopping" if self.mode != "idle" else "idle"
        elif kind == "amp":
            self.extra_msta |= Msta.PROBLEM
            self.speed = 0.0
            if self.mode != "idle":
                self.mode = "stopping"
        elif kind == "comm":
            self.extra_msta |= Msta.COMM_ERR
        elif kind == "disconnect":
            self.connected = False
        elif kind == "stop_early":
            self.mode = "stopping"
        else:
            raise ValueError(f"unknown fault {kind!r}")
        self.publish()

    def reconnect(self) -> None:
        self.connected = True
        self.publish()

    def finish(self) -> None:
        """Stop the physics task (end of a test)."""
        if self._ticker is not None:
            self._ticker.cancel()

    # --- physics -----------------------------------------------------------------------
    def _start(self, mode: str) -> None:
        self.mode = mode
        self.dmov = False
        self.done = False
        self.publish()
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self.mode != "idle":
            await asyncio.sleep(self.p.tick)
            self._step(self.p.tick)
            self.publish()

    def _accel(self) -> float:
        return max(self.p.jvel, self.p.velo) / max(self.p.accl, 1e-6)

    def _step(self, dt: float) -> None:
        if self.mode == "settling":
            self.settle_left -= dt
            if self.settle_left <= 1e-12:
                self.done = True
                self.mode = "idle"
            return
        if self.mode in ("stopping", "overshoot"):
            self._decelerate(dt)
            return
        if self.jammed:
            return
        if self.mode == "jog":
            goal = self.jog_sign * self.p.jvel * self.faults.speed_factor
            self.speed = _approach(self.speed, goal, self._accel() * dt)
            self._advance(dt)
        elif self.mode == "move":
            self._step_move(dt)

    def _step_move(self, dt: float) -> None:
        remaining = self.target - self.dial
        braking = math.sqrt(2 * self._accel() * abs(remaining))
        limit = min(self.p.velo * self.faults.speed_factor, braking, abs(remaining) / dt)
        goal = math.copysign(limit, remaining)
        self.speed = _approach(self.speed, goal, self._accel() * dt)
        if abs(remaining) <= abs(self.speed * dt) + 1e-12:
            self.dial = self.target
            self.speed = 0.0
            self._motion_over()
            return
        self._advance(dt)

    def _advance(self, dt: float) -> None:
        before = self.dial
        low_end = self.p.low_switch - self.p.hard_stop
        high_end = self.p.high_switch + self.p.hard_stop
        self.dial = min(max(self.dial + self.speed * dt, low_end), high_end)
        if self.dial in (low_end, high_end):
            self.jammed = True  # against the mechanical end: the motor stalls
        self._trigger_faults(before, self.dial)
        if self.mode in ("jog", "move"):
            self._check_switches_and_limits()

    def _trigger_faults(self, before: float, after: float) -> None:
        low, high = min(before, after), max(before, after)
        for fault in list(self.faults.at_position):
            kind, where = fault
            if low <= where <= high and before != after:
                self.faults.at_position.remove(fault)
                if kind == "stall":
                    self.dial = where
                self.inject(kind)

    def _check_switches_and_limits(self) -> None:
        if (self.speed > 0 and self.hls) or (self.speed < 0 and self.lls):
            # The record stops at once; the motor runs on while it decelerates.
            self.val = self.rbv
            self.dmov = True
            self.mode = "overshoot"
            self._resolve_move()
            return
        if self.mode == "jog" and self.soft_limits_enabled and not (
            self.dllm <= self.dial <= self.dhlm
        ):
            self.mode = "stopping"

    def _decelerate(self, dt: float) -> None:
        if not self.jammed:
            self.speed = _approach(self.speed, 0.0, self._accel() * dt)
            self._advance(dt)
        else:
            self.speed = 0.0
        if self.speed == 0.0:
            if self.mode == "overshoot":
                self.mode = "settling"
                self.settle_left = self.p.settle_time
            else:
                self._motion_over()

    def _motion_over(self) -> None:
        self.val = self.rbv
        self.dmov = True
        self.done = True
        self.jammed = False
        self.mode = "idle"
        self._resolve_move()

    def _resolve_move(self) -> None:
        if self._move_done is not None and not self._move_done.done():
            self._move_done.set_result(None)


def _approach(value: float, goal: float, step: float) -> float:
    if abs(goal - value) <= step:
        return goal
    return value + math.copysign(step, goal - value)
