"""Knowledge gaps: the customer questions the knowledge base did not answer, grouped with their
look-alikes into the admin's "unanswered questions" (docs/KNOWLEDGE.md, "Knowledge gaps").

1. `has_unscanned_messages()`: the scheduler's cheap check before it enqueues a collection
   (conversations/schedule.py);
2. `collect_knowledge_gaps()`: the job. It reads the `processed` trace events after the scan mark,
   keeps the customer's text messages that got a fallback, a handoff because nothing answered, or a
   best knowledge score under the tenant's threshold (`_unanswered`), and puts each into the most
   similar open or dismissed group, or a new one (`_group`, measures in question_similarity);
3. `resolve_gap()`: an entry written for a group was saved (the knowledge add form's origin
   `gap:<id>`, registered with kb.origins in conversations/apps.py);
4. `dismiss_gaps()` / `reopen_gaps()`: the operator's actions;
5. `entry_draft()`: the add form's initial question and tags for a group.

Resolved groups take no new messages: a question still unanswered once the entry exists was not
covered by it, and shows up as a new group.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import structlog
from django.db import connection, transaction
from django.db.models import Count, Max, Min
from django.utils import timezone

from conversations.models import (
    DeskSettings,
    InboundMessage,
    KnowledgeGap,
    KnowledgeGapMessage,
    KnowledgeGapScan,
    TraceEvent,
)
from conversations.services.question_similarity import (
    COSINE_THRESHOLD,
    LEXICAL_THRESHOLD,
    QuestionShape,
    cosine,
    lexical_similarity,
    question_shape,
    similar,
)
from conversations.vocabulary import HandoffReason, ModelOutcome, Outcome, Stage
from kb.embeddings import embed_query, from_bytes, to_bytes
from kb.models import KnowledgeEntry
from kb.segmentation import segment

logger = structlog.get_logger("conversations.knowledge_gaps")

Reason = KnowledgeGapMessage.Reason
Status = KnowledgeGap.Status
BATCH_EVENTS = 2000
# A round inserts its trace events at its end: events this recent may still have neighbours with lower
# ids about to commit, so the scan mark stays before them and they are read again next time.
SETTLE_SECONDS = 120
MAX_GROUPS_COMPARED = 2000  # the most recently seen open or dismissed groups
EXAMPLES_KEPT = 5
MEMBERS_READ = 500  # the latest messages of a group, for its wording and tags
DRAFT_TAGS = 3
NO_ANSWER_HANDOFFS = {HandoffReason.AI_CANNOT_ANSWER.value, HandoffReason.REPEATED_FALLBACKS.value}
MODEL_UNAVAILABLE = {ModelOutcome.ERROR.value, ModelOutcome.BREAKER_OPEN.value}


@dataclass(frozen=True, kw_only=True)
class Unanswered:
    inbound_id: int
    text: str
    reason: KnowledgeGapMessage.Reason
    top_score: float | None
    received_at: datetime


@dataclass(frozen=True, kw_only=True)
class CollectResult:
    scanned: int  # processed messages looked at
    unanswered: int  # of those, new members of a group
    new_groups: int


@dataclass(frozen=True, kw_only=True)
class EntryDraft:
    question: str
    tags: list[str]


@dataclass(eq=False)
class _Group:
    """A group as the collector compares against it: its examples' shapes and its question's vector."""

    gap: KnowledgeGap
    shapes: list[QuestionShape]
    vector: np.ndarray | None = None
    texts: set[str] = field(default_factory=set)
    dirty: bool = False  # its vector changed
    touched: bool = False  # it took a message in this run


# --- 1, 2: collecting -------------------------------------------------------------------------------

def has_unscanned_messages() -> bool:
    mark = KnowledgeGapScan.objects.filter(pk=1).values_list("scanned_up_to", flat=True).first() or 0
    return TraceEvent.objects.filter(stage=Stage.PROCESSED, pk__gt=mark).exists()


def collect_knowledge_gaps(*, batch: int = BATCH_EVENTS) -> CollectResult:
    """Group the unanswered questions among the next `batch` processed messages. Safe to run twice
    or at once: a message joins one group at most, and a second run waits for the first's lock."""
    with transaction.atomic():
        _lock()
        scan = KnowledgeGapScan.objects.select_for_update().get_or_create(pk=1)[0]
        events = list(TraceEvent.objects.filter(stage=Stage.PROCESSED, pk__gt=scan.scanned_up_to,
                                                inbound__isnull=False)
                      .order_by("pk").values("pk", "inbound_id", "detail", "created_at")[:batch])
        if not events:
            return CollectResult(scanned=0, unanswered=0, new_groups=0)
        candidates = _unanswered(events, min_score=DeskSettings.current().knowledge_min_score)
        grouped = set(KnowledgeGapMessage.objects.filter(inbound_id__in=[c.inbound_id for c in candidates])
                      .values_list("inbound_id", flat=True))
        fresh = [c for c in candidates if c.inbound_id not in grouped]
        new_groups = _group(fresh)
        scan.scanned_up_to = _settled_mark(events, previous=scan.scanned_up_to)
        scan.save(update_fields=["scanned_up_to", "updated_at"])
    logger.info("knowledge_gaps.collected", tenant=connection.schema_name, scanned=len(events),
                unanswered=len(fresh), new_groups=new_groups)
    return CollectResult(scanned=len(events), unanswered=len(fresh), new_groups=new_groups)


