"""OpenAI-compatible fake model of the sandbox: /v1/chat/completions, /v1/embeddings (embeddings.py) and
/v1/models, plus its /sandbox/model/ controls.

Answers are built from the prompt alone, so tests know them in advance (the prompt is read by the
"Prompt contract" of docs/SANDBOX.md, in prompt_contract.py):

0. a follow-up rewrite prompt → "<topic of the earlier customer line>的<the follow-up>？", each without
   punctuation, question words and particles ("怎么退货？" then "那运费呢？" → "退货的运费？"); the
   last line as it is when no customer line comes before it;
0b. a rerank prompt → the candidates' numbers ("2,1,3"), the candidates sharing the most distinct
   characters (letters, digits, Han) with the question first, ties in the given order;
1. a question starting with "echo:" → the rest of it, verbatim;
2. knowledge entries in the system prompt → "根据资料：" + the answer of the FIRST entry;
3. small talk (你好, 谢谢, hi, ...) → "您好，我是智能客服。您说：「<question>」";
4. anything else → the handoff marker found in the system prompt ([[...]]), default [[HANDOFF]].

The reply is cut to max_tokens characters (finish_reason "length"); usage counts characters.
Faults: switched off (503 or dropped connections), the next N calls failing (HTTP status,
invalid JSON, no choices, dropped connection, or only a delay), a seeded failure ratio, a fixed
latency, and an optional bearer-key check. Every call is recorded with the messages it carried.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field

from wecom_sandbox import embeddings
from wecom_sandbox.control import BadRequest
from wecom_sandbox.prompt_contract import (
    HANDOFF_MARKER,
    RerankRequest,
    TranscriptLine,
    is_rerank_prompt,
    is_rewrite_prompt,
    parse_knowledge,
    parse_rerank,
    parse_transcript,
)

KNOWLEDGE_PREFIX = "根据资料："
SMALL_TALK_TEMPLATE = "您好，我是智能客服。您说：「{question}」"
ECHO_PREFIX = "echo:"
SMALL_TALK = frozenset({
    "你好", "您好", "嗨", "哈喽", "在吗", "在不在", "有人吗", "谢谢", "多谢", "感谢", "好的", "好", "嗯", "再见",
    "拜拜", "早上好", "晚上好", "hi", "hello", "hey", "thanks", "thankyou", "ok", "okay", "bye",
})
_PUNCTUATION = re.compile(r"[\s!！?？。.,，~～…、:：;；'\"“”‘’()（）]+")
_TRAILING_PARTICLES = re.compile(r"[呀啊哈吖呢哦喔啦你您]+$")
_MARKER = re.compile(r"\[\[[A-Z_]+\]\]")

FAULT_KINDS = ("http_error", "invalid_json", "no_choices", "disconnect", "delay")
DEFAULT_MODELS = ("sandbox-chat",)
CALL_LOG_SIZE = 10_000


@dataclass
class ModelFault:
    kind: str
    remaining: int
    status: int = 500
    delay: float = 0.0
    api_key: str | None = None  # only calls carrying this bearer key; None = any call

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ModelConfig:
    available: bool = True
    down_mode: str = "503"  # or "disconnect": the connection is closed without an answer
    api_keys: list[str] | None = None  # when set, "Authorization: Bearer <one of these>" is required
    latency: float = 0.0  # seconds before every answer
    failure_ratio: float = 0.0  # share of calls failing at random (seeded)
    failure_kind: str = "http_error"
    failure_status: int = 500
    seed: int = 0
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ModelReply:
    """What the HTTP layer does: wait `delay`, then answer (or drop the connection)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    disconnect: bool = False


