"""Differential test: the simulated motor record against the genuine one, side by side.

The same scripted scenarios run at once on a genuine motor record (motor R7-3 with the
motorSim driver, tests/genuine.py) and on a simulated one (the bench-sim configured like
motorSim: switches at dial +-100 mm, VELO 10, ACCL 0.2, VMAX 20, JVEL 10, HVEL 10, MRES
0.001, time scale 1). One client records, per scenario, every monitor update of the
fields a client reads and every put-callback completion, in arrival order
(tests/motortrace.py). The traces are compared by the ORDER of events (the changes of
the discrete fields, the MSTA bits and the put-callback completions) and by FINAL
values, never by times: the genuine IOC runs in real time with a 10 Hz driver.

What stays different is named below (`KEPT_*`) and written up, with the reason, in
docs/genuine-differences.md; the test expects those differences exactly rather than
comparing less. Each scenario runs on its own pair of axes (GEN:mN, SIM:mN), all
scenarios at once, so the module takes about 20 s.

motorSim quirk: on an axis that never made an absolute move, motorSim's route has a
maximum speed of 1 step/s (motorSimAxis's constructor sets Vmax 1.0, and only move()
updates it), so after a limit trip the axis would creep back onto the switch for about
1000 s. The scenarios that trip a switch therefore make an absolute move first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

import genuine
from benchioc import epicsenv
from benchioc.facts.motorrecord import Msta
from motortrace import Event, TraceClient
from simharness import start_sim

pytestmark = pytest.mark.integration

GENUINE_PREFIX, SIM_PREFIX = "GEN:", "SIM:"
AXES = genuine.MOTOR_AXES
SWITCH = 100.0  # dial position of the high switch (motor.cmd: 100000 steps of 0.001 mm)
HARD_STOP_MARGIN = 1.0  # the sim's end of travel beyond each switch
FIELDS = ("VAL", "DVAL", "RBV", "DRBV", "DMOV", "MOVN", "HLS", "LLS", "RHLS", "RLLS", "MSTA",
          "LVIO", "MIP", "TDIR", "ATHM", "OFF", "SET", "FOFF", "SPMG", "CNEN", "JOGF",
          "JOGR", "HOMF", "HOMR", "STOP", "SYNC", "DIR", "HLM", "LLM", "DHLM", "DLLM")
# Positions (RBV, DRBV, ...) are compared as final values and relations, and as events
# only where a scenario asks for them: the readback rate differs (KEPT_READBACK_RATE).
MSTA_BITS = {name: bit for name, bit in Msta.__members__.items()}

# The differences that stay (docs/genuine-differences.md), by name.
KEPT_REPLY_RACE = "put-callback reply races the monitors of its last processing"
KEPT_TRIP_PARKING = "after a trip motorSim returns onto the switch, the sim stops past it"
KEPT_READBACK_RATE = "readbacks every 25 ms (sim) against every 100 ms (motorSim)"
KEPT_STOP_RACE = "a STOP right after a move: the genuine driver's first callback races it"


def _sim_config() -> dict[str, Any]:
    """The simulated bench as motor.cmd configures the genuine axes."""
    motors = {name: {"pv_root": f"{SIM_PREFIX}{name}", "lo_lim": -SWITCH, "hi_lim": SWITCH,
                     "center": 0} for name in AXES}
    physics = {name: {"low_switch": -SWITCH, "high_switch": SWITCH, "start": 0.0,
                      "velo": 10, "accl": 0.2, "vmax": 20, "jvel": 10, "hvel": 10,
                      "mres": 0.001, "desc": f"sim axis {index}"}
               for index, name in enumerate(AXES, start=1)}
    return {"general": {"tolerance": 0}, "motors": motors,
            "sim": {"time_scale": 1.0, "motors": physics}}


@dataclass
class Servers:
    env: dict[str, str]  # a client environment that finds both servers (loopback only)


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Servers:
    genuine.skip_unless_built(genuine.MOTOR_VARS, "the genuine motor record")
    config = tmp_path_factory.mktemp("differential") / "bench.yaml"
    config.write_text(yaml.safe_dump(_sim_config(), sort_keys=False))
    genuine_ioc = genuine.start_motor_ioc(GENUINE_PREFIX)
    try:
        with start_sim(config, time_scale=1.0) as sim:
            yield Servers(epicsenv.loopback_env(ca_ports=[genuine_ioc.port, sim.port]))
            assert sim.alive(), sim.stderr_text()[-2000:]
            assert genuine_ioc.alive(), genuine_ioc.log_text()[-2000:]
    finally:
        genuine_ioc.stop()


# --- one axis of one backend, driven by a scenario ------------------------------------
@dataclass
class Axis:
    """One motor record (genuine or simulated) as a scenario drives and records it."""

    backend: str  # "genuine" or "sim"
    pv: str
    trace: TraceClient
    labels: dict[int, str] = field(default_factory=dict)

    def name(self, field_name: str) -> str:
        return f"{self.pv}.{field_name}"

    def put(self, field_name: str, value: Any, *, callback: bool = False,
            label: str = "") -> int:
        ident = self.trace.put(self.name(field_name), value, callback=callback)
        self.labels[ident] = label or field_name
        return ident

    def put_wait(self, field_name: str, value: Any, *, label: str = "",
                 timeout: float = 30.0) -> int:
        """Put with put-callback and return once it completed and (a field other than
        VAL, which the record posts on its own terms) its new value was posted: the reply
        and the monitors race (KEPT_REPLY_RACE), and the next put must come after both."""
        sent = self.mark()
        ident = self.put(field_name, value, callback=True, label=label)
        self.trace.wait_put(ident, timeout)
        if field_name != "VAL" and self.name(field_name) in self.trace.monitored:
            self.wait(field_name, lambda _: True, after=sent, what="posted")
        return ident

    def mark(self) -> int:
        return self.trace.mark()

    def value(self, field_name: str) -> Any:
        event = self.trace.latest(self.name(field_name))
        assert event is not None, f"{self.name(field_name)}: no monitor update yet"
        return event.value

    def wait(self, field_name: str, predicate: Callable[[Any], bool], *, after: int,
             timeout: float = 20.0, what: str = "") -> Event:
        """The first update of a field after `after` whose value satisfies predicate."""
        pv = self.name(field_name)
        return self.trace.wait_for(
            lambda events: next((e for e in events if e.seq > after and e.kind == "mon" and
                                 e.pv == pv and predicate(e.value)), None),
            timeout, f"{self.backend} {pv} {what}")

    def wait_msta(self, bit: Msta, on: bool, *, after: int, timeout: float = 20.0) -> Event:
        return self.wait("MSTA", lambda v: bool(int(v) & bit) == on, after=after,
                         timeout=timeout, what=f"MSTA {bit.name}={int(on)}")

    def no_completion(self, ident: int, seconds: float) -> bool:
        """The put-callback is still pending after `seconds` (a bounded wait for nothing)."""
        try:
            self.trace.wait_put(ident, seconds)
        except AssertionError:
            return True
        return False

    def wait_done(self, *, after: int, timeout: float = 20.0) -> None:
        """Until the record is done again: DMOV was or went 0 after `after`, and is 1."""
        pv = self.name("DMOV")

        def done(events: list[Event]) -> bool:
            dmov = [e.value for e in events if e.kind == "mon" and e.pv == pv]
            before = [e.value for e in events if e.kind == "mon" and e.pv == pv and
                      e.seq <= after][-1:]
            since = dmov[len(dmov) - len([e for e in events if e.kind == "mon" and
                                          e.pv == pv and e.seq > after]):]
            return bool(since) and since[-1] == 1 and (0 in since or before == [0])

        self.trace.wait_for(done, timeout, f"{self.backend} {pv} 0 then 1")

    def window(self, start: int) -> Window:
        """This axis' events since `start` (up to now), with every field's value just
        before it; the next step starts at its `end`."""
        end = self.trace.mark()
        events = [e for e in list(self.trace.events) if e.pv.startswith(f"{self.pv}.")]
        before = {e.pv.split(".", 1)[1]: e.value for e in events
                  if e.kind == "mon" and e.seq <= start}
        history = [e for e in events if e.seq <= end]
        return Window(self, dict(before), [e for e in history if e.seq > start], end, history)


@dataclass
class Window:
    """What one axis showed during a scenario (or a step of it)."""

    axis: Axis
    before: dict[str, Any]
    events: list[Event]
    end: int
    history: list[Event] = field(default_factory=list)  # the axis' events up to `end`

    def final(self, field_name: str) -> Any:
        values = self.values(field_name)
        return values[-1] if values else self.before.get(field_name)

    def values(self, field_name: str) -> list[Any]:
        return [e.value for e in self.events if e.kind == "mon" and
                e.pv.endswith(f".{field_name}")]

    def tokens(self, kinds: Iterable[str]) -> list[str]:
        """The order of events, as changes: "DMOV=0", "MSTA.DONE=1", "PUT:move".
        `kinds` picks them: field names, MSTA.<bit> names, and PUT."""
        kinds = set(kinds)
        last = dict(self.before)
        out: list[str] = []
        # the race is settled over the whole history: a put may start before the window
        start = self.events[0].seq if self.events else self.end + 1
        settled = replies_after_their_processing(self.history)
        for event in (e for e in settled if start <= e.seq <= self.end):
            if event.kind == "put_done":
                if "PUT" in kinds:
                    out.append(f"PUT:{self.axis.labels.get(event.ident, '?')}")
                continue
            if event.kind != "mon":
                continue
            name = event.pv.split(".", 1)[1]
            old, last[name] = last.get(name), event.value
            if name == "MSTA":
                changed = int(old or 0) ^ int(event.value)
                out += [f"MSTA.{bit}={int(bool(int(event.value) & mask))}"
                        for bit, mask in MSTA_BITS.items()
                        if f"MSTA.{bit}" in kinds and changed & mask]
            elif name in kinds and _shown(old) != _shown(event.value):
                out.append(f"{name}={_shown(event.value)}")
        return out


def _shown(value: Any) -> Any:
    """A value as compared: positions to the record's precision (3 decimals)."""
    if isinstance(value, float):
        return round(value, 3) + 0.0  # no -0.0
    return value


