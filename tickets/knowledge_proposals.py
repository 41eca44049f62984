"""Knowledge proposals: what an agent answered on a resolved ticket, proposed as a knowledge entry
for an operator to approve (as is or edited) or reject in the admin (docs/KNOWLEDGE.md, "Knowledge gaps").

1. `propose_knowledge()`: called by tickets.services.change_ticket_status when a ticket is resolved
   (or closed without being resolved first), in its transaction. The question is the customer's
   question that led to the handoff (`_customer_question`), the answer the agent's text replies on
   the ticket. Nothing is proposed when the agent promoted an answer already, nobody replied in
   text, or the ticket has a proposal (one per ticket);
2. `update_proposal()`: the operator's edits before deciding;
3. `approve_proposal()`: the entry is created through kb.services (segmented, indexed and embedded
   like any other) and linked; `reject_proposals()`: no entry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from conversations.models import DeskSettings, Message, TraceEvent
from conversations.vocabulary import Stage
from kb.models import ANSWER_MAX_LENGTH, QUESTION_MAX_LENGTH, KnowledgeEntry
from kb.segmentation import segment
from kb.services import EntryInvalid, clean_entry_fields, create_entry
from tickets.models import KnowledgeProposal, Ticket, TicketEvent

Status = KnowledgeProposal.Status
_NOT_WORD = re.compile(r"[\W_]+")


class ProposalRefused(ValueError):
    """The operator's action is not possible; the message says why."""


# --- 1: proposing ---------------------------------------------------------------------------------

def propose_knowledge(*, ticket: Ticket) -> KnowledgeProposal | None:
    """The ticket's agent answer as a proposed entry, or None when there is nothing to propose."""
    if KnowledgeProposal.objects.filter(ticket=ticket).exists():
        return None
    events = list(ticket.events.filter(kind__in=["agent_reply", "promoted_to_knowledge"]).order_by("pk"))
    if any(event.kind == "promoted_to_knowledge" for event in events):
        return None
    replies = [event for event in events if event.kind == "agent_reply" and "attachment" not in event.detail]
    texts = dict(Message.objects.filter(pk__in=[event.detail.get("message") for event in replies],
                                        author=Message.Author.AGENT).values_list("pk", "text"))
    answer = "\n".join(texts[event.detail["message"]].strip() for event in replies
                       if texts.get(event.detail.get("message"), "").strip())
    if not answer:
        return None
    first_reply = min(texts)
    question = _customer_question(ticket, before_message=first_reply)
    if not question:
        return None
    return KnowledgeProposal.objects.create(ticket=ticket, question=question[:QUESTION_MAX_LENGTH],
                                            answer=answer[:ANSWER_MAX_LENGTH], agent=replies[-1].actor)


def _customer_question(ticket: Ticket, *, before_message: int) -> str:
    """The customer message that was handed off when it asks something itself; when it only asks for a
    human ("转人工"), the last real question before it, else the first one after it (told to the agent)."""
    messages = list(Message.objects.filter(conversation_id=ticket.conversation_id, author=Message.Author.CUSTOMER,
                                           pk__lt=before_message).order_by("pk").values_list("inbound_id", "text"))
    handed_off = (TraceEvent.objects.filter(stage=Stage.HANDOFF, detail__ticket=ticket.pk, inbound__isnull=False)
                  .order_by("pk").values_list("inbound_id", flat=True).first())
    position = next((i for i, (inbound_id, _text) in enumerate(messages) if inbound_id == handed_off),
                    len(messages) - 1)
    keywords = [keyword for keyword in DeskSettings.current().handoff_keywords if keyword]
    texts = [text for _inbound, text in messages]
    for text in [*reversed(texts[:position + 1]), *texts[position + 1:]]:
        if _asks_something(text, keywords):
            return " ".join(text.split())
    return ""


def _asks_something(text: str, keywords: Sequence[str]) -> bool:
    """More than a request for a human: a word of two characters or more once the keywords are gone."""
    for keyword in sorted(keywords, key=len, reverse=True):
        text = re.sub(re.escape(keyword), " ", text, flags=re.IGNORECASE)
    return any(len(term) > 1 for term in segment(_NOT_WORD.sub(" ", text)).terms)


# --- 2, 3: the operator's decisions -----------------------------------------------------------------

def update_proposal(*, proposal: KnowledgeProposal, question: str, answer: str,
                    tags: Sequence[str]) -> KnowledgeProposal:
    fields, errors = clean_entry_fields(question=question, answer=answer, tags=list(tags))
    if errors:
        raise ProposalRefused("; ".join(errors.values()))
    with transaction.atomic():
        locked = _lock_proposed(proposal.pk)
        locked.question, locked.answer, locked.tags = fields.question, fields.answer, fields.tags
        locked.save(update_fields=["question", "answer", "tags"])
    return locked


def approve_proposal(*, proposal_id: int, by) -> KnowledgeEntry:
    """Create the entry from the proposal as it stands; refused when decided already or invalid
    (e.g. an entry with this question exists: the operator edits the question or rejects)."""
    with transaction.atomic():
        proposal = _lock_proposed(proposal_id)
        try:
            entry = create_entry(question=proposal.question, answer=proposal.answer, tags=proposal.tags)
        except EntryInvalid as exc:
            raise ProposalRefused("; ".join(exc.errors.values())) from exc
        _decide(proposal, Status.APPROVED, by=by, entry=entry)
        TicketEvent.objects.create(ticket_id=proposal.ticket_id, actor=by, kind="knowledge_approved",
                                   detail={"entry": entry.pk, "proposal": proposal.pk})
    return entry


def reject_proposals(*, proposal_ids: Iterable[int], by) -> int:
    rejected = 0
    with transaction.atomic():
        for proposal in (KnowledgeProposal.objects.select_for_update()
                         .filter(pk__in=list(proposal_ids), status=Status.PROPOSED).order_by("pk")):
            _decide(proposal, Status.REJECTED, by=by)
            rejected += 1
    return rejected


def _lock_proposed(proposal_id: int) -> KnowledgeProposal:
    proposal = KnowledgeProposal.objects.select_for_update().filter(pk=proposal_id).first()
    if proposal is None:
        raise ProposalRefused(_("Proposal not found."))
    if proposal.status != Status.PROPOSED:
        raise ProposalRefused(_("This proposal was decided already."))
    return proposal


def _decide(proposal: KnowledgeProposal, status: str, *, by, entry: KnowledgeEntry | None = None) -> None:
    proposal.status, proposal.entry, proposal.decided_by, proposal.decided_at = status, entry, by, timezone.now()
    proposal.save(update_fields=["status", "entry", "decided_by", "decided_at"])
