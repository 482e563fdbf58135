"""A pyepics client inside the benchmark process: timed puts, monitors and gets.

In-process on purpose: a `caput` subprocess would add its own start-up to every latency.
pyepics has one CA context per process and reads EPICS_CA_ADDR_LIST when it is first
used, so `CaClient(env)` must be built before anything else touches pyepics, with the
environment of the servers it will talk to (loopback only, from benchioc.epicsenv).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field


@dataclass
class PutResult:
    """Wall clock (time.perf_counter) of a put-callback's start and completion."""

    started: float
    done: float = float("nan")
    event: threading.Event = field(default_factory=threading.Event)

    @property
    def seconds(self) -> float:
        return self.done - self.started


class Recorder:
    """Every monitor update of one PV as (perf_counter, value), stamped in CA's thread."""

    def __init__(self) -> None:
        self.updates: list[tuple[float, object]] = []
        self._lock = threading.Lock()

    def __call__(self, value=None, **_kw) -> None:
        stamp = time.perf_counter()
        with self._lock:
            self.updates.append((stamp, value))

    def first_after(self, since: float, predicate) -> float | None:
        """perf_counter of the first update after `since` whose value satisfies predicate."""
        with self._lock:
            for stamp, value in self.updates:
                if stamp >= since and predicate(value):
                    return stamp
        return None


class CaClient:
    """Connected PVs by name, put-callbacks with completion times, timed gets."""

    def __init__(self, env: dict[str, str]) -> None:
        for name, value in env.items():
            if name.startswith(("EPICS_", "CAPROTO_")):
                os.environ[name] = value
        import epics  # after the environment: libca reads it on first use

        self.epics = epics
        self._pvs: dict[str, object] = {}

    def pv(self, name: str, timeout: float = 10.0):
        pv = self._pvs.get(name)
        if pv is None:
            pv = self.epics.get_pv(name, connect=True, timeout=timeout)
            if not pv.connected:
                raise RuntimeError(f"{name} did not connect within {timeout:g} s")
            self._pvs[name] = pv
        return pv

    def served(self, name: str, timeout: float = 2.0) -> bool:
        """Whether some server answers for this PV name (like `caget` succeeding)."""
        pv = self.epics.get_pv(name, connect=True, timeout=timeout)
        return bool(pv.connected)

    def monitor(self, name: str) -> Recorder:
        recorder = Recorder()
        self.pv(name).add_callback(recorder)
        return recorder

    def wait_all(self, names: list[str], value: object, timeout: float) -> None:
        """Until every PV shows `value` (monitors, no polling), or RuntimeError."""
        changed = threading.Condition()
        latest: dict[str, object] = {}

        def seen(pvname=None, value=None, **_kw) -> None:
            with changed:
                latest[pvname] = value
                changed.notify_all()

        for name in names:
            self.pv(name).add_callback(seen)
        deadline = time.monotonic() + timeout
        try:
            with changed:
                while any(latest.get(n, self.pv(n).value) != value for n in names):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        missing = [n for n in names if latest.get(n) != value]
                        raise RuntimeError(f"{len(missing)} of {len(names)} PVs not {value!r} "
                                           f"after {timeout:g} s: {', '.join(missing[:5])}")
                    changed.wait(left)
        finally:
            for name in names:
                self.pv(name).clear_callbacks()

    def put_callback(self, name: str, value: object) -> PutResult:
        """Start a put with completion callback; wait on `.event` for its end."""
        pv = self.pv(name)
        result = PutResult(started=0.0)

        def completed(**_kw) -> None:
            result.done = time.perf_counter()
            result.event.set()

        result.started = time.perf_counter()
        pv.put(value, wait=False, use_complete=True, callback=completed)
        return result

    def put_wait(self, name: str, value: object, timeout: float) -> float:
        """A put-callback that must complete within timeout; returns its seconds."""
        result = self.put_callback(name, value)
        if not result.event.wait(timeout):
            raise RuntimeError(f"put {name}={value!r} not completed within {timeout:g} s")
        return result.seconds

    def get(self, name: str):
        return self.pv(name).get(use_monitor=False, timeout=5.0)

    def get_latency(self, name: str) -> float:
        """Seconds of one CA get round trip (a fresh read, not the monitor's cache)."""
        pv = self.pv(name)
        start = time.perf_counter()
        value = self.epics.ca.get(pv.chid, timeout=5.0)
        elapsed = time.perf_counter() - start
        if value is None:
            raise RuntimeError(f"get {name} timed out")
        return elapsed

    def paced_get_latencies(self, name: str, period: float, until) -> list[float]:
        """Gets every `period` seconds until `until()` is true (at least one)."""
        latencies = []
        while True:
            latencies.append(self.get_latency(name))
            if until():
                return latencies
            time.sleep(period)
