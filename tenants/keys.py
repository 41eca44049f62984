"""Names of things outside PostgreSQL (Redis keys, channel groups), always carrying the schema.

Invariant 5 of docs/DESIGN_RULES.md: anything outside Postgres carries the tenant. Building
every such name here makes a missing schema a visible bug rather than a leak.
"""

from __future__ import annotations

import re

from django.db import connection

# Channel-layer group names allow only ASCII alphanumerics, hyphens, underscores
# and periods, below 100 characters.
_GROUP_PART = re.compile(r"^[A-Za-z0-9_\-.]+$")


def current_schema() -> str:
    return connection.schema_name


def redis_key(*parts: str | int, schema: str | None = None) -> str:
    """A Redis key for the current (or given) tenant: `<schema>:<part>:<part>`."""
    schema = schema or current_schema()
    return ":".join([schema, *map(str, parts)])


def channel_group(name: str, *, schema: str) -> str:
    """A Channels group name scoped to one tenant schema."""
    for part in (schema, name):
        if not _GROUP_PART.match(part):
            raise ValueError(f"invalid channel group part: {part!r}")
    return f"{schema}.{name}"
