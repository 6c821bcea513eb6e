"""A chat session: post a message, stream the model's reply into the database as it comes.

:class:`ChatSession` is what an agent process uses. For each reply it

1. posts an empty assistant message and starts its stream (``start_stream``);
2. asks the module to begin a model call on the first deployment the router
   offers (leaving out providers a trusted identity reported cooling:
   ``ProviderRouter(trust=...)``); ``begin_model_call`` refuses it if this
   identity's own calls put the provider in cooldown or a budget would be
   exceeded (a budget refusal ends the reply);
3. streams the model's tokens through a :class:`StreamWriter` (bounded buffer,
   batched chunks) while watching for a cancel from any process;
4. if the provider fails, even mid-stream, writes out what arrived, records
   the failed call (the provider cools down for this identity, and for every
   router that trusts its reports), and continues on
   the next deployment from the persisted prefix;
5. ends the model call in the ledger and the stream (done, failed or cancelled).

The prompt is the conversation as this session's identity sees it: its own
replies are the assistant's; other agents' replies, like user messages, are the user's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import ReducerError
from ...spacetime.connection import DbConnection, SubscriptionHandle
from ...spacetime.events import EventContext
from ...spacetime.types import Identity
from .buffer import FlushPolicy
from .errors import CallRefusedError, ChatError, ChatInputError, ProvidersFailedError
from .inserts import OwnInserts
from .router import Deployment, Needs, ProviderRouter
from .writer import StreamWriter

__all__ = ["MAX_MESSAGE_BYTES", "ChatSession", "Reply"]

MAX_MESSAGE_BYTES = 64 * 1024
"""The module's limit on a message (and a streamed reply), in UTF-8 bytes."""


@dataclass
class Reply:
    """How a streamed reply ended."""

    message_id: int
    status: str
    """done, cancelled or failed."""
    text: str
    provider: str
    model: str
    calls: list[int] = field(default_factory=list)
    """Its model calls' ledger ids, in order (more than one after a fallback)."""
    errors: dict[str, str] = field(default_factory=dict)
    """The providers that failed on the way, and how."""
    full_waits: int = 0
    """How often the model had to wait for the database (the buffer was full)."""
    peak_buffered: int = 0
    """The most characters held in memory at once."""


@dataclass
class _Attempt:
    """What one model call did."""

    outcome: str  # done, failed or cancelled
    error: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_ms: int | None = None
    fatal: bool = False
    """Failed for a reason another provider would meet too (the stream cannot take more)."""