def replies_after_their_processing(events: list[Event]) -> list[Event]:
    """KEPT_REPLY_RACE: each put-callback completion placed after the monitors of the
    processing that completed it, which may arrive before or after it. A completion
    means the record was done (DMOV=1) and had posted the written field, so it goes
    after: the DMOV=1 that ends the put's own processing (a drive field's DMOV pulse, or
    the DMOV=1 the record waited for), with the buttons posted after DMOV (motorRecord's
    monitor() posts JOGF, JOGR, HOMF, HOMR last), and the posts of the written field,
    all before the next put is sent."""
    ordered = list(events)
    for done in [e for e in events if e.kind == "put_done"]:
        index = ordered.index(done)
        sent = next((i for i, e in enumerate(ordered) if e.kind == "put_sent" and
                     e.ident == done.ident), None)
        if sent is None:
            continue
        written = done.pv.rsplit(".", 1)[-1]
        prefix = done.pv.rsplit(".", 1)[0] + "."
        boundary = next((i for i in range(index + 1, len(ordered))
                         if ordered[i].kind == "put_sent" and
                         ordered[i].pv.startswith(prefix)), len(ordered))
        target = index
        dmov_now = _dmov_before(ordered, prefix, index)
        start = sent
        if written in DRIVE_FIELDS:  # special() drops DMOV: the pulse after the put
            start = next((i for i in range(sent, boundary) if _is(ordered[i], prefix, "DMOV",
                                                                  0)), boundary)
            dmov_now = 0 if start < boundary else dmov_now
        if dmov_now == 0:
            rise = next((i for i in range(max(start, sent), boundary)
                         if _is(ordered[i], prefix, "DMOV", 1)), None)
            if rise is not None:
                while rise + 1 < boundary and ordered[rise + 1].pv.rsplit(".", 1)[-1] in \
                        BUTTONS and ordered[rise + 1].pv.startswith(prefix):
                    rise += 1
                target = max(target, rise)
        posts = [i for i in range(index + 1, boundary)
                 if ordered[i].kind == "mon" and ordered[i].pv == done.pv]
        if written not in DRIVE_FIELDS and posts:
            target = max(target, posts[-1])
        if target > index:
            ordered.insert(target, ordered.pop(index))
    return ordered


DRIVE_FIELDS = {"VAL", "DVAL", "RVAL", "RLV", "TWF", "TWR"}
BUTTONS = {"JOGF", "JOGR", "HOMF", "HOMR"}


