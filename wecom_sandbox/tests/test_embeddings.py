"""The fake model's /v1/embeddings over real HTTP: OpenAI's shape, deterministic and meaningful vectors,
OpenAI's refusals, and the same switches (down, key check, faults) as chat completions."""

import base64
import math
import struct

import httpx
import pytest

from wecom_sandbox.embeddings import DEFAULT_DIMS, embed_text

KEY = "sk-sandbox-embed-0001"


@pytest.fixture
def http(fake_model):
    with httpx.Client(base_url=fake_model.model_base_url, timeout=10) as client:
        yield client


def embed(http, texts, **extra) -> httpx.Response:
    return http.post("/embeddings", json={"model": "sandbox-embed", "input": texts, **extra},
                     headers={"Authorization": f"Bearer {KEY}"})


def cosine(a, b) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_vectors_come_in_openai_shape_unit_length_and_in_input_order(http, fake_model):
    texts = ["怎么退货？", "运费谁出", "发货时间"]
    response = embed(http, texts)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == "sandbox-embed"
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    assert {item["object"] for item in body["data"]} == {"embedding"}
    assert body["usage"] == {"prompt_tokens": 5 + 4 + 4, "total_tokens": 13}
    for item, text in zip(body["data"], texts, strict=True):
        assert len(item["embedding"]) == DEFAULT_DIMS
        assert math.isclose(math.sqrt(sum(v * v for v in item["embedding"])), 1.0, rel_tol=1e-9)
        assert item["embedding"] == embed_text(text)
    calls = fake_model.model_calls(outcome="embedded")
    assert len(calls) == 1 and calls[0]["input"] == texts and calls[0]["api_key"] == KEY


def test_the_same_text_gets_the_same_vector_and_similar_texts_are_closer(http):
    first = embed(http, "我的快递还没到").json()["data"][0]["embedding"]
    again = embed(http, ["我的快递还没到"]).json()["data"][0]["embedding"]
    similar, unrelated = (item["embedding"] for item in embed(http, ["快递怎么还没到", "发票怎么开"]).json()["data"])

    assert first == again
    assert cosine(first, similar) > 0.5 > cosine(first, unrelated)


def test_dimensions_and_base64_encoding(http):
    floats = embed(http, ["退款多久到账"], dimensions=64).json()["data"][0]["embedding"]
    encoded = embed(http, ["退款多久到账"], dimensions=64, encoding_format="base64").json()["data"][0]["embedding"]

    assert len(floats) == 64
    decoded = struct.unpack("<64f", base64.b64decode(encoded))
    assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(decoded, floats, strict=True))


@pytest.mark.parametrize(("body", "param"), [
    ({"input": ["hi"]}, "model"),
    ({"model": "sandbox-embed"}, "input"),
    ({"model": "sandbox-embed", "input": []}, "input"),
    ({"model": "sandbox-embed", "input": ["ok", ""]}, "input"),
    ({"model": "sandbox-embed", "input": [[101, 102]]}, "input"),
    ({"model": "sandbox-embed", "input": ["x"] * 2049}, "input"),
    ({"model": "sandbox-embed", "input": "x" * 8193}, "input"),
    ({"model": "sandbox-embed", "input": "hi", "dimensions": 0}, "dimensions"),
    ({"model": "sandbox-embed", "input": "hi", "dimensions": "8"}, "dimensions"),
    ({"model": "sandbox-embed", "input": "hi", "encoding_format": "int8"}, "encoding_format"),
])
def test_bad_requests_are_refused_like_openai(http, fake_model, body, param):
    response = http.post("/embeddings", json=body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]
    assert fake_model.model_calls(outcome="embedded") == []


def test_a_body_that_is_not_a_json_object_is_a_400(http):
    response = http.post("/embeddings", content=b"[1, 2]", headers={"Content-Type": "application/json"})

    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


def test_key_check_switch_off_and_faults_apply_to_embeddings_too(http, fake_model):
    fake_model.model_configure(api_keys=["sk-other"])
    assert embed(http, "hi").status_code == 401
    fake_model.model_configure(api_keys=None, available=False)
    assert embed(http, "hi").status_code == 503
    fake_model.model_configure(available=True)
    fake_model.model_fail_next(kind="http_error", status=500, count=1)
    assert embed(http, "hi").status_code == 500
    assert embed(http, "hi").status_code == 200
