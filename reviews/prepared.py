"""Reads of a fixed shape, compiled to SQL once per process: each call binds its values and runs the statement.

The feedback loop runs the same two dozen reads for every webhook event, and Django compiles each of them afresh:
building the queryset and turning it into SQL cost more CPU than PostgreSQL took to answer (issue 15: ~11 of ~33
ms per event). A `PreparedRead` is declared once, with a function that builds its queryset from named values; at
its first call on a database it builds that queryset with a distinct stand-in for each value, compiles it, and keeps
the SQL, where each stand-in landed among the parameters, and what turns a row into what the queryset would have
returned (model instances with what `select_related` joined, tuples, flat values or dicts). Later calls put their
values in those places and run the SQL through the connection's cursor (so the query counter, the debug cursor and
transactions see them as any other query).

Only fixed shapes qualify, and the first compile refuses anything else rather than guess: every value must land
exactly once among the parameters, as given (an `int` or a `str`; a list or a datetime changes the SQL or is
rewritten by the field), and compiled again from other stand-ins the SQL and the other parameters must not change
(`build` derived nothing from a value: `number + 10` would be frozen at the stand-in's); no `prefetch_related`, no
related manager's known objects, no `extra()`. Values that vary with each call are not constants in the SQL:
whatever `build` reads besides its arguments (the clock, a setting) is frozen at the first compile, so it must read
nothing else, nor branch on a value (`.none()` for an empty one): no compile can see that. A value the statement
cannot hold as Django would bind it (None, an integer beyond 64 bits) is answered by the queryset itself.
"""

from __future__ import annotations

import contextlib
import threading
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.db.models import Model, QuerySet
from django.db.models.query import (
    FlatValuesListIterable,
    ModelIterable,
    ValuesIterable,
    ValuesListIterable,
    get_related_populators,
)
from django.db.models.signals import post_save, pre_save

T = TypeVar("T")

# Stand-ins: within a 32-bit integer column's range (Django refuses an out-of-range lookup before compiling), and
# far from any id or count this project stores.
_INT_STAND_IN = 2_000_000_000
_INT64 = (-(2**63), 2**63 - 1)
_SUPPORTED = {
    ModelIterable: "models",
    ValuesListIterable: "tuples",
    FlatValuesListIterable: "flat",
    ValuesIterable: "dicts",
}


@dataclass(frozen=True)
class _Statement:
    sql: str
    params: tuple[Any, ...]
    slots: tuple[tuple[str, tuple[int, ...]], ...]  # (value name, its items' indexes among the parameters)
    for_update: bool
    col_count: int
    trim: bool  # the SQL selects more columns than the result holds (ordering by an expression)
    converters: tuple[tuple[int, tuple[Callable[..., Any], ...], Any], ...]
    shape: str
    names: tuple[str, ...]  # dicts' keys
    model: Any
    init_list: tuple[str, ...]
    annotations: tuple[tuple[str, int], ...]  # models': each annotation's attribute and its column, as Django sets them
    model_span: tuple[int, int]
    related_populators: tuple[Any, ...]


