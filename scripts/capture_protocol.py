"""Capture real server output for the unit tests: messages and the module schema.

Messages go to tests/data/captured/ (one file per WebSocket message, with a
manifest row each); the module's RawModuleDefV9 goes to
tests/data/schema_inner_universe_v9.json.

Runs a short scenario against a local SpacetimeDB with the Inner Universe module
and saves every binary WebSocket message the clients receive, untouched, with a
manifest row each. Run it again after changing the module or the server version:

    .venv/bin/python scripts/capture_protocol.py
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import tempfile
from pathlib import Path

from inner_universe.errors import ReducerError, SubscriptionRejectedError
from inner_universe.spacetime import messages as m
from inner_universe.spacetime.connection import ConnectionBuilder, DbConnection
from inner_universe.spacetime.server import SPACETIMEDB_VERSION, LocalServer
from inner_universe.universe.module import find_module_wasm

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
OUT = DATA / "captured"
DATABASE = "capture"


async def _open(uri: str, record_to: Path, compression: str, light: bool) -> DbConnection:
    record_to.mkdir(parents=True)
    builder = ConnectionBuilder().with_uri(uri).with_database(DATABASE)
    builder.with_compression(compression).with_light_mode(light)  # type: ignore[arg-type]
    return await builder.record_messages_to(record_to).connect()


async def scenario(uri: str, work: Path) -> dict[str, tuple[Path, str]]:
    """Drive two clients; returns {label: (recorded dir, description of its options)}."""
    # Seed enough rows that a subscription exceeds 1 KiB and gets compressed, through a
    # connection that records nothing.
    seeder = await ConnectionBuilder().with_uri(uri).with_database(DATABASE).connect()
    for i in range(40):
        await seeder.reducers.create_conversation(f"conversation number {i:02d} of the capture")
    await seeder.disconnect()
    plain = await _open(uri, work / "plain", "None", light=False)
    light = await _open(uri, work / "gzip_light", "Gzip", light=True)
    await light.subscribe("SELECT * FROM conversation")
    handle = await plain.subscribe("SELECT * FROM agent")
    await light.subscribe("SELECT * FROM agent")
    await plain.reducers.register_agent("captured", "capturing", b"\x81\xa1k\xa1v")
    with contextlib.suppress(ReducerError):
        await plain.reducers.register_agent("", "empty name", b"")
    with contextlib.suppress(SubscriptionRejectedError):
        await plain.subscribe("SELECT * FROM no_such_table")
    await handle.unsubscribe()
    await asyncio.sleep(0.3)
    await plain.disconnect()
    await light.disconnect()
    return {
        "plain": (work / "plain", "compression=None"),
        "gzip_light": (work / "gzip_light", "compression=Gzip, light=true"),
    }


def _describe(msg: m.ServerMessage) -> str:
    match msg:
        case m.TransactionUpdate(status=m.Failed(text)):
            return f"a reducer that failed validation: {text!r}"
        case m.TransactionUpdate(reducer_call=call):
            return f"committed reducer `{call.reducer_name}` (full update to the caller)"
        case m.TransactionUpdateLight():
            return "another client's reducer, light form"
        case m.SubscribeMultiApplied(update=update):
            rows = sum(len(t.insert_rows()) for t in update.tables)
            return f"subscription applied with {rows} row(s)"
        case m.UnsubscribeMultiApplied():
            return "unsubscribe applied (rows to delete)"
        case m.SubscriptionError(error=text):
            return f"subscription rejected: {text[:60]!r}"
        case m.IdentityToken():
            return "first message: identity, token, connection id"
    return type(msg).__name__


def main() -> None:
    with LocalServer() as server, tempfile.TemporaryDirectory() as tmp:
        server.publish_module(find_module_wasm(), DATABASE)
        schema = json.dumps(server.schema(DATABASE), indent=1, sort_keys=True)
        (DATA / "schema_inner_universe_v9.json").write_text(schema + "\n")
        recorded = asyncio.run(scenario(server.uri, Path(tmp)))
        for old in OUT.glob("*.bin"):
            old.unlink()
        rows = []
        for label, (directory, options) in recorded.items():
            for path in sorted(directory.glob("*.bin")):
                frame = path.read_bytes()
                msg = m.decode_server_frame(frame)
                kind = type(msg).__name__
                snake = re.sub(r"(?<!^)([A-Z])", r"_\1", kind).lower()
                name = f"{label}_{path.stem}_{snake}.bin"
                (OUT / name).write_bytes(frame)
                tag = {0: "none", 1: "brotli", 2: "gzip"}.get(frame[0], "?")
                rows.append(
                    f"| {name} | {kind} | SpacetimeDB {SPACETIMEDB_VERSION}, {options}, "
                    f"tag {tag}: {_describe(msg)} |"
                )
    readme = OUT / "README.md"
    text = readme.read_text()
    head = text[: text.index("|------|")] + "|------|--------------|" + "-" * 58 + "|\n"
    readme.write_text(head + "\n".join(rows) + "\n")
    print(f"captured {len(rows)} messages into {OUT}")


if __name__ == "__main__":
    main()
