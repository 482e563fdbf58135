"""The Qt screen's decisions, without Qt: which record each widget follows for one motor
or all, how the motor list and long strings are read, and the motion-box call."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from benchioc.records.spec import BenchRecords, MotorRecords
from benchioc.tools import gui

UI = Path(__file__).resolve().parents[2] / "opi" / "bench.ui"


def test_one_motor_binds_every_widget_to_that_motors_records():
    channels = gui.channels_for("BENCH:", "B")
    assert channels["homeHiButton"] == "ca://BENCH:B:HomeHi"
    assert channels["stateLabel"] == "ca://BENCH:B:State"
    assert channels["pvRootEdit"] == "ca://BENCH:B:PvRoot"
    assert all(c.startswith("ca://BENCH:B:") for c in channels.values())


def test_all_points_the_buttons_at_the_bench_and_leaves_motor_fields_unbound():
    channels = gui.channels_for("BENCH:", gui.ALL)
    assert channels["homeHiButton"] == "ca://BENCH:HomeAllHi"
    assert channels["homeLoButton"] == "ca://BENCH:HomeAllLo"
    assert channels["abortButton"] == "ca://BENCH:AbortAll"
    assert channels["homedLabel"] == "ca://BENCH:AllHomed"
    for widget in ("pvRootEdit", "loLimEdit", "centerEdit", "hiLimEdit", "stateLabel"):
        assert channels[widget] == ""


def test_channels_follow_the_spec_names():
    before = MotorRecords.HomeHi.name, BenchRecords.HomeAllHi.name
    try:  # a record renamed in the spec: the screen binds the new name
        object.__setattr__(MotorRecords.HomeHi, "name", "GoHigh")
        object.__setattr__(BenchRecords.HomeAllHi, "name", "AllGoHigh")
        assert gui.channels_for("BENCH:", "B")["homeHiButton"] == "ca://BENCH:B:GoHigh"
        assert gui.channels_for("BENCH:", gui.ALL)["homeHiButton"] == "ca://BENCH:AllGoHigh"
    finally:
        object.__setattr__(MotorRecords.HomeHi, "name", before[0])
        object.__setattr__(BenchRecords.HomeAllHi, "name", before[1])


def test_labels_of_text_records_show_text():
    assert gui.text_widgets() == {"messageLabel", "benchMessageLabel", "configFileLabel",
                                  "lastHomedLabel"}
    assert gui.table_cell_name("A", MotorRecords.State) == "tableAState"


def test_every_bound_widget_exists_in_the_ui_file():
    names = set(re.findall(r'<widget class="[^"]+" name="([^"]+)"', UI.read_text()))
    bound = {b.widget for b in gui.BINDINGS} | set(gui.BENCH_BINDINGS)
    assert bound <= names, bound - names
    assert {"motorCombo", "motorsGrid", "addButton", "removeButton", "newNameEdit",
            "editResultLabel"} <= names | set(re.findall(r'name="([^"]+)"', UI.read_text()))


@pytest.mark.parametrize("value, motors", [
    ("A,B,C", ["A", "B", "C"]),
    ("A, B ,", ["A", "B"]),
    ("", []),
    (b"A,B\0\0\0", ["A", "B"]),
    (np.array([65, 44, 66, 0, 0], dtype=np.uint8), ["A", "B"]),
    (None, []),
])
def test_motor_list_is_read_from_any_long_string_form(value, motors):
    assert gui.parse_motors(value) == motors


def test_add_runs_motion_box_on_the_served_config_file():
    args = gui.motion_box_args("add", "/data/bench.yaml", "F", ["SIM:F", "-1", "0", "1"])
    assert args == ["-m", "benchioc.tools.motionbox", "add", "/data/bench.yaml", "F", "SIM:F",
                    "-1", "0", "1"]
    assert gui.motion_box_args("remove", "/data/bench.yaml", "F")[2:] == [
        "remove", "/data/bench.yaml", "F"]


@pytest.mark.parametrize("verb, config_file, name, settings, words", [
    ("add", "", "F", ["SIM:F", "-1", "0", "1"], "ConfigFile"),
    ("add", "/c.yaml", "", ["SIM:F", "-1", "0", "1"], "name"),
    ("add", "/c.yaml", "F", ["SIM:F", "-1"], "got 2 values"),
    ("change", "/c.yaml", "F", [], "not add or remove"),
])
def test_edit_refused_before_running_anything_says_why(verb, config_file, name, settings,
                                                        words):
    with pytest.raises(ValueError, match=words):
        gui.motion_box_args(verb, config_file, name, settings)


def test_default_display_is_the_checkouts_opi_bench_py():
    assert gui.default_display() == UI.with_suffix(".py")