class ChatSession:
    """Streams model replies into conversations for one connection (and optionally one agent)."""

    def __init__(
        self,
        conn: DbConnection,
        router: ProviderRouter,
        *,
        agent_id: int = 0,
        policy: FlushPolicy | None = None,
        cooldown: float = 30.0,
    ) -> None:
        self.conn = conn
        self.router = router
        self.agent_id = agent_id
        self.policy = policy or FlushPolicy()
        self.cooldown = cooldown
        self._own = OwnInserts(conn)
        self._followed: dict[int, asyncio.Future[SubscriptionHandle]] = {}
        self._cancels: dict[int, asyncio.Event] = {}
        self._health: asyncio.Future[SubscriptionHandle] | None = None
        conn.db.stream.on_update(self._on_stream_update)

    # --- public API -------------------------------------------------------------------

    async def send(self, conversation_id: int, text: str, **params: Any) -> Reply:
        """Post ``text`` as a user message, then stream the model's reply (see :meth:`reply`)."""
        check_message(text)
        await self.follow(conversation_id)
        await self.conn.reducers.post_message(conversation_id, "user", text)
        return await self.reply(conversation_id, **params)

    async def reply(
        self, conversation_id: int, *, needs: Needs | None = None, **params: Any
    ) -> Reply:
        """Stream a reply to the conversation as it stands; ``params`` go to the model call.

        Returns the :class:`Reply` when the stream is done or was cancelled.

        Raises:
            ChatInputError: no such conversation (nothing is written).
            CallRefusedError: the module refused the call (a budget); the stream ends failed.
            ProvidersFailedError: every deployment failed; the stream ends failed,
                keeping what was written.
        """
        await self.follow(conversation_id)
        messages = self.prompt(conversation_id)
        first = self.router.deployments[0]
        needs = needs or Needs(tokens_in=self.router.count_tokens(first, messages))
        candidates, left_out = self.router.candidates(needs, self.cooling())
        if not candidates:
            raise ProvidersFailedError(left_out, None)
        message = await self._own.call("post_message", "message", conversation_id, "assistant", "")
        lead = candidates[0]
        await self.conn.reducers.start_stream(message.id, self.agent_id, lead.name, lead.model)
        return await self._stream(message.id, messages, candidates, params)

    async def cancel(self, message_id: int, reason: str = "") -> None:
        """Cancel a stream (any process may, if the module allows the caller)."""
        await self.conn.reducers.cancel_stream(message_id, reason)

    async def follow(self, conversation_id: int) -> None:
        """Subscribe to a conversation's messages and streams, and (once) to the provider
        health reports the router trusts and this identity's running model calls."""
        if self._health is None:
            trusted = sorted(self.router.trusted(self._identity()))
            self._health = asyncio.ensure_future(
                self.conn.subscribe(
                    *(f"SELECT * FROM provider WHERE owner = 0x{who.to_hex()}" for who in trusted),
                    # Running calls only (to learn a new call's id), so the replica stays small.
                    f"SELECT * FROM model_call WHERE caller = 0x{self._identity().to_hex()} "
                    "AND status = 'running'",
                )
            )
        await self._health
        if conversation_id not in self._followed:
            c = int(conversation_id)
            self._followed[conversation_id] = asyncio.ensure_future(
                self.conn.subscribe(
                    f"SELECT * FROM conversation WHERE id = {c}",
                    f"SELECT * FROM message WHERE conversation_id = {c}",
                    f"SELECT * FROM stream WHERE conversation_id = {c}",
                )
            )
        await self._followed[conversation_id]
        if self.conn.db.conversation.find("id", conversation_id) is None:
            raise ChatInputError(f"no conversation with id {conversation_id}")

    def prompt(self, conversation_id: int) -> list[dict[str, Any]]:
        """The conversation as a model prompt, from this identity's point of view."""
        rows = sorted(
            (m for m in self.conn.db.message.filter("conversation_id", conversation_id)),
            key=lambda m: m.sequence,
        )
        me = self.conn.identity
        prompt = []
        for row in rows:
            if not row.content:
                continue  # a reply still streaming, or an empty one
            role = "user"  # the user's words, and other agents' replies
            if row.role == "system" or (row.role == "assistant" and row.author == me):
                role = row.role
            prompt.append({"role": role, "content": row.content})
        return prompt

    def cooling(self) -> dict[str, str]:
        """Providers in cooldown now, per the reports the router trusts, with why."""
        return self.router.cooling(self.conn.db.provider.iter(), self._identity())

    # --- one reply ----------------------------------------------------------------------

    async def _stream(
        self,
        message_id: int,
        messages: list[dict[str, Any]],
        candidates: list[Deployment],
        params: Mapping[str, Any],
    ) -> Reply:
        cancel = self._cancels[message_id] = asyncio.Event()
        writer = StreamWriter(self.conn, message_id, self.policy)
        reply = Reply(message_id, "failed", "", candidates[0].name, candidates[0].model)
        prompt_tokens = completion_tokens = 0
        try:
            for deployment in candidates:
                prefix = writer.persisted
                call_messages = list(messages)
                if prefix:  # a fallback: the next provider continues the persisted text
                    call_messages.append({"role": "assistant", "content": prefix})
                tokens_in = self.router.count_tokens(deployment, call_messages)
                try:
                    call = await self._own.call(
                        "begin_model_call",
                        "model_call",
                        message_id,
                        self.agent_id,
                        deployment.name,
                        deployment.model,
                        tokens_in,
                        self.router.estimate_nano_usd(deployment, tokens_in),
                        len(prefix.encode()),
                    )
                except ReducerError as refused:
                    if cancel.is_set():
                        break
                    if refused.message.startswith("budget refused"):
                        await self._end_stream(writer, "fail_stream", refused.message)
                        raise CallRefusedError(deployment.name, refused.message) from None
                    reply.errors[deployment.name] = refused.message  # cooling: try the next
                    continue
                reply.calls.append(call.id)
                started = time.monotonic()
                attempt = await self._attempt(deployment, call_messages, params, writer, cancel)
                prompt_tokens += attempt.prompt_tokens or tokens_in
                completion_tokens += attempt.completion_tokens
                await self._end_call(call.id, deployment, attempt, tokens_in, started)
                reply.provider, reply.model = deployment.name, deployment.model
                if attempt.outcome == "failed":
                    reply.errors[deployment.name] = attempt.error
                    if attempt.fatal:
                        break
                    continue
                reply.status = attempt.outcome
                break
            if reply.status == "done":
                await self._finish(reply, writer, cancel, prompt_tokens, completion_tokens)
            if cancel.is_set():
                reply.status = "cancelled"
                await writer.abort()
            elif reply.status != "done":
                await self._end_stream(writer, "fail_stream", _summary(reply.errors))
                raise ProvidersFailedError(reply.errors, message_id)
        finally:
            self._cancels.pop(message_id, None)
            if not writer.task.done():
                await writer.abort()
        reply.text = writer.persisted
        reply.full_waits, reply.peak_buffered = writer.buffer.full_waits, writer.buffer.peak_chars
        return reply

    async def _attempt(
        self,
        deployment: Deployment,
        messages: list[dict[str, Any]],
        params: Mapping[str, Any],
        writer: StreamWriter,
        cancel: asyncio.Event,
    ) -> _Attempt:
        """One model call streaming into ``writer``, until it ends, fails or is cancelled."""
        attempt = _Attempt("done")
        started = time.monotonic()

        async def read() -> None:
            async for piece in self.router.stream(deployment, messages, **params):
                if piece.text:
                    if attempt.first_token_ms is None:
                        attempt.first_token_ms = round((time.monotonic() - started) * 1000)
                    attempt.completion_tokens += 1
                    await writer.put(piece.text)
                if piece.prompt_tokens is not None:
                    attempt.prompt_tokens = piece.prompt_tokens
                if piece.completion_tokens is not None:
                    attempt.completion_tokens = piece.completion_tokens

        reader = asyncio.ensure_future(read())
        cancelled = asyncio.ensure_future(cancel.wait())
        try:
            await asyncio.wait(
                [reader, cancelled, writer.task], return_when=asyncio.FIRST_COMPLETED
            )
            if not cancel.is_set() and writer.task.done():
                raise writer.task.exception() or ChatError("the stream writer stopped")
            if reader.done() and reader.exception() is not None:
                attempt.outcome, attempt.error = "failed", _provider_error(reader.exception())
            if not cancel.is_set():
                await writer.drain()  # persist everything that arrived, also after a failure
        except ReducerError as refused:  # the module refused a chunk
            if _says_cancelled(refused):  # the cancel's own update may come later
                cancel.set()
            else:  # the stream cannot take more (too long, say): no provider can fix that
                attempt.outcome, attempt.error, attempt.fatal = "failed", refused.message, True
        finally:
            cancelled.cancel()
            await _stop(reader)
        if cancel.is_set():
            attempt.outcome = "cancelled"
        return attempt

    async def _end_call(
        self,
        call_id: int,
        deployment: Deployment,
        attempt: _Attempt,
        tokens_in: int,
        started: float,
    ) -> None:
        tokens_in = attempt.prompt_tokens or tokens_in
        await self.conn.reducers.end_model_call(
            call_id,
            attempt.outcome,
            tokens_in,
            attempt.completion_tokens,
            self.router.cost_nano_usd(deployment, tokens_in, attempt.completion_tokens),
            attempt.first_token_ms,
            round((time.monotonic() - started) * 1000),
            attempt.error,
            round(self.cooldown * 1000) if attempt.outcome == "failed" else 0,
        )

    async def _finish(
        self,
        reply: Reply,
        writer: StreamWriter,
        cancel: asyncio.Event,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        """Write the rest and end the stream as done, unless a cancel comes first."""
        try:
            await writer.close()
            await self.conn.reducers.finish_stream(
                reply.message_id, reply.provider, reply.model, prompt_tokens, completion_tokens
            )
        except ReducerError as refused:
            if not _says_cancelled(refused):
                raise
            cancel.set()  # cancelled after the model's last token: the cancel stands

    async def _end_stream(self, writer: StreamWriter, reducer: str, detail: str) -> None:
        """Write what is queued, then end the stream with ``reducer`` (keeps what was written)."""
        try:
            await writer.close()
        finally:
            await self.conn.call_reducer(reducer, writer.message_id, detail[:1024])

    def _on_stream_update(self, _ctx: EventContext, _old: Any, new: Any) -> None:
        if new.status == "cancelled" and new.message_id in self._cancels:
            self._cancels[new.message_id].set()

    def _identity(self) -> Identity:
        assert self.conn.identity is not None
        return self.conn.identity


def check_message(text: str) -> None:
    """Refuse an empty or oversized message before anything is sent."""
    if not text.strip():
        raise ChatInputError("a chat message must not be empty or only whitespace")
    size = len(text.encode())
    if size > MAX_MESSAGE_BYTES:
        raise ChatInputError(f"a chat message is {size} bytes; the limit is {MAX_MESSAGE_BYTES}")


def _says_cancelled(refused: ReducerError) -> bool:
    """The module refused a write because the stream was cancelled (streams.rs's wording)."""
    return " is cancelled" in refused.message


async def _stop(task: asyncio.Future[None]) -> None:
    """Cancel ``task`` and wait until it has unwound (closing the model's stream)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


def _provider_error(error: BaseException | None) -> str:
    text = str(error) or type(error).__name__
    return text[:1024]


def _summary(errors: Mapping[str, str]) -> str:
    return "; ".join(f"{name}: {error}" for name, error in errors.items()) or "no provider"
