"""DiffSynchronizer: reconcile a local copy (edited offline) with the live tables.

    from inner_universe.nerv.sync import SYNC_QUERIES, DiffSynchronizer, LocalCopy

    conn.subscribe(*SYNC_QUERIES)                 # a ThreadedConnection
    sync = DiffSynchronizer(conn, LocalCopy.open("universe.msgpack"), policy="newest")
    print(sync.preview().summary())               # what would change; nothing is written
    report = sync.sync()                          # push, pull, settle conflicts, save

Models and adapters are diffsync's; the merge is three-way against the snapshot of
the last sync kept in the local file. See docs/diff-synchronizer.md.
"""

from __future__ import annotations

from .local import FORMAT, FORMAT_VERSION, LocalCopy, LocalFormatError
from .merge import POLICIES, Change, Conflict, MergePlan, Policy, Resolution, changes, three_way
from .models import (
    TABLES,
    AgentModel,
    ConversationModel,
    Dataset,
    DocumentModel,
    MessageModel,
    Row,
    SyncAdapter,
)
from .replica import SYNC_QUERIES, PushError, Replica, ReplicaAdapter, RowError, replica_rows
from .synchronizer import DiffSynchronizer, SyncReport, match_drafts

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "POLICIES",
    "SYNC_QUERIES",
    "TABLES",
    "AgentModel",
    "Change",
    "Conflict",
    "ConversationModel",
    "Dataset",
    "DiffSynchronizer",
    "DocumentModel",
    "LocalCopy",
    "LocalFormatError",
    "MergePlan",
    "MessageModel",
    "Policy",
    "PushError",
    "Replica",
    "ReplicaAdapter",
    "Resolution",
    "Row",
    "RowError",
    "SyncAdapter",
    "SyncReport",
    "changes",
    "match_drafts",
    "replica_rows",
    "three_way",
]
