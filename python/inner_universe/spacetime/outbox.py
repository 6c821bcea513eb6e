"""The outbox: every reducer call from the moment it is made until its effect is certain.

A call waits here while the connection is down, stays here while its outcome
is unknown (sent, no answer yet), and stays a while after it was acknowledged
(the *ack window*): SpacetimeDB 1.2 acknowledges a commit before its commit log
reaches disk, so a crash can lose an acknowledged call, and after a reconnect
the connection resends each one the server no longer holds.

:class:`MemoryOutbox` (the default) lives as long as the process.
:class:`DurableOutbox` keeps the same records in an SQLite file, so a client
killed with calls in flight resends them when it starts again with that file.
The file also keeps the client id (the first half of every :class:`CallKey`),
the next sequence number and the token, because the server recognises a repeat
only from the same identity with the same key.
"""

from __future__ import annotations

import asyncio
import enum
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .protocol import key_in_args
from .schema import CallKey

__all__ = ["CallState", "DurableOutbox", "MemoryOutbox", "Outbox", "OutboxCall"]


class CallState(enum.Enum):
    QUEUED = "queued"  # not sent on the current socket (new, or its outcome was lost)
    SENT = "sent"  # sent on the current socket; outcome not known yet
    ACKED = "acked"  # committed (or handled, for calls without notification); kept a while


@dataclass(slots=True, eq=False)
class OutboxCall:
    """One reducer call. ``args`` are the encoded arguments, key included when ``keyed``."""

    seq: int
    reducer: str
    args: bytes
    keyed: bool
    notify: bool
    state: CallState = CallState.QUEUED
    was_sent: bool = False  # sent on some socket: it may have taken effect
    acked_at: float = 0.0  # wall-clock seconds
    future: asyncio.Future[Any] | None = field(default=None, repr=False)
    deadline: float | None = field(default=None, repr=False)  # loop time; None: not timed
    #: The key at the front of ``args``, when the maker knows it (else read from ``args``).
    call_key: CallKey | None = field(default=None, repr=False)

    def key(self) -> CallKey | None:
        """The key at the front of ``args`` (None for a call that is not deduplicated)."""
        if self.call_key is None and self.keyed:
            self.call_key = key_in_args(self.args)  # args never change: read once
        return self.call_key


class MemoryOutbox:
    """Call records in memory: they survive reconnects, not the process."""

    def __init__(self) -> None:
        self.client_id = secrets.randbits(127) | 1  # never 0, which means "no key"
        self.token: str | None = None
        self._next_seq = 1

    @property
    def last_seq(self) -> int:
        """The sequence number of the last call made (0 if none); a durable one spans runs."""
        return self._next_seq - 1

    def next_seq(self) -> int:
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def load(self) -> list[OutboxCall]:
        """Calls a previous process left unsettled (none, in memory)."""
        return []

    def save_token(self, token: str) -> None:
        self.token = token

    def add(self, call: OutboxCall) -> None:
        pass

    def acked(self, call: OutboxCall) -> None:
        pass

    def remove(self, call: OutboxCall) -> None:
        pass

    def close(self) -> None:
        pass


class DurableOutbox(MemoryOutbox):
    """Call records in an SQLite file (created ``0600``: it holds the token).

    A record is written before the call is sent and deleted once the call
    failed, or once it was acknowledged longer than the ack window ago. Writes
    are not fsynced: the file survives the process being killed, not the
    machine losing power.
    """

    def __init__(self, path: Path, ack_window: float) -> None:
        super().__init__()
        self.path = Path(path)
        self._ack_window = ack_window
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS call (seq INTEGER PRIMARY KEY, reducer TEXT NOT NULL,"
            " args BLOB NOT NULL, keyed INTEGER NOT NULL, notify INTEGER NOT NULL,"
            " acked_at REAL)"
        )
        meta = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
        if "client_id" in meta:
            self.client_id = int(meta["client_id"])
        else:
            self._set("client_id", str(self.client_id))
        self.token = meta.get("token")
        last = self._db.execute("SELECT max(seq) FROM call").fetchone()[0]
        self._next_seq = max(int(meta.get("next_seq", 1)), (last or 0) + 1)

    def _set(self, name: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def load(self) -> list[OutboxCall]:
        cutoff = time.time() - self._ack_window
        self._db.execute("DELETE FROM call WHERE acked_at IS NOT NULL AND acked_at < ?", (cutoff,))
        rows = self._db.execute(
            "SELECT seq, reducer, args, keyed, notify, acked_at FROM call ORDER BY seq"
        ).fetchall()
        calls = []
        for seq, reducer, args, keyed, notify, acked_at in rows:
            call = OutboxCall(seq, reducer, bytes(args), bool(keyed), bool(notify), was_sent=True)
            if acked_at is not None:
                call.state, call.acked_at = CallState.ACKED, acked_at
            calls.append(call)
        return calls

    def save_token(self, token: str) -> None:
        if token != self.token:
            self.token = token
            self._set("token", token)

    def add(self, call: OutboxCall) -> None:
        """Record a new call and the next sequence number together (one transaction)."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR REPLACE INTO call VALUES (?, ?, ?, ?, ?, NULL)",
                (call.seq, call.reducer, call.args, int(call.keyed), int(call.notify)),
            )
            self._set("next_seq", str(call.seq + 1))

    def acked(self, call: OutboxCall) -> None:
        self._db.execute("UPDATE call SET acked_at = ? WHERE seq = ?", (call.acked_at, call.seq))

    def remove(self, call: OutboxCall) -> None:
        self._db.execute("DELETE FROM call WHERE seq = ?", (call.seq,))

    def close(self) -> None:
        self._db.close()


Outbox = MemoryOutbox
