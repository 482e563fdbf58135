"""The Phoebus screens are what the generator makes from the PV spec, and they say what
the operator needs: rows that open the motor screen with the right macros, every record
of the spec somewhere, State colours that match the spec's options."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from lxml import etree

from benchioc import config as cfg
from benchioc.records.spec import (
    BENCH_PVS,
    HOMING_STATES,
    MOTOR_PVS,
    SYNC_PVS,
    BenchRecords,
    MotorRecords,
    Pv,
    SyncRecords,
)
from benchioc.tools import screens

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "bench.yaml"
OPI = ROOT / "opi"
MACROS_A = {"P": "BENCH:", "M": "A", "ROOT": "SIM:A"}


@contextmanager
def renamed(names: dict[Pv, str]) -> Iterator[None]:
    """The spec with these records renamed (a Pv's name is set once, by its class)."""
    before = {pv: pv.name for pv in names}
    try:
        for pv, name in names.items():
            object.__setattr__(pv, "name", name)
        yield
    finally:
        for pv, name in before.items():
            object.__setattr__(pv, "name", name)


@pytest.fixture(scope="module")
def rendered() -> dict[str, bytes]:
    return screens.render(cfg.load(CONFIG).config)


def _tree(data: bytes) -> etree._Element:
    return etree.fromstring(data)


@pytest.mark.parametrize("name", screens.SCREENS)
def test_checked_in_screen_is_what_the_generator_makes(rendered, name):
    checked_in = (OPI / name).read_bytes()
    assert checked_in == rendered[name], (
        f"opi/{name} differs from the generator's output: run `python -m benchioc.tools.screens` "
        "and commit opi/")


def test_generating_twice_gives_the_same_bytes(rendered):
    assert screens.render(cfg.load(CONFIG).config) == rendered


def test_write_puts_every_screen_in_the_folder(tmp_path):
    written = screens.write(cfg.load(CONFIG).config, tmp_path)
    assert sorted(p.name for p in written) == sorted(screens.SCREENS)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(screens.SCREENS)


def test_bench_rows_open_the_motor_screen_with_each_motors_macros(rendered):
    config = cfg.load(CONFIG).config
    opened = {}
    for action in _tree(rendered["bench.bob"]).iter("action"):
        if action.get("type") == "open_display":
            assert action.findtext("file") == "motor.bob"
            macros = {m.tag: m.text for m in action.find("macros")}
            opened[macros["M"]] = macros
    assert list(opened) == list(config.motors)
    for name, motor in config.motors.items():
        assert opened[name] == {"P": "$(P)", "M": name, "ROOT": motor.pv_root}


def test_bench_rows_show_state_position_switches_homed_buttons_and_message(rendered):
    pvs = screens.referenced_pvs(rendered["bench.bob"])
    for motor in cfg.load(CONFIG).config.motors:
        for record in ("State", "Position", "HighLimitSwitch", "LowLimitSwitch", "Homed",
                       "HomeHi", "HomeLo", "Abort", "Message"):
            assert f"BENCH:{motor}:{record}" in pvs
    for record in ("HomeAllHi", "HomeAllLo", "AbortAll", "AllHomed", "Message"):
        assert f"BENCH:{record}" in pvs


def test_every_record_of_the_spec_is_on_a_screen(rendered):
    motor = screens.referenced_pvs(rendered["motor.bob"], MACROS_A)
    bench = screens.referenced_pvs(rendered["bench.bob"])
    sync = screens.referenced_pvs(rendered["sync.bob"])
    shown = [pv for pv in (*MOTOR_PVS, *BENCH_PVS, *SYNC_PVS)
             if pv not in screens.NOT_ON_SCREENS]
    assert {pv.full_name("BENCH:", "A") for pv in MOTOR_PVS if pv in shown} <= motor
    assert {pv.full_name("BENCH:") for pv in BENCH_PVS if pv in shown} <= bench
    assert {pv.full_name("BENCH:") for pv in SYNC_PVS if pv in shown} <= sync
    hidden = {pv.full_name("BENCH:") for pv in (*BENCH_PVS, *SYNC_PVS)
              if pv in screens.NOT_ON_SCREENS}
    assert len(hidden) == len(screens.NOT_ON_SCREENS)  # each one left out is a bench record
    assert not hidden & (bench | sync)


def test_motor_screen_edits_the_config_and_shows_the_motor_record(rendered):
    root = _tree(rendered["motor.bob"])
    entries = {w.findtext("pv_name") for w in root.iter("widget") if w.get("type") == "textentry"}
    assert {"$(P)$(M):PvRoot", "$(P)$(M):LoLim", "$(P)$(M):Center", "$(P)$(M):HiLim",
            "$(P)Tolerance"} <= entries
    pvs = screens.referenced_pvs(rendered["motor.bob"], MACROS_A)
    for field in ("RBV", "HLM", "LLM", "DMOV", "HLS", "LLS", "MSTA"):
        assert f"SIM:A.{field}" in pvs
    progress = [w for w in root.iter("widget") if w.get("type") == "progressbar"]
    assert [w.findtext("pv_name") for w in progress] == ["$(P)$(M):Progress"]


def test_sync_screen_edits_what_the_next_scan_file_carries_and_the_frame_counts(rendered):
    root = _tree(rendered["sync.bob"])
    entries = {w.findtext("pv_name") for w in root.iter("widget") if w.get("type") == "textentry"}
    assert {"$(P)Sync:Proposal", "$(P)Sync:Experiment", "$(P)Sync:Sample", "$(P)Sync:User",
            "$(P)Sync:DarkFrames", "$(P)Sync:FlatFrames"} <= entries
    groups = [w.findtext("name") for w in root.iter("widget") if w.get("type") == "group"]
    assert groups.index("Metadata") == groups.index("Setup") + 1


def test_sync_plot_draws_measured_against_set_positions(rendered):
    plots = [w for w in _tree(rendered["sync.bob"]).iter("widget") if w.get("type") == "xyplot"]
    assert len(plots) == 1
    traces = {t.findtext("y_pv"): t.findtext("x_pv") for t in plots[0].iter("trace")}
    assert traces == {"$(P)Sync:Positions": "$(P)Sync:SetPositions",
                      "$(P)Sync:SetPositions": "$(P)Sync:SetPositions"}


def test_buttons_write_one_to_their_own_record(rendered):
    for name, data in rendered.items():
        for widget in _tree(data).iter("widget"):
            action = widget.find("actions/action")
            if widget.get("type") != "action_button" or action.get("type") != "write_pv":
                continue
            # pvi leaves its template's placeholder PV on the button; ours is the target's.
            assert widget.findtext("pv_name") == action.findtext("pv_name"), name
            assert action.findtext("value") == "1"


def test_every_pv_uses_the_screen_macros(rendered):
    for name, data in rendered.items():
        for pv in screens.referenced_pvs(data, MACROS_A):
            assert pv.startswith(("BENCH:", "SIM:A.")), f"{name} refers to {pv!r}"


def test_state_colour_rule_matches_the_spec_index_of_homed(rendered):
    homed = [o if isinstance(o, str) else o[0] for o in HOMING_STATES].index("Homed")
    root = _tree(rendered["bench.bob"])
    states = [w for w in root.iter("widget") if (w.findtext("pv_name") or "").endswith(":State")]
    assert len(states) == len(cfg.load(CONFIG).config.motors)
    for widget in states:
        rule = widget.find("rules/rule")
        assert rule.get("prop_id") == "background_color"
        assert rule.findtext("pv_name") == widget.findtext("pv_name")
        by_exp = {e.get("bool_exp"): e.find("value/color").get("name") for e in rule.iter("exp")}
        assert by_exp[f"pv0=={homed}"] == "Homed"


def test_widgets_stay_inside_the_display(rendered):
    for name, data in rendered.items():
        root = _tree(data)
        width, height = int(root.findtext("width")), int(root.findtext("height"))
        for widget in root.findall("widget"):
            right = int(widget.findtext("x")) + int(widget.findtext("width"))
            bottom = int(widget.findtext("y")) + int(widget.findtext("height") or 0)
            assert right <= width and bottom <= height, (name, widget.findtext("name"))


def test_unknown_macro_is_named_in_the_error(rendered):
    with pytest.raises(ValueError, match=r"\$\(ROOT\)"):
        screens.referenced_pvs(rendered["motor.bob"].replace(b"<ROOT>SIM:A</ROOT>", b""))


def test_motors_of_another_config_get_their_own_rows(tmp_path):
    path = tmp_path / "two.json"
    path.write_text('{"general": {"tolerance": 1}, "motors": {'
                    '"X1": {"pv_root": "LAB:m1", "lo_lim": -1, "hi_lim": 1, "center": 0},'
                    '"Y_2": {"pv_root": "LAB:m2", "lo_lim": 0, "hi_lim": 5, "center": 2}}}')
    data = screens.render(cfg.load(path).config, prefix="LAB:")["bench.bob"]
    pvs = screens.referenced_pvs(data)
    assert {"LAB:X1:State", "LAB:Y_2:State"} <= pvs
    assert not any(pv.startswith("LAB:A:") for pv in pvs)
    assert screens.default_macros(data) == {"P": "LAB:"}


def test_a_record_renamed_in_the_spec_is_renamed_on_every_screen(rendered):
    # Records whose screen label is not derived from the name: only the PV names change.
    names = {MotorRecords.HomeHi: "RenamedHomeHi", MotorRecords.State: "RenamedState",
             MotorRecords.Message: "RenamedMessage", BenchRecords.Tolerance: "RenamedTolerance",
             SyncRecords.SetPositions: "RenamedSetPositions"}
    with renamed(names):
        again = screens.render(cfg.load(CONFIG).config)
    pvs = screens.referenced_pvs(again["bench.bob"])
    assert {"BENCH:A:RenamedHomeHi", "BENCH:A:RenamedState", "BENCH:A:RenamedMessage"} <= pvs
    assert not {"BENCH:A:HomeHi", "BENCH:A:State", "BENCH:A:Message"} & pvs
    assert "BENCH:Sync:RenamedSetPositions" in screens.referenced_pvs(again["sync.bob"])
    for name, data in again.items():  # and nothing else changed: not a colour, not a width
        for pv, new in names.items():
            data = data.replace(new.encode(), pv.name.encode())
        assert data == rendered[name], name
