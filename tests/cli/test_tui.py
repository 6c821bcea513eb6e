"""The terminal UI, headless (Textual's run_test pilot), against a real server."""

from __future__ import annotations

import asyncio
import io
import os
import re
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.widgets import Input, RichLog, Static

from inner_universe.app import Universe
from inner_universe.cli.tui import AgentsPane, ConversationPane, SessionsPane, UniverseApp
from inner_universe.features.delegation import submit
from inner_universe.home import start_local_server
from inner_universe.spacetime.connection import connect
from tests.conftest import PublishedDatabase, until

pytestmark = pytest.mark.integration

SIZE = (110, 34)
SNAPSHOT = Path(__file__).parent / "snapshots" / "tui.txt"
SCREENSHOT = Path(__file__).parents[2] / "docs" / "tui.svg"
UPDATE = os.environ.get("INNER_UNIVERSE_UPDATE_SNAPSHOTS") == "1"

VISITOR = """
import sys
from inner_universe.spacetime.connection import ConnectionBuilder

builder = ConnectionBuilder().with_uri(sys.argv[1]).with_database(sys.argv[2])
with builder.connect_threaded() as conn:
    conn.subscribe("SELECT * FROM conversation", "SELECT * FROM message")
    conn.reducers.register_agent("visitor", "research", b"")
    conn.reducers.create_conversation("launch plan")
    convo = next(c for c in conn.db.conversation.iter() if c.title == "launch plan")
    conn.reducers.post_message(convo.id, "user", "What do we ship first?")
    conn.reducers.post_message(convo.id, "assistant", "")
    reply = max(conn.db.message.filter("conversation_id", convo.id), key=lambda m: m.sequence)
    for token in ["The ", "SDK ", "first, ", "then ", "the ", "NERV ", "layer."]:
        conn.reducers.append_message(reply.id, token)
"""


async def visit(uri: str, database: str) -> None:
    """Another process registers an agent and streams a reply into a new conversation."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", VISITOR, uri, database)
    assert await proc.wait() == 0


def activity(app: UniverseApp) -> str:
    return "\n".join(strip.text for strip in app.query_one(RichLog).lines)


def messages(app: UniverseApp) -> list[str]:
    return [str(s.content) for s in app.query_one(ConversationPane).query(Static)]


def agent_names(app: UniverseApp) -> list[str]:
    table = app.query_one(AgentsPane).table
    return [str(table.get_row(key)[1]) for key in table.rows]


async def command(app: UniverseApp, pilot: Any, line: str, *, typed: bool = False) -> None:
    """Enter a command line: key by key when ``typed`` (slow), else pasted, then Enter."""
    field = app.query_one(Input)
    field.focus()
    if typed:
        await pilot.press(*line)
    else:
        field.value = line
    await pilot.press("enter")


async def test_commands_and_another_process_s_changes_appear(
    universe_db: PublishedDatabase, user_home: Path
) -> None:
    app = UniverseApp(universe_db.universe())
    async with app.run_test(size=SIZE) as pilot:
        await until(app.connected.is_set)
        await command(app, pilot, "status", typed=True)
        await until(lambda: "sessions" in activity(app))
        assert universe_db.name in activity(app)

        await command(app, pilot, "say hello from the terminal")  # starts a conversation
        await until(lambda: any("hello from the terminal" in m for m in messages(app)))
        # universe.chat answers (the offline model), its reply streaming into the pane
        await until(lambda: any("You said: hello from the terminal" in m for m in messages(app)))

        await visit(universe_db.uri, universe_db.name)
        await until(lambda: "visitor" in agent_names(app))
        await until(lambda: any("The SDK first, then the NERV layer." in m for m in messages(app)))
        assert "content += 'NERV '" in activity(app)  # the reply streamed in, token by token

        await command(app, pilot, "say may I join?")  # the visitor's conversation: not ours
        await until(lambda: "error: reducer 'post_message' failed" in activity(app))

        await command(app, pilot, "sql SELECT * FROM agent WHERE name = 'visitor'")
        await until(lambda: "agent: 1 rows" in activity(app))
        await command(app, pilot, "watch nowhere")
        await until(lambda: "error: no table named 'nowhere'" in activity(app))
        await pilot.press("ctrl+q")
    assert app.return_code == 0 and not app.universe.is_open


async def test_docs_add_and_search_from_the_command_line(
    universe_db: PublishedDatabase, user_home: Path, tmp_path: Path
) -> None:
    note = tmp_path / "harbour.md"
    note.write_text("# Harbour\n\nThe lighthouse keeper feeds marmalade to the gulls at dawn.\n")
    app = UniverseApp(universe_db.universe())
    async with app.run_test(size=SIZE) as pilot:
        await until(app.connected.is_set)
        await command(app, pilot, f"docs add {tmp_path / 'nowhere.md'}")
        await until(lambda: "error: no such file" in activity(app))
        await command(app, pilot, f"docs add {note}")
        await until(lambda: "added harbour.md: document" in activity(app), timeout=30)
        await command(app, pilot, "docs search who feeds the gulls?")
        await until(lambda: "[1] harbour.md, chunk 0" in activity(app), timeout=30)
        assert "marmalade" in activity(app)
        await command(app, pilot, "docs")
        await until(lambda: "usage: docs add PATH... | docs search QUERY" in activity(app))


def screen_text(app: UniverseApp) -> str:
    """The screen as plain text, with what differs between runs (ids, times, ports) masked."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True)
    console.print(app.screen._compositor.render_update(full=True))
    text = console.export_text()
    text = re.sub(r"[0-9a-f]{8,}", lambda m: "x" * len(m.group()), text)
    text = re.sub(r"\d+\.\d\ds\]", lambda m: "#" * (len(m.group()) - 2) + "s]", text)
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", "yyyy-mm-dd hh:mm:ss.fff", text)
    text = re.sub(r"\d\d:\d\d:\d\d", "hh:mm:ss", text)
    return re.sub(r"127\.0\.0\.1:\d+", lambda m: "127.0.0.1:" + "p" * (len(m.group()) - 10), text)


