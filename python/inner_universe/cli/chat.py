"""``chat``: a conversation in the terminal, each reply printed as it streams in.

Lines come from stdin (typed, or piped: ``echo hi | inner-universe chat``); each one
is posted as a user message and the model's reply streams into the database through
:class:`ChatSession`, while a :class:`StreamWatcher` on the same connection prints its
chunks as they commit. End of input ends the conversation (Ctrl-D when typing).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..app import OFFLINE_MODEL, Universe
from ..spacetime.connection import DbConnection
from .shell import err, fail, friendly_errors, out, run_action

if TYPE_CHECKING:
    from ..features.chat import ChatSession, Reply

__all__ = ["chat"]


def _session(universe: Universe, model: str) -> ChatSession:
    """The Universe's chat service, on ``model`` (LiteLLM is imported here)."""
    universe.chat_model = model
    try:
        from ..features.chat.errors import ChatInputError

        return universe.chat
    except ModuleNotFoundError as exc:
        missing = f"`chat` needs the chat extra ({exc.name} is missing)"
        raise fail(f"{missing}: pip install 'inner-universe[chat]'") from None
    except ChatInputError:  # LiteLLM names no provider for it
        raise fail(f"unknown model {model!r}: LiteLLM knows no provider for it") from None


async def _new_conversation(conn: DbConnection) -> int:
    """Create a conversation owned by this identity and return its id."""
    assert conn.identity is not None
    await conn.subscribe(f"SELECT * FROM conversation WHERE owner = 0x{conn.identity.to_hex()}")
    await conn.reducers.create_conversation(f"chat {datetime.now():%Y-%m-%d %H:%M}")
    mine = [row.id for row in conn.db.conversation.iter() if row.owner == conn.identity]
    return int(max(mine))


async def _say(session: ChatSession, conversation: int, text: str) -> Reply:
    """Send one line and print the reply's chunks as they commit; returns the reply."""
    from ..features.chat import StreamWatcher

    conn = session.conn
    started: asyncio.Queue[int] = asyncio.Queue()

    def on_stream(_ctx: Any, row: Any) -> None:
        if row.conversation_id == conversation:
            started.put_nowait(row.message_id)

    callback = conn.db.stream.on_insert(on_stream)
    sending = asyncio.ensure_future(session.send(conversation, text))
    first = asyncio.ensure_future(started.get())
    try:
        await asyncio.wait({sending, first}, return_when=asyncio.FIRST_COMPLETED)
        if first.done():
            async with StreamWatcher(conn, first.result()) as watcher:
                async for chunk in watcher:
                    out.print(chunk.text, end="")
            out.print()
        return await sending  # raises the send's error, if it failed before streaming
    finally:
        conn.db.stream.remove_on_insert(callback)
        first.cancel()
        if not sending.done():
            sending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sending


async def _converse(universe: Universe, model: str, conversation: int | None) -> None:
    session = _session(universe, model)
    conversation = conversation or await _new_conversation(session.conn)
    await session.follow(conversation)  # an unknown conversation fails here, before any input
    interactive = sys.stdin.isatty()
    if interactive:
        err.print(f"conversation {conversation} with {model}; Ctrl-D ends it", style="dim")
    while True:
        if interactive:
            out.print("> ", end="")
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            break
        if line.strip():
            await _say(session, conversation, line.strip())


@friendly_errors
def chat(
    model: Annotated[
        str, typer.Option("--model", "-m", help="Any LiteLLM model (its key in the environment).")
    ] = OFFLINE_MODEL,
    conversation: Annotated[
        int | None, typer.Option("--conversation", "-c", help="Continue this conversation.")
    ] = None,
) -> None:
    """Chat with a model: each line you type is sent, the reply streams in; Ctrl-D ends."""
    with contextlib.suppress(KeyboardInterrupt):
        run_action(_converse, model, conversation)