class PreparedRead(Generic[T]):
    """`build(**values)` → the queryset; `kinds` names each value's type: `int`, `str`, `list[int]` or `list[str]`.

    A list (for `__in`) changes the SQL with its length: a statement is kept per length up to `LIST_MAX`; a longer
    or empty list runs the queryset as Django builds it."""

    LIST_MAX = 8

    def __init__(self, build: Callable[..., QuerySet[Any, T]], **kinds: Any) -> None:
        unsupported = {name: kind for name, kind in kinds.items() if _element(kind) not in (int, str)}
        if unsupported:
            raise ImproperlyConfigured(f"prepared reads bind int, str and lists of them only, not {unsupported}")
        self.build = build
        self.kinds = kinds
        self._shapes = {name: (_element(kind), _element(kind) is not kind) for name, kind in kinds.items()}
        self._statements: dict[tuple[str, tuple[int, ...]], _Statement] = {}  # by database alias and list lengths
        self._lock = threading.Lock()
        self._model: Any = None
        self._for_write = False

    def all(self, **values: Any) -> list[T]:
        if values.keys() != self.kinds.keys():
            raise TypeError(f"expected the values {sorted(self.kinds)}, got {sorted(values)}")
        # In the declared order, whatever the caller's: each list's length is keyed by its place there.
        given = {name: list(values[name]) if listed else values[name] for name, (_, listed) in self._shapes.items()}
        if not all(_bindable(element, listed, given[name]) for name, (element, listed) in self._shapes.items()):
            return list(self.build(**given))  # None (SQL's NULL), or a number no column holds: as Django answers
        bound = {name: _bound(element, listed, given[name]) for name, (element, listed) in self._shapes.items()}
        lengths = tuple(len(value) for value in bound.values() if isinstance(value, list))
        if any(length == 0 or length > self.LIST_MAX for length in lengths):
            return list(self.build(**bound))
        statement, alias = self._statement(lengths)
        params = list(statement.params)
        for name, indexes in statement.slots:
            value = bound[name]
            for index, item in zip(indexes, value if isinstance(value, list) else [value], strict=True):
                params[index] = type(params[index])(item)
        connection = connections[alias]
        if (
            statement.for_update
            and transaction.get_autocommit(using=alias)
            and connection.features.supports_transactions
        ):
            raise transaction.TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        with bound_cursor(connection) as cursor:
            cursor.execute(statement.sql, params)
            rows = cursor.fetchall()
        return _results(statement, rows, connection, alias)

    def first(self, **values: Any) -> T | None:
        """The first row: `build` should order and limit the queryset when more than one row may match."""
        found = self.all(**values)
        return found[0] if found else None

    def _statement(self, lengths: tuple[int, ...]) -> tuple[_Statement, str]:
        key = (self._alias(lengths), lengths)
        statement = self._statements.get(key)
        if statement is None:
            with self._lock:
                stand_ins = self._stand_ins(lengths)
                queryset = self.build(**stand_ins)
                key = (queryset.db, lengths)
                statement = self._statements.get(key) or self._compile_checked(queryset, stand_ins, lengths)
                self._statements[key] = statement
        return statement, key[0]

    def _compile_checked(self, queryset: Any, stand_ins: dict[str, Any], lengths: tuple[int, ...]) -> _Statement:
        """Compiled, and compiled again from other stand-ins: the SQL and every parameter but the values' own must be
        the same, else `build` derived something from a value (`number + 10`, `title.lower()`) that the first
        compile's stand-ins would freeze."""
        statement = _compile(queryset, stand_ins)
        other_stand_ins = self._stand_ins(lengths, variant=1)
        other = _compile(self.build(**other_stand_ins), other_stand_ins)
        if other.sql != statement.sql or other.slots != statement.slots or not _same_constants(statement, other):
            raise ImproperlyConfigured(
                f"a prepared read's SQL or other parameters change with its values {sorted(self.kinds)}: build must "
                "pass each value as given"
            )
        return statement

    def _alias(self, lengths: tuple[int, ...]) -> str:
        """The database the queryset would read (routers decide, as `QuerySet.db` does), without building it."""
        if self._model is None:
            queryset = self.build(**self._stand_ins(lengths))
            self._model, self._for_write = queryset.model, bool(getattr(queryset, "_for_write", False))
        if self._for_write:
            return str(router.db_for_write(self._model))
        return str(router.db_for_read(self._model))

    def _stand_ins(self, lengths: tuple[int, ...], variant: int = 0) -> dict[str, Any]:
        """A distinct value for each value (each item of a list), of its type; another variant, other values."""
        stand_ins: dict[str, Any] = {}
        list_lengths = iter(lengths)
        for position, (name, kind) in enumerate(self.kinds.items()):
            element = _element(kind)
            if element is kind:
                stand_ins[name] = _stand_in(element, position, 0, variant)
            else:
                stand_ins[name] = [_stand_in(element, position, item, variant) for item in range(next(list_lengths))]
        return stand_ins


