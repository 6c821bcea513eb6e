"""Streaming chat end to end: a real server, real processes; only the model is offline.

The producer (ChatSession) streams through LiteLLM's offline provider; watchers,
cancels and the ledger are checked through other connections and processes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

from inner_universe.errors import ReducerError
from inner_universe.features.chat import (
    CallRefusedError,
    ChatInputError,
    ChatSession,
    Deployment,
    FlushPolicy,
    ProviderRouter,
    ProvidersFailedError,
    Reply,
    StreamWatcher,
    UnknownStreamError,
    ledger_rows,
    spend_per_agent,
    spend_per_day,
    spend_per_provider,
)
from inner_universe.features.chat.inserts import OwnInserts
from inner_universe.spacetime.connection import DbConnection, connect
from tests.conftest import PublishedDatabase, until
from tests.features.chat.conftest import READONLY_WARNING, new_conversation

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings(READONLY_WARNING)]

SCRIPT = " ".join(f"word{i}" for i in range(40))
FAST = FlushPolicy(max_chars=24, max_delay=0.02)


def session(conn: DbConnection, *deployments: Deployment, **kwargs: Any) -> ChatSession:
    return ChatSession(conn, ProviderRouter(deployments), policy=FAST, **kwargs)


def echo(name: str, **params: Any) -> Deployment:
    return Deployment(name, "offline/echo", {"pace": 0.005, **params})


async def message_count(conn: DbConnection) -> int:
    return len((await conn.one_off_query("SELECT * FROM message")).get("message", []))


async def first_chunk(conn: DbConnection, conversation_id: int, after: int = 0) -> int:
    """Wait until a stream in the conversation has more than ``after`` chunks; its message id."""
    await until(
        lambda: any(
            s.last_sequence > after
            for s in conn.db.stream.filter("conversation_id", conversation_id)
        )
    )
    return int(next(iter(conn.db.stream.filter("conversation_id", conversation_id))).message_id)


async def streaming(
    conn: DbConnection, deployment: Deployment, script: str, *, after: int = 0
) -> tuple[asyncio.Future[Reply], int]:
    """A reply started in a new conversation, once it has more than ``after`` chunks;
    returns its task and its message id."""
    conversation = await new_conversation(conn)
    chat = session(conn, deployment)
    await chat.follow(conversation)
    reply = asyncio.ensure_future(chat.reply(conversation, script=script))
    return reply, await first_chunk(conn, conversation, after)


async def test_two_watchers_one_joining_late_get_every_chunk_once_in_order(
    universe_db: PublishedDatabase, alice: DbConnection
) -> None:
    # 40 words over about 2 s: the late watcher joins after 6 chunks with most of the
    # stream still to come, even on a loaded machine.
    reply_task, message_id = await streaming(alice, echo("watched", pace=0.05), SCRIPT)

    async def watch(after_chunks: int) -> tuple[StreamWatcher, list[int]]:
        async with connect(universe_db.uri, universe_db.name) as conn:
            await conn.subscribe(f"SELECT * FROM stream WHERE message_id = {message_id}")
            await until(
                lambda: conn.db.stream.find("message_id", message_id).last_sequence >= after_chunks
            )
            async with StreamWatcher(conn, message_id) as watcher:
                sequences = [chunk.sequence async for chunk in watcher]
            return watcher, sequences

    (early, early_seq), (late, late_seq) = await asyncio.gather(watch(1), watch(6))
    reply = await reply_task
    assert reply.status == "done" and reply.text == SCRIPT
    (message,) = (await alice.one_off_query(f"SELECT * FROM message WHERE id = {message_id}"))[
        "message"
    ]
    for watcher, sequences in ((early, early_seq), (late, late_seq)):
        assert sequences == list(range(1, watcher.stream.last_sequence + 1))  # no gap, no repeat
        assert watcher.text == message.content == SCRIPT
        assert watcher.stream.status == "done"
    assert late.backlog >= 6 > early.backlog  # the late one caught up on a backlog, then went live
    assert late.backlog < len(late_seq)


async def test_a_watcher_resumes_after_reconnecting_where_it_left_off(
    universe_db: PublishedDatabase, alice: DbConnection
) -> None:
    script = " ".join(f"word{i}" for i in range(80))  # 1.6 s: still streaming at the cut
    reply_task, message_id = await streaming(alice, echo("resumed", pace=0.02), script)

    first = await connect(universe_db.uri, universe_db.name)
    watcher = StreamWatcher(first, message_id)
    await watcher.start()
    seen = [chunk.sequence async for chunk in _take(watcher, 3)]
    await first.disconnect()  # the connection is gone mid-stream
    # Iteration yields what had already arrived, then ends instead of hanging.
    seen += [chunk.sequence async for chunk in watcher]
    await watcher.stop()
    assert not watcher.ended

    async with (
        connect(universe_db.uri, universe_db.name) as second,
        StreamWatcher(second, message_id, after=watcher.last_sequence) as resumed,
    ):
        seen += [chunk.sequence async for chunk in resumed]
    reply = await reply_task
    assert seen == list(range(1, len(seen) + 1))
    assert watcher.text + resumed.text == reply.text == script


async def _take(watcher: StreamWatcher, count: int) -> Any:
    taken = 0
    async for chunk in watcher:
        yield chunk
        taken += 1
        if taken == count:
            return


async def test_watching_a_message_without_a_stream_is_a_typed_error(alice: DbConnection) -> None:
    with pytest.raises(UnknownStreamError, match="message 987654 has no stream"):
        await StreamWatcher(alice, 987654).start()


async def test_a_cancel_from_another_process_stops_the_producer(
    universe_db: PublishedDatabase, alice: DbConnection
) -> None:
    long_script = " ".join(f"w{i}" for i in range(400))  # 8 s if nobody stops it
    reply_task, message_id = await streaming(
        alice, echo("cancelled", pace=0.02), long_script, after=2
    )
    assert alice.token is not None
    canceller = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "inner_universe.features.chat.demo", "--role", "cancel",
        "--uri", universe_db.uri, "--database", universe_db.name,
        "--message", str(message_id), "--token", alice.token,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    assert await canceller.wait() == 0
    reply = await asyncio.wait_for(reply_task, 30)

    assert reply.status == "cancelled"
    result = await alice.one_off_query(f"SELECT * FROM stream WHERE message_id = {message_id}")
    (stream,) = result["stream"]
    assert (stream.status, stream.detail) == ("cancelled", "cancelled from a third process")
    chunks = (
        await alice.one_off_query(f"SELECT * FROM stream_chunk WHERE message_id = {message_id}")
    )["stream_chunk"]
    assert len(chunks) == stream.last_sequence  # nothing was written after the cancel
    (call,) = await ledger_rows(alice, f"message_id = {message_id}")
    assert call.status == "cancelled"
    assert 0 < call.tokens_out < 400  # the model stream was stopped, not read to the end
    assert reply.text == "".join(c.text for c in sorted(chunks, key=lambda c: c.sequence))


async def test_a_provider_failing_mid_stream_falls_back_from_the_persisted_prefix(
    alice: DbConnection, bob: DbConnection
) -> None:
    conversation = await new_conversation(alice)
    chat = session(
        alice,
        echo("breaks", fail_after=7),
        Deployment("holds", "offline/large", {"pace": 0.005}),
        cooldown=60,  # still cooling when checked below, however slow the machine
    )
    reply = await chat.reply(conversation, script=SCRIPT)

    assert reply.status == "done" and reply.text == SCRIPT  # nothing lost, nothing repeated
    assert reply.provider == "holds" and list(reply.errors) == ["breaks"]
    assert "dropped the stream after 7 words" in reply.errors["breaks"]
    failed, resumed = await ledger_rows(alice, f"message_id = {reply.message_id}")
    prefix = " ".join(SCRIPT.split()[:7]) + " "
    assert (failed.provider, failed.status, failed.tokens_out) == ("breaks", "failed", 7)
    assert (resumed.provider, resumed.status, resumed.resumed_from) == (
        "holds",
        "done",
        len(prefix),
    )
    assert failed.first_token_ms is not None and failed.cost_nano_usd > 0
    # The failure is public health, reported by alice: another identity's replica sees it.
    await bob.subscribe("SELECT * FROM provider WHERE name = 'breaks'")
    (row,) = [r for r in bob.db.provider.iter() if r.owner == alice.identity]
    assert (row.failures, row.consecutive_failures) == (1, 1) and "dropped" in row.last_error
    assert "breaks" in chat.cooling()  # alice's own router heeds it
    stream = await bob.one_off_query(f"SELECT * FROM stream WHERE message_id = {reply.message_id}")
    assert stream["stream"][0].provider == "holds"


async def test_when_every_provider_fails_the_stream_ends_failed_and_keeps_its_text(
    alice: DbConnection,
) -> None:
    conversation = await new_conversation(alice)
    chat = session(alice, echo("only-one", fail_after=5), cooldown=0.2)
    with pytest.raises(
        ProvidersFailedError, match=r"only-one: .*dropped the stream after 5 words"
    ) as failed:
        await chat.reply(conversation, script=SCRIPT)
    message_id = failed.value.message_id
    result = await alice.one_off_query(f"SELECT * FROM stream WHERE message_id = {message_id}")
    (stream,) = result["stream"]
    assert stream.status == "failed" and "dropped the stream after 5 words" in stream.detail
    (message,) = (await alice.one_off_query(f"SELECT * FROM message WHERE id = {message_id}"))[
        "message"
    ]
    assert message.content == " ".join(SCRIPT.split()[:5]) + " "  # what arrived is kept


async def test_a_spent_budget_refuses_the_call_with_the_reason(alice: DbConnection) -> None:
    await alice.subscribe("SELECT * FROM agent")
    agent = await OwnInserts(alice).call("register_agent", "agent", "thrifty", "chat", b"")
    await alice.reducers.set_budget(agent.id, 1_000)  # $0.000001: less than one reply
    conversation = await new_conversation(alice)
    chat = session(alice, echo("priced"), agent_id=agent.id)
    with pytest.raises(CallRefusedError, match=r"budget refused: agent \d+ has spent \$0.000000"):
        await chat.reply(conversation, script=SCRIPT)
    assert await ledger_rows(alice, f"agent_id = {agent.id}") == []
    streams = await alice.one_off_query(
        f"SELECT * FROM stream WHERE conversation_id = {conversation}"
    )
    (stream,) = streams["stream"]
    assert stream.status == "failed" and stream.detail.startswith("budget refused")


async def test_a_slow_database_makes_the_producer_wait_instead_of_growing_memory(
    alice: DbConnection,
) -> None:
    # pace 0: the model is far faster than one reducer round trip per 8-character batch.
    words = " ".join(f"t{i:03}" for i in range(600))
    policy = FlushPolicy(max_chars=8, max_delay=0.0, capacity=64)
    chat = ChatSession(alice, ProviderRouter([echo("firehose", pace=0)]), policy=policy)
    conversation = await new_conversation(alice)
    reply = await chat.reply(conversation, script=words)
    assert reply.text == words
    assert reply.full_waits > 0  # the bounded buffer was full and the producer waited
    assert reply.peak_buffered <= policy.capacity + len("t599 ")


async def test_bad_input_is_refused_with_a_typed_error_and_changes_nothing(
    alice: DbConnection, bob: DbConnection
) -> None:
    conversation = await new_conversation(alice)
    chat = session(alice, echo("input"))
    before = await message_count(alice)
    with pytest.raises(ChatInputError, match="must not be empty"):
        await chat.send(conversation, "   ")
    with pytest.raises(ChatInputError, match="is 65537 bytes; the limit is 65536"):
        await chat.send(conversation, "x" * 65537)
    with pytest.raises(ChatInputError, match="no conversation with id 88888888"):
        await chat.send(88888888, "hello?")
    assert await message_count(alice) == before

    # A stranger's cancel is refused while the reply goes on to the end.
    reply_task = asyncio.ensure_future(chat.send(conversation, "say something", script=SCRIPT))
    message_id = await first_chunk(alice, conversation)
    with pytest.raises(
        ReducerError, match="may be cancelled only by its author or a participant of conv"
    ):
        await session(bob, echo("stranger")).cancel(message_id, "mine now")
    reply = await reply_task
    assert (reply.status, reply.text) == ("done", SCRIPT)


async def test_the_prompt_is_the_conversation_from_each_sessions_point_of_view(
    alice: DbConnection, bob: DbConnection
) -> None:
    conversation = await new_conversation(alice)
    mine, theirs = session(alice, echo("pov-a")), session(bob, echo("pov-b"))
    reply = await mine.send(conversation, "hello")
    assert reply.text == "You said: hello"  # the echo answers the user message just sent
    await theirs.follow(conversation)
    assert mine.prompt(conversation) == [
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "You said: hello"},
    ]
    assert [m["role"] for m in theirs.prompt(conversation)] == ["user", "user"]


async def test_spend_queries_add_up_the_ledger(alice: DbConnection) -> None:
    conversation = await new_conversation(alice)
    chat = session(alice, echo("counted-a"))
    for _ in range(2):
        await chat.reply(conversation, script="one two three")
    rows = await ledger_rows(alice, f"caller = 0x{alice.identity.to_hex()}")  # type: ignore[union-attr]
    per_provider = spend_per_provider(rows)
    assert per_provider["counted-a"].calls == 2 and per_provider["counted-a"].tokens_out == 6
    assert sum(s.cost_nano_usd for s in spend_per_agent(rows).values()) == sum(
        r.cost_nano_usd for r in rows
    )
    (day,) = spend_per_day(r for r in rows if r.provider == "counted-a").values()
    assert day.calls == 2 and day.cost_nano_usd == per_provider["counted-a"].cost_nano_usd > 0
