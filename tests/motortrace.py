"""A camonitor-like trace recorder that also makes puts, all on one CA client.

The differential test of the simulated motor record needs the order in which a client
sees monitor updates *and* put-callback completions. Seen from two processes (camonitor
and `caput -c`) that order is lost: each has its own TCP circuit. So one client process
does both: `python tests/motortrace.py` reads JSON commands on stdin and writes every
event as a JSON line on stdout, in the order libca delivered them (pyepics callbacks run
in libca's receive thread, one circuit per server, so the order per server is the wire
order).

The client runs as a subprocess (not pyepics in the test process): libca reads
EPICS_CA_ADDR_LIST once per process, and another test module may already have made the
test process's CA context for other servers.

    with TraceClient(epicsenv.loopback_env(ca_ports=[port])) as trace:
        trace.monitor(["SIM:m1.DMOV", "SIM:m1.RBV"])
        done = trace.put("SIM:m1.VAL", 2.0, callback=True)
        trace.wait_put(done)
        events = trace.events_since(mark)

Commands (stdin): monitor {pvs}, put {pv, value, callback} (enums by index), get {pv,
ctrl}, quit.
Events (stdout): mon {pv, value, sevr}, put_done {id, pv}, put_sent {id, pv} (just
before the put is handed to libca),
got {id, ...}, ok {id}, error {id, message}. Each has `seq` (order) and `t` (monotonic).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

CONNECT_TIMEOUT = 10.0


# --- the recorder (runs in its own process) ---------------------------------------------
def _recorder_main() -> int:
    import epics  # noqa: PLC0415 - only in the recorder process

    lock = threading.Lock()
    seq = 0
    monitors: dict[str, Any] = {}

    def emit(event: dict[str, Any]) -> None:
        nonlocal seq
        with lock:
            seq += 1
            event["seq"] = seq
            event["t"] = time.monotonic()
            sys.stdout.write(json.dumps(event) + "\n")
            sys.stdout.flush()

    ca = epics.ca
    channels: dict[str, Any] = {}

    def channel(name: str) -> Any:
        """A connected channel (libca's own connection wait: no callbacks involved)."""
        if name not in channels:
            chid = ca.create_channel(name, connect=False, auto_cb=False)
            if not ca.connect_channel(chid, timeout=CONNECT_TIMEOUT):
                raise RuntimeError(f"{name} not connected within {CONNECT_TIMEOUT:g} s")
            channels[name] = chid
        return channels[name]

    def on_update(pvname: str = "", value: Any = None, severity: int = 0,
                  **_: Any) -> None:
        emit({"ev": "mon", "pv": pvname, "value": _plain(value), "sevr": severity})

    def monitor(command: dict[str, Any]) -> None:
        # Subscriptions made here, not in connection callbacks: each is certain to exist
        # once "ok" is sent, and sends the current value first.
        for name in command["pvs"]:
            if name not in monitors:
                monitors[name] = ca.create_subscription(
                    channel(name), use_time=True, callback=on_update,
                    mask=epics.dbr.DBE_VALUE | epics.dbr.DBE_ALARM)
        emit({"ev": "ok", "id": command["id"]})

    def put(command: dict[str, Any]) -> None:
        name, ident = command["pv"], command["id"]
        chid = channel(name)

        def done(**_: Any) -> None:
            emit({"ev": "put_done", "id": ident, "pv": name})

        callback = done if command.get("callback") else None
        # Before the put: every event it causes comes after this one in the stream.
        emit({"ev": "put_sent", "id": ident, "pv": name})
        ca.put(chid, command["value"], wait=False, callback=callback)

    def get(command: dict[str, Any]) -> None:
        name, ident = command["pv"], command["id"]
        pv = epics.PV(name, auto_monitor=False, form="ctrl" if command.get("ctrl") else "time")
        if not pv.wait_for_connection(CONNECT_TIMEOUT):
            emit({"ev": "error", "id": ident, "message": f"{name} not connected"})
            return
        value = pv.get(timeout=CONNECT_TIMEOUT, use_monitor=False)
        emit({"ev": "got", "id": ident, "pv": name, "value": _plain(value),
              "text": pv.char_value, "type": pv.type, "count": pv.count,
              "enum": list(pv.enum_strs or ()), "sevr": pv.severity, "units": pv.units,
              "prec": pv.precision})

    handlers = {"monitor": monitor, "put": put, "get": get}
    for line in sys.stdin:
        command = json.loads(line)
        if command["op"] == "quit":
            break
        try:
            handlers[command["op"]](command)
        except Exception as error:  # reported to the test, which fails with it
            emit({"ev": "error", "id": command.get("id"), "message": repr(error)})
    for subscription in monitors.values():
        ca.clear_subscription(subscription[2])
    return 0


def _plain(value: Any) -> Any:
    """A JSON-able value (numpy scalars and arrays from pyepics)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


# --- the test side ----------------------------------------------------------------------
@dataclass
class Event:
    """One thing the client saw: a monitor update or a put-callback completion."""

    seq: int
    kind: str  # mon, put_done, put_sent, got, ok, error
    pv: str = ""
    value: Any = None
    text: str = ""
    ident: int | None = None
    t: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def number(self) -> float:
        return float(self.value)


class TraceClient:
    """The recorder subprocess: monitors and puts, every event kept in arrival order."""

    def __init__(self, env: dict[str, str]):
        self.events: list[Event] = []
        self.monitored: set[str] = set()
        self._changed = threading.Condition()
        self._next_id = 0
        self._write_lock = threading.Lock()
        self._process = subprocess.Popen(
            [sys.executable, __file__], env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
            start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            raw = json.loads(line)
            event = Event(seq=raw.pop("seq"), kind=raw.pop("ev"), pv=raw.pop("pv", ""),
                          value=raw.pop("value", None), text=raw.pop("text", ""),
                          ident=raw.pop("id", None), t=raw.pop("t"), extra=raw)
            with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    def _send(self, command: dict[str, Any]) -> int:
        with self._write_lock:
            self._next_id += 1
            command["id"] = self._next_id
            assert self._process.stdin is not None
            self._process.stdin.write(json.dumps(command) + "\n")
            self._process.stdin.flush()
            return self._next_id

    def wait_for(self, predicate: Callable[[list[Event]], Any], timeout: float,
                 what: str) -> Any:
        """Until predicate(events) is truthy (checked on each event); returns its value."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = predicate(self.events)
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = [(e.kind, e.pv, e.value) for e in self.events[-15:]]
                    raise AssertionError(f"timed out after {timeout:g} s waiting for {what};"
                                         f" last events: {tail}")
                self._changed.wait(left)

    def _reply(self, ident: int, timeout: float) -> Event:
        event = self.wait_for(
            lambda events: next((e for e in reversed(events) if e.ident == ident and
                                 e.kind in ("ok", "got", "error", "put_sent")), None),
            timeout, f"the reply to command {ident}")
        if event.kind == "error":
            raise AssertionError(event.extra.get("message"))
        return event

    def monitor(self, pvs: Iterable[str], timeout: float = 15.0) -> None:
        """Subscribe (DBE_VALUE|DBE_ALARM); returns when every PV sent its first value."""
        names = list(pvs)
        self._reply(self._send({"op": "monitor", "pvs": names}), timeout)
        self.monitored.update(names)
        self.wait_for(lambda events: set(names) <= {e.pv for e in events if e.kind == "mon"},
                      timeout, f"first updates of {names}")

    def put(self, pv: str, value: Any, *, callback: bool = False) -> int:
        """Put (with put-callback if asked); returns the put's id, once it was sent."""
        ident = self._send({"op": "put", "pv": pv, "value": value, "callback": callback})
        self._reply(ident, CONNECT_TIMEOUT)
        return ident

    def wait_put(self, ident: int, timeout: float = 30.0) -> Event:
        return self.wait_for(
            lambda events: next((e for e in events if e.kind == "put_done" and
                                 e.ident == ident), None), timeout, f"put {ident} to complete")

    def get(self, pv: str, *, ctrl: bool = False, timeout: float = 15.0) -> Event:
        return self._reply(self._send({"op": "get", "pv": pv, "ctrl": ctrl}), timeout)

    def mark(self) -> int:
        """The seq of the latest event: events after it belong to what comes next."""
        with self._changed:
            return self.events[-1].seq if self.events else 0

    def events_since(self, mark: int) -> list[Event]:
        with self._changed:
            return [e for e in self.events if e.seq > mark]

    def latest(self, pv: str) -> Event | None:
        with self._changed:
            return next((e for e in reversed(self.events) if e.kind == "mon" and e.pv == pv),
                        None)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._send({"op": "quit"})
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> TraceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    sys.exit(_recorder_main())
