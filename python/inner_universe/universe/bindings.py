"""Typed bindings for the Inner Universe module (server-module/).

Generated from the module's schema by inner_universe.spacetime.codegen: do not edit.
Regenerate with:

    python -m inner_universe.universe.generate
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import cast

from inner_universe.spacetime import (
    DbConnection,
    EventContext,
    ReducerEvent,
    TableHandle,
    ThreadedConnection,
)
from inner_universe.spacetime.sats import register_row_class
from inner_universe.spacetime.types import ConnectionId, Identity, ScheduleAt, Timestamp

__all__ = [
    "Agent",
    "AgentCapability",
    "AgentCapabilityTable",
    "AgentState",
    "AgentStateTable",
    "AgentTable",
    "CallKey",
    "CallReceipt",
    "CallReceiptPruning",
    "CallReceiptPruningTable",
    "CallReceiptTable",
    "Chunk",
    "ChunkSet",
    "ChunkSetTable",
    "ChunkTable",
    "Conversation",
    "ConversationParticipantTable",
    "ConversationTable",
    "DelegationRule",
    "DelegationRuleTable",
    "Document",
    "DocumentTable",
    "EventLog",
    "EventLogTable",
    "EventRun",
    "EventRunTable",
    "EventStoreMemberTable",
    "EventTracking",
    "EventTrackingTable",
    "InboxMessage",
    "InboxMessageTable",
    "LeaseTimer",
    "LeaseTimerTable",
    "Message",
    "MessageCleanup",
    "MessageCleanupTable",
    "MessageTable",
    "ModelCall",
    "ModelCallTable",
    "Module",
    "NewChunk",
    "NewEvent",
    "NewRun",
    "NewStep",
    "NewTracking",
    "Participant",
    "Provider",
    "ProviderTable",
    "QuotaUsage",
    "QuotaUsageTable",
    "Reducers",
    "RetryTimer",
    "RetryTimerTable",
    "Session",
    "SessionTable",
    "Spend",
    "SpendTable",
    "StoreMember",
    "StoredEvent",
    "StoredEventTable",
    "StoredSnapshot",
    "StoredSnapshotTable",
    "Stream",
    "StreamChunk",
    "StreamChunkTable",
    "StreamTable",
    "Tables",
    "Task",
    "TaskSpec",
    "TaskTable",
    "ThreadedModule",
    "ThreadedReducers",
    "Workflow",
    "WorkflowStep",
    "WorkflowStepTable",
    "WorkflowTable",
]


@register_row_class("Agent")
@dataclass(frozen=True, slots=True)
class Agent:
    """A row of table agent."""

    id: int
    owner: Identity
    name: str
    role: str
    status: str
    version: int
    created_at: Timestamp
    updated_at: Timestamp


@register_row_class("AgentCapability")
@dataclass(frozen=True, slots=True)
class AgentCapability:
    """A row of table agent_capability."""

    id: int
    agent_id: int
    capability: str


@register_row_class("AgentState")
@dataclass(frozen=True, slots=True)
class AgentState:
    """A row of table agent_state."""

    agent_id: int
    owner: Identity
    state: bytes


@register_row_class("CallKey")
@dataclass(frozen=True, slots=True)
class CallKey:
    """The type CallKey."""

    client: int
    seq: int


@register_row_class("CallReceipt")
@dataclass(frozen=True, slots=True)
class CallReceipt:
    """A row of table call_receipt."""

    caller: Identity
    client: int
    seq: int
    at_micros: int


@register_row_class("CallReceiptPruning")
@dataclass(frozen=True, slots=True)
class CallReceiptPruning:
    """A row of table call_receipt_pruning."""

    scheduled_id: int
    scheduled_at: ScheduleAt


@register_row_class("Chunk")
@dataclass(frozen=True, slots=True)
class Chunk:
    """A row of table chunk."""

    id: int
    document_id: int
    position: int
    text: str
    start_char: int
    end_char: int
    embedding: bytes
    model: str
    dimension: int
    private: bool
    owner: Identity
    ingested_by: Identity
    created_at: Timestamp


@register_row_class("ChunkSet")
@dataclass(frozen=True, slots=True)
class ChunkSet:
    """A row of table chunk_set."""

    document_id: int
    model: str
    dimension: int
    fingerprint: str
    expected: int
    stored: int
    text_bytes: int
    private: bool
    owner: Identity
    ingested_by: Identity
    updated_at: Timestamp


@register_row_class("Conversation")
@dataclass(frozen=True, slots=True)
class Conversation:
    """A row of table conversation."""

    id: int
    owner: Identity
    title: str
    private: bool
    last_sequence: int
    created_at: Timestamp
    updated_at: Timestamp


@register_row_class("DelegationRule")
@dataclass(frozen=True, slots=True)
class DelegationRule:
    """A row of table delegation_rule."""

    id: int
    from_agent: int
    to_capability: str
    to_agent: int


@register_row_class("Document")
@dataclass(frozen=True, slots=True)
class Document:
    """A row of table document."""

    id: int
    owner: Identity
    title: str
    content: str
    metadata: bytes
    private: bool
    created_at: Timestamp
    updated_at: Timestamp


@register_row_class("EventLog")
@dataclass(frozen=True, slots=True)
class EventLog:
    """A row of table event_log."""

    store: str
    last_notification_id: int
    owner: Identity
    created_at: Timestamp


@register_row_class("EventRun")
@dataclass(frozen=True, slots=True)
class EventRun:
    """A row of table event_run."""

    store: str
    first_notification_id: int
    originator_id: str
    first_version: int
    last_version: int
    topics: tuple[str, ...]
    states: tuple[bytes, ...]
    writer: Identity


@register_row_class("EventTracking")
@dataclass(frozen=True, slots=True)
class EventTracking:
    """A row of table event_tracking."""

    store: str
    application_name: str
    notification_id: int


@register_row_class("InboxMessage")
@dataclass(frozen=True, slots=True)
class InboxMessage:
    """A row of table inbox_message."""

    id: int
    ticket: int
    from_agent: int
    to_agent: int
    body: bytes
    reply_to: int
    sender: Identity
    recipient: Identity
    to_self: bool
    sent_at: Timestamp
    acknowledged_at: Timestamp | None


@register_row_class("LeaseTimer")
@dataclass(frozen=True, slots=True)
class LeaseTimer:
    """A row of table lease_timer."""

    scheduled_id: int
    scheduled_at: ScheduleAt
    task_id: int
    epoch: int


@register_row_class("Message")
@dataclass(frozen=True, slots=True)
class Message:
    """A row of table message."""

    id: int
    conversation_id: int
    author: Identity
    role: str
    content: str
    sequence: int
    private: bool
    conversation_owner: Identity
    created_at: Timestamp
    updated_at: Timestamp


@register_row_class("MessageCleanup")
@dataclass(frozen=True, slots=True)
class MessageCleanup:
    """A row of table message_cleanup."""

    scheduled_id: int
    scheduled_at: ScheduleAt
    conversation_id: int


@register_row_class("ModelCall")
@dataclass(frozen=True, slots=True)
class ModelCall:
    """A row of table model_call."""

    id: int
    caller: Identity
    agent_id: int
    message_id: int
    provider: str
    model: str
    resumed_from: int
    status: str
    tokens_in: int
    tokens_out: int
    cost_nano_usd: int
    first_token_ms: int | None
    duration_ms: int
    error: str
    started_at: Timestamp
    ended_at: Timestamp | None


@register_row_class("NewChunk")
@dataclass(frozen=True, slots=True)
class NewChunk:
    """The type NewChunk."""

    position: int
    text: str
    start_char: int
    end_char: int
    embedding: bytes


@register_row_class("NewEvent")
@dataclass(frozen=True, slots=True)
class NewEvent:
    """The type NewEvent."""

    originator_id: str
    originator_version: int
    topic: str
    state: bytes


@register_row_class("NewRun")
@dataclass(frozen=True, slots=True)
class NewRun:
    """The type NewRun."""

    originator_id: str
    first_version: int
    topics: tuple[str, ...]
    states: tuple[bytes, ...]


@register_row_class("NewStep")
@dataclass(frozen=True, slots=True)
class NewStep:
    """The type NewStep."""

    name: str
    spec: TaskSpec
    needs: tuple[int, ...]


@register_row_class("NewTracking")
@dataclass(frozen=True, slots=True)
class NewTracking:
    """The type NewTracking."""

    application_name: str
    notification_id: int


@register_row_class("Participant")
@dataclass(frozen=True, slots=True)
class Participant:
    """A row of table conversation_participant."""

    id: int
    conversation_id: int
    identity: Identity
    roles: tuple[str, ...]
    private: bool
    conversation_owner: Identity
    admitted_at: Timestamp


@register_row_class("Provider")
@dataclass(frozen=True, slots=True)
class Provider:
    """A row of table provider."""

    id: int
    owner: Identity
    name: str
    model: str
    calls: int
    failures: int
    consecutive_failures: int
    last_error: str
    cooldown_until: Timestamp
    updated_at: Timestamp


@register_row_class("QuotaUsage")
@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """A row of table quota_usage."""

    id: int
    owner: Identity
    kind: str
    rows: int
    bytes: int


@register_row_class("RetryTimer")
@dataclass(frozen=True, slots=True)
class RetryTimer:
    """A row of table retry_timer."""

    scheduled_id: int
    scheduled_at: ScheduleAt
    task_id: int
    attempts: int


@register_row_class("Session")
@dataclass(frozen=True, slots=True)
class Session:
    """A row of table session."""

    connection_id: ConnectionId
    identity: Identity
    connected_at: Timestamp


@register_row_class("Spend")
@dataclass(frozen=True, slots=True)
class Spend:
    """A row of table spend."""

    id: int
    owner: Identity
    agent_id: int
    calls: int
    spent_nano_usd: int
    budget_nano_usd: int | None
    updated_at: Timestamp


@register_row_class("StoreMember")
@dataclass(frozen=True, slots=True)
class StoreMember:
    """A row of table event_store_member."""

    id: int
    store: str
    identity: Identity
    writer: bool


@register_row_class("StoredEvent")
@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A row of table stored_event."""

    store: str
    notification_id: int
    originator_id: str
    originator_version: int
    topic: str
    state: bytes
    writer: Identity


