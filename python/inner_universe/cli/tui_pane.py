"""The terminal UI's pane base classes: a part of the screen kept by row changes.

The app (:mod:`inner_universe.cli.tui`) subscribes to the union of its panes'
:meth:`Pane.queries` (by default each of their ``TABLES`` whole) and hands each
committed change to the panes that named its table.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.console import RenderableType
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable

from ..spacetime.types import Identity
from .watching import Change

__all__ = ["Pane", "TablePane"]


class Pane(Vertical):
    """A part of the screen kept by row changes of the tables it names."""

    TABLES: ClassVar[tuple[str, ...]] = ()
    """The tables this pane shows; the app subscribes to :meth:`queries` over them."""
    ALL_TABLES: ClassVar[bool] = False
    """Shown every change of every subscribed table (as the activity log is)."""
    SIDE: ClassVar[bool] = False
    """In the narrow left column (else in the main area, side by side)."""
    LOWER: ClassVar[bool] = False
    """In the row under the main area, side by side (tasks, providers)."""
    TITLE: ClassVar[str] = ""

    identity: Identity | None = None
    """Who this UI connects as (set by the app before it subscribes), for panes that
    show their own identity's rows apart from others'."""

    def on_mount(self) -> None:
        self.border_title = self.TITLE

    def queries(self, me: Identity) -> tuple[str, ...]:
        """The rows of ``TABLES`` this pane shows to the identity ``me`` (by default all).

        A pane over a table that grows without bound narrows it here: a subscription's
        first rows arrive in one message, which the SDK refuses over 64 MiB.
        """
        return tuple(f"SELECT * FROM {table}" for table in self.TABLES)

    def reset(self) -> None:
        """Forget every row (a new connection is about to send them again)."""

    def apply(self, change: Change) -> None:
        """Show one committed change (or, with ``change.initial``, a subscribed row)."""


class TablePane(Pane):
    """A pane that is one DataTable, a row per table row, keyed by ``key(row)``."""

    COLUMNS: ClassVar[tuple[str, ...]] = ()
    WIDTHS: ClassVar[tuple[int | None, ...]] = ()
    """Fixed widths for the first columns, where the content's width is known (None: fit).

    A fixed width also keeps the header in step with the rows: DataTable re-measures
    fitted columns when the table next idles, and can paint its header once in between.
    """

    def compose(self) -> ComposeResult:
        table: DataTable[Any] = DataTable(cursor_type="row", zebra_stripes=True)
        widths = self.WIDTHS + (None,) * (len(self.COLUMNS) - len(self.WIDTHS))
        for label, width in zip(self.COLUMNS, widths, strict=True):
            table.add_column(label, width=width)
        yield table

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one(DataTable)

    def key(self, row: Any) -> str:
        raise NotImplementedError

    def cells(self, row: Any) -> tuple[RenderableType, ...]:
        raise NotImplementedError

    def row_key(self, table: str, row: Any) -> str:
        """The DataTable key of a row of ``table`` (panes over several tables override it)."""
        return self.key(row)

    def row_cells(self, table: str, row: Any) -> tuple[RenderableType, ...]:
        return self.cells(row)

    def reset(self) -> None:
        self.table.clear()

    def apply(self, change: Change) -> None:
        key = self.row_key(change.table, change.row)
        old_key = self.row_key(change.table, change.old) if change.old is not None else key
        if change.kind == "update" and old_key != key:
            self._remove(old_key)
        if change.kind == "delete":
            self._remove(key)
        else:
            self.show(key, self.row_cells(change.table, change.row))

    def show(self, key: str, cells: tuple[RenderableType, ...]) -> None:
        """Add the row ``key``, or update it where it is."""
        table = self.table
        if key in table.rows:
            for column, value in zip(table.columns, cells, strict=True):
                table.update_cell(key, column, value, update_width=True)
        else:
            table.add_row(*cells, key=key)

    def _remove(self, key: str) -> None:
        if key in self.table.rows:
            self.table.remove_row(key)
