"""Access security and file-system reach of the IOC, over real CA.

`bench-ioc --acf FILE`: everyone reads; only the listed users on the listed hosts write
the config and homing records. A PV value can never make the IOC write outside its
config file, its autosave directory and its data directory.
"""

from __future__ import annotations

import getpass
import socket
from pathlib import Path

import pytest

from benchioc import config as cfg
from camon import server_port
from iocharness import IocProcess

pytestmark = pytest.mark.integration

ACF = """UAG(OPERATORS) {{ {users} }}
HAG(CONTROL_HOSTS) {{ {hosts} }}
ASG(DEFAULT) {{
    RULE(1, READ)
}}
ASG(BENCH_WRITE) {{
    RULE(1, READ)
    RULE(1, WRITE, TRAPWRITE) {{
        UAG(OPERATORS)
        HAG(CONTROL_HOSTS)
    }}
}}
"""
# EPICS matches the host name the client sends (its gethostname), so list every
# spelling a loopback client may use.
THIS_HOST = f"localhost, 127.0.0.1, {socket.gethostname()}"


def serve_with_acf(config: Path, acf: Path) -> IocProcess:
    # no motors are needed to check who may write: nothing answers on this port
    return IocProcess(config, sim_port=server_port(), extra=["--acf", str(acf)])


def write_denied(result) -> bool:
    return result.returncode != 0 or "Write access denied" in result.stdout + result.stderr


@pytest.mark.parametrize("acf_kind", ["shipped", "other_user", "other_host"])
def test_client_outside_the_lists_reads_but_cannot_write(repo_root, bench_copy, tmp_path,
                                                         acf_kind):
    user = getpass.getuser()
    assert user not in ("bench", "operator"), "the shipped ACF must not list this user"
    acf = {
        "shipped": repo_root / "configs" / "bench.acf",
        "other_user": _write(tmp_path, ACF.format(users="someone_else", hosts=THIS_HOST)),
        "other_host": _write(tmp_path, ACF.format(users=user, hosts="control-room-pc")),
    }[acf_kind]
    before = bench_copy.read_bytes()
    ioc = serve_with_acf(bench_copy, acf)
    try:
        assert ioc.caget("A:LoLim", "A:State") == ["-40", "NotHomed"]
        for name, value in (("A:LoLim", "-30"), ("A:HomeHi", "1"), ("Tolerance", "0.7")):
            result = ioc.caput(name, value, callback=False)
            assert write_denied(result), (name, result.stdout, result.stderr)
        assert ioc.caget("A:LoLim", "Tolerance", "A:State") == ["-40", "0.5", "NotHomed"]
        # status records stay readable by everyone
        assert ioc.caget("Heartbeat")[0].isdigit()
    finally:
        ioc.stop()
    assert bench_copy.read_bytes() == before


def test_listed_user_on_listed_host_may_write(bench_copy, tmp_path):
    acf = _write(tmp_path, ACF.format(users=getpass.getuser(), hosts=THIS_HOST))
    ioc = serve_with_acf(bench_copy, acf)
    try:
        result = ioc.caput("A:LoLim", "-30")
        assert not write_denied(result), result.stdout + result.stderr
        assert ioc.caget("A:LoLim") == ["-30"]
    finally:
        ioc.stop()
    assert cfg.load(bench_copy).config.motors["A"].lo_lim == -30


def _write(folder: Path, text: str) -> Path:
    path = folder / f"acf-{abs(hash(text))}.acf"
    path.write_text(text)
    return path


# --- nothing written outside the config file, autosave and data directories ----------
TRAVERSALS = ("../../../tmp/evil", "/etc/passwd", "..", "SIM:A/../B", "A\\..\\x",
              "$(TOP)/x", "~root", "SIM:A\n")


def test_path_like_pv_values_are_refused_and_nothing_is_written_elsewhere(bench_copy):
    folder = bench_copy.parent
    before = _tree(folder)
    ioc = IocProcess(bench_copy, sim_port=server_port())
    try:
        for value in TRAVERSALS:
            result = ioc.caput("A:PvRoot", value, callback=False)
            (message,) = ioc.caget("A:Message", options=("-t", "-S"))
            assert ioc.caget("A:PvRoot") == ["SIM:A"], (value, result.stdout)
            assert "refused" in message or "not" in message, (value, message)
    finally:
        ioc.stop()
    written = {p for p in _tree(folder) - before}
    allowed = {folder / "autosave", folder / f".{bench_copy.name}.lock",
               folder / f".{bench_copy.name}.owner"}
    assert written <= allowed | {p for p in written if p.parent == folder / "autosave"}
    assert cfg.load(bench_copy).config.motors["A"].pv_root == "SIM:A"


def _tree(folder: Path) -> set[Path]:
    return set(folder.rglob("*")) | set(folder.rglob(".*"))


def test_scan_names_cannot_leave_the_data_directory(tmp_path):
    from benchioc.data import nexus as datafile
    for name in ("../../etc/passwd", "/abs/path", "..", "a/b\\c", ".hidden"):
        try:
            stem = datafile.safe_name(name)
        except datafile.DataFileError:
            continue
        assert "/" not in stem and "\\" not in stem and not stem.startswith(".")
        assert (tmp_path / stem).resolve().parent == tmp_path.resolve()