@register_row_class("StoredSnapshot")
@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """A row of table stored_snapshot."""

    store: str
    originator_id: str
    originator_version: int
    topic: str
    state: bytes
    writer: Identity


@register_row_class("Stream")
@dataclass(frozen=True, slots=True)
class Stream:
    """A row of table stream."""

    message_id: int
    conversation_id: int
    author: Identity
    private: bool
    conversation_owner: Identity
    agent_id: int
    status: str
    provider: str
    model: str
    last_sequence: int
    length: int
    prompt_tokens: int
    completion_tokens: int
    detail: str
    ended_by: Identity | None
    started_at: Timestamp
    updated_at: Timestamp


@register_row_class("StreamChunk")
@dataclass(frozen=True, slots=True)
class StreamChunk:
    """A row of table stream_chunk."""

    id: int
    message_id: int
    author: Identity
    private: bool
    conversation_owner: Identity
    sequence: int
    text: str
    created_at: Timestamp


@register_row_class("Task")
@dataclass(frozen=True, slots=True)
class Task:
    """A row of table task."""

    id: int
    ticket: int
    kind: str
    payload: bytes
    submitter: Identity
    from_agent: int
    capability: str
    agent_id: int
    status: str
    attempts: int
    max_attempts: int
    lease_ms: int
    backoff_ms: int
    lease_deadline: Timestamp | None
    epoch: int
    claimed_by: int
    claimant: Identity | None
    result: bytes
    error: str
    parent_id: int
    hops: int
    max_hops: int
    step_id: int
    created_at: Timestamp
    updated_at: Timestamp


@register_row_class("TaskSpec")
@dataclass(frozen=True, slots=True)
class TaskSpec:
    """The type TaskSpec."""

    kind: str
    payload: bytes
    capability: str
    agent_id: int
    max_attempts: int
    lease_ms: int
    backoff_ms: int
    max_hops: int


@register_row_class("Workflow")
@dataclass(frozen=True, slots=True)
class Workflow:
    """A row of table workflow."""

    id: int
    ticket: int
    name: str
    submitter: Identity
    from_agent: int
    status: str
    open_steps: int
    error: str
    created_at: Timestamp
    finished_at: Timestamp | None


@register_row_class("WorkflowStep")
@dataclass(frozen=True, slots=True)
class WorkflowStep:
    """A row of table workflow_step."""

    id: int
    workflow_id: int
    position: int
    name: str
    spec: TaskSpec
    needs: tuple[int, ...]
    waiting_on: int
    task_id: int
    status: str
    error: str


class AgentTable:
    """Table agent: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[Agent]:
        return cast(Iterator[Agent], self.handle.iter())

    def find_by_id(self, id: int) -> Agent | None:
        return cast("Agent | None", self.handle.find("id", id))

    def filter_by_name(self, name: str) -> list[Agent]:
        return cast(list[Agent], self.handle.filter("name", name))

    def filter_by_owner(self, owner: Identity) -> list[Agent]:
        return cast(list[Agent], self.handle.filter("owner", owner))

    def on_insert(
        self,
        callback: Callable[[EventContext, Agent], object],
    ) -> Callable[[EventContext, Agent], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, Agent], object],
    ) -> Callable[[EventContext, Agent], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, Agent, Agent], object],
    ) -> Callable[[EventContext, Agent, Agent], object]:
        self.handle.on_update(callback)
        return callback


class AgentCapabilityTable:
    """Table agent_capability: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[AgentCapability]:
        return cast(Iterator[AgentCapability], self.handle.iter())

    def find_by_id(self, id: int) -> AgentCapability | None:
        return cast("AgentCapability | None", self.handle.find("id", id))

    def filter_by_agent_id(self, agent_id: int) -> list[AgentCapability]:
        return cast(list[AgentCapability], self.handle.filter("agent_id", agent_id))

    def filter_by_capability(self, capability: str) -> list[AgentCapability]:
        return cast(list[AgentCapability], self.handle.filter("capability", capability))

    def on_insert(
        self,
        callback: Callable[[EventContext, AgentCapability], object],
    ) -> Callable[[EventContext, AgentCapability], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, AgentCapability], object],
    ) -> Callable[[EventContext, AgentCapability], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, AgentCapability, AgentCapability], object],
    ) -> Callable[[EventContext, AgentCapability, AgentCapability], object]:
        self.handle.on_update(callback)
        return callback


