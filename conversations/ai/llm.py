"""One call to the tenant's chat-completions endpoint: build the messages, POST, parse, detect the handoff.

`complete()` does no retrying and knows nothing of the breaker (breaker.py wraps it). It raises
only LLMError subclasses, whose messages never contain the API key; nor do the log lines.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import structlog
from django.db import connection
from django_tenants.utils import get_tenant_model

from conversations.ai.prompt import render_system_prompt, split_handoff
from conversations.encryption import mask
from tenants.outbound_urls import guarded_transport

logger = structlog.get_logger("conversations.ai")

CONTEXT_ROLES = ("user", "assistant")
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
ERROR_EXCERPT_CHARS = 300


@dataclass(frozen=True)
class LLMAnswer:
    text: str  # the reply without the handoff marker ("" when the model only handed off)
    cannot_answer: bool  # the model replied with the handoff marker, or with nothing
    latency_ms: int
    model: str  # as reported by the provider (falls back to the requested model)
    usage: dict[str, int] = field(default_factory=dict)  # prompt_tokens, completion_tokens, total_tokens
    finish_reason: str | None = None  # "stop", "length" (cut at max_tokens), ...


class LLMError(Exception):
    """The provider gave no usable answer. `retryable`: trying again later may help."""

    retryable = True

    def __init__(self, message: str, *, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


class LLMTimeout(LLMError):
    """No complete answer within the provider's timeout_seconds (connect, send, wait and read together)."""


class LLMBadResponse(LLMError):
    """The provider answered, but not with a completion: an HTTP error status, or a body we cannot use."""

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status_code is None or self.status_code == 429 or self.status_code >= 500


# -- the pooled HTTP client, one per process -------------------------------------------------------

_client: httpx.Client | None = None
_client_pid: int | None = None
_client_lock = threading.Lock()


def http_client() -> httpx.Client:
    """A keep-alive pool shared by the threads of this process (re-created after a fork)."""
    global _client, _client_pid
    with _client_lock:
        if _client is None or _client_pid != os.getpid():
            # Every new connection goes only to a public address unless the platform allows private ones
            # (tenants/outbound_urls.py); no redirects, and no proxy from the environment to route around it.
            _client = httpx.Client(
                transport=guarded_transport(limits=httpx.Limits(max_connections=100, max_keepalive_connections=20,
                                                                keepalive_expiry=30)),
                follow_redirects=False, trust_env=False,
            )
            _client_pid = os.getpid()
        return _client


# -- messages ----------------------------------------------------------------------------------------


def tenant_display_name(schema: str | None = None) -> str:
    """The current tenant's display name (the public Tenant row), for {tenant_name}."""
    tenant = getattr(connection, "tenant", None)
    schema = schema or connection.schema_name
    name = getattr(tenant, "name", None) if getattr(tenant, "schema_name", None) == schema else None
    if name:
        return name
    # search_path is "<tenant>, public", so the public Tenant table is visible from a tenant schema.
    return get_tenant_model().objects.filter(schema_name=schema).values_list("name", flat=True).first() or schema


def build_messages(
    provider,
    *,
    context: Sequence[dict],
    question: str,
    knowledge: Sequence[tuple[str, str, float]],
    tenant_name: str | None = None,
) -> list[dict[str, str]]:
    """[system prompt with the knowledge, *context turns (oldest first), the user's question]."""
    system = render_system_prompt(
        provider.system_prompt_template, tenant_name=tenant_name or tenant_display_name(), knowledge=knowledge
    )
    messages = [{"role": "system", "content": system}]
    for turn in context:
        role, content = turn.get("role"), turn.get("content")
        if role not in CONTEXT_ROLES or not isinstance(content, str):
            raise ValueError(f"context turns are {{'role': 'user'|'assistant', 'content': str}}, got role {role!r}")
        if content.strip():
            messages.append({"role": role, "content": content})
    messages.append({"role": "user", "content": question})
    return messages


# -- the call ----------------------------------------------------------------------------------------


def complete(
    provider,
    *,
    context: Sequence[dict],
    question: str,
    knowledge: Sequence[tuple[str, str, float]],
    tenant_name: str | None = None,
) -> LLMAnswer:
    """Ask the provider once. Raises LLMTimeout, LLMBadResponse, or LLMError (cannot connect)."""
    messages = build_messages(provider, context=context, question=question, knowledge=knowledge,
                              tenant_name=tenant_name)
    return complete_messages(provider, messages=messages)