def _lock() -> None:
    # One collector at a time per tenant (advisory locks are database-wide, hence the schema).
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{connection.schema_name}:knowledge_gaps"])


def _settled_mark(events: list[dict], *, previous: int) -> int:
    """The id up to which every event is old enough that no lower id can still commit."""
    cutoff = timezone.now() - timedelta(seconds=SETTLE_SECONDS)
    mark = previous
    for event in events:
        if event["created_at"] >= cutoff:
            break
        mark = event["pk"]
    return mark


def _unanswered(events: list[dict], *, min_score: float) -> list[Unanswered]:
    """The customer text messages among these `processed` events that the knowledge did not answer."""
    outcomes = {event["inbound_id"]: event["detail"].get("outcome") for event in events}
    retrieved: dict[int, dict] = {}
    model: dict[int, str] = {}
    handoff: dict[int, str] = {}
    standalone: dict[int, str] = {}
    for inbound_id, stage, detail in (TraceEvent.objects.filter(
            inbound_id__in=list(outcomes),
            stage__in=[Stage.REWRITTEN, Stage.RETRIEVED, Stage.LLM_CALL, Stage.HANDOFF])
            .order_by("pk").values_list("inbound_id", "stage", "detail")):
        if stage == Stage.RETRIEVED:
            retrieved[inbound_id] = detail
        elif stage == Stage.LLM_CALL and "purpose" not in detail:  # the answer's call, not a rewrite or rerank
            model[inbound_id] = detail.get("outcome", "")
        elif stage == Stage.HANDOFF:
            handoff[inbound_id] = detail.get("reason", "")
        elif isinstance(detail.get("standalone"), str):
            standalone[inbound_id] = detail["standalone"]
    found = []
    for inbound_id, text, received_at in (InboundMessage.objects.filter(pk__in=list(outcomes), msg_type="text")
                                          .order_by("received_at", "pk")
                                          .values_list("pk", "content", "received_at")):
        search = retrieved.get(inbound_id)
        if not text.strip() or search is None or "menu_id" in search:  # a menu click is the answer chosen
            continue
        top = search.get("top_score")
        low = top is None or top < min_score
        reason = _reason(outcomes[inbound_id], low=low, model=model.get(inbound_id),
                         handoff=handoff.get(inbound_id))
        if reason is not None:
            # a follow-up ("那运费呢？") counts as the standalone question it was searched as
            question = standalone.get(inbound_id, "").strip() or text.strip()
            found.append(Unanswered(inbound_id=inbound_id, text=question[:1000], reason=reason, top_score=top,
                                    received_at=received_at))
    return found


