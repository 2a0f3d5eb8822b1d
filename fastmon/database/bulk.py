"""Bulk writes beyond the ORM, for the hot paths: COPY-based inserts and one-statement updates
by primary key (on PostgreSQL; the ORM's bulk methods elsewhere)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db import (
    DEFAULT_DB_ALIAS,
    connections,
    models,
)
from django.utils import timezone


def bulk_insert(model: type[models.Model], objects: Sequence[models.Model]) -> None:
    """INSERT many new rows in one statement.

    On PostgreSQL the rows travel by COPY: a 500-row batch costs the server about a fifth of
    what Django's multi-VALUES statement with thousands of parameters does. Elsewhere (SQLite in the
    demo) it is ``bulk_create``. Primary keys are not read back.
    """
    if not objects:
        return
    connection = connections[DEFAULT_DB_ALIAS]  # the connection itself, not the proxy
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objects)
        return
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    _copy(connection, model, fields, (
        [_prepared(f, [f.pre_save(obj, add=True) for obj in chunk], connection) for f in fields]
        for chunk in _chunks(objects)
    ))  # fmt: skip


def insert_rows(model: type[models.Model], rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT many new rows given as ``{attname: value}``, without making model instances.

    ``bulk_insert`` for a hot path: building a model instance cost more than the rest of storing
    it. A field a row leaves out gets its default; auto_now and auto_now_add fields get the
    same now for every row.
    """
    if not rows:
        return
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create([model(**row) for row in rows])
        return
    now = timezone.now()
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]

    def columns(chunk: Sequence[Mapping[str, Any]]) -> list[list[str]]:
        prepared = []
        for f in fields:
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                values = [now] * len(chunk)
            elif callable(f.default):  # one of its own for each row (uuid4, dict)
                values = [row[f.attname] if f.attname in row else f.get_default() for row in chunk]
            else:
                default = f.get_default()
                values = [row.get(f.attname, default) for row in chunk]
            prepared.append(_prepared(f, values, connection))
        return prepared

    _copy(connection, model, fields, map(columns, _chunks(rows)))


def _prepared(field: models.Field, values: list[Any], connection: Any) -> list[str]:
    """A column's values in COPY's text format, a column at a time. Django's per-value
    preparation is skipped where the value is ready as it is (plain fields, aware datetimes),
    and psycopg's per-value dumpers altogether: the two cost more than the rest of ingest's work
    on a row."""
    if isinstance(field, _PLAIN_FIELDS):
        return [_NULL if v is None else str(v).translate(_COPY_ESCAPES) for v in values]
    if isinstance(field, models.JSONField):
        return [
            _NULL if v is None else json.dumps(v, cls=field.encoder).translate(_COPY_ESCAPES)
            for v in values
        ]
    if isinstance(field, models.DateTimeField):
        texts: dict[datetime, str] = {}  # a batch's rows share their ``now``: format it once
        return [
            _NULL if v is None
            else texts.get(v) or texts.setdefault(v, _copy_text(_aware(field, v, connection)))
            for v in values
        ]  # fmt: skip
    return [
        _NULL if v is None else _copy_text(field.get_db_prep_save(v, connection)) for v in values
    ]


def _aware(field: models.Field, value: Any, connection: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    return field.get_db_prep_save(value, connection)


def _copy(
    connection: Any,
    model: type[models.Model],
    fields: list[models.Field],
    chunks: Iterable[list[list[str]]],
) -> None:
    """COPY rows given a chunk at a time, each as its columns in COPY's text format.

    The chunks are formatted as the COPY runs: PostgreSQL stores the rows of one while the
    next is formatted, instead of starting once all are.
    """
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    # COPY bypasses Django's cursor wrapper: map psycopg's errors to Django's ourselves.
    with (
        connection.wrap_database_errors,
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
    ):
        for columns in chunks:
            copy.write("".join(["\t".join(row) + "\n" for row in zip(*columns, strict=True)]))


# Rows per chunk of a COPY: a few tens of kilobytes of text.
_CHUNK_ROWS = 200


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    return (items[start : start + _CHUNK_ROWS] for start in range(0, len(items), _CHUNK_ROWS))


# COPY's text format: a backslash escapes the characters that separate values and rows.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_NULL = "\\N"


def _copy_text(value: Any) -> str:
    """A prepared value in COPY's text format."""
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, str | int | float | Decimal | UUID):
        return str(value).translate(_COPY_ESCAPES)
    raise TypeError(f"no COPY text for a {type(value).__name__}: {value!r}")


# Values of these fields reach COPY as their ``str``.
_PLAIN_FIELDS = (
    models.CharField, models.TextField, models.IntegerField, models.FloatField, models.ForeignKey,
)  # fmt: skip


def update_each(
    model: type[models.Model],
    same: Mapping[str, Any],
    fields: Sequence[str],
    rows: Mapping[Any, Sequence[Any]],
) -> None:
    """UPDATE rows by primary key in one statement: ``same`` for all of them, and each row's own
    values of ``fields``. On PostgreSQL an ``UPDATE ... FROM (VALUES ...)``, one round trip
    whatever the count (``bulk_update`` builds a CASE per field and row, a tenth of a sampling
    task's time); elsewhere ``bulk_update``."""
    if not rows:
        return
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        objects = [model(pk=pk, **same, **dict(zip(fields, values, strict=True)))
                   for pk, values in rows.items()]  # fmt: skip
        model._default_manager.bulk_update(objects, [*same, *fields])
        return
    meta, quote = model._meta, connection.ops.quote_name
    columns = [_field(model, name) for name in fields]
    fixed = [_field(model, name) for name in same]
    casts = ", ".join(f"%s::{c.db_type(connection)}" for c in [meta.pk, *columns])
    sets = [f"{quote(_column(c))} = %s" for c in fixed]
    sets += [f"{quote(_column(c))} = v.c{n}" for n, c in enumerate(columns)]
    names = ", ".join(["pk", *(f"c{n}" for n in range(len(columns)))])
    params = [c.get_db_prep_save(value, connection) for c, value in zip(fixed, same.values(),
                                                                        strict=True)]  # fmt: skip
    for pk, values in rows.items():
        params.append(pk)
        params += [c.get_db_prep_save(v, connection) for c, v in zip(columns, values, strict=True)]
    table = quote(meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS t SET {', '.join(sets)} "
            f"FROM (VALUES {', '.join([f'({casts})'] * len(rows))}) AS v({names}) "
            f"WHERE t.{quote(_column(meta.pk))} = v.pk",
            params,
        )


def _field(model: type[models.Model], name: str) -> models.Field:
    """The field ``name`` of ``model``; a reverse relation (which has no column) is refused."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field):
        raise TypeError(f"{model._meta.label}.{name} is a reverse relation, not a column")
    return field


def _column(field: models.Field) -> str:
    """A field's column name (which only fields without a column of their own lack)."""
    if field.column is None:
        raise TypeError(f"{field} has no column")
    return field.column
