"""Agent inboxes against the real server: live delivery, acknowledgement, replies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from inner_universe.features.delegation import Inbox, TaskRefused
from inner_universe.spacetime.connection import connect
from tests.conftest import PublishedDatabase

pytestmark = pytest.mark.integration


@asynccontextmanager
async def two_agents(db: PublishedDatabase, a: str, b: str) -> AsyncIterator[tuple[Inbox, Inbox]]:
    """Two agents, each registered by its own connection (its own identity), and their inboxes."""
    async with connect(db.uri, db.name) as a_conn, connect(db.uri, db.name) as b_conn:
        await a_conn.call_reducer("register_agent", a, "planning", b"")
        await b_conn.call_reducer("register_agent", b, "research", b"")
        yield await Inbox.of(a_conn, a), await Inbox.of(b_conn, b)


async def test_messages_arrive_live_and_stay_pending_until_acknowledged(
    universe_db: PublishedDatabase,
) -> None:
    async with two_agents(universe_db, "alice", "bob") as (alice, bob):
        sent = await alice.send("bob", {"ask": "sources?"})
        message = await bob.receive(timeout=15)
        assert (message.id, message.body, message.from_agent) == (
            sent,
            {"ask": "sources?"},
            alice.agent_id,
        )
        assert [m.id for m in bob.pending()] == [sent]  # received is not yet delivered

        # Only the recipient's owner confirms delivery.
        with pytest.raises(TaskRefused, match="belongs to another identity"):
            await alice.acknowledge(sent)
        await bob.reply(message, {"sources": 3})
        assert bob.pending() == []

        answer = await alice.receive(timeout=15)
        assert (answer.reply_to, answer.body) == (sent, {"sources": 3})
        await alice.acknowledge(answer)
        # Delivery is visible to the sender too, live.
        await alice.board.until(
            lambda: alice.board.conn.db.inbox_message.find("id", sent).acknowledged_at is not None,
            timeout=15,
        )

        # Nobody else sees the conversation.
        async with connect(universe_db.uri, universe_db.name) as stranger:
            assert (await Inbox.of(stranger, "alice")).pending() == []
            assert stranger.db.inbox_message.count() == 0


async def test_ask_waits_for_the_reply(universe_db: PublishedDatabase) -> None:
    async with two_agents(universe_db, "asker", "answerer") as (asker, answerer):

        async def answer_one() -> None:
            question = await answerer.receive(timeout=15)
            await answerer.reply(question, question.body * 2)

        responder = asyncio.create_task(answer_one())
        reply = await asker.ask("answerer", 21, timeout=15)
        await responder
        assert reply.body == 42 and reply.acknowledged is False
        with pytest.raises(TaskRefused, match="was not sent to agent"):
            await asker.send("answerer", "x", reply_to=reply.reply_to)