def _is(event: Event, prefix: str, name: str, value: Any) -> bool:
    return event.kind == "mon" and event.pv == f"{prefix}{name}" and event.value == value


def _dmov_before(events: list[Event], prefix: str, index: int) -> Any:
    return next((e.value for e in reversed(events[:index])
                 if e.kind == "mon" and e.pv == f"{prefix}DMOV"), 1)


# --- running the scenarios on both backends, all axes at once -----------------------------
Scenario = Callable[[Axis], dict[str, Any]]
# axis -> the scenarios run on it, in order: (name, scenario)
CHAINS: dict[str, list[tuple[str, Scenario]]] = {name: [] for name in AXES}


def scenario(axis: str) -> Callable[[Scenario], Scenario]:
    """Register a scenario to run on GEN:<axis> and SIM:<axis> (after the ones before)."""

    def register(function: Scenario) -> Scenario:
        CHAINS[axis].append((function.__name__, function))
        return function

    return register


def run_both(env: dict[str, str], axis: str, function: Scenario) -> tuple[dict, dict]:
    """One scenario on GEN:<axis> and SIM:<axis> at once, on one recording client."""
    with TraceClient(env) as trace:
        pair = [Axis("genuine", f"{GENUINE_PREFIX}{axis}", trace),
                Axis("sim", f"{SIM_PREFIX}{axis}", trace)]
        trace.monitor(one.name(name) for one in pair for name in FIELDS)
        with ThreadPoolExecutor(2) as pool:
            genuine_run, sim_run = pool.map(function, pair)
    return genuine_run, sim_run


class Runs:
    """The scenarios' results, run in the background as the module starts."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self._pool = ThreadPoolExecutor(len(CHAINS))
        self._chains = {axis: self._pool.submit(self._run_chain, axis) for axis in CHAINS}

    def _run_chain(self, axis: str) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for name, function in CHAINS[axis]:
            try:
                results[name] = run_both(self.env, axis, function)
            except Exception as error:  # reported by the scenario's test, and the rest
                results[name] = error
                break
        return results

    def get(self, name: str) -> tuple[dict, dict]:
        axis = next(axis for axis, chain in CHAINS.items() if name in dict(chain))
        results = self._chains[axis].result(timeout=120)
        if name not in results:
            failed = next(iter(results.values()))
            raise AssertionError(f"not run: an earlier scenario on {axis} failed: {failed!r}")
        if isinstance(results[name], Exception):
            raise results[name]
        return results[name]

    def close(self) -> None:
        self._pool.shutdown(wait=True)


@pytest.fixture(scope="module")
def initial(servers: Servers) -> dict[str, dict[str, tuple]]:
    """What a client reads first on a fresh axis (before any scenario moves it)."""
    names = FIELDS + ("VELO", "JVEL", "HVEL", "ACCL", "VMAX", "MRES", "PREC", "EGU", "DESC",
                      "HHSV", "LLSV", "HSV", "LSV", "HLSV", "RDBD", "RTRY", "NTM", "UEIP",
                      "URIP", "RCNT", "MISS", "TWV", "TWF", "TWR", "RTYP", "SEVR", "STAT",
                      "UDF", "VERS", "RRBV", "DIFF", "CDIR", "MMAP", "NMAP", "NTMF", "ACCS",
                      "ACCU", "RHLM", "RLLM", "RSTM", "BVEL", "BACC", "UREV", "SREV", "S",
                      "SMAX", "ERES", "JAR", "FRAC", "BDST")
    got: dict[str, dict[str, tuple]] = {GENUINE_PREFIX: {}, SIM_PREFIX: {}}
    with TraceClient(servers.env) as trace:
        for name in names:
            for prefix in got:
                reply = trace.get(f"{prefix}m1.{name}", ctrl=True)
                got[prefix][name] = (reply.extra["type"], reply.extra["count"],
                                     reply.extra["enum"], reply.extra["units"],
                                     reply.extra["prec"], _shown(reply.value))
    return got


@pytest.fixture(scope="module")
def runs(servers: Servers, initial) -> Runs:
    started = Runs(servers.env)
    yield started
    started.close()


def assert_same_order(genuine_window: Window, sim_window: Window, kinds: Iterable[str],
                      what: str, expected: list[str] | None = None) -> list[str]:
    """The sim shows the genuine record's events in the genuine order (or in `expected`,
    the genuine order transformed by a named kept difference)."""
    kinds = list(kinds)
    genuine_tokens, got = genuine_window.tokens(kinds), sim_window.tokens(kinds)
    expected = genuine_tokens if expected is None else expected
    assert got == expected, (f"{what}: the sim's events differ from the genuine record's\n"
                             f"  genuine: {genuine_tokens}\n  expected: {expected}\n"
                             f"  sim:     {got}\n"
                             f"  genuine events: {raw(genuine_window)}\n"
                             f"  sim events: {raw(sim_window)}")
    return got


def raw(window: Window) -> str:
    """A window's events as they arrived (for a failure message)."""
    return " ".join(f"{e.kind}:{e.pv.rsplit('.', 1)[-1]}={e.value}" if e.kind == "mon" else
                    f"{e.kind}:{e.pv.rsplit('.', 1)[-1]}#{e.ident}" for e in window.events
                    if not e.pv.endswith(("RBV", "DRBV")))


def assert_same_finals(genuine_window: Window, sim_window: Window, names: Iterable[str],
                       what: str) -> None:
    for name in names:
        expected, got = _shown(genuine_window.final(name)), _shown(sim_window.final(name))
        assert got == expected, f"{what}: final {name} genuine {expected!r}, sim {got!r}"


def rbv_with_dmov_1(window: Window) -> tuple[float, float]:
    """(VAL, the readback) as they were when DMOV rose to 1 (the last RBV before it)."""
    val, rbv = window.before.get("VAL"), window.before.get("RBV")
    for event in window.events:
        if event.kind != "mon":
            continue
        name = event.pv.split(".", 1)[1]
        if name == "VAL":
            val = event.value
        elif name == "RBV":
            rbv = event.value
        elif name == "DMOV" and event.value == 1:
            return val, rbv
    raise AssertionError(f"{window.axis.backend}: DMOV never rose to 1")