async def settled_screen_text(app: UniverseApp, pilot: Any, *, frames: int = 50) -> str:
    """The screen once a refresh no longer changes it.

    Textual lays out in more than one pass: right after rows change, a table can show a
    scroll bar that the next layout pass takes away again.
    """
    text = screen_text(app)
    for _ in range(frames):
        await pilot.pause()
        again = screen_text(app)
        if again == text:
            return text
        text = again
    raise AssertionError(f"the screen still changed after {frames} refreshes")


async def new_token(uri: str, database: str) -> str:
    """A new identity's token (the UI and a helper connection then act as one identity)."""
    async with connect(uri, database) as conn:
        assert conn.token is not None
        return conn.token


async def queue_work(uri: str, database: str, token: str) -> None:
    """Another connection of the UI's identity queues a task, records a model call and sets
    its agent a budget (the ledger and spend are shown to their own identity only)."""
    async with connect(uri, database, token=token) as conn:
        await conn.subscribe("SELECT * FROM agent", "SELECT * FROM model_call")
        await conn.reducers.register_agent("summariser", "worker", b"")
        agent = next(a for a in conn.db.agent.iter() if a.name == "summariser")
        await conn.reducers.set_agent_capabilities(agent.id, ["summarise"])
        await submit(conn, "summarise", {"text": "the launch plan"})
        await conn.reducers.begin_model_call(0, agent.id, "offline", "echo", 12, 0, 0)
        call = next(iter(conn.db.model_call.iter()))
        await conn.reducers.end_model_call(call.id, "done", 12, 9, 0, 3, 8, "", 0)
        await conn.reducers.set_budget(0, 20_000_000_000)
        await conn.reducers.set_budget(agent.id, 5_000_000_000)  # the task line scrolls off


async def test_screen_snapshot(
    fresh_db: PublishedDatabase, user_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The task's random ticket would change the activity's width, so its scroll bar.
    monkeypatch.setattr(sys.modules[submit.__module__], "new_ticket", lambda: 10**38 + 1)
    token = await new_token(fresh_db.uri, fresh_db.name)
    app = UniverseApp(fresh_db.universe(token=token))
    async with app.run_test(size=SIZE) as pilot:
        await until(app.connected.is_set)
        await visit(fresh_db.uri, fresh_db.name)
        await until(lambda: any("NERV layer." in m for m in messages(app)))
        await queue_work(fresh_db.uri, fresh_db.name, token)
        await until(lambda: "budget_nano_usd: None -> 5000000000" in activity(app))
        await until(lambda: app.query_one(SessionsPane).table.row_count == 1)  # our own session
        log = app.query_one(RichLog)
        await until(lambda: log.scroll_y == log.max_scroll_y)  # scrolled to the last line
        text = await settled_screen_text(app, pilot)
        if UPDATE:
            SNAPSHOT.parent.mkdir(exist_ok=True)
            SNAPSHOT.write_text(text)
            app.save_screenshot(SCREENSHOT.name, str(SCREENSHOT.parent))
    assert SNAPSHOT.is_file(), "no snapshot yet: run with INNER_UNIVERSE_UPDATE_SNAPSHOTS=1"
    assert text == SNAPSHOT.read_text()


async def test_a_server_restart_is_survived(user_home: Path) -> None:
    """The SDK reconnects the same connection (the server comes back on its port)."""
    server, _ = await asyncio.to_thread(start_local_server)
    try:
        app = UniverseApp(Universe(start_server=False))
        async with app.run_test(size=SIZE) as pilot:
            await until(app.connected.is_set)
            conn, bus = app.universe.connection, app.universe.bus
            await asyncio.to_thread(server.stop)
            await until(lambda: not app.connected.is_set())
            assert "reconnecting" in app.sub_title
            port = server.port
            server, _ = await asyncio.to_thread(start_local_server)
            assert server.port == port  # `up` (start_local_server) comes back on its port
            await visit(server.uri, "inner-universe")  # while the UI may still be away
            await until(app.connected.is_set)
            await until(lambda: "visitor" in agent_names(app))
            assert "reconnected" in activity(app)
            assert app.universe.connection is conn and app.universe.bus is bus
            await command(app, pilot, "status")
            await until(lambda: server.uri in activity(app))
    finally:
        await asyncio.to_thread(server.stop)


async def test_a_server_back_on_another_port_is_followed(user_home: Path) -> None:
    """The fallback: the connection keeps trying the old port, the UI finds the new one."""
    server, _ = await asyncio.to_thread(start_local_server)
    try:
        app = UniverseApp(Universe(start_server=False))
        async with app.run_test(size=SIZE):
            await until(app.connected.is_set)
            conn = app.universe.connection
            await asyncio.to_thread(server.stop)
            await until(lambda: not app.connected.is_set())
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                other_port = sock.getsockname()[1]
            server, _ = await asyncio.to_thread(start_local_server, port=other_port)
            await until(lambda: f"reconnected to {server.uri}" in activity(app), timeout=30)
            await until(app.connected.is_set)
            assert app.universe.connection is not conn and not conn.is_connected
            await visit(server.uri, "inner-universe")
            await until(lambda: "visitor" in agent_names(app))
    finally:
        await asyncio.to_thread(server.stop)
