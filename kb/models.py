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


class EntryEmbedding(models.Model):
    """One vector of one entry under one embedding model, written by the embed job (kb.embeddings.sync).

    An entry has one row per kind and model; after a completed re-embed with a new model the rows
    of the other models are deleted.
    """

    class Kind(models.TextChoices):
        TITLE = "title", _("question + tags")
        FULL = "full", _("question + tags + answer")

    entry = models.ForeignKey(KnowledgeEntry, on_delete=models.CASCADE, related_name="embeddings")
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    model_id = models.CharField(_("model"), max_length=120)
    dims = models.PositiveSmallIntegerField(_("dimensions"))
    # float32 little-endian, L2-normalised: numpy.frombuffer(vector, dtype="<f4")
    vector = models.BinaryField()
    # sha256 of the embedded text: an entry saved with the same text is not embedded again
    text_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(_("embedded"), auto_now=True)

    class Meta:
        verbose_name = _("entry embedding")
        verbose_name_plural = _("entry embeddings")
        constraints = [
            models.UniqueConstraint(fields=["entry", "kind", "model_id"], name="kb_embedding_unique_entry_kind_model"),
        ]
        indexes = [models.Index(fields=["model_id"], name="kb_embedding_model_idx")]

    def __str__(self) -> str:
        return f"{self.entry_id}/{self.kind}/{self.model_id}"


class Synonym(models.Model):
    """A tenant's group of words that mean the same (快递 包裹 物流), applied to lexical and vector search.

    words: >= 2 distinct non-empty words, each <= 32 characters, <= 20 words (checked by the service that saves it).
    """

    words = models.JSONField(_("words"), default=list)
    enabled = models.BooleanField(_("enabled"), default=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("synonym group")
        verbose_name_plural = _("synonym groups")
        ordering = ["-updated_at", "-pk"]

    def __str__(self) -> str:
        return " / ".join(str(word) for word in self.words)


class EntryStats(models.Model):
    """How often an entry answered customers and how they rated those answers. Written by kb.stats from the
    answering pipeline, in a table of its own so that counting a use never rewrites the entry's row (and its
    search index) on the message path."""

    entry = models.OneToOneField(KnowledgeEntry, on_delete=models.CASCADE, primary_key=True, related_name="stats")
    used_count = models.PositiveIntegerField(_("answers"), default=0)
    helpful_count = models.PositiveIntegerField(_("rated helpful"), default=0)
    unhelpful_count = models.PositiveIntegerField(_("rated not helpful"), default=0)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        verbose_name = _("entry statistics")
        verbose_name_plural = _("entry statistics")

    def __str__(self) -> str:
        return f"{self.entry_id}: {self.used_count} / +{self.helpful_count} / -{self.unhelpful_count}"