class ModelState:
    """Config, faults and the call record of the fake model. Hold `lock` while reading or changing them."""

    def __init__(self):
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.config = ModelConfig()
            self.faults: list[ModelFault] = []
            self.calls: deque[dict] = deque(maxlen=CALL_LOG_SIZE)
            self.rng = random.Random(self.config.seed)

    def configure(self, changes: dict) -> ModelConfig:
        with self.lock:
            current = self.config.to_dict()
            unknown = set(changes) - set(current)
            if unknown:
                raise BadRequest(f"unknown model setting(s): {', '.join(sorted(unknown))}")
            current.update(changes)
            config = ModelConfig(
                available=bool(current["available"]),
                down_mode=str(current["down_mode"]),
                api_keys=None if current["api_keys"] is None else [str(k) for k in current["api_keys"]],
                latency=float(current["latency"]),
                failure_ratio=float(current["failure_ratio"]),
                failure_kind=str(current["failure_kind"]),
                failure_status=int(current["failure_status"]),
                seed=int(current["seed"]),
                models=[str(m) for m in current["models"]],
            )
            if config.down_mode not in ("503", "disconnect"):
                raise BadRequest("down_mode is '503' or 'disconnect'")
            if not 0 <= config.failure_ratio <= 1:
                raise BadRequest("failure_ratio is between 0 and 1")
            if config.failure_kind not in FAULT_KINDS or config.failure_kind == "delay":
                raise BadRequest(f"failure_kind is one of {FAULT_KINDS[:-1]}")
            if config.latency < 0:
                raise BadRequest("latency is >= 0")
            self.config = config
            if "seed" in changes or "failure_ratio" in changes:
                self.rng = random.Random(config.seed)
            return config

    def take_fault(self, api_key: str | None) -> ModelFault | None:
        """Consume one use of the first matching fault; key-specific faults win over global ones."""
        with self.lock:
            candidates = [f for f in self.faults if f.api_key in (api_key, None)]
            if not candidates:
                return None
            fault = next((f for f in candidates if f.api_key is not None), candidates[0])
            fault.remaining -= 1
            if fault.remaining <= 0:
                self.faults.remove(fault)
            return fault

    def next_id(self) -> str:
        return f"chatcmpl-sbx{next(self._ids):08d}"


# -- answers ------------------------------------------------------------------------------------------


def _is_small_talk(question: str) -> bool:
    normalized = _PUNCTUATION.sub("", question).lower()
    return normalized in SMALL_TALK or _TRAILING_PARTICLES.sub("", normalized) in SMALL_TALK


# What the rewrite rule strips: from the earlier question, how it was asked; from the follow-up, the
# words that make it one.
_QUESTION_OPENINGS = ("请问", "我想问", "我想", "我要", "想问", "怎么", "如何", "怎样", "能不能", "可以", "能")
_FOLLOWUP_OPENINGS = ("那么", "那", "还有", "另外", "然后", "and ", "what about ", "how about ")
_QUESTION_ENDINGS = re.compile(r"[吗呢啊呀吧嘛么]+$")


def _core(text: str, openings: tuple[str, ...]) -> str:
    text = _PUNCTUATION.sub(" ", text).strip()
    stripped = True
    while stripped:
        stripped = False
        for opening in openings:
            if text.lower().startswith(opening) and len(text) > len(opening):
                text, stripped = text[len(opening):].strip(), True
    return _QUESTION_ENDINGS.sub("", text).strip()


def rewrite_for(lines: list[TranscriptLine]) -> str:
    """The deterministic standalone form of the last transcript line (rule 0 of the module docstring)."""
    if not lines:
        return ""
    message = lines[-1].text
    earlier = next((line.text for line in reversed(lines[:-1]) if line.speaker == "customer"), None)
    topic = _core(earlier, _QUESTION_OPENINGS) if earlier else ""
    follow = _core(message, _FOLLOWUP_OPENINGS)
    return f"{topic}的{follow}？" if topic and follow else message


def ranking_for(request: RerankRequest) -> str:
    """The deterministic order of a rerank prompt's candidates (rule 0b of the module docstring)."""
    wanted = {char for char in request.question.lower() if char.isalnum()}
    shared = [len(wanted & {char for char in candidate.lower() if char.isalnum()}) for candidate in request.candidates]
    order = sorted(range(len(request.candidates)), key=lambda i: -shared[i])  # sorted() is stable: ties keep order
    return ",".join(str(i + 1) for i in order)


