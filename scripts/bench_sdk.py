"""SDK benchmark: reducer round trips, pipelined calls, and pure-codec row decoding.

Prints figures with the machine and versions, each next to a baseline measured
in the same run, so the ratios mean something on any machine:

- sequential reducer calls through the SDK, against the floor of a WebSocket
  ping/pong round trip on the same kind of connection, and against the same
  reducer called over HTTP (``POST /v1/database/{db}/call/{reducer}``);
- pipelined reducer calls from one client, against the sequential rate, and
  pipelined again without call keys (the module then records no receipt): the
  cost of exactly-once calls;
- pure-Python decoding of ``message`` rows, against msgpack (a C extension)
  unpacking the same fields, and the struct fast path on fixed-size rows.

    .venv/bin/python scripts/bench_sdk.py [--calls N] [--rows N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import urllib.request
from typing import Any

import msgpack
from bench_common import machine

from inner_universe.spacetime import codec, connect, fetch_schema
from inner_universe.spacetime.bsatn import BsatnWriter
from inner_universe.spacetime.schema import CallKey
from inner_universe.spacetime.server import LocalServer
from inner_universe.spacetime.types import ConnectionId, Identity, Timestamp
from inner_universe.universe import publish


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>10,.0f}/s"


async def bench_calls(uri: str, database: str, calls: int) -> dict[str, float]:
    async with connect(uri, database) as conn:
        await conn.subscribe("SELECT * FROM conversation")
        for i in range(50):  # warm up the connection and the module
            await conn.reducers.create_conversation(f"warm {i}")

        # Floor: a WebSocket ping/pong on an identical connection.
        assert conn._session is not None
        ws = conn._session.transport._ws  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        for _ in range(calls):
            await (await ws.ping())
        ping = time.perf_counter() - t0

        t0 = time.perf_counter()
        for i in range(calls):
            await conn.reducers.create_conversation(f"seq {i}")
        sequential = time.perf_counter() - t0

        t0 = time.perf_counter()
        futures = [conn.reducers.create_conversation(f"pipe {i}") for i in range(calls)]
        await asyncio.gather(*futures)
        pipelined = time.perf_counter() - t0

        # The cost of exactly-once: keyed and unkeyed batches alternately, best of 3.
        no_key = CallKey(0, 0)  # client 0: no key, no receipt
        batch = max(calls // 4, 1)
        keyed, unkeyed = float("inf"), float("inf")
        for r in range(3):
            t0 = time.perf_counter()
            await asyncio.gather(
                *[conn.reducers.create_conversation(f"keyed {r} {i}") for i in range(batch)]
            )
            keyed = min(keyed, time.perf_counter() - t0)
            t0 = time.perf_counter()
            unkeyed_calls = [
                conn.call_reducer("create_conversation", f"unkeyed {r} {i}", call_key=no_key)
                for i in range(batch)
            ]
            await asyncio.gather(*unkeyed_calls)
            unkeyed = min(unkeyed, time.perf_counter() - t0)

    def http_call(i: int) -> None:
        body = json.dumps([{"client": 0, "seq": 0}, f"http {i}"]).encode()  # no call key
        request = urllib.request.Request(
            f"{uri}/v1/database/{database}/call/create_conversation",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            response.read()

    http_calls = max(calls // 4, 50)
    t0 = time.perf_counter()
    for i in range(http_calls):
        await asyncio.to_thread(http_call, i)
    http = (time.perf_counter() - t0) / http_calls * calls
    return {
        "ping": ping,
        "sequential": sequential,
        "pipelined": pipelined,
        "keyed": keyed,
        "unkeyed": unkeyed,
        "batch": batch,
        "http": http,
    }


def message_rows(count: int, table: Any) -> tuple[bytes, list[int], list[bytes]]:
    """``count`` realistic message rows as one BsatnRowList payload, and as msgpack."""
    author = Identity(0xC200_1234_5678_9ABC << 192)
    writer = BsatnWriter()
    offsets, packed = [], []
    content = "The SDK first, then the NERV layer. " * 6  # ~200 characters
    for i in range(count):
        offsets.append(len(writer))
        row = table.row_class(
            id=i,
            conversation_id=i % 50,
            author=author,
            role="assistant",
            content=content,
            sequence=i,
            private=False,
            conversation_owner=author,
            created_at=Timestamp(1_700_000_000_000_000 + i),
            updated_at=Timestamp(1_700_000_000_000_000 + i),
        )
        writer.raw(codec.encode_row(table, row))
        packed.append(
            msgpack.packb(
                [
                    i,
                    i % 50,
                    author.to_bytes(),
                    "assistant",
                    content,
                    i,
                    False,
                    author.to_bytes(),
                    row.created_at.micros_since_epoch,
                    row.updated_at.micros_since_epoch,
                ]
            )
        )
    return writer.getvalue(), offsets, packed


def best_of(runs: int, fn: Any) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_decode(schema: Any, rows: int) -> dict[str, float]:
    table = schema.table("message")
    data, offsets, packed = message_rows(rows, table)
    decoded = codec.decode_rows(table, data, offsets)
    assert len(decoded) == rows and decoded[-1].sequence == rows - 1
    bsatn = best_of(3, lambda: codec.decode_rows(table, data, offsets))
    unpackb = msgpack.unpackb
    mp = best_of(3, lambda: [unpackb(p) for p in packed])

    session = schema.table("session")
    fixed_row = codec.encode_row(
        session,
        session.row_class(
            connection_id=ConnectionId(7), identity=Identity(9), connected_at=Timestamp(1)
        ),
    )
    size = len(fixed_row)
    fixed_data = fixed_row * rows
    fixed = best_of(3, lambda: codec.decode_rows(session, fixed_data, size))
    return {"bsatn": bsatn, "msgpack": mp, "fixed": fixed, "bytes_per_row": len(data) / rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    print(machine("websockets"))
    with LocalServer() as server:
        database = publish(server, "bench")
        calls = asyncio.run(bench_calls(server.uri, database, args.calls))
        schema = fetch_schema(server.uri, database)
    n = args.calls
    print(f"\nreducer calls ({n} each, one client, create_conversation, in-memory server)")
    print(f"  websocket ping/pong (floor)   {rate(n, calls['ping'])}")
    print(
        f"  SDK sequential round trips    {rate(n, calls['sequential'])}"
        f"   {calls['ping'] / calls['sequential']:.2f}x the ping floor"
    )
    print(f"  HTTP /call sequential         {rate(n, calls['http'])}")
    print(
        f"  SDK pipelined                 {rate(n, calls['pipelined'])}"
        f"   {calls['sequential'] / calls['pipelined']:.1f}x sequential"
    )
    b = int(calls["batch"])
    print(f"  exactly-once cost ({b} pipelined calls per batch, best of 3 alternating)")
    print(f"    with call keys (receipts)   {rate(b, calls['keyed'])}")
    print(
        f"    without (baseline)          {rate(b, calls['unkeyed'])}"
        f"   keyed calls take {calls['keyed'] / calls['unkeyed']:.2f}x the time"
    )
    print(f"    SDK sequential vs HTTP /call: {calls['http'] / calls['sequential']:.1f}x")

    d = bench_decode(schema, args.rows)
    r = args.rows
    print(f"\ndecode {r:,} message rows ({d['bytes_per_row']:.0f} B each), best of 3")
    print(f"  pure-Python BSATN             {rate(r, d['bsatn'])}")
    print(
        f"  msgpack unpackb (C), baseline {rate(r, d['msgpack'])}"
        f"   BSATN is {d['msgpack'] / d['bsatn']:.2f}x its speed"
    )
    print(f"  fixed-size session rows       {rate(r, d['fixed'])}  (struct fast path)")


if __name__ == "__main__":
    main()