class AgentStateTable:
    """Table agent_state: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[AgentState]:
        return cast(Iterator[AgentState], self.handle.iter())

    def find_by_agent_id(self, agent_id: int) -> AgentState | None:
        return cast("AgentState | None", self.handle.find("agent_id", agent_id))

    def filter_by_owner(self, owner: Identity) -> list[AgentState]:
        return cast(list[AgentState], self.handle.filter("owner", owner))

    def on_insert(
        self,
        callback: Callable[[EventContext, AgentState], object],
    ) -> Callable[[EventContext, AgentState], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, AgentState], object],
    ) -> Callable[[EventContext, AgentState], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, AgentState, AgentState], object],
    ) -> Callable[[EventContext, AgentState, AgentState], object]:
        self.handle.on_update(callback)
        return callback


class CallReceiptTable:
    """Table call_receipt: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[CallReceipt]:
        return cast(Iterator[CallReceipt], self.handle.iter())

    def filter_by_at_micros(self, at_micros: int) -> list[CallReceipt]:
        return cast(list[CallReceipt], self.handle.filter("at_micros", at_micros))

    def filter_by_caller(self, caller: Identity) -> list[CallReceipt]:
        return cast(list[CallReceipt], self.handle.filter("caller", caller))

    def on_insert(
        self,
        callback: Callable[[EventContext, CallReceipt], object],
    ) -> Callable[[EventContext, CallReceipt], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, CallReceipt], object],
    ) -> Callable[[EventContext, CallReceipt], object]:
        self.handle.on_delete(callback)
        return callback


class CallReceiptPruningTable:
    """Table call_receipt_pruning: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[CallReceiptPruning]:
        return cast(Iterator[CallReceiptPruning], self.handle.iter())

    def find_by_scheduled_id(self, scheduled_id: int) -> CallReceiptPruning | None:
        return cast("CallReceiptPruning | None", self.handle.find("scheduled_id", scheduled_id))

    def on_insert(
        self,
        callback: Callable[[EventContext, CallReceiptPruning], object],
    ) -> Callable[[EventContext, CallReceiptPruning], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, CallReceiptPruning], object],
    ) -> Callable[[EventContext, CallReceiptPruning], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, CallReceiptPruning, CallReceiptPruning], object],
    ) -> Callable[[EventContext, CallReceiptPruning, CallReceiptPruning], object]:
        self.handle.on_update(callback)
        return callback


class ChunkTable:
    """Table chunk: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[Chunk]:
        return cast(Iterator[Chunk], self.handle.iter())

    def find_by_id(self, id: int) -> Chunk | None:
        return cast("Chunk | None", self.handle.find("id", id))

    def filter_by_document_id(self, document_id: int) -> list[Chunk]:
        return cast(list[Chunk], self.handle.filter("document_id", document_id))

    def filter_by_owner(self, owner: Identity) -> list[Chunk]:
        return cast(list[Chunk], self.handle.filter("owner", owner))

    def on_insert(
        self,
        callback: Callable[[EventContext, Chunk], object],
    ) -> Callable[[EventContext, Chunk], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, Chunk], object],
    ) -> Callable[[EventContext, Chunk], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, Chunk, Chunk], object],
    ) -> Callable[[EventContext, Chunk, Chunk], object]:
        self.handle.on_update(callback)
        return callback


class ChunkSetTable:
    """Table chunk_set: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[ChunkSet]:
        return cast(Iterator[ChunkSet], self.handle.iter())

    def find_by_document_id(self, document_id: int) -> ChunkSet | None:
        return cast("ChunkSet | None", self.handle.find("document_id", document_id))

    def filter_by_owner(self, owner: Identity) -> list[ChunkSet]:
        return cast(list[ChunkSet], self.handle.filter("owner", owner))

    def on_insert(
        self,
        callback: Callable[[EventContext, ChunkSet], object],
    ) -> Callable[[EventContext, ChunkSet], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, ChunkSet], object],
    ) -> Callable[[EventContext, ChunkSet], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, ChunkSet, ChunkSet], object],
    ) -> Callable[[EventContext, ChunkSet, ChunkSet], object]:
        self.handle.on_update(callback)
        return callback


class ConversationTable:
    """Table conversation: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[Conversation]:
        return cast(Iterator[Conversation], self.handle.iter())

    def find_by_id(self, id: int) -> Conversation | None:
        return cast("Conversation | None", self.handle.find("id", id))

    def filter_by_owner(self, owner: Identity) -> list[Conversation]:
        return cast(list[Conversation], self.handle.filter("owner", owner))

    def on_insert(
        self,
        callback: Callable[[EventContext, Conversation], object],
    ) -> Callable[[EventContext, Conversation], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, Conversation], object],
    ) -> Callable[[EventContext, Conversation], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, Conversation, Conversation], object],
    ) -> Callable[[EventContext, Conversation, Conversation], object]:
        self.handle.on_update(callback)
        return callback


class ConversationParticipantTable:
    """Table conversation_participant: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[Participant]:
        return cast(Iterator[Participant], self.handle.iter())

    def find_by_id(self, id: int) -> Participant | None:
        return cast("Participant | None", self.handle.find("id", id))

    def filter_by_conversation_id(self, conversation_id: int) -> list[Participant]:
        return cast(list[Participant], self.handle.filter("conversation_id", conversation_id))

    def filter_by_conversation_owner(self, conversation_owner: Identity) -> list[Participant]:
        return cast(list[Participant], self.handle.filter("conversation_owner", conversation_owner))

    def filter_by_identity(self, identity: Identity) -> list[Participant]:
        return cast(list[Participant], self.handle.filter("identity", identity))

    def on_insert(
        self,
        callback: Callable[[EventContext, Participant], object],
    ) -> Callable[[EventContext, Participant], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, Participant], object],
    ) -> Callable[[EventContext, Participant], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, Participant, Participant], object],
    ) -> Callable[[EventContext, Participant, Participant], object]:
        self.handle.on_update(callback)
        return callback


class DelegationRuleTable:
    """Table delegation_rule: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[DelegationRule]:
        return cast(Iterator[DelegationRule], self.handle.iter())

    def find_by_id(self, id: int) -> DelegationRule | None:
        return cast("DelegationRule | None", self.handle.find("id", id))

    def filter_by_from_agent(self, from_agent: int) -> list[DelegationRule]:
        return cast(list[DelegationRule], self.handle.filter("from_agent", from_agent))

    def on_insert(
        self,
        callback: Callable[[EventContext, DelegationRule], object],
    ) -> Callable[[EventContext, DelegationRule], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, DelegationRule], object],
    ) -> Callable[[EventContext, DelegationRule], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, DelegationRule, DelegationRule], object],
    ) -> Callable[[EventContext, DelegationRule, DelegationRule], object]:
        self.handle.on_update(callback)
        return callback