class PreparedUpdate:
    """`UPDATE` of named columns of one row, by its primary key: the statement written once per database, its values
    bound per call (on PostgreSQL prepared in the session, as `PreparedRead`'s). What `Model.objects.filter(pk=pk)
    .update(**values)` does for the writes every event makes (a delivery finished, a debt settled, a verdict
    reported), without building and compiling a queryset each time: each value goes through its field's
    `get_db_prep_save` as Django's update sends it, the row count is returned, and an error inside a transaction marks
    it for rollback as Django's does. `keep`: columns whose stored value stays when there is one (`COALESCE`).

    Declared once per shape; refused at declaration: a primary key, a field that is not a concrete column of the
    model, a model with parents (its update spans tables), a model whose queryset has an `update` of its own, and on
    an append-only record any field but its bookkeeping (`mutable_fields`, which its queryset's update allows without
    reading the rows; a set-once field needs the record's own check)."""

    def __init__(self, model: Any, *fields: str, keep: tuple[str, ...] = ()) -> None:
        meta = model._meta
        if meta.parents:
            raise ImproperlyConfigured(f"a prepared update writes one table; {meta.label} has parents")
        by_name = {field.name: field for field in meta.concrete_fields}
        unknown = [name for name in (*fields, *keep) if name not in by_name or by_name[name].primary_key]
        if unknown or not set(keep) <= set(fields) or len(set(fields)) != len(fields) or not fields:
            raise ImproperlyConfigured(f"a prepared update of {meta.label} sets its own columns once each: {fields}")
        from reviews.models import AppendOnlyQuerySet

        update = type(model._default_manager.get_queryset()).update
        if update is not QuerySet.update and update is not AppendOnlyQuerySet.update:
            raise ImproperlyConfigured(f"{meta.label}'s queryset has an update of its own, which this would skip")
        mutable = getattr(model, "mutable_fields", None)
        if mutable is not None and not set(fields) <= mutable:
            raise ImproperlyConfigured(f"{meta.label} is append-only: only {sorted(mutable)} may be updated here")
        self.model = model
        self.fields = tuple(by_name[name] for name in fields)
        self.names = frozenset(fields)
        self.keep = frozenset(keep)
        self._sql: dict[str, str] = {}

    def run(self, pk: Any, **values: Any) -> int:
        """Set the values on the row `pk`; the number of rows updated (0 or 1)."""
        if values.keys() != self.names:
            raise TypeError(f"expected the values {sorted(self.names)}, got {sorted(values)}")
        alias = router.db_for_write(self.model)
        connection = connections[alias]
        pk_field = self.model._meta.pk
        if _matches_no_row(pk_field, pk, connection):
            return 0  # None, or an integer no key column holds: Django's update matches no row either
        sql = self._sql.get(alias) or self._sql.setdefault(alias, self._compose(connection))
        params = [_prepared_value(field, values[field.name], connection) for field in self.fields]
        params.append(pk_field.get_db_prep_value(pk, connection, prepared=False))
        with transaction.mark_for_rollback_on_error(using=alias), bound_cursor(connection) as cursor:
            cursor.execute(sql, params)
            return int(cursor.rowcount)

    def _compose(self, connection: BaseDatabaseWrapper) -> str:
        """The SQL Django's update compiler writes for the same update (`"table"."pk" = %s`)."""
        quote = connection.ops.quote_name
        table = quote(self.model._meta.db_table)
        assignments = []
        for field in self.fields:
            column = quote(field.column)
            value = f"COALESCE({table}.{column}, %s)" if field.name in self.keep else "%s"
            assignments.append(f"{column} = {value}")
        pk_column = quote(self.model._meta.pk.column)
        # Quoted names of the model's own columns; every value is a parameter.
        return f"UPDATE {table} SET {', '.join(assignments)} WHERE {table}.{pk_column} = %s"  # noqa: S608