def kept_trip_parking_leaving(tokens: list[str], switch_bit: str) -> list[str]:
    """KEPT_TRIP_PARKING, leaving a switch: motorSim sits on the switch, so it releases
    with the first readback in motion; the sim sits past it, so the axis shows moving
    before the switch releases."""
    tokens = list(tokens)
    release, moving = tokens.index(f"MSTA.{switch_bit}=0"), tokens.index("MSTA.MOVING=1")
    if release < moving:
        tokens.insert(moving, tokens.pop(release))
    return tokens


def kept_stop_race(tokens: list[str], after: str) -> list[str]:
    """KEPT_STOP_RACE: a STOP processed right after a move command (here the client's
    STOP held behind its second put-callback). On the genuine IOC the driver's first
    status callback for the move (MSTA DONE=0, MOVN=1, from the asyn port thread) and the
    STOP's processing (rsrv's thread) race: if the STOP comes first the record has not
    seen the axis move and takes VAL = readback at once, else when the axis has stopped.
    The sim processes the STOP first, always: the genuine order in the other case is put
    into that form."""
    tokens = list(tokens)
    begin = tokens.index(after)
    stop = tokens.index("STOP=1", begin)
    callback = ["MSTA.DONE=0", "MOVN=1"]
    if tokens[begin:stop][-2:] != callback:
        return tokens  # the STOP came first on the genuine IOC too
    del tokens[stop - 2:stop]
    stop -= 2
    sync = next(i for i in range(stop, len(tokens)) if tokens[i].startswith("VAL="))
    tokens.insert(stop + 1, tokens.pop(sync))
    cleared = tokens.index("STOP=0", stop)
    tokens[cleared + 1:cleared + 1] = callback
    return tokens


# Event kinds compared for a motion.
MOTION = ("DMOV", "MOVN", "MIP", "MSTA.DONE", "MSTA.MOVING", "LVIO", "PUT")
MOVE_EXPECTED = ["DMOV=0", "MIP=32", "MSTA.DONE=0", "MOVN=1", "MSTA.MOVING=1",
                 "MSTA.DONE=1", "MSTA.MOVING=0", "MIP=0", "MOVN=0", "DMOV=1"]


def setup_fast(axis: Axis, velo: float = 50.0, hvel: float = 10.0) -> None:
    """Speeds for the set-up moves (both records the same): VMAX first, it bounds them."""
    for name, value in (("VMAX", 100.0), ("VELO", velo), ("HVEL", hvel)):
        axis.put_wait(name, value)


def move(axis: Axis, value: float, label: str = "move") -> Window:
    """VAL=value with put-callback, until the record is done; its window."""
    start = axis.mark()
    axis.put_wait("VAL", value, label=label)
    axis.wait_done(after=start)
    return axis.window(start)


# --- m1: absolute move, STOP, CNEN --------------------------------------------------------
@scenario("m1")
def absolute_move(axis: Axis) -> dict:
    return {"move": move(axis, 2.0)}


@scenario("m1")
def stop_mid_move(axis: Axis) -> dict:
    start = axis.mark()
    ident = axis.put("VAL", 6.0, callback=True, label="move")
    axis.wait("RBV", lambda v: v > 3.0, after=start)
    axis.put("STOP", 1)
    axis.trace.wait_put(ident)
    axis.wait_done(after=start)
    return {"stop": axis.window(start)}


@scenario("m1")
def cnen_then_move(axis: Axis) -> dict:
    windows = {}
    for step, cnen, target in (("disabled", 0, 1.0), ("enabled", 1, 0.0)):
        start = axis.mark()
        axis.put_wait("CNEN", cnen, label="cnen")
        axis.wait("CNEN", lambda v, cnen=cnen: v == cnen, after=start)  # its own post
        axis.put_wait("VAL", target, label="move")
        axis.wait_done(after=start)
        windows[step] = axis.window(start)
    return windows


@scenario("m1")
def limit_put_callback_while_moving(axis: Axis) -> dict:
    start = axis.mark()
    axis.put("VAL", 4.0)  # a plain put: no put-callback owns the record
    axis.wait_msta(Msta.MOVING, True, after=start)
    axis.put_wait("DHLM", SWITCH - 1, label="dhlm")  # processes the record: waits for it
    axis.wait_done(after=start)
    window = axis.window(start)
    axis.put_wait("DHLM", SWITCH)
    return {"dhlm": window}


def test_initial_values_types_and_enum_strings_match(initial):
    """caget -d DBR_CTRL of the fields a client reads, on a fresh axis: type, count,
    enum strings, units, precision and value."""
    for name, genuine_reply in initial[GENUINE_PREFIX].items():
        sim_reply = initial[SIM_PREFIX][name]
        assert sim_reply == genuine_reply, (
            f"{name}: (type, count, enum strings, units, precision, value)\n"
            f"  genuine: {genuine_reply}\n  sim:     {sim_reply}")
    # the user's report: CNEN starts at Disable, MSTA travels as DOUBLE, NO_ALARM severities
    assert initial[SIM_PREFIX]["CNEN"][5] == 0
    assert initial[SIM_PREFIX]["MSTA"][0] == "ctrl_double"
    assert all(initial[SIM_PREFIX][name][5] == 0 for name in ("HHSV", "LLSV", "HSV", "LSV"))


def test_absolute_move_with_put_callback(runs: Runs):
    """VAL=2 with put-callback: the order of DMOV, MOVN, MIP, MSTA and the completion; the
    completion comes with DMOV=1, when the last RBV is the target (its reply may arrive
    before those monitors: KEPT_REPLY_RACE)."""
    genuine_run, sim_run = runs.get("absolute_move")
    kinds = MOTION + ("TDIR", "MSTA.DIRECTION", "MSTA.HOME", "ATHM")
    assert_same_order(genuine_run["move"], sim_run["move"], kinds,
                      f"absolute move ({KEPT_REPLY_RACE}: settled)")
    assert genuine_run["move"].tokens(MOTION) == MOVE_EXPECTED + ["PUT:move"]
    for run in (genuine_run, sim_run):
        window = run["move"]
        assert rbv_with_dmov_1(window) == (2.0, 2.0)
        ordered = replies_after_their_processing(window.events)
        done = next(i for i, e in enumerate(ordered) if e.kind == "put_done")
        last_rbv = max(i for i, e in enumerate(ordered) if e.pv.endswith(".RBV"))
        assert last_rbv < done
    assert_same_finals(genuine_run["move"], sim_run["move"],
                       ("VAL", "DVAL", "RBV", "DRBV", "DMOV", "MOVN", "MSTA", "MIP", "TDIR",
                        "ATHM", "LVIO"), "absolute move")


