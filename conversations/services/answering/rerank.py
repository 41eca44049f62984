"""Optional reranking of retrieved knowledge by the tenant's model, before it answers.

Off unless `settings.ANSWER_RERANK` is true (a platform switch, not a tenant setting: each rerank is one
more model call, in sequence, before every answer). When on, a provider is enabled, its breaker closed
and a question retrieved at least two entries, the model orders the top `MAX_CANDIDATES` (the rerank
prompt of conversations/ai/prompt.py, through the breaker, so metrics and the `llm_call` trace apply).

The new order only decides which knowledge the answer prompt shows first; the scores stay the retrieval's,
so the knowledge-only threshold and the menu of likely questions mean what they meant. Any failure (an
error, a timeout, a reply naming no candidate) keeps the retrieved order, silently for the customer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings

from conversations.ai.prompt import parse_ranking
from conversations.services.answering.model_calls import ModelCall, Ranking, model_usable, rank_candidates
from conversations.vocabulary import ModelOutcome
from kb.selectors import KnowledgeMatch

MAX_CANDIDATES = 10  # what a short prompt can list and a reply of a few tokens can order


@dataclass(frozen=True, kw_only=True)
class Reranked:
    """The matches in the order to show the model (the retrieved order when the call failed)."""

    matches: list[KnowledgeMatch]
    call: ModelCall
    reordered: bool

    def trace_detail(self) -> dict:
        detail = {"purpose": "rerank", **self.call.trace_detail()}
        if self.reordered:
            detail["order"] = [match.entry.pk for match in self.matches]
        return detail


def rerank_enabled(provider) -> bool:
    return provider is not None and bool(getattr(settings, "ANSWER_RERANK", False))


@dataclass(frozen=True, kw_only=True)
class Retrieved:
    """A question (the standalone one for a follow-up) and what retrieval found for it, best first."""

    question: str
    matches: list[KnowledgeMatch]
    trace_id: uuid.UUID | None = None


def rerank(retrieved: list[Retrieved], *, provider) -> list[Reranked | None]:
    """Each question's matches reranked by the model, in order; None where nothing was asked (reranking
    off, breaker not closed, fewer than two matches)."""
    wanted = [i for i, item in enumerate(retrieved) if len(item.matches) >= 2]
    results: list[Reranked | None] = [None] * len(retrieved)
    if not wanted or not rerank_enabled(provider) or not model_usable():
        return results
    rankings = [Ranking(question=retrieved[i].question, trace_id=retrieved[i].trace_id,
                        candidates=[m.entry.question for m in retrieved[i].matches[:MAX_CANDIDATES]]) for i in wanted]
    for i, call in zip(wanted, rank_candidates(rankings, provider=provider), strict=True):
        matches = retrieved[i].matches
        top = matches[:MAX_CANDIDATES]
        order = parse_ranking(call.answer.text, count=len(top)) if call.outcome == ModelOutcome.OK else None
        if order is None:
            results[i] = Reranked(matches=matches, call=call, reordered=False)
        else:
            results[i] = Reranked(matches=[top[p] for p in order] + matches[MAX_CANDIDATES:], call=call,
                                  reordered=True)
    return results
