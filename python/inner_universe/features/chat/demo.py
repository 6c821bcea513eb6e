"""The chat act of the demo: streamed replies watched, joined late, cancelled and failed over.

``python -m inner_universe.features.chat.demo`` runs it on its own local server;
the main demo (``python -m inner_universe.demo``) runs it after its first act.
This process observes; the others are separate processes:

- the observer opens a conversation and asks a question, then prints every
  chunk of every reply as it commits, with each model call and fallback;
- *critic* and *writer*, two agent processes, answer in turn through the
  offline provider (three turns). The critic's cheap deployment breaks after a
  few words in turn 1: the reply continues on its other deployment from the
  persisted prefix, and the broken one cools down for the critic;
- a late observer process joins turn 2 in the middle, catches up on the
  backlog and follows it live to the end;
- a third process, a participant the owner admitted without a voice, cancels turn 3;
- at the end the observer reads the model-call ledger and the spend.

The observer connects as the database owner (the operator): the module shows each
identity only its own model calls, and the operator, whom visibility rules do not
filter, every identity's. So it can print the agents' calls and fallbacks.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from ...nerv.adapters import attach_event_bus
from ...nerv.bus import BusEvent
from ...spacetime.connection import DbConnection, connect
from ...spacetime.server import LocalServer
from .buffer import FlushPolicy
from .ledger import dollars, ledger_rows, spend_per_agent, spend_per_provider
from .watcher import ENDED, StreamWatcher

__all__ = ["main", "run_act", "start_agents"]

MODULE = "inner_universe.features.chat.demo"  # what the other processes run (not __main__)
PACE = 0.04  # seconds per word from the offline provider
TITLE = "launch note"
QUESTION = "Critic, writer: what should the launch note say about streaming?"
SCRIPTS = [
    # turn 1, critic: its cheap deployment breaks after 9 words, the other one finishes it
    "It should say that every token is a committed row, so a reply survives a crash, "
    "a reload or a lost connection, and any process can watch it as it grows.",
    # turn 2, writer: a late observer joins in the middle of this one
    "Agreed. Draft: Inner Universe streams model replies straight into the database. "
    "Watch a reply from any process, join it halfway and catch up, cancel it from "
    "anywhere, and when a provider fails mid-sentence the next one carries on from "
    "the last committed word. Every call lands in a ledger with its tokens and cost.",
    # turn 3, critic: cancelled from a third process while it streams
    "Good, but I would add a paragraph about budgets, cooldowns shared between "
    "processes, capability matching, cost-aware routing, the offline provider that "
    "makes every test deterministic, and then a long list of benchmarks that nobody "
    "will ever read to the end because someone cancels this reply first.",
]
TURNS = {"critic": [0, 2], "writer": [1]}
POLICY = FlushPolicy(max_chars=48, max_delay=0.05)
WATCHED = ("conversation", "message", "stream", "stream_chunk", "model_call", "provider", "agent")


def deployments(agent: str) -> list[Any]:
    """Each agent's providers (built here so only the agent processes import litellm)."""
    from .router import Deployment

    if agent == "critic":
        return [
            Deployment("flaky-echo", "offline/echo", {"pace": PACE, "fail_after": 9}),
            Deployment("steady-large", "offline/large", {"pace": PACE}),
        ]
    return [Deployment("steady-echo", "offline/echo", {"pace": PACE})]


