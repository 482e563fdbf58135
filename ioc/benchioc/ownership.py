"""One running bench-ioc per config file.

Two IOCs on one file (with different prefixes, so CA cannot tell) would both write the
file and the same autosave, and both command the same motors. The IOC holds an exclusive
lock on a sidecar `.<config name>.owner` for as long as it runs (the kernel drops it when
the process ends, however it ends) and writes into it who it is; a second IOC cannot take
the lock and refuses to start, naming the owner; motion-box reads the owner the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import IO, Any

from .config import ConfigError


class OwnedElsewhere(ConfigError):
    """The config file is served by another running bench-ioc."""


def owner_path(config: Path) -> Path:
    return config.with_name(f".{config.name}.owner")


def claim(config: Path, prefix: str) -> IO[str]:
    """Take the config for this process; keep the returned file open while serving.

    Raises OwnedElsewhere naming the IOC that serves it."""
    path = owner_path(config)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open on purpose
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = _read(path)
        handle.close()
        raise OwnedElsewhere(f"{config} is already served by {describe(owner)}: stop that"
                             " IOC first, or serve a copy of the file") from None
    handle.truncate(0)
    handle.write(json.dumps({"prefix": prefix, "host": socket.gethostname(),
                             "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    handle.flush()
    return handle


def owner(config: Path) -> dict[str, Any] | None:
    """Who serves this config now, or None when no running IOC does."""
    path = owner_path(config)
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(path)
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def describe(info: dict[str, Any]) -> str:
    return (f"bench-ioc with prefix {info.get('prefix', '?')} on {info.get('host', '?')}"
            f" (process {info.get('pid', '?')}, since {info.get('since', '?')})")


def _read(path: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
        if isinstance(data, dict):
            return data
    return {}
