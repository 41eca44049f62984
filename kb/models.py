"""Knowledge entries of a tenant (question or title, answer, tags) with their full-text index,
and the record of file imports that run in the background."""

from __future__ import annotations

import uuid

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

QUESTION_MAX_LENGTH = 300
ANSWER_MAX_LENGTH = 5000
TAG_MAX_LENGTH = 32
TAGS_MAX_COUNT = 20

# Weight classes of the index (ts_rank weights are set in kb.selectors):
# A: words of the question and tags, B: their Han characters,
# C: words of the answer, D: its Han characters.
SEARCH_VECTOR = (
    SearchVector("question_terms", config="simple", weight="A")
    + SearchVector("question_chars", config="simple", weight="B")
    + SearchVector("answer_terms", config="simple", weight="C")
    + SearchVector("answer_chars", config="simple", weight="D")
)


class KnowledgeEntry(models.Model):
    question = models.CharField(_("question or title"), max_length=QUESTION_MAX_LENGTH)
    answer = models.TextField(_("answer"), max_length=ANSWER_MAX_LENGTH)
    tags = ArrayField(models.CharField(max_length=TAG_MAX_LENGTH), verbose_name=_("tags"), default=list,
                      blank=True, size=TAGS_MAX_COUNT)
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    # jieba's tokens, space-separated, written by kb.services on every save (PostgreSQL
    # cannot segment Chinese); the tsvector below is derived from them by the database.
    question_terms = models.TextField(editable=False, default="")
    question_chars = models.TextField(editable=False, default="")
    answer_terms = models.TextField(editable=False, default="")
    answer_chars = models.TextField(editable=False, default="")
    search_vector = models.GeneratedField(expression=SEARCH_VECTOR, output_field=SearchVectorField(),
                                          db_persist=True)

    class Meta:
        verbose_name = _("knowledge entry")
        verbose_name_plural = _("knowledge entries")
        ordering = ["-updated_at", "-pk"]
        indexes = [GinIndex(fields=["search_vector"], name="kb_entry_search_gin")]
        constraints = [
            # The natural key of an entry: imports update the entry with the same question.
            models.UniqueConstraint(Lower("question"), name="kb_entry_unique_question",
                                    violation_error_message=_("An entry with this question already exists.")),
        ]

    def __str__(self) -> str:
        return self.question


class KnowledgeImport(models.Model):
    """A file import too large to run inside the request: the file waits here for the worker.

    The row stays pending until the worker commits the entries and the outcome together (or
    the errors, with no entry); the live progress in between is in Redis (kb.progress).
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    filename = models.CharField(_("file name"), max_length=255)
    file_format = models.CharField(_("format"), max_length=8)
    content = models.BinaryField(editable=False)
    total_rows = models.PositiveIntegerField(_("rows"), default=0)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PENDING)
    created_count = models.PositiveIntegerField(_("created"), default=0)
    updated_count = models.PositiveIntegerField(_("updated"), default=0)
    # [{"row": 3, "field": "answer", "message": "..."}] when the file was refused.
    errors = models.JSONField(_("errors"), default=list, blank=True)
    created_by = models.CharField(_("uploaded by"), max_length=150, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    # last time a job was sent for this row; the sweeper re-sends pending ones after a while
    enqueued_at = models.DateTimeField(null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("knowledge import")
        verbose_name_plural = _("knowledge imports")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.filename} ({self.get_status_display()})"