class DocumentTable:
    """Table document: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[Document]:
        return cast(Iterator[Document], self.handle.iter())

    def find_by_id(self, id: int) -> Document | None:
        return cast("Document | None", self.handle.find("id", id))

    def filter_by_owner(self, owner: Identity) -> list[Document]:
        return cast(list[Document], self.handle.filter("owner", owner))

    def on_insert(
        self,
        callback: Callable[[EventContext, Document], object],
    ) -> Callable[[EventContext, Document], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, Document], object],
    ) -> Callable[[EventContext, Document], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, Document, Document], object],
    ) -> Callable[[EventContext, Document, Document], object]:
        self.handle.on_update(callback)
        return callback


class EventLogTable:
    """Table event_log: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[EventLog]:
        return cast(Iterator[EventLog], self.handle.iter())

    def find_by_store(self, store: str) -> EventLog | None:
        return cast("EventLog | None", self.handle.find("store", store))

    def filter_by_owner(self, owner: Identity) -> list[EventLog]:
        return cast(list[EventLog], self.handle.filter("owner", owner))

    def on_insert(
        self,
        callback: Callable[[EventContext, EventLog], object],
    ) -> Callable[[EventContext, EventLog], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, EventLog], object],
    ) -> Callable[[EventContext, EventLog], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, EventLog, EventLog], object],
    ) -> Callable[[EventContext, EventLog, EventLog], object]:
        self.handle.on_update(callback)
        return callback


class EventRunTable:
    """Table event_run: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[EventRun]:
        return cast(Iterator[EventRun], self.handle.iter())

    def filter_by_store(self, store: str) -> list[EventRun]:
        return cast(list[EventRun], self.handle.filter("store", store))

    def on_insert(
        self,
        callback: Callable[[EventContext, EventRun], object],
    ) -> Callable[[EventContext, EventRun], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, EventRun], object],
    ) -> Callable[[EventContext, EventRun], object]:
        self.handle.on_delete(callback)
        return callback


class EventStoreMemberTable:
    """Table event_store_member: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[StoreMember]:
        return cast(Iterator[StoreMember], self.handle.iter())

    def find_by_id(self, id: int) -> StoreMember | None:
        return cast("StoreMember | None", self.handle.find("id", id))

    def filter_by_store(self, store: str) -> list[StoreMember]:
        return cast(list[StoreMember], self.handle.filter("store", store))

    def on_insert(
        self,
        callback: Callable[[EventContext, StoreMember], object],
    ) -> Callable[[EventContext, StoreMember], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, StoreMember], object],
    ) -> Callable[[EventContext, StoreMember], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, StoreMember, StoreMember], object],
    ) -> Callable[[EventContext, StoreMember, StoreMember], object]:
        self.handle.on_update(callback)
        return callback


class EventTrackingTable:
    """Table event_tracking: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[EventTracking]:
        return cast(Iterator[EventTracking], self.handle.iter())

    def filter_by_store(self, store: str) -> list[EventTracking]:
        return cast(list[EventTracking], self.handle.filter("store", store))

    def on_insert(
        self,
        callback: Callable[[EventContext, EventTracking], object],
    ) -> Callable[[EventContext, EventTracking], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, EventTracking], object],
    ) -> Callable[[EventContext, EventTracking], object]:
        self.handle.on_delete(callback)
        return callback


class InboxMessageTable:
    """Table inbox_message: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[InboxMessage]:
        return cast(Iterator[InboxMessage], self.handle.iter())

    def find_by_id(self, id: int) -> InboxMessage | None:
        return cast("InboxMessage | None", self.handle.find("id", id))

    def filter_by_recipient(self, recipient: Identity) -> list[InboxMessage]:
        return cast(list[InboxMessage], self.handle.filter("recipient", recipient))

    def filter_by_sender(self, sender: Identity) -> list[InboxMessage]:
        return cast(list[InboxMessage], self.handle.filter("sender", sender))

    def filter_by_ticket(self, ticket: int) -> list[InboxMessage]:
        return cast(list[InboxMessage], self.handle.filter("ticket", ticket))

    def filter_by_to_agent(self, to_agent: int) -> list[InboxMessage]:
        return cast(list[InboxMessage], self.handle.filter("to_agent", to_agent))

    def on_insert(
        self,
        callback: Callable[[EventContext, InboxMessage], object],
    ) -> Callable[[EventContext, InboxMessage], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, InboxMessage], object],
    ) -> Callable[[EventContext, InboxMessage], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, InboxMessage, InboxMessage], object],
    ) -> Callable[[EventContext, InboxMessage, InboxMessage], object]:
        self.handle.on_update(callback)
        return callback


class LeaseTimerTable:
    """Table lease_timer: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[LeaseTimer]:
        return cast(Iterator[LeaseTimer], self.handle.iter())

    def find_by_scheduled_id(self, scheduled_id: int) -> LeaseTimer | None:
        return cast("LeaseTimer | None", self.handle.find("scheduled_id", scheduled_id))

    def on_insert(
        self,
        callback: Callable[[EventContext, LeaseTimer], object],
    ) -> Callable[[EventContext, LeaseTimer], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, LeaseTimer], object],
    ) -> Callable[[EventContext, LeaseTimer], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, LeaseTimer, LeaseTimer], object],
    ) -> Callable[[EventContext, LeaseTimer, LeaseTimer], object]:
        self.handle.on_update(callback)
        return callback


class MessageTable:
    """Table message: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[Message]:
        return cast(Iterator[Message], self.handle.iter())

    def find_by_id(self, id: int) -> Message | None:
        return cast("Message | None", self.handle.find("id", id))

    def filter_by_author(self, author: Identity) -> list[Message]:
        return cast(list[Message], self.handle.filter("author", author))

    def filter_by_conversation_id(self, conversation_id: int) -> list[Message]:
        return cast(list[Message], self.handle.filter("conversation_id", conversation_id))

    def filter_by_conversation_owner(self, conversation_owner: Identity) -> list[Message]:
        return cast(list[Message], self.handle.filter("conversation_owner", conversation_owner))

    def on_insert(
        self,
        callback: Callable[[EventContext, Message], object],
    ) -> Callable[[EventContext, Message], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, Message], object],
    ) -> Callable[[EventContext, Message], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, Message, Message], object],
    ) -> Callable[[EventContext, Message, Message], object]:
        self.handle.on_update(callback)
        return callback


class MessageCleanupTable:
    """Table message_cleanup: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[MessageCleanup]:
        return cast(Iterator[MessageCleanup], self.handle.iter())

    def find_by_scheduled_id(self, scheduled_id: int) -> MessageCleanup | None:
        return cast("MessageCleanup | None", self.handle.find("scheduled_id", scheduled_id))

    def on_insert(
        self,
        callback: Callable[[EventContext, MessageCleanup], object],
    ) -> Callable[[EventContext, MessageCleanup], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, MessageCleanup], object],
    ) -> Callable[[EventContext, MessageCleanup], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, MessageCleanup, MessageCleanup], object],
    ) -> Callable[[EventContext, MessageCleanup, MessageCleanup], object]:
        self.handle.on_update(callback)
        return callback


class ModelCallTable:
    """Table model_call: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[ModelCall]:
        return cast(Iterator[ModelCall], self.handle.iter())

    def find_by_id(self, id: int) -> ModelCall | None:
        return cast("ModelCall | None", self.handle.find("id", id))

    def filter_by_agent_id(self, agent_id: int) -> list[ModelCall]:
        return cast(list[ModelCall], self.handle.filter("agent_id", agent_id))

    def filter_by_caller(self, caller: Identity) -> list[ModelCall]:
        return cast(list[ModelCall], self.handle.filter("caller", caller))

    def filter_by_message_id(self, message_id: int) -> list[ModelCall]:
        return cast(list[ModelCall], self.handle.filter("message_id", message_id))

    def on_insert(
        self,
        callback: Callable[[EventContext, ModelCall], object],
    ) -> Callable[[EventContext, ModelCall], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, ModelCall], object],
    ) -> Callable[[EventContext, ModelCall], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, ModelCall, ModelCall], object],
    ) -> Callable[[EventContext, ModelCall, ModelCall], object]:
        self.handle.on_update(callback)
        return callback


