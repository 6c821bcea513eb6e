"""The SDK's own CPU per reducer call, without a server: steady figures on a busy machine.

A :class:`MemoryTransport` plays the server. Every ``create_conversation`` call the
SDK writes is answered, one loop turn later as a socket's reply would be, by the
``TransactionUpdate`` the real module sends: committed, one inserted ``conversation``
row (the connection subscribes to that table), this connection's identity, the call's
request id and arguments echoed. The SDK's whole path runs: binding and encoding the
call, the outbox, the reply's decoding, the protocol's attribution, the cache, the
``ReducerEvent``, settling the future. The fake server's own work (decoding the call,
encoding its reply) is measured separately on the same frames, after each run, and the
median of those measurements over the rounds is subtracted. (Until the latest stop each
run's own measurement was subtracted: a measurement that caught a collector's pass or a
busy core then printed a "best" far below the median, 10.9 against 17.8 us in one run.)

The same-run baseline is a minimal client doing a raw client's Python work per call:
take a pre-encoded frame, write it, and when the reply arrives (also one loop turn
later) read its request id and resolve a future. What is left between the two is
the SDK's own work; a socket's cost (the same for both) is not in either.

CPU time of this process, pipelined (``--calls`` calls, then all awaited) and
sequential (a quarter as many, each awaited), best and median of ``--rounds``. Each
run starts with a full collection, so no run pays for garbage another left (the SDK's
and the minimal client's runs alternate in one process). Last, one long run of
sequential calls (five times ``--calls``) prints what the garbage collector costs per
call over time, which the best-of rounds mostly leave out.
Compare two checkouts by running the script of one with ``PYTHONPATH`` pointing at
the other's ``python/`` directory, alternating. The native codec is built into each
checkout by ``scripts/setup`` and is not in git: a copy of the code without it runs the
pure-Python codec, so check the codec the first line names.

    .venv/bin/python scripts/bench_replay_calls.py [--calls N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench_common import machine

from inner_universe.errors import ConnectError
from inner_universe.spacetime import messages as m
from inner_universe.spacetime.connection import ConnectionBuilder, DbConnection
from inner_universe.spacetime.schema import ModuleSchema
from inner_universe.spacetime.transport import MemoryTransport
from inner_universe.spacetime.types import ConnectionId, Identity, TimeDuration, Timestamp

DATA = Path(__file__).parents[1] / "tests" / "data"
SCHEMA = ModuleSchema.from_json(json.loads((DATA / "schema_inner_universe_v9.json").read_text()))
IDENTITY_TOKEN = (DATA / "captured" / "plain_0001_identity_token.bin").read_bytes()
CONVERSATION_TABLE_ID = 7
EPOCH_MICROS = 1_700_000_000_000_000


def conversation_row(n: int, owner: Identity) -> bytes:
    """A ``conversation`` row: id, owner, title, private, last_sequence, created/updated at."""
    title = f"call {n}".encode()
    return (
        struct.pack("<Q", n)
        + owner.to_bytes()
        + struct.pack("<I", len(title))
        + title
        + b"\x00"
        + struct.pack("<Qqq", 0, EPOCH_MICROS + n, EPOCH_MICROS + n)
    )


class FakeServer:
    """Answers each call and subscription written to its transport as the module would."""

    def __init__(self) -> None:
        self.transport = MemoryTransport()
        self.identity = Identity(0)
        self.connection_id = ConnectionId(0)
        self.rows = 0
        self.written: list[bytes] = []

    def on_send(self, data: bytes) -> None:
        self.written.append(data)
        reply = self.answer(data)
        if reply is not None:
            self.transport.feed(reply)

    def answer(self, data: bytes) -> bytes | None:
        msg = m.decode_client_message(data)
        if isinstance(msg, m.SubscribeMulti):
            update = m.DatabaseUpdate(
                (m.TableUpdate.from_rows(CONVERSATION_TABLE_ID, "conversation"),)
            )
            applied = m.SubscribeMultiApplied(msg.request_id, 10, msg.query_id, update)
            return m.encode_server_frame(applied)
        if not isinstance(msg, m.CallReducer):
            return None
        self.rows += 1
        row = conversation_row(self.rows, self.identity)
        table = m.TableUpdate.from_rows(CONVERSATION_TABLE_ID, "conversation", inserts=[row])
        reply = m.TransactionUpdate(
            m.Committed(m.DatabaseUpdate((table,))),
            Timestamp(EPOCH_MICROS + self.rows),
            self.identity,
            self.connection_id,
            m.ReducerCallInfo(msg.reducer, 3, msg.args, msg.request_id),
            m.EnergyQuanta(1234),
            TimeDuration(35),
        )
        return m.encode_server_frame(reply)

    def own_cost(self) -> float:
        """CPU seconds the answers to the frames written since the last call took."""
        written, self.written = self.written, []
        rows = self.rows
        start = time.process_time()
        for data in written:
            self.answer(data)
        spent = time.process_time() - start
        self.rows = rows
        return spent


async def open_sdk() -> tuple[DbConnection, FakeServer]:
    server = FakeServer()
    transport = server.transport = MemoryTransport(on_send=server.on_send)

    async def open_link(url: str, token: str | None) -> MemoryTransport:
        if transport.closed:
            raise ConnectError("the in-memory server is gone")
        transport.feed(IDENTITY_TOKEN)
        return transport

    conn = await (
        ConnectionBuilder()
        .with_uri("http://127.0.0.1:9")
        .with_database("replay")
        .with_schema(SCHEMA)
        .with_transport(open_link)
        .with_reconnect(False)
        .connect(5)
    )
    assert conn.identity is not None and conn.connection_id is not None
    server.identity, server.connection_id = conn.identity, conn.connection_id
    await conn.subscribe("SELECT * FROM conversation")
    return conn, server


class MinimalClient:
    """A raw client's Python work per call: write a pre-encoded frame, read the reply's id."""

    def __init__(self, replies: list[bytes]) -> None:
        self.loop = asyncio.get_running_loop()
        self.replies = replies  # what the server answers to the n-th frame
        self.waiting: dict[int, asyncio.Future[bytes]] = {}
        self.sent = 0

    def call(self, frame: bytes) -> asyncio.Future[bytes]:
        future = self.loop.create_future()
        self.waiting[self.sent] = future
        self.loop.call_soon(self.received, self.replies[self.sent])  # the reply's turn
        self.sent += 1
        return future

    def received(self, reply: bytes) -> None:
        # The request id is the reply's last u32 before energy (u128) and duration (i64).
        (request_id,) = struct.unpack_from("<I", reply, len(reply) - 28)
        self.waiting.pop(request_id - 1).set_result(reply)


async def cpu_per_call(run: Callable[[int], Awaitable[None]], count: int) -> float:
    gc.collect()  # each run starts clean: no collector debt from the other client's run
    start = time.process_time()
    await run(count)
    return (time.process_time() - start) / count


class CollectorClock:
    """CPU time spent in the garbage collector's passes while installed."""

    def __init__(self) -> None:
        self.spent = 0.0
        self._start = 0.0

    def __enter__(self) -> CollectorClock:
        gc.callbacks.append(self._on_pass)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_pass)

    def _on_pass(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.process_time()
        else:
            self.spent += time.process_time() - self._start


async def main(calls: int, rounds: int) -> None:
    conn, server = await open_sdk()
    for i in range(50):  # warm up
        await conn.reducers.create_conversation(f"warm {i}")
    server.own_cost()

    async def sdk_pipelined(n: int) -> None:
        await asyncio.gather(*(conn.reducers.create_conversation(f"p {i}") for i in range(n)))

    async def sdk_sequential(n: int) -> None:
        for i in range(n):
            await conn.reducers.create_conversation(f"s {i}")

    frames = [f"frame {i}".encode() for i in range(calls)]
    replies = [
        m.encode_server_frame(
            m.TransactionUpdate(
                m.Committed(m.DatabaseUpdate()),
                Timestamp(0),
                Identity(0),
                ConnectionId(0),
                m.ReducerCallInfo("create_conversation", 3, b"", i + 1),
                m.EnergyQuanta(0),
                TimeDuration(0),
            )
        )
        for i in range(calls)
    ]

    async def raw_pipelined(n: int) -> None:
        client = MinimalClient(replies)
        await asyncio.gather(*(client.call(frames[i]) for i in range(n)))

    async def raw_sequential(n: int) -> None:
        client = MinimalClient(replies)
        for i in range(n):
            await client.call(frames[i])

    figures: dict[str, list[float]] = {k: [] for k in ("sdk", "sdk_seq", "raw", "raw_seq")}
    # The fake server's cost per call, replayed after each SDK run; the median of the
    # rounds is what is subtracted (one replay can catch a collector's pass or a busy core).
    own: dict[str, list[float]] = {"sdk": [], "sdk_seq": []}
    seq = calls // 4
    for _ in range(rounds):
        figures["raw"].append(await cpu_per_call(raw_pipelined, calls))
        figures["sdk"].append(await cpu_per_call(sdk_pipelined, calls))
        own["sdk"].append(server.own_cost() / calls)
        figures["raw_seq"].append(await cpu_per_call(raw_sequential, seq))
        figures["sdk_seq"].append(await cpu_per_call(sdk_sequential, seq))
        own["sdk_seq"].append(server.own_cost() / seq)
    for name, costs in own.items():
        server_cost = statistics.median(costs)
        figures[name] = [cpu - server_cost for cpu in figures[name]]

    # What a long-running application sees: one long run of sequential calls, whose
    # collector passes (young and full) the best-of rounds above mostly leave out.
    long_run = calls * 5
    gc.collect()
    with CollectorClock() as collector:
        long_cpu = await cpu_per_call(sdk_sequential, long_run) - server.own_cost() / long_run
    await conn.disconnect()

    def us(values: list[float]) -> str:
        return f"best {min(values) * 1e6:6.1f} us, median {statistics.median(values) * 1e6:6.1f} us"

    print(machine())
    print(f"{calls} pipelined, {seq} sequential calls, {rounds} rounds; CPU per call")
    print(f"  SDK, pipelined     {us(figures['sdk'])}")
    print(f"  minimal, pipelined {us(figures['raw'])}")
    print(f"  SDK, sequential    {us(figures['sdk_seq'])}")
    print(f"  minimal, sequential {us(figures['raw_seq'])}")
    print(f"  SDK / minimal (best, pipelined): {min(figures['sdk']) / min(figures['raw']):.1f}x")
    print(
        f"  SDK, {long_run} sequential calls in one run: {long_cpu * 1e6:.1f} us per call, "
        f"of which the garbage collector {collector.spent / long_run * 1e6:.1f} us"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds))
