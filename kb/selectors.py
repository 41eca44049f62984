"""Reads of the knowledge base: retrieval for the AI pipeline and the admin, import jobs.

Every query runs in the current tenant's schema (search_path), so nothing here can see
another tenant's entries or jobs.

Retrieval
---------
The customer's question is segmented like the entries (kb.segmentation) into words, plus
the Han characters of its multi-character words. Entries whose tsvector matches any of
them (an OR tsquery, served by the GIN index) are ranked by

    score = min(1, 1.645 * (0.8 * ts_rank(W, vector, words) + 0.2 * ts_rank(W, vector, chars)))

with W = {A: 1.0, B: 0.4, C: 0.4, D: 0.1}: A = words of the entry's question and tags,
B = their characters, C = words of the answer, D = its characters. ts_rank of an OR query
is the mean, over the distinct query terms, of the weight of the best place the term
occurs (one occurrence counts 1/1.645 of it, repeats add up to the full weight); the factor
1.645 makes one occurrence count fully. So, in plain words:

    score = the share of the customer's meaningful words that the entry contains, a word
    counting 1 in the entry's question or tags and 0.4 in its answer only, with the
    characters of those words contributing a fifth (a question with no multi-character
    word is scored on its words alone).

1.0: every word of the question appears in the entry's question or tags (an entry's own
question scores 1.0). Scores are comparable across entries and tenants, not across wordings
of a question. Paraphrases that share few words score low even when right: on the shop
corpus of kb/tests (20 paraphrased questions) the right entry ranked first every time with
0.14 to 0.90 (median 0.55), while runners-up stayed at or below 0.26, except a closely
related entry (the VAT-invoice entry for a plain invoice question, 0.49). So a
"knowledge-only" threshold is a precision dial: 0.3 answered 13 of the 20 paraphrases
there and never with a wrong entry; lower catches more paraphrases at the price of some
wrong hits.

Which entries are ranked (speed on a large knowledge base)
----------------------------------------------------------
Ranking every entry that shares a word or a character with the question is exact but slow on
10,000 entries: a common character (商, 品, 多) is in thousands of answers. So a question is
asked in two steps, with the same result:

1. Candidates are the entries containing a word of the question, or a rare character of it, or
   a common character (in more than COMMON_CHAR_SHARE of the tenant's entries, by PostgreSQL's
   statistics of the index) in the entry's question, tags or answer words (weights A, B, C).
   The entries left out contain no word and no rare character, and their common characters
   only among the answer's characters (weight D, 0.1), so their score is at most
   1.645 * 0.2 * 0.1 * (common characters / characters) (`_left_out_bound`).
2. When fewer than `limit` candidates score above that bound, a left-out entry might belong in
   the answer: that question is asked again over every entry sharing a word or character.
Statistics only decide which characters are common, i.e. the speed, never the result.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from django.db import connection

from kb import homophones, ranking, synonyms
from kb.models import KnowledgeEntry, KnowledgeImport
from kb.progress import read_progress
from kb.ranking import KnowledgeMatch
from kb.segmentation import han_characters, segment, unique

RANK_WEIGHTS = [0.1, 0.4, 0.4, 1.0]  # D, C, B, A (PostgreSQL's order)
WORDS_SHARE = 0.8
ONE_OCCURRENCE = 1.64493406685  # ts_rank divides a single occurrence by pi^2/6
MAX_LIMIT = 50
MAX_QUERY_CHARS = 1000  # a pasted essay must not become a thousand-term OR query
# A character in more than this share of the entries is "common" (see "Which entries are ranked").
COMMON_CHAR_SHARE = 0.05
TERM_STATS_SECONDS = 600  # how long a process trusts the statistics it read (they only steer speed)


def _tsquery(tokens: list[str], *, weights: str = "") -> str:
    # tokens are letters and digits only (kb.segmentation), quoted anyway for to_tsquery;
    # `weights` ("ABC") matches a token only where it has one of those weights
    label = f":{weights}" if weights else ""
    return " | ".join("'" + token.replace("'", "''") + "'" + label for token in tokens)


def search_knowledge(query: str, *, limit: int = 5) -> list[KnowledgeMatch]:
    """The enabled entries of the current tenant that best answer `query`, best first."""
    return search_knowledge_many([query], limit=limit)[0]


# The ranking above, for many questions in one statement (the answer pipeline asks a round's
# worth at once): each question's words, characters and candidates as tsqueries, parsed once in a
# MATERIALIZED CTE (inside the LATERAL subquery to_tsquery would run again for every row), its best
# entries through the GIN index in a LATERAL subquery.
_SEARCH_SQL = """
WITH q AS MATERIALIZED (
    SELECT n, to_tsquery('simple', words) AS words, to_tsquery('simple', NULLIF(chars, '')) AS chars,
           to_tsquery('simple', candidates) AS candidates
    FROM unnest(%(words)s::text[], %(chars)s::text[], %(candidates)s::text[])
         WITH ORDINALITY AS u(words, chars, candidates, n)
)
SELECT q.n AS query_number, e.*, tsvector_to_array(e.search_vector) AS lexemes
FROM q
CROSS JOIN LATERAL (
    SELECT e.*, LEAST(1.0, %(one)s * CASE WHEN q.chars IS NULL
               THEN ts_rank(%(weights)s::float4[], e.search_vector, q.words)
               ELSE %(share)s * ts_rank(%(weights)s::float4[], e.search_vector, q.words)
                    + (1 - %(share)s) * ts_rank(%(weights)s::float4[], e.search_vector, q.chars)
               END) AS score
    FROM {table} e
    WHERE e.enabled AND e.search_vector @@ q.candidates
    ORDER BY score DESC, e.id
    LIMIT %(limit)s
) e
ORDER BY q.n, e.score DESC, e.id
"""

_TERM_STATS_SQL = """
SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats
WHERE schemaname = current_schema() AND tablename = %s AND attname = 'search_vector'
"""
_stats_lock = threading.Lock()
_term_stats: dict[str, tuple[float, dict[str, float]]] = {}  # schema -> (read at, lexeme -> share of entries)


def _lexeme_shares() -> dict[str, float]:
    """The share of the current tenant's entries containing each common lexeme (PostgreSQL's statistics of
    the index, read again every TERM_STATS_SECONDS); empty before the table was first analysed."""
    schema = connection.schema_name
    cached = _term_stats.get(schema)
    if cached and time.monotonic() - cached[0] < TERM_STATS_SECONDS:
        return cached[1]
    with connection.cursor() as cursor:
        cursor.execute(_TERM_STATS_SQL, [KnowledgeEntry._meta.db_table])
        row = cursor.fetchone()
    shares = dict(zip(row[0], row[1], strict=False)) if row and row[0] else {}
    with _stats_lock:
        _term_stats[schema] = (time.monotonic(), shares)
    return shares


@dataclass(frozen=True)
class _Asked:
    number: int  # index into the caller's list of queries
    words: list[str]
    chars: list[str]  # not among the words
    common: list[str]  # those of `chars` that are common

    def candidates(self, *, exhaustive: bool) -> str:
        if exhaustive or not self.common:
            return _tsquery([*self.words, *self.chars])
        rare = [char for char in self.chars if char not in self.common]
        return " | ".join(part for part in (_tsquery([*self.words, *rare]),
                                            _tsquery(self.common, weights="ABC")) if part)

    def left_out_bound(self) -> float:
        """The highest score an entry outside the candidates can have (module docstring)."""
        return ONE_OCCURRENCE * (1 - WORDS_SHARE) * RANK_WEIGHTS[0] * len(self.common) / len(self.chars)


def enabled_entries(*, ids: list[int]) -> dict[int, KnowledgeEntry]:
    """The current tenant's enabled entries among `ids` (e.g. clicked in a menu), by id."""
    return {entry.pk: entry for entry in KnowledgeEntry.objects.filter(pk__in=ids, enabled=True)}