class ProviderTable:
    """Table provider: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[Provider]:
        return cast(Iterator[Provider], self.handle.iter())

    def find_by_id(self, id: int) -> Provider | None:
        return cast("Provider | None", self.handle.find("id", id))

    def filter_by_owner(self, owner: Identity) -> list[Provider]:
        return cast(list[Provider], self.handle.filter("owner", owner))

    def on_insert(
        self,
        callback: Callable[[EventContext, Provider], object],
    ) -> Callable[[EventContext, Provider], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, Provider], object],
    ) -> Callable[[EventContext, Provider], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, Provider, Provider], object],
    ) -> Callable[[EventContext, Provider, Provider], object]:
        self.handle.on_update(callback)
        return callback


class QuotaUsageTable:
    """Table quota_usage: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[QuotaUsage]:
        return cast(Iterator[QuotaUsage], self.handle.iter())

    def find_by_id(self, id: int) -> QuotaUsage | None:
        return cast("QuotaUsage | None", self.handle.find("id", id))

    def filter_by_owner(self, owner: Identity) -> list[QuotaUsage]:
        return cast(list[QuotaUsage], self.handle.filter("owner", owner))

    def on_insert(
        self,
        callback: Callable[[EventContext, QuotaUsage], object],
    ) -> Callable[[EventContext, QuotaUsage], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, QuotaUsage], object],
    ) -> Callable[[EventContext, QuotaUsage], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, QuotaUsage, QuotaUsage], object],
    ) -> Callable[[EventContext, QuotaUsage, QuotaUsage], object]:
        self.handle.on_update(callback)
        return callback


class RetryTimerTable:
    """Table retry_timer: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[RetryTimer]:
        return cast(Iterator[RetryTimer], self.handle.iter())

    def find_by_scheduled_id(self, scheduled_id: int) -> RetryTimer | None:
        return cast("RetryTimer | None", self.handle.find("scheduled_id", scheduled_id))

    def on_insert(
        self,
        callback: Callable[[EventContext, RetryTimer], object],
    ) -> Callable[[EventContext, RetryTimer], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, RetryTimer], object],
    ) -> Callable[[EventContext, RetryTimer], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, RetryTimer, RetryTimer], object],
    ) -> Callable[[EventContext, RetryTimer, RetryTimer], object]:
        self.handle.on_update(callback)
        return callback


class SessionTable:
    """Table session: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[Session]:
        return cast(Iterator[Session], self.handle.iter())

    def find_by_connection_id(self, connection_id: ConnectionId) -> Session | None:
        return cast("Session | None", self.handle.find("connection_id", connection_id))

    def filter_by_identity(self, identity: Identity) -> list[Session]:
        return cast(list[Session], self.handle.filter("identity", identity))

    def on_insert(
        self,
        callback: Callable[[EventContext, Session], object],
    ) -> Callable[[EventContext, Session], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, Session], object],
    ) -> Callable[[EventContext, Session], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, Session, Session], object],
    ) -> Callable[[EventContext, Session, Session], object]:
        self.handle.on_update(callback)
        return callback


class SpendTable:
    """Table spend: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[Spend]:
        return cast(Iterator[Spend], self.handle.iter())

    def find_by_id(self, id: int) -> Spend | None:
        return cast("Spend | None", self.handle.find("id", id))

    def filter_by_owner(self, owner: Identity) -> list[Spend]:
        return cast(list[Spend], self.handle.filter("owner", owner))

    def on_insert(
        self,
        callback: Callable[[EventContext, Spend], object],
    ) -> Callable[[EventContext, Spend], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, Spend], object],
    ) -> Callable[[EventContext, Spend], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, Spend, Spend], object],
    ) -> Callable[[EventContext, Spend, Spend], object]:
        self.handle.on_update(callback)
        return callback


class StoredEventTable:
    """Table stored_event: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[StoredEvent]:
        return cast(Iterator[StoredEvent], self.handle.iter())

    def filter_by_store(self, store: str) -> list[StoredEvent]:
        return cast(list[StoredEvent], self.handle.filter("store", store))

    def on_insert(
        self,
        callback: Callable[[EventContext, StoredEvent], object],
    ) -> Callable[[EventContext, StoredEvent], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, StoredEvent], object],
    ) -> Callable[[EventContext, StoredEvent], object]:
        self.handle.on_delete(callback)
        return callback


class StoredSnapshotTable:
    """Table stored_snapshot: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[StoredSnapshot]:
        return cast(Iterator[StoredSnapshot], self.handle.iter())

    def filter_by_store(self, store: str) -> list[StoredSnapshot]:
        return cast(list[StoredSnapshot], self.handle.filter("store", store))

    def on_insert(
        self,
        callback: Callable[[EventContext, StoredSnapshot], object],
    ) -> Callable[[EventContext, StoredSnapshot], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, StoredSnapshot], object],
    ) -> Callable[[EventContext, StoredSnapshot], object]:
        self.handle.on_delete(callback)
        return callback


class StreamTable:
    """Table stream: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[Stream]:
        return cast(Iterator[Stream], self.handle.iter())

    def find_by_message_id(self, message_id: int) -> Stream | None:
        return cast("Stream | None", self.handle.find("message_id", message_id))

    def filter_by_author(self, author: Identity) -> list[Stream]:
        return cast(list[Stream], self.handle.filter("author", author))

    def filter_by_conversation_id(self, conversation_id: int) -> list[Stream]:
        return cast(list[Stream], self.handle.filter("conversation_id", conversation_id))

    def filter_by_conversation_owner(self, conversation_owner: Identity) -> list[Stream]:
        return cast(list[Stream], self.handle.filter("conversation_owner", conversation_owner))

    def on_insert(
        self,
        callback: Callable[[EventContext, Stream], object],
    ) -> Callable[[EventContext, Stream], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, Stream], object],
    ) -> Callable[[EventContext, Stream], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, Stream, Stream], object],
    ) -> Callable[[EventContext, Stream, Stream], object]:
        self.handle.on_update(callback)
        return callback


class StreamChunkTable:
    """Table stream_chunk: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[StreamChunk]:
        return cast(Iterator[StreamChunk], self.handle.iter())

    def find_by_id(self, id: int) -> StreamChunk | None:
        return cast("StreamChunk | None", self.handle.find("id", id))

    def filter_by_author(self, author: Identity) -> list[StreamChunk]:
        return cast(list[StreamChunk], self.handle.filter("author", author))

    def filter_by_conversation_owner(self, conversation_owner: Identity) -> list[StreamChunk]:
        return cast(list[StreamChunk], self.handle.filter("conversation_owner", conversation_owner))

    def filter_by_message_id(self, message_id: int) -> list[StreamChunk]:
        return cast(list[StreamChunk], self.handle.filter("message_id", message_id))

    def on_insert(
        self,
        callback: Callable[[EventContext, StreamChunk], object],
    ) -> Callable[[EventContext, StreamChunk], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, StreamChunk], object],
    ) -> Callable[[EventContext, StreamChunk], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, StreamChunk, StreamChunk], object],
    ) -> Callable[[EventContext, StreamChunk, StreamChunk], object]:
        self.handle.on_update(callback)
        return callback


class TaskTable:
    """Table task: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[Task]:
        return cast(Iterator[Task], self.handle.iter())

    def find_by_id(self, id: int) -> Task | None:
        return cast("Task | None", self.handle.find("id", id))

    def filter_by_parent_id(self, parent_id: int) -> list[Task]:
        return cast(list[Task], self.handle.filter("parent_id", parent_id))

    def filter_by_ticket(self, ticket: int) -> list[Task]:
        return cast(list[Task], self.handle.filter("ticket", ticket))

    def on_insert(
        self,
        callback: Callable[[EventContext, Task], object],
    ) -> Callable[[EventContext, Task], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, Task], object],
    ) -> Callable[[EventContext, Task], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, Task, Task], object],
    ) -> Callable[[EventContext, Task, Task], object]:
        self.handle.on_update(callback)
        return callback


