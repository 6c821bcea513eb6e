"""Declaring DAGs: order, cycles named, unknown steps."""

from __future__ import annotations

import itertools

import pytest

from inner_universe.features.workflow import (
    Workflow,
    WorkflowCycleError,
    WorkflowError,
    topological_order,
)


def test_steps_come_after_the_steps_they_need() -> None:
    order = topological_order("w", {"d": ["b", "c"], "b": ["a"], "c": ["a"], "a": []})
    assert order[0] == "a" and order[-1] == "d"
    assert set(order[1:3]) == {"b", "c"}


def test_a_cycle_is_rejected_and_named() -> None:
    with pytest.raises(WorkflowCycleError) as error:
        topological_order("loopy", {"a": ["c"], "b": ["a"], "c": ["b"], "x": []})
    cycle = error.value.cycle
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert "workflow 'loopy' has a cycle: " in str(error.value)
    # Each name is followed by a step it needs.
    needs = {"a": "c", "b": "a", "c": "b"}
    assert all(needs[x] == y for x, y in itertools.pairwise(cycle))


def test_a_step_that_needs_itself_is_a_cycle() -> None:
    wf = Workflow("selfish")
    wf.step("a", "cap", needs=["a"])
    with pytest.raises(WorkflowCycleError, match="a -> a"):
        wf.ordered()


def test_unknown_dependencies_and_duplicate_steps_are_refused() -> None:
    wf = Workflow("w")
    wf.step("a", "cap", needs=["ghost"])
    with pytest.raises(WorkflowError, match="step 'a' needs 'ghost', which is not a step of it"):
        wf.ordered()
    with pytest.raises(WorkflowError, match="already has a step 'a'"):
        wf.step("a", "cap")
    with pytest.raises(WorkflowError, match="has no steps"):
        Workflow("empty").ordered()