class PreparedInsert:
    """`instance.save()` of a new row as one `INSERT … RETURNING` its key, written once per database and prepared in
    the PostgreSQL session: for the rows every event adds (a verdict). Each column's value is what Django's insert
    sends (`pre_save(add=True)`, then `get_db_prep_save`); the instance gets its key and is stored (`_state`) as after
    `save()`. Refused at declaration: a model with parents, a key that is not the database's to choose, a column with
    a database default or generated by the database, a `save` of the model's own (an append-only record's is allowed:
    it checks changes, never a new row). A model whose saves anyone listens to (`pre_save`, `post_save`: checked at
    each call, as receivers may connect later), and a database that cannot return the key from an insert, are saved
    by Django."""

    def __init__(self, model: Any) -> None:
        meta = model._meta
        if meta.parents or meta.pk is not meta.auto_field or meta.db_returning_fields != [meta.pk]:
            raise ImproperlyConfigured(
                f"a prepared insert writes one table and returns its automatic key: {meta.label}"
            )
        fields = tuple(field for field in meta.local_concrete_fields if field is not meta.pk)
        special = [field.name for field in fields if field.has_db_default() or field.generated]
        if special:
            raise ImproperlyConfigured(f"a prepared insert cannot write {meta.label}'s {special}")
        from reviews.models import AppendOnlyModel

        if model.save is not Model.save and model.save is not AppendOnlyModel.save:  # the latter checks only changes
            raise ImproperlyConfigured(f"{meta.label} has a save of its own, which this would skip")
        self.model = model
        self.fields = fields
        self._sql: dict[tuple[str, bool], str] = {}

    def save_new(self, instance: Any) -> None:
        self._save(instance, unless_conflict=False)

    def save_new_unless_conflict(self, instance: Any) -> bool:
        """`save_new` as `INSERT … ON CONFLICT DO NOTHING … RETURNING` its key: False, and the instance left unsaved,
        when a row with one of its unique values is stored already (another worker's, committed or not: the insert
        waits for it). For a new row whose values are all known at once: one statement instead of a stub inserted
        and read back. Django's fallback (listeners, no returning inserts) is `save()` in a savepoint, False only on a
        unique violation (`is_unique_violation`): any other IntegrityError is raised, as the statement raises it."""
        return self._save(instance, unless_conflict=True)

    def _save(self, instance: Any, *, unless_conflict: bool) -> bool:
        if type(instance) is not self.model or not instance._state.adding or instance.pk is not None:
            raise TypeError(f"a prepared insert saves a new {self.model._meta.label} without a key")
        # As save() does first: an unsaved related row is refused (else its key, None, would be stored in silence),
        # and one saved since it was assigned gives its key now.
        instance._prepare_related_fields_for_save(operation_name="save")
        alias = router.db_for_write(self.model, instance=instance)
        connection = connections[alias]
        if (
            not connection.features.can_return_columns_from_insert
            or pre_save.has_listeners(self.model)
            or post_save.has_listeners(self.model)
        ):
            if not unless_conflict:
                instance.save(using=alias)
                return True
            try:
                with transaction.atomic(using=alias):
                    instance.save(using=alias)
            except IntegrityError as error:
                if not is_unique_violation(error):
                    raise  # a NOT NULL or CHECK failure is the row's own, not another worker's row: as save() says
                setattr(instance, self.model._meta.pk.attname, None)
                instance._state.adding = True
                return False
            return True
        key = (alias, unless_conflict)
        sql = self._sql.get(key) or self._sql.setdefault(key, self._compose(connection, unless_conflict))
        params = [_prepared_value(field, field.pre_save(instance, True), connection) for field in self.fields]
        with transaction.mark_for_rollback_on_error(using=alias), bound_cursor(connection) as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        if row is None:
            return False  # a row with one of its unique values is stored: nothing written
        setattr(instance, self.model._meta.pk.attname, row[0])
        instance._state.adding = False
        instance._state.db = alias
        return True

    def _compose(self, connection: BaseDatabaseWrapper, unless_conflict: bool = False) -> str:
        quote = connection.ops.quote_name
        table = quote(self.model._meta.db_table)
        columns = ", ".join(quote(field.column) for field in self.fields)
        placeholders = ", ".join("%s" for _ in self.fields)
        pk_column = f"{table}.{quote(self.model._meta.pk.column)}"
        # Quoted names of the model's own columns; every value is a parameter.
        conflict = " ON CONFLICT DO NOTHING" if unless_conflict else ""
        return f"INSERT INTO {table} ({columns}) VALUES ({placeholders}){conflict} RETURNING {pk_column}"  # noqa: S608