def test_stop_mid_move(runs: Runs):
    """STOP while a put-callback move runs: MIP STOP, the callback completes when the axis
    has stopped, VAL takes the readback."""
    genuine_run, sim_run = runs.get("stop_mid_move")
    tokens = assert_same_order(genuine_run["stop"], sim_run["stop"],
                               MOTION + ("STOP", "TDIR"), "STOP mid-move")
    assert tokens[tokens.index("STOP=1"):tokens.index("STOP=1") + 3] == [
        "STOP=1", "MIP=512", "STOP=0"]
    for run in (genuine_run, sim_run):
        val, rbv = rbv_with_dmov_1(run["stop"])
        assert val == rbv and 3.0 < rbv < 6.0
        assert run["stop"].final("VAL") == run["stop"].final("RBV")


def test_cnen_disable_does_not_stop_motion_without_closed_loop_support(runs: Runs):
    """The genuine CNEN starts at Disable and moves work regardless (motorSim has no
    closed-loop support: MSTA GAIN_SUPPORT clear)."""
    genuine_run, sim_run = runs.get("cnen_then_move")
    for step in ("disabled", "enabled"):
        tokens = assert_same_order(genuine_run[step], sim_run[step], MOTION + ("CNEN",),
                                   f"move with CNEN {step}")
        assert tokens[-len(MOVE_EXPECTED) - 1:] == MOVE_EXPECTED + ["PUT:move"]
    assert_same_finals(genuine_run["enabled"], sim_run["enabled"], ("CNEN", "RBV", "MSTA"),
                       "CNEN")
    assert not int(sim_run["disabled"].final("MSTA")) & Msta.GAIN_SUPPORT


def test_put_callback_to_a_limit_completes_when_the_move_ends(runs: Runs):
    """Any put-callback that processes the record (DHLM here) completes only when the
    record is done: a client restoring limits of a moving axis waits for the move."""
    genuine_run, sim_run = runs.get("limit_put_callback_while_moving")
    tokens = assert_same_order(genuine_run["dhlm"], sim_run["dhlm"], MOTION + ("DHLM",),
                               "DHLM put-callback while moving")
    assert tokens[-2:] == ["DMOV=1", "PUT:dhlm"] and tokens.index("DHLM=99.0") < len(
        tokens) - 2


# --- m2: soft limit, SET ----------------------------------------------------------------
@scenario("m2")
def beyond_soft_limit(axis: Axis) -> dict:
    axis.put_wait("HLM", 5.0)
    start = axis.mark()
    axis.put_wait("VAL", 6.0, label="beyond")
    axis.wait("LVIO", lambda v: v == 1, after=start)
    axis.wait_done(after=start)
    beyond = axis.window(start)
    back = move(axis, 1.0, "back in")
    axis.put_wait("HLM", SWITCH)
    return {"beyond": beyond, "back": back}


@scenario("m2")
def set_redefinition(axis: Axis) -> dict:
    windows = {}
    steps = (("variable", "FOFF", 0, "VAL", 10.0),  # OFF moves, the dial stays
             ("frozen", "FOFF", 1, "VAL", 20.0),  # the dial moves (MIP LOAD_P)
             ("dial", "FOFF", 1, "DVAL", 1.0),  # a DVAL put in Set mode
             ("restore", "FOFF", 0, "VAL", 1.0))  # OFF back to 0
    for step, foff_name, foff, field_name, value in steps:
        start = axis.mark()
        axis.put_wait(foff_name, foff, label="foff")
        axis.put_wait("SET", 1, label="set")
        axis.put_wait(field_name, value, label=field_name.lower())
        axis.wait_done(after=start)
        axis.put_wait("SET", 0, label="use")
        axis.wait("SET", lambda v: v == 0, after=start)
        windows[step] = axis.window(start)
    return windows


def test_move_beyond_hlm_sets_lvio_and_pulses_dmov(runs: Runs):
    genuine_run, sim_run = runs.get("beyond_soft_limit")
    tokens = assert_same_order(genuine_run["beyond"], sim_run["beyond"],
                               MOTION + ("VAL", "DVAL"), "VAL beyond HLM")
    assert tokens == ["DMOV=0", "LVIO=1", "DMOV=1", "PUT:beyond"]  # VAL stays
    assert_same_order(genuine_run["back"], sim_run["back"], MOTION, "back inside HLM")
    assert_same_finals(genuine_run["back"], sim_run["back"], ("VAL", "RBV", "LVIO", "HLM"),
                       "back inside HLM")


def test_set_redefines_the_position_and_pulses_dmov(runs: Runs):
    genuine_run, sim_run = runs.get("set_redefinition")
    kinds = ("SET", "FOFF", "DMOV", "MIP", "MOVN", "MSTA.DONE", "LVIO", "PUT")
    for step in ("variable", "frozen", "dial", "restore"):
        tokens = assert_same_order(genuine_run[step], sim_run[step], kinds, f"SET {step}")
        assert "DMOV=0" in tokens and "MSTA.DONE=0" not in tokens  # a pulse, no motion
        assert_same_finals(genuine_run[step], sim_run[step],
                           ("OFF", "VAL", "DVAL", "RBV", "DRBV", "HLM", "LLM", "DHLM", "DLLM",
                            "SET", "FOFF", "DMOV", "MIP"), f"SET {step}")
    assert "MIP=128" in sim_run["frozen"].tokens(kinds)  # the controller loads the position


# --- m3: jog to the high switch, and what follows ------------------------------------------
@scenario("m3")
def jog_to_switch(axis: Axis) -> dict:
    setup_fast(axis)
    move(axis, SWITCH - 3)  # also the absolute move motorSim needs first (module doc)
    axis.put_wait("DHLM", 0)
    axis.put_wait("DLLM", 0)
    windows = {}
    start = axis.mark()
    jog = axis.put("JOGF", 1, callback=True, label="jog")
    axis.trace.wait_put(jog)
    axis.wait_done(after=start)
    axis.wait_msta(Msta.DONE, True, after=start)  # the controller settled on the switch
    windows["trip"] = axis.window(start)
    start = axis.mark()
    axis.put_wait("JOGF", 1, label="jog again")  # on the switch: ignored
    axis.wait("JOGF", lambda v: v == 0, after=start)
    windows["again"] = axis.window(start)
    start = axis.mark()
    axis.put_wait("SYNC", 1, label="sync")
    axis.wait("DVAL", lambda _: True, after=start)  # the last post of the processing
    windows["sync"] = axis.window(start)
    start = axis.mark()
    axis.put_wait("VAL", SWITCH + 4, label="further")  # further into the switch: refused
    axis.wait_done(after=start)
    done = axis.wait("DMOV", lambda v: v == 1, after=start)
    axis.wait_msta(Msta.DONE, True, after=done.seq)
    windows["further"] = axis.window(start)
    windows["back"] = move(axis, SWITCH - 3, "back")
    axis.put_wait("DHLM", SWITCH)
    axis.put_wait("DLLM", -SWITCH)
    return windows


