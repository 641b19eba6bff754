"""SQL of the hot paths, built once per database and then only executed.

Building a statement through the ORM (query, compiler, joins, quoting, the
column list) costs more than running it, several times over, and these
statements never change but for their values. So each is built once per
database alias, the SELECTs by the ORM's own compiler, the writes from the
models' fields, and every request only adapts its values (with the fields'
own `get_db_prep_*`) and executes them through Django's cursor: counted,
wrapped and with errors translated like any other query. On PostgreSQL they
go through `tokens.db.prepared_cursor`, so the server parses and plans each
one once per connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model, QuerySet


@dataclass(frozen=True)
class Write:
    """An INSERT or UPDATE with one placeholder per field in `fields`, in order."""

    sql: str
    fields: tuple[Any, ...]  # model fields, one per placeholder

    def params(self, connection: BaseDatabaseWrapper, values: Sequence[Any]) -> list[Any]:
        if len(values) != len(self.fields):
            raise ValueError(f"{len(self.fields)} values expected, got {len(values)}")
        return [field.get_db_prep_save(value, connection) for field, value in zip(self.fields, values, strict=True)]

    def params_of(self, connection: BaseDatabaseWrapper, instance: Model) -> list[Any]:
        """The values of an (unsaved) model instance, in the statement's order."""
        return self.params(connection, [getattr(instance, field.attname) for field in self.fields])


def insert(connection: BaseDatabaseWrapper, model: type[Model], names: Sequence[str]) -> Write:
    """`INSERT INTO <model> (<names>) VALUES (%s, ...)`; `names` are field names."""
    quote = connection.ops.quote_name
    fields: tuple[Any, ...] = tuple(model._meta.get_field(name) for name in names)
    columns = ", ".join(quote(field.column) for field in fields)
    values = ", ".join(["%s"] * len(fields))
    # Identifiers come from the models and are quoted; values are placeholders.
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({values})"  # noqa: S608
    return Write(sql, fields)


def update(
    connection: BaseDatabaseWrapper,
    model: type[Model],
    *,
    set_: Sequence[str],
    where: Sequence[str],
    where_null: Sequence[str] = (),
) -> Write:
    """`UPDATE <model> SET <set_> = %s ... WHERE <where> = %s ... AND <where_null> IS NULL`."""
    quote = connection.ops.quote_name
    meta = model._meta
    set_fields: list[Any] = [meta.get_field(name) for name in set_]
    where_fields: list[Any] = [meta.get_field(name) for name in where]
    null_fields: list[Any] = [meta.get_field(name) for name in where_null]
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in set_fields)
    conditions = [f"{quote(f.column)} = %s" for f in where_fields]
    conditions += [f"{quote(f.column)} IS NULL" for f in null_fields]
    sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {' AND '.join(conditions)}"  # noqa: S608
    return Write(sql, tuple(set_fields + where_fields))


@dataclass(frozen=True)
class _CompiledSelect:
    sql: str
    params: tuple[Any, ...]
    index: int
    names: tuple[str, ...]
    converters: tuple[tuple[int, tuple[Callable[..., Any], ...], Any], ...]


class Select:
    """A SELECT the ORM compiles once per database alias, run with one varying value.

    `build(value)` returns the queryset for `value`; it is compiled with
    `placeholder`, whose one position among the parameters is then filled
    with each call's value. Rows come back as tuples, converted by the
    backend's converters as the ORM would (booleans and UUIDs on SQLite, ...).
    """

    def __init__(self, build: Callable[[Any], QuerySet[Any]], *, placeholder: Any, field: Field[Any, Any]) -> None:
        self._build = build
        self._placeholder = placeholder
        self._field = field
        self._lock = threading.Lock()
        self._compiled: dict[str, _CompiledSelect] = {}

    def execute(self, cursor: Any, alias: str, value: Any) -> None:
        """Send the statement for `value` on `cursor` (a cursor of `alias`'s connection)."""
        compiled = self._compiled.get(alias) or self._compile(alias)
        connection = connections[alias]
        params = list(compiled.params)
        params[compiled.index] = self._field.get_db_prep_value(value, connection)
        cursor.execute(compiled.sql, params)

    def fetchone(self, cursor: Any, alias: str) -> tuple[Any, ...] | None:
        """The next row of `cursor`, converted, or None."""
        row = cursor.fetchone()
        if row is None:
            return None
        compiled = self._compiled[alias]
        if not compiled.converters:
            return tuple(row)
        connection = connections[alias]
        values = list(row)
        for position, converters, expression in compiled.converters:
            value = values[position]
            for converter in converters:
                value = converter(value, expression, connection)
            values[position] = value
        return tuple(values)

    def names(self, alias: str) -> tuple[str, ...]:
        """The attribute names of the selected columns, in order (once compiled for `alias`)."""
        return self._compiled[alias].names

    def _compile(self, alias: str) -> _CompiledSelect:
        connection = connections[alias]
        compiler = self._build(self._placeholder).query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        placeholder = self._field.get_db_prep_value(self._placeholder, connection)
        positions = [i for i, value in enumerate(params) if value == placeholder]
        if len(positions) != 1:
            raise RuntimeError(f"the placeholder appears {len(positions)} times in {sql!r}, not once")
        expressions = [column for column, _, _ in compiler.select]
        names = tuple(getattr(getattr(column, "target", None), "attname", "") for column in expressions)
        converters = tuple(
            (position, tuple(found), expression)
            for position, (found, expression) in compiler.get_converters(expressions).items()
        )
        compiled = _CompiledSelect(sql, tuple(params), positions[0], names, converters)
        with self._lock:
            self._compiled[alias] = compiled
        return compiled

    def reset(self) -> None:
        """Forget the compiled statements (tests that swap the user model or database)."""
        with self._lock:
            self._compiled = {}
