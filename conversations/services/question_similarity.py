"""When two customer questions ask the same thing, for grouping unanswered questions (knowledge_gaps).

By meaning when the tenant has an embedder (kb.embeddings): the cosine of the two questions' vectors.
By words otherwise, and as well: half the Jaccard overlap of their jieba words (kb.segmentation, stop
words dropped), half that of their character bigrams (which catch 没到/还没到 where jieba cuts
differently). Either measure at or above its threshold makes two questions similar.

The thresholds were measured on six groups of paraphrased shop questions (28 pairs within groups,
182 across, plus greetings and unrelated questions; conversations/tests/test_question_similarity.py):
  - lexical >= 0.2: 20 of the 28 pairs within a group, none across (the highest across was 0.13);
    paraphrases that share no word (钱什么时候退回来 / 退款多久能到账) stay apart, as they must;
  - cosine >= 0.6 with the built-in model (use-m3): 27 of 28 within, none of 378 across
    (the highest across: 你好 / 谢谢 at 0.57).
A question joins a group when it is similar to one of the group's examples, so a group grows by
chains of close wordings.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from kb.segmentation import segment

LEXICAL_THRESHOLD = 0.2
COSINE_THRESHOLD = 0.6
_NOT_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class QuestionShape:
    """What the lexical measure compares: a question's words and character bigrams."""

    words: frozenset[str]
    bigrams: frozenset[str]


def question_shape(text: str) -> QuestionShape:
    letters = _NOT_WORD.sub("", unicodedata.normalize("NFKC", text or "").lower())
    bigrams = {letters[i:i + 2] for i in range(len(letters) - 1)} or ({letters} if letters else set())
    return QuestionShape(words=frozenset(segment(text).terms), bigrams=frozenset(bigrams))


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def lexical_similarity(a: QuestionShape, b: QuestionShape) -> float:
    """In [0, 1]: 1 for the same words and bigrams, 0 for nothing in common."""
    return 0.5 * _jaccard(a.words, b.words) + 0.5 * _jaccard(a.bigrams, b.bigrams)


def cosine(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Of two unit vectors (kb.embeddings normalises them); None when either is missing."""
    if a is None or b is None or a.shape != b.shape:
        return None
    return float(np.dot(a, b))


def similar(*, lexical: float, cosine_similarity: float | None) -> bool:
    return lexical >= LEXICAL_THRESHOLD or (cosine_similarity is not None and cosine_similarity >= COSINE_THRESHOLD)