def complete_messages(
    provider,
    *,
    messages: list[dict[str, str]],
    max_tokens: int | None = None,
    timeout_seconds: float | None = None,
) -> LLMAnswer:
    """complete() for messages built elsewhere (e.g. the follow-up rewrite prompt); `max_tokens` and
    `timeout_seconds` at most the provider's own. Raises what complete() raises."""
    max_tokens = min(max_tokens or provider.max_tokens, provider.max_tokens)
    timeout = min(timeout_seconds or float(provider.timeout_seconds), float(provider.timeout_seconds))
    payload = {
        "model": provider.model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": provider.temperature,
    }
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if provider.api_key:
        headers["Authorization"] = f"Bearer {provider.api_key}"
    log = logger.bind(tenant=connection.schema_name, model=provider.model, base_url=provider.base_url)
    started = time.monotonic()
    try:
        status, body = _post(provider.chat_completions_url, payload, headers, timeout)
        answer = _parse(provider, status, body, started)
    except LLMError as exc:
        log.warning("ai.llm.failed", error=type(exc).__name__, status_code=exc.status_code,
                    detail=str(exc), latency_ms=_ms_since(started))
        raise
    log.info("ai.llm.answered", latency_ms=answer.latency_ms, cannot_answer=answer.cannot_answer,
             finish_reason=answer.finish_reason, **{f"usage_{k}": v for k, v in answer.usage.items()})
    return answer


def _post(url: str, payload: dict, headers: dict, timeout: float) -> tuple[int, bytes]:
    # httpx timeouts are per phase; the deadline makes timeout_seconds bound the whole exchange, so a
    # provider trickling bytes cannot hold a worker thread longer than configured.
    deadline = time.monotonic() + timeout
    try:
        with http_client().stream("POST", url, json=payload, headers=headers,
                                  timeout=httpx.Timeout(timeout)) as response:
            length = response.headers.get("Content-Length", "")
            expected = int(length) if length.isdigit() else 0
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise LLMBadResponse(f"response larger than {MAX_RESPONSE_BYTES} bytes",
                                         status_code=response.status_code)
                chunks.append(chunk)
                if time.monotonic() > deadline and not (expected and size >= expected):
                    raise LLMTimeout(f"no complete answer within {timeout:g} s")
            return response.status_code, b"".join(chunks)
    except httpx.TimeoutException as exc:
        raise LLMTimeout(f"no answer within {timeout:g} s ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        # httpx messages name the URL and the failure, never the request headers.
        raise LLMError(f"cannot reach the provider: {type(exc).__name__}: {exc}") from None


def _parse(provider, status: int, body: bytes, started: float) -> LLMAnswer:
    if not 200 <= status < 300:
        raise LLMBadResponse(f"HTTP {status}: {_error_excerpt(body, provider.api_key)}", status_code=status)
    try:
        data = json.loads(body)
        choice = data["choices"][0]
        content = choice["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMBadResponse(
            f"HTTP {status} without a completion: {_error_excerpt(body, provider.api_key)}", status_code=status
        ) from None
    if not isinstance(content, str):
        raise LLMBadResponse(f"HTTP {status}: message content is {type(content).__name__}", status_code=status)
    text, cannot_answer = split_handoff(content)
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    return LLMAnswer(
        text=text,
        cannot_answer=cannot_answer,
        latency_ms=_ms_since(started),
        model=str(data.get("model") or provider.model),
        usage={k: int(v) for k, v in usage.items() if isinstance(v, int | float) and not isinstance(v, bool)},
        finish_reason=choice.get("finish_reason"),
    )


def _error_excerpt(body: bytes, api_key: str) -> str:
    """A short, key-free description of an error body (providers sometimes echo part of the key)."""
    text = body.decode("utf-8", errors="replace")
    try:
        error = json.loads(text).get("error")
        if isinstance(error, dict) and error.get("message"):
            text = str(error["message"])
        elif isinstance(error, str):
            text = error
    except (ValueError, AttributeError):
        pass
    if api_key:
        text = text.replace(api_key, mask(api_key))
    text = " ".join(text.split())
    return (text[:ERROR_EXCERPT_CHARS] + "…") if len(text) > ERROR_EXCERPT_CHARS else (text or "(empty body)")


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
