"""The module's stream, provider and ledger reducers, called directly against the real server.

Each test checks what the server stored (through a second client's replica or
a one-off query), and that a refused call changed nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from inner_universe.errors import ReducerError
from inner_universe.features.chat.inserts import OwnInserts
from inner_universe.spacetime.connection import DbConnection, connect
from tests.conftest import PublishedDatabase, until
from tests.features.chat.conftest import new_conversation

pytestmark = pytest.mark.integration


async def start(conn: DbConnection, conversation_id: int) -> int:
    """Post an empty assistant message and start streaming into it; returns the message id."""
    await conn.subscribe(f"SELECT * FROM message WHERE conversation_id = {conversation_id}")
    message = await OwnInserts(conn).call(
        "post_message", "message", conversation_id, "assistant", ""
    )
    await conn.reducers.start_stream(message.id, 0, "offline", "offline/echo")
    return int(message.id)


async def rows(conn: DbConnection, table: str, where: str) -> list[Any]:
    return (await conn.one_off_query(f"SELECT * FROM {table} WHERE {where}")).get(table, [])


async def test_chunks_fold_into_the_message_when_the_stream_finishes(
    alice: DbConnection, bob: DbConnection
) -> None:
    conversation = await new_conversation(alice)
    message_id = await start(alice, conversation)
    seen: list[Any] = []
    bob.db.stream_chunk.on_insert(lambda ctx, row: seen.append(row))
    await bob.subscribe(f"SELECT * FROM stream_chunk WHERE message_id = {message_id}")
    await bob.subscribe(f"SELECT * FROM stream WHERE message_id = {message_id}")
    await bob.subscribe(f"SELECT * FROM message WHERE id = {message_id}")

    for sequence, text in enumerate(["Hello", ", ", "world"], start=1):
        await alice.reducers.append_chunk(message_id, sequence, text)
    await until(lambda: len(seen) == 3)
    assert bob.db.message.find("id", message_id).content == ""  # not folded yet
    assert bob.db.stream.find("message_id", message_id).status == "streaming"

    await alice.reducers.finish_stream(message_id, "backup", "offline/large", 12, 3)
    await until(lambda: bob.db.stream.find("message_id", message_id).status == "done")
    stream = bob.db.stream.find("message_id", message_id)
    assert (stream.provider, stream.model, stream.prompt_tokens, stream.completion_tokens) == (
        "backup",
        "offline/large",
        12,
        3,
    )
    assert (stream.last_sequence, stream.length, stream.ended_by) == (3, 12, alice.identity)
    assert bob.db.message.find("id", message_id).content == "Hello, world"
    assert [c.sequence for c in seen] == [1, 2, 3]


async def test_chunks_out_of_order_empty_or_too_large_are_refused_and_change_nothing(
    alice: DbConnection,
) -> None:
    conversation = await new_conversation(alice)
    message_id = await start(alice, conversation)
    await alice.reducers.append_chunk(message_id, 1, "first")
    with pytest.raises(ReducerError, match=r"chunk 1 of message .* is out of order: the next is 2"):
        await alice.reducers.append_chunk(message_id, 1, "again")
    with pytest.raises(ReducerError, match=r"chunk 3 .* out of order"):
        await alice.reducers.append_chunk(message_id, 3, "skipped one")
    with pytest.raises(ReducerError, match="must not be empty"):
        await alice.reducers.append_chunk(message_id, 2, "")
    with pytest.raises(ReducerError, match="streamed message is 65541 bytes; the limit is 65536"):
        await alice.reducers.append_chunk(message_id, 2, "x" * 65536)
    chunks = await rows(alice, "stream_chunk", f"message_id = {message_id}")
    assert [(c.sequence, c.text) for c in chunks] == [(1, "first")]
    (stream,) = await rows(alice, "stream", f"message_id = {message_id}")
    assert (stream.last_sequence, stream.length, stream.status) == (1, 5, "streaming")


async def test_only_the_author_writes_and_a_stranger_cannot_cancel(
    alice: DbConnection, bob: DbConnection
) -> None:
    conversation = await new_conversation(alice)
    message_id = await start(alice, conversation)
    await alice.reducers.append_chunk(message_id, 1, "mine")
    with pytest.raises(ReducerError, match="belongs to another identity"):
        await bob.reducers.append_chunk(message_id, 2, "forged")
    with pytest.raises(ReducerError, match="belongs to another identity"):
        await bob.reducers.finish_stream(message_id, "p", "m", 0, 0)
    with pytest.raises(ReducerError, match="may be cancelled only by its author or a partic"):
        await bob.reducers.cancel_stream(message_id, "not yours")
    with pytest.raises(ReducerError, match="no stream of message with id 999999"):
        await bob.reducers.cancel_stream(999999, "")
    (stream,) = await rows(alice, "stream", f"message_id = {message_id}")
    assert (stream.status, stream.last_sequence) == ("streaming", 1)


async def test_a_cancel_ends_the_stream_keeps_its_text_and_refuses_later_chunks(
    alice: DbConnection, bob: DbConnection
) -> None:
    # Bob streams into Alice's conversation; Alice, the conversation's owner, cancels it.
    conversation = await new_conversation(alice, speakers=(bob,))
    message_id = await start(bob, conversation)
    await bob.reducers.append_chunk(message_id, 1, "half a ")
    await alice.reducers.cancel_stream(message_id, "enough")
    with pytest.raises(ReducerError, match=r"stream of message .* is cancelled: enough"):
        await bob.reducers.append_chunk(message_id, 2, "thought")
    with pytest.raises(ReducerError, match="is cancelled"):
        await alice.reducers.cancel_stream(message_id, "twice")
    (stream,) = await rows(alice, "stream", f"message_id = {message_id}")
    assert (stream.status, stream.detail, stream.ended_by) == (
        "cancelled",
        "enough",
        alice.identity,
    )
    (message,) = await rows(alice, "message", f"id = {message_id}")
    assert message.content == "half a "


async def test_any_participant_may_cancel_and_a_removed_author_may_not_write(
    universe_db: PublishedDatabase, alice: DbConnection, bob: DbConnection
) -> None:
    async with connect(universe_db.uri, universe_db.name) as carol:
        conversation = await new_conversation(alice, speakers=(bob,))
        await alice.reducers.admit_participant(conversation, carol.identity, [])  # no voice
        first = await start(bob, conversation)
        await carol.reducers.cancel_stream(first, "a participant stops it")
        (stream,) = await rows(alice, "stream", f"message_id = {first}")
        assert (stream.status, stream.ended_by) == ("cancelled", carol.identity)

        second = await start(bob, conversation)
        await bob.reducers.append_chunk(second, 1, "before ")
        await alice.reducers.remove_participant(conversation, bob.identity)
        with pytest.raises(ReducerError, match="you are not a participant of conversation"):
            await bob.reducers.append_chunk(second, 2, "after")
        assert [c.text for c in await rows(alice, "stream_chunk", f"message_id = {second}")] == [
            "before "
        ]


async def test_a_private_conversations_streams_are_seen_by_its_owner_and_author_only(
    universe_db: PublishedDatabase, alice: DbConnection, bob: DbConnection
) -> None:
    conversation = await new_conversation(alice, private=True, speakers=(bob,))
    message_id = await start(bob, conversation)
    await bob.reducers.append_chunk(message_id, 1, "secret")
    async with connect(universe_db.uri, universe_db.name) as stranger:
        for conn, visible in ((alice, 1), (bob, 1), (stranger, 0)):
            for table in ("stream", "stream_chunk"):
                assert len(await rows(conn, table, f"message_id = {message_id}")) == visible
        seen: list[Any] = []
        stranger.db.stream_chunk.on_insert(lambda ctx, row: seen.append(row))
        await stranger.subscribe("SELECT * FROM stream_chunk")
        await bob.reducers.append_chunk(message_id, 2, " plans")
        await bob.reducers.finish_stream(message_id, "p", "m", 1, 2)
        # A public chunk committed afterwards reaches the stranger; the private ones did not.
        public = await start(alice, await new_conversation(alice))
        await alice.reducers.append_chunk(public, 1, "hello all")
        await until(lambda: any(row.message_id == public for row in seen))
        assert not [row for row in seen if row.message_id == message_id]
        (message,) = await rows(alice, "message", f"id = {message_id}")
        assert message.content == "secret plans"


async def test_a_stream_starts_only_on_the_callers_empty_assistant_message(
    alice: DbConnection, bob: DbConnection
) -> None:
    conversation = await new_conversation(alice)
    await alice.subscribe(f"SELECT * FROM message WHERE conversation_id = {conversation}")
    own = OwnInserts(alice)
    spoken = await own.call("post_message", "message", conversation, "user", "hello")
    with pytest.raises(ReducerError, match="must be an empty assistant message"):
        await alice.reducers.start_stream(spoken.id, 0, "offline", "offline/echo")
    message_id = await start(alice, conversation)
    with pytest.raises(ReducerError, match="already has a stream"):
        await alice.reducers.start_stream(message_id, 0, "offline", "offline/echo")
    empty = await own.call("post_message", "message", conversation, "assistant", "")
    with pytest.raises(ReducerError, match="belongs to another identity"):
        await bob.reducers.start_stream(empty.id, 0, "offline", "offline/echo")
    with pytest.raises(ReducerError, match="provider must not be empty"):
        await alice.reducers.start_stream(empty.id, 0, "", "offline/echo")
    assert await rows(alice, "stream", f"message_id = {empty.id}") == []


async def test_model_calls_are_ledgered_and_a_failure_cools_the_provider_for_its_caller(
    alice: DbConnection, bob: DbConnection
) -> None:
    conversation = await new_conversation(alice)
    message_id = await start(alice, conversation)
    await alice.subscribe(f"SELECT * FROM model_call WHERE message_id = {message_id}")
    own = OwnInserts(alice)
    args = (message_id, 0, "cooling-test", "offline/echo", 10, 100)
    call = await own.call("begin_model_call", "model_call", *args, 0)
    assert (call.status, call.caller, call.tokens_in) == ("running", alice.identity, 10)
    with pytest.raises(ReducerError, match=f"already has model call {call.id} running"):
        await alice.reducers.begin_model_call(*args, 0)
    with pytest.raises(ReducerError, match="belongs to another identity"):
        await bob.reducers.end_model_call(call.id, "done", 1, 1, 1, 1, 1, "", 0)
    with pytest.raises(ReducerError, match="outcome 'bad' is not one of done, failed, cancelled"):
        await alice.reducers.end_model_call(call.id, "bad", 1, 1, 1, 1, 1, "", 0)
    await alice.reducers.end_model_call(call.id, "failed", 10, 4, 2000, 5, 30, "it broke", 60_000)

    (ended,) = await rows(alice, "model_call", f"id = {call.id}")
    assert (ended.status, ended.tokens_out, ended.cost_nano_usd, ended.error) == (
        "failed",
        4,
        2000,
        "it broke",
    )
    assert (ended.first_token_ms, ended.duration_ms) == (5, 30)
    # Health is public and per reporter; the ledger row is alice's alone.
    (provider,) = await rows(bob, "provider", "name = 'cooling-test'")
    assert (provider.owner, provider.calls, provider.failures) == (alice.identity, 1, 1)
    assert await rows(bob, "model_call", f"id = {call.id}") == []
    # Alice's next call on the cooling provider is refused, with the reason...
    with pytest.raises(
        ReducerError, match=r"'cooling-test' is cooling down for .* ms more after: it b"
    ):
        await alice.reducers.begin_model_call(
            await start(alice, conversation), 0, "cooling-test", "offline/echo", 1, 1, 0
        )
    # ...and bob's is not: alice's failures are hers to heed, not his.
    other_message = await start(bob, await new_conversation(bob))
    await bob.reducers.begin_model_call(other_message, 0, "cooling-test", "offline/echo", 1, 1, 0)
    (bobs,) = await rows(bob, "model_call", f"message_id = {other_message}")
    assert (bobs.caller, bobs.status) == (bob.identity, "running")


async def test_a_budget_refuses_a_call_that_would_exceed_it_and_says_why(
    alice: DbConnection, bob: DbConnection
) -> None:
    await alice.subscribe("SELECT * FROM agent")
    own = OwnInserts(alice)
    agent = await own.call("register_agent", "agent", "budgeted-agent", "chat", b"")
    with pytest.raises(ReducerError, match="belongs to another identity"):
        await bob.reducers.set_budget(agent.id, 1)
    await alice.reducers.set_budget(agent.id, 5_000)
    conversation = await new_conversation(alice)
    message_id = await start(alice, conversation)
    await alice.subscribe(f"SELECT * FROM model_call WHERE message_id = {message_id}")
    call = await own.call(
        "begin_model_call", "model_call", message_id, agent.id, "b", "m", 1, 4_000, 0
    )
    await alice.reducers.end_model_call(call.id, "done", 1, 1, 4_500, 1, 1, "", 0)
    with pytest.raises(
        ReducerError,
        match=r"budget refused: agent \d+ has spent \$0.000004 of its budget of \$0.000005, "
        r"and this call may cost up to \$0.000001",
    ):
        await alice.reducers.begin_model_call(message_id, agent.id, "b", "m", 1, 1_000, 0)
    assert len(await rows(alice, "model_call", f"message_id = {message_id}")) == 1
    spend = await rows(alice, "spend", f"agent_id = {agent.id}")
    assert [(s.calls, s.spent_nano_usd, s.budget_nano_usd) for s in spend] == [(1, 4_500, 5_000)]
