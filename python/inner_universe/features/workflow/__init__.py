"""Workflows: DAGs of steps, stored and run across processes, or run locally.

Declare a :class:`Workflow` in Python; :func:`submit_workflow` stores it as tasks
whose readiness the module keeps (server-module/src/workflows.rs), and any worker
process takes the ready steps. :class:`LocalExecutor` runs in-process steps in
dependency order with bounded parallelism. Cycles are rejected before anything
runs or is stored, naming the cycle.
"""

from .dag import Step, Workflow, topological_order
from .errors import StepFailed, WorkflowCycleError, WorkflowError, WorkflowFailed
from .local import LocalExecutor, StepFunction
from .remote import StepProgress, WorkflowRun, forget_workflow, submit_workflow

__all__ = [
    "LocalExecutor",
    "Step",
    "StepFailed",
    "StepFunction",
    "StepProgress",
    "Workflow",
    "WorkflowCycleError",
    "WorkflowError",
    "WorkflowFailed",
    "WorkflowRun",
    "forget_workflow",
    "submit_workflow",
    "topological_order",
]
