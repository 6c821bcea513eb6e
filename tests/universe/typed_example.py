"""A small program written against the generated bindings; mypy --strict checks it.

It is also run against the real module (test_bindings.py), so it is code that works,
not only code that type-checks.
"""

from __future__ import annotations

from inner_universe.spacetime import DbConnection, EventContext
from inner_universe.universe.bindings import Conversation, Message, Module


async def post_and_read(conn: DbConnection, text: str) -> tuple[Conversation, list[Message]]:
    universe = Module(conn)
    seen: list[str] = []

    def on_message(ctx: EventContext, row: Message) -> None:
        seen.append(row.content)

    universe.db.message.on_insert(on_message)
    await conn.subscribe("SELECT * FROM conversation", "SELECT * FROM message")
    await universe.reducers.create_conversation(f"typed {text}")
    conversation = next(c for c in universe.db.conversation if c.title == f"typed {text}")
    found = universe.db.conversation.find_by_id(conversation.id)
    assert found == conversation
    await universe.reducers.post_message(conversation.id, "user", text)
    messages = universe.db.message.filter_by_conversation_id(conversation.id)
    assert seen == [m.content for m in messages]
    return conversation, messages
