"""Writes to the knowledge base: entries, file imports (all rows or none) and exports.

Every write of an entry goes through here, because the segmented tokens that feed the
full-text index are computed in Python (kb.segmentation) and must never go stale, and its
vectors are computed by a job enqueued here (kb.embeddings.sync) on commit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import structlog
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext as _

from kb import tabular
from kb.embeddings.sync import enqueue_embedding
from kb.embeddings.version import bump_embeddings_version_on_commit
from kb.jobs import enqueue_import
from kb.models import (
    ANSWER_MAX_LENGTH,
    QUESTION_MAX_LENGTH,
    TAG_MAX_LENGTH,
    TAGS_MAX_COUNT,
    KnowledgeEntry,
    KnowledgeImport,
)
from kb.progress import store_progress
from kb.segmentation import segment
from kb.tabular import FileRejected, ImportRow

logger = structlog.get_logger("kb")

# Files with more rows than this are imported by a worker, with a progress bar.
ASYNC_IMPORT_ROWS = 500
# An import this large refreshes the table's statistics at once: the lexical search reads PostgreSQL's
# statistics of the index (kb.selectors, common characters), and a server without autovacuum (or one that
# has not got round to it) would leave them missing or stale, and the search of a large base slow.
ANALYZE_AFTER_ROWS = 200
WRITE_CHUNK = 200
_TAG_SEPARATORS = re.compile(r"[,，;；、|\n]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TRUE = {"1", "true", "yes", "y", "on", "是", "启用", "开启", "有效"}
_FALSE = {"0", "false", "no", "n", "off", "否", "停用", "禁用", "关闭", "无效"}
ProgressCallback = Callable[[int, int], None]


class EntryInvalid(Exception):
    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class RowError:
    row: int
    field: str
    message: str

    def as_dict(self) -> dict:
        return {"row": self.row, "field": self.field, "message": self.message}


class ImportRejected(Exception):
    """At least one row is invalid; nothing was written. `errors` lists every problem, by row."""

    def __init__(self, errors: list[RowError]):
        super().__init__(f"{len(errors)} error(s) in rows {sorted({e.row for e in errors})}")
        self.errors = errors


@dataclass(frozen=True)
class EntryFields:
    question: str
    answer: str
    tags: list[str]
    enabled: bool


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int


# --- validation --------------------------------------------------------------------------


def _text(value: object) -> str:
    return _CONTROL.sub("", "" if value is None else str(value)).strip()


def normalise_question(value: object) -> str:
    return " ".join(_text(value).split())


def parse_tags(value: object) -> list[str]:
    """A list, or text separated by commas, semicolons, 、 or new lines (ASCII or full-width)."""
    if value is None:
        return []
    parts = value if isinstance(value, list | tuple) else _TAG_SEPARATORS.split(str(value))
    return list(dict.fromkeys(tag for tag in (" ".join(_text(part).split()) for part in parts) if tag))


def parse_enabled(value: object) -> bool | None:
    """True/False, or None when the value means neither; an empty cell means enabled."""
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text == "":
        return True
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def clean_entry_fields(*, question: object, answer: object, tags: object = None,
                       enabled: object = True) -> tuple[EntryFields | None, dict[str, str]]:
    """Cleaned fields, or the errors by field name. Shared by the admin form and imports."""
    errors: dict[str, str] = {}
    clean_question = normalise_question(question)
    clean_answer = _text(answer)
    clean_tags = parse_tags(tags)
    clean_enabled = parse_enabled(enabled)
    if not clean_question:
        errors["question"] = _("The question is required.")
    elif len(clean_question) > QUESTION_MAX_LENGTH:
        errors["question"] = _("The question is longer than %(max)d characters.") % {"max": QUESTION_MAX_LENGTH}
    if not clean_answer:
        errors["answer"] = _("The answer is required.")
    elif len(clean_answer) > ANSWER_MAX_LENGTH:
        errors["answer"] = _("The answer is longer than %(max)d characters.") % {"max": ANSWER_MAX_LENGTH}
    if len(clean_tags) > TAGS_MAX_COUNT:
        errors["tags"] = _("At most %(max)d tags.") % {"max": TAGS_MAX_COUNT}
    elif any(len(tag) > TAG_MAX_LENGTH for tag in clean_tags):
        errors["tags"] = _("A tag is longer than %(max)d characters.") % {"max": TAG_MAX_LENGTH}
    if clean_enabled is None:
        errors["enabled"] = _("Write yes or no (是/否, true/false, 1/0).")
    if errors:
        return None, errors
    return EntryFields(clean_question, clean_answer, clean_tags, clean_enabled), {}


def _index(entry: KnowledgeEntry) -> KnowledgeEntry:
    """Fill the token columns the full-text index is generated from."""
    question = segment(" ".join([entry.question, *entry.tags]))
    answer = segment(entry.answer)
    entry.question_terms = " ".join(question.terms)
    entry.question_chars = " ".join(question.chars)
    entry.answer_terms = " ".join(answer.terms)
    entry.answer_chars = " ".join(answer.chars)
    return entry


def _duplicate_error() -> dict[str, str]:
    return {"question": _("An entry with this question already exists.")}


def _question_taken(question: str, *, exclude_pk: int | None = None) -> bool:
    others = KnowledgeEntry.objects.annotate(lower_question=Lower("question")).filter(
        lower_question=question.lower())
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    return others.exists()


# --- entries -----------------------------------------------------------------------------


def create_entry(*, question: str, answer: str, tags: Sequence[str] = (), enabled: bool = True) -> KnowledgeEntry:
    fields, errors = clean_entry_fields(question=question, answer=answer, tags=list(tags), enabled=enabled)
    if errors:
        raise EntryInvalid(errors)
    if _question_taken(fields.question):
        raise EntryInvalid(_duplicate_error())
    entry = _index(KnowledgeEntry(question=fields.question, answer=fields.answer, tags=fields.tags,
                                  enabled=fields.enabled))
    try:
        with transaction.atomic():
            entry.save()
            if not enqueue_embedding([entry.pk]):  # no embed job to bump the version once vectors are written
                bump_embeddings_version_on_commit()  # the entries and words a search knows (kb.homophones)
    except IntegrityError as exc:  # created concurrently with the same question
        raise EntryInvalid(_duplicate_error()) from exc
    return entry


def update_entry(*, entry: KnowledgeEntry, question: str, answer: str, tags: Sequence[str],
                 enabled: bool) -> KnowledgeEntry:
    fields, errors = clean_entry_fields(question=question, answer=answer, tags=list(tags), enabled=enabled)
    if errors:
        raise EntryInvalid(errors)
    if _question_taken(fields.question, exclude_pk=entry.pk):
        raise EntryInvalid(_duplicate_error())
    text_changed = (entry.question, entry.answer, list(entry.tags)) != (fields.question, fields.answer, fields.tags)
    entry.question, entry.answer, entry.tags, entry.enabled = (fields.question, fields.answer, fields.tags,
                                                               fields.enabled)
    _index(entry)
    try:
        with transaction.atomic():
            entry.save()
            # Which entries a search may return, and their words (kb.homophones), may have changed: the version
            # moves now, or when the embed job has written the new vectors (one reload of vector caches, not two).
            if not (text_changed and enqueue_embedding([entry.pk])):
                bump_embeddings_version_on_commit()
    except IntegrityError as exc:
        raise EntryInvalid(_duplicate_error()) from exc
    return entry


def delete_entries(*, entry_ids: Sequence[int]) -> int:
    """Delete entries; their vectors go with them (CASCADE)."""
    with transaction.atomic():
        deleted = KnowledgeEntry.objects.filter(pk__in=list(entry_ids)).delete()[1].get(KnowledgeEntry._meta.label, 0)
        if deleted:
            bump_embeddings_version_on_commit()
    return deleted


def set_entries_enabled(*, entry_ids: Sequence[int], enabled: bool) -> int:
    """Disabled entries stay in the admin (and keep their vectors) but are never retrieved."""
    with transaction.atomic():
        changed = KnowledgeEntry.objects.filter(pk__in=list(entry_ids)).update(enabled=enabled,
                                                                               updated_at=timezone.now())
        if changed:
            bump_embeddings_version_on_commit()
    return changed


# --- import ------------------------------------------------------------------------------


def validate_rows(rows: Sequence[ImportRow]) -> tuple[list[tuple[int, EntryFields]], list[RowError]]:
    """Every row is checked, so the operator sees all problems of the file at once.

    Two rows with the same question (case-insensitive) are an error: we cannot tell which
    one the operator meant. A question that already exists in the knowledge base is not an
    error: that entry is updated, so exporting, editing and importing again round-trips.
    """
    valid: list[tuple[int, EntryFields]] = []
    errors: list[RowError] = []
    first_row_of: dict[str, int] = {}
    for row in rows:
        values = row.values
        fields, row_errors = clean_entry_fields(question=values.get("question"), answer=values.get("answer"),
                                                tags=values.get("tags"), enabled=values.get("enabled"))
        errors += [RowError(row.number, field, message) for field, message in row_errors.items()]
        if fields is None:
            continue
        key = fields.question.lower()
        if key in first_row_of:
            errors.append(RowError(row.number, "question", _("Same question as row %(row)d.")
                                   % {"row": first_row_of[key]}))
            continue
        first_row_of[key] = row.number
        valid.append((row.number, fields))
    return valid, errors


def _lock_imports() -> None:
    # One import at a time per tenant: two concurrent files with the same new question would
    # otherwise both try to create it. Advisory locks are database-wide, hence the schema.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{connection.schema_name}:kb.import"])


def import_entries(*, rows: Sequence[ImportRow], on_progress: ProgressCallback | None = None) -> ImportResult:
    """Validate every row, then write all of them in one transaction, or raise ImportRejected
    and write nothing. Existing entries with the same question are updated."""
    valid, errors = validate_rows(rows)
    if errors:
        raise ImportRejected(errors)
    created = updated = 0
    total = len(valid)
    touched: list[int] = []
    with transaction.atomic():
        _lock_imports()
        for start in range(0, total, WRITE_CHUNK):
            chunk = [fields for _number, fields in valid[start:start + WRITE_CHUNK]]
            existing = {entry.question.lower(): entry for entry in KnowledgeEntry.objects.annotate(
                lower_question=Lower("question")).filter(lower_question__in=[f.question.lower() for f in chunk])}
            new, changed = [], []
            now = timezone.now()
            for fields in chunk:
                entry = existing.get(fields.question.lower())
                if entry is None:
                    entry = KnowledgeEntry()
                    new.append(entry)
                else:
                    changed.append(entry)
                entry.question, entry.answer, entry.tags, entry.enabled = (fields.question, fields.answer,
                                                                           fields.tags, fields.enabled)
                entry.updated_at = now
                _index(entry)
            KnowledgeEntry.objects.bulk_create(new)
            KnowledgeEntry.objects.bulk_update(changed, ["question", "answer", "tags", "enabled", "updated_at",
                                                         "question_terms", "question_chars", "answer_terms",
                                                         "answer_chars"])
            touched.extend(entry.pk for entry in [*new, *changed])
            created += len(new)
            updated += len(changed)
            if on_progress:
                on_progress(created + updated, total)
        # On commit, a few jobs for the whole file (unchanged rows cost the job a hash comparison each).
        if not enqueue_embedding(touched):  # else the embed jobs move the version (kb.homophones reads it too)
            bump_embeddings_version_on_commit()
    if total >= ANALYZE_AFTER_ROWS:
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {KnowledgeEntry._meta.db_table}")  # the current tenant's table
    logger.info("kb.imported", tenant=connection.schema_name, created=created, updated=updated)
    return ImportResult(created=created, updated=updated)


@dataclass(frozen=True)
class ImportOutcome:
    """What the admin shows after an upload: a result, the errors, or a background job."""

    result: ImportResult | None = None
    errors: list[RowError] | None = None
    job: KnowledgeImport | None = None


def import_file(*, content: bytes, filename: str, uploaded_by: str = "") -> ImportOutcome:
    """Import an uploaded file: small files at once, larger ones by a worker (`kb.run_import`).

    Raises FileRejected when the file cannot be read at all.
    """
    file_format = tabular.file_format_of(filename)
    rows = tabular.read_rows(content=content, file_format=file_format)
    if len(rows) <= ASYNC_IMPORT_ROWS:
        try:
            return ImportOutcome(result=import_entries(rows=rows))
        except ImportRejected as rejected:
            return ImportOutcome(errors=rejected.errors)
    with transaction.atomic():
        job = KnowledgeImport.objects.create(filename=filename[:255], file_format=file_format, content=content,
                                             total_rows=len(rows), created_by=uploaded_by[:150],
                                             enqueued_at=timezone.now())
        store_progress(str(job.id), phase="queued", done=0, total=len(rows))
        enqueue_import(str(job.id))
    return ImportOutcome(job=job)


def run_import_job(*, job_id: str) -> None:
    """The worker's side of `import_file`. Safe to run twice: a finished job is left alone, and
    the whole import, with the job's outcome, commits or rolls back as one transaction."""
    with transaction.atomic():
        _lock_imports()  # also waits for a duplicate run of the same job to finish first
        job = KnowledgeImport.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status != KnowledgeImport.Status.PENDING:
            return
        job_key = str(job.id)

        def report(done: int, total: int) -> None:
            store_progress(job_key, phase="saving", done=done, total=total)

        store_progress(job_key, phase="validating", done=0, total=job.total_rows)
        try:
            rows = tabular.read_rows(content=bytes(job.content), file_format=job.file_format)
            result = import_entries(rows=rows, on_progress=report)
        except FileRejected as exc:
            _close_job(job, KnowledgeImport.Status.FAILED, errors=[{"row": 0, "field": "", "message": str(exc)}])
        except ImportRejected as rejected:
            _close_job(job, KnowledgeImport.Status.FAILED, errors=[error.as_dict() for error in rejected.errors])
        else:
            _close_job(job, KnowledgeImport.Status.SUCCEEDED, created=result.created, updated=result.updated)
    done = job.total_rows if job.status == KnowledgeImport.Status.SUCCEEDED else 0
    transaction.on_commit(lambda: store_progress(job_key, phase=job.status, done=done, total=job.total_rows))