# What `ON CONFLICT DO NOTHING` skips: PostgreSQL's unique and exclusion violations (SQLSTATE), SQLite's unique and
# primary key constraints (the extended result code's name, Python 3.11).
_CONFLICT_SQLSTATES = frozenset({"23505", "23P01"})
_CONFLICT_SQLITE_ERRORS = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


def is_unique_violation(error: IntegrityError) -> bool:
    """Whether the driver's error behind Django's `IntegrityError` says a row with one of the values is stored
    (what `ON CONFLICT DO NOTHING` skips), rather than that the row itself is invalid (NOT NULL, CHECK, a key)."""
    cause = error.__cause__
    return (
        getattr(cause, "sqlstate", None) in _CONFLICT_SQLSTATES
        or getattr(cause, "sqlite_errorname", None) in _CONFLICT_SQLITE_ERRORS
    )


class PreparedUpdates:
    """A `PreparedUpdate` for each set of fields a call names, for writes whose fields vary with what changed (an
    upsert's); past `max_shapes` sets a call is Django's `filter(pk=pk).update(**values)`."""

    def __init__(self, model: Any, *, max_shapes: int = 64) -> None:
        self.model = model
        self.max_shapes = max_shapes
        self._by_shape: dict[tuple[str, ...], PreparedUpdate] = {}

    def run(self, pk: Any, **values: Any) -> int:
        shape = tuple(sorted(values))
        update = self._by_shape.get(shape)
        if update is None:
            if len(self._by_shape) >= self.max_shapes:
                return int(self.model._base_manager.filter(pk=pk).update(**values))
            update = self._by_shape.setdefault(shape, PreparedUpdate(self.model, *shape))
        return update.run(pk, **values)


def _prepared_value(field: Any, value: Any, connection: BaseDatabaseWrapper) -> Any:
    """The value as Django's update compiler sends it: a related row by its key, else through the field."""
    if hasattr(value, "resolve_expression"):
        raise TypeError(f"a prepared update binds values, not expressions ({field.name}={value!r})")
    if field.remote_field and hasattr(value, "prepare_database_save"):
        value = value.prepare_database_save(field)
    return field.get_db_prep_save(value, connection=connection)


def _matches_no_row(pk_field: Any, pk: Any, connection: BaseDatabaseWrapper) -> bool:
    """`pk=None` is `IS NULL`, and an integer outside the key column's range is known to match nothing (Django's
    lookups answer both without a statement that binds them)."""
    if pk is None:
        return True
    if isinstance(pk, int) and not isinstance(pk, bool):
        low, high = connection.ops.integer_field_range(pk_field.get_internal_type())
        return (low is not None and pk < low) or (high is not None and pk > high)
    return False


def _element(kind: Any) -> Any:
    """int for int and list[int], str for str and list[str]."""
    if typing.get_origin(kind) is list:
        (element,) = typing.get_args(kind)
        return element
    return kind


def _bindable(element: type, listed: bool, value: Any) -> bool:
    """Whether the statement holds the value as Django would bind it: not None, which Django turns into `IS NULL`
    (or leaves out of an IN list), nor an integer beyond 64 bits, which Django knows matches nothing and a database
    may refuse to compare."""
    items = value if listed else (value,)
    return all(item is not None and (element is not int or _INT64[0] <= int(item) <= _INT64[1]) for item in items)