class WorkflowTable:
    """Table workflow: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[Workflow]:
        return cast(Iterator[Workflow], self.handle.iter())

    def find_by_id(self, id: int) -> Workflow | None:
        return cast("Workflow | None", self.handle.find("id", id))

    def filter_by_ticket(self, ticket: int) -> list[Workflow]:
        return cast(list[Workflow], self.handle.filter("ticket", ticket))

    def on_insert(
        self,
        callback: Callable[[EventContext, Workflow], object],
    ) -> Callable[[EventContext, Workflow], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, Workflow], object],
    ) -> Callable[[EventContext, Workflow], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, Workflow, Workflow], object],
    ) -> Callable[[EventContext, Workflow, Workflow], object]:
        self.handle.on_update(callback)
        return callback


class WorkflowStepTable:
    """Table workflow_step: the rows this client has, and their callbacks."""

    def __init__(self, handle: TableHandle) -> None:
        self.handle = handle

    def __len__(self) -> int:
        return self.handle.count()

    def __iter__(self) -> Iterator[WorkflowStep]:
        return cast(Iterator[WorkflowStep], self.handle.iter())

    def find_by_id(self, id: int) -> WorkflowStep | None:
        return cast("WorkflowStep | None", self.handle.find("id", id))

    def filter_by_workflow_id(self, workflow_id: int) -> list[WorkflowStep]:
        return cast(list[WorkflowStep], self.handle.filter("workflow_id", workflow_id))

    def on_insert(
        self,
        callback: Callable[[EventContext, WorkflowStep], object],
    ) -> Callable[[EventContext, WorkflowStep], object]:
        self.handle.on_insert(callback)
        return callback

    def on_delete(
        self,
        callback: Callable[[EventContext, WorkflowStep], object],
    ) -> Callable[[EventContext, WorkflowStep], object]:
        self.handle.on_delete(callback)
        return callback

    def on_update(
        self,
        callback: Callable[[EventContext, WorkflowStep, WorkflowStep], object],
    ) -> Callable[[EventContext, WorkflowStep, WorkflowStep], object]:
        self.handle.on_update(callback)
        return callback


class Tables:
    """The tables of a connection, typed."""

    def __init__(self, conn: DbConnection | ThreadedConnection) -> None:
        self.agent = AgentTable(conn.db["agent"])
        self.agent_capability = AgentCapabilityTable(conn.db["agent_capability"])
        self.agent_state = AgentStateTable(conn.db["agent_state"])
        self.call_receipt = CallReceiptTable(conn.db["call_receipt"])
        self.call_receipt_pruning = CallReceiptPruningTable(conn.db["call_receipt_pruning"])
        self.chunk = ChunkTable(conn.db["chunk"])
        self.chunk_set = ChunkSetTable(conn.db["chunk_set"])
        self.conversation = ConversationTable(conn.db["conversation"])
        self.conversation_participant = ConversationParticipantTable(
            conn.db["conversation_participant"]
        )
        self.delegation_rule = DelegationRuleTable(conn.db["delegation_rule"])
        self.document = DocumentTable(conn.db["document"])
        self.event_log = EventLogTable(conn.db["event_log"])
        self.event_run = EventRunTable(conn.db["event_run"])
        self.event_store_member = EventStoreMemberTable(conn.db["event_store_member"])
        self.event_tracking = EventTrackingTable(conn.db["event_tracking"])
        self.inbox_message = InboxMessageTable(conn.db["inbox_message"])
        self.lease_timer = LeaseTimerTable(conn.db["lease_timer"])
        self.message = MessageTable(conn.db["message"])
        self.message_cleanup = MessageCleanupTable(conn.db["message_cleanup"])
        self.model_call = ModelCallTable(conn.db["model_call"])
        self.provider = ProviderTable(conn.db["provider"])
        self.quota_usage = QuotaUsageTable(conn.db["quota_usage"])
        self.retry_timer = RetryTimerTable(conn.db["retry_timer"])
        self.session = SessionTable(conn.db["session"])
        self.spend = SpendTable(conn.db["spend"])
        self.stored_event = StoredEventTable(conn.db["stored_event"])
        self.stored_snapshot = StoredSnapshotTable(conn.db["stored_snapshot"])
        self.stream = StreamTable(conn.db["stream"])
        self.stream_chunk = StreamChunkTable(conn.db["stream_chunk"])
        self.task = TaskTable(conn.db["task"])
        self.workflow = WorkflowTable(conn.db["workflow"])
        self.workflow_step = WorkflowStepTable(conn.db["workflow_step"])


class Reducers:
    """The reducers of the module, typed (each returns a future of its outcome)."""

    def __init__(self, conn: DbConnection) -> None:
        self.conn = conn

    def acknowledge_agent_message(self, message_id: int) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("acknowledge_agent_message", message_id)

    def add_chunks(
        self,
        document_id: int,
        chunks: Sequence[NewChunk],
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("add_chunks", document_id, chunks)

    def admit_participant(
        self,
        conversation_id: int,
        identity: Identity,
        roles: Sequence[str],
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("admit_participant", conversation_id, identity, roles)

    def allow_delegation(
        self,
        from_agent: int,
        to_capability: str,
        to_agent: int,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("allow_delegation", from_agent, to_capability, to_agent)

    def append_chunk(
        self,
        message_id: int,
        sequence: int,
        text: str,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("append_chunk", message_id, sequence, text)

    def append_events(
        self,
        store: str,
        events: Sequence[NewEvent],
        tracking: NewTracking | None,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("append_events", store, events, tracking)

    def append_message(self, id: int, delta: str) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("append_message", id, delta)

    def append_runs(
        self,
        store: str,
        runs: Sequence[NewRun],
        tracking: NewTracking | None,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("append_runs", store, runs, tracking)

    def append_snapshots(
        self,
        store: str,
        snapshots: Sequence[NewEvent],
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("append_snapshots", store, snapshots)

    def begin_chunks(
        self,
        document_id: int,
        model: str,
        dimension: int,
        fingerprint: str,
        expected: int,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer(
            "begin_chunks", document_id, model, dimension, fingerprint, expected
        )

    def begin_model_call(
        self,
        message_id: int,
        agent_id: int,
        provider: str,
        model: str,
        tokens_in: int,
        estimate_nano_usd: int,
        resumed_from: int,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer(
            "begin_model_call",
            message_id,
            agent_id,
            provider,
            model,
            tokens_in,
            estimate_nano_usd,
            resumed_from,
        )

    def cancel_stream(self, message_id: int, reason: str) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("cancel_stream", message_id, reason)

    def cancel_task(self, task_id: int, reason: str) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("cancel_task", task_id, reason)

    def cancel_workflow(self, workflow_id: int, reason: str) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("cancel_workflow", workflow_id, reason)

    def claim_task(self, agent_id: int) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("claim_task", agent_id)

    def complete_task(
        self,
        task_id: int,
        epoch: int,
        result: bytes,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("complete_task", task_id, epoch, result)

    def create_conversation(self, title: str) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("create_conversation", title)

    def create_document(
        self,
        title: str,
        content: str,
        metadata: bytes,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("create_document", title, content, metadata)

    def create_private_conversation(self, title: str) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("create_private_conversation", title)

    def create_private_document(
        self,
        title: str,
        content: str,
        metadata: bytes,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("create_private_document", title, content, metadata)

    def delete_agent(self, id: int) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("delete_agent", id)

    def delete_conversation(self, id: int) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("delete_conversation", id)

    def delete_document(self, id: int) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("delete_document", id)

    def delete_message(self, id: int) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("delete_message", id)

    def edit_message(self, id: int, content: str) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("edit_message", id, content)

    def end_model_call(
        self,
        call_id: int,
        outcome: str,
        tokens_in: int,
        tokens_out: int,
        cost_nano_usd: int,
        first_token_ms: int | None,
        duration_ms: int,
        error: str,
        cooldown_ms: int,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer(
            "end_model_call",
            call_id,
            outcome,
            tokens_in,
            tokens_out,
            cost_nano_usd,
            first_token_ms,
            duration_ms,
            error,
            cooldown_ms,
        )

    def fail_stream(self, message_id: int, error: str) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("fail_stream", message_id, error)

    def fail_task(
        self,
        task_id: int,
        epoch: int,
        error: str,
        retry: bool,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("fail_task", task_id, epoch, error, retry)

    def finish_stream(
        self,
        message_id: int,
        provider: str,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer(
            "finish_stream", message_id, provider, model, prompt_tokens, completion_tokens
        )

    def forget_agent_message(self, message_id: int) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("forget_agent_message", message_id)

    def forget_model_call(self, call_id: int) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("forget_model_call", call_id)

    def forget_provider(self, name: str) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("forget_provider", name)

    def forget_task(self, task_id: int) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("forget_task", task_id)

    def forget_workflow(self, workflow_id: int) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("forget_workflow", workflow_id)

    def heartbeat_task(self, task_id: int, epoch: int) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("heartbeat_task", task_id, epoch)

    def open_store(self, store: str) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("open_store", store)

    def post_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("post_message", conversation_id, role, content)

    def register_agent(self, name: str, role: str, state: bytes) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("register_agent", name, role, state)

    def remove_participant(
        self,
        conversation_id: int,
        identity: Identity,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("remove_participant", conversation_id, identity)

    def remove_store_member(self, store: str, identity: Identity) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("remove_store_member", store, identity)

    def rename_conversation(self, id: int, title: str) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("rename_conversation", id, title)

    def revoke_delegation(self, rule_id: int) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("revoke_delegation", rule_id)

    def send_agent_message(
        self,
        ticket: int,
        from_agent: int,
        to_agent: int,
        body: bytes,
        reply_to: int,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer(
            "send_agent_message", ticket, from_agent, to_agent, body, reply_to
        )

    def set_agent_capabilities(
        self,
        agent_id: int,
        capabilities: Sequence[str],
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("set_agent_capabilities", agent_id, capabilities)

    def set_agent_status(self, id: int, status: str) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("set_agent_status", id, status)

    def set_budget(
        self,
        agent_id: int,
        budget_nano_usd: int | None,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("set_budget", agent_id, budget_nano_usd)

    def set_store_member(
        self,
        store: str,
        identity: Identity,
        writer: bool,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("set_store_member", store, identity, writer)

    def start_stream(
        self,
        message_id: int,
        agent_id: int,
        provider: str,
        model: str,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("start_stream", message_id, agent_id, provider, model)

    def submit_task(
        self,
        ticket: int,
        spec: TaskSpec,
        from_agent: int,
        parent_id: int,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("submit_task", ticket, spec, from_agent, parent_id)

    def submit_workflow(
        self,
        ticket: int,
        name: str,
        from_agent: int,
        steps: Sequence[NewStep],
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("submit_workflow", ticket, name, from_agent, steps)

    def update_agent(
        self,
        id: int,
        name: str,
        role: str,
        status: str,
        state: bytes,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("update_agent", id, name, role, status, state)

    def update_document(
        self,
        id: int,
        title: str,
        content: str,
        metadata: bytes,
    ) -> asyncio.Future[ReducerEvent]:
        return self.conn.call_reducer("update_document", id, title, content, metadata)


class ThreadedReducers:
    """The reducers of the module, typed (blocking until applied)."""

    def __init__(self, conn: ThreadedConnection) -> None:
        self.conn = conn

    def acknowledge_agent_message(self, message_id: int) -> ReducerEvent:
        return self.conn.call_reducer("acknowledge_agent_message", message_id)

    def add_chunks(self, document_id: int, chunks: Sequence[NewChunk]) -> ReducerEvent:
        return self.conn.call_reducer("add_chunks", document_id, chunks)

    def admit_participant(
        self,
        conversation_id: int,
        identity: Identity,
        roles: Sequence[str],
    ) -> ReducerEvent:
        return self.conn.call_reducer("admit_participant", conversation_id, identity, roles)

    def allow_delegation(self, from_agent: int, to_capability: str, to_agent: int) -> ReducerEvent:
        return self.conn.call_reducer("allow_delegation", from_agent, to_capability, to_agent)

    def append_chunk(self, message_id: int, sequence: int, text: str) -> ReducerEvent:
        return self.conn.call_reducer("append_chunk", message_id, sequence, text)

    def append_events(
        self,
        store: str,
        events: Sequence[NewEvent],
        tracking: NewTracking | None,
    ) -> ReducerEvent:
        return self.conn.call_reducer("append_events", store, events, tracking)

    def append_message(self, id: int, delta: str) -> ReducerEvent:
        return self.conn.call_reducer("append_message", id, delta)

    def append_runs(
        self,
        store: str,
        runs: Sequence[NewRun],
        tracking: NewTracking | None,
    ) -> ReducerEvent:
        return self.conn.call_reducer("append_runs", store, runs, tracking)

    def append_snapshots(self, store: str, snapshots: Sequence[NewEvent]) -> ReducerEvent:
        return self.conn.call_reducer("append_snapshots", store, snapshots)

    def begin_chunks(
        self,
        document_id: int,
        model: str,
        dimension: int,
        fingerprint: str,
        expected: int,
    ) -> ReducerEvent:
        return self.conn.call_reducer(
            "begin_chunks", document_id, model, dimension, fingerprint, expected
        )

    def begin_model_call(
        self,
        message_id: int,
        agent_id: int,
        provider: str,
        model: str,
        tokens_in: int,
        estimate_nano_usd: int,
        resumed_from: int,
    ) -> ReducerEvent:
        return self.conn.call_reducer(
            "begin_model_call",
            message_id,
            agent_id,
            provider,
            model,
            tokens_in,
            estimate_nano_usd,
            resumed_from,
        )

    def cancel_stream(self, message_id: int, reason: str) -> ReducerEvent:
        return self.conn.call_reducer("cancel_stream", message_id, reason)

    def cancel_task(self, task_id: int, reason: str) -> ReducerEvent:
        return self.conn.call_reducer("cancel_task", task_id, reason)

    def cancel_workflow(self, workflow_id: int, reason: str) -> ReducerEvent:
        return self.conn.call_reducer("cancel_workflow", workflow_id, reason)

    def claim_task(self, agent_id: int) -> ReducerEvent:
        return self.conn.call_reducer("claim_task", agent_id)

    def complete_task(self, task_id: int, epoch: int, result: bytes) -> ReducerEvent:
        return self.conn.call_reducer("complete_task", task_id, epoch, result)

    def create_conversation(self, title: str) -> ReducerEvent:
        return self.conn.call_reducer("create_conversation", title)

    def create_document(self, title: str, content: str, metadata: bytes) -> ReducerEvent:
        return self.conn.call_reducer("create_document", title, content, metadata)

    def create_private_conversation(self, title: str) -> ReducerEvent:
        return self.conn.call_reducer("create_private_conversation", title)

    def create_private_document(self, title: str, content: str, metadata: bytes) -> ReducerEvent:
        return self.conn.call_reducer("create_private_document", title, content, metadata)

    def delete_agent(self, id: int) -> ReducerEvent:
        return self.conn.call_reducer("delete_agent", id)

    def delete_conversation(self, id: int) -> ReducerEvent:
        return self.conn.call_reducer("delete_conversation", id)

    def delete_document(self, id: int) -> ReducerEvent:
        return self.conn.call_reducer("delete_document", id)

    def delete_message(self, id: int) -> ReducerEvent:
        return self.conn.call_reducer("delete_message", id)

    def edit_message(self, id: int, content: str) -> ReducerEvent:
        return self.conn.call_reducer("edit_message", id, content)

    def end_model_call(
        self,
        call_id: int,
        outcome: str,
        tokens_in: int,
        tokens_out: int,
        cost_nano_usd: int,
        first_token_ms: int | None,
        duration_ms: int,
        error: str,
        cooldown_ms: int,
    ) -> ReducerEvent:
        return self.conn.call_reducer(
            "end_model_call",
            call_id,
            outcome,
            tokens_in,
            tokens_out,
            cost_nano_usd,
            first_token_ms,
            duration_ms,
            error,
            cooldown_ms,
        )

    def fail_stream(self, message_id: int, error: str) -> ReducerEvent:
        return self.conn.call_reducer("fail_stream", message_id, error)

    def fail_task(self, task_id: int, epoch: int, error: str, retry: bool) -> ReducerEvent:
        return self.conn.call_reducer("fail_task", task_id, epoch, error, retry)

    def finish_stream(
        self,
        message_id: int,
        provider: str,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> ReducerEvent:
        return self.conn.call_reducer(
            "finish_stream", message_id, provider, model, prompt_tokens, completion_tokens
        )

    def forget_agent_message(self, message_id: int) -> ReducerEvent:
        return self.conn.call_reducer("forget_agent_message", message_id)

    def forget_model_call(self, call_id: int) -> ReducerEvent:
        return self.conn.call_reducer("forget_model_call", call_id)

    def forget_provider(self, name: str) -> ReducerEvent:
        return self.conn.call_reducer("forget_provider", name)

    def forget_task(self, task_id: int) -> ReducerEvent:
        return self.conn.call_reducer("forget_task", task_id)

    def forget_workflow(self, workflow_id: int) -> ReducerEvent:
        return self.conn.call_reducer("forget_workflow", workflow_id)

    def heartbeat_task(self, task_id: int, epoch: int) -> ReducerEvent:
        return self.conn.call_reducer("heartbeat_task", task_id, epoch)

    def open_store(self, store: str) -> ReducerEvent:
        return self.conn.call_reducer("open_store", store)

    def post_message(self, conversation_id: int, role: str, content: str) -> ReducerEvent:
        return self.conn.call_reducer("post_message", conversation_id, role, content)

    def register_agent(self, name: str, role: str, state: bytes) -> ReducerEvent:
        return self.conn.call_reducer("register_agent", name, role, state)

    def remove_participant(self, conversation_id: int, identity: Identity) -> ReducerEvent:
        return self.conn.call_reducer("remove_participant", conversation_id, identity)

    def remove_store_member(self, store: str, identity: Identity) -> ReducerEvent:
        return self.conn.call_reducer("remove_store_member", store, identity)

    def rename_conversation(self, id: int, title: str) -> ReducerEvent:
        return self.conn.call_reducer("rename_conversation", id, title)

    def revoke_delegation(self, rule_id: int) -> ReducerEvent:
        return self.conn.call_reducer("revoke_delegation", rule_id)

    def send_agent_message(
        self,
        ticket: int,
        from_agent: int,
        to_agent: int,
        body: bytes,
        reply_to: int,
    ) -> ReducerEvent:
        return self.conn.call_reducer(
            "send_agent_message", ticket, from_agent, to_agent, body, reply_to
        )

    def set_agent_capabilities(self, agent_id: int, capabilities: Sequence[str]) -> ReducerEvent:
        return self.conn.call_reducer("set_agent_capabilities", agent_id, capabilities)

    def set_agent_status(self, id: int, status: str) -> ReducerEvent:
        return self.conn.call_reducer("set_agent_status", id, status)

    def set_budget(self, agent_id: int, budget_nano_usd: int | None) -> ReducerEvent:
        return self.conn.call_reducer("set_budget", agent_id, budget_nano_usd)

    def set_store_member(self, store: str, identity: Identity, writer: bool) -> ReducerEvent:
        return self.conn.call_reducer("set_store_member", store, identity, writer)

    def start_stream(
        self,
        message_id: int,
        agent_id: int,
        provider: str,
        model: str,
    ) -> ReducerEvent:
        return self.conn.call_reducer("start_stream", message_id, agent_id, provider, model)

    def submit_task(
        self,
        ticket: int,
        spec: TaskSpec,
        from_agent: int,
        parent_id: int,
    ) -> ReducerEvent:
        return self.conn.call_reducer("submit_task", ticket, spec, from_agent, parent_id)

    def submit_workflow(
        self,
        ticket: int,
        name: str,
        from_agent: int,
        steps: Sequence[NewStep],
    ) -> ReducerEvent:
        return self.conn.call_reducer("submit_workflow", ticket, name, from_agent, steps)

    def update_agent(
        self,
        id: int,
        name: str,
        role: str,
        status: str,
        state: bytes,
    ) -> ReducerEvent:
        return self.conn.call_reducer("update_agent", id, name, role, status, state)

    def update_document(self, id: int, title: str, content: str, metadata: bytes) -> ReducerEvent:
        return self.conn.call_reducer("update_document", id, title, content, metadata)


class Module:
    """A DbConnection's tables and reducers, typed: ``Module(conn).db.<table>``."""

    def __init__(self, conn: DbConnection) -> None:
        self.conn = conn
        self.db = Tables(conn)
        self.reducers = Reducers(conn)


class ThreadedModule:
    """A ThreadedConnection's tables and reducers, typed (reducer calls block)."""

    def __init__(self, conn: ThreadedConnection) -> None:
        self.conn = conn
        self.db = Tables(conn)
        self.reducers = ThreadedReducers(conn)
