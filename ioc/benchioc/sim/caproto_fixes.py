"""Fixes to the caproto 1.3.0 asyncio server, applied once at sim start.

The defects (1-4) were measured on these machines (see the project's design notes):

1. `Context._subscription_queue_iteration` (caproto/server/common.py) broadcasts an
   update by iterating the live deque `self.subscriptions[sub_spec]` and awaiting a send
   for each subscriber. A client unsubscribing (or disconnecting) during that await
   removes from the deque, the iteration raises "deque mutated during iteration", and
   since the loop runs in the server's main task the whole server shuts down.
   Fix: iterate over a snapshot of the deque, and skip subscribers that went away.

2. `VirtualCircuit.get_from_sub_queue` (caproto/asyncio/server.py) is
   `asyncio.wait_for(queue.get(), timeout)`. On Python 3.11 a timeout that fires
   just as the get completes can drop the item it got, so a monitor update is lost
   (seen with CAPROTO_SERVER_HIGH_LOAD_TIMEOUT_SEC=0). Fix: take what is queued with
   get_nowait(); only when the queue is empty, wait for an item with asyncio.wait (which
   never cancels), and if the wait gives up, cancel the getter and keep any item it
   obtained anyway.

3. The asyncio server's TCP sockets keep Nagle's algorithm on: asyncio sets TCP_NODELAY
   only on sockets made with proto=IPPROTO_TCP, and caproto binds its listening socket
   with proto 0, so accepted sockets inherit neither. A write reply followed by a
   monitor update (two small sends) then waits for the client's delayed ACK: every
   second put-callback took 40-44 ms instead of 1-3 ms (measured with pyepics and with
   the IOC's aioca client). Fix: set TCP_NODELAY on each accepted socket, as libca and
   rsrv do.

4. `_TaskHandler.cancel` (caproto/asyncio/utils.py), used when a client disconnects
   abruptly (a killed camonitor), cancels the circuit's subscription task and then
   `await`s it; on Python 3.11 that raises "RuntimeError: await wasn't used with
   future" and caproto logs a traceback for the disconnect (the server carries on).
   Fix: wait for the cancelled task with asyncio.wait, which neither re-raises its
   cancellation nor its error, and never wait for the task that is cancelling itself.

5. Not a defect, a gap: a caproto putter cannot tell a put-callback (WriteNotify) from
   a plain put, and caproto runs every write in a task of its own. The genuine IOC
   differs on both counts, and clients meet it: a put-callback to a record already
   busy with another put-callback waits for it (dbNotify's restart list), and rsrv
   serialises two put-callbacks on one channel from one client by stalling that
   client's whole circuit until the first completes (a STOP sent meanwhile by that
   client is not seen until then). Fix: the circuit marks the writes it handles for a
   WriteNotify (`is_put_callback()` in the putter), and a WriteNotify on a channel whose
   previous WriteNotify from the same circuit is still pending waits for it before
   anything else of that circuit is processed (at most `PUT_CALLBACK_WAIT` seconds,
   rsrv's 60).

The batching delay is also forced to 0 here (the module reads the environment variable
at import, which may precede the loopback environment being applied).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import socket

log = logging.getLogger(__name__)

CAPROTO_VERSION = "1.3.0"
PUT_CALLBACK_WAIT = 60.0  # rsrv's wait for a channel's previous put-callback
_applied = False

# Set while a circuit handles a WriteNotify; copied into the write task it starts.
_put_callback: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "bench_sim_put_callback", default=False)
_notify_sid: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "bench_sim_notify_sid", default=None)


def is_put_callback() -> bool:
    """Whether the write being handled (in a putter) came with a put-callback."""
    return _put_callback.get()


async def _subscription_queue_iteration(self, sub_specs, metadata, values, flags, sub):
    """caproto's broadcast, iterating over a copy of each subscriber list."""
    if sub is not None:
        if len(sub_specs) != 1:
            raise RuntimeError("Unexpected sub_specs length")
        await self._subscription_queue_send(sub_specs[0], sub, metadata=metadata,
                                            values=values, flags=flags)
        return
    for sub_spec in sub_specs:
        subscribers = self.subscriptions.get(sub_spec)
        for one in tuple(subscribers or ()):
            if one not in subscribers:
                continue  # unsubscribed while an earlier send was awaited
            await self._subscription_queue_send(sub_spec, one, metadata=metadata,
                                                values=values, flags=flags)