def answer_for(messages: list[dict]) -> str:
    """The deterministic reply to a chat (see the module docstring for the rules)."""
    system = "\n".join(m["content"] for m in messages if m.get("role") == "system")
    question = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    if is_rewrite_prompt(system):
        return rewrite_for(parse_transcript(question))
    if is_rerank_prompt(system):
        return ranking_for(parse_rerank(question))
    if question.strip().lower().startswith(ECHO_PREFIX):
        return question.strip()[len(ECHO_PREFIX):].strip()
    knowledge = parse_knowledge(system)
    if knowledge:
        return KNOWLEDGE_PREFIX + knowledge[0].answer
    if _is_small_talk(question):
        return SMALL_TALK_TEMPLATE.format(question=question.strip())
    marker = _MARKER.search(system)
    return marker.group(0) if marker else HANDOFF_MARKER


# -- HTTP ---------------------------------------------------------------------------------------------


def _json(status: int, payload: dict, **kwargs) -> ModelReply:
    return ModelReply(status=status, body=json.dumps(payload, ensure_ascii=False).encode("utf-8"), **kwargs)


def _error(status: int, message: str, type_: str, code: str | None = None, **kwargs) -> ModelReply:
    return _json(status, {"error": {"message": message, "type": type_, "param": None, "code": code}}, **kwargs)


def _fault_reply(kind: str, status: int, delay: float) -> ModelReply:
    if kind == "invalid_json":
        return ModelReply(status=200, body=b'{"id": "chatcmpl-broken", "choices": [', delay=delay)
    if kind == "no_choices":
        return _json(200, {"id": "chatcmpl-empty", "object": "chat.completion", "choices": []}, delay=delay)
    if kind == "disconnect":
        return ModelReply(disconnect=True, delay=delay)
    if status == 429:
        return _error(429, "Rate limit reached (sandbox injected)", "rate_limit_error", "rate_limit_exceeded",
                      headers={"Retry-After": "1"}, delay=delay)
    return _error(status, "The server had an error (sandbox injected)", "server_error", delay=delay)


def _bearer(headers) -> str | None:
    value = headers.get("Authorization") or ""
    return value[7:].strip() if value[:7].lower() == "bearer " else None


def handle(model: ModelState, method: str, path: str, headers, raw: bytes) -> ModelReply:
    """Answer one /v1/ request and record it."""
    api_key = _bearer(headers)
    entry = {"at": time.time(), "method": method, "path": path, "api_key": api_key}
    reply = _handle(model, method, path, api_key, raw, entry)
    entry.setdefault("status", None if reply.disconnect else reply.status)
    entry["delay"] = reply.delay
    with model.lock:
        entry["id"] = len(model.calls) + 1
        model.calls.append(entry)
    return reply


def _handle(model: ModelState, method: str, path: str, api_key: str | None, raw: bytes, entry: dict) -> ModelReply:
    route = (method, path.rstrip("/"))
    if route not in (("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings"), ("GET", "/v1/models")):
        entry["outcome"] = "not_found"
        return _error(404, f"Unknown request URL: {method} {path}", "invalid_request_error", "unknown_url")
    body = None
    if method == "POST":
        try:
            body = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            entry["outcome"] = "bad_request"
            return _error(400, "The request body is not a JSON object.", "invalid_request_error")
        entry.update(model=body.get("model"), messages=body.get("messages"), max_tokens=body.get("max_tokens"),
                     temperature=body.get("temperature"))
        if route[1] == "/v1/embeddings":
            entry.update(messages=None, input=body.get("input"))
    with model.lock:
        config = model.config
        if not config.available:
            entry["outcome"] = "down"
            if config.down_mode == "disconnect":
                return ModelReply(disconnect=True, delay=config.latency)
            return _error(503, "The engine is currently overloaded (sandbox switched off).", "server_error",
                          delay=config.latency)
        if config.api_keys is not None and api_key not in config.api_keys:
            entry["outcome"] = "unauthorized"
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        fault = model.take_fault(api_key)
        if fault is None and config.failure_ratio and model.rng.random() < config.failure_ratio:
            fault = ModelFault(kind=config.failure_kind, remaining=0, status=config.failure_status)
    delay = config.latency + (fault.delay if fault else 0.0)
    if fault and fault.kind != "delay":
        entry["outcome"] = f"fault:{fault.kind}" + (f":{fault.status}" if fault.kind == "http_error" else "")
        return _fault_reply(fault.kind, fault.status, delay)
    if method == "GET":
        entry["outcome"] = "models"
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "sandbox"} for m in config.models]
        return _json(200, {"object": "list", "data": data}, delay=delay)
    if route[1] == "/v1/embeddings":
        return _embeddings(body, entry, delay)
    return _completion(model, body, entry, delay)