def _close_job(job: KnowledgeImport, status: str, *, errors: list | None = None, created: int = 0,
            updated: int = 0) -> None:
    job.status = status
    job.errors = errors or []
    job.created_count, job.updated_count = created, updated
    job.finished_at = timezone.now()
    job.content = b""  # the entries are stored (or refused); the file need not be kept
    job.save(update_fields=["status", "errors", "created_count", "updated_count", "finished_at", "content"])


def requeue_stale_imports(*, older_than_seconds: int) -> int:
    """Invariant 4: a job lost with the broker (or a crashed worker) is enqueued again."""
    deadline = timezone.now() - timedelta(seconds=older_than_seconds)
    count = 0
    with transaction.atomic():
        stale = KnowledgeImport.objects.select_for_update(skip_locked=True).filter(
            status=KnowledgeImport.Status.PENDING, enqueued_at__lt=deadline)
        for job in stale:
            job.enqueued_at = timezone.now()
            job.save(update_fields=["enqueued_at"])
            enqueue_import(str(job.id))
            count += 1
    return count


# --- export ------------------------------------------------------------------------------


def export_entries(*, file_format: str) -> bytes:
    """All entries (enabled or not) in the import layout, so the file can be edited and re-imported."""
    if file_format not in tabular.FORMATS:
        raise ValueError(f"unknown export format {file_format!r}")
    entries = KnowledgeEntry.objects.order_by("pk").values_list("question", "answer", "tags", "enabled")
    if file_format == "csv":
        records = ((q, a, ", ".join(tags), "TRUE" if enabled else "FALSE") for q, a, tags, enabled in
                   entries.iterator(chunk_size=1000))
        return tabular.write_csv(records)
    records = ((q, a, ", ".join(tags), enabled) for q, a, tags, enabled in entries.iterator(chunk_size=1000))
    return tabular.write_xlsx(records)
