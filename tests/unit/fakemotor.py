"""A fake motor record on a virtual clock, for unit tests of the homing engine.

FakeMotor implements benchioc.engines.homing.HomingMotor (and HomeSwitchMotor) over the
simulated bench's own motor model, `benchioc.sim.motion.MotorSim`: the record logic and
the controller physics are the ones the caproto bench serves and that the differential
test compares with the genuine motor record (docs/genuine-differences.md). This module
adds only what the sim's PV layer adds (the CA side), on the engine tests' virtual
clock (virtualclock.py), so seconds of motion take milliseconds and are exact:

- each command is a CA put: a hook (for tests), a round trip (`put_latency`), then the
  command applied to MotorSim at that instant after the events due before it;
- MotorSim's events (trips, settles, ends of moves) are processed at their exact times
  and published, and while the axis moves a readback is published every `tick`;
- every published state reaches the motor's status feed `monitor_latency` later, in
  order; a command's own update shows the controller's status fields (MSTA, HLS, LLS)
  as they were, the controller's answer follows (as sim/motor.py publishes them);
- a VAL put blinks DMOV (the record's special()), a VAL put-callback completes when the
  record is done (DMOV=1).

The genuine quirks homing depends on are therefore the sim's: a limit trip sets DMOV=1
at once with VAL at the trip while the axis stops past the switch by a distance that
grows with the speed (MSTA DONE last); JOGF/JOGR into the active switch is ignored; a
SET-mode VAL put moves the offset from DVAL (stale until SYNC); DHLM=DLLM=0 disables the
soft limits; a move beyond them sets LVIO and pulses DMOV; HOMF/HOMR run at HVEL to the
home mark (MSTA HOMED); switch hysteresis (`switch_hysteresis`).

Faults, each mapped onto the sim's model where it has one: at a dial position (one
shot) `stall` (the sim's stall, its SLIP_STALL bit hidden: a controller that does not
report it), `slip` (the sim's stall, bit shown), `amp` (the sim's amplifier fault),
`stop_early` (a STOP), and, as CA-side overlays, `comm` (COMM_ERR bit only, the axis
goes on) and `disconnect`; `broken_switches` (the sim's BrokenSwitch), `ignore_stop`
(the sim's IgnoreStop), `ignore_jog` (the record never sees the jog), `speed_factor`
(the axis runs slower than the JVEL/VELO it reports). A driver quirk the sim leaves out
(docs/genuine-differences.md: motorSim's slow return after a trip) is the overlay
`settle_time`: a controller that comes to rest on a limit switch reports MSTA DONE that
much later (`stop_ends_settling`: a STOP ends that wait).

run_virtual() runs a coroutine on an event loop whose clock jumps to the next timer
whenever nothing is ready.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
from benchioc.sim.motion import HOMING, Broken, Mip, MotorParams, MotorSim, MotorState


@dataclass
class FakePhysics:
    """The sim motor's parameters (dial mm, s) and the CA side's timing."""

    low_switch: float = -45.0
    high_switch: float = 44.0
    start: float = 5.0
    offset: float = 3.0  # user = dial + offset: the motor starts badly calibrated
    velo: float = 10.0
    jvel: float = 10.0
    hvel: float = 10.0
    accl: float = 0.2
    vmax: float = 20.0
    mres: float = 0.001
    dir: str = "Pos"
    dllm: float = -40.0  # soft limits in force before homing
    dhlm: float = 40.0
    home: float = 0.0  # the controller's home mark (dial)
    switch_hysteresis: float = 0.0
    hard_stop: float = 2.0  # mechanical end this far beyond each switch
    settle_time: float = 0.0  # extra wait for MSTA DONE after coming to rest on a switch
    stop_ends_settling: bool = False  # a STOP during that wait makes it DONE at once
    egu: str = "mm"
    prec: int = 3
    tick: float = 0.025  # readback period while moving (the sim's)
    put_latency: float = 0.001
    monitor_latency: float = 0.002

    def params(self) -> MotorParams:
        return MotorParams(
            low_switch=self.low_switch, high_switch=self.high_switch, start=self.start,
            velo=self.velo, vmax=self.vmax, jvel=self.jvel, hvel=self.hvel, accl=self.accl,
            mres=self.mres, dir=self.dir, offset=self.offset, egu=self.egu, prec=self.prec,
            home=self.home, switch_hysteresis=self.switch_hysteresis,
            hard_stop_margin=self.hard_stop)


@dataclass
class FakeFaults:
    at_position: list[tuple[str, float]] = field(default_factory=list)  # (kind, dial)
    broken_switches: set[Direction] = field(default_factory=set)
    ignore_stop: bool = False
    ignore_jog: bool = False
    speed_factor: float = 1.0  # < 1: slower than JVEL says


STATUS_FIELDS = ("msta", "hls", "lls")  # the controller's answer, a moment after a command
DUE = 1e-9  # an event this close to the clock is due (the loop's timers round)


class FakeMotor(FeedBackedMotor):
    """A motor record over the sim's MotorSim, seen as a CA client sees it."""

    def __init__(self, name: str = "A", physics: FakePhysics | None = None) -> None:
        self.name = name
        self.p = physics or FakePhysics()
        self.faults = FakeFaults()
        self.physics = MotorSim(name, self.p.params(), self._clock)
        self.physics.dllm, self.physics.dhlm = self.p.dllm, self.p.dhlm  # in force before
        self.feed = MotorStatusFeed(name)
        self.connected = True
        self.extra_msta = 0  # bits a test sets (PROBLEM, COMM_ERR, GAIN_SUPPORT, ...)
        self.hide_slip = False  # a controller that does not report its stall
        self._speed_factor = 1.0  # faults.speed_factor as applied to the physics
        self.set_mode = False
        # what happened, for assertions
        self.calls: list[str] = []
        self.limit_history: list[tuple[str, float, float]] = []
        self.limit_violations: list[str] = []
        self.hooks: dict[str, Callable[[], Any]] = {}
        self._done_at: float | None = None  # settle_time: MSTA DONE withheld until then
        self._applied_faults: set[tuple[str, float]] = set()
        self._last_t = self._clock()
        self._last: MotorState = self.physics.snapshot(self._last_t)
        self._move_done: asyncio.Future | None = None
        self._driver: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._queue: collections.deque[MotorStatus] = collections.deque()
        self.feed.publish(self._status(self._last))

    @staticmethod
    def _clock() -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:  # built outside a loop: the virtual clock starts at 0
            return 0.0

    # --- what tests read -------------------------------------------------------------
    def user(self, dial: float) -> float:
        return self.physics.dial_to_user(dial)

    @property
    def dial(self) -> float:
        """The controller's readback now (DRBV)."""
        self._advance(self._clock())
        return self.physics.drbv(self._clock())

    @property
    def rbv(self) -> float:
        return self.user(self.dial)

    @property
    def dllm(self) -> float:
        return self.physics.dllm

    @dllm.setter
    def dllm(self, value: float) -> None:
        self.physics.dllm = value

    @property
    def dhlm(self) -> float:
        return self.physics.dhlm

    @dhlm.setter
    def dhlm(self, value: float) -> None:
        self.physics.dhlm = value

    @property
    def soft_limits_enabled(self) -> bool:
        return self.physics.soft_limits_enabled

    @property
    def mode(self) -> str:
        """idle, jog, move, home, stopping or settling (the controller after a trip)."""
        physics, now = self.physics, self._clock()
        self._advance(now)
        mip = physics.mip
        if mip & Mip.STOP or mip & Mip.JOG_STOP:
            return "stopping"
        if mip & (Mip.JOGF | Mip.JOGR):
            return "jog"
        if mip & (HOMING | Mip.EXTERNAL):
            return "home"
        if mip & (Mip.MOVE | Mip.RETRY):
            return "move"
        if physics.controller_busy or self._withholding(now):
            return "settling"
        return "idle"

    # --- status -----------------------------------------------------------------------
    def _withholding(self, t: float) -> bool:
        return self._done_at is not None and t < self._done_at

    def _status(self, state: MotorState, t: float | None = None) -> MotorStatus:
        msta = state.msta | self.extra_msta
        if self.hide_slip:
            msta &= ~Msta.SLIP_STALL
        if self._withholding(self._last_t if t is None else t):
            msta &= ~Msta.DONE
        factor = self._speed_factor
        return MotorStatus(
            connected=self.connected, rbv=state.rbv, val=state.val, dmov=bool(state.dmov),
            hls=bool(state.hls), lls=bool(state.lls), msta=int(msta), spmg=state.spmg,
            cnen=bool(state.cnen), velo=state.velo / factor, jvel=state.jvel / factor,
            accl=state.accl, vmax=state.vmax, hlm=state.hlm, llm=state.llm,
            dhlm=state.dhlm, dllm=state.dllm, egu=self.p.egu, prec=self.p.prec,
            off=state.off, dir=state.dir, mres=state.mres, drbv=state.drbv,
            hvel=state.hvel / factor,
        )

    def _publish_state(self, t: float, *, command: bool = False, dmov: int | None = None
                       ) -> None:
        """Queue what the record shows at t; `command`: its processing of a command,
        which shows the controller's status as it was."""
        state = self.physics.snapshot(t)
        if command:
            state = _with(state, **{f: getattr(self._last, f) for f in STATUS_FIELDS})
        if dmov is not None:
            state = _with(state, dmov=dmov)
        else:
            self._last = state
        self._queue.append(self._status(state, t))
        asyncio.get_running_loop().call_later(self.p.monitor_latency, self._deliver)
        if state.dmov and self._move_done is not None and not self._move_done.done():
            self._move_done.set_result(None)

    def publish(self) -> None:
        self._publish_state(self._clock())

    def publish_now(self) -> None:
        """Show the current state at once (after a test changed the physics directly)."""
        self._last = self.physics.snapshot(self._clock())
        self.feed.publish(self._status(self._last))

    def _deliver(self) -> None:
        status = self._queue.popleft()
        if self.connected or not status.connected:
            self.feed.publish(status)

    # --- time: events, fault crossings, readbacks -------------------------------------
    def _advance(self, now: float) -> None:
        """Process everything due by now at its own time, publishing after each."""
        physics = self.physics
        while True:
            due: list[tuple[float, int, Any]] = []
            event = physics.next_event_time()
            if event is not None and event <= now + DUE:
                due.append((event, 0, None))
            crossing = self._next_fault_crossing()
            if crossing is not None and crossing[0] <= now + DUE:
                due.append((crossing[0], 1, crossing[1]))
            if self._done_at is not None and self._done_at <= now + DUE:
                due.append((self._done_at, 2, None))
            if not due:
                break
            t, kind, fault = min(due, key=lambda d: (d[0], d[1]))
            t = max(t, self._last_t)
            if kind == 0:
                busy = physics.controller_busy
                physics.step(t)
                self._after_step(t, busy)
            elif kind == 1:
                self._apply_fault(fault, t)
            else:
                self._done_at = None
            self._last_t = t
            self._publish_state(t)
        self._last_t = max(self._last_t, now)

    def _after_step(self, t: float, was_busy: bool) -> None:
        if was_busy and not self.physics.controller_busy and self.p.settle_time > 0:
            state = self.physics.snapshot(t)
            if state.hls or state.lls:
                self._done_at = t + self.p.settle_time

    def _next_fault_crossing(self) -> tuple[float, tuple[str, float]] | None:
        best: tuple[float, tuple[str, float]] | None = None
        for fault in self.faults.at_position:
            kind, dial = fault
            if kind in ("stall", "slip"):
                continue  # the sim's own stall (see _sync_faults)
            physical = dial - self.physics.shift
            when = self.physics.trajectory.crossing_time(physical, after=self._last_t)
            if when is not None and (best is None or when < best[0]):
                best = (when, fault)
        return best

    def _apply_fault(self, fault: tuple[str, float], t: float) -> None:
        self.faults.at_position.remove(fault)
        with self.physics.at(t):
            self._inject(fault[0])

    def _sync_faults(self) -> None:
        """Hand the sim the faults it models itself, as they stand before a command."""
        physics = self.physics
        broken = self.faults.broken_switches
        which = (Broken.HIGH if Direction.HI in broken else
                 Broken.LOW if Direction.LO in broken else Broken.NONE)
        if physics.broken != which:
            physics.set_broken(which)
        physics.ignore_stop = self.faults.ignore_stop
        factor = self.faults.speed_factor
        if factor != self._speed_factor:  # the axis runs slower than it says
            scale, self._speed_factor = factor / self._speed_factor, factor
            physics.velo, physics.jvel, physics.hvel = (
                physics.velo * scale, physics.jvel * scale, physics.hvel * scale)
        for fault in list(self.faults.at_position):
            kind, dial = fault
            if kind in ("stall", "slip") and fault not in self._applied_faults:
                self._applied_faults.add(fault)
                self.hide_slip = kind == "stall"
                physics.set_stall_at(self.user(dial))

    def _moving(self, now: float) -> bool:
        """Readbacks change (or are about to: a motion starts from rest)."""
        return self.physics.is_moving(now) or self.physics.controller_busy

    def _next_wake(self, now: float) -> float | None:
        times = [t for t in (self.physics.next_event_time(), self._done_at) if t is not None]
        crossing = self._next_fault_crossing()
        if crossing is not None:
            times.append(crossing[0])
        if self._moving(now):
            times.append(now + self.p.tick)
        return max(min(times), now) if times else None

    async def _run(self) -> None:
        """The PV layer's timer: events at their times, readbacks while moving."""
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            now = loop.time()
            self._advance(now)
            if self._moving(now):
                self._publish_state(now)
            wake = self._next_wake(now)
            if wake is None:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wake - now)

    def _kick(self) -> None:
        if self._driver is None or self._driver.done():
            self._wake = asyncio.Event()
            self._driver = asyncio.get_running_loop().create_task(self._run())
        assert self._wake is not None
        self._wake.set()

    def finish(self) -> None:
        """Stop the driver task (end of a test)."""
        if self._driver is not None:
            self._driver.cancel()

    # --- commands ---------------------------------------------------------------------
    async def _put(self, what: str) -> float:
        """One CA put: a hook (for tests), a connection check, a round trip; returns the
        time the record processes it, with everything due before it processed."""
        self.calls.append(what)
        hook = self.hooks.get(what.split("=")[0])
        if hook is not None:
            result = hook()
            if inspect.isawaitable(result):
                await result
        if not self.connected:
            raise MotorDisconnected(f"{self.name}: not connected, cannot put {what}")
        await asyncio.sleep(self.p.put_latency)
        now = self._clock()
        self._advance(now)
        self._sync_faults()
        self.physics.record_movn = self._last.movn
        return now

    def _processed(self, now: float, *, drive: bool = False) -> None:
        """After a command: the record's processing, then the controller's answer."""
        if drive and self._last.dmov:
            self._publish_state(now, command=True, dmov=0)  # special(): DMOV blinks
        self._publish_state(now, command=True)
        self._publish_state(now)
        self._kick()

    async def jog(self, direction: Direction) -> None:
        now = await self._put(direction.jog_field + "=1")
        if not self.faults.ignore_jog:  # the record never saw it
            self.physics.jog(direction is Direction.HI, True)
        self._processed(now)

    async def start_home(self, direction: Direction) -> None:
        now = await self._put(("HOMF" if direction is Direction.HI else "HOMR") + "=1")
        self.physics.home(direction is Direction.HI)
        self._processed(now)

    async def stop(self) -> None:
        now = await self._put("STOP=1")
        if self._withholding(now) and self.p.stop_ends_settling:
            self._done_at = now
        self.physics.stop()
        self._processed(now)

    async def sync(self) -> None:
        now = await self._put("SYNC=1")
        self.physics.sync()
        self._processed(now)

    async def set_jog_speed(self, jvel: float) -> None:
        now = await self._put(f"JVEL={jvel:g}")
        self.physics.jvel = jvel * self._speed_factor
        self._processed(now)

    async def set_position(self, value: float) -> None:
        self.set_mode = True  # a put cut short by a cancellation may still have landed
        try:
            now = await self._put("SET=1")
            self.physics.set_mode = 1
            self._processed(now)
            now = await self._put(f"VAL={value:g}")
            self.physics.move_user(value)  # Set mode: the offset moves, from DVAL
            self._processed(now, drive=True)
        finally:
            self.calls.append("SET=0")
            self.set_mode = False
            self.physics.set_mode = 0

    async def set_dial_limits(self, dllm: float, dhlm: float) -> None:
        for which in limit_order((self.dllm, self.dhlm), (dllm, dhlm)):
            if which == "low":
                now = await self._put(f"DLLM={dllm:g}")
                self.physics.dllm = dllm
            else:
                now = await self._put(f"DHLM={dhlm:g}")
                self.physics.dhlm = dhlm
            self._record_limits(now)

    async def set_user_limits(self, llm: float, hlm: float) -> None:
        current = self.physics.user_limits()
        for which in limit_order(current, (llm, hlm)):
            if which == "low":
                now = await self._put(f"LLM={llm:g}")
                self.physics.set_llm(llm)
            else:
                now = await self._put(f"HLM={hlm:g}")
                self.physics.set_hlm(hlm)
            self._record_limits(now)

    def _record_limits(self, now: float) -> None:
        self.limit_history.append(("dial", self.dllm, self.dhlm))
        if self.dllm > self.dhlm:
            self.limit_violations.append(f"DLLM={self.dllm:g} > DHLM={self.dhlm:g}")
        self._processed(now)

    async def move(self, value: float, timeout: float) -> None:
        """VAL with put-callback: done when the record is (DMOV=1)."""
        now = await self._put(f"VAL={value:g}")
        self._move_done = asyncio.get_running_loop().create_future()
        self.physics.move_user(value)
        self._processed(now, drive=True)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._move_done)
        except TimeoutError:
            raise MotorTimeout(
                f"{self.name}: move to {value:g} did not complete within {timeout:g} s"
            ) from None

    # --- test controls -----------------------------------------------------------------
    def inject(self, kind: str) -> None:
        """Apply a fault now: slip, amp, comm, disconnect, stop_early."""
        now = self._clock()
        self._advance(now)
        with self.physics.at(now):
            self._inject(kind)
        self._publish_state(now)
        self._kick()

    def _inject(self, kind: str) -> None:
        if kind == "amp":
            self.physics.set_amp_fault(True)
        elif kind == "comm":
            self.extra_msta |= Msta.COMM_ERR
        elif kind == "disconnect":
            self.connected = False
        elif kind == "stop_early":
            self.physics.stop()
        elif kind == "slip":
            self.physics.slip_stall = True
            self.physics.stop()
        else:
            raise ValueError(f"unknown fault {kind!r}")

    def reconnect(self) -> None:
        self.connected = True
        self.publish()


def _with(state: MotorState, **changes: Any) -> MotorState:
    return replace(state, **changes)
