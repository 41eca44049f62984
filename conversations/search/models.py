"""The message-text index: one row per transcript line, its words as the knowledge base segments them
(kb.segmentation). Imported at the end of conversations/models.py.

A separate table rather than columns on Message: the transcript's INSERT on the message path stays as it was
(no segmentation, no GIN update), reading transcripts does not drag tsvectors along, and the rows are written
later, in batches, by conversations/search/indexing.py.
"""

from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models


class MessageSearchEntry(models.Model):
    message = models.OneToOneField("conversations.Message", primary_key=True, on_delete=models.CASCADE,
                                   related_name="+")
    # Copied from the message so that a search filters by conversation and time without joining the transcript.
    conversation = models.ForeignKey("conversations.Conversation", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField()
    # The message's words and the Han characters of its multi-character words (conversations/search/terms.py),
    # space-separated; PostgreSQL's 'simple' parser cannot split Chinese, so the tsvector is built over these.
    terms = models.TextField(blank=True)
    vector = models.GeneratedField(expression=SearchVector("terms", config="simple"),
                                   output_field=SearchVectorField(), db_persist=True)

    class Meta:
        indexes = [GinIndex(fields=["vector"], name="conv_message_search_gin")]

    def __str__(self) -> str:
        return f"message {self.message_id}: {self.terms[:40]}"