def _reason(outcome: str | None, *, low: bool, model: str | None, handoff: str | None) -> Reason | None:
    if outcome == Outcome.FALLBACK:
        # The model being down is no gap in the knowledge when the knowledge had a good match.
        return Reason.FALLBACK if low or model not in MODEL_UNAVAILABLE else None
    if outcome == Outcome.HANDOFF:
        # Asking for a human, or a picture, says nothing about the knowledge.
        return Reason.NO_ANSWER if handoff in NO_ANSWER_HANDOFFS else None
    if outcome in (Outcome.AI, Outcome.KNOWLEDGE) and low:
        return Reason.LOW_SCORE
    return None


def _group(candidates: list[Unanswered]) -> int:
    """Each candidate into the most similar open or dismissed group, or a new one; returns how many new."""
    if not candidates:
        return 0
    groups = [_Group(gap=gap, shapes=[question_shape(example["text"]) for example in gap.examples],
                     texts={example["text"] for example in gap.examples})
              for gap in KnowledgeGap.objects.filter(status__in=[Status.OPEN, Status.DISMISSED])
              .order_by("-last_seen_at")[:MAX_GROUPS_COMPARED]]
    vectors = _VectorCache()
    members, new_groups = [], 0
    for candidate in candidates:
        shape = question_shape(candidate.text)
        vector = vectors.of_text(candidate.text)
        best, best_strength = None, 0.0
        for group in groups:
            lexical = max((lexical_similarity(shape, known) for known in group.shapes), default=0.0)
            cos = cosine(vector, vectors.of_group(group)) if vector is not None else None
            if similar(lexical=lexical, cosine_similarity=cos):
                # how far past its threshold the stronger measure is, so the two scales compare
                strength = max(lexical / LEXICAL_THRESHOLD, (cos or 0.0) / COSINE_THRESHOLD)
                if strength > best_strength:
                    best, best_strength = group, strength
        if best is None:
            best = _Group(gap=KnowledgeGap.objects.create(
                question=candidate.text[:300], first_seen_at=candidate.received_at,
                last_seen_at=candidate.received_at), shapes=[])
            best.vector = vector
            best.dirty = vector is not None
            groups.append(best)
            new_groups += 1
        if candidate.text not in best.texts and len(best.gap.examples) < EXAMPLES_KEPT:
            best.gap.examples = [*best.gap.examples, {"inbound": candidate.inbound_id, "text": candidate.text[:200]}]
            best.shapes.append(shape)
            best.texts.add(candidate.text)
            best.dirty = True
        members.append(KnowledgeGapMessage(gap=best.gap, inbound_id=candidate.inbound_id, text=candidate.text,
                                           reason=candidate.reason, top_score=candidate.top_score,
                                           received_at=candidate.received_at))
        best.touched = True
    KnowledgeGapMessage.objects.bulk_create(members)
    _refresh([group for group in groups if group.touched], vectors)
    for group in groups:  # vectors embedded for groups nobody joined are kept too
        if group.dirty and not group.touched:
            _store_vector(group, vectors)
            group.gap.save(update_fields=["vector", "vector_model"])
    return new_groups


class _VectorCache:
    """Vectors of this run under the tenant's current embedder (kb.embeddings); none without one."""

    def __init__(self):
        self.model_id: str | None = None
        self.available = True

    def of_text(self, text: str) -> np.ndarray | None:
        if not self.available:
            return None
        embedded = embed_query(text)
        if embedded is None:
            self.available = False  # no embedder, or it failed: lexical only for this run
            return None
        self.model_id, vector = embedded
        return vector

    def of_group(self, group: _Group) -> np.ndarray | None:
        if group.vector is None and group.gap.vector and group.gap.vector_model == self.model_id:
            group.vector = from_bytes(group.gap.vector)
        if group.vector is None and self.available:
            group.vector = self.of_text(group.gap.question)
            group.dirty = group.vector is not None
        return group.vector


