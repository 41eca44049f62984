"""The sandbox's OpenAI-compatible fake model over real HTTP: answers, key check, faults, the call record."""

import time

import httpx
import pytest

from wecom_sandbox.client import SandboxError

KEY = "sk-sandbox-test-0001"


@pytest.fixture
def http(fake_model):
    with httpx.Client(base_url=fake_model.model_base_url, timeout=10) as client:
        yield client


def system_prompt(knowledge=()) -> str:
    """A system prompt written by the "Prompt contract" of docs/SANDBOX.md, the way the platform writes one."""
    blocks = []
    for question, answer, _score in knowledge:
        first, *more = answer.splitlines()
        blocks.append("\n".join([f"Q: {question}", f"A: {first}", *(f"  {line}" for line in more)]))
    return "你是「Alpha Ltd」的智能客服助手。没有答案时只回复 [[HANDOFF]] 。\n\n知识库：\n" + (
        "\n\n".join(blocks) or "（无）") + "\n"


def chat(http, question, *, knowledge=(), key=KEY, **extra) -> httpx.Response:
    body = {"model": "sandbox-chat", "messages": [{"role": "system", "content": system_prompt(knowledge)},
                                                  {"role": "user", "content": question}], **extra}
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return http.post("/chat/completions", json=body, headers=headers)


def content(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def test_answers_with_the_first_knowledge_entry_in_openai_shape(http):
    knowledge = [("怎么退货？", "七天内可以无理由退货。\n请保留原包装。", 0.9), ("运费谁出？", "商家承担。", 0.5)]
    response = chat(http, "我想退货", knowledge=knowledge, max_tokens=100)
    body = response.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-sbx")
    assert body["model"] == "sandbox-chat"
    assert body["choices"] == [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "根据资料：七天内可以无理由退货。\n请保留原包装。"}}]
    prompt_chars = len(system_prompt(knowledge)) + len("我想退货")
    assert body["usage"] == {"prompt_tokens": prompt_chars, "completion_tokens": 24, "total_tokens": prompt_chars + 24}


def test_without_knowledge_unanswerable_questions_get_the_handoff_marker(http):
    assert content(chat(http, "火星有几个月亮？")) == "[[HANDOFF]]"


def test_the_marker_is_taken_from_the_system_prompt(http):
    body = {"model": "m", "messages": [{"role": "system", "content": "Reply [[NO_ANSWER]] if unsure."},
                                       {"role": "user", "content": "什么？"}]}
    assert content(http.post("/chat/completions", json=body)) == "[[NO_ANSWER]]"


@pytest.mark.parametrize("question", ["你好", "您好呀！", "谢谢你", "Hi!"])
def test_small_talk_is_echoed(http, question):
    assert content(chat(http, question)) == f"您好，我是智能客服。您说：「{question}」"


