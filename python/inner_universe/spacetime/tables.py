"""What ``conn.db`` and ``conn.reducers`` are: table handles with row callbacks, reducer methods.

A :class:`TableHandle` reads one table of the cache and keeps that table's
callback registries; :class:`Tables` gives attribute access to them. A
:class:`Reducers` object turns each reducer of the schema into a method that
checks its arguments and hands the call to the connection, with the
:class:`CallOptions` it was made with (``conn.reducers.with_options(...)``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

from ..errors import NoSuchNameError, SchemaError, UsageError
from .cache import TableCache, TableDiff

if TYPE_CHECKING:
    from .events import EventContext, ReducerEvent
    from .schema import CallKey, ModuleSchema

__all__ = [
    "DEFAULT_CALL_OPTIONS",
    "CallOptions",
    "ReducerCallback",
    "Reducers",
    "RowCallback",
    "TableHandle",
    "Tables",
    "TransactionCallback",
    "UpdateCallback",
    "run_callback",
]

log = logging.getLogger(__name__)

RowCallback = Callable[["EventContext", Any], object]
UpdateCallback = Callable[["EventContext", Any, Any], object]
TransactionCallback = Callable[["EventContext"], object]
ReducerCallback = Callable[["EventContext", "ReducerEvent"], object]

#: How long a reducer call may take, end to end, unless its options say otherwise.
DEFAULT_CALL_TIMEOUT = 30.0


def run_callback(what: str, callback: Callable[..., object], *args: Any) -> None:
    """Call a user callback; an exception is logged and never breaks the connection."""
    try:
        callback(*args)
    except Exception:
        log.exception("%s callback %r raised; continuing", what, callback)


@dataclass(frozen=True, slots=True)
class CallOptions:
    """How one reducer call is made.

    ``timeout``: seconds from the call until its outcome, including any time
    spent waiting for a reconnect (default 30). ``notify``: False sends the call
    with ``NO_SUCCESS_NOTIFY``: the server does not tell this client that it
    committed, and the call's future resolves to None once the server has
    handled it.
    """

    timeout: float = DEFAULT_CALL_TIMEOUT
    notify: bool = True

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise UsageError(
                f"a call timeout must be a positive number of seconds, not {self.timeout!r}"
            )


#: The options of a call made without ``with_options``.
DEFAULT_CALL_OPTIONS: Final = CallOptions()


class TableHandle:
    """One table of a connection: its cached rows and its row callbacks.

    ``on_insert(cb)`` / ``on_delete(cb)`` call ``cb(ctx, row)``; ``on_update(cb)``
    calls ``cb(ctx, old, new)`` (tables with a primary key only). Each returns the
    callback, so it can serve as a decorator, and ``remove_on_*`` undoes it.
    Reads are safe from any thread.
    """

    def __init__(self, cache: TableCache, watched: set[str] | None = None) -> None:
        self._cache = cache
        self._on_insert: list[RowCallback] = []
        self._on_delete: list[RowCallback] = []
        self._on_update: list[UpdateCallback] = []
        # Where this table's name is while it has a row callback (see Tables).
        self._watched = watched if watched is not None else set()

    @property
    def name(self) -> str:
        return self._cache.name

    def count(self) -> int:
        return self._cache.count()

    def __len__(self) -> int:
        return self._cache.count()

    def iter(self) -> Iterator[Any]:
        return self._cache.iter()

    def __iter__(self) -> Iterator[Any]:
        return self._cache.iter()

    def find(self, column: str, value: Any) -> Any | None:
        """The row whose unique ``column`` equals ``value``, or None."""
        return self._cache.find(column, value)

    def filter(self, column: str, value: Any) -> list[Any]:
        return self._cache.filter(column, value)

    def on_insert(self, callback: RowCallback) -> RowCallback:
        self._on_insert.append(callback)
        self._note_callbacks()
        return callback

    def on_delete(self, callback: RowCallback) -> RowCallback:
        self._on_delete.append(callback)
        self._note_callbacks()
        return callback

    def on_update(self, callback: UpdateCallback) -> UpdateCallback:
        if self._cache.schema.primary_key is None:
            raise SchemaError(f"table {self.name} has no primary key, so it has no updates")
        self._on_update.append(callback)
        self._note_callbacks()
        return callback

    def remove_on_insert(self, callback: RowCallback) -> None:
        _remove(self._on_insert, callback, f"{self.name}.on_insert")
        self._note_callbacks()

    def remove_on_delete(self, callback: RowCallback) -> None:
        _remove(self._on_delete, callback, f"{self.name}.on_delete")
        self._note_callbacks()

    def remove_on_update(self, callback: UpdateCallback) -> None:
        _remove(self._on_update, callback, f"{self.name}.on_update")
        self._note_callbacks()

    def has_callbacks(self) -> bool:
        """Whether any row callback is registered on this table."""
        return bool(self._on_insert or self._on_delete or self._on_update)

    def _note_callbacks(self) -> None:
        if self.has_callbacks():
            self._watched.add(self.name)
        else:
            self._watched.discard(self.name)

    def fire(self, ctx: EventContext, diff: TableDiff) -> None:
        """Run this table's callbacks for one applied change: deletes, updates, inserts."""
        # Each kind is skipped whole when it has no callback (nothing could register one
        # meanwhile): an initial subscription of many rows costs nothing here.
        if self._on_delete:
            for row in diff.deletes:
                for cb in list(self._on_delete):
                    run_callback(f"{self.name}.on_delete", cb, ctx, row)
        if self._on_update:
            for old, new in diff.updates:
                for ucb in list(self._on_update):
                    run_callback(f"{self.name}.on_update", ucb, ctx, old, new)
        if self._on_insert:
            for row in diff.inserts:
                for cb in list(self._on_insert):
                    run_callback(f"{self.name}.on_insert", cb, ctx, row)


