"""motion-box verbs run in-process on temporary config files (no EPICS traffic)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from benchioc import config, ownership
from benchioc.records import spec
from benchioc.tools.motionbox import main, probe
from benchioc.tools.motionbox.cli import NUMBER
from benchioc.tools.motionbox.probe import HomingAnswer

SEED = {
    "general": {"tolerance": 0.5},
    "motors": {
        "A": {"pv_root": "SIM:A", "lo_lim": -40, "hi_lim": 40, "center": 0},
        "B": {"pv_root": "SIM:B", "lo_lim": -20, "hi_lim": 20, "center": 0},
    },
}
COMMANDS = ["help", "add", "change", "remove", "home", "list", "status", "validate"]


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    path = tmp_path / "motion_box.json"
    path.write_text(json.dumps(SEED, indent=4) + "\n")
    return path


@pytest.fixture
def flat_seed(tmp_path: Path) -> Path:
    """The seed's flat variant, two-space indented, general keys first."""
    path = tmp_path / "flat.json"
    data = {"tolerance": 0.25, "X": {"pv_root": "G:X", "lo_lim": -1, "hi_lim": 1, "center": 0}}
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def run(capsys, *args: str | Path) -> tuple[int, str, str]:
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file in the directory, so a refused edit can be shown to leave no trace."""
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


# --- help ------------------------------------------------------------------------------
def test_help_without_a_command_lists_every_verb(capsys):
    code, out, _ = run(capsys, "help")
    assert code == 0
    for command in COMMANDS:
        assert command in out


def test_help_for_add_shows_the_seed_argument_order(capsys):
    code, out, _ = run(capsys, "help", "add")
    assert code == 0
    assert "json_path motor_name pv_root lo_lim center" in " ".join(out.split())


def test_help_for_an_unknown_command_exits_2_and_names_it(capsys):
    code, _, err = run(capsys, "help", "frobnicate")
    assert code == 2
    assert "'frobnicate'" in err and "add" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert f"motion-box {command}" in out


def test_no_arguments_is_one_line_naming_the_commands(capsys):
    code, out, err = run(capsys)
    assert (code, out) == (2, "")
    (line,) = err.strip().splitlines()
    assert line.startswith("motion-box: missing command (one of add, change, help, home")


# --- add -------------------------------------------------------------------------------
def test_add_appends_the_motor_and_keeps_the_file_style(capsys, seed):
    code, out, err = run(capsys, "add", seed, "F", "SIM:F", "-5", "0", "5.5")
    assert (code, err) == (0, "")
    assert "added motor F" in out
    expected = json.loads(json.dumps(SEED))
    expected["motors"]["F"] = {"pv_root": "SIM:F", "lo_lim": -5, "hi_lim": 5.5, "center": 0}
    assert seed.read_text() == json.dumps(expected, indent=4) + "\n"


def test_add_takes_negative_numbers_as_numbers_not_options(capsys, seed):
    code, _, err = run(capsys, "add", seed, "F", "SIM:F", "-5", "-2.5e0", "-1")
    assert (code, err) == (0, "")
    motor = config.load(seed).config.motors["F"]
    assert (motor.lo_lim, motor.center, motor.hi_lim) == (-5, -2.5, -1)


def test_add_to_a_flat_seed_file_keeps_it_flat(capsys, flat_seed):
    code, _, err = run(capsys, "add", flat_seed, "Y", "G:Y", "0", "1", "2")
    assert (code, err) == (0, "")
    raw = json.loads(flat_seed.read_text())
    assert list(raw) == ["tolerance", "X", "Y"]
    assert flat_seed.read_text().splitlines()[1].startswith('  "tolerance"')


def test_add_to_a_yaml_config_works_with_the_same_verb(capsys, tmp_path):
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(SEED, sort_keys=False))
    code, _, err = run(capsys, "add", path, "F", "SIM:F", "-5", "0", "5")
    assert (code, err) == (0, "")
    raw = yaml.safe_load(path.read_text())
    assert list(raw["motors"]) == ["A", "B", "F"]
    assert raw["general"] == {"tolerance": 0.5}


# --- change ----------------------------------------------------------------------------
def test_change_rewrites_only_that_motor(capsys, seed):
    code, out, err = run(capsys, "change", seed, "B", "SIM:B2", "-10", "1", "10")
    assert (code, err) == (0, "")
    assert "was pv_root SIM:B" in out
    raw = json.loads(seed.read_text())
    assert raw["motors"]["B"] == {"pv_root": "SIM:B2", "lo_lim": -10, "hi_lim": 10, "center": 1}
    assert raw["motors"]["A"] == SEED["motors"]["A"]


def test_change_to_the_same_values_does_not_touch_the_file(capsys, seed):
    before = seed.stat().st_mtime_ns, seed.read_bytes()
    code, out, _ = run(capsys, "change", seed, "A", "SIM:A", "-40", "0", "40")
    assert code == 0 and "nothing changed" in out
    assert (seed.stat().st_mtime_ns, seed.read_bytes()) == before


def test_change_keeps_extra_keys_of_the_motor_entry_order(capsys, tmp_path):
    path = tmp_path / "ordered.json"
    path.write_text('{"motors": {"A": {"center": 0, "pv_root": "P:A", "hi_lim": 4, '
                    '"lo_lim": -4}}}\n')
    code, _, _ = run(capsys, "change", path, "A", "P:A", "-3", "0", "3")
    assert code == 0
    assert list(json.loads(path.read_text())["motors"]["A"]) == [
        "center", "pv_root", "hi_lim", "lo_lim"]


# --- remove ----------------------------------------------------------------------------
def test_remove_one_motor(capsys, seed):
    code, out, _ = run(capsys, "remove", seed, "A")
    assert code == 0 and "removed motor A" in out
    assert list(json.loads(seed.read_text())["motors"]) == ["B"]


def test_remove_all_empties_the_table_and_keeps_general(capsys, seed):
    code, out, _ = run(capsys, "remove", seed, "all")
    assert code == 0 and "A, B" in out
    assert json.loads(seed.read_text()) == {"general": {"tolerance": 0.5}, "motors": {}}


def test_remove_all_on_an_empty_table_changes_nothing(capsys, seed):
    assert run(capsys, "remove", seed, "all")[0] == 0
    before = seed.read_bytes()
    code, out, _ = run(capsys, "remove", seed, "all")
    assert code == 0 and "nothing removed" in out
    assert seed.read_bytes() == before


def test_remove_all_from_a_flat_seed_keeps_tolerance(capsys, flat_seed):
    code, _, err = run(capsys, "remove", flat_seed, "all")
    assert (code, err) == (0, "")
    assert json.loads(flat_seed.read_text()) == {"tolerance": 0.25}
    code, _, err = run(capsys, "add", flat_seed, "Z", "G:Z", "-1", "0", "1")
    assert (code, err) == (0, "")
    assert list(json.loads(flat_seed.read_text())) == ["tolerance", "Z"]  # still flat


# --- validate and list -----------------------------------------------------------------
def test_validate_reports_what_the_file_holds(capsys, seed):
    code, out, _ = run(capsys, "validate", seed)
    assert code == 0
    assert "2 motors (A, B)" in out and "tolerance 0.5" in out


def test_validate_refuses_a_bad_file_with_the_reason(capsys, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"motors": {"A": {"pv_root": "P:A", "lo_lim": 4, "hi_lim": -4, '
                    '"center": 0}}}')
    code, _, err = run(capsys, "validate", path)
    assert code == 2
    assert "lo_lim (4) must be less than hi_lim (-4)" in err


def test_list_offline_prints_the_config_table(capsys, seed):
    code, out, _ = run(capsys, "list", "--offline", seed)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["motor", "pv_root", "lo_lim", "center", "hi_lim"]
    assert lines[1].split() == ["A", "SIM:A", "-40", "0", "40"]
    assert lines[2].split() == ["B", "SIM:B", "-20", "0", "20"]


def test_list_offline_of_an_empty_table_says_so(capsys, seed):
    run(capsys, "remove", seed, "all")
    code, out, _ = run(capsys, "list", "--offline", seed)
    assert code == 0 and "no motors" in out


# --- every malformed variant: exit 2, one line naming the problem, no file touched ------
ADD = ["add", "{f}", "F", "SIM:F"]
MALFORMED = {
    "add without arguments": (["add"], "missing argument json_path"),
    "add without motor_name": (["add", "{f}"], "missing argument motor_name"),
    "add without pv_root": (["add", "{f}", "F"], "missing argument pv_root"),
    "add without lo_lim": (ADD, "missing argument lo_lim"),
    "add without center": ([*ADD, "-5"], "missing argument center"),
    "add without hi_lim": ([*ADD, "-5", "0"], "missing argument hi_lim"),
    "add with an extra argument": ([*ADD, "-5", "0", "5", "9"], "unexpected extra argument"),
    "lo_lim a word": ([*ADD, "low", "0", "5"], "lo_lim: 'low' is not a number"),
    "center empty": ([*ADD, "-5", "", "5"], "center: '' is not a number"),
    "hi_lim with a comma": ([*ADD, "-5", "0", "5,5"], "hi_lim: '5,5' is not a number"),
    "hi_lim hexadecimal": ([*ADD, "-5", "0", "0x10"], "hi_lim: '0x10' is not a number"),
    "hi_lim with underscores": ([*ADD, "-5", "0", "1_000"], "hi_lim: '1_000' is not a number"),
    "lo_lim nan": ([*ADD, "nan", "0", "5"], "lo_lim: must be a finite number, not 'nan'"),
    "hi_lim inf": ([*ADD, "-5", "0", "inf"], "hi_lim: must be a finite number, not 'inf'"),
    "lo_lim -Infinity": ([*ADD, "-Infinity", "0", "5"], "lo_lim: must be a finite number"),
    "hi_lim overflowing": ([*ADD, "-5", "0", "1e999"], "hi_lim: 1e999 is too large"),
    "lo above hi": ([*ADD, "5", "0", "-5"], "lo_lim (5) must be less than hi_lim (-5)"),
    "lo equal to hi": ([*ADD, "5", "5", "5"], "lo_lim (5) must be less than hi_lim (5)"),
    "center above hi": ([*ADD, "-5", "6", "5"],
                        "center (6) must lie between lo_lim (-5) and hi_lim (5)"),
    "center below lo": ([*ADD, "-5", "-5.5", "5"], "center (-5.5) must lie between"),
    "pv_root with a space": (["add", "{f}", "F", "SIM F", "-5", "0", "5"],
                             "'SIM F' is not a PV root"),
    "pv_root with a field": (["add", "{f}", "F", "SIM:F.VAL", "-5", "0", "5"],
                             "'SIM:F.VAL' is not a PV root"),
    "pv_root with a quote": (["add", "{f}", "F", 'SIM"F', "-5", "0", "5"], "is not a PV root"),
    "pv_root too long": (["add", "{f}", "F", "P" * 61, "-5", "0", "5"], "is not a PV root"),
    "pv_root already used": (["add", "{f}", "F", "SIM:A", "-5", "0", "5"],
                             "motors A and F share pv_root 'SIM:A'"),
    "duplicate motor name": (["add", "{f}", "A", "SIM:F", "-5", "0", "5"],
                             "motor 'A' already exists"),
    "motor name with a space": (["add", "{f}", "F G", "SIM:F", "-5", "0", "5"],
                                "motor name 'F G' must be"),
    "motor name too long": (["add", "{f}", "M" * 17, "SIM:F", "-5", "0", "5"],
                            "must be 1-16 of"),
    "motor named all": (["add", "{f}", "ALL", "SIM:F", "-5", "0", "5"], "'all' is reserved"),
    "change an unknown motor": (["change", "{f}", "Q", "SIM:Q", "-5", "0", "5"],
                                "there is no motor 'Q' (motors: A, B)"),
    "change to lo above hi": (["change", "{f}", "A", "SIM:A", "9", "0", "-9"],
                              "lo_lim (9) must be less than hi_lim (-9)"),
    "change to another motor's pv_root": (["change", "{f}", "A", "SIM:B", "-5", "0", "5"],
                                          "share pv_root 'SIM:B'"),
    "change with a missing argument": (["change", "{f}", "A", "SIM:A", "-5", "0"],
                                       "missing argument hi_lim"),
    "change with a bad motor name": (["change", "{f}", "x y", "SIM:A", "-5", "0", "5"],
                                     "motor name 'x y' must be"),
    "remove an unknown motor": (["remove", "{f}", "Q"], "there is no motor 'Q' (motors: A, B)"),
    "remove without motor_name": (["remove", "{f}"], "missing argument motor_name"),
    "home without a direction": (["home", "{f}", "A"], "missing argument"),
    "home in a bad direction": (["home", "{f}", "A", "up"], "'up' is not one of"),
    "home an unknown motor": (["home", "{f}", "Q", "hi"], "there is no motor 'Q'"),
    "home with no time to connect": (["home", "--connect-timeout", "0", "{f}", "A", "hi"],
                                     "home: --connect-timeout: must be more than 0 seconds"),
    "home with a negative timeout": (["home", "{f}", "A", "hi", "--connect-timeout", "-2"],
                                     "--connect-timeout: must be more than 0 seconds, not -2"),
    "home with a timeout in words": (["home", "--connect-timeout", "soon", "{f}", "A", "hi"],
                                     "--connect-timeout: 'soon' is not a number"),
    "status of an unknown motor": (["status", "{f}", "Q"], "there is no motor 'Q'"),
    "an unknown command": (["frobnicate", "{f}"], "No such command 'frobnicate'"),
}


@pytest.mark.parametrize("args, reason", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_commands_exit_2_with_one_line_and_leave_the_file_alone(
        capsys, seed, args, reason):
    before = snapshot(seed.parent)
    code, out, err = run(capsys, *[arg.format(f=seed) for arg in args])
    assert code == 2
    assert reason in err
    assert len(err.strip().splitlines()) == 1, err
    assert out == ""
    assert snapshot(seed.parent) == before


BAD_FILES = {
    "missing file": (None, "no such file"),
    "not JSON": (b"motors: [A, B\n", "not valid JSON at line 1 column 1"),
    "truncated JSON": (b'{"motors": {"A": ', "not valid JSON at line 1"),
    "empty file": (b"", "the file is empty"),
    "JSON list": (b"[1, 2]\n", "the top level must be a mapping"),
    "not UTF-8": (b'{"general": {"tolerance": 0.5}}\xff\n', "not UTF-8 text"),
    "unknown section": (b'{"motorz": {}}\n', "motorz: unknown key"),
    "motor with a string limit": (
        b'{"motors": {"A": {"pv_root": "P:A", "lo_lim": "x", "hi_lim": 1, "center": 0}}}',
        "motors.A.lo_lim"),
}
VERBS_ON_A_FILE = {
    "add": ["add", "{f}", "F", "SIM:F", "-5", "0", "5"],
    "change": ["change", "{f}", "A", "SIM:A", "-5", "0", "5"],
    "remove": ["remove", "{f}", "A"],
    "remove all": ["remove", "{f}", "all"],
    "list": ["list", "--offline", "{f}"],
    "validate": ["validate", "{f}"],
    "home": ["home", "{f}", "all", "hi"],
    "status": ["status", "{f}"],
}


@pytest.mark.parametrize("content, reason", BAD_FILES.values(), ids=BAD_FILES.keys())
@pytest.mark.parametrize("args", VERBS_ON_A_FILE.values(), ids=VERBS_ON_A_FILE.keys())
def test_a_bad_config_file_is_refused_by_every_verb(capsys, tmp_path, content, reason, args):
    path = tmp_path / "motion_box.json"
    if content is not None:
        path.write_bytes(content)
    before = snapshot(tmp_path)
    code, out, err = run(capsys, *[arg.format(f=path) for arg in args])
    assert code == 2
    assert str(path) in err and reason in err
    assert len(err.strip().splitlines()) == 1, err
    assert snapshot(tmp_path) == before


def test_a_directory_is_not_a_config_file(capsys, tmp_path):
    code, _, err = run(capsys, "remove", tmp_path, "A")
    assert code == 2 and "is a directory" in err


def test_an_unreadable_file_is_refused_with_the_reason(capsys, seed, monkeypatch):
    # The tests run as root, for whom chmod 000 does not stop a read; fake the refusal.
    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    code, _, err = run(capsys, "remove", seed, "A")
    assert code == 2
    assert f"{seed}: cannot be read (Permission denied)" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_file_without_read_permission_is_refused(capsys, seed):
    seed.chmod(0)
    try:
        code, _, err = run(capsys, "remove", seed, "A")
    finally:
        seed.chmod(0o644)
    assert code == 2 and "cannot be read" in err


def test_a_folder_where_the_lock_cannot_be_made_is_one_line_and_exit_2(capsys, seed):
    """As on a read-only folder (root writes through modes, so the lock's place is taken
    by a directory here): no traceback, the file untouched."""
    before = seed.read_bytes()
    seed.with_name(f".{seed.name}.lock").mkdir()
    code, _, err = run(capsys, "add", seed, "F", "SIM:F", "-5", "0", "5")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert "cannot be changed: the lock file" in line and "Traceback" not in err
    assert seed.read_bytes() == before


def test_a_failed_write_leaves_the_file_and_no_temporary(capsys, seed, monkeypatch):
    def full_disk(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(config, "atomic_write", full_disk)
    before = seed.read_bytes()
    code, _, err = run(capsys, "remove", seed, "A")
    assert code == 2
    assert "cannot be written (No space left on device)" in err
    assert seed.read_bytes() == before


# --- numbers ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, value", [("-5", -5.0), ("+2", 2.0), ("0.25", 0.25),
                                         (".5", 0.5), ("5.", 5.0), ("1e-3", 0.001),
                                         ("-1.5E2", -150.0), (" 3 ", 3.0)])
def test_numbers_parse_as_a_person_writes_them(text, value):
    assert NUMBER.convert(text, None, None) == value


# --- as a program ----------------------------------------------------------------------
def test_runs_as_a_program_with_negative_numbers(seed):
    result = subprocess.run(
        [sys.executable, "-m", "benchioc.tools.motionbox", "add", str(seed), "F", "SIM:F",
         "-5", "0", "5"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "F" in config.load(seed).config.motors
    bad = subprocess.run(
        [sys.executable, "-m", "benchioc.tools.motionbox", "add", str(seed), "G", "SIM:G",
         "-5", "zero", "5"],
        capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "motion-box add: center: 'zero' is not a number"


def test_shell_completion_offers_the_motor_names_of_the_config(seed):
    script = Path(sys.executable).parent / "motion-box"
    if not script.exists():
        pytest.skip("the motion-box console script is not installed in this environment")
    env = dict(os.environ, COMP_WORDS=f"motion-box home {seed} ", COMP_CWORD="3",
               _MOTION_BOX_COMPLETE="bash_complete")
    result = subprocess.run([str(script)], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.stdout.split() == ["plain,A", "plain,B", "plain,all"]


def test_the_console_script_is_the_same_program(seed):
    script = Path(sys.executable).parent / "motion-box"
    if not script.exists():
        pytest.skip("the motion-box console script is not installed in this environment")
    result = subprocess.run([str(script), "remove", str(seed), "Q"], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "motion-box remove: there is no motor 'Q' (motors: A, B)"


# --- no edit of a motor the IOC serving the file is homing ------------------------------
# The IOC's CA answers are faked here (tests/integration/test_motionbox_ca.py asks a real
# IOC); the `.owner` lock is real: a running IOC is what holds it.
@pytest.fixture
def served_by_ioc(seed: Path) -> Iterator[Path]:
    handle = ownership.claim(seed, "TEST:")
    yield seed
    handle.close()


@pytest.fixture
def ioc_answers(monkeypatch) -> list:
    """What the faked IOC answers to ask_homing, and what it was asked (appended)."""
    asked: list = []
    answer = [HomingAnswer()]

    async def ask_homing(prefix, motors, timeout):
        asked.append((prefix, list(motors), timeout))
        return answer[0]

    monkeypatch.setattr(probe, "ask_homing", ask_homing)
    return [answer, asked]


def answering(ioc_answers, served: Path, homing=(), silent=()) -> list:
    ioc_answers[0][0] = HomingAnswer(served=str(served.resolve()), homing=list(homing),
                                     silent=list(silent))
    return ioc_answers[1]


@pytest.mark.parametrize("args", [["change", "{f}", "B", "SIM:B", "-5", "0", "5"],
                                  ["remove", "{f}", "B"]], ids=["change", "remove"])
def test_an_edit_of_a_homing_motor_is_refused_in_one_line(capsys, served_by_ioc,
                                                          ioc_answers, args):
    asked = answering(ioc_answers, served_by_ioc, homing=["B"])
    before = snapshot(served_by_ioc.parent)
    code, out, err = run(capsys, *[arg.format(f=served_by_ioc) for arg in args])
    assert (code, out) == (2, "")
    assert err == (f"motion-box {args[0]}: B is homing; abort it first (TEST:B:Abort) or "
                   "let it end; nothing written\n")
    assert asked == [("TEST:", ["B"], 1.0)]  # the prefix of the IOC holding the file
    assert snapshot(served_by_ioc.parent) == before


def test_remove_all_names_every_homing_motor(capsys, served_by_ioc, ioc_answers):
    asked = answering(ioc_answers, served_by_ioc, homing=["A", "B"])
    code, _, err = run(capsys, "remove", served_by_ioc, "all")
    assert code == 2
    assert err.strip() == ("motion-box remove: A, B are homing; abort them first "
                           "(TEST:AbortAll) or let them end; nothing written")
    assert asked[0][1] == ["A", "B"]
    assert list(config.load(served_by_ioc).config.motors) == ["A", "B"]


def test_an_edit_of_a_motor_not_homing_goes_ahead(capsys, served_by_ioc, ioc_answers):
    asked = answering(ioc_answers, served_by_ioc, homing=[])
    code, out, err = run(capsys, "change", served_by_ioc, "A", "SIM:A", "-30", "0", "30")
    assert (code, err) == (0, "")
    assert "changed motor A" in out and asked[0][1] == ["A"]
    assert config.load(served_by_ioc).config.motors["A"].hi_lim == 30


@pytest.mark.parametrize("args", [["add", "{f}", "F", "SIM:F", "-5", "0", "5"],
                                  ["change", "{f}", "A", "SIM:A", "-40", "0", "40"],
                                  ["change", "{f}", "Q", "SIM:Q", "-5", "0", "5"],
                                  ["remove", "{f}", "Q"]],
                         ids=["add", "change to the same", "change unknown", "remove unknown"])
def test_edits_that_touch_no_served_motor_do_not_ask_the_ioc(capsys, served_by_ioc,
                                                             ioc_answers, args):
    """An added motor is not served yet, an unchanged one keeps its settings, and a bad
    argument is refused before the IOC is asked (and costs no wait)."""
    asked = answering(ioc_answers, served_by_ioc, homing=["A", "B"])
    run(capsys, *[arg.format(f=served_by_ioc) for arg in args])
    assert asked == []


def test_with_no_ioc_holding_the_file_the_ioc_is_not_asked(capsys, seed, ioc_answers):
    asked = answering(ioc_answers, seed, homing=["B"])
    code, _, err = run(capsys, "remove", seed, "B")
    assert (code, err) == (0, "")
    assert asked == []


def test_an_ioc_holding_the_file_but_not_answering_refuses_the_edit(capsys, served_by_ioc,
                                                                   ioc_answers):
    answering(ioc_answers, served_by_ioc, silent=["TEST:ConfigFile"])
    ioc_answers[0][0].served = None
    before = served_by_ioc.read_bytes()
    code, _, err = run(capsys, "change", served_by_ioc, "B", "SIM:B", "-5", "0", "5")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("motion-box change: cannot tell whether B is homing: bench-ioc "
                           f"with prefix TEST: on {os.uname().nodename}"), line
    assert "TEST:ConfigFile did not answer within 1 s" in line
    assert line.endswith("nothing written")
    assert served_by_ioc.read_bytes() == before


def test_an_ioc_answering_for_another_file_refuses_the_edit(capsys, served_by_ioc,
                                                           ioc_answers, tmp_path):
    answering(ioc_answers, tmp_path / "other.yaml")
    code, _, err = run(capsys, "remove", served_by_ioc, "A")
    assert code == 2
    assert f"the IOC answering at TEST: serves {tmp_path / 'other.yaml'}" in err
    assert len(err.strip().splitlines()) == 1


def test_an_unreadable_owner_file_refuses_the_edit(capsys, served_by_ioc, monkeypatch):
    def unreadable(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ownership, "owner", unreadable)
    code, _, err = run(capsys, "remove", served_by_ioc, "A")
    assert code == 2
    assert "cannot tell whether an IOC serves" in err and "(Permission denied)" in err
    assert len(err.strip().splitlines()) == 1


# --- every IOC record motion-box asks for is named by the spec ---------------------------
MOTIONBOX = Path(probe.__file__).parent


def string_pieces(path: Path) -> Iterator[str]:
    """Every string constant of a module, f-string pieces included, docstrings not."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in docstrings):
            yield node.value


def test_no_ioc_record_name_is_spelt_out_in_motion_box():
    """A record name (or the start of one, as in f"{prefix}HomeAll{suffix}") as a
    string of its own or after a ":" would be a PV named outside the spec."""
    records = {pv.name for scope in spec.SCOPES.values() for pv in scope.all()}
    files = sorted(MOTIONBOX.glob("*.py"))
    assert {p.name for p in files} >= {"cli.py", "edits.py", "probe.py", "display.py"}
    for path in files:
        for text in string_pieces(path):
            tokens = re.findall(r"(?::|^)([A-Z][A-Za-z]*)(?=$|[^A-Za-z])", text.strip())
            if not re.fullmatch(r":?[A-Z][A-Za-z]*", text.strip()):
                tokens = [t for t in tokens if f":{t}" in text]  # inside a text: after ":"
            spelt = {t for t in tokens
                     if t in records or (len(t) > 3 and any(r.startswith(t) for r in records))}
            assert not spelt, f"{path.name} spells out {sorted(spelt)} in {text!r}"
