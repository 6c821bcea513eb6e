"""Chat benchmark: what persisting a stream costs, and what watching one costs.

Prints, in one run on a local server (each figure next to its baseline from the
same run):

- tokens persisted per second with 1 and with 8 concurrent streams (offline
  provider at full speed, default flush policy), against the offline stream
  alone, read and dropped; and the same with the writer fed directly (no
  model), which shows what the database path takes on its own;
- write-to-watcher latency, p50 and p99: from a writer's ``append_chunk`` call
  to another process seeing the chunk; baseline: the writer's own round trip;
- how soon a cancel stops the producer, against one batch interval;
- bytes sent to a watcher per 1,000 tokens: chunk rows, against the old way
  (``append_message`` rewriting the whole row), same batches, gzip and none;
- the slowdown of a paced stream (like a real model, 200 tokens/s) with
  persistence, against the same offline stream without it, for four flush
  policies (with chunks written and tokens/s at full speed), to choose the default.

    .venv/bin/python scripts/bench_chat.py [--tokens N] [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import machine

from inner_universe.features.chat import ChatSession, Deployment, FlushPolicy, ProviderRouter
from inner_universe.features.chat.inserts import OwnInserts
from inner_universe.features.chat.writer import StreamWriter
from inner_universe.spacetime import ConnectionBuilder, DbConnection, connect
from inner_universe.spacetime.server import LocalServer
from inner_universe.universe import publish

PACED = 0.005  # seconds per token: a fast real model


def words(count: int) -> str:
    return " ".join(f"tok{i}" for i in range(count))


async def new_conversation(conn: DbConnection) -> int:
    await conn.subscribe(f"SELECT * FROM conversation WHERE owner = 0x{conn.identity.to_hex()}")  # type: ignore[union-attr]
    row = await OwnInserts(conn).call("create_conversation", "conversation", "bench")
    return int(row.id)


async def stream_alone(router: ProviderRouter, script: str) -> float:
    """Seconds to read the offline stream to its end, persisting nothing."""
    started = time.perf_counter()
    async for _piece in router.stream(router.deployments[0], [], script=script):
        pass
    return time.perf_counter() - started


async def persisted(
    uri: str, database: str, router: ProviderRouter, script: str, streams: int, policy: FlushPolicy
) -> tuple[float, int]:
    """Seconds for ``streams`` concurrent sessions (one connection each) to persist ``script``."""
    conns = [await connect(uri, database) for _ in range(streams)]
    try:
        sessions = [ChatSession(c, router, policy=policy) for c in conns]
        conversations = [await new_conversation(c) for c in conns]
        for s, conversation in zip(sessions, conversations, strict=True):
            await s.follow(conversation)
        started = time.perf_counter()
        replies = await asyncio.gather(
            *(s.reply(c, script=script) for s, c in zip(sessions, conversations, strict=True))
        )
        seconds = time.perf_counter() - started
        assert all(r.text == script for r in replies)
        batches = sum(
            c.db.stream.find("message_id", r.message_id).last_sequence
            for c, r in zip(conns, replies, strict=True)
        )
        return seconds, batches
    finally:
        for c in conns:
            await c.disconnect()


async def writer_alone(
    uri: str, database: str, script: str, streams: int, policy: FlushPolicy
) -> float:
    """Seconds for ``streams`` StreamWriters fed directly (no model) to persist ``script``."""
    conns = [await connect(uri, database) for _ in range(streams)]
    try:
        writers = []
        for conn in conns:
            conversation = await new_conversation(conn)
            await conn.subscribe(f"SELECT * FROM message WHERE conversation_id = {conversation}")
            message = await OwnInserts(conn).call(
                "post_message", "message", conversation, "assistant", ""
            )
            await conn.reducers.start_stream(message.id, 0, "bench", "none")
            writers.append(StreamWriter(conn, message.id, policy))
        tokens = [word + " " for word in script.split(" ")]

        async def feed(writer: StreamWriter) -> None:
            for token in tokens:
                await writer.put(token)
            await writer.close()

        started = time.perf_counter()
        await asyncio.gather(*(feed(w) for w in writers))
        return time.perf_counter() - started
    finally:
        for conn in conns:
            await conn.disconnect()


async def cancel_to_stop(uri: str, database: str, router: ProviderRouter, runs: int) -> list[float]:
    """Seconds from a cancel's commit (seen by the canceller) until the producer has stopped."""
    seconds = []
    async with connect(uri, database) as producer, connect(uri, database) as canceller:
        session = ChatSession(producer, router)
        for _ in range(runs):
            conversation = await new_conversation(producer)
            await producer.reducers.admit_participant(conversation, canceller.identity, [])
            await session.follow(conversation)
            reply = asyncio.ensure_future(session.reply(conversation, script=words(2000)))
            await until_streaming(producer, conversation)
            stream = next(iter(producer.db.stream.filter("conversation_id", conversation)))
            await canceller.reducers.cancel_stream(stream.message_id, "bench")
            committed = time.perf_counter()
            assert (await reply).status == "cancelled"
            seconds.append(time.perf_counter() - committed)
    return seconds


