"""Use cases of the AI provider: ask it through the tenant's breaker, test it, reset the breaker."""

from __future__ import annotations

from collections.abc import Sequence

from conversations.ai.breaker import call_with_breaker, reset_breaker
from conversations.ai.llm import LLMAnswer, complete
from conversations.ai.models import AIProvider

CHECK_QUESTION = "你们的服务时间是什么时候？"
CHECK_KNOWLEDGE = [("服务时间（连接测试）", "连接测试：每天 9:00–18:00 在线。", 1.0)]


def ask_ai(
    *,
    provider: AIProvider,
    context: Sequence[dict],
    question: str,
    knowledge: Sequence[tuple[str, str, float]],
) -> LLMAnswer:
    """The pipeline's call: complete() guarded by the current tenant's circuit breaker.

    Raises LLMError subclasses only: LLMTimeout, LLMBadResponse, BreakerOpen (provider not called)
    or LLMError (provider unreachable). The caller answers with a fallback script on any of them.
    """
    return call_with_breaker(provider, complete, provider, context=context, question=question, knowledge=knowledge)


def check_ai_provider(*, provider: AIProvider) -> LLMAnswer:
    """One direct call with a fixed question and knowledge entry, for operators to test the settings.

    Bypasses the breaker on purpose: it must work while the breaker is open (to check a fix
    before resetting it), and an operator's test should not move the breaker either way.
    """
    return complete(provider, context=[], question=CHECK_QUESTION, knowledge=CHECK_KNOWLEDGE)


def reset_circuit_breaker(*, schema: str) -> None:
    reset_breaker(schema)