def _bound(element: type, listed: bool, value: Any) -> Any:
    """The value as the statement takes it: a list's items once each, in order."""
    if not listed:
        return element(value)
    return list(dict.fromkeys(element(item) for item in value))


def _stand_in(kind: type, position: int, item: int, variant: int) -> int | str:
    if kind is int:
        return _INT_STAND_IN + variant * 100_000 + position * 1000 + item
    # What a field or lookup may rewrite (LIKE's escapes, case) is in it: a rewritten stand-in is not found among the
    # parameters, so the read is refused rather than bound as given where Django would have rewritten the value.
    return f"\x1fPrepared%_\\Value-{variant}-{position}-{item}\x1f"


def _compile(queryset: Any, stand_ins: dict[str, Any]) -> _Statement:
    """Compile the queryset (Django's private parts of a QuerySet are read here, pinned by this module's tests)."""
    shape = _SUPPORTED.get(queryset._iterable_class)
    if shape is None:
        raise ImproperlyConfigured(
            f"a prepared read returns models, values or values_list, not {queryset._iterable_class}"
        )
    if queryset._prefetch_related_lookups or queryset._known_related_objects:
        raise ImproperlyConfigured("a prepared read cannot prefetch or start from a related manager")
    query = queryset.query
    if query.extra_select or query.extra:
        raise ImproperlyConfigured("a prepared read cannot use extra()")
    compiler = query.get_compiler(using=queryset.db)
    sql, params = compiler.as_sql()
    slots = []
    for name, stand_in in stand_ins.items():
        indexes = []
        for item in stand_in if isinstance(stand_in, list) else [stand_in]:
            # psycopg's typed integers (Int4, Int8) are ints: a call's value is wrapped in the same type.
            found = [index for index, param in enumerate(params) if isinstance(param, type(item)) and param == item]
            if len(found) != 1:
                raise ImproperlyConfigured(
                    f"a prepared read's value {name!r} must be a parameter once, as given (found {len(found)})"
                )
            indexes.append(found[0])
        slots.append((name, tuple(indexes)))
    fields = [column[0] for column in compiler.select[: compiler.col_count]]
    converters = tuple(
        (position, tuple(convs), expression)
        for position, (convs, expression) in compiler.get_converters(fields).items()
    )
    model: Any = None
    init_list: tuple[str, ...] = ()
    annotations: tuple[tuple[str, int], ...] = ()
    span = (0, 0)
    populators: tuple[Any, ...] = ()
    if shape == "models":
        klass_info = compiler.klass_info
        model = klass_info["model"]
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        init_list = tuple(column[0].target.attname for column in compiler.select[start:end])
        span = (start, end)
        related: Callable[..., list[Any]] = get_related_populators
        populators = tuple(related(klass_info, compiler.select, queryset.db))
        annotations = tuple(compiler.annotation_col_map.items())
    names = _dict_keys(query) if shape == "dicts" else ()
    return _Statement(
        sql=sql,
        params=tuple(params),
        slots=tuple(slots),
        for_update=query.select_for_update,
        col_count=compiler.col_count,
        trim=compiler.has_extra_select,
        converters=converters,
        shape=shape,
        names=tuple(names),
        model=model,
        init_list=init_list,
        annotations=annotations,
        model_span=span,
        related_populators=populators,
    )


def _same_constants(one: _Statement, other: _Statement) -> bool:
    """The parameters that are not the values' are equal (JSON wrappers by what they wrap)."""
    slots = {index for _, indexes in one.slots for index in indexes}
    return len(one.params) == len(other.params) and all(
        type(mine) is type(theirs) and getattr(mine, "obj", mine) == getattr(theirs, "obj", theirs)
        for index, (mine, theirs) in enumerate(zip(one.params, other.params, strict=True))
        if index not in slots
    )


