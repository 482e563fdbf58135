"""motion-box's live homing display and final report, without EPICS."""

from __future__ import annotations

import io

from benchioc.engines.homing import HomingState, HomingUpdate
from benchioc.records.spec import MotorRecords
from benchioc.tools.motionbox.cli import report_homing
from benchioc.tools.motionbox.display import ProgressDisplay, format_table, number
from benchioc.tools.motionbox.homing import HomeOutcome, show_update
from benchioc.tools.motionbox.probe import UNREACHABLE, MotorStatus


def test_plain_output_prints_a_line_per_state_or_message_change_only():
    out = io.StringIO()
    display = ProgressDisplay(["A", "B"], out, tty=False)
    display.update("A", state="Seeking", progress=5, message="jogging to the high switch")
    display.update("A", progress=20)  # progress alone: no line in a log
    display.update("A", progress=40)
    display.update("B", state="Seeking", progress=5)
    display.update("A", state="Homed", progress=100, message="homed at 0")
    assert out.getvalue().splitlines() == [
        "A: Seeking 5% jogging to the high switch",
        "B: Seeking 5%",
        "A: Homed 100% homed at 0",
    ]
    assert "\x1b" not in out.getvalue()


def test_terminal_output_redraws_one_bar_per_motor_in_place():
    out = io.StringIO()
    display = ProgressDisplay(["A", "LONG"], out, tty=True)
    display.update("A", state="Seeking", progress=50, message="jogging")
    first = out.getvalue()
    assert first.count("\n") == 2 and "\x1b[2F" not in first
    display.update("LONG", progress=25)
    second = out.getvalue()[len(first):]
    assert second.startswith("\x1b[2F")  # back up over both rows, then rewrite them
    rows = [line.removeprefix("\x1b[2K") for line in second.removeprefix("\x1b[2F")
            .splitlines()]
    assert rows[0].startswith("A    [##########----------]  50% Seeking")
    assert rows[0].endswith("jogging")
    assert rows[1].startswith("LONG [#####---------------]  25% waiting")


def test_progress_is_clamped_and_unknown_motors_are_ignored():
    out = io.StringIO()
    display = ProgressDisplay(["A"], out, tty=False)
    display.update("A", state="Seeking", progress=250)
    display.update("Z", state="Seeking")
    assert display.row("A").progress == 100
    assert out.getvalue() == "A: Seeking 100%\n"


def test_report_exits_0_only_when_every_motor_homed(capsys):
    assert report_homing({"A": HomeOutcome(True), "B": HomeOutcome(True)}) == 0
    out, err = capsys.readouterr()
    assert out == "A: homed\nB: homed\n" and err == ""


def test_report_says_why_each_motor_did_not_home(capsys):
    outcomes = {"A": HomeOutcome(True),
                "B": HomeOutcome(False, "ended Failed: no high limit switch within 12 s"),
                "C": HomeOutcome(False, "not connected: SIM:C did not connect in 5 s")}
    assert report_homing(outcomes) == 1
    out, err = capsys.readouterr()
    assert out == "A: homed\n"
    assert "B: NOT homed: ended Failed: no high limit switch within 12 s" in err
    assert "C: NOT homed: not connected: SIM:C did not connect in 5 s" in err
    assert "2 of 3 motors not homed" in err


def test_status_lines_name_their_source():
    ioc = MotorStatus("A", "IOC BENCH:", "Homed at 0", [("last homed", "2026-01-01")])
    assert ioc.describe() == "A: Homed at 0 (from IOC BENCH:)\n    last homed: 2026-01-01"
    gone = MotorStatus("B", UNREACHABLE, "unreachable", [("reason", "no answer")])
    assert gone.describe().splitlines()[0] == "B: unreachable"


def test_engine_states_show_as_the_ioc_state_labels():
    """Homing here or through the IOC, a row shows the same words: the State record's."""
    labels = [option if isinstance(option, str) else option[0]
              for option in MotorRecords.State.options]
    assert labels == ["NotHomed", "Seeking", "Calibrating", "Centering", "Homed", "Aborted",
                      "Failed"]
    out = io.StringIO()
    display = ProgressDisplay(["A"], out, tty=False)
    for state in HomingState:
        show_update(display, "A", HomingUpdate(state, 50, f"A: {state.name}"))
    shown = [line.split()[1] for line in out.getvalue().splitlines()]
    assert shown == labels


def test_numbers_show_as_a_person_writes_them():
    assert [number(v) for v in (40.0, -2.5, -1e-15, -0.0, 0.001)] == [
        "40", "-2.5", "0", "0", "0.001"]


def test_table_columns_line_up():
    table = format_table(["motor", "x"], [["A", "1"], ["LONGNAME", "22"]])
    assert table.splitlines() == ["motor     x", "A         1", "LONGNAME  22"]