def _remove(callbacks: list[Any], callback: Any, what: str) -> None:
    try:
        callbacks.remove(callback)
    except ValueError:
        raise UsageError(f"{callback!r} is not registered as {what}") from None


class Tables:
    """``conn.db``: attribute access to each table's :class:`TableHandle`."""

    def __init__(self, tables: dict[str, TableCache], watched: set[str] | None = None) -> None:
        # ``watched`` (the connection's) is kept holding the names of the tables with a row
        # callback, by their handles: the connection asks for every transaction whether a
        # changed table is among them. Not an attribute here: it would hide a table so named.
        self._handles = {name: TableHandle(table, watched) for name, table in tables.items()}

    def __getattr__(self, name: str) -> TableHandle:
        try:
            return self._handles[name]
        except KeyError:
            raise NoSuchNameError(
                f"no table named {name!r}; tables: {sorted(self._handles)}"
            ) from None

    def __getitem__(self, name: str) -> TableHandle:
        try:
            return self._handles[name]
        except KeyError:
            raise SchemaError(f"no table named {name!r}; tables: {sorted(self._handles)}") from None

    def __iter__(self) -> Iterator[TableHandle]:
        return iter(self._handles.values())


#: The connection's call: reducer name, options, positional and keyword arguments, call key.
CallFunction = Callable[[str, CallOptions, tuple[Any, ...], dict[str, Any], "CallKey | None"], Any]


class Reducers:
    """``conn.reducers``: each reducer of the module as a method, checked against the schema.

    ``conn.reducers.with_options(timeout=5, notify=False).x(...)`` makes the
    same calls with other :class:`CallOptions`. A method takes ``call_key=`` as
    ``call_reducer`` does. Each is made on its first use and kept as an
    attribute: later calls find it without ``__getattr__``.
    """

    def __init__(
        self, schema: ModuleSchema, call: CallFunction, options: CallOptions | None = None
    ) -> None:
        self._schema = schema
        self._call = call
        self._options = options or DEFAULT_CALL_OPTIONS

    def with_options(self, *, timeout: float | None = None, notify: bool | None = None) -> Reducers:
        """The same reducers, called with a different timeout or notification."""
        options = self._options
        if timeout is not None:
            options = replace(options, timeout=timeout)
        if notify is not None:
            options = replace(options, notify=notify)
        return Reducers(self._schema, self._call, options)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            reducer = self._schema.reducer(name)
        except SchemaError as exc:
            raise NoSuchNameError(str(exc)) from None
        submit, options, reducer_name = self._call, self._options, reducer.name

        def call(*args: Any, call_key: CallKey | None = None, **kwargs: Any) -> Any:
            return submit(reducer_name, options, args, kwargs, call_key)

        call.__name__ = reducer.name
        call.__doc__ = f"Call reducer {reducer.name}({', '.join(n for n, _ in reducer.params)})."
        setattr(self, name, call)
        return call