def _dict_keys(query: Any) -> tuple[str, ...]:
    """The keys of values()' dicts, in the order of the columns, as Django's ValuesIterable names them: the order
    values() named them when it did (Django 5.2 selects them so), else extra, fields, then annotations."""
    if query.selected:
        return tuple(query.selected)
    return (*query.extra_select, *query.values_select, *query.annotation_select)


def _results(statement: _Statement, rows: list[tuple[Any, ...]], connection: Any, alias: str) -> list[Any]:
    converted = []
    for fetched in rows:
        row = list(fetched[: statement.col_count] if statement.trim else fetched)
        for position, convs, expression in statement.converters:
            value = row[position]
            for converter in convs:
                value = converter(value, expression, connection)
            row[position] = value
        converted.append(row)
    if statement.shape == "flat":
        return [row[0] for row in converted]
    if statement.shape == "tuples":
        return [tuple(row) for row in converted]
    if statement.shape == "dicts":
        return [dict(zip(statement.names, row, strict=True)) for row in converted]
    start, end = statement.model_span
    instances = []
    for row in converted:
        instance = statement.model.from_db(alias, statement.init_list, row[start:end])
        for populator in statement.related_populators:
            populator.populate(row, instance)
        for name, column in statement.annotations:
            setattr(instance, name, row[column])
        instances.append(instance)
    return instances


class _PreparingCursor(psycopg.Cursor[Any]):
    """psycopg's cursor, preparing its statements in the session at their first use.

    Django opens its connections with psycopg's preparation off (`prepare_threshold=None`, for transaction poolers),
    and psycopg then prepares nothing, even when asked: these statements were never prepared. Preparation is turned on
    for the length of each of these calls alone, so Django's own queries (their values quoted into their text) are
    neither counted nor prepared; a threshold the settings chose is kept as it is."""

    def execute(  # type: ignore[override]  # the one form these statements use: SQL text and its values
        self, query: str, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None
    ) -> typing.Self:
        connection = self.connection
        threshold = connection.prepare_threshold
        if threshold is not None or prepare is False:
            return super().execute(query, params, prepare=prepare, binary=binary)
        connection.prepare_threshold = 0
        try:
            return super().execute(query, params, prepare=True, binary=binary)
        except (psycopg.errors.InvalidSqlStatementName, psycopg.errors.FeatureNotSupported):
            # The session lost its statements (DISCARD ALL, a pooler's reset) while psycopg still names them, or a
            # migration changed a column's type under one ("cached plan must not change result type"): forget them
            # all, or every later call on this connection fails the same way. This call fails (its transaction is
            # aborted); the next prepares anew.
            connection._prepared.clear()
            raise
        finally:
            connection.prepare_threshold = threshold

    def _maybe_prepare_gen(self, pgq: Any, *, prepare: bool | None = None, binary: bool | None = None) -> Any:
        # psycopg notes the query sent only when it is not prepared; Django's query log (DEBUG, the tests' query
        # captures) reads it there, and would log a prepared statement's SQL as None.
        self._query = pgq
        return super()._maybe_prepare_gen(pgq, prepare=prepare, binary=binary)


@contextlib.contextmanager
def bound_cursor(db: BaseDatabaseWrapper) -> Iterator[CursorWrapper]:
    """Django's cursor (its health check, error wrapping and query log), but on PostgreSQL one that sends the values
    apart from the statement instead of quoting them into its text (Django's `server_side_binding`, for these
    statements alone): values are neither escaped here nor scanned by the server's parser, and the statement is
    prepared in the session at its first use (`_PreparingCursor`), so PostgreSQL stops parsing and planning the fixed
    statements a worker runs for every event. Prepared statements live in the server session: a pooler in front of
    PostgreSQL must keep session pooling (README)."""
    if db.vendor != "postgresql":
        with db.cursor() as cursor:
            yield cursor
        return
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    bound = _PreparingCursor(db.connection)
    wrap = db.make_debug_cursor if db.queries_logged else db.make_cursor
    with wrap(bound) as cursor:  # type: ignore[arg-type]  # django-stubs name the wrapped cursor a CursorWrapper
        yield cursor
