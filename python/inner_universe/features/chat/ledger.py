"""Reading the model-call ledger: every call's row, and spend per agent, provider or day.

The rows are the module's ``model_call`` table (one per call to a model: who
asked, provider and model, tokens, cost, latency to the first token, duration,
outcome). Each identity reads only its own calls (the module's visibility
rule; the database owner, the operator, reads them all), and its ``spend``
rows likewise. :func:`ledger_rows` reads them once with a one-off query;
:func:`spend_by` adds them up by any key, and the three named queries are the
common cuts. Costs are integers in nano-dollars, as stored; :func:`dollars`
formats them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from ...spacetime.connection import DbConnection

__all__ = [
    "Spend",
    "dollars",
    "ledger_rows",
    "spend_by",
    "spend_per_agent",
    "spend_per_day",
    "spend_per_provider",
]

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Spend:
    """What a group of model calls cost and did."""

    calls: int
    failed: int
    tokens_in: int
    tokens_out: int
    cost_nano_usd: int

    @property
    def dollars(self) -> str:
        return dollars(self.cost_nano_usd)


def dollars(nano_usd: int) -> str:
    """Nano-dollars as ``$0.000123``."""
    return f"${nano_usd / 1e9:.6f}"


async def ledger_rows(conn: DbConnection, where: str = "") -> list[Any]:
    """The ``model_call`` rows ``conn`` may read (optionally ``WHERE ...``), oldest first:
    its own calls (all of them for the database owner)."""
    sql = "SELECT * FROM model_call" + (f" WHERE {where}" if where else "")
    rows = (await conn.one_off_query(sql)).get("model_call", [])
    return sorted(rows, key=lambda row: row.id)


def spend_by(rows: Iterable[Any], key: Callable[[Any], K]) -> dict[K, Spend]:
    """Ledger rows added up per ``key(row)``, in order of first appearance."""
    totals: dict[K, list[int]] = {}
    for row in rows:
        total = totals.setdefault(key(row), [0, 0, 0, 0, 0])
        total[0] += 1
        total[1] += row.status == "failed"
        total[2] += row.tokens_in
        total[3] += row.tokens_out
        total[4] += row.cost_nano_usd
    return {k: Spend(*values) for k, values in totals.items()}


def spend_per_agent(rows: Iterable[Any]) -> dict[int, Spend]:
    """Per agent id (0: calls made for no agent)."""
    return spend_by(rows, lambda row: row.agent_id)


def spend_per_provider(rows: Iterable[Any]) -> dict[str, Spend]:
    """Per provider (deployment) name."""
    return spend_by(rows, lambda row: row.provider)


def spend_per_day(rows: Iterable[Any]) -> dict[dt.date, Spend]:
    """Per UTC day the call started."""
    return spend_by(rows, lambda row: row.started_at.to_datetime().date())
