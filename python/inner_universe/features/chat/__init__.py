"""Streaming chat on the Inner Universe: replies persisted as they arrive, watchable,
resumable and cancellable from any process, routed over providers through LiteLLM.

    session = ChatSession(conn, ProviderRouter([Deployment("offline", "offline/echo")]))
    reply = await session.send(conversation_id, "Hello")      # streamed into the database
    async with StreamWatcher(other_conn, reply.message_id) as watcher:   # anywhere else
        async for chunk in watcher:
            print(chunk.text, end="")

LiteLLM is imported only when a :class:`ProviderRouter` is built (see :mod:`.llm`),
so importing this package stays light. docs/chat.md has the whole picture.
"""

from __future__ import annotations

from .buffer import FlushPolicy, TokenBuffer
from .errors import (
    CallRefusedError,
    ChatError,
    ChatInputError,
    ProvidersFailedError,
    UnknownStreamError,
)
from .ledger import (
    Spend,
    dollars,
    ledger_rows,
    spend_by,
    spend_per_agent,
    spend_per_day,
    spend_per_provider,
)
from .router import Capabilities, Deployment, Needs, ProviderRouter
from .session import ChatSession, Reply
from .watcher import StreamWatcher

__all__ = [
    "CallRefusedError",
    "Capabilities",
    "ChatError",
    "ChatInputError",
    "ChatSession",
    "Deployment",
    "FlushPolicy",
    "Needs",
    "ProviderRouter",
    "ProvidersFailedError",
    "Reply",
    "Spend",
    "StreamWatcher",
    "TokenBuffer",
    "UnknownStreamError",
    "dollars",
    "ledger_rows",
    "spend_by",
    "spend_per_agent",
    "spend_per_day",
    "spend_per_provider",
]
