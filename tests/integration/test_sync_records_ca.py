"""The Sync records added for issue #13, over real CA on both backends (tests/benches.py),
driven with the real `caput`, `caget` and `camonitor`:

- a Run that cannot start is refused by the record: `caput -c` (and a plain caput)
  reports the write error, State reads Idle again after a Done scan and Message names
  the reason;
- the position records show the motor record's EGU and PREC, and follow a change;
- Proposal, Experiment, Sample and User are saved to the config file and carried by the
  next scan file; an outside edit of the file's data section reaches both.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import h5py
import pytest

from benchioc import config as cfg
from camon import CAMONITOR, CaMonitor, end, spawn
from iocharness import IocProcess

pytestmark = pytest.mark.integration

TIME_SCALE = 5
GENUINE_CAMERA = True  # the scans need the genuine simDetector on that backend
STEP = {"Mode": "Step", "Motor": "A", "Start": "0", "End": "1", "NumPoints": "3",
        "FramesPerPoint": "1", "Exposure": "0.01", "Period": "0.05", "SettleTime": "0",
        "RequireHomed": "0", "DarkFrames": "0", "FlatFrames": "0"}
TOO_SHORT = "Period 0.005 s is shorter than Exposure 0.01 s"


# ioc: tests/integration/conftest.py, once motor A (which the scans need) is connected
WAIT_FOR_MOTOR = "A"


def put(ioc: IocProcess, name: str, value: str) -> None:
    result = ioc.caput(name, value, timeout=10)
    assert result.returncode == 0 and "rror" not in result.stdout, result.stdout
    assert "rror" not in result.stderr, result.stderr


def configure(ioc: IocProcess, **changes: str) -> None:
    for name, value in {**STEP, **changes}.items():
        put(ioc, f"Sync:{name}", value)


def text(ioc: IocProcess, name: str) -> str:
    (line,) = ioc.caget(name, options=("-t", "-S"))
    return line.encode().decode("unicode_escape")


def scan_to_done(ioc: IocProcess) -> str:
    """Run a scan with `caput -c` (returns when it has ended); its file's path."""
    result = ioc.caput("Sync:Run", "1", timeout=120)
    assert result.returncode == 0 and "rror" not in result.stdout, result.stdout
    assert ioc.caget("Sync:State") == ["Done"], text(ioc, "Sync:Message")
    return text(ioc, "Sync:DataFile")


# --- 1. a refused Run ----------------------------------------------------------------------
WRITE_FAILED = "Channel write request failed"  # what caput says (it exits 0 regardless)


def test_a_refused_run_fails_the_put_and_leaves_no_done_behind(ioc):
    configure(ioc)
    scan_to_done(ioc)
    scan_id = text(ioc, "Sync:ScanId")
    put(ioc, "Sync:Period", "0.005")  # shorter than the exposure: the scan cannot work
    refused = ioc.caput("Sync:Run", "1", timeout=10)  # caput -c, as a user types it
    assert WRITE_FAILED in refused.stdout + refused.stderr, refused.stdout + refused.stderr
    assert ioc.caget("Sync:State") == ["Idle"]  # not the last scan's Done
    message = text(ioc, "Sync:Message")
    assert message.startswith(f"refused: {TOO_SHORT}"), message
    assert ioc.caget("Sync:Message", options=("-a", "-S"))[0].split()[-1] == "MAJOR"
    plain = ioc.caput("Sync:Run", "1", callback=False, timeout=10)  # without -c too
    assert WRITE_FAILED in plain.stdout + plain.stderr, plain.stdout + plain.stderr
    assert text(ioc, "Sync:ScanId") == scan_id  # no scan was started
    put(ioc, "Sync:Period", STEP["Period"])
    assert text(ioc, "Sync:Message").startswith("ready: ")
    assert ioc.caget("Sync:Run.DISP") == ["0"]  # Run takes puts again


def test_an_unhomed_motor_with_require_homed_refuses_run_until_the_setting_changes(ioc):
    configure(ioc)
    scan_to_done(ioc)
    scan_id = text(ioc, "Sync:ScanId")
    put(ioc, "Sync:RequireHomed", "1")  # motor A is not homed in this module
    refused = ioc.caput("Sync:Run", "1", timeout=10)
    assert WRITE_FAILED in refused.stdout + refused.stderr, refused.stdout + refused.stderr
    assert ioc.caget("Sync:State") == ["Idle"]
    assert text(ioc, "Sync:Message") == ("refused: motor A is not homed: home it first, or "
                                         "set RequireHomed to No")
    assert text(ioc, "Sync:ScanId") == scan_id
    put(ioc, "Sync:RequireHomed", "0")
    scan_to_done(ioc)  # accepted again at once


# --- 2. units from the motor record -------------------------------------------------------
def ctrl(ioc: IocProcess, *names: str) -> dict[str, tuple[str, int]]:
    """Each record's (EGU, PREC) as a client reads them (DBR_CTRL_DOUBLE)."""
    result = ioc.run_tool("caget", "-w", "5", "-d", "DBR_CTRL_DOUBLE", "-#", "1",
                          *[ioc.pv(name) for name in names])
    assert result.returncode == 0, result.stdout + result.stderr
    units: dict[str, tuple[str, int]] = {}
    egu, name = "", ""
    for line in result.stdout.splitlines():
        if line.startswith(ioc.pv("")):
            name = line.strip().removeprefix(ioc.pv(""))
        elif line.strip().startswith("Units:"):
            egu = line.split(":", 1)[1].strip()
        elif line.strip().startswith("Precision:"):
            units[name] = (egu, int(line.split(":", 1)[1]))
    assert set(units) == set(names), result.stdout
    return units