def _embeddings(body: dict, entry: dict, delay: float) -> ModelReply:
    try:
        model_name, texts, dims, encoding = embeddings.parse_request(body)
    except embeddings.EmbeddingRequestError as exc:
        entry["outcome"] = "bad_request"
        return _json(400, {"error": {"message": str(exc), "type": "invalid_request_error", "param": exc.param,
                                     "code": None}}, delay=delay)
    entry["outcome"] = "embedded"
    return _json(200, embeddings.response_body(model_name, texts, dims, encoding), delay=delay)


def _completion(model: ModelState, body: dict, entry: dict, delay: float) -> ModelReply:
    messages = body.get("messages")
    valid = isinstance(messages, list) and messages and all(
        isinstance(m, dict) and m.get("role") in ("system", "user", "assistant") and isinstance(m.get("content"), str)
        for m in messages
    )
    if not body.get("model") or not valid:
        entry["outcome"] = "bad_request"
        return _error(400, "model and messages ([{role, content: str}]) are required.", "invalid_request_error")
    if body.get("stream"):
        entry["outcome"] = "bad_request"
        return _error(400, "The sandbox model does not stream.", "invalid_request_error")
    reply = answer_for(messages)
    finish_reason = "stop"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and 0 < max_tokens < len(reply):
        reply, finish_reason = reply[:max_tokens], "length"
    prompt_tokens = sum(len(m["content"]) for m in messages)
    entry.update(outcome="answered", reply=reply)
    return _json(200, {
        "id": model.next_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(reply),
                  "total_tokens": prompt_tokens + len(reply)},
    }, delay=delay)


# -- /sandbox/model/ control API (handlers take (model_state, query, body)) --------------------------


def get_config(model, query, body):
    with model.lock:
        return 200, model.config.to_dict()


def put_config(model, query, body):
    """Merge the given settings into the config (see ModelConfig); returns the whole config."""
    return 200, model.configure(body).to_dict()


def add_fault(model, query, body):
    """{"kind": "http_error"|"invalid_json"|"no_choices"|"disconnect"|"delay", "status": 500, "count": 1,
    "delay": 0, "api_key": null}: the next `count` calls (with that bearer key, or any) misbehave."""
    kind = str(body.get("kind") or "http_error")
    if kind not in FAULT_KINDS:
        raise BadRequest(f"kind is one of {FAULT_KINDS}")
    fault = ModelFault(
        kind=kind,
        remaining=int(body.get("count", 1)),
        status=int(body.get("status") or 500),
        delay=float(body.get("delay") or 0),
        api_key=body.get("api_key") or None,
    )
    if fault.remaining < 1 or fault.delay < 0 or not 400 <= fault.status <= 599:
        raise BadRequest("count >= 1, delay >= 0, status 400..599")
    with model.lock:
        model.faults.append(fault)
    return 200, {"fault": fault.to_dict()}


def list_faults(model, query, body):
    with model.lock:
        return 200, {"faults": [f.to_dict() for f in model.faults]}


def clear_faults(model, query, body):
    with model.lock:
        model.faults.clear()
    return 200, {"faults": []}


def list_calls(model, query, body):
    """Filters: api_key (the bearer token sent), outcome (answered, down, unauthorized, fault:..., ...)."""
    with model.lock:
        rows = [dict(c) for c in model.calls
                if query.get("api_key") in (None, c["api_key"]) and query.get("outcome") in (None, c.get("outcome"))]
    return 200, {"calls": rows}


def reset(model, query, body):
    model.reset()
    return 200, {"status": "reset"}


ROUTES = {
    ("GET", "model/config"): get_config,
    ("POST", "model/config"): put_config,
    ("POST", "model/faults"): add_fault,
    ("GET", "model/faults"): list_faults,
    ("POST", "model/faults/clear"): clear_faults,
    ("GET", "model/calls"): list_calls,
    ("POST", "model/reset"): reset,
}
