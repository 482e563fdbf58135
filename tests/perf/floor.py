"""The floor: what the same Channel Access work costs a bare client with nothing else.

The benchmark measures the IOC's homing and step scan against the simulated hardware's
exact motion time; part of the difference is what Channel Access itself costs on this
machine against this server. The floor is that part: the CA operations a homing (or a
step scan) needs, issued in sequence by a bare in-process pyepics client straight to the
motor record and camera (no IOC in between), waiting for each one the way the homing
engine must (a put-callback's completion, or the monitor that shows the value), and
nothing else: no status reads, no progress records, no asyncio.

Homing (engines/homing/procedure.py, method limit, direction high), in order:
1. the dial soft limits to 0, 0 (DLLM, DHLM in the order that never inverts the range):
   each a plain put, then its monitor showing the value;
2. JOGF=1 (plain put), then the monitors until HLS=1, DMOV=1 and MSTA DONE (the seek and
   the settle on the switch);
3. back-off: VAL = trip − distance with put-callback, then HLS=0 on its monitor (the
   distance doubled while the switch stays on, as the engine does);
4. JVEL = creep speed (put-callback), JOGF=1, the monitors until on the switch and settled;
5. JVEL back to the jog speed (put-callback);
6. calibration: SYNC=1, SET=1, VAL = switch position, SET=0 (four put-callbacks), then
   RBV at the switch position on its monitor;
7. LLM, HLM (plain puts, each with its monitor);
8. VAL = center with put-callback, then RBV at center on its monitor.
The values (creep speed, back-off, switch position, limits, center) are those the engine
computes from the same config (HomingSettings.from_config).

Step scan, per point: VAL put-callback to the point, then Acquire=1 put-callback to the
camera (set up once beforehand as the IOC's step scan sets it: Multiple, one image,
the same exposure and period), nothing else.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from benchioc.engines.homing.settings import HomingSettings
from benchioc.engines.motormodel import Direction, limit_order
from benchioc.facts.motorrecord import Msta

WATCHED = ("RBV", "VAL", "DMOV", "HLS", "LLS", "MSTA", "JVEL", "DLLM", "DHLM", "LLM", "HLM",
           "PREC", "ACCL")
CREEP_FRACTION, CREEP_RUN_S, BACKOFF_TRIES = 0.1, 0.5, 5  # homing.procedure's defaults
SWITCH_RELEASE_S = 0.5


class MotorWatch:
    """The monitored fields of one motor record, with waiting on a condition of them."""

    def __init__(self, client, root: str) -> None:
        self.client = client
        self.root = root
        self.values: dict[str, float] = {}
        self.requests = 0  # CA writes issued (puts and put-callbacks)
        self._changed = threading.Condition()
        for field in WATCHED:
            pv = client.pv(f"{root}.{field}")
            self.values[field] = float(pv.get(timeout=5.0))
            pv.add_callback(self._seen)
        # write-only fields connected now, like EpicsMotor.connect does
        for field in ("JOGF", "SYNC", "SET", "STOP"):
            client.pv(f"{root}.{field}")

    def _seen(self, pvname=None, value=None, **_kw) -> None:
        with self._changed:
            self.values[pvname.rsplit(".", 1)[1]] = float(value)
            self._changed.notify_all()

    def close(self) -> None:
        for field in WATCHED:
            self.client.pv(f"{self.root}.{field}").clear_callbacks()

    def __getitem__(self, field: str) -> float:
        return self.values[field]

    def wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.values):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.root}: {what} not seen within {timeout:g} s "
                                       f"({self.values})")
                self._changed.wait(left)

    def settled(self, values: dict[str, float]) -> bool:
        return bool(values["DMOV"]) and bool(int(values["MSTA"]) & Msta.DONE)

    # --- CA operations ----------------------------------------------------------------
    def put_callback(self, field: str, value, timeout: float = 60.0) -> None:
        self.requests += 1
        self.client.put_wait(f"{self.root}.{field}", value, timeout=timeout)

    def put(self, field: str, value) -> None:
        self.requests += 1
        self.client.pv(f"{self.root}.{field}").put(value, wait=False)

    def put_seen(self, field: str, value: float) -> None:
        """A plain put and the monitor that shows the value (the engine's limit writes)."""
        self.put(field, value)
        self.wait(lambda v: math.isclose(v[field], value, rel_tol=1e-9, abs_tol=1e-9), 5.0,
                  f"{field}={value:g}")

    def limits(self, fields: tuple[str, str], low: float, high: float) -> None:
        for which in limit_order((self[fields[0]], self[fields[1]]), (low, high)):
            field, value = (fields[0], low) if which == "low" else (fields[1], high)
            self.put_seen(field, value)

    def jog_onto_high_switch(self, timeout: float, grace: float) -> None:
        """JOGF=1, the switch, then at rest; a STOP after `grace` s, like the engine's
        settle (motorSim creeps back onto a switch at 1 step/s until stopped)."""
        if self["HLS"]:
            return  # the engine skips the jog on the switch
        self.put("JOGF", 1)
        self.wait(lambda v: bool(v["HLS"]), timeout, "the high limit switch")
        try:
            self.wait(self.settled, grace, "at rest on the switch")
        except TimeoutError:
            self.put("STOP", 1)
            self.wait(self.settled, 10.0, "at rest after STOP")

    def at(self, target: float, tolerance: float, timeout: float = 10.0) -> None:
        self.wait(lambda v: abs(v["RBV"] - target) <= tolerance, timeout,
                  f"RBV at {target:g}")


@dataclass(frozen=True)
class FloorHoming:
    wall_s: float
    requests: int  # CA writes issued (puts and put-callbacks)


def home_high(client, root: str, settings: HomingSettings, timeout: float = 120.0,
              marks: list[tuple[str, float]] | None = None) -> FloorHoming:
    """One homing towards the high switch as a bare client: see the module's text.
    `marks`, if given, gets (step, time.time()) at the end of each step (timeline.py)."""
    watch = MotorWatch(client, root)

    def mark(step: str) -> None:
        if marks is not None:
            marks.append((step, time.time()))

    try:
        tolerance = max(1e-3, 10.0 ** -max(0, int(watch["PREC"])))
        jvel = watch["JVEL"]
        grace = min(settings.settle_timeout, 2 * watch["ACCL"] + 1.0)
        creep = settings.creep_speed or CREEP_FRACTION * jvel
        distance = settings.backoff or max(creep * CREEP_RUN_S, 10 * tolerance)
        target = settings.calibrated_position(Direction.HI)
        start = time.perf_counter()
        mark("start")
        watch.limits(("DLLM", "DHLM"), 0.0, 0.0)
        mark("dial limits 0, 0 (2 puts, monitors)")
        watch.jog_onto_high_switch(timeout, grace)
        mark("seek + settle (JOGF, monitors)")
        trip = min(watch["VAL"], watch["RBV"])
        for _ in range(BACKOFF_TRIES):
            watch.put_callback("VAL", trip - distance)
            try:
                watch.wait(lambda v: not v["HLS"], SWITCH_RELEASE_S, "HLS=0")
                break
            except TimeoutError:
                distance *= 2
        mark("back-off (VAL put-callback, HLS monitor)")
        watch.put_callback("JVEL", creep)
        mark("JVEL creep (put-callback)")
        watch.jog_onto_high_switch(timeout, grace)
        mark("creep approach + settle (JOGF, monitors)")
        watch.put_callback("JVEL", jvel)
        mark("JVEL restore (put-callback)")
        watch.put_callback("SYNC", 1)
        watch.put_callback("SET", 1)
        watch.put_callback("VAL", target)
        watch.put_callback("SET", 0)
        watch.at(target, tolerance)
        mark("SYNC, SET, VAL, SET (4 put-callbacks), RBV monitor")
        watch.limits(("LLM", "HLM"), settings.lo_lim, settings.hi_lim)
        mark("LLM, HLM (2 puts, monitors)")
        watch.put_callback("VAL", settings.center, timeout)
        watch.at(settings.center, tolerance)
        mark("center (VAL put-callback, RBV monitor)")
        return FloorHoming(time.perf_counter() - start, watch.requests)
    finally:
        watch.close()


def configure_camera(client, prefix: str, *, exposure: float, period: float) -> None:
    """As the IOC's step scan sets the camera up (CaCamera.configure), not timed."""
    acquire = f"{prefix}Acquire"
    client.pv(acquire).put(0, wait=False)
    client.wait_all([f"{prefix}Acquire_RBV"], 0, timeout=10)
    for name, value in (("TriggerMode", 0), ("ImageMode", 1), ("NumImages", 1),
                        ("AcquireTime", exposure), ("AcquirePeriod", period)):
        client.put_wait(f"{prefix}{name}", value, timeout=10)


def step_scan(client, root: str, camera: str, targets: list[float],
              timeout: float = 60.0) -> float:
    """Wall seconds of the bare step loop: per point VAL put-callback, Acquire put-callback."""
    move, acquire = f"{root}.VAL", f"{camera}Acquire"
    client.pv(move)
    client.pv(acquire)
    start = time.perf_counter()
    for target in targets:
        client.put_wait(move, target, timeout=timeout)
        client.put_wait(acquire, 1, timeout=timeout)
    return time.perf_counter() - start