def test_jogf_to_the_high_switch_with_soft_limits_off(runs: Runs):
    """The record is done at the trip (DMOV=1, MOVN=0, VAL = the readback then) while
    the axis still moves; MSTA DONE comes last."""
    genuine_run, sim_run = runs.get("jog_to_switch")
    kinds = ("JOGF", "MIP", "DMOV", "MOVN", "HLS", "LLS", "LVIO", "MSTA.DONE", "MSTA.MOVING",
             "MSTA.PLUS_LS", "MSTA.MINUS_LS", "PUT")
    tokens = assert_same_order(genuine_run["trip"], sim_run["trip"], kinds, "JOGF to switch")
    assert tokens == ["JOGF=1", "MIP=1", "DMOV=0", "MSTA.DONE=0", "MOVN=1", "MSTA.MOVING=1",
                      "MSTA.PLUS_LS=1", "MIP=0", "HLS=1", "MOVN=0", "DMOV=1", "JOGF=0",
                      "PUT:jog", "MSTA.DONE=1", "MSTA.MOVING=0"]
    for run in (genuine_run, sim_run):
        val, rbv = rbv_with_dmov_1(run["trip"])
        assert val == rbv >= SWITCH  # VAL is the readback at the trip
    # KEPT_TRIP_PARKING: motorSim returns exactly onto the switch, the sim stays past it.
    assert genuine_run["trip"].final("DRBV") == SWITCH
    assert SWITCH < sim_run["trip"].final("DRBV") < SWITCH + HARD_STOP_MARGIN


def test_jogf_again_on_the_switch_is_ignored_and_reads_back_0(runs: Runs):
    genuine_run, sim_run = runs.get("jog_to_switch")
    kinds = ("JOGF", "MIP", "DMOV", "MOVN", "MSTA.DONE", "LVIO", "PUT")
    tokens = assert_same_order(genuine_run["again"], sim_run["again"], kinds, "JOGF again")
    assert tokens == ["JOGF=1", "JOGF=0", "PUT:jog again"]
    for run in (genuine_run, sim_run):
        assert run["again"].values("RBV") == []  # no motion


def test_sync_after_a_trip_takes_the_settled_readback(runs: Runs):
    genuine_run, sim_run = runs.get("jog_to_switch")
    tokens = assert_same_order(genuine_run["sync"], sim_run["sync"],
                               ("SYNC", "DMOV", "MIP", "PUT"), "SYNC after the trip")
    assert tokens == ["SYNC=1", "SYNC=0", "PUT:sync"]
    for run in (genuine_run, sim_run):
        window = run["sync"]
        assert window.final("VAL") == window.final("RBV") == window.before["RBV"]
        assert window.final("DVAL") == window.final("DRBV")


def test_move_further_into_the_active_switch_is_refused(runs: Runs):
    """VAL beyond the active switch: the controller refuses, VAL returns to the
    readback, DMOV pulses, MSTA DONE blinks."""
    genuine_run, sim_run = runs.get("jog_to_switch")
    kinds = MOTION + ("HLS",)
    tokens = assert_same_order(genuine_run["further"], sim_run["further"], kinds,
                               "VAL further into the switch")
    assert tokens == ["DMOV=0", "MIP=32", "MSTA.DONE=0", "MIP=0", "DMOV=1", "PUT:further",
                      "MSTA.DONE=1"]
    for run in (genuine_run, sim_run):
        window = run["further"]
        assert window.values("VAL") == [SWITCH + 4, window.final("RBV")]
        assert window.values("RBV") == []


def test_moving_back_off_the_switch(runs: Runs):
    genuine_run, sim_run = runs.get("jog_to_switch")
    kinds = MOTION + ("HLS", "MSTA.PLUS_LS")
    expected = kept_trip_parking_leaving(genuine_run["back"].tokens(kinds), "PLUS_LS")
    assert_same_order(genuine_run["back"], sim_run["back"], kinds,
                      f"back off the switch ({KEPT_TRIP_PARKING})", expected)
    assert_same_finals(genuine_run["back"], sim_run["back"], ("VAL", "RBV", "HLS", "MSTA"),
                       "back off the switch")


# --- m4: SPMG, then retargets --------------------------------------------------------------
STOP, PAUSE, GO = 0, 1, 3  # SPMG by index (the recorder puts enums as numbers)


@scenario("m4")
def spmg(axis: Axis) -> dict:
    windows, pending = {}, {}
    start = axis.mark()
    ident = axis.put("VAL", 3.0, callback=True, label="move")
    axis.wait("RBV", lambda v: v > 1.0, after=start)
    paused_at = axis.mark()
    axis.put("SPMG", PAUSE)
    axis.wait_msta(Msta.DONE, True, after=paused_at)  # the axis stopped
    pending["pause"] = axis.no_completion(ident, 0.3)  # and the record still waits
    windows["pause"] = axis.window(start)
    start = windows["pause"].end
    axis.put("SPMG", GO)
    axis.trace.wait_put(ident)
    axis.wait_done(after=start)
    windows["go"] = axis.window(start)
    start = axis.mark()
    ident = axis.put("VAL", 0.0, callback=True, label="move")
    axis.wait("RBV", lambda v: v < 2.0, after=start)
    axis.put("SPMG", STOP)
    axis.trace.wait_put(ident)
    axis.wait_done(after=start)
    windows["stop"] = axis.window(start)
    start = axis.mark()
    ident = axis.put("VAL", -2.0, callback=True, label="held")  # while SPMG=Stop
    axis.wait("DMOV", lambda v: v == 0, after=start)
    pending["stopped"] = axis.no_completion(ident, 0.3)
    windows["stopped"] = axis.window(start)
    start = windows["stopped"].end
    axis.put("SPMG", GO)
    axis.trace.wait_put(ident)
    axis.wait_done(after=start)
    windows["go after stop"] = axis.window(start)
    return {**windows, "pending": pending}


