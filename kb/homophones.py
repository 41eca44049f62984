"""Homophone typos: 发漂 for 发票, 取销 for 取消, 无里由 for 无理由, 运费xian for 运费险.

Customers type Chinese through a pinyin input method, so their commonest typo is a wrong character with the
right sound (or the pinyin itself, left unconverted). Neither ranking sees it: the lexical search looks for
other characters, and the embedding model reads other tokens.

The tenant's vocabulary is the words of its enabled entries' questions and tags (2 to MAX_WORD_CHARS Han
characters, as kb.services indexes them), keyed by their toneless pinyin (pypinyin, whose dictionary ships
in its wheel). A span of the question (consecutive Han characters, or a run of Latin letters read as
pinyin, or both) whose pinyin is a vocabulary word's, while the span is not itself a word of the
vocabulary, is taken for a typo of that word, unless it is a real word itself (重新 sounds like 中心) or
cuts through one (是白 in 是白色 sounds like 失败): both judged by jieba's dictionary, a word counting when
its frequency reaches REAL_WORD_FREQ. The question is then also asked with the word in its place, as a
variant (kb.synonyms' mechanism: the lexical ranking keeps an entry's best variant, the vector side embeds
the variants together). A correct question is never changed, only asked once more; spans of one
character are never corrected (too many characters share a sound).

The vocabulary is built once per process and tenant and rebuilt when the tenant's entries change
(kb.embeddings.version: the same version that tells the vector cache it is stale).
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata

from django.db import connection
from pypinyin import lazy_pinyin

from kb.embeddings.version import embeddings_version
from kb.models import KnowledgeEntry
from kb.segmentation import tokenizer

MAX_WORD_CHARS = 6
MAX_CORRECTIONS = 2  # variants per question: each is one more lexical subquery and one more embedding
# jieba's dictionary counts (a news corpus): 重新 8297, 一起 15976, 顺风 148, 送货 36, but 订金 7 and 销掉 3.
REAL_WORD_FREQ = 20
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_UNITS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[a-z]+")  # a Han character, or a pinyin run

_lock = threading.Lock()
_vocabularies: dict[str, tuple[int, Vocabulary]] = {}  # schema -> (entries version, vocabulary)


class Vocabulary:
    """The tenant's words by toneless pinyin ("fapiao" -> {"发票"})."""

    def __init__(self, words: set[str]):
        self.words = words
        self.by_sound: dict[str, set[str]] = {}
        for word in words:
            self.by_sound.setdefault(sound(word), set()).add(word)


def _real_word(text: str) -> bool:
    return len(text) > 1 and (tokenizer().FREQ.get(text) or 0) >= REAL_WORD_FREQ


@functools.lru_cache(maxsize=20_000)
def _char_sound(char: str) -> str:
    return lazy_pinyin(char, errors=lambda chars: chars)[0].lower()


def sound(text: str) -> str:
    """The toneless pinyin of the text, syllables joined ("发漂" -> "fapiao"; Latin letters stay as they are).
    Character by character, on both sides: a typo is not a phrase, so the entry's word is read the same way
    (its characters' usual readings) rather than by pypinyin's phrase dictionary."""
    return "".join(_char_sound(unit) if _HAN.fullmatch(unit) else unit for unit in _UNITS.findall(text.lower()))


def vocabulary() -> Vocabulary:
    """The current tenant's vocabulary, rebuilt after its entries changed."""
    schema = connection.schema_name
    version = embeddings_version()
    cached = _vocabularies.get(schema)
    if cached is not None and cached[0] == version:
        return cached[1]
    words = set()
    for terms in KnowledgeEntry.objects.filter(enabled=True).values_list("question_terms", flat=True):
        words.update(term for term in terms.split()
                     if 2 <= len(term) <= MAX_WORD_CHARS and all(_HAN.fullmatch(char) for char in term))
    built = Vocabulary(words)
    with _lock:
        _vocabularies[schema] = (version, built)
    return built


def corrected(question: str, words: Vocabulary) -> list[str]:
    """The question with each probable homophone typo replaced by the tenant's word (at most MAX_CORRECTIONS
    variants, longest spans first); empty when there is none."""
    text = unicodedata.normalize("NFKC", question).lower()
    units = [(match.start(), match.end()) for match in _UNITS.finditer(text)]
    sounds = [sound(text[start:end]) for start, end in units]
    found: list[str] = []
    taken: list[tuple[int, int]] = []
    for size in range(MAX_WORD_CHARS, 1, -1):  # longer spans first: 无里由 before 里由
        for first in range(len(units) - size + 1):
            window = units[first:first + size]
            if any(window[n][1] != window[n + 1][0] for n in range(size - 1)):
                continue  # not contiguous in the text (a space or punctuation between)
            start, end = window[0][0], window[-1][1]
            span = text[start:end]
            if span in words.words or any(start < t_end and t_start < end for t_start, t_end in taken):
                continue
            if _real_word(span) or _real_word(text[start - 1:start + 1]) or _real_word(text[end - 1:end + 1]):
                continue
            matches = words.by_sound.get("".join(sounds[first:first + size]), set()) - {span}
            if len(matches) != 1:  # none, or several words sound alike: no guess
                continue
            word = matches.pop()
            if sum(1 for char in span if _HAN.fullmatch(char)) == len(span) and len(span) != len(word):
                continue
            found.append(text[:start] + word + text[end:])
            taken.append((start, end))
            if len(found) == MAX_CORRECTIONS:
                return found
    return found
