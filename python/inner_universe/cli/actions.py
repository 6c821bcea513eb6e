"""What the commands do, once, for the shell and for the TUI's command line.

Async functions over an open :class:`~inner_universe.app.Universe`, and the rich
renderables that show their results; the typer commands and the TUI differ only
in where the output goes.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .. import __version__
from ..app import Universe
from ..spacetime.connection import DbConnection
from .render import jsonable, short, value_text

__all__ = ["db_connection", "run_sql", "sql_tables", "status_info", "status_view"]


def db_connection(universe: Universe) -> DbConnection:
    """The asyncio connection of a Universe opened with ``async with``."""
    conn = universe.connection
    assert isinstance(conn, DbConnection), "open the Universe with `async with`"
    return conn


async def run_sql(universe: Universe, query: str) -> dict[str, list[Any]]:
    """A one-off query: ``{table: [rows]}``; raises QueryError with the server's text."""
    return await db_connection(universe).one_off_query(query)


def _cell_text(value: Any) -> str:
    """A column value in a table cell: text as it is, everything else as in change lines."""
    return value if isinstance(value, str) else value_text(value)


def sql_tables(result: dict[str, list[Any]]) -> list[Table]:
    """One rich table per result table, a column per field."""
    tables = []
    for name, rows in result.items():
        data = [jsonable(r) for r in rows]
        columns = list(data[0]) if data and isinstance(data[0], dict) else ["value"]
        table = Table(title=f"{name}: {len(rows)} rows", title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")  # narrow terminals fold; nothing is cut
        for row, record in zip(rows, data, strict=True):
            values = [getattr(row, c) for c in columns] if isinstance(record, dict) else [row]
            table.add_row(*(Text(_cell_text(v)) for v in values))
        tables.append(table)
    return tables


async def status_info(universe: Universe) -> dict[str, Any]:
    """Server, database, module version, row counts, and the other connected sessions.

    Counts and sessions are what this identity may see: the module filters rows per
    identity (each identity sees its own sessions, for one).
    """
    # Imported here: only status compares against the module this checkout builds.
    from ..universe.module import module_source_hash

    conn = db_connection(universe)
    tables: dict[str, int | None] = {}
    for name, table in sorted(conn.schema.tables.items()):
        if not table.is_public:
            tables[name] = None  # only its owner module reads it
            continue
        rows = (await conn.one_off_query(f"SELECT * FROM {name}")).get(name, [])
        tables[name] = len(rows)
    sessions = []
    if "session" in conn.schema.tables:
        for row in (await conn.one_off_query("SELECT * FROM session")).get("session", []):
            if row.connection_id != conn.connection_id:  # not this status check itself
                sessions.append(
                    {
                        "identity": str(row.identity),
                        "connection_id": str(row.connection_id),
                        "since": str(row.connected_at),
                    }
                )
    running = universe.running
    return {
        "running": True,
        "uri": universe.uri,
        "local": running is not None,
        "pid": running.pid if running else None,
        "data_dir": running.data_dir if running else None,
        "database": universe.database,
        "module": running.module_hash if running else None,
        "module_of_this_checkout": module_source_hash(),
        "package": __version__,
        "identity": str(universe.identity),
        "tables": tables,
        "sessions": sessions,
    }


def status_view(info: dict[str, Any]) -> RenderableType:
    """``status`` as a person reads it."""
    where = f"local, pid {info['pid']}, data {info['data_dir']}" if info["local"] else "remote"
    module = info["module"] or "unknown (not published by `up`)"
    if info["module"] and info["module"] != info["module_of_this_checkout"]:
        module += f" (this checkout builds {info['module_of_this_checkout']}: run `up` again)"
    head = Table.grid(padding=(0, 2))
    for label, value in [
        ("server", f"{info['uri']}  ({where})"),
        ("database", info["database"]),
        ("module", f"{module}  (inner-universe {info['package']})"),
        ("identity", info["identity"]),
    ]:
        head.add_row(Text(label, style="bold"), Text(value))
    counts = Table("table", "rows", box=None, pad_edge=False)
    for name, count in info["tables"].items():
        counts.add_row(Text(name), Text("private" if count is None else str(count)))
    sessions = Table.grid(padding=(0, 2))
    sessions.add_row(
        Text("sessions", style="bold"),
        Text(f"{len(info['sessions'])} other connections of this identity"),
    )
    for session in info["sessions"]:
        sessions.add_row(
            "", Text(f"{short(session['connection_id'], 16)}  since {session['since']}")
        )
    return Group(head, counts, sessions)