def test_echo_prefix_returns_the_text_verbatim_and_max_tokens_cuts(http):
    assert content(chat(http, "echo: 原样返回这句话")) == "原样返回这句话"
    cut = chat(http, "echo: 0123456789", max_tokens=4).json()
    assert cut["choices"][0]["message"]["content"] == "0123"
    assert cut["choices"][0]["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == 4


def test_the_bearer_key_is_checked_when_configured(fake_model, http):
    fake_model.model_configure(api_keys=[KEY])
    for key in (None, "sk-wrong"):
        refused = chat(http, "你好", key=key)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
    assert content(chat(http, "你好")).startswith("您好")
    assert [(c["api_key"], c["outcome"]) for c in fake_model.model_calls()] == [
        (None, "unauthorized"), ("sk-wrong", "unauthorized"), (KEY, "answered")]


def test_models_endpoint(fake_model, http):
    assert http.get("/models").json()["data"][0]["id"] == "sandbox-chat"
    fake_model.model_configure(models=["a", "b"])
    assert [m["id"] for m in http.get("/models").json()["data"]] == ["a", "b"]


def test_bad_requests_are_400(http):
    assert http.post("/chat/completions", content=b"not json").status_code == 400
    assert http.post("/chat/completions", json={"model": "m"}).status_code == 400
    assert http.post("/chat/completions", json={"model": "m", "messages": [{"role": "tool", "content": "x"}]}
                     ).status_code == 400
    assert chat(http, "你好", stream=True).status_code == 400
    assert http.get("/nothing").status_code == 404


def test_switched_off_answers_503_or_drops_the_connection(fake_model, http):
    fake_model.model_configure(available=False)
    assert chat(http, "你好").status_code == 503
    fake_model.model_configure(down_mode="disconnect")
    with pytest.raises(httpx.RemoteProtocolError):
        chat(http, "你好")
    fake_model.model_configure(available=True)
    assert content(chat(http, "你好")).startswith("您好")
    assert [c["outcome"] for c in fake_model.model_calls()] == ["down", "down", "answered"]


def test_fail_the_next_calls(fake_model, http):
    fake_model.model_fail_next(2, status=500)
    fake_model.model_fail_next(1, status=429)
    fake_model.model_fail_next(1, kind="invalid_json")
    fake_model.model_fail_next(1, kind="no_choices")
    fake_model.model_fail_next(1, kind="disconnect")
    assert [chat(http, "你好").status_code for _ in range(5)] == [500, 500, 429, 200, 200]
    with pytest.raises(httpx.RemoteProtocolError):
        chat(http, "你好")
    assert content(chat(http, "你好")).startswith("您好")
    outcomes = [c["outcome"] for c in fake_model.model_calls()]
    assert outcomes == ["fault:http_error:500", "fault:http_error:500", "fault:http_error:429",
                        "fault:invalid_json", "fault:no_choices", "fault:disconnect", "answered"]
    assert fake_model.model_faults() == []


def test_429_carries_retry_after_and_invalid_json_is_unparseable(fake_model, http):
    fake_model.model_fail_next(1, status=429)
    fake_model.model_fail_next(1, kind="invalid_json")
    fake_model.model_fail_next(1, kind="no_choices")
    limited = chat(http, "你好")
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "1")
    broken = chat(http, "你好")
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    assert chat(http, "你好").json()["choices"] == []


def test_faults_can_target_one_api_key(fake_model, http):
    fake_model.model_fail_next(1, status=503, api_key="sk-alpha")
    assert chat(http, "你好", key="sk-beta").status_code == 200
    assert chat(http, "你好", key="sk-alpha").status_code == 503
    assert [c["outcome"] for c in fake_model.model_calls(api_key="sk-alpha")] == ["fault:http_error:503"]


def test_failure_ratio_is_seeded_and_deterministic(fake_model, http):
    def run() -> list[int]:
        fake_model.model_configure(failure_ratio=0.2, failure_status=502, seed=7)
        return [chat(http, "你好").status_code for _ in range(50)]

    first, second = run(), run()
    assert first == second
    assert set(first) == {200, 502} and 3 <= first.count(502) <= 20


def test_latency_is_injected(fake_model, http):
    fake_model.model_configure(latency=0.3)
    started = time.monotonic()
    assert content(chat(http, "你好"))
    assert time.monotonic() - started >= 0.3
    fake_model.model_configure(latency=0)
    fake_model.model_fail_next(1, kind="delay", delay=0.3)
    started = time.monotonic()
    assert content(chat(http, "你好"))
    assert time.monotonic() - started >= 0.3


def test_the_call_record_keeps_what_was_sent(fake_model, http):
    chat(http, "怎么退货？", knowledge=[("退货", "可以退", 1.0)], max_tokens=64, temperature=0.1)
    (call,) = fake_model.model_calls()
    assert call["api_key"] == KEY and call["model"] == "sandbox-chat"
    assert (call["max_tokens"], call["temperature"], call["status"]) == (64, 0.1, 200)
    assert call["messages"][-1] == {"role": "user", "content": "怎么退货？"}
    assert "Q: 退货\nA: 可以退" in call["messages"][0]["content"]
    assert call["reply"] == "根据资料：可以退"


def test_controls_validate_and_sandbox_reset_resets_the_model(fake_model):
    with pytest.raises(SandboxError) as bad:
        fake_model.model_fail_next(kind="explode")
    assert bad.value.status == 400
    with pytest.raises(SandboxError):
        fake_model.model_configure(failure_ratio=2)
    with pytest.raises(SandboxError):
        fake_model.model_configure(no_such_setting=1)
    fake_model.model_configure(available=False, api_keys=["k"])
    fake_model.model_fail_next(3)
    fake_model.reset()
    assert fake_model.model_config()["available"] is True and fake_model.model_config()["api_keys"] is None
    assert fake_model.model_faults() == [] and fake_model.model_calls() == []

