"""Our SDK, a raw client and the official TypeScript SDK on the same server, same run.

The workloads are bench_sdk.py's: an initial subscription of ``--sub-rows`` message
rows (request to applied in the client's cache), and ``create_conversation`` calls,
pipelined and sequential, with the client CPU each pipelined call costs. The
TypeScript SDK (1.3.3, from the npm registry) runs in a Node process of its own
(scripts/typescript/bench.mjs); each client gets a database of its own for the calls,
so none receives another's transactions. Best of ``--rounds`` for every figure.

    .venv/bin/python scripts/bench_typescript.py [--calls N] [--sub-rows N] [--rounds N]

Needs Node 18 or later; installs the SDK into scripts/typescript/node_modules with
``npm ci`` on first use, and says so and stops if Node or npm is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench_common import machine
from bench_sdk import bench_calls, bench_subscription, fill_messages, rate

from inner_universe.spacetime.server import LocalServer
from inner_universe.universe import publish

HERE = Path(__file__).parent / "typescript"


def typescript_sdk() -> str | None:
    """Install the TypeScript SDK if needed; None when it can run, else why not."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "Node.js and npm are not installed"
    if not (HERE / "node_modules" / "@clockworklabs" / "spacetimedb-sdk").is_dir():
        print("installing the TypeScript SDK (npm ci in scripts/typescript) ...", flush=True)
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=False)
        if done.returncode != 0:
            return "npm ci failed (see above)"
    return None


def node(uri: str, database: str, *args: object) -> dict[str, Any]:
    """Run bench.mjs and return the figures it printed."""
    command = ["node", str(HERE / "bench.mjs"), uri, database, *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"the TypeScript benchmark failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def node_version() -> str:
    return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--sub-rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    why_not = typescript_sdk()
    if why_not is not None:
        print(f"skipped: {why_not}; the other benchmarks need no Node.")
        sys.exit(0)
    sdk = "@clockworklabs/spacetimedb-sdk 1.3.3"
    print(f"{machine('websockets')}; Node {node_version()}; {sdk}")

    with LocalServer() as server:
        uri, rounds = server.uri, args.rounds
        database = publish(server, "bench-ts-subscription")
        asyncio.run(fill_messages(uri, database, args.sub_rows))
        ours = asyncio.run(bench_subscription(uri, database, args.sub_rows, rounds))
        query = "SELECT * FROM message"
        theirs = node(uri, database, "subscribe", query, args.sub_rows, rounds)
        print(f"\ninitial subscription of {args.sub_rows:,} message rows, request to applied")
        print(f"  our SDK                  {ours['sdk']:7.3f} s")
        print(f"  TypeScript SDK           {theirs['subscribe']:7.3f} s")
        print(f"  raw client (no cache)    {ours['raw']:7.3f} s")
        print(f"  TypeScript SDK time / ours: {theirs['subscribe'] / ours['sdk']:.2f}x")

        ours_db = (publish(server, "bench-ts-calls"), publish(server, "bench-ts-calls-raw"))
        c = asyncio.run(bench_calls(uri, ours_db, args.calls, rounds))
        t = node(uri, publish(server, "bench-ts-calls-node"), "calls", args.calls, rounds)
        n = args.calls
        print(f"\nreducer calls (create_conversation, {n} pipelined per round)")
        print(f"  pipelined, our SDK               {rate(n, c['sdk_pipe'])}")
        print(f"  pipelined, our SDK, no call keys {rate(n, c['sdk_pipe_nokey'])}")
        print(f"  pipelined, TypeScript SDK        {rate(n, t['pipe'])}   (no call keys)")
        print(f"  pipelined, raw Python client     {rate(n, c['raw_pipe'])}   (call keys)")
        print(f"  pipelined, raw, no call keys     {rate(n, c['raw_pipe_nokey'])}")
        print(f"  sequential, our SDK              {rate(1, c['sdk_seq'])}")
        print(f"  sequential, our SDK, no call keys {rate(1, c['sdk_seq_nokey'])}")
        print(f"  sequential, TypeScript SDK       {rate(1, t['seq'])}")
        print(f"  sequential, raw Python client    {rate(1, c['raw_seq'])}   (call keys)")
        print(f"  sequential, raw, no call keys    {rate(1, c['raw_seq_nokey'])}")
        us = 1e6
        print(f"  client CPU per pipelined call: our SDK {c['sdk_cpu'] * us:.0f} us, ", end="")
        print(f"TypeScript SDK {t['cpu'] * us:.0f} us, raw Python {c['raw_cpu'] * us:.0f} us")
        print("  pipelined rate, ours / TypeScript SDK's (no keys on both): ", end="")
        print(f"{t['pipe'] / c['sdk_pipe_nokey']:.2f}x")
        print("  sequential rate, ours / TypeScript SDK's (no keys on both): ", end="")
        print(f"{t['seq'] / c['sdk_seq_nokey']:.2f}x")


if __name__ == "__main__":
    main()