def _spawn(role: str, uri: str, database: str, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", MODULE, "--role", role, "--uri", uri, "--database", database]
    return subprocess.Popen([*command, *extra], stdout=subprocess.PIPE, text=True)


async def _until(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the demo waited too long for another process")
        await asyncio.sleep(0.02)


def _report(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"a demo process ({proc.args!r}) exited with {proc.returncode}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# --- the observer ---------------------------------------------------------------------------


class Observer:
    """Prints the conversation's streams live, and starts the late observer and the canceller.

    It listens on NERV's EventBus: one named signal per table and kind of change,
    filtered with ``where`` so each receiver sees only what it prints.
    """

    def __init__(self, conn: DbConnection, uri: str, database: str) -> None:
        self.conn, self.uri, self.database = conn, uri, database
        self.started = time.monotonic()
        self.names: dict[int, str] = {}
        self.turn_of: dict[int, int] = {}  # message id -> turn
        self.helpers: dict[str, subprocess.Popen[str]] = {}
        self.canceller_token = ""  # a third identity, admitted to the conversation
        bus = attach_event_bus(conn, history=0)
        on = functools.partial(bus.connect, weak=False)
        on("agent.insert", lambda _s, event: self.names.__setitem__(event.new.id, event.new.name))
        on("stream.insert", self.on_stream)
        on("stream.update", self.on_stream_end, where=lambda e: e.new.status in ENDED)
        on("stream_chunk.insert", self.on_chunk)
        on("model_call.insert", self.on_fallback, where=lambda e: e.new.resumed_from > 0)
        on("model_call.update", self.on_failure, where=lambda e: e.new.status == "failed")

    def line(self, text: str) -> None:
        print(f"\n  [{time.monotonic() - self.started:5.2f}s] {text}", end="", flush=True)

    def on_stream(self, _sender: object, *, event: BusEvent) -> None:
        row = event.new
        self.turn_of[row.message_id] = len(self.turn_of)
        who = self.names.get(row.agent_id, "?")
        self.line(f"{who} streams message #{row.message_id} via {row.provider}: ")

    def on_chunk(self, _sender: object, *, event: BusEvent) -> None:
        row = event.new
        print(row.text, end="", flush=True)
        turn = self.turn_of.get(row.message_id)
        if row.sequence == 3 and turn == 1 and "late" not in self.helpers:
            self.helpers["late"] = _spawn(
                "late", self.uri, self.database, "--message", str(row.message_id)
            )
            # Started now, so it is connected when turn 3 streams (a process takes seconds
            # to start on a loaded machine); it cancels the reply after this one.
            self.helpers["cancel"] = _spawn(
                "cancel", self.uri, self.database,
                "--after", str(row.message_id), "--token", self.canceller_token,
            )  # fmt: skip

    def on_fallback(self, _sender: object, *, event: BusEvent) -> None:
        row = event.new
        self.line(f"  -> {row.provider} continues from byte {row.resumed_from}: ")

    def on_failure(self, _sender: object, *, event: BusEvent) -> None:
        self.line(f"  x {event.new.provider} failed: {event.new.error}")

    def on_stream_end(self, _sender: object, *, event: BusEvent) -> None:
        row = event.new
        detail = f" ({row.detail})" if row.detail else ""
        self.line(f"  message #{row.message_id} {row.status}{detail}")


def start_agents(uri: str, database: str) -> list[subprocess.Popen[str]]:
    """Start the two agent processes; they load LiteLLM, then wait for the conversation.

    The main demo starts them before its first act, so that loading overlaps it.
    """
    return [_spawn(name, uri, database) for name in TURNS]


async def observe(
    uri: str, database: str, agents: list[subprocess.Popen[str]], token: str | None
) -> int:
    async with connect(uri, database, token=token) as conn:
        observer = Observer(conn, uri, database)
        await conn.subscribe(*(f"SELECT * FROM {table}" for table in WATCHED))
        await conn.reducers.create_conversation(TITLE)
        convo = max(conn.db.conversation.iter(), key=lambda c: c.id)
        print(f"chat: conversation #{convo.id} {TITLE!r}; the agents join it")
        async with connect(uri, database) as third:  # the canceller's identity
            assert third.token is not None
            observer.canceller_token = third.token
            await conn.reducers.admit_participant(convo.id, third.identity, [])
        try:
            # Only participants post, in the roles the owner admits them to.
            await _until(lambda: {a.name for a in conn.db.agent.iter()} >= set(TURNS))
            for row in conn.db.agent.iter():
                if row.name in TURNS:
                    await conn.reducers.admit_participant(convo.id, row.owner, ["assistant"])
            observer.line("the owner admits critic and writer as assistants, a third identity mute")
            await conn.reducers.post_message(convo.id, "user", QUESTION)
            observer.line(f"user asks: {QUESTION}")
            reports = [await asyncio.to_thread(_report, proc) for proc in agents]
            await _until(lambda: "late" in observer.helpers and "cancel" in observer.helpers)
            late = await asyncio.to_thread(_report, observer.helpers["late"])
            await asyncio.to_thread(_report, observer.helpers["cancel"])
        finally:
            for proc in [*agents, *observer.helpers.values()]:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        print("\n")
        return await summarize(conn, reports, late)


async def summarize(conn: DbConnection, reports: list[dict[str, Any]], late: dict[str, Any]) -> int:
    message = conn.db.message.find("id", late["message_id"])
    caught_up = message is not None and late["text"] == message.content
    print(
        f"late observer joined message #{late['message_id']} with {late['backlog']} chunks "
        f"already written, then saw {late['live']} live; its text "
        f"{'matches' if caught_up else 'DIFFERS from'} the stored message ({late['status']})"
    )
    replies = sorted((r for report in reports for r in report["replies"]), key=lambda r: r["id"])
    for reply in replies:
        via = " -> ".join(reply["providers"])
        print(f"  {reply['agent']:7} #{reply['id']} {reply['status']:9} via {via}")
    rows = await ledger_rows(conn)
    names = {a.id: a.name for a in conn.db.agent.iter()}
    print("\nledger (one row per model call; each identity reads its own, the operator all):")
    for row in rows:
        print(
            f"  call {row.id:2} {names.get(row.agent_id, '-'):7} {row.provider:13} "
            f"{row.status:9} in {row.tokens_in:4} out {row.tokens_out:3} "
            f"first token {row.first_token_ms or 0:4} ms, {row.duration_ms:5} ms, "
            f"{dollars(row.cost_nano_usd)}"
        )
    print("spend per agent:   ", ", ".join(
        f"{names.get(k, '-')} {v.dollars} ({v.calls} calls)"
        for k, v in spend_per_agent(rows).items()
    ))  # fmt: skip
    print("spend per provider:", ", ".join(
        f"{k} {v.dollars} ({v.calls} calls, {v.failed} failed)"
        for k, v in spend_per_provider(rows).items()
    ))  # fmt: skip
    statuses = [r["status"] for r in replies]
    ok = caught_up and statuses == ["done", "done", "cancelled"] and len(rows) == 4
    print("chat act:", "as expected" if ok else f"UNEXPECTED (replies {statuses})")
    return 0 if ok else 1


# --- the other processes ----------------------------------------------------------------------


async def agent(uri: str, database: str, name: str) -> dict[str, Any]:
    """Answer in this agent's turns; each turn starts once the one before has ended."""
    from .router import ProviderRouter
    from .session import ChatSession

    router = ProviderRouter(deployments(name))  # loads litellm: the slow part
    # litellm's first call builds its models; do it now, not in the middle of a reply.
    async for _piece in router.stream(router.deployments[-1], [], script="warm", pace=0):
        pass
    async with connect(uri, database) as conn:
        assert conn.identity is not None
        await conn.subscribe(
            f"SELECT * FROM agent WHERE owner = 0x{conn.identity.to_hex()}",
            f"SELECT * FROM conversation WHERE title = '{TITLE}'",
            f"SELECT * FROM conversation_participant WHERE identity = 0x{conn.identity.to_hex()}",
        )
        await conn.reducers.register_agent(name, "chat", b"")
        me = next(a for a in conn.db.agent.iter() if a.owner == conn.identity)
        await _until(lambda: len(conn.db.conversation_participant) > 0)  # admitted
        conversation_id = max(c.id for c in conn.db.conversation.iter())
        session = ChatSession(conn, router, agent_id=me.id, policy=POLICY, cooldown=60.0)
        await session.follow(conversation_id)

        def ended() -> int:
            streams = conn.db.stream.filter("conversation_id", conversation_id)
            return sum(s.status in ENDED for s in streams)

        replies = []
        for turn in TURNS[name]:
            await _until(lambda turn=turn: ended() == turn)  # type: ignore[misc]
            reply = await session.reply(conversation_id, script=SCRIPTS[turn])
            providers = [*reply.errors, reply.provider] if reply.errors else [reply.provider]
            replies.append(
                {"agent": name, "id": reply.message_id, "status": reply.status,
                 "providers": providers}
            )  # fmt: skip
        return {"replies": replies}


async def late_observer(uri: str, database: str, message_id: int) -> dict[str, Any]:
    async with connect(uri, database) as conn, StreamWatcher(conn, message_id) as watcher:
        live = 0
        async for _chunk in watcher:
            live += 1
        return {
            "message_id": message_id,
            "backlog": watcher.backlog,
            "live": live - watcher.backlog,
            "text": watcher.text,
            "status": watcher.stream.status,
        }


async def canceller(
    uri: str, database: str, token: str, message_id: int | None, after: int | None
) -> dict[str, Any]:
    """Cancel the reply of ``message_id``, or else the first reply after message ``after``
    once it has streamed three chunks."""
    async with connect(uri, database, token=token) as conn:
        if message_id is None:
            await conn.subscribe(f"SELECT * FROM stream WHERE message_id > {int(after or 0)}")

            def streaming() -> Any:
                return next((s for s in conn.db.stream.iter() if s.last_sequence >= 3), None)

            await _until(streaming)
            message_id = int(streaming().message_id)
        await conn.reducers.cancel_stream(message_id, "cancelled from a third process")
        return {"cancelled": message_id}


# --- entry points -------------------------------------------------------------------------------


def run_act(
    uri: str,
    database: str,
    agents: list[subprocess.Popen[str]] | None = None,
    *,
    operator_token: str | None = None,
) -> int:
    """Run the act against a database that has the module (the main demo calls this),
    with the agent processes from :func:`start_agents` if they were started already.

    ``operator_token`` is the database owner's: with it the observer reads the agents'
    model calls (without it, a new identity sees none and the act reports so).
    """
    print("\n== chat: streamed replies, a late watcher, a cancel, a fallback, the ledger\n")
    agents = agents or start_agents(uri, database)
    return asyncio.run(observe(uri, database, agents, operator_token))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}", description=__doc__)
    parser.add_argument("--role", choices=["critic", "writer", "late", "cancel"])
    parser.add_argument("--uri")
    parser.add_argument("--database")
    parser.add_argument("--message", type=int)
    parser.add_argument("--after", type=int, help="cancel: the first reply after this message")
    parser.add_argument("--token")
    args = parser.parse_args(argv)
    if args.role in TURNS:
        result = asyncio.run(agent(args.uri, args.database, args.role))
    elif args.role == "late":
        result = asyncio.run(late_observer(args.uri, args.database, args.message))
    elif args.role == "cancel":
        result = asyncio.run(
            canceller(args.uri, args.database, args.token, args.message, args.after)
        )
    else:
        from ...universe import publish

        with LocalServer() as server:
            database = publish(server, "inner-universe-chat-demo")
            assert server.owner is not None  # publish made it the database's owner
            return run_act(server.uri, database, operator_token=server.owner.token)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
