"""Sensitive words (敏感词): the platform's list (settings.SENSITIVE_WORDS_FILE) and the tenant's own
(SensitiveWord, in its admin), matched in one pass (Aho-Corasick, pyahocorasick).

- a customer's message containing one is flagged (Message.sensitive_words, the `sensitive` trace event) and,
  when the tenant says so (DeskSettings.mask_sensitive_input), stored masked (**) in the transcript the
  screens and the API show; the inbound row keeps what WeCom delivered;
- a reply containing one is never sent: the AI's (or a knowledge entry's, or a script's) is replaced by the
  built-in fallback text, traced with the words; an agent's is refused with the words named.

Matching ignores case and full-width forms (NFKC, character by character so positions stay those of the
text). The tenant's matcher is built once per process and rebuilt when its list changes (a version in
Redis, moved on commit of every change; without Redis, rebuilt at most every FALLBACK_SECONDS).
"""

from __future__ import annotations

import threading
import time
import unicodedata
from pathlib import Path

import ahocorasick
import structlog
from django.conf import settings
from django.db import connection, transaction
from redis.exceptions import RedisError

from conversations.models import SensitiveWord
from tenants.keys import redis_key
from tenants.redis import redis_client
from tenants.versioned_cache import version_number

logger = structlog.get_logger("conversations.sensitive_words")

FALLBACK_SECONDS = 60.0  # how long a matcher is trusted when Redis cannot tell the list's version
MASK = "*"

_lock = threading.Lock()
_matchers: dict[str, tuple[int | None, float, Matcher]] = {}  # schema -> (version, built at, matcher)
_platform: tuple[str, frozenset[str]] | None = None  # (file, words)


def _normal(text: str) -> str:
    """NFKC and lower case per character: the same length as `text`, so a match's span is the text's."""
    out = []
    for char in text:
        folded = unicodedata.normalize("NFKC", char).lower()
        out.append(folded if len(folded) == 1 else char)
    return "".join(out)


def normal_word(word: str) -> str:
    return _normal(str(word).strip())


class Matcher:
    """The words of one tenant (the platform's and its own), found in one pass over a text."""

    def __init__(self, words: set[str]):
        self.words = frozenset(word for word in words if word)
        self._automaton = ahocorasick.Automaton()
        for word in self.words:
            self._automaton.add_word(word, word)
        if self.words:
            self._automaton.make_automaton()

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, word) of every occurrence, in order."""
        if not self.words or not text:
            return []
        return sorted((end - len(word) + 1, end + 1, word) for end, word in self._automaton.iter(_normal(text)))

    def found(self, text: str) -> list[str]:
        """The distinct words the text contains, in order of first occurrence."""
        return list(dict.fromkeys(word for _, _, word in self.spans(text)))

    def masked(self, text: str) -> str:
        chars = list(text)
        for start, end, _word in self.spans(text):
            chars[start:end] = MASK * (end - start)
        return "".join(chars)


def platform_words() -> frozenset[str]:
    """The platform's list, read once per process (a changed file needs a restart, like any setting)."""
    global _platform
    path = str(getattr(settings, "SENSITIVE_WORDS_FILE", "") or "")
    if _platform is None or _platform[0] != path:
        words = set()
        if path:
            for line in Path(path).read_text(encoding="utf-8").splitlines():
                word = normal_word(line.split("#", 1)[0])
                if word:
                    words.add(word)
        _platform = (path, frozenset(words))
    return _platform[1]


def _version_key() -> str:
    return redis_key("conversations", "sensitive_words", "version")


def _version() -> int | None:
    """The tenant's list version (tenants/versioned_cache.py: never one a cached matcher saw before). None without
    Redis."""
    try:
        return int(version_number(_version_key()))
    except RedisError as exc:
        logger.warning("sensitive_words.version_unavailable", tenant=connection.schema_name, error=str(exc))
        return None


def matcher() -> Matcher:
    """The current tenant's matcher (platform + tenant words)."""
    schema = connection.schema_name
    version = _version()
    cached = _matchers.get(schema)
    if cached is not None and cached[0] == version and (
            version is not None or time.monotonic() - cached[1] < FALLBACK_SECONDS):
        return cached[2]
    words = set(platform_words())
    own = SensitiveWord.objects.filter(enabled=True).values_list("word", flat=True)
    words.update(normal_word(word) for word in own)
    built = Matcher(words)
    with _lock:
        _matchers[schema] = (version, time.monotonic(), built)
    return built


def list_changed() -> None:
    """Call inside the transaction that changed the tenant's list: matchers rebuild once it commits."""
    key = _version_key()

    def bump() -> None:
        try:
            redis_client().incr(key)
        except RedisError as exc:  # the matchers rebuild within FALLBACK_SECONDS instead
            logger.warning("sensitive_words.version_bump_failed", key=key, error=str(exc))

    transaction.on_commit(bump, robust=True)


def found(text: str) -> list[str]:
    """The current tenant's sensitive words in `text` (distinct, in order)."""
    return matcher().found(text)


WORD_MAX_LENGTH = 64


def clean_words(lines: list[str]) -> tuple[list[str], list[str]]:
    """(the distinct words to add, the problems): one word per line, blank lines skipped, at most
    WORD_MAX_LENGTH characters."""
    words, problems = [], []
    for line in lines:
        word = str(line).strip()
        if not word:
            continue
        if len(word) > WORD_MAX_LENGTH:
            problems.append(f"“{word[:20]}…” is longer than {WORD_MAX_LENGTH} characters.")
        elif word not in words:
            words.append(word)
    return words, problems


def add_words(words: list[str]) -> int:
    """Add these words to the tenant's list (those already in it are kept as they are); returns how many are new."""
    with transaction.atomic():
        existing = set(SensitiveWord.objects.filter(word__in=words).values_list("word", flat=True))
        new = [SensitiveWord(word=word) for word in words if word not in existing]
        created = SensitiveWord.objects.bulk_create(new, ignore_conflicts=True)
        list_changed()
    return len(created)


def set_enabled(*, ids: list[int], enabled: bool) -> int:
    with transaction.atomic():
        changed = SensitiveWord.objects.filter(pk__in=ids).update(enabled=enabled)
        list_changed()
    return changed


def delete_words(*, ids: list[int]) -> int:
    with transaction.atomic():
        deleted = SensitiveWord.objects.filter(pk__in=ids).delete()[0]
        list_changed()
    return deleted
