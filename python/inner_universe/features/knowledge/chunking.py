"""Splitting a document into overlapping passages that follow its structure.

The splitter cuts at the largest boundary that keeps a chunk within ``size``
characters: a Markdown heading always starts a new chunk (and stays with the text
under it), then blank-line blocks (fenced code blocks stay whole where they fit),
then sentences, then lines of a sentence too long (code, tables), and only a line
longer than ``size`` is cut at a space. Consecutive chunks within a section share
up to ``overlap`` characters of whole sentences, so a passage cut in two is still
found whole in one of them.

Every chunk is exactly ``text[start:end]`` (character offsets), which the module
checks when the chunk is stored, so a search result's offsets always point at
the words it shows.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import EmptyDocumentError
from .formats import MARKDOWN, check_format

__all__ = ["MAX_CHUNK_CHARS", "ChunkerConfig", "Passage", "split"]

MAX_CHUNK_CHARS = 4096
"""The module stores at most 16 KiB of text per chunk: 4096 characters of up to 4 bytes."""

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_NEWLINE = re.compile(r"\n")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+(?=\S)")
_HEADING = re.compile(r"#{1,6}\s")
_FENCE = re.compile(r"^(```|~~~)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class ChunkerConfig:
    """How big chunks are and how much consecutive chunks share, in characters."""

    size: int = 800
    overlap: int = 100

    def __post_init__(self) -> None:
        if not 20 <= self.size <= MAX_CHUNK_CHARS:
            raise ValueError(f"chunk size is {self.size}; it must be 20 to {MAX_CHUNK_CHARS}")
        if not 0 <= self.overlap < self.size // 2:
            raise ValueError(
                f"chunk overlap is {self.overlap}; it must be 0 to less than half the size"
            )


@dataclass(frozen=True, slots=True)
class Passage:
    """One chunk of a document: ``text == document[start:end]``."""

    position: int
    start: int
    end: int
    text: str
    heading: str = ""
    """The Markdown heading the passage falls under ("" before any, and in plain text)."""


@dataclass(frozen=True, slots=True)
class _Unit:
    """The smallest piece the splitter moves: a sentence (or a cut of a long one)."""

    start: int
    end: int
    section: bool  # starts a new section (a Markdown heading)


def split(text: str, fmt: str = MARKDOWN, config: ChunkerConfig | None = None) -> list[Passage]:
    """Split ``text`` (of format ``fmt``) into passages; raises on a text with no words."""
    check_format(fmt)
    config = config or ChunkerConfig()
    if not text.strip():
        raise EmptyDocumentError("the document is empty (no text besides whitespace)")
    markdown = fmt == MARKDOWN
    units = list(_units(text, markdown, config.size))
    headings = [(u.start, text[u.start : u.end]) for u in units if u.section] if markdown else []
    starts = [start for start, _ in headings]
    passages = []
    for position, (start, end) in enumerate(_pack(units, config)):
        under = bisect.bisect_right(starts, start) - 1
        heading = headings[under][1].lstrip("#").strip() if under >= 0 else ""
        passages.append(Passage(position, start, end, text[start:end], heading))
    return passages


def _units(text: str, markdown: bool, size: int) -> Iterator[_Unit]:
    for start, end in _blocks(text, markdown):
        section = markdown and _HEADING.match(text, start) is not None
        if end - start <= size:
            yield _Unit(start, end, section)
            continue
        first = True
        for s_start, s_end in _pieces(text, start, end, _SENTENCE_END):
            lines = _pieces(text, s_start, s_end, _NEWLINE) if s_end - s_start > size else []
            for l_start, l_end in lines or [(s_start, s_end)]:
                for cut_start, cut_end in _cut(text, l_start, l_end, size):
                    yield _Unit(cut_start, cut_end, section and first)
                    first = False


def _blocks(text: str, markdown: bool) -> Iterator[tuple[int, int]]:
    """Blank-line separated blocks; in Markdown, a fenced code block is one block."""
    fenced = _fenced_ranges(text) if markdown else []
    start = 0
    for gap in _BLANK_LINE.finditer(text):
        if any(a < gap.start() < b for a, b in fenced):
            continue
        yield from _trimmed(text, start, gap.start())
        start = gap.end()
    yield from _trimmed(text, start, len(text))


def _fenced_ranges(text: str) -> list[tuple[int, int]]:
    marks = [m.start() for m in _FENCE.finditer(text)]
    return [(marks[i], marks[i + 1]) for i in range(0, len(marks) - 1, 2)]


def _pieces(
    text: str, start: int, end: int, boundary: re.Pattern[str]
) -> Iterator[tuple[int, int]]:
    """The trimmed pieces of ``text[start:end]`` between matches of ``boundary``."""
    at = start
    for match in boundary.finditer(text, start, end):
        yield from _trimmed(text, at, match.start())
        at = match.end()
    yield from _trimmed(text, at, end)


def _trimmed(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` without surrounding whitespace, or nothing if it is blank."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        yield start, end


def _cut(text: str, start: int, end: int, size: int) -> Iterator[tuple[int, int]]:
    """A sentence longer than ``size`` cut at the last space that fits (or hard)."""
    while end - start > size:
        space = text.rfind(" ", start + size // 2, start + size)
        stop = space if space > start else start + size
        yield from _trimmed(text, start, stop)
        start = stop
        while start < end and text[start].isspace():
            start += 1
    yield from _trimmed(text, start, end)


def _pack(units: list[_Unit], config: ChunkerConfig) -> Iterator[tuple[int, int]]:
    """Greedily group units into chunks of at most ``size``, with sentence overlap."""
    chunk: list[_Unit] = []
    for unit in units:
        heading_only = all(u.section for u in chunk)
        breaks_section = unit.section and not heading_only
        if chunk and (breaks_section or unit.end - chunk[0].start > config.size):
            yield chunk[0].start, chunk[-1].end
            chunk = [] if breaks_section else _overlap(chunk, unit, config)
        chunk.append(unit)
    if chunk:
        yield chunk[0].start, chunk[-1].end


def _overlap(previous: list[_Unit], unit: _Unit, config: ChunkerConfig) -> list[_Unit]:
    """The trailing units of ``previous`` to repeat before ``unit`` (never all of them)."""
    end = previous[-1].end
    kept: list[_Unit] = []
    for candidate in reversed(previous[1:]):
        if end - candidate.start > config.overlap or unit.end - candidate.start > config.size:
            break
        kept.insert(0, candidate)
    return kept
