"""Asyncio Channel Access client of one EPICS motor record (aioca).

EpicsMotor monitors the fields the homing engine and the IOC's mirror records need,
keeps a MotorStatus snapshot up to date, and implements the homing.HomingMotor
protocol (jog, stop, sync, set position, soft limits, move with put-callback).

aioca must run in the asyncio loop that calls it: in the IOC that is softioc's
AsyncioDispatcher loop, in the CLI a plain asyncio.run(). Construction touches no CA;
connect() starts the monitors, and CA keeps reconnecting after that by itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Callable
from typing import Any

from aioca import CANothing, Subscription, camonitor, connect
from epicscorelibs.ca import cadef

from ..engines.motormodel import (
    Direction,
    FeedBackedMotor,
    MotorDisconnected,
    MotorError,
    MotorStatus,
    MotorStatusFeed,
    MotorTimeout,
    limit_order,
)
from .ca import caput

log = logging.getLogger(__name__)

# Motor record field -> MotorStatus attribute, and how to read the CA value.
_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "RBV": ("rbv", float),
    "VAL": ("val", float),
    "DMOV": ("dmov", lambda v: bool(int(v))),
    "HLS": ("hls", lambda v: bool(int(v))),
    "LLS": ("lls", lambda v: bool(int(v))),
    "MSTA": ("msta", lambda v: int(v)),  # DBF_ULONG travels as a double over CA
    "SPMG": ("spmg", int),
    "CNEN": ("cnen", lambda v: bool(int(v))),
    "VELO": ("velo", float),
    "JVEL": ("jvel", float),
    "ACCL": ("accl", float),
    "VMAX": ("vmax", float),
    "HLM": ("hlm", float),
    "LLM": ("llm", float),
    "DHLM": ("dhlm", float),
    "DLLM": ("dllm", float),
    "EGU": ("egu", str),
    "PREC": ("prec", int),
    # what tells whether a homing's calibration still holds (homing.calibration)
    "OFF": ("off", float),
    "DIR": ("dir", int),
    "MRES": ("mres", float),
    "DRBV": ("drbv", float),
    "HVEL": ("hvel", float),  # the home routine's speed: HOMF/HOMR do nothing at 0
}
MONITORED_FIELDS = tuple(_FIELDS)
WRITE_ONLY_FIELDS = ("JOGF", "JOGR", "STOP", "SYNC", "SET", "HOMF", "HOMR")
DEFAULT_PUT_TIMEOUT = 5.0


class EpicsMotor(FeedBackedMotor):
    """One motor record over CA; implements homing.HomingMotor."""

    def __init__(
        self,
        name: str,
        pv_root: str,
        on_change: Callable[[MotorStatus], None] | None = None,
        put_timeout: float = DEFAULT_PUT_TIMEOUT,
    ) -> None:
        self.name = name
        self.pv_root = pv_root
        self.on_change = on_change
        self.put_timeout = put_timeout
        self.feed = MotorStatusFeed(name, MotorStatus(connected=False))
        self._values: dict[str, Any] = {}
        # the MotorStatus attributes as converted, updated one field per monitor update
        self._attributes: dict[str, Any] = {}
        self._connected = dict.fromkeys(_FIELDS, False)
        self._unconnected = len(_FIELDS)
        self._subscriptions: list[Subscription] = []
        self._all_connected: asyncio.Event | None = None
        self._closed = False

    def pv(self, field: str) -> str:
        return f"{self.pv_root}.{field}"

    # --- monitoring -------------------------------------------------------------------
    async def connect(self, timeout: float) -> None:
        """Start the monitors and wait until every field has a value.

        Raises MotorDisconnected naming the PVs that did not connect within timeout;
        the monitors stay in place, so the motor connects whenever its IOC appears."""
        if self._all_connected is None:
            self._all_connected = asyncio.Event()
            self._closed = False
            self._subscriptions = [
                camonitor(self.pv(field), functools.partial(self._on_value, field),
                          notify_disconnect=True)
                for field in _FIELDS
            ]
            # Channels only written (jog, stop, sync, set) are opened now too, so that the
            # first homing does not pay a CA search per field on its critical path.
            await connect([self.pv(field) for field in WRITE_ONLY_FIELDS], wait=False)
            log.debug("%s: monitoring %d fields of %s", self.name, len(_FIELDS), self.pv_root)
        try:
            async with asyncio.timeout(timeout):  # not wait_for: see clients/ca.py
                await self._all_connected.wait()
        except TimeoutError:
            raise MotorDisconnected(self._missing_words(timeout)) from None

    def _missing_words(self, timeout: float) -> str:
        missing = [self.pv(field) for field, ok in self._connected.items() if not ok]
        if len(missing) == len(_FIELDS):
            return (f"{self.name}: motor record {self.pv_root} not found: none of its"
                    f" {len(_FIELDS)} monitored fields connected within {timeout:g} s")
        return (f"{self.name}: {len(missing)} field(s) of motor record {self.pv_root} not"
                f" connected within {timeout:g} s: {', '.join(missing)}")

    def _on_value(self, field: str, value: Any) -> None:
        """One monitor update: only its field is converted, and an update that changes
        nothing (same value, still connected) publishes nothing. Every update of every
        field lands here, on the IOC's one loop: a motor record's processing posts
        several fields at once, and rebuilding the whole status, waking every waiter
        and the mirror records for each was what made each CA exchange of a homing
        cost the IOC several times what it costs a bare client."""
        if self._closed:
            return
        if getattr(value, "ok", True):
            self._values[field] = value
            attribute, convert = _FIELDS[field]
            try:
                converted = convert(value)
            except (TypeError, ValueError):
                log.warning("%s: %s=%r not understood", self.name, self.pv(field), value)
                converted = None
            if not self._connected[field]:
                self._connected[field] = True
                self._unconnected -= 1
            elif converted is not None and self._attributes.get(attribute) == converted:
                return  # nothing new (e.g. a field re-posted with its old value)
            if converted is None:
                self._attributes.pop(attribute, None)
            else:
                self._attributes[attribute] = converted
        else:
            if self._connected[field]:
                log.warning("%s: %s disconnected", self.name, self.pv(field))
                self._connected[field] = False
                self._unconnected += 1
        self._refresh()

    def _refresh(self) -> None:
        status = self._current_status()
        if self._all_connected is not None:
            if status.connected:
                self._all_connected.set()
            else:
                self._all_connected.clear()
        self.feed.publish(status)
        if self.on_change is not None:
            try:
                self.on_change(status)
            except Exception:  # a broken display must not stop the monitors
                log.exception("%s: on_change callback failed", self.name)

    def _current_status(self) -> MotorStatus:
        values = self._attributes
        if "rbv" not in values:
            values = {**values, "rbv": math.nan}  # never seen: no number to show
        return MotorStatus(connected=self._unconnected == 0, **values)

    def close(self) -> None:
        """Stop monitoring; waiters see a disconnection, on_change is not called again."""
        self._closed = True
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions = []
        self._all_connected = None
        self._connected = dict.fromkeys(_FIELDS, False)
        self._unconnected = len(_FIELDS)
        self.feed.publish(self._current_status())

    # --- HomingMotor protocol -----------------------------------------------------------
    async def _put(self, field: str, value: Any, wait: bool, timeout: float | None = None) -> None:
        pv = self.pv(field)
        if not self.status.connected:
            raise MotorDisconnected(
                f"{self.name}: motor record {self.pv_root} not connected; cannot write {pv}"
            )
        timeout = self.put_timeout if timeout is None else timeout
        log.debug("%s: %s = %r%s", self.name, pv, value, " (wait)" if wait else "")
        try:
            await caput(pv, value, wait=wait, timeout=timeout)
        except CANothing as error:
            if error.errorcode == cadef.ECA_TIMEOUT:
                raise MotorTimeout(
                    f"{self.name}: write {pv}={value!r} not completed within {timeout:.3g} s"
                ) from None
            raise MotorError(f"{self.name}: write {pv}={value!r} failed: {error}") from None
        except (cadef.CAException, cadef.Disconnected) as error:
            raise MotorError(f"{self.name}: write {pv}={value!r} failed: {error}") from None

    async def jog(self, direction: Direction) -> None:
        """JOGF/JOGR=1 without waiting: a put-callback would last as long as the jog."""
        await self._put(direction.jog_field, 1, wait=False)

    async def start_home(self, direction: Direction) -> None:
        """HOMF (hi) / HOMR (lo) = 1 without waiting: a home that meets a limit switch
        first would complete a put-callback there, before the controller reaches home."""
        await self._put("HOMF" if direction is Direction.HI else "HOMR", 1, wait=False)

    async def stop(self) -> None:
        """STOP=1; never waits for the motion to end."""
        await self._put("STOP", 1, wait=False)

    async def sync(self) -> None:
        """SYNC=1: VAL (and DVAL) take the readback."""
        await self._put("SYNC", 1, wait=True)

    async def set_jog_speed(self, jvel: float) -> None:
        await self._put("JVEL", jvel, wait=True)

    async def set_position(self, value: float) -> None:
        """SET=Set, VAL=value, SET=Use; back to Use even if the VAL write fails."""
        try:
            await self._put("SET", 1, wait=True)
            await self._put("VAL", value, wait=True)
        finally:
            try:
                await self._put("SET", 0, wait=True)
            except MotorError as error:
                raise MotorError(
                    f"{error}; {self.pv('SET')} may be left at Set: set it to Use"
                ) from None

    async def set_dial_limits(self, dllm: float, dhlm: float) -> None:
        """DLLM and DHLM in the order that never inverts the range (0, 0: disabled)."""
        await self._set_limits(("DLLM", "DHLM"), dllm, dhlm)

    async def set_user_limits(self, llm: float, hlm: float) -> None:
        await self._set_limits(("LLM", "HLM"), llm, hlm)

    async def _set_limits(self, fields: tuple[str, str], low: float, high: float) -> None:
        """Both limits in the order that never inverts the range, as two plain puts sent
        together, then their monitors.

        The order comes from the monitored limits: nothing else writes them during a
        homing but the homing itself, which waits for each write's monitor (the
        calibration's change of OFF moves LLM/HLM too, and its readback is waited for
        after those monitors). CA delivers a client's requests on one circuit in order,
        so the record takes the two writes in the order sent; only the confirmation
        needs waiting for."""
        if low > high:  # only when restoring a record that came that way
            log.warning("%s: writing inverted limits %s=%g > %s=%g", self.name, fields[0],
                        low, fields[1], high)
        status = self.status
        if not status.connected:
            raise MotorDisconnected(
                f"{self.name}: motor record {self.pv_root} not connected; cannot write"
                f" {self.pv(fields[0])}, {self.pv(fields[1])}")
        current = (getattr(status, _FIELDS[fields[0]][0]),
                   getattr(status, _FIELDS[fields[1]][0]))
        # A put-callback to a limit field completes only when the record is done,
        # DMOV=1: never, on an axis that ignores STOP. A plain put and its monitor
        # tell us the value is in, whatever the axis does.
        writes = [(fields[0], low) if which == "low" else (fields[1], high)
                  for which in limit_order(current, (low, high))]
        for field, value in writes:
            await self._put(field, value, wait=False)
        for field, value in writes:
            await self._wait_field(field, value)

    async def _wait_field(self, field: str, value: float) -> None:
        attribute = _FIELDS[field][0]
        await self.wait_for(
            lambda s: math.isclose(getattr(s, attribute), value, rel_tol=1e-9, abs_tol=1e-9),
            self.put_timeout, f"{self.pv(field)} to read {value:g}")

    async def move(self, value: float, timeout: float) -> None:
        """VAL=value with put-callback: returns when the record reports the move done."""
        await self._put("VAL", value, wait=True, timeout=timeout)
