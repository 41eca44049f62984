"""CSV export of a conversation search, streamed: the same rows as the page (tickets/search/selectors.py), all
of them, CHUNK conversations at a time, so a large result neither waits for the whole file nor holds it in
memory. Django collects an iterator of the other kind into one list before sending it (with a warning), so the
response gets the kind its server streams: a synchronous one under WSGI (`in_context`, the web process: gunicorn),
an asynchronous one under ASGI (`streamed`, config.asgi serving HTTP), which builds each chunk in the request's
thread.

Written for Excel as much as for scripts: UTF-8 with a byte-order mark (without it Excel reads the file as the
system's ANSI code page and shows Chinese as mojibake), times in the tenant's time zone, and every text cell
that a spreadsheet would take for a formula (= + - @, or a tab or carriage return before one) prefixed with
an apostrophe (CSV injection: a customer who types =HYPERLINK(...) must not get a live formula on an agent's
machine).
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

from asgiref.sync import sync_to_async
from django.db import connection
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_tenants.utils import schema_context

from conversations.models import Conversation
from tickets.search.selectors import AUTHOR_LABELS, SearchCriteria, results, with_result_relations

# Beyond this many conversations an export is refused with the reason (narrow the filters): a file that size is
# no longer read by a person, and an integrator pages the JSON API instead.
MAX_EXPORT_ROWS = 50_000
CHUNK = 500
BYTE_ORDER_MARK = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MESSAGE_CHARS = 2000  # of the shown message; a CSV cell is no place for a long transcript


class TooManyToExport(Exception):
    message = gettext_lazy("More than %(limit)s conversations match: narrow the filters to export them.")

    def __str__(self) -> str:
        return str(self.message) % {"limit": f"{MAX_EXPORT_ROWS:,}"}


def safe_cell(value) -> object:
    """A value for a CSV cell: text a spreadsheet would evaluate is prefixed with an apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _Line:
    """csv.writer's file: hands each written line back instead of storing it."""

    def write(self, line: str) -> str:
        return line


def export_ids(conversations: QuerySet[Conversation]) -> list[int]:
    """The ids to export, in the search's order; TooManyToExport beyond MAX_EXPORT_ROWS (checked before the
    response starts, so the refusal is a clear error rather than a cut-off file)."""
    ids = list(conversations.values_list("pk", flat=True)[:MAX_EXPORT_ROWS + 1])
    if len(ids) > MAX_EXPORT_ROWS:
        raise TooManyToExport()
    return ids


def _time(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def csv_chunks(ids: list[int], criteria: SearchCriteria, *, zone: ZoneInfo,
               link: Callable[[int], str]) -> Iterator[str]:
    """The file in pieces: the header, then CHUNK conversations' lines at a time. `link(id)` is a
    conversation's address on the agent screens."""
    writer = csv.writer(_Line())
    yield BYTE_ORDER_MARK + writer.writerow([
        _("Conversation"), _("Link"), _("State"), _("Channel"), _("WeCom app"), _("Customer"), _("Customer id"),
        _("Agent"), _("Labels"), _("Started"), _("Last message"), _("Message time"), _("Message author"),
        _("Message")])
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        loaded = with_result_relations(Conversation.objects.filter(pk__in=chunk)).in_bulk()
        lines = []
        for result in results([loaded[pk] for pk in chunk if pk in loaded], criteria):
            conversation, message = result.conversation, result.message
            lines.append(writer.writerow([safe_cell(cell) for cell in (
                conversation.pk, link(conversation.pk), result.state_label,
                conversation.contact.app.get_kind_display(), conversation.contact.app.name, result.customer_name,
                result.customer_id, result.agent_name, ", ".join(label.name for label in result.labels),
                _time(conversation.started_at, zone), _time(conversation.last_message_at, zone),
                _time(message.created_at, zone) if message else "",
                str(AUTHOR_LABELS.get(message.author, message.author)) if message else "",
                (message.text or "")[:MESSAGE_CHARS] if message else "")]))
        yield "".join(lines)


def in_context(pieces: Iterator[str], *, schema: str, language: str) -> Iterator[str]:
    """`pieces`, each made in the tenant's schema and the reader's language, set explicitly as neither is to be
    assumed once the view has returned (the server iterates after the view and its middleware): the WSGI response."""
    while True:
        with schema_context(schema), translation.override(language):
            piece = next(pieces, None)
        if piece is None:
            return
        yield piece


async def streamed(pieces: Iterator[str], *, schema: str, language: str) -> AsyncIterator[str]:
    """The same as an asynchronous iterator for the ASGI response, each piece made in the request's thread
    (sync_to_async, thread-sensitive)."""
    made = in_context(pieces, schema=schema, language=language)
    while (piece := await sync_to_async(next)(made, None)) is not None:
        yield piece


def file_name(now: datetime, zone: ZoneInfo) -> str:
    return f"conversations-{now.astimezone(zone):%Y%m%d-%H%M}.csv"


def csv_response(request, ids: list[int], criteria: SearchCriteria, *, zone: ZoneInfo,
                 link: Callable[[int], str]) -> StreamingHttpResponse:
    """The file as the search page and the API serve it: streamed, named by the tenant's local time."""
    pieces = csv_chunks(ids, criteria, zone=zone, link=link)
    # A WSGI server puts its environment in META (PEP 3333's wsgi.input); an ASGI request has none of it.
    stream = in_context if "wsgi.input" in request.META else streamed
    response = StreamingHttpResponse(stream(pieces, schema=connection.schema_name, language=translation.get_language()),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{file_name(timezone.now(), zone)}"'
    return response
