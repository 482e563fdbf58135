"""Broken config files: a clear error naming the line or the key, exit code 2, and the
file left exactly as it was (bench-ioc and motion-box alike)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchioc import config as cfg

BIN = Path(sys.executable).parent
GOOD_JSON = {"general": {"tolerance": 0.5},
             "motors": {"A": {"pv_root": "SIM:A", "lo_lim": -40, "hi_lim": 40, "center": 0}}}


def _yaml_bench(repo_root: Path) -> str:
    return (repo_root / "configs" / "bench.yaml").read_text()


def broken_files(repo_root: Path) -> dict[str, tuple[str, bytes, str]]:
    """name -> (file name, content, words the error must hold)."""
    yaml_text = _yaml_bench(repo_root)
    json_text = json.dumps(GOOD_JSON, indent=4)
    return {
        "empty": ("bench.yaml", b"", "empty"),
        "blank": ("bench.json", b"  \n\n", "empty"),
        "truncated_json": ("bench.json", json_text[: len(json_text) // 2].encode(), "line"),
        "truncated_yaml": ("bench.yaml", yaml_text[: yaml_text.index("B: {") + 12].encode(),
                           "line"),
        "not_utf8": ("bench.yaml", yaml_text.encode()[:200] + b"\xff\xfe" + b"x: 1\n",
                     "not UTF-8 text (bad byte at line"),
        "latin1_json": ("bench.json", '{"general": {"tolerance": 0.5}, "é": 1}'.encode("latin-1"),
                        "not UTF-8"),
        "deep_json": ("bench.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        "deep_yaml": ("bench.yaml", b"a: " + b"[" * 50_000 + b"]" * 50_000 + b"\n", ""),
        "huge": ("bench.yaml", b"# padding\n" * 150_000, "too large"),
        "unknown_top_key": ("bench.yaml", yaml_text.encode() + b"colour: blue\n",
                            "colour: unknown key"),
        "unknown_motor_key": ("bench.json", json.dumps(
            {"motors": {"A": {**GOOD_JSON["motors"]["A"], "speed": 3}}}).encode(),
            "motors.A.speed: unknown key"),
        "unknown_ioc_key": ("bench.yaml", yaml_text.replace(
            "connection_timeout: 5", "conection_timeout: 5").encode(),
            "ioc.conection_timeout: unknown key"),
        "list_top": ("bench.yaml", b"- a\n- b\n", "mapping"),
        "bad_yaml_tab": ("bench.yaml", b"general:\n\ttolerance: 1\n", "line 2"),
        "newline_in_pv_root": ("bench.json", json.dumps(
            {"motors": {"A": {**GOOD_JSON["motors"]["A"], "pv_root": "SIM:A\n"}}}).encode(),
            "motors.A.pv_root"),
        "newline_in_motor_name": ("bench.json", json.dumps(
            {"motors": {"A\n": GOOD_JSON["motors"]["A"]}}).encode(), "motor name"),
        "newline_in_prefix": ("bench.yaml", yaml_text.replace(
            'prefix: "BENCH:"', 'prefix: "BENCH:\\n"').encode(), "ioc.prefix"),
        # homing methods (DESIGN.md "Homing": limit, or the controller's home_switch)
        "unknown_method": ("bench.json", json.dumps(
            {"motors": {"A": {**GOOD_JSON["motors"]["A"], "method": "homeswitch"}}}).encode(),
            "motors.A.method: 'homeswitch' is not a homing method: use limit"),
        "empty_method": ("bench.yaml", yaml_text.replace(
            "center: 0}", "center: 0, method: }", 1).encode(),
            "motors.A.method: no homing method given: use limit"),
        "home_position_for_limit": ("bench.json", json.dumps(
            {"motors": {"A": {**GOOD_JSON["motors"]["A"], "home_position": 5}}}).encode(),
            "motors.A: home_position (5) is used only with method: home_switch"),
        "bad_home_position": ("bench.yaml", yaml_text.replace(
            "center: 0}", "center: 0, method: home_switch, home_position: .nan}", 1).encode(),
            "motors.A.home_position: must be a finite number"),
        "sim_home_beyond_switches": ("bench.yaml", yaml_text.replace(
            "start: 5.0,", "start: 5.0, home: 99,", 1).encode(),
            "sim.motors.A: home (99) must lie between low_switch (-45.3) and high_switch"),
        "negative_hysteresis": ("bench.yaml", yaml_text.replace(
            "start: 5.0,", "start: 5.0, switch_hysteresis: -0.1,", 1).encode(),
            "sim.motors.A.switch_hysteresis: Input should be greater than or equal to 0"),
    }


CASES = list(broken_files(Path(__file__).resolve().parents[2]))


@pytest.fixture(params=CASES)
def broken(request, repo_root, tmp_path) -> tuple[Path, str]:
    name, content, words = broken_files(repo_root)[request.param]
    path = tmp_path / name
    path.write_bytes(content)
    return path, words


def test_load_refuses_with_words_naming_the_place(broken):
    path, words = broken
    with pytest.raises(cfg.ConfigError) as error:
        cfg.load(path)
    text = str(error.value)
    assert str(path) in text and words in text, text
    assert "\n" not in text.strip() or len(text) < 2000


def run_command(command: str, path: Path, capsys) -> tuple[int, str]:
    """The console script's entry point in this process (fast); its exit code and stderr."""
    from benchioc.tools import cli, motionbox

    if command == "bench-ioc":
        with pytest.raises(SystemExit) as exit_info:
            cli.bench_ioc_main(["--config", str(path)])
        code = exit_info.value.code
    else:
        code = motionbox.main([command.split()[1], str(path)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("command", ["bench-ioc", "motion-box validate", "motion-box list"])
def test_commands_exit_2_and_leave_the_file_untouched(broken, command, capsys):
    path, words = broken
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    code, stderr = run_command(command, path, capsys)
    assert code == 2, stderr
    assert words in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    # nothing else created beside it: no autosave, no temporary file
    assert sorted(p.name for p in path.parent.iterdir()
                  if not p.name.startswith(f".{path.name}.lock")) == [path.name]


def test_installed_bench_ioc_exits_2_on_a_broken_file(tmp_path):
    path = tmp_path / "bench.yaml"
    path.write_bytes(b"general:\n  tolerance: [1\n")
    result = subprocess.run([str(BIN / "bench-ioc"), "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "not valid YAML at line" in result.stderr, result.stderr


@pytest.mark.parametrize("value", ["SIM:A\n", "SIM:A\r", "SIM A", "SIM:A.VAL", 'SIM:"A',
                                   "../SIM", "/etc/x", "", "x" * 40])
def test_pv_root_must_be_a_whole_pv_name(value):
    with pytest.raises(cfg.ConfigError, match="pv_root"):
        cfg.motor_config({**GOOD_JSON["motors"]["A"], "pv_root": value}, "motor A")


def test_the_seed_format_without_a_method_homes_on_the_limit_switch(repo_root):
    """configs/motion_box.json (the seed's format, no method keys) and bench.yaml: every
    motor homes with method limit; a home_switch entry keeps its keys on save."""
    for name in ("motion_box.json", "bench.yaml", "genuine.yaml"):
        document = cfg.load(repo_root / "configs" / name)
        assert {m.method for m in document.config.motors.values()} == {"limit"}, name
        assert all(m.home_position is None for m in document.config.motors.values())


def test_a_home_switch_entry_survives_an_edit(tmp_path):
    path = tmp_path / "bench.json"
    entry = {**GOOD_JSON["motors"]["A"], "method": "home_switch", "home_position": 1.5}
    path.write_text(json.dumps({**GOOD_JSON, "motors": {"A": entry}}, indent=4))
    document = cfg.load(path)
    document.update_motor_field("A", "hi_lim", 35)
    document.save()
    saved = json.loads(path.read_text())["motors"]["A"]
    assert saved == {**entry, "hi_lim": 35}


def test_atomic_write_gives_a_new_file_the_umask_mode_and_keeps_or_sets_one(tmp_path) -> None:
    import os
    import stat

    from benchioc.config import atomic_write

    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "new.json", "{}")
        assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o640  # not 0600
        os.chmod(tmp_path / "new.json", 0o600)
        atomic_write(tmp_path / "new.json", "{}\n")
        assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o600  # kept
        atomic_write(tmp_path / "new.json", "{}\n", mode=0o644)
        assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_the_autosave_file_gets_the_configured_mode(tmp_path) -> None:
    import os
    import stat

    from benchioc.records.autosave import HomingStateStore

    old = os.umask(0o077)
    try:
        store = HomingStateStore(tmp_path, file_mode=0o644)
        store.record("A", True)
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o644