def search_knowledge_many(queries: list[str], *, limit: int = 5) -> list[list[KnowledgeMatch]]:
    """search_knowledge() of each query: the lexical ranking (lexical_search_many), each question also asked
    with the tenant's synonyms in place of its words (kb.synonyms) and with its probable homophone typos
    corrected (kb.homophones; an entry keeps its best variant), fused
    with the vector ranking when the tenant has an embedding model (kb.ranking). Without an embedding model
    or synonyms: the lexical ranking and its scores, unchanged."""
    limit = max(1, min(limit, MAX_LIMIT))
    variants = question_variants(queries)
    embedded = ranking.embed_questions(variants)
    found = iter(lexical_search_many([text for texts in variants for text in texts], limit=limit))
    lexical = [ranking.best_of_variants([next(found) for _ in texts], limit=limit) for texts in variants]
    return ranking.fuse(lexical, embedded, limit=limit)


def question_variants(queries: list[str]) -> list[list[str]]:
    """Each query's variants, the query first: with the tenant's synonyms (kb.synonyms), then with its probable
    homophone typos corrected (kb.homophones)."""
    groups = synonyms.enabled_groups()
    words = homophones.vocabulary()
    return [[*synonyms.variants(query, groups), *homophones.corrected(query, words)] for query in queries]


