"""The README's main job: the multi-process demo runs and its replicas agree."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_demo_runs_and_replicas_agree() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "inner_universe.demo"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all three replicas hold the same agents and messages" in done.stdout
    assert "The SDK first, then the NERV layer." in done.stdout
    assert "belongs to another identity" in done.stderr  # the refused oversteps
    assert "has not admitted you to post as 'system'" in done.stderr
    assert "chat act: as expected" in done.stdout  # features/chat/demo.py checks its own story
