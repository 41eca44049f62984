"""Words of the conversation search: what a message is indexed under, what a query asks for, and where the
query's words are in a message (the snippet). Pure functions over kb.segmentation, the knowledge base's
segmentation, so that a word found by the knowledge base is found in transcripts the same way.

A message is indexed under its words (jieba's search mode: 申请退款 gives 申请, 退款) and the Han characters of
its multi-character words (so a one-character query, 款, finds 退款). A query is segmented the same way and
every one of its words must occur (AND). Latin words and digits also match as prefixes (refund finds refunds,
an order number's first digits find it); Chinese words match whole, as a prefix of a Han word would match far
too much (退 would find every 退款 and 退货).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from django.utils.translation import gettext_lazy

from kb.segmentation import segment, unique

MAX_QUERY_CHARS = 200
SNIPPET_CHARS = 80  # characters of a message shown around its first hit
SNIPPET_LEAD = 20  # of which before the hit, so the reader sees what the hit follows


class UnsearchableText(ValueError):
    """The query has no word to search for: only common words (怎么, 我, the) or punctuation."""

    message = gettext_lazy("Type at least one meaningful word (such as 退款), not only common words like 怎么 or 我.")


@dataclass(frozen=True)
class SearchText:
    typed: str
    words: tuple[str, ...]  # each must occur in a matching message

    def tsquery(self) -> str:
        """to_tsquery('simple', ...) syntax; the words are letters and digits only (kb.segmentation), quoted
        anyway."""
        return " & ".join("'" + word.replace("'", "''") + "'" + (":*" if word.isascii() else "")
                          for word in self.words)


def index_terms(text: str) -> str:
    """What a message is indexed under, space-separated (conversations/search/models.py)."""
    segmented = segment(text)
    return " ".join(unique([*segmented.terms, *segmented.chars]))


def parse_search_text(typed: str) -> SearchText:
    """The query's words, or UnsearchableText when it has none."""
    typed = (typed or "").strip()[:MAX_QUERY_CHARS]
    words = tuple(unique(segment(typed).terms))
    if not words:
        raise UnsearchableText(str(UnsearchableText.message))
    return SearchText(typed=typed, words=words)


@dataclass(frozen=True)
class Snippet:
    """A window of a message with the query's words marked: (text, is_hit) parts, in order."""

    parts: tuple[tuple[str, bool], ...]

    @property
    def text(self) -> str:
        return "".join(part for part, _hit in self.parts)

    @property
    def highlights(self) -> list[tuple[int, int]]:
        """[start, end) of each hit in `text`."""
        spans, position = [], 0
        for part, hit in self.parts:
            if hit:
                spans.append((position, position + len(part)))
            position += len(part)
        return spans


def snippet(text: str, words: tuple[str, ...] = (), *, width: int = SNIPPET_CHARS) -> Snippet:
    """The part of `text` around the first occurrence of a word, every occurrence marked. Words are compared
    the way they were indexed (NFKC-folded, lower case: ＶＩＰ and vip are one word). Without a word found (or
    given), the message's start."""
    flat = "".join(" " if char.isspace() else char for char in text or "")  # one line in a list or a CSV cell
    folded, origin = [], []  # the folded text, and each folded character's index in `flat`
    for index, char in enumerate(flat):
        for folded_char in unicodedata.normalize("NFKC", char).lower():
            folded.append(folded_char)
            origin.append(index)
    folded_text = "".join(folded)
    spans = []
    for word in words:
        start = folded_text.find(word)
        while start != -1:
            spans.append((origin[start], origin[start + len(word) - 1] + 1))
            start = folded_text.find(word, start + len(word))
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    begin = max(0, merged[0][0] - SNIPPET_LEAD) if merged else 0
    end = min(len(flat), begin + width)
    parts: list[tuple[str, bool]] = [("…", False)] if begin else []
    position = begin
    for hit_start, hit_end in merged:
        hit_start, hit_end = max(hit_start, begin), min(hit_end, end)
        if hit_start >= hit_end:
            continue
        if hit_start > position:
            parts.append((flat[position:hit_start], False))
        parts.append((flat[hit_start:hit_end], True))
        position = hit_end
    if position < end:
        parts.append((flat[position:end], False))
    if end < len(flat):
        parts.append(("…", False))
    return Snippet(parts=tuple(parts))
