"""An asyncio loop on a virtual clock, for the unit tests of the engines: time() jumps
to the earliest timer whenever nothing is ready, so minutes of motion run in
milliseconds and every timing is exact."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """strict: with nothing ready and no timer pending, the test is deadlocked (raise);
    otherwise wait as usual (a worker thread may be writing a file)."""

    def __init__(self, start: float = 0.0, strict: bool = True) -> None:
        super().__init__()
        self._virtual_now = start
        self._strict = strict

    def time(self) -> float:
        return self._virtual_now

    def _run_once(self) -> None:
        # CPython's BaseEventLoop keeps ready callbacks in _ready and timers in a heap
        # _scheduled; with nothing ready, advance the clock to the earliest live timer.
        if not self._ready and not self._stopping:
            pending = [h._when for h in self._scheduled if not h._cancelled]
            if pending:
                self._virtual_now = max(self._virtual_now, min(pending))
            elif self._strict:
                raise RuntimeError("deadlock: nothing is ready and no timer is pending")
        super()._run_once()


def run_virtual(coroutine: Coroutine[Any, Any, T], *, start: float = 0.0,
                strict: bool = True) -> T:
    loop = VirtualClockLoop(start, strict)
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.run_until_complete(_cancel_leftovers())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _cancel_leftovers() -> None:
    """Cancel what a test left running, e.g. a fake motor's physics task."""
    leftovers = asyncio.all_tasks() - {asyncio.current_task()}
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)
