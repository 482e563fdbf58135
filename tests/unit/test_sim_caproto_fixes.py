"""The caproto 1.3.0 server fixes, exercised on the exact situations that broke."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict, deque
from types import SimpleNamespace

import pytest
from caproto.server import common

from benchioc.sim import caproto_fixes


class FakeContext:
    """Just what `_subscription_queue_iteration` touches."""

    def __init__(self, subscribers: list[str], leaver: str, leaving: str):
        self.subscriptions = defaultdict(deque, {"spec": deque(subscribers)})
        self.sent: list[str] = []
        self._leaver, self._leaving = leaver, leaving

    async def _subscription_queue_send(self, sub_spec, sub, **kwargs):
        self.sent.append(sub)
        if sub == self._leaver:
            # Another client unsubscribes while this send awaits the socket.
            self.subscriptions[sub_spec].remove(self._leaving)
        await asyncio.sleep(0)


async def test_original_broadcast_dies_when_a_subscriber_leaves_mid_broadcast():
    context = FakeContext(["a", "b", "c"], leaver="a", leaving="b")
    with pytest.raises(RuntimeError, match="mutated during iteration"):
        await common.Context._subscription_queue_iteration(context, ("spec",), None, [], 0,
                                                           None)


async def test_fixed_broadcast_skips_the_subscriber_that_left():
    context = FakeContext(["a", "b", "c"], leaver="a", leaving="b")
    await caproto_fixes._subscription_queue_iteration(context, ("spec",), None, [], 0, None)
    assert context.sent == ["a", "c"]


async def test_fixed_queue_get_never_loses_an_item_under_racing_timeouts():
    circuit = SimpleNamespace(subscription_queue=asyncio.Queue())
    count = 2000
    received: list[int] = []

    async def produce() -> None:
        rng = random.Random(7)
        for item in range(count):
            circuit.subscription_queue.put_nowait(item)
            if rng.random() < 0.5:
                await asyncio.sleep(rng.choice((0, 0, 1e-5, 1e-4)))

    async def consume() -> None:
        while len(received) < count:
            item = await caproto_fixes._get_from_sub_queue(circuit, timeout=1e-5)
            if item is not None:
                received.append(item)

    await asyncio.wait_for(asyncio.gather(produce(), consume()), 30)
    assert received == list(range(count))


async def test_fixed_queue_get_returns_none_at_once_on_zero_timeout():
    circuit = SimpleNamespace(subscription_queue=asyncio.Queue())
    assert await caproto_fixes._get_from_sub_queue(circuit, timeout=0) is None
    circuit.subscription_queue.put_nowait("x")
    assert await caproto_fixes._get_from_sub_queue(circuit, timeout=0) == "x"


class FakeCircuit:
    """What the put-callback wrappers touch: caproto's write dispatch, in small."""

    def __init__(self) -> None:
        self.tasks = SimpleNamespace(create=asyncio.ensure_future)
        self.started: list[tuple[int, bool]] = []
        self.release = {1: asyncio.Event(), 2: asyncio.Event()}

    async def _start_write_task(self, handle_write):
        self.tasks.create(handle_write())

    async def _process_command(self, command):
        async def handle_write():
            self.started.append((command.ioid, caproto_fixes.is_put_callback()))
            await self.release[command.ioid].wait()

        await self._start_write_task(handle_write)


def wrapped_circuit() -> FakeCircuit:
    circuit = FakeCircuit()
    process = caproto_fixes._tracking_put_callbacks(FakeCircuit._process_command)
    start = caproto_fixes._recording_notify_tasks(FakeCircuit._start_write_task)
    circuit._process_command = process.__get__(circuit)
    circuit._start_write_task = start.__get__(circuit)
    return circuit


async def test_a_putter_can_tell_a_put_callback_from_a_plain_put():
    from caproto import ChannelType, WriteNotifyRequest, WriteRequest

    circuit = wrapped_circuit()
    await circuit._process_command(WriteRequest([1.0], ChannelType.DOUBLE, 1, sid=7, ioid=1))
    await circuit._process_command(
        WriteNotifyRequest([1.0], ChannelType.DOUBLE, 1, sid=7, ioid=2))
    await asyncio.sleep(0)
    assert circuit.started == [(1, False), (2, True)]
    circuit.release[1].set()
    circuit.release[2].set()


async def test_a_second_put_callback_on_a_channel_holds_the_circuit_until_the_first_ends():
    from caproto import ChannelType, WriteNotifyRequest

    circuit = wrapped_circuit()
    await circuit._process_command(
        WriteNotifyRequest([1.0], ChannelType.DOUBLE, 1, sid=7, ioid=1))
    second = asyncio.ensure_future(circuit._process_command(
        WriteNotifyRequest([2.0], ChannelType.DOUBLE, 1, sid=7, ioid=2)))
    await asyncio.sleep(0.01)
    assert circuit.started == [(1, True)] and not second.done()  # the circuit waits
    circuit.release[1].set()
    await asyncio.wait_for(second, 1)
    await asyncio.sleep(0)
    assert circuit.started == [(1, True), (2, True)]
    circuit.release[2].set()
