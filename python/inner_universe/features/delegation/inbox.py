"""Agent inboxes: messages between agents, delivered when the recipient acknowledges.

``inbox = await Inbox.of(conn, "planner")`` is the live inbox of one of the
caller's agents: :meth:`Inbox.receive` returns the next message not yet
acknowledged (waiting for one to arrive, from any process), and
:meth:`Inbox.acknowledge` confirms delivery. A message stays pending until it is
acknowledged, so an agent that crashes before acknowledging gets it again when it
comes back. :meth:`Inbox.ask` sends and waits for the reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...spacetime.connection import DbConnection
from ...spacetime.types import Timestamp
from .board import TaskBoard, new_ticket
from .tasks import agent_id, pack, unpack

__all__ = ["Inbox", "Message"]


@dataclass(frozen=True, slots=True)
class Message:
    """One inbox message, with its body decoded."""

    id: int
    from_agent: int
    to_agent: int
    body: Any
    reply_to: int
    sent_at: Timestamp
    acknowledged: bool

    @classmethod
    def from_row(cls, row: Any) -> Message:
        return cls(
            row.id,
            row.from_agent,
            row.to_agent,
            unpack(row.body),
            row.reply_to,
            row.sent_at,
            row.acknowledged_at is not None,
        )


class Inbox:
    """The inbox of one agent the caller owns."""

    def __init__(self, board: TaskBoard, agent: int) -> None:
        self.board = board
        self.agent_id = agent
        self._handed_out: set[int] = set()

    @classmethod
    async def of(cls, conn: DbConnection, agent: str | int) -> Inbox:
        board = await TaskBoard.of(conn)
        return cls(board, agent_id(board, agent))

    def pending(self) -> list[Message]:
        """Messages to this agent not yet acknowledged, oldest first."""
        rows = self.board.conn.db.inbox_message.filter("to_agent", self.agent_id)
        return [
            Message.from_row(r)
            for r in sorted(rows, key=lambda r: r.id)
            if r.acknowledged_at is None
        ]

    async def receive(self, timeout: float | None = None) -> Message:
        """The next pending message this inbox has not returned yet (waits for one)."""

        def next_message() -> Message | None:
            return next((m for m in self.pending() if m.id not in self._handed_out), None)

        message = await self.board.until(next_message, timeout)
        self._handed_out.add(message.id)
        return message

    async def acknowledge(self, message: Message | int) -> None:
        """Confirm delivery; the message leaves :meth:`pending` in every process."""
        message_id = message if isinstance(message, int) else message.id
        await self.board.call("acknowledge_agent_message", message_id)

    async def forget(self, message: Message | int) -> None:
        """Delete a message this identity sent (acknowledged or not; its quota comes back).

        Raises :class:`~.errors.TaskRefused` for a message someone else sent or an
        unknown id; nothing changes.
        """
        message_id = message if isinstance(message, int) else message.id
        await self.board.call("forget_agent_message", message_id)

    async def send(self, to: str | int, body: Any, *, reply_to: int = 0) -> int:
        """Send ``body`` from this agent to another; returns the message id."""
        ticket = new_ticket()
        recipient = agent_id(self.board, to)
        await self.board.call(
            "send_agent_message", ticket, self.agent_id, recipient, pack(body), reply_to
        )
        return int(self.board.by_ticket("inbox_message", ticket).id)

    async def reply(self, message: Message, body: Any) -> int:
        """Answer a message (to its sender) and acknowledge it."""
        answer = await self.send(message.from_agent, body, reply_to=message.id)
        await self.acknowledge(message)
        return answer

    async def ask(self, to: str | int, body: Any, timeout: float | None = None) -> Message:
        """Send, then wait for the reply; the reply is acknowledged and returned."""
        sent = await self.send(to, body)

        def answer() -> Message | None:
            return next((m for m in self.pending() if m.reply_to == sent), None)

        reply = await self.board.until(answer, timeout)
        self._handed_out.add(reply.id)
        await self.acknowledge(reply)
        return reply
