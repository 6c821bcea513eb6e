"""Which document formats ingestion reads, and how a file's format is recognised.

Plain text and Markdown are stored as they are (the chunker uses Markdown's
headings and blocks); a format is named explicitly or recognised by the file's
suffix. Anything else raises :class:`UnknownFormatError` before anything is stored.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UnknownFormatError

__all__ = ["FORMATS", "MARKDOWN", "TEXT", "check_format", "format_of", "read_file"]

TEXT = "text"
MARKDOWN = "markdown"

FORMATS: dict[str, tuple[str, ...]] = {
    TEXT: (".txt", ".text", ".log", ".rst"),
    MARKDOWN: (".md", ".markdown", ".mdown"),
}
"""Each format and the file suffixes that mean it."""


def check_format(name: str) -> str:
    """``name`` if it is a known format, else :class:`UnknownFormatError`."""
    if name not in FORMATS:
        raise UnknownFormatError(f"unknown document format {name!r}; known: {', '.join(FORMATS)}")
    return name


def format_of(path: str | Path) -> str:
    """The format a file's suffix stands for."""
    suffix = Path(path).suffix.lower()
    for name, suffixes in FORMATS.items():
        if suffix in suffixes:
            return name
    known = ", ".join(s for suffixes in FORMATS.values() for s in suffixes)
    raise UnknownFormatError(f"{path}: no reader for suffix {suffix or '(none)'!r}; known: {known}")


def read_file(path: str | Path) -> tuple[str, str]:
    """A file's text (UTF-8) and its format."""
    fmt = format_of(path)
    try:
        return Path(path).read_text(encoding="utf-8"), fmt
    except UnicodeDecodeError as exc:
        raise UnknownFormatError(f"{path} is not UTF-8 text: {exc}") from None
