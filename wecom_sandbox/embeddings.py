"""The fake model's /v1/embeddings: deterministic vectors that still mean something.

A text's vector is its character unigrams and bigrams (after lower-casing and dropping spaces and
punctuation), each hashed (blake2b) to a dimension and a sign, counted, and L2-normalised. Texts that
share characters are close, unrelated texts are near orthogonal, and the same text always gets the same
vector, in any process, so tests can compute what to expect (`embed_text`).

Requests and refusals follow OpenAI's API: `input` is a string or a list of 1..2048 non-empty strings,
`dimensions` optional (1..4096, default DEFAULT_DIMS), `encoding_format` "float" (default) or "base64"
(little-endian float32); anything else is a 400 with an error object.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct

DEFAULT_DIMS = 256
MAX_DIMS = 4096
MAX_INPUTS = 2048
MAX_INPUT_CHARS = 8192  # OpenAI's limit is 8,192 tokens; one character per token is close enough for Chinese
_IGNORED = re.compile(r"[\s\W_]+", re.UNICODE)


class EmbeddingRequestError(ValueError):
    """The request is not one OpenAI would accept: the message of a 400 invalid_request_error."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def _features(text: str) -> list[str]:
    chars = _IGNORED.sub("", text.lower())
    return [*chars, *(chars[i:i + 2] for i in range(len(chars) - 1))]


def embed_text(text: str, dims: int = DEFAULT_DIMS) -> list[float]:
    """The unit vector of one text (all zeros for a text with no letter or digit)."""
    vector = [0.0] * dims
    for feature in _features(text):
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "little") % dims
        vector[bucket] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(value * value for value in vector))
    return [value / norm for value in vector] if norm else vector


def parse_request(body: dict) -> tuple[str, list[str], int, str]:
    """(model, texts, dims, encoding_format) of a request body, or EmbeddingRequestError."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise EmbeddingRequestError("you must provide a model parameter", "model")
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts:
        raise EmbeddingRequestError("'input' is a string or a non-empty array of strings", "input")
    if len(texts) > MAX_INPUTS:
        raise EmbeddingRequestError(f"'input' holds at most {MAX_INPUTS} items", "input")
    for index, text in enumerate(texts):
        if not isinstance(text, str):  # token arrays are valid for OpenAI; the sandbox takes text only
            raise EmbeddingRequestError(f"'input[{index}]' must be a string (the sandbox takes no tokens)", "input")
        if not text:
            raise EmbeddingRequestError(f"'input[{index}]' must not be empty", "input")
        if len(text) > MAX_INPUT_CHARS:
            raise EmbeddingRequestError(f"'input[{index}]' is longer than {MAX_INPUT_CHARS} characters", "input")
    dims = body.get("dimensions", DEFAULT_DIMS)
    if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= MAX_DIMS:
        raise EmbeddingRequestError(f"'dimensions' is an integer from 1 to {MAX_DIMS}", "dimensions")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise EmbeddingRequestError("'encoding_format' is 'float' or 'base64'", "encoding_format")
    return model, texts, dims, encoding


def response_body(model: str, texts: list[str], dims: int, encoding: str) -> dict:
    """OpenAI's shape: {"object": "list", "data": [{"object", "embedding", "index"}], "model", "usage"}."""
    data = []
    for index, text in enumerate(texts):
        vector = embed_text(text, dims)
        embedding = (base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode("ascii") if encoding == "base64"
                     else vector)
        data.append({"object": "embedding", "embedding": embedding, "index": index})
    tokens = sum(len(text) for text in texts)
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