async def until_streaming(conn: DbConnection, conversation: int) -> None:
    """Wait (on the replica) until the conversation's stream has its first chunk."""
    while not any(s.last_sequence for s in conn.db.stream.filter("conversation_id", conversation)):
        await asyncio.sleep(0.005)


def median(samples: list[float]) -> float:
    return statistics.median(samples)


# --- the watcher process -------------------------------------------------------------------------


async def watch(uri: str, database: str, message_id: int, count: int) -> None:
    """Print the monotonic time at which each chunk arrived (run as a separate process)."""
    seen: dict[int, float] = {}
    async with connect(uri, database) as conn:
        conn.db.stream_chunk.on_insert(
            lambda ctx, row: seen.setdefault(row.sequence, time.monotonic())
        )
        await conn.subscribe(f"SELECT * FROM stream_chunk WHERE message_id = {message_id}")
        print("ready", flush=True)
        while len(seen) < count:
            await asyncio.sleep(0.01)
    print(json.dumps(seen), flush=True)


async def latency(
    uri: str, database: str, batches: int, interval: float, text: str
) -> dict[str, float]:
    """Write ``batches`` chunks every ``interval`` s; another process times their arrival."""
    async with connect(uri, database) as conn:
        conversation = await new_conversation(conn)
        await conn.subscribe(f"SELECT * FROM message WHERE conversation_id = {conversation}")
        message = await OwnInserts(conn).call(
            "post_message", "message", conversation, "assistant", ""
        )
        await conn.reducers.start_stream(message.id, 0, "bench", "offline/echo")
        watcher = subprocess.Popen(
            [sys.executable, __file__, "--watch", uri, database, str(message.id), str(batches)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert watcher.stdout is not None
        assert (await asyncio.to_thread(watcher.stdout.readline)).strip() == "ready"
        sent: dict[int, float] = {}
        round_trips = []
        for sequence in range(1, batches + 1):
            sent[sequence] = time.monotonic()
            await conn.reducers.append_chunk(message.id, sequence, text)
            round_trips.append(time.monotonic() - sent[sequence])
            await asyncio.sleep(interval)
        out, _ = await asyncio.to_thread(watcher.communicate)
        seen = {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}
        to_watcher = sorted(seen[s] - sent[s] for s in sent)
        round_trips.sort()
        return {
            "p50": statistics.median(to_watcher) * 1000,
            "p99": to_watcher[int(len(to_watcher) * 0.99) - 1] * 1000,
            "rt50": statistics.median(round_trips) * 1000,
            "rt99": round_trips[int(len(round_trips) * 0.99) - 1] * 1000,
        }


async def watcher_bytes(
    uri: str, database: str, batches: list[str], compression: str
) -> dict[str, int]:
    """Bytes a watcher receives for the same batches written as chunks, then as row rewrites."""
    result = {}
    for approach in ("chunks", "rewrite"):
        with tempfile.TemporaryDirectory() as folder:
            async with connect(uri, database) as writer:
                conversation = await new_conversation(writer)
                await writer.subscribe(
                    f"SELECT * FROM message WHERE conversation_id = {conversation}"
                )
                message = await OwnInserts(writer).call(
                    "post_message", "message", conversation, "assistant", ""
                )
                if approach == "chunks":
                    await writer.reducers.start_stream(message.id, 0, "bench", "offline/echo")
                    query = f"SELECT * FROM stream_chunk WHERE message_id = {message.id}"
                else:
                    query = f"SELECT * FROM message WHERE id = {message.id}"
                builder = ConnectionBuilder().with_uri(uri).with_database(database)
                watcher = (
                    await builder.with_compression(compression)
                    .record_messages_to(Path(folder))
                    .connect()
                )  # type: ignore[arg-type]
                await watcher.subscribe(query)
                before = sum(p.stat().st_size for p in Path(folder).iterdir())
                for sequence, text in enumerate(batches, start=1):
                    if approach == "chunks":
                        await writer.reducers.append_chunk(message.id, sequence, text)
                    else:
                        await writer.reducers.append_message(message.id, text)
                await writer.reducers.post_message(conversation, "user", "end")  # a marker...
                await asyncio.sleep(0.3)  # ...and time for the last frames (bytes, not timing)
                await watcher.disconnect()
                result[approach] = sum(p.stat().st_size for p in Path(folder).iterdir()) - before
    return result


def batches_of(script: str, max_chars: int) -> list[str]:
    """The script cut into whole-word batches of at most ``max_chars`` (the writer's shape)."""
    out: list[str] = []
    current = ""
    for word in script.split(" "):
        piece = word + " "
        if current and len(current) + len(piece) > max_chars:
            out.append(current)
            current = ""
        current += piece
    return [*out, current] if current else out


def show(label: str, value: str) -> None:
    print(f"  {label:46}: {value}")


async def main(tokens: int, repeat: int) -> None:
    print(machine("litellm"))
    print(f"each figure: the median of {repeat} runs")
    with LocalServer() as server:
        database = publish(server, "bench-chat")
        uri = server.uri
        fast = ProviderRouter([Deployment("fast", "offline/echo", {"pace": 0})])
        paced = ProviderRouter([Deployment("paced", "offline/echo", {"pace": PACED})])
        script = words(tokens)
        default = FlushPolicy()
        policy_text = f"{default.max_chars} chars / {default.max_delay * 1000:.0f} ms"
        await persisted(uri, database, fast, words(50), 1, default)  # warm up

        print(f"\nthroughput: {tokens:,} tokens per stream, full speed, policy {policy_text}")
        alone = median([await stream_alone(fast, script) for _ in range(repeat)])
        show("offline stream through LiteLLM, not persisted", f"{tokens / alone:>9,.0f} tokens/s")
        for streams in (1, 8):
            runs = [
                await persisted(uri, database, fast, script, streams, default)
                for _ in range(repeat)
            ]
            seconds, batches = median([r[0] for r in runs]), runs[0][1]
            rate = streams * tokens / seconds
            show(
                f"persisted, {streams} stream(s) through LiteLLM",
                f"{rate:>9,.0f} tokens/s ({batches:,} chunks)",
            )
        for streams in (1, 8):
            seconds = median(
                [await writer_alone(uri, database, script, streams, default) for _ in range(repeat)]
            )
            show(
                f"persisted, {streams} stream(s), writer fed directly",
                f"{streams * tokens / seconds:>9,.0f} tokens/s",
            )

        lat = await latency(uri, database, 200, 0.01, "a batch of about forty characters here ")
        print("\nwrite-to-watcher latency: 200 chunks, the watcher in another process")
        show(
            "append_chunk call to chunk seen by watcher",
            f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms",
        )
        show(
            "baseline: the writer's own round trip",
            f"p50 {lat['rt50']:.2f} ms, p99 {lat['rt99']:.2f} ms",
        )

        stops = sorted(await cancel_to_stop(uri, database, paced, 5))
        print("\ncancel: from another connection's commit to the producer having stopped (5 runs)")
        show(
            "cancel committed -> reply() returned",
            f"median {median(stops) * 1000:.1f} ms, max {stops[-1] * 1000:.1f} ms "
            f"(one batch interval: {default.max_delay * 1000:.0f} ms)",
        )

        thousand = batches_of(words(1000), default.max_chars)
        print(f"\nbytes sent to a watcher per 1,000 tokens ({len(thousand)} batches)")
        for compression in ("None", "Gzip"):
            sizes = await watcher_bytes(uri, database, thousand, compression)
            ratio = sizes["rewrite"] / sizes["chunks"]
            show(f"compression {compression}: chunk rows", f"{sizes['chunks']:>9,} B")
            show(
                f"compression {compression}: rewrite the row",
                f"{sizes['rewrite']:>9,} B ({ratio:.1f}x)",
            )

        paced_tokens = 200
        paced_script = words(paced_tokens)
        print(
            f"\nslowdown by persistence: {paced_tokens} tokens paced at {1 / PACED:.0f} tokens/s,"
        )
        print("each run next to the same stream not persisted; then full speed per policy")
        for policy in (FlushPolicy(1, 0.0), FlushPolicy(32, 0.02), default, FlushPolicy(512, 0.2)):
            ratios, paced_batches = [], 0
            for _ in range(repeat):
                bare = await stream_alone(paced, paced_script)
                seconds, paced_batches = await persisted(
                    uri, database, paced, paced_script, 1, policy
                )
                ratios.append(seconds / bare)
            full = [await persisted(uri, database, fast, script, 1, policy) for _ in range(repeat)]
            rate = tokens / median([r[0] for r in full])
            show(
                f"{policy.max_chars} chars / {policy.max_delay * 1000:.0f} ms",
                f"paced {median(ratios):.3f}x ({paced_batches} chunks); "
                f"full speed {rate:>5,.0f} tokens/s ({full[0][1]:,} chunks)",
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--watch":
        uri, database, message_id, count = sys.argv[2:6]
        asyncio.run(watch(uri, database, int(message_id), int(count)))
        raise SystemExit(0)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.tokens, args.repeat))
