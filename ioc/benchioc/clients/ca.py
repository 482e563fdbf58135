"""caget and caput whose deadline is kept by asyncio.timeout rather than by aioca.

aioca keeps a request's timeout with asyncio.wait_for, which on Python 3.11 loses a
cancellation that arrives as the request completes: the caller carries on as if it had
never been cancelled. An abort (a homing or a scan is cancelled) meeting a put that had
just completed was lost that way, and the homing went on seeking (seen once the homing
sent its two soft-limit puts back to back). asyncio.timeout does not lose it. Same
signature as aioca's, same CANothing(ECA_TIMEOUT) when the deadline passes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aioca
from aioca import CANothing, camonitor
from epicscorelibs.ca import cadef

from ..engines.sync.devices import DeviceError

DEVICE_TIMEOUT_S = 5.0  # a camera's or trigger box's put or read


async def caput(pv: str, value: Any, *, timeout: float | None, **kwargs: Any) -> Any:
    try:
        async with asyncio.timeout(timeout):
            return await aioca.caput(pv, value, timeout=None, **kwargs)
    except TimeoutError:
        raise CANothing(pv, cadef.ECA_TIMEOUT) from None


async def caget(pv: str, *, timeout: float | None, **kwargs: Any) -> Any:
    try:
        async with asyncio.timeout(timeout):
            return await aioca.caget(pv, timeout=None, **kwargs)
    except TimeoutError:
        raise CANothing(pv, cadef.ECA_TIMEOUT) from None


async def wait_for_int(pv: str, wanted: int, timeout: float) -> None:
    """Until the PV's monitor reads `wanted` (an enum's index, a count); TimeoutError if
    it does not within timeout."""
    reached = asyncio.Event()

    def check(value: Any) -> None:
        if value.ok and int(value) == wanted:
            reached.set()

    subscription = camonitor(pv, check, datatype=int, notify_disconnect=True)
    try:
        async with asyncio.timeout(timeout):
            await reached.wait()
    finally:
        subscription.close()


async def device_put(pv: str, value: Any, timeout: float = DEVICE_TIMEOUT_S,
                     **kwargs: Any) -> None:
    """A put-callback to a camera or box PV; DeviceError in words when it is refused."""
    try:
        await caput(pv, value, wait=True, timeout=timeout, **kwargs)
    except CANothing as error:
        raise DeviceError(f"{pv} did not accept {value!r}: {error}") from None


async def device_put_all(*puts: tuple[str, Any] | tuple[str, Any, dict[str, Any]],
                         timeout: float = DEVICE_TIMEOUT_S) -> None:
    """Independent put-callbacks to one device, issued together: CA delivers them in
    this order on the device's circuit and the IOC applies them in it, but their
    replies are awaited once, not one round trip each (a scan's camera and file plugin
    settings: ten round trips before the first point). The first refusal, in order,
    is raised in words."""
    results = await asyncio.gather(
        *(device_put(put[0], put[1], timeout, **(put[2] if len(put) > 2 else {}))
          for put in puts), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def device_get(pv: str, timeout: float = DEVICE_TIMEOUT_S, **kwargs: Any) -> Any:
    """A read of a camera or box PV; DeviceError in words when it does not answer."""
    try:
        return await caget(pv, timeout=timeout, **kwargs)
    except CANothing as error:
        raise DeviceError(f"could not read {pv}: {error}") from None
