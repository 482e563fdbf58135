"""Following the config file while the IOC runs: outside edits (motion-box, an editor)
are applied to the records; a changed motor set restarts the IOC once nothing moves.

Polling (not inotify) because the file may live on NFS and editors replace it by
rename; a stat() a second is cheap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .. import config as cfg
from .bench import Bench
from .messages import Level
from .spec import BenchRecords

log = logging.getLogger(__name__)

# Sections whose change the running IOC cannot take in place: it re-executes itself
RESTART_SECTIONS = ("detector", "trigger")


class ConfigFollower:
    """Polls the config file; applies outside edits, reports malformed ones."""

    def __init__(self, bench: Bench, on_restart: Callable[[], None] | None = None) -> None:
        self.bench = bench
        self.restart = RestartWhenIdle(bench, on_restart)
        self._stamp = self._stat()
        self._reported_bad: str | None = None

    def _stat(self) -> tuple[int, int] | None:
        try:
            stat = self.bench.doc.path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    async def run(self) -> None:
        period = self.bench.config.ioc.file_poll_period
        while True:
            await asyncio.sleep(period)
            try:
                await self.check()
            except Exception:  # noqa: BLE001 - the follower must never die
                log.exception("checking the config file failed")

    async def check(self) -> None:
        stamp = self._stat()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        path = self.bench.doc.path
        try:
            doc = await asyncio.get_running_loop().run_in_executor(None, cfg.load, path)
        except cfg.ConfigError as error:
            if str(error) != self._reported_bad:
                self._reported_bad = str(error)
                self.bench.say(
                    f"config file edit ignored, last good configuration kept: {error}",
                    Level.ERROR)
            return
        self._reported_bad = None
        if doc.text == self.bench.doc.text or doc.text in self.bench.own_texts:
            return  # nothing new, or this IOC's own save (a later put may be in memory)
        await self.apply(doc)

    async def apply(self, doc: cfg.ConfigDocument) -> None:
        bench = self.bench
        old = bench.doc.config
        bench.doc = doc
        if list(doc.config.motors) != list(old.motors):
            bench.say(
                f"motors changed in {doc.path.name} ({', '.join(old.motors) or 'none'} -> "
                f"{', '.join(doc.config.motors) or 'none'}); the IOC restarts to serve them "
                "as soon as no homing or scan runs")
            self.restart.request()
            return
        # the camera and trigger box clients are built once, at the start
        rebuilt = [section for section in RESTART_SECTIONS
                   if getattr(doc.config, section) != getattr(old, section)]
        if rebuilt:
            bench.say(
                f"{' and '.join(rebuilt)} section changed in {doc.path.name}; the IOC "
                "restarts to serve it as soon as no homing or scan runs")
            self.restart.request()
            return
        bench.record(BenchRecords.Tolerance).set(doc.config.tolerance)
        for name, binding in bench.motors.items():
            binding.show_config()
            if doc.config.motors[name].pv_root != old.motors[name].pv_root:
                await binding.replace_motor(doc.config.motors[name].pv_root)
        if bench.sync is not None:  # the data section: its records and the next scan file
            bench.sync.show_data_config()
        bench.say(f"applied an outside edit of {doc.path.name}")


class RestartWhenIdle:
    """The restart policy: a changed motor set is served by re-executing the IOC, but
    never under a running homing or scan (their motors would be left mid-move)."""

    def __init__(self, bench: Bench, on_restart: Callable[[], None] | None) -> None:
        self.bench = bench
        self.on_restart = on_restart
        self.requested = False
        bench.leases.subscribe_release(self.restart_if_idle)
        bench.summary_listeners.append(self.restart_if_idle)  # a HomeAll's end

    def request(self) -> None:
        self.requested = True
        self.restart_if_idle()

    def restart_if_idle(self) -> None:
        homing = self.bench.homing
        if not self.requested or self.on_restart is None:
            return
        if self.bench.leases.idle and not (homing is not None and homing.busy):
            self.requested = False
            self.on_restart()