def lexical_search_many(queries: list[str], *, limit: int = 5) -> list[list[KnowledgeMatch]]:
    """The lexical ranking (the module docstring) of each query, in one statement (two when a question needs
    the second step)."""
    limit = max(1, min(limit, MAX_LIMIT))
    matches: list[list[KnowledgeMatch]] = [[] for _ in queries]
    asked = []
    shares = None
    for number, query in enumerate(queries):
        words = unique(segment(query[:MAX_QUERY_CHARS]).terms)
        if not words:
            continue
        chars = [char for char in unique(han_characters(words)) if char not in words]
        if chars and shares is None:
            shares = _lexeme_shares()
        common = [char for char in chars if shares.get(char, 0.0) > COMMON_CHAR_SHARE] if chars else []
        asked.append(_Asked(number=number, words=words, chars=chars, common=common))
    # Questions with the same terms (the same question from two contacts of a round, variants that differ
    # only in what segmentation drops) are searched once.
    distinct: dict[tuple[tuple[str, ...], tuple[str, ...]], _Asked] = {}
    for question in asked:
        distinct.setdefault((tuple(question.words), tuple(question.chars)), question)
    searched = list(distinct.values())
    found = _ranked(searched, limit=limit, exhaustive=False)
    # Step 2: a left-out entry could have ranked among the first `limit` (module docstring); the margin
    # covers the scores' rounding to 4 places.
    again = [question for question in searched if question.common and sum(
        match.score > question.left_out_bound() + 1e-4 for match in found[question.number]) < limit]
    found.update(_ranked(again, limit=limit, exhaustive=True))
    for question in asked:
        matches[question.number] = list(found[distinct[(tuple(question.words), tuple(question.chars))].number])
    return matches


def _ranked(asked: list[_Asked], *, limit: int, exhaustive: bool) -> dict[int, list[KnowledgeMatch]]:
    if not asked:
        return {}
    found: dict[int, list[KnowledgeMatch]] = {question.number: [] for question in asked}
    rows = KnowledgeEntry.objects.raw(_SEARCH_SQL.format(table=KnowledgeEntry._meta.db_table), {
        "words": [_tsquery(question.words) for question in asked],
        "chars": [_tsquery(question.chars) for question in asked],
        "candidates": [question.candidates(exhaustive=exhaustive) for question in asked],
        "one": ONE_OCCURRENCE, "share": WORDS_SHARE, "weights": RANK_WEIGHTS, "limit": limit})
    for entry in rows:
        question = asked[entry.query_number - 1]
        present = set(entry.lexemes)
        found[question.number].append(KnowledgeMatch(
            entry=entry, score=round(entry.score, 4),
            matched_terms=[token for token in [*question.words, *question.chars] if token in present]))
    return found


def access_import(*, job_id) -> KnowledgeImport | None:
    """The import job of the current tenant with this id, or None (the same for another
    tenant's job: ids cannot be probed across tenants)."""
    return KnowledgeImport.objects.defer("content").filter(pk=job_id).first()


def import_progress(*, job: KnowledgeImport) -> dict:
    """What the progress bar shows: the durable outcome once there is one, else Redis' live count."""
    payload = {"id": str(job.id), "status": job.status, "total": job.total_rows, "created": job.created_count,
               "updated": job.updated_count, "errors": job.errors}
    if job.status == KnowledgeImport.Status.PENDING:
        live = read_progress(str(job.id)) or {}
        total = int(live.get("total") or job.total_rows or 0)
        done = min(int(live.get("done") or 0), total)
        payload.update(phase=live.get("phase", "queued"), done=done,
                       percent=int(100 * done / total) if total else 0)
        if payload["percent"] == 100:
            payload["percent"] = 99  # written, not yet committed
    else:
        payload.update(phase=job.status, done=job.total_rows if job.status == KnowledgeImport.Status.SUCCEEDED
                       else 0, percent=100)
    return payload


def popular_tags(*, limit: int = 30) -> list[str]:
    """Tags in use, most frequent first (the admin's tag filter)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tag FROM (SELECT unnest(tags) AS tag FROM kb_knowledgeentry) t "
                       "GROUP BY tag ORDER BY count(*) DESC, tag LIMIT %s", [limit])
        return [row[0] for row in cursor.fetchall()]
