"""Running the commands through typer's test runner, shared by the command tests."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from inner_universe.cli.commands import app
from tests.conftest import PublishedDatabase


def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    # A wide terminal, so that rows print whole.
    return CliRunner().invoke(app, list(args), input=input, env={"COLUMNS": "200", **(env or {})})


def on(
    db: PublishedDatabase, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> Result:
    return invoke("--uri", db.uri, "--database", db.name, *args, input=input, env=env)


def assert_one_line_error(result: Result, *fragments: str, code: int = 1) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]