async def _get_from_sub_queue(self, timeout=None):
    """Next subscription update, or None after `timeout` seconds; never loses an item."""
    queue: asyncio.Queue = self.subscription_queue
    try:
        return queue.get_nowait()
    except asyncio.QueueEmpty:
        pass
    if timeout is not None and timeout <= 0:
        return None
    getter = asyncio.ensure_future(queue.get())
    try:
        done, _ = await asyncio.wait({getter}, timeout=timeout)
    except asyncio.CancelledError:
        _abandon(getter, queue)
        raise
    if getter in done:
        return getter.result()
    return _abandon(getter, queue)


def _abandon(getter: asyncio.Future, queue: asyncio.Queue):
    """Stop waiting; an item the getter already took goes back to the front of the queue."""
    if getter.done() and not getter.cancelled():
        item = getter.result()
        queue._queue.appendleft(item)  # type: ignore[attr-defined] # keeps the order of updates
        return None
    getter.cancel()
    return None


async def flush_updates(context, max_rounds: int = 200) -> None:
    """Let queued monitor updates reach the sockets before a put-callback reply.

    caproto sends a write reply directly but monitor updates through two queues, so a
    client could see its put complete before the last updates of the processing that
    completed it. Used by the camera. The motor records do not use it: on the genuine
    IOC the reply of a motor record's put-callback races the monitors of its last
    processing (rsrv's extra-labor queue against the event queue; the reply came first
    in 8 of 12 moves measured), so the simulated record sends the reply first, and a
    client must not expect the final RBV/DMOV monitor before it (docs/genuine-
    differences.md).
    """
    for _ in range(max_rounds):
        pending = context.subscription_queue.qsize() + sum(
            circuit.subscription_queue.qsize() for circuit in list(context.circuits))
        if not pending:
            break
        await asyncio.sleep(0)
    await asyncio.sleep(0)  # the circuit loop that took the last item writes it now


async def _cancel_task(self, task: asyncio.Task) -> None:
    """caproto's _TaskHandler.cancel, waiting for the end without awaiting the task."""
    task.cancel()
    if task is not asyncio.current_task():
        await asyncio.wait({task})


def _tracking_put_callbacks(original):
    """VirtualCircuit._process_command that marks WriteNotify writes and, like rsrv,
    handles one put-callback per channel at a time, holding up the circuit meanwhile."""
    from caproto import WriteNotifyRequest

    async def _process_command(self, command):
        if not isinstance(command, WriteNotifyRequest):
            return await original(self, command)
        pending = getattr(self, "_bench_notify_tasks", {}).get(command.sid)
        if pending is not None and not pending.done():
            await asyncio.wait({pending}, timeout=PUT_CALLBACK_WAIT)
        callback_token = _put_callback.set(True)
        sid_token = _notify_sid.set(command.sid)
        try:
            return await original(self, command)
        finally:
            _notify_sid.reset(sid_token)
            _put_callback.reset(callback_token)

    return _process_command


def _recording_notify_tasks(original):
    """VirtualCircuit._start_write_task that remembers the task of a WriteNotify."""

    async def _start_write_task(self, handle_write):
        sid = _notify_sid.get()
        if sid is None:
            return await original(self, handle_write)
        task = self.tasks.create(handle_write())
        if not hasattr(self, "_bench_notify_tasks"):
            self._bench_notify_tasks = {}
        self._bench_notify_tasks[sid] = task
        return None

    return _start_write_task


def _with_nodelay(original_init):
    """_TransportWrapper.__init__ that also switches Nagle's algorithm off."""

    def __init__(self, reader, writer) -> None:
        original_init(self, reader, writer)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    return __init__


def apply() -> None:
    """Patch caproto's server classes (idempotent)."""
    global _applied
    if _applied:
        return
    import caproto
    from caproto.asyncio import server as asyncio_server
    from caproto.asyncio import utils as asyncio_utils
    from caproto.server import common

    if caproto.__version__ != CAPROTO_VERSION:
        log.warning("caproto %s is not %s: check that these fixes still apply",
                    caproto.__version__, CAPROTO_VERSION)
    common.Context._subscription_queue_iteration = _subscription_queue_iteration
    asyncio_server.VirtualCircuit.get_from_sub_queue = _get_from_sub_queue
    common.HIGH_LOAD_TIMEOUT = 0.0
    asyncio_utils._TaskHandler.cancel = _cancel_task
    circuit = asyncio_server.VirtualCircuit
    circuit._process_command = _tracking_put_callbacks(circuit._process_command)
    circuit._start_write_task = _recording_notify_tasks(circuit._start_write_task)
    wrapper = asyncio_utils._TransportWrapper
    wrapper.__init__ = _with_nodelay(wrapper.__init__)
    _applied = True
