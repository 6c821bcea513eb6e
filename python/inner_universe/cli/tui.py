"""``inner-universe tui``: a live terminal UI over one Universe (Textual).

Everything on screen comes from subscriptions: each pane names the tables it
shows and the rows of them it wants (all, or fewer: the tasks pane), the app
subscribes to the union once, and every committed change is handed to the panes
that asked for its table. Nothing polls. A command line at
the bottom runs the plain commands (``status``, ``sql``, ``watch``, ``identity``,
``tasks list|submit``, ``docs add|search``) and a few of its own (``say``, which
gets the reply from ``universe.chat``, and ``conversation``).

The panes: agents and sessions on the left, the conversation beside them, tasks
and providers (:mod:`inner_universe.cli.tui_ops`) in the row below, the activity
log under everything. New panes subclass :class:`Pane`
(:mod:`inner_universe.cli.tui_pane`), name their ``TABLES``, and are passed in
``panes=`` or appended to :data:`PANES`.

When the server goes away (a restart), the connection reconnects by itself (the
SDK's reconnect: same identity, subscriptions renewed, cache resynced); the app
shows it from the connection's ``on_reconnecting`` and ``on_reconnected``
callbacks, and the panes get what changed meanwhile as ordinary changes. Only if
the local server came back on another port does the app replace the connection
(:meth:`Universe.reconnect`) and subscribe again.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from rich.console import RenderableType
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Footer, Header, Input, RichLog, Static

from ..app import Universe
from ..errors import ConnectionClosedError, InnerUniverseError
from ..home import token_file
from ..spacetime.connection import ConnectionBuilder, DbConnection
from .actions import db_connection, run_sql, sql_tables, status_info, status_view
from .docs import added_line, hit_text
from .render import short
from .tasks import submit_payload, task_rows, task_table
from .tui_ops import ProvidersPane, TasksPane
from .tui_pane import Pane, TablePane
from .watching import Change, follow, table_query

__all__ = [
    "PANES",
    "ActivityPane",
    "AgentsPane",
    "ConversationPane",
    "Pane",
    "ProvidersPane",
    "SessionsPane",
    "TasksPane",
    "UniverseApp",
]

CONNECT_DELAYS = (0.2, 0.5, 1.0, 2.0)
"""Seconds between attempts at the first connection, while no server answers (the last repeats)."""

HELP = """commands:
  status                    server, database, module, row counts, sessions
  sql QUERY                 a one-off query, e.g. sql SELECT * FROM agent
  watch TABLE [WHERE]       add a table (optionally filtered) to the activity
  identity                  who this UI connects as
  tasks list                every task, with its status
  tasks submit CAP JSON     submit a task, e.g. tasks submit double {"x": 21}
  docs add PATH...          chunk, embed and store text and Markdown files
  docs search QUERY         the best chunks for a question
  say TEXT                  send a message to the conversation shown; the reply streams in
  conversation ID           show another conversation
  clear | help | quit"""


class AgentsPane(TablePane):
    TABLES = ("agent",)
    SIDE = True
    TITLE = "agents"
    COLUMNS = ("id", "name", "role", "status", "v")

    def key(self, row: Any) -> str:
        return str(row.id)

    def cells(self, row: Any) -> tuple[RenderableType, ...]:
        return tuple(Text(str(v)) for v in (row.id, row.name, row.role, row.status, row.version))


class SessionsPane(TablePane):
    TABLES = ("session",)
    SIDE = True
    TITLE = "sessions"
    COLUMNS = ("identity", "since")
    WIDTHS = (12, 8)  # a short identity, hh:mm:ss

    def key(self, row: Any) -> str:
        return str(row.connection_id)

    def cells(self, row: Any) -> tuple[RenderableType, ...]:
        return Text(short(row.identity, 12)), Text(
            row.connected_at.to_datetime().strftime("%H:%M:%S")
        )


class ConversationPane(Pane):
    """The newest conversation (or the one chosen), its messages growing as they commit."""

    TABLES = ("conversation", "message")
    TITLE = "conversation"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.titles: dict[int, str] = {}
        self.messages: dict[int, Any] = {}
        self.shown_messages: dict[int, Static] = {}
        """The message widgets on screen, by message id."""
        self.chosen: int | None = None

    def compose(self) -> ComposeResult:
        yield VerticalScroll(id="messages")

    @property
    def shown(self) -> int | None:
        """The conversation on screen: the chosen one, else the newest."""
        if self.chosen is not None:
            return self.chosen
        return max(self.titles, default=None)

    def choose(self, conversation_id: int | None) -> None:
        self.chosen = conversation_id
        self._render_all()

    def reset(self) -> None:
        self.titles.clear()
        self.messages.clear()
        self._render_all()

    def apply(self, change: Change) -> None:
        row = change.row
        if change.table == "conversation":
            before = self.shown
            if change.kind == "delete":
                self.titles.pop(row.id, None)
            else:
                self.titles[row.id] = row.title
            if self.shown != before or change.kind == "update":
                self._render_all()
            return
        if change.kind == "delete":
            self.messages.pop(row.id, None)
            if row.conversation_id == self.shown:
                self._render_all()
            return
        self.messages[row.id] = row
        if row.conversation_id != self.shown:
            return
        widget = self.shown_messages.get(row.id)
        if widget is not None:
            widget.update(self._message_text(row))
        else:
            self._mount_message(row)

    def _message_text(self, row: Any) -> Text:
        text = Text()
        text.append(f"{row.role:>9} ", style="bold cyan" if row.role == "user" else "bold green")
        text.append(row.content or "…")
        return text

    def _mount_message(self, row: Any) -> None:
        box = self.query_one("#messages", VerticalScroll)
        widget = Static(self._message_text(row), classes="message")
        self.shown_messages[row.id] = widget
        box.mount(widget)
        box.scroll_end(animate=False)

    def _render_all(self) -> None:
        shown = self.shown
        self.border_title = (
            f"conversation #{shown} {self.titles.get(shown, '')!r}"
            if shown is not None
            else "conversation (none yet: `say hello` starts one)"
        )
        box = self.query_one("#messages", VerticalScroll)
        box.remove_children()
        self.shown_messages.clear()
        rows = sorted(
            (m for m in self.messages.values() if m.conversation_id == shown),
            key=lambda m: m.sequence,
        )
        for row in rows:
            self._mount_message(row)


class ActivityPane(Pane):
    """Every committed change of the subscribed tables, one line each, and command output."""

    TITLE = "activity"
    ALL_TABLES = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.started = time.monotonic()

    def compose(self) -> ComposeResult:
        yield RichLog(wrap=False, markup=False, highlight=False, max_lines=2000)

    @property
    def log_view(self) -> RichLog:
        return self.query_one(RichLog)

    def apply(self, change: Change) -> None:
        if not change.initial:
            self.log_view.write(change.line(self.started))

    def say(self, renderable: RenderableType) -> None:
        self.log_view.write(renderable)


PANES: list[type[Pane]] = [AgentsPane, SessionsPane, ConversationPane, TasksPane, ProvidersPane]
"""The panes every UniverseApp shows beside the activity (features append theirs)."""


class UniverseApp(App[None]):
    """The live terminal UI over one (not yet opened) Universe."""

    TITLE = "Inner Universe"
    AUTO_FOCUS = "#command"
    CSS = """
    #top { height: 1fr; }
    #lower { height: 1fr; }
    #side { width: 44; }
    Pane { border: round $accent; border-title-color: $text; }
    AgentsPane { height: 1fr; }
    SessionsPane { height: 1fr; }
    ConversationPane { width: 1fr; }
    ActivityPane { height: 1fr; max-height: 12; }
    .message { padding: 0 1; }
    #command { dock: bottom; }
    """
    BINDINGS: ClassVar[list[Any]] = [
        ("ctrl+q", "quit", "Quit"),
        ("ctrl+l", "clear", "Clear activity"),
    ]

    def __init__(self, universe: Universe, *, panes: Sequence[type[Pane]] | None = None) -> None:
        super().__init__()
        self.universe = universe
        self.pane_types = list(PANES if panes is None else panes)
        self.connected = asyncio.Event()
        self._watched: dict[str, str] = {}
        """Tables added with `watch`, and their queries."""
        self._closing = False
        universe.on_builder(self._hook_connection)

    # --- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        side = [t() for t in self.pane_types if t.SIDE]
        main = [t() for t in self.pane_types if not t.SIDE and not t.LOWER]
        lower = [t() for t in self.pane_types if t.LOWER]
        with Horizontal(id="top"):
            if side:
                yield Vertical(*side, id="side")
            yield from main
        if lower:
            yield Horizontal(*lower, id="lower")
        yield ActivityPane()
        yield Input(placeholder="status · sql SELECT * FROM agent · say hello · help", id="command")
        yield Footer()

    @property
    def panes(self) -> list[Pane]:
        return list(self.query(Pane))

    @property
    def activity(self) -> ActivityPane:
        return self.query_one(ActivityPane)

    # --- the connection -----------------------------------------------------------------

    def _hook_connection(self, builder: ConnectionBuilder) -> None:
        builder.on_reconnecting(self._on_reconnecting)
        builder.on_reconnected(self._on_reconnected)
        builder.on_disconnect(self._on_disconnect)

    def on_mount(self) -> None:
        self.sub_title = "connecting …"
        self._connect()

    @work(exclusive=True, group="connection")
    async def _connect(self) -> None:
        """Open the Universe, trying again until a server answers, and subscribe."""
        attempt = 0
        while True:
            try:
                await self.universe.open()
                break
            except InnerUniverseError as exc:
                if attempt == 0:
                    self.sub_title = "not connected"
                    self.activity.say(Text(f"error: {exc}", style="red"))
            # A pause between attempts, not a wait for data: a server may start meanwhile.
            await asyncio.sleep(CONNECT_DELAYS[min(attempt, len(CONNECT_DELAYS) - 1)])
            attempt += 1
        await self._subscribe()

    async def _subscribe(self) -> None:
        conn = db_connection(self.universe)
        if conn.identity is None:
            raise ConnectionClosedError("the connection has no identity yet (not connected)")
        tables: list[str] = []
        queries: list[str] = []
        for pane in self.panes:
            pane.identity = conn.identity
            pane.reset()
            if not all(t in conn.schema.tables for t in pane.TABLES):
                continue  # a module without this pane's tables: the pane stays empty
            tables += [t for t in pane.TABLES if t not in tables]
            queries += [q for q in pane.queries(conn.identity) if q not in queries]
        for table, query in self._watched.items():
            if table not in tables:
                tables.append(table)
                queries.append(query)
        follow(conn, tables, self._dispatch)
        await conn.subscribe(*queries)
        self._show_connected(conn)

    def _show_connected(self, conn: DbConnection) -> None:
        self.sub_title = (
            f"{self.universe.uri} · {self.universe.database} · as {short(conn.identity)}"
        )
        self.connected.set()

    def _dispatch(self, change: Change) -> None:
        for pane in self.panes:
            if pane.ALL_TABLES or change.table in pane.TABLES:
                pane.apply(change)

    def _is_current(self, conn: DbConnection) -> bool:
        """Is ``conn`` the Universe's connection (not an old one, nor one we are closing)?"""
        return not self._closing and self.universe.is_open and self.universe.connection is conn

    def _on_reconnecting(self, conn: DbConnection, attempt: int, error: Exception | None) -> None:
        """The connection lost its socket and is about to try again (``attempt`` from 0)."""
        if not self._is_current(conn):
            return
        if attempt == 0:
            self.connected.clear()
            self.sub_title = "disconnected: reconnecting …"
            self.activity.say(
                Text(f"connection lost ({error or 'closed'}); reconnecting …", "yellow")
            )
        else:  # the old port still does not answer: has the local server moved?
            self._follow_moved_server()

    def _on_reconnected(self, conn: DbConnection) -> None:
        """Subscriptions renewed and cache resynced: the panes had what changed meanwhile."""
        if self._is_current(conn):
            self.activity.say(Text("reconnected", style="green"))
            self._show_connected(conn)

    def _on_disconnect(self, conn: DbConnection, error: Exception | None) -> None:
        """The connection ended for good (a lost socket is reconnected, not reported here)."""
        if self._is_current(conn):
            self.connected.clear()
            self.sub_title = "disconnected"
            self.activity.say(Text(f"connection closed ({error or 'closed'})", style="red"))

    @work(exclusive=True, group="moved")
    async def _follow_moved_server(self) -> None:
        """The fallback: the local server came back on another port, where the connection
        does not look; replace it with one to the new port and subscribe again."""
        if not await self.universe.moved():
            return
        try:
            await self.universe.reconnect()
        except InnerUniverseError as exc:
            self.activity.say(Text(f"error: {exc}", style="red"))
            return
        self.activity.say(Text(f"reconnected to {self.universe.uri}", style="green"))
        await self._subscribe()

    async def on_unmount(self) -> None:
        self._closing = True
        if self.universe.is_open:
            await self.universe.aclose()

    def action_clear(self) -> None:
        self.activity.log_view.clear()

    # --- the command line ---------------------------------------------------------------

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        event.input.value = ""
        line = event.value.strip()
        if line:
            self.activity.say(Text(f"> {line}", style="bold"))
            await self.run_command(line)

    async def run_command(self, line: str) -> None:
        """Run one command line; errors are shown as one line, never raised."""
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        try:
            await self._command(name, rest)
        except InnerUniverseError as exc:
            self.activity.say(Text(f"error: {exc}", style="red"))
        except ModuleNotFoundError as exc:  # a feature's extra is not installed
            hint = f"{exc.name} is missing: pip install 'inner-universe[all]'"
            self.activity.say(Text(f"error: `{name}` needs {hint}", style="red"))

    async def _command(self, name: str, rest: str) -> None:
        say = self.activity.say
        if name in ("help", "?"):
            say(HELP)
        elif name == "clear":
            self.action_clear()
        elif name in ("quit", "exit"):
            self.exit()
        elif name in ("up", "down"):
            say(f"`{name}` manages the server: run `inner-universe {name}` in a shell")
        elif not self.connected.is_set():
            say(Text("not connected yet", style="yellow"))
        elif name == "status":
            say(status_view(await status_info(self.universe)))
        elif name == "sql":
            for table in sql_tables(await run_sql(self.universe, rest)):
                say(table)
        elif name == "watch":
            await self._watch(rest)
        elif name == "identity":
            key = self.universe.server_key
            say(f"{self.universe.identity} (token for {key}: {token_file(key).path})")
        elif name == "tasks":
            await self._tasks(rest)
        elif name == "docs":
            await self._docs(rest)
        elif name == "say":
            await self._say(rest)
        elif name == "conversation":
            self.query_one(ConversationPane).choose(int(rest) if rest.isdigit() else None)
        else:
            say(Text(f"unknown command {name!r}; try `help`", style="red"))

    async def _watch(self, rest: str) -> None:
        table, _, where = rest.partition(" ")
        if not table:
            self.activity.say(Text("usage: watch TABLE [CONDITION]", style="red"))
            return
        conn = db_connection(self.universe)
        conn.schema.table(table)  # an unknown table raises SchemaError, listing the known ones
        query = table_query(table, where)
        await conn.subscribe(query)
        known = any(table in pane.TABLES for pane in self.panes) or table in self._watched
        if not known:
            follow(conn, [table], self._dispatch)
        self._watched[table] = query
        self.activity.say(f"watching {query}")

    async def _tasks(self, rest: str) -> None:
        """``tasks list`` and ``tasks submit CAPABILITY JSON``, as in a shell."""
        say = self.activity.say
        verb, _, args = rest.partition(" ")
        to, _, payload_json = args.strip().partition(" ")
        if verb == "list":
            say(task_table(await task_rows(self.universe)))
        elif verb == "submit" and to and payload_json:
            try:
                payload = json.loads(payload_json)
            except json.JSONDecodeError as exc:
                say(Text(f"error: the payload is not JSON: {exc}", style="red"))
                return
            say(f"submitted task {await submit_payload(self.universe, to, payload)}")
        else:
            say(Text("usage: tasks list | tasks submit CAPABILITY JSON", style="red"))

    async def _docs(self, rest: str) -> None:
        """``docs add PATH...`` and ``docs search QUERY``, as in a shell."""
        say = self.activity.say
        verb, _, args = rest.partition(" ")
        args = args.strip()
        if verb == "search" and args:
            hits = await self.universe.knowledge.search(args)
            for rank, hit in enumerate(hits, start=1):
                say(hit_text(rank, hit))
            if not hits:
                say("no matching chunks")
        elif verb == "add" and args:
            paths = [Path(arg).expanduser().resolve() for arg in args.split()]
            missing = [str(path) for path in paths if not path.is_file()]
            if missing:
                say(Text(f"error: no such file: {', '.join(missing)}", style="red"))
                return
            for path in paths:
                say(added_line(path.name, await self.universe.knowledge.add(path)))
        else:
            say(Text("usage: docs add PATH... | docs search QUERY", style="red"))

    async def _say(self, text: str) -> None:
        """Send ``text`` to the conversation shown; the model replies in the background."""
        chat = self.universe.chat  # LiteLLM loads on first use
        pane = self.query_one(ConversationPane)
        if pane.shown is None:
            await chat.conn.reducers.create_conversation("terminal")
        conversation = pane.shown
        assert conversation is not None
        self._send(conversation, text)

    @work(group="chat")
    async def _send(self, conversation: int, text: str) -> None:
        """One message and its streamed reply (the panes show it as it commits)."""
        try:
            await self.universe.chat.send(conversation, text)
        except InnerUniverseError as exc:
            self.activity.say(Text(f"error: {exc}", style="red"))
