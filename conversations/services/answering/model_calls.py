"""Asking the model: the one path for answers, agents' suggestions and follow-up rewrites.

Each call goes through the tenant's circuit breaker; calls of one round run side by side (a
model answering in seconds must not make the tenant's customers wait for each other). Every
call is measured the same way wherever it comes from: `wecomdesk_llm_seconds{outcome}` and a
`llm_call` trace detail the caller records in its trace (the breaker's gauge is read from Redis by
the scheduler, conversations/schedule.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection

from conversations.ai.breaker import BreakerOpen, breaker_state, call_with_breaker
from conversations.ai.llm import LLMAnswer, LLMError, complete, complete_messages, tenant_display_name
from conversations.ai.prompt import rerank_messages, rewrite_messages
from conversations.metrics import LLM_SECONDS
from conversations.vocabulary import ModelOutcome
from kb.selectors import KnowledgeMatch
from tenants.concurrency import map_in_tenant
from tenants.log_context import bound
from tenants.telemetry import message_span


@dataclass(frozen=True, kw_only=True)
class Question:
    """What the model is asked: the customer's text, earlier turns of the conversation, knowledge."""

    text: str
    context: list[dict]
    knowledge: list[KnowledgeMatch]
    trace_id: uuid.UUID | None = None  # the customer message's, for its tracing span


@dataclass(frozen=True, kw_only=True)
class ModelCall:
    """How one call ended; `answer` is set when the model answered (OK or CANNOT_ANSWER)."""

    outcome: ModelOutcome
    seconds: float
    breaker: str | None  # the breaker's state after the calls of this batch
    answer: LLMAnswer | None = None
    error: str = ""

    def trace_detail(self) -> dict:
        detail = {"outcome": self.outcome.value, "ms": round(self.seconds * 1000, 1), "breaker": self.breaker}
        if self.answer is not None:
            detail["model"] = self.answer.model
        if self.error:
            detail["error"] = self.error
        return detail


# A rewrite is one short line, and it delays the answer: it gets few tokens and little patience (a
# timeout counts against the breaker like any failed call, and the caller falls back to its rule).
REWRITE_MAX_TOKENS = 64
REWRITE_TIMEOUT_SECONDS = 5.0


RERANK_MAX_TOKENS = 48  # "10,9,...,1" and some slack
RERANK_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, kw_only=True)
class Ranking:
    """Candidates (entries' questions, as retrieved) to order for a question."""

    question: str
    candidates: list[str]
    trace_id: uuid.UUID | None = None


@dataclass(frozen=True, kw_only=True)
class FollowUp:
    """A customer message that depends on earlier turns, to be made standalone."""

    text: str
    context: list[dict]
    trace_id: uuid.UUID | None = None


def ask_model(questions: list[Question], *, provider) -> list[ModelCall]:
    """Ask the tenant's model each question, side by side, through its breaker; in order."""
    tenant_name = tenant_display_name()  # here, not on the pool threads (it may query)

    def ask(question: Question) -> LLMAnswer:
        return call_with_breaker(provider, complete, provider, context=question.context, question=question.text,
                                 tenant_name=tenant_name,
                                 knowledge=[(m.entry.question, m.entry.answer, m.score) for m in question.knowledge])

    return _call_side_by_side(questions, ask, span="conversations.ask_model")


def rewrite_followups(followups: list[FollowUp], *, provider) -> list[ModelCall]:
    """Ask the tenant's model for the standalone form of each follow-up (the rewrite prompt of
    conversations/ai/prompt.py), side by side, through its breaker; in order."""

    def rewrite(followup: FollowUp) -> LLMAnswer:
        return call_with_breaker(provider, complete_messages, provider,
                                 messages=rewrite_messages(context=followup.context, message=followup.text),
                                 max_tokens=REWRITE_MAX_TOKENS, timeout_seconds=REWRITE_TIMEOUT_SECONDS)

    return _call_side_by_side(followups, rewrite, span="conversations.rewrite_followup")


def rank_candidates(rankings: list[Ranking], *, provider) -> list[ModelCall]:
    """Ask the tenant's model to order each ranking's candidates (the rerank prompt of
    conversations/ai/prompt.py), side by side, through its breaker; in order."""

    def rank(ranking: Ranking) -> LLMAnswer:
        return call_with_breaker(provider, complete_messages, provider,
                                 messages=rerank_messages(question=ranking.question, candidates=ranking.candidates),
                                 max_tokens=RERANK_MAX_TOKENS, timeout_seconds=RERANK_TIMEOUT_SECONDS)

    return _call_side_by_side(rankings, rank, span="conversations.rerank_knowledge")


def model_usable() -> bool:
    """Whether optional calls (rewrites, reranking) may go to the model: only with its breaker closed, so
    none of them is the half-open probe or waits on a model known to be down (Redis unreachable: no)."""
    return breaker_state(connection.schema_name).get("state") == "closed"


def _call_side_by_side(items: list[Question] | list[FollowUp] | list[Ranking], call: Callable[..., LLMAnswer], *,
                       span: str) -> list[ModelCall]:
    """call(item) for each item on the tenant's pool, each measured and in its message's span and log
    context; the breaker state they left and wecomdesk_llm_seconds recorded once for all."""

    def timed(item) -> tuple[LLMAnswer | LLMError, float]:
        started = time.monotonic()
        try:
            with message_span(span, trace_id=item.trace_id), bound(trace_id=item.trace_id):
                answer = call(item)
        except LLMError as exc:  # BreakerOpen is one
            return exc, time.monotonic() - started
        return answer, time.monotonic() - started

    results = map_in_tenant(timed, items)
    schema = connection.schema_name
    breaker = breaker_state(schema).get("state")  # what the calls left behind
    calls = [_model_call(result, seconds, breaker) for result, seconds in results]
    for made in calls:
        LLM_SECONDS.labels(tenant=schema, outcome=made.outcome.value).observe(made.seconds)
    return calls


def _model_call(result: LLMAnswer | LLMError, seconds: float, breaker: str | None) -> ModelCall:
    if isinstance(result, BreakerOpen):
        return ModelCall(outcome=ModelOutcome.BREAKER_OPEN, seconds=seconds, breaker=breaker)
    if isinstance(result, LLMError):
        return ModelCall(outcome=ModelOutcome.ERROR, seconds=seconds, breaker=breaker, error=str(result)[:200])
    outcome = ModelOutcome.CANNOT_ANSWER if result.cannot_answer else ModelOutcome.OK
    return ModelCall(outcome=outcome, seconds=seconds, breaker=breaker, answer=result)