@scenario("m4")
def retarget(axis: Axis) -> dict:
    windows = {}
    # A second put-callback while moving: held until the first completes.
    start = axis.mark()
    first = axis.put("VAL", 3.0, callback=True, label="first")
    axis.wait("RBV", lambda v: v > 1.5, after=start)
    second = axis.put("VAL", 4.0, callback=True, label="second")
    axis.trace.wait_put(first)
    axis.trace.wait_put(second)
    # the second's processing posts VAL=4 after its DMOV=0: done when DMOV is 1 again
    axis.wait_done(after=axis.wait("VAL", lambda v: v == 4.0, after=start).seq)
    windows["callback"] = axis.window(start)
    # A plain put while moving, same direction: the move ends, then a retry goes on.
    start = axis.mark()
    ident = axis.put("VAL", 0.0, callback=True, label="move")
    axis.wait("RBV", lambda v: v < 2.5, after=start)
    axis.put("VAL", -1.0)
    axis.trace.wait_put(ident)
    axis.wait_done(after=start)
    windows["plain"] = axis.window(start)
    # A plain put behind the moving axis: the new-target monitor stops it first.
    start = axis.mark()
    ident = axis.put("VAL", 2.0, callback=True, label="move")
    axis.wait("RBV", lambda v: v > 0.5, after=start)
    axis.put("VAL", -2.0)
    axis.trace.wait_put(ident)
    axis.wait_done(after=start)
    windows["behind"] = axis.window(start)
    # Two put-callbacks on one channel from one client, then a STOP from it: the genuine
    # IOC (rsrv) holds the client's whole circuit until the first completes.
    start = axis.mark()
    first = axis.put("VAL", 2.0, callback=True, label="first")
    axis.wait("RBV", lambda v: v > -1.0, after=start)
    second = axis.put("VAL", 3.0, callback=True, label="second")
    axis.put("STOP", 1)
    axis.trace.wait_put(first)
    axis.trace.wait_put(second)
    axis.wait("STOP", lambda v: v == 0, after=start)
    axis.wait_done(after=axis.wait("STOP", lambda v: v == 1, after=start).seq)
    windows["circuit"] = axis.window(start)
    return windows


def test_spmg_pause_keeps_the_put_callback_until_go(runs: Runs):
    genuine_run, sim_run = runs.get("spmg")
    assert genuine_run["pending"]["pause"] and sim_run["pending"]["pause"]
    kinds = MOTION + ("SPMG",)
    tokens = assert_same_order(genuine_run["pause"], sim_run["pause"], kinds, "SPMG=Pause")
    assert tokens[-6:] == ["SPMG=1", "MIP=512", "MSTA.DONE=1", "MSTA.MOVING=0", "MIP=64",
                           "MOVN=0"]  # stopped, DMOV still 0 (a retry waits for Go)
    tokens = assert_same_order(genuine_run["go"], sim_run["go"], kinds, "SPMG=Go")
    assert tokens[:2] == ["SPMG=3", "MIP=96"] and tokens[-2:] == ["DMOV=1", "PUT:move"]
    assert_same_finals(genuine_run["go"], sim_run["go"], ("VAL", "RBV", "DMOV", "MSTA"),
                       "SPMG=Go")


def test_spmg_stop_ends_the_move_and_holds_a_new_one_until_go(runs: Runs):
    genuine_run, sim_run = runs.get("spmg")
    kinds = MOTION + ("SPMG",)
    assert_same_order(genuine_run["stop"], sim_run["stop"], kinds, "SPMG=Stop")
    for run in (genuine_run, sim_run):
        val, rbv = rbv_with_dmov_1(run["stop"])
        assert val == rbv and 0.0 < rbv < 2.0
    assert genuine_run["pending"]["stopped"] and sim_run["pending"]["stopped"]
    tokens = assert_same_order(genuine_run["stopped"], sim_run["stopped"],
                               kinds + ("VAL", "DVAL"), "VAL put while SPMG=Stop")
    assert tokens == ["DMOV=0", "VAL=-2.0"]  # DVAL is changed, but not posted until Go
    tokens = assert_same_order(genuine_run["go after stop"], sim_run["go after stop"],
                               kinds + ("VAL", "DVAL"), "Go after the held VAL")
    assert tokens[:3] == ["SPMG=3", "DVAL=-2.0", "MIP=32"]
    assert_same_finals(genuine_run["go after stop"], sim_run["go after stop"],
                       ("VAL", "RBV", "DMOV", "MSTA", "SPMG"), "Go after the held VAL")


def test_second_put_callback_waits_for_the_first_move(runs: Runs):
    genuine_run, sim_run = runs.get("retarget")
    kinds = MOTION + ("VAL",)
    tokens = assert_same_order(genuine_run["callback"], sim_run["callback"], kinds,
                               "second put-callback while moving")
    # VAL changes to 4 only after the first move is done
    assert tokens.index("VAL=4.0") > tokens.index("DMOV=1") > tokens.index("VAL=3.0")
    assert tokens.count("DMOV=1") == 2


def test_plain_put_while_moving_finishes_then_retries(runs: Runs):
    genuine_run, sim_run = runs.get("retarget")
    kinds = MOTION + ("VAL",)
    tokens = assert_same_order(genuine_run["plain"], sim_run["plain"], kinds,
                               "plain VAL put while moving")
    assert tokens.count("DMOV=1") == 1 and "MIP=96" in tokens  # one motion, with a retry
    tokens = assert_same_order(genuine_run["behind"], sim_run["behind"], kinds,
                               "plain VAL put behind the axis")
    assert "MIP=544" in tokens and "MIP=96" in tokens  # NTM: STOP, then the retry
    for step in ("plain", "behind"):
        assert_same_finals(genuine_run[step], sim_run[step], ("VAL", "RBV", "DMOV", "MIP"),
                           step)


