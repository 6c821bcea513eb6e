"""Agent delegation: durable tasks with leases and fencing, workers, inboxes.

Tasks live in the module's ``task`` table (server-module/src/tasks.rs). A
:class:`Worker` takes the tasks its agent can do as they appear, heartbeats while
its async handler runs, and reports with the claim's epoch; :func:`delegate`
hands work to a capability or an agent and returns the result. Agents message
each other through their :class:`Inbox`. Each worker's state transitions are
recorded in the TemporalStore (:class:`AgentHistory`).
"""

from .board import TaskBoard
from .delegate import allow_delegation, cancel, delegate, forget, result_of, submit
from .errors import (
    DelegationError,
    DelegationNotAllowed,
    HopLimitExceeded,
    StaleEpoch,
    TaskCancelled,
    TaskFailed,
    TaskRefused,
)
from .history import AgentHistory, AgentState, Transition
from .inbox import Inbox, Message
from .retention import forget_finished
from .service import Tasks
from .worker import Handler, TaskContext, Worker

__all__ = [
    "AgentHistory",
    "AgentState",
    "DelegationError",
    "DelegationNotAllowed",
    "Handler",
    "HopLimitExceeded",
    "Inbox",
    "Message",
    "StaleEpoch",
    "TaskBoard",
    "TaskCancelled",
    "TaskContext",
    "TaskFailed",
    "TaskRefused",
    "Tasks",
    "Transition",
    "Worker",
    "allow_delegation",
    "cancel",
    "delegate",
    "forget",
    "forget_finished",
    "result_of",
    "submit",
]