def _store_vector(group: _Group, vectors: _VectorCache) -> None:
    if group.vector is not None and vectors.model_id:
        group.gap.vector, group.gap.vector_model = to_bytes(group.vector), vectors.model_id


def _refresh(groups: list[_Group], vectors: _VectorCache) -> None:
    """Counts and dates from the groups' messages (exact, whatever ran before), and the wording most
    customers used as the group's question."""
    if not groups:
        return
    stats = {row["gap"]: row for row in KnowledgeGapMessage.objects.filter(gap__in=[g.gap for g in groups])
             .values("gap").annotate(count=Count("pk"), first=Min("received_at"), last=Max("received_at"))}
    for group in groups:
        gap = group.gap
        row = stats[gap.pk]
        gap.message_count, gap.first_seen_at, gap.last_seen_at = row["count"], row["first"], row["last"]
        wording = _most_frequent_wording(gap)
        if wording != gap.question:
            gap.question = wording
            group.vector = vectors.of_text(wording) if vectors.model_id else None
            gap.vector, gap.vector_model = None, ""
        _store_vector(group, vectors)
        gap.save(update_fields=["question", "message_count", "examples", "first_seen_at", "last_seen_at",
                                "vector", "vector_model"])


def _most_frequent_wording(gap: KnowledgeGap) -> str:
    texts = _member_texts(gap)
    counts = Counter(texts)
    if not counts:
        return gap.question
    first_seen = {text: position for position, text in reversed(list(enumerate(texts)))}
    # most customers' wording; among equals the one seen first
    return min(counts, key=lambda text: (-counts[text], first_seen.get(text, 0)))[:300]


def _member_texts(gap: KnowledgeGap) -> list[str]:
    """The group's latest messages' texts, oldest first."""
    texts = list(KnowledgeGapMessage.objects.filter(gap=gap).order_by("-pk").values_list("text", flat=True)
                 [:MEMBERS_READ])
    return [" ".join(text.split()) for text in reversed(texts)]


# --- 3, 4: the operator's side ---------------------------------------------------------------------

def resolve_gap(*, gap_id: int, entry: KnowledgeEntry) -> bool:
    """The entry written for this group is saved (inside its transaction): the group is resolved."""
    gap = KnowledgeGap.objects.select_for_update().filter(pk=gap_id).first()
    if gap is None:
        return False
    gap.status, gap.entry, gap.resolved_at = Status.RESOLVED, entry, timezone.now()
    gap.save(update_fields=["status", "entry", "resolved_at"])
    logger.info("knowledge_gaps.resolved", tenant=connection.schema_name, gap=gap.pk, entry=entry.pk)
    return True


def dismiss_gaps(*, gap_ids: Iterable[int]) -> int:
    """Noise (greetings, chatter): out of the open list, and look-alikes join the dismissed group."""
    return KnowledgeGap.objects.filter(pk__in=list(gap_ids), status=Status.OPEN).update(status=Status.DISMISSED)


def reopen_gaps(*, gap_ids: Iterable[int]) -> int:
    return KnowledgeGap.objects.filter(pk__in=list(gap_ids)).exclude(status=Status.OPEN).update(
        status=Status.OPEN, entry=None, resolved_at=None)


# --- 5: the knowledge entry's draft ----------------------------------------------------------------

def entry_draft(gap: KnowledgeGap) -> EntryDraft:
    """The group's question, and as tags its most frequent words (a word inside a chosen one, or
    containing it, adds nothing: jieba's search mode yields both 增值 and 增值税)."""
    counts: Counter[str] = Counter()
    for text in _member_texts(gap) or [gap.question]:
        counts.update({term for term in segment(text).terms if len(term) > 1})
    tags: list[str] = []
    for word, _count in sorted(counts.items(), key=lambda item: (-item[1], -len(item[0]), item[0])):
        if not any(word in tag or tag in word for tag in tags):
            tags.append(word)
        if len(tags) == DRAFT_TAGS:
            break
    return EntryDraft(question=gap.question, tags=tags)
