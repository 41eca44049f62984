"""Writing rows on the hot paths in fewer, cheaper statements than the ORM builds.

save_fields: Django's bulk_update builds one `CASE WHEN id = ... THEN ...` per field and row; compiling it
cost the answer pipeline more CPU than the rest of a round's SQL. Here one statement joins the
rows' new values as a VALUES list, each cast to its column's type: a round's rows cost one
UPDATE to parse, plan and run instead of one per row (there were two per answered message).

insert_row: the ORM's INSERT of one row (compiling it, then quoting each value into the text, as psycopg binds
client-side) was about a sixth of a callback's web CPU. Here the row travels as one JSON document that PostgreSQL
reads into the table's own row type (jsonb_populate_record), so each column gets its own type's conversion.
"""

from __future__ import annotations

import datetime
import decimal
import json
import uuid
from collections.abc import Iterable

from django.db import connection, models

# A bound on the statement's size; a round saves far fewer rows.
ROWS_PER_STATEMENT = 1000


def save_fields(rows: Iterable[models.Model], fields: list[str]) -> None:
    """UPDATE `fields` of each (saved) row to its in-memory values, as save(update_fields=...) would."""
    rows = list(rows)
    if not rows:
        return
    meta = rows[0]._meta
    quote = connection.ops.quote_name
    columns = [meta.get_field(name) for name in fields]
    # Only model metadata goes into the text (quoted names, column types); values are parameters.
    casts = ", ".join(f"%s::{field.cast_db_type(connection)}" for field in [*columns, meta.pk])
    names = [f"v{i}" for i in range(len(columns))]
    assignments = ", ".join(f"{quote(field.column)} = new.{name}" for field, name in zip(columns, names, strict=True))
    joined = f"AS new({', '.join(names)}, pk) WHERE saved.{quote(meta.pk.column)} = new.pk"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start:start + ROWS_PER_STATEMENT]
            values = ", ".join([f"({casts})"] * len(chunk))
            sql = (f"UPDATE {quote(meta.db_table)} AS saved SET {assignments} "  # noqa: S608
                   f"FROM (VALUES {values}) {joined}")
            cursor.execute(sql, [value for row in chunk
                                 for value in [*(field.get_db_prep_save(getattr(row, field.attname), connection)
                                                 for field in columns), row.pk]])


def insert_row(row: models.Model) -> None:
    """INSERT a new `row` as row.save() would (field defaults and auto_now_add applied, its pk set), in one
    statement. No signals are sent: for models nothing listens to (the message path's own rows), whose columns all
    get their values in Python (no db_default, no generated column)."""
    meta = row._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    document = {field.column: field.get_prep_value(field.pre_save(row, add=True)) for field in fields}
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    sql = (f"INSERT INTO {quote(meta.db_table)} ({columns}) SELECT {columns} "  # noqa: S608 - model metadata only
           f"FROM jsonb_populate_record(NULL::{quote(meta.db_table)}, %s::jsonb) RETURNING {quote(meta.pk.column)}")
    with connection.cursor() as cursor:
        cursor.execute(sql, [json.dumps(document, default=_json_value)])
        row.pk = cursor.fetchone()[0]
    row._state.adding = False
    row._state.db = connection.alias


def _json_value(value):
    """A column value JSON cannot hold, as the text its PostgreSQL type reads back exactly."""
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()  # every microsecond, unlike DjangoJSONEncoder's milliseconds
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a column value insert_row can write")