MOTOR_A = ("A:Position", "A:LoLim", "A:Center", "A:HiLim")
SYNC = ("Sync:Start", "Sync:End", "Sync:Positions", "Sync:SetPositions")


class PropertyWatch:
    """camonitor -m p: one line per property change (EGU, PREC) of each record."""

    def __init__(self, ioc: IocProcess, names: tuple[str, ...]) -> None:
        self.lines: dict[str, int] = {ioc.pv(name): 0 for name in names}
        self.changed = threading.Condition()
        self.process = spawn([CAMONITOR, "-m", "p", "-#", "1", *self.lines], ioc.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            name = line.split(None, 1)[0] if line.strip() else ""
            with self.changed:
                if name in self.lines:
                    self.lines[name] += 1
                    self.changed.notify_all()

    def wait_all(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while min(self.lines.values()) < count:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"property updates seen: {self.lines}"
                self.changed.wait(remaining)

    def close(self) -> None:
        end(self.process)


def test_position_records_show_the_motor_records_units_and_follow_a_change(bench, ioc):
    root = bench.root("A")
    egu, prec = ioc.read(f"{root}.EGU", f"{root}.PREC")
    put(ioc, "Sync:Motor", "A")
    assert set(ctrl(ioc, *MOTOR_A, *SYNC).values()) == {(egu, int(prec))}
    if not bench.genuine:
        assert (egu, prec) == ("mm", "3")  # configs/bench.yaml's sim
        assert ctrl(ioc, "D:Position")["D:Position"][0] == "deg"
        assert ctrl(ioc, "E:LoLim")["E:LoLim"] == ("mm", 4)
    watch = PropertyWatch(ioc, (*MOTOR_A, *SYNC))
    try:
        watch.wait_all(1)  # the first update of each, on connecting
        ioc.write(f"{root}.PREC", str(int(prec) + 2), callback=True, wait=10)
        watch.wait_all(2)  # each record posted its new properties
        assert set(ctrl(ioc, *MOTOR_A, *SYNC).values()) == {(egu, int(prec) + 2)}
    finally:
        watch.close()
        ioc.write(f"{root}.PREC", prec, callback=True, wait=10)


def test_choosing_another_motor_shows_its_units_on_the_scan_records(bench, ioc):
    if bench.genuine:
        pytest.skip("the genuine bench's motors share one set of units")
    put(ioc, "Sync:Motor", "D")
    try:
        assert {units[0] for units in ctrl(ioc, *SYNC).values()} == {"deg"}
    finally:
        put(ioc, "Sync:Motor", "A")
    assert {units[0] for units in ctrl(ioc, *SYNC).values()} == {"mm"}


# --- 3. what the next scan file carries ----------------------------------------------------
DATA = {"Proposal": "P-2026-042", "Experiment": "E-7", "Sample": "quartz 7",
        "User": "Ada Lovelace"}


def test_data_puts_are_saved_to_the_config_and_carried_by_the_next_scan(ioc):
    before = ioc.config.read_text()
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    for name, value in DATA.items():
        put(ioc, f"Sync:{name}", value)
        assert text(ioc, f"Sync:{name}") == value
    saved = ioc.config.read_text()
    assert [line for line in saved.splitlines() if line.lstrip().startswith("#")] == comments
    data = cfg.load(ioc.config).config.data
    assert (data.proposal, data.experiment, data.sample, data.user) == tuple(DATA.values())
    configure(ioc)
    with h5py.File(scan_to_done(ioc)) as h5:
        entry = h5["entry"]
        assert entry["experiment_identifier"][()].decode() == DATA["Proposal"]
        assert entry["data_policy/proposal"][()].decode() == DATA["Proposal"]
        assert entry["data_policy/experiment"][()].decode() == DATA["Experiment"]
        assert entry["sample/name"][()].decode() == DATA["Sample"]
        assert entry["user/name"][()].decode() == DATA["User"]


def test_an_outside_edit_of_the_data_section_reaches_the_records_and_the_next_file(ioc):
    doc = cfg.load(ioc.config)  # another program: motion-box, an editor
    data = doc.raw.setdefault("data", {})
    data.update({"proposal": "P-outside", "sample": "edited outside", "user": "bob",
                 "name": "outside", "directory": "outside-data"})
    sample_pv = ioc.pv("Sync:Sample")
    with CaMonitor(ioc.env, sample_pv) as samples:
        samples.wait_for(sample_pv, lambda _: True, timeout=10)
        doc.save()
        samples.wait_for(sample_pv, lambda _: samples.texts(sample_pv)[-1].startswith(
            "edited outside"), timeout=20)
    assert text(ioc, "Sync:Proposal") == "P-outside"
    assert text(ioc, "Sync:User") == "bob"
    configure(ioc)
    path = Path(scan_to_done(ioc))
    assert path.parent == ioc.config.resolve().parent / "outside-data"
    assert path.name.startswith("outside")
    with h5py.File(path) as h5:
        assert h5["entry/data_policy/proposal"][()].decode() == "P-outside"


def test_dark_and_flat_frames_take_puts_and_refuse_negative_counts_in_words(ioc):
    for name in ("DarkFrames", "FlatFrames"):
        put(ioc, f"Sync:{name}", "4")
        assert ioc.caget(f"Sync:{name}") == ["4"]
    put(ioc, "Sync:DarkFrames", "-1")  # no DRVH, so no clamping: refused in words
    # "refused: " after a finished scan (State back to Idle), "not ready: " otherwise
    message = text(ioc, "Sync:Message")
    assert message.endswith(": DarkFrames -1 must be between 0 and 10000"), message
    assert ioc.caget("Sync:Run.DISP") == ["1"]
    configure(ioc)
    assert ioc.caget("Sync:Run.DISP") == ["0"]