def test_second_put_callback_from_one_client_holds_its_circuit(runs: Runs):
    """rsrv serialises a client's put-callbacks on one channel by stalling the client's
    circuit: its STOP is processed only once the first move is done (stopping the
    second)."""
    genuine_run, sim_run = runs.get("retarget")
    kinds = ("DMOV", "MOVN", "MIP", "MSTA.DONE", "VAL", "STOP", "PUT")
    expected = kept_stop_race(genuine_run["circuit"].tokens(kinds), "PUT:first")
    tokens = assert_same_order(genuine_run["circuit"], sim_run["circuit"], kinds,
                               f"put-callback, put-callback, STOP ({KEPT_STOP_RACE})",
                               expected)
    assert tokens.index("STOP=1") > tokens.index("PUT:first")
    for run in (genuine_run, sim_run):
        assert run["circuit"].final("VAL") == run["circuit"].final("RBV")
        assert abs(run["circuit"].final("RBV") - 2.0) < 0.5  # the second barely started


# --- m5: DIR=Neg, then JOGF -------------------------------------------------------------
@scenario("m5")
def dir_neg_jog(axis: Axis) -> dict:
    setup_fast(axis)
    move(axis, -(SWITCH - 3))  # also the absolute move motorSim needs first
    windows = {}
    start = axis.mark()
    axis.put_wait("DIR", 1, label="dir")
    axis.wait("OFF", lambda _: True, after=start)
    windows["dir"] = axis.window(start)
    axis.put_wait("DHLM", 0)
    axis.put_wait("DLLM", 0)
    start = axis.mark()
    jog = axis.put("JOGF", 1, callback=True, label="jog")
    axis.trace.wait_put(jog)
    axis.wait_done(after=start)
    axis.wait_msta(Msta.DONE, True, after=start)
    windows["trip"] = axis.window(start)
    axis.put_wait("DIR", 0)
    axis.put_wait("DHLM", SWITCH)
    axis.put_wait("DLLM", -SWITCH)
    return windows


def test_dir_neg_then_jogf_trips_the_raw_low_switch_as_hls(runs: Runs):
    genuine_run, sim_run = runs.get("dir_neg_jog")
    assert_same_order(genuine_run["dir"], sim_run["dir"], ("DIR", "DMOV", "MIP", "PUT"),
                      "DIR=Neg")
    assert_same_finals(genuine_run["dir"], sim_run["dir"],
                       ("DIR", "OFF", "VAL", "RBV", "DVAL", "HLM", "LLM", "DHLM", "DLLM"),
                       "DIR=Neg")
    kinds = ("JOGF", "MIP", "DMOV", "MOVN", "HLS", "LLS", "RHLS", "RLLS", "MSTA.DONE",
             "MSTA.MOVING", "MSTA.PLUS_LS", "MSTA.MINUS_LS", "PUT")
    tokens = assert_same_order(genuine_run["trip"], sim_run["trip"], kinds,
                               "JOGF with DIR=Neg")
    assert tokens.index("MSTA.MINUS_LS=1") < tokens.index("HLS=1") < tokens.index("DMOV=1")
    for run in (genuine_run, sim_run):
        val, rbv = rbv_with_dmov_1(run["trip"])
        # VAL is the readback at the trip, the dial (OFF - user with DIR=Neg) on the switch
        assert val == rbv and run["trip"].final("OFF") - rbv <= -SWITCH
        assert (run["trip"].final("HLS"), run["trip"].final("LLS")) == (1, 0)
        assert (run["trip"].final("RLLS"), run["trip"].final("RHLS")) == (1, 0)
    # KEPT_TRIP_PARKING
    assert genuine_run["trip"].final("DRBV") == -SWITCH
    assert -SWITCH - HARD_STOP_MARGIN < sim_run["trip"].final("DRBV") < -SWITCH


# --- m6: homing -----------------------------------------------------------------------
@scenario("m6")
def homing(axis: Axis) -> dict:
    setup_fast(axis, hvel=50.0)
    move(axis, 2.0)
    windows = {}
    start = axis.mark()
    axis.put_wait("HOMR", 1, label="homr")
    axis.wait_done(after=start)
    axis.wait("HOMR", lambda v: v == 0, after=start)
    windows["homr"] = axis.window(start)
    move(axis, 60.0)
    start = axis.mark()
    ident = axis.put("HOMF", 1, callback=True, label="homf")
    done = axis.trace.wait_put(ident)  # the record is done at the switch...
    axis.wait("HOMF", lambda v: v == 0, after=start)
    released = axis.wait("DMOV", lambda v: v == 0, after=done.seq)  # ...the axis goes on
    axis.wait_done(after=released.seq - 1, timeout=30)
    axis.wait_msta(Msta.DONE, True, after=released.seq)
    windows["homf"] = axis.window(start)
    return windows


def test_homr_runs_to_the_home_mark(runs: Runs):
    genuine_run, sim_run = runs.get("homing")
    kinds = ("HOMR", "MIP", "DMOV", "MOVN", "MSTA.DONE", "MSTA.MOVING", "MSTA.HOME",
             "MSTA.HOMED", "ATHM", "PUT")
    tokens = assert_same_order(genuine_run["homr"], sim_run["homr"], kinds, "HOMR")
    assert tokens[:3] == ["HOMR=1", "MIP=16", "DMOV=0"] and "MSTA.HOMED=1" in tokens
    assert_same_finals(genuine_run["homr"], sim_run["homr"],
                       ("VAL", "RBV", "DRBV", "MSTA", "ATHM", "MIP", "HOMR"), "HOMR")


def test_homf_from_the_far_side_runs_to_the_limit_switch_first(runs: Runs):
    """motorSim homes towards +: from above the mark it meets the high switch, which ends
    the record's home (put-callback done, DMOV=1); the controller turns round, the
    record sees that as an external move (MIP EXTERNAL) and is done at home."""
    genuine_run, sim_run = runs.get("homing")
    kinds = ("HOMF", "MIP", "DMOV", "MOVN", "HLS", "MSTA.DONE", "MSTA.MOVING",
             "MSTA.PLUS_LS", "MSTA.HOME", "MSTA.HOMED", "ATHM", "PUT")
    tokens = assert_same_order(genuine_run["homf"], sim_run["homf"], kinds, "HOMF")
    assert tokens.index("PUT:homf") < tokens.index("MIP=32768") < tokens.index("MSTA.HOMED=1")
    assert_same_finals(genuine_run["homf"], sim_run["homf"],
                       ("VAL", "RBV", "DRBV", "MSTA", "ATHM", "MIP", "HOMF", "HLS", "DMOV"),
                       "HOMF")
