"""``docs add`` and ``docs search``: the knowledge feature from a shell.

``add`` reads every file before it connects, so a missing or unreadable file stores
nothing; ``search`` asks the Universe's knowledge service (a :class:`LiveIndex` of
the documents this identity may read) and prints the best chunks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.text import Text

from ..app import Universe
from .shell import err, fail, friendly_errors, out, run_action

if TYPE_CHECKING:
    from ..features.knowledge import IngestProgress, IngestResult, SearchHit

__all__ = ["added_line", "app", "hit_text"]

MODES = ("vector", "lexical", "hybrid")

app = typer.Typer(help="Add documents to the knowledge base and search them.")


@dataclass(frozen=True)
class _File:
    """A file read and ready to ingest: its source is its absolute path."""

    path: Path
    text: str
    fmt: str


def _require_extra() -> None:
    """Fail with the install command if the knowledge extra is missing."""
    try:
        from ..features import knowledge  # noqa: F401
    except ModuleNotFoundError as exc:
        missing = f"`docs` needs the knowledge extra ({exc.name} is missing)"
        raise fail(f"{missing}: pip install 'inner-universe[knowledge]'") from None


def _read(paths: list[Path]) -> list[_File]:
    from ..features.knowledge.formats import read_file

    files = []
    for path in paths:
        if not path.is_file():
            raise fail(f"{path}: no such file")
        text, fmt = read_file(path)
        files.append(_File(path.resolve(), text, fmt))
    return files


async def _add(
    universe: Universe, files: list[_File], private: bool, progress: Progress | None
) -> list[IngestResult]:
    overall = progress.add_task("documents", total=len(files)) if progress else None

    def report(step: IngestProgress) -> None:
        if progress is not None and overall is not None:
            progress.update(
                overall, description=f"{step.title}: {step.stage} {step.done}/{step.total}"
            )

    ingester = await universe.knowledge.ingester()
    ingester.progress = report
    results = []
    for file in files:
        results.append(
            await ingester.ingest(
                file.path.name, file.text, fmt=file.fmt, source=str(file.path), private=private
            )
        )
        if progress is not None and overall is not None:
            progress.advance(overall)
    return results


@app.command("add")
@friendly_errors
def add(
    paths: Annotated[list[Path], typer.Argument(help="Text or Markdown files.")],
    private: Annotated[
        bool, typer.Option("--private", help="Readable by this identity only.")
    ] = False,
) -> None:
    """Chunk, embed and store text and Markdown files (again only if they changed)."""
    _require_extra()
    files = _read(paths)
    if len(files) > 1:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=err, transient=True) as progress:
            results = run_action(_add, files, private, progress)
    else:
        results = run_action(_add, files, private, None)
    for file, result in zip(files, results, strict=True):
        out.print(added_line(file.path.name, result))


def added_line(name: str, result: IngestResult) -> str:
    """``added notes.md: document 3, 12 chunks`` (or ``unchanged …``)."""
    what = "added" if result.changed else "unchanged"
    return f"{what} {name}: document {result.document_id}, {result.chunks} chunks"


def hit_text(rank: int, hit: SearchHit) -> Text:
    """One search hit as a person reads it: where it comes from, then its text's start."""
    text = Text(
        f"[{rank}] {hit.title}, chunk {hit.position} "
        f"(characters {hit.start_char}-{hit.end_char}), score {hit.score:.4f}\n"
    )
    text.append("    " + " ".join(hit.text.split())[:300], style="dim")
    return text


def _hit_json(hit: SearchHit) -> dict[str, Any]:
    return {
        "chunk_id": hit.chunk_id,
        "document_id": hit.document_id,
        "title": hit.title,
        "position": hit.position,
        "start_char": hit.start_char,
        "end_char": hit.end_char,
        "score": hit.score,
        "vector_rank": hit.vector_rank,
        "lexical_rank": hit.lexical_rank,
        "text": hit.text,
    }


async def _search(universe: Universe, query: str, mode: Any, limit: int) -> list[SearchHit]:
    return await universe.knowledge.search(query, limit, mode=mode)


@app.command("search")
@friendly_errors
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in plain words.")],
    mode: Annotated[
        str, typer.Option("--mode", "-m", help="vector, lexical or hybrid.")
    ] = "hybrid",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many chunks.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per chunk.")] = False,
) -> None:
    """The chunks that best answer QUERY, best first, from the documents you may read."""
    if mode not in MODES:
        raise fail(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}", 2)
    if not query.strip():
        raise fail("the query is empty")
    _require_extra()
    hits = run_action(_search, query, mode, limit)
    for rank, hit in enumerate(hits, start=1):
        if as_json:
            out.print(json.dumps(_hit_json(hit)))
            continue
        out.print(hit_text(rank, hit))
    if not hits and not as_json:
        err.print("no matching chunks")
