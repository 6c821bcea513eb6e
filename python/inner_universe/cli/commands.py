"""The plain commands: ``up``, ``down``, ``status``, ``sql``, ``watch``, ``identity``, ``tui``.

The feature slices' commands (``chat``, ``tasks ...``, ``docs ...``) live in their own
modules and are registered on :data:`app` here.

Each command talks to one server: ``--uri`` (or ``INNER_UNIVERSE_URI``) names any
SpacetimeDB; without it, the user's local server that ``up`` runs. Errors are one
line on stderr and exit status 1 (2 for bad usage, 3 for ``status`` with no server),
never a traceback; ``-v`` / ``-vv`` log to stderr.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Annotated

import typer

from ..app import OFFLINE_MODEL, Universe
from ..home import (
    DEFAULT_DATABASE,
    LOCAL,
    find_running,
    forget_running,
    load_identity,
    start_local_server,
    stop_running,
    token_file,
)
from . import chat, docs, tasks
from .actions import run_sql, sql_tables, status_info, status_view
from .render import jsonable
from .shell import Count, err, fail, friendly_errors, out, run_action, target
from .watching import Change, watch_table

__all__ = ["app", "run"]

app = typer.Typer(
    name="inner-universe",
    help="Drive and watch an Inner Universe: a SpacetimeDB database shared by agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


async def _nothing(universe: Universe) -> None:
    return None


@app.callback()
def options(
    ctx: typer.Context,
    uri: Annotated[
        str | None,
        typer.Option(
            envvar="INNER_UNIVERSE_URI",
            help="A SpacetimeDB server; default: the local server `up` runs.",
        ),
    ] = None,
    database: Annotated[
        str, typer.Option("--database", "-d", envvar="INNER_UNIVERSE_DATABASE")
    ] = DEFAULT_DATABASE,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Log to stderr (-vv: debug).")
    ] = 0,
) -> None:
    """Drive and watch an Inner Universe: a SpacetimeDB database shared by agents."""
    target.uri = uri
    target.database = database
    if verbose:
        ctx.call_on_close(_log_to_stderr(logging.DEBUG if verbose > 1 else logging.INFO))


def _log_to_stderr(level: int) -> Callable[[], None]:
    """Log at ``level`` to stderr until the returned function is called."""
    root = logging.getLogger()
    previous = root.level
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(previous)

    return undo


# --- up / down ---------------------------------------------------------------------------


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@app.command()
@friendly_errors
def up(
    port: Annotated[
        int | None,
        typer.Option(help="Listen on this port (default: the last one if free, else any)."),
    ] = None,
    clear: Annotated[
        bool,
        typer.Option(help="Delete the database's rows and publish the module afresh."),
    ] = False,
) -> None:
    """Start the local server (persistent data) with the module published; Ctrl-C stops it."""
    if target.uri is not None:
        raise fail("`up` starts the local server; it takes no --uri")
    running = find_running()
    if running is not None:
        out.print(
            f"already running: {running.uri} (database {running.database!r}, pid {running.pid})"
        )
        return
    out.print("starting the local SpacetimeDB server and publishing the module …")
    # Ctrl-C and SIGTERM (from `down`) stop it alike, even when started with SIGINT ignored
    # (as a shell does for a background job).
    previous = {
        sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:  # the handlers are put back however this ends, a failed start included
        server, state = start_local_server(target.database, port=port, clear=clear)
        try:
            out.print(f"{state.uri}  database {state.database!r}  module {state.module_hash}")
            out.print(
                f"data in {state.data_dir}; Ctrl-C or `inner-universe down` stops it", style="dim"
            )
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            for sig in previous:  # a second Ctrl-C must not cut the stop short
                signal.signal(sig, signal.SIG_IGN)
            server.stop()
            forget_running(state.pid)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out.print("stopped")


@app.command()
@friendly_errors
def down() -> None:
    """Stop the local server that `up` (or a program's Universe) runs."""
    stopped = stop_running()
    if stopped is None:
        out.print("no local server is running")
    else:
        out.print(f"stopped {stopped.uri} (pid {stopped.pid})")


# --- status, sql, watch ----------------------------------------------------------------


@app.command()
@friendly_errors
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Server, database, module version, tables with row counts, connected sessions."""
    if target.uri is None and find_running() is None:
        if as_json:
            out.print(json.dumps({"running": False}))
        else:
            out.print("server: not running (start it with `inner-universe up`)")
        raise typer.Exit(3)
    info = run_action(status_info)
    out.print(json.dumps(info) if as_json else status_view(info))


@app.command()
@friendly_errors
def sql(
    query: Annotated[str, typer.Argument(help='A query, e.g. "SELECT * FROM agent".')],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per row.")] = False,
) -> None:
    """Run a one-off SQL query and print its rows as a table."""
    result = run_action(run_sql, query)
    if as_json:
        for name, rows in result.items():
            for row in rows:
                out.print(json.dumps({"table": name, "row": jsonable(row)}))
        return
    for table in sql_tables(result):
        out.print(table)


@app.command()
@friendly_errors
def watch(
    table: Annotated[str, typer.Argument(help="The table to watch.")],
    where: Annotated[
        str | None, typer.Option("--where", "-w", help="A SQL condition, e.g. \"role = 'user'\".")
    ] = None,
    count: Count = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per change.")] = False,
) -> None:
    """Print a table's changes live as they commit (Ctrl-C stops)."""
    started = time.monotonic()

    def show(change: Change) -> None:
        if as_json:
            out.print(json.dumps(change.to_json(started)))
        else:
            out.print(change.line(started))

    def ready(query: str, rows: int) -> None:
        if not as_json:
            err.print(f"watching {query} ({rows} rows now); Ctrl-C stops", style="dim")

    with contextlib.suppress(KeyboardInterrupt):
        run_action(watch_table, table, where, show, count, ready)


# --- identity -----------------------------------------------------------------------------


@app.command()
@friendly_errors
def identity(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show the stored identity for the server, creating it (file mode 0600) if there is none."""
    key = LOCAL if target.uri is None else target.uri
    stored = load_identity(key)
    created = stored is None
    if stored is None:
        run_action(_nothing)  # connecting without a token mints an identity; the Universe stores it
        stored = load_identity(key)
        assert stored is not None
    path = token_file(key).path
    info = {"server": key, "identity": str(stored.identity), "file": str(path), "created": created}
    if as_json:
        out.print(json.dumps(info))
        return
    out.print(f"{'created' if created else 'stored'} identity for {key}: {stored.identity}")
    out.print(f"token in {path} (mode {oct(path.stat().st_mode & 0o777)})", style="dim")


# --- the terminal UI ------------------------------------------------------------------------


@app.command()
@friendly_errors
def tui(
    model: Annotated[
        str, typer.Option("--model", "-m", help="The LiteLLM model that answers `say`.")
    ] = OFFLINE_MODEL,
) -> None:
    """A live terminal UI: agents, the conversation, sessions, and a command line."""
    try:
        from .tui import UniverseApp
    except ModuleNotFoundError as exc:
        missing = f"the terminal UI needs textual ({exc.name} is missing)"
        raise fail(f"{missing}: pip install 'inner-universe[cli]'") from None
    if target.uri is None and find_running() is None:
        raise fail("no local server is running; start one with `inner-universe up`")
    universe = target.universe()
    universe.chat_model = model
    UniverseApp(universe).run()


def run(argv: list[str] | None = None) -> int:
    """Run the typer app and return its exit status instead of exiting."""
    try:
        app(args=argv, prog_name="inner-universe", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


# --- the feature slices' commands, one module each ------------------------------------------

app.command("chat")(chat.chat)
app.add_typer(docs.app, name="docs")
app.add_typer(tasks.app, name="tasks")
