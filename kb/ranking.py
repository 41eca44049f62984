"""Hybrid ranking: the lexical ranking (kb.selectors) and the vector ranking (kb.vectors) of a customer's
question fused into one score that still means "how sure" (docs/KNOWLEDGE.md, "Hybrid retrieval").

1. `embed_questions`: the current tenant's embedder turns each question into one vector; a question with
   synonym variants (kb.synonyms) is the normalised mean of its variants' vectors (measured against the
   best cosine over the variants and the question alone: docs/KNOWLEDGE.md). None for every question when
   the tenant has no embedder or the model failed: the round is then ranked lexically, exactly as without
   embeddings.
2. `fuse`: the candidates are the union of the lexical top `limit` (already searched by kb.selectors, best
   variant per entry: `best_of_variants`) and the vector top CANDIDATES (kb.vectors.search_many, an entry's
   best vector); each candidate scores

       score = w × lexical + (1 − w) × clamp((cosine − floor) / (1 − floor), 0, 1)

   with w = LEXICAL_WEIGHT and floor the model's constant (COSINE_FLOORS). An entry the lexical search
   did not return scores 0 on that side; a candidate with no vector under the model yet (its embed job
   has not run) keeps its lexical score alone, so a knowledge base being embedded never loses answers.

The result is the list of candidates with both parts of their score (KnowledgeMatch.lexical / .cosine), best
first: a reranker (the tenant's model, on the conversations side) reorders these and keeps the scores.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import structlog
from django.db import connection

from kb.embeddings import EmbeddingError, current_embedder
from kb.embeddings.local import LocalEmbedder
from kb.models import EntryEmbedding, KnowledgeEntry
from kb.vectors import search_many

logger = structlog.get_logger("kb.ranking")

# Share of the lexical score in the fused score; the rest is the rescaled cosine. Measured on
# bench/data (docs/BENCHMARKS.md, "Hybrid retrieval (issue 12)").
LEXICAL_WEIGHT = 0.2
# The cosine below which a model's vectors say "unrelated", per model id, mapped to 0 on the fused scale.
# Each model has its own: use-m3's unrelated Chinese texts sit near 0.21 (the median cosine of a question with
# entries it is not about, on bench/data), e5's near 0.85 — raw cosines of two models are not comparable. A
# constant of the model, never fitted to a tenant's data. With it the default knowledge_min_score (0.3) holds
# on the benchmark (5.6 % of in-scope questions answered wrong, 1 of 26 out-of-scope answered). Models not
# listed (OpenAI-compatible text-embedding-3-* put unrelated texts near 0.1-0.25) get the default.
COSINE_FLOORS = {"local:use-m3": 0.21}
DEFAULT_COSINE_FLOOR = 0.2
# Vector candidates per question (the lexical side brings the caller's `limit`, kb.selectors): a vector
# search costs the same for 5 or 20, and a paraphrase's entry may rank low by cosine and high once fused.
CANDIDATES = 20
VECTOR_KINDS = ("title", "full")  # question + tags, question + tags + answer: an entry scores its best


@dataclass(frozen=True)
class KnowledgeMatch:
    entry: KnowledgeEntry
    score: float  # in [0, 1]: the fused score, or the lexical one when there is no vector (see above)
    matched_terms: list[str]  # the question's words (then characters) found in the entry
    lexical: float | None = None  # the lexical part (kb.selectors' score); None: ranked lexically only
    cosine: float | None = None  # the best cosine of the question with the entry's vectors


@dataclass(frozen=True)
class QuestionVectors:
    model_id: str
    vector: np.ndarray  # float32, unit length


def cosine_floor(model_id: str) -> float:
    return COSINE_FLOORS.get(model_id, DEFAULT_COSINE_FLOOR)


def fused_score(*, lexical: float, cosine: float, model_id: str) -> float:
    floor = cosine_floor(model_id)
    rescaled = min(1.0, max(0.0, (cosine - floor) / (1 - floor)))
    return LEXICAL_WEIGHT * lexical + (1 - LEXICAL_WEIGHT) * rescaled


def embed_questions(variants: list[list[str]]) -> list[QuestionVectors | None]:
    """The vector of each question from its variants (kb.synonyms.variants), or None for every question when
    the tenant has no embedder or the model failed (logged): the round is then ranked lexically. The
    embedder is resolved once per round (the resolver reads the tenant's AI provider). The built-in model
    gets every text of the round in ONE call: its cost is mostly per call (the dense layers run once for a
    batch), so a round of 8 variants costs little more than one text. A remote model gets the texts one by
    one, as customer questions (its short query timeout), and the first failure ends the round's calls, so a
    provider that is down costs one timeout, not one per text."""
    embedder = current_embedder()
    if embedder is None:
        return [None] * len(variants)
    asked = [texts for texts in variants if any((text or "").strip() for text in texts)]
    texts = [text for question in asked for text in question]
    try:
        if isinstance(embedder, LocalEmbedder):
            rows = embedder.embed(texts) if texts else np.zeros((0, embedder.dims), dtype=np.float32)
        else:
            rows = [embedder.embed([text])[0] for text in texts]
    except EmbeddingError as exc:
        logger.warning("kb.ranking.query_embedding_failed", tenant=connection.schema_name,
                       model=embedder.model_id, error=str(exc))
        return [None] * len(variants)
    out: list[QuestionVectors | None] = []
    start = 0
    for question in variants:
        if not any((text or "").strip() for text in question):  # nothing to embed: lexical (finds nothing)
            out.append(None)
            continue
        mean = np.mean(rows[start:start + len(question)], axis=0, dtype=np.float32)
        start += len(question)
        norm = float(np.linalg.norm(mean))
        out.append(QuestionVectors(model_id=embedder.model_id, vector=mean / norm if norm else mean))
    return out


def best_of_variants(rankings: list[list[KnowledgeMatch]], *, limit: int) -> list[KnowledgeMatch]:
    """One question's lexical rankings, one per variant (kb.synonyms): each entry with its best variant's
    match, best first. A question asked one way: its ranking, untouched."""
    if len(rankings) == 1:
        return rankings[0]
    best: dict[int, KnowledgeMatch] = {}
    for matches in rankings:
        for match in matches:
            if match.entry.pk not in best or match.score > best[match.entry.pk].score:
                best[match.entry.pk] = match
    return sorted(best.values(), key=lambda match: (-match.score, match.entry.pk))[:limit]


def fuse(lexical: list[list[KnowledgeMatch]], embedded: list[QuestionVectors | None], *,
         limit: int) -> list[list[KnowledgeMatch]]:
    """Per question, its lexical candidates and its nearest entries by vector, scored by the fused score,
    best first, at most `limit`. A question without vectors: its lexical matches, unchanged."""
    # A tenant with no vector under the model yet (embeddings just switched on, a new model) has nothing
    # to fuse: one query for the round instead of a vector search per question.
    with_vectors = {model_id for model_id in {vectors.model_id for vectors in embedded if vectors is not None}
                    if EntryEmbedding.objects.filter(model_id=model_id).exists()}
    embedded = [vectors if vectors is not None and vectors.model_id in with_vectors else None
                for vectors in embedded]
    hits = _vector_hits(lexical, embedded)
    nearest = [hit[0] for hit in hits]
    vector_only = {pk for matches, near in zip(lexical, nearest, strict=True)
                   for pk in near.keys() - {match.entry.pk for match in matches}}
    entries = KnowledgeEntry.objects.in_bulk(vector_only) if vector_only else {}
    out = []
    for matches, vectors, (near, others) in zip(lexical, embedded, hits, strict=True):
        if vectors is None:
            out.append(matches[:limit])
            continue
        fused = []
        for match in matches:
            cosine = near.get(match.entry.pk)
            if cosine is None:
                cosine = others.get(match.entry.pk)
            if cosine is None:  # not embedded yet under this model: ranked as lexically as before
                fused.append(match)
            else:
                fused.append(replace(match, lexical=match.score, cosine=round(cosine, 4), score=round(
                    fused_score(lexical=match.score, cosine=cosine, model_id=vectors.model_id), 4)))
        seen = {match.entry.pk for match in matches}
        for pk, cosine in near.items():
            entry = entries.get(pk)
            if pk in seen or entry is None or not entry.enabled:
                continue
            fused.append(KnowledgeMatch(entry=entry, matched_terms=[], lexical=0.0, cosine=round(cosine, 4),
                                        score=round(fused_score(lexical=0.0, cosine=cosine,
                                                                model_id=vectors.model_id), 4)))
        fused.sort(key=lambda match: (-match.score, match.entry.pk))
        out.append(fused[:limit])
    return out


def _vector_hits(lexical: list[list[KnowledgeMatch]],
                 embedded: list[QuestionVectors | None]) -> list[tuple[dict[int, float], dict[int, float]]]:
    """Per question: (entry id -> best cosine for its vector top CANDIDATES, lexical candidate outside them ->
    its best cosine), each model's questions in one kb.vectors.search_many call (the exact backend answers
    both from its cached matrix, without SQL)."""
    hits: list[tuple[dict[int, float], dict[int, float]]] = [({}, {}) for _ in embedded]
    for model_id in {vectors.model_id for vectors in embedded if vectors is not None}:
        numbers = [n for n, vectors in enumerate(embedded) if vectors is not None and vectors.model_id == model_id]
        found = search_many(model_id, [embedded[n].vector for n in numbers], limit=CANDIDATES, kinds=VECTOR_KINDS,
                            also=[{match.entry.pk for match in lexical[n]} for n in numbers])
        for n, hit in zip(numbers, found, strict=True):
            best: dict[int, float] = {}
            for match in hit.nearest:
                best[match.entry_id] = max(best.get(match.entry_id, -1.0), float(match.cosine))
            hits[n] = (best, hit.cosines)
    return hits
