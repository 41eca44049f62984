"""A tenant's synonym groups (kb.models.Synonym: 快递 包裹 物流): their rules, saving them, and applying them
to a customer's question before retrieval.

A group says its words mean the same in this shop. A question that contains one of them is also asked
with each other word of the group in its place (a *variant*): the lexical ranking scores an entry by its
best variant, so a synonym counts exactly like the word the entry uses, and the vector ranking takes the
best cosine over the variants' vectors (kb.ranking). The original question is always the first variant,
and an entry is never scored lower than without synonyms.

Matching is on the normalised text (NFKC, lower case, as kb.segmentation normalises): a Chinese word
matches anywhere in the question (Chinese has no spaces: 快递 in 我的快递到了吗), a word with Latin
letters or digits only as a whole word (vip must not match vipshop).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from kb.models import Synonym

WORD_MAX_LENGTH = 32
GROUP_MAX_WORDS = 20
# Each variant is one more lexical subquery and one more query embedding (≈ 3 ms with the local model):
# a question mentioning several long groups is asked at most this many ways, fewest substitutions first.
MAX_VARIANTS = 8
MAX_GROUPS_PER_QUESTION = 3  # bounds the combinations (20 words ** 3) before the cut above


def normalise_word(word: str) -> str:
    return unicodedata.normalize("NFKC", str(word)).strip().lower()


def clean_group(words: list[str], *, exclude_pk: int | None = None) -> list[str]:
    """The group's words normalised and de-duplicated, or ValidationError with every problem: fewer than 2
    distinct words, a word too long or with spaces, too many words, or a word already in another group of
    this tenant (a word in two groups would make the groups one: the operator merges them instead)."""
    cleaned, errors = [], []
    for raw in words:
        word = normalise_word(raw)
        if not word:
            continue
        if len(word) > WORD_MAX_LENGTH:
            errors.append(_("“%(word)s” is longer than %(max)d characters.") % {"word": word, "max": WORD_MAX_LENGTH})
        elif re.search(r"\s", word):
            errors.append(_("“%(word)s” contains a space: one word per item.") % {"word": word})
        elif word not in cleaned:
            cleaned.append(word)
    if len(cleaned) < 2:
        errors.append(_("A group needs at least 2 different words."))
    if len(cleaned) > GROUP_MAX_WORDS:
        errors.append(_("A group has at most %(max)d words.") % {"max": GROUP_MAX_WORDS})
    taken = {}
    for other in Synonym.objects.exclude(pk=exclude_pk).only("pk", "words"):
        for word in other.words:
            taken[normalise_word(word)] = other
    for word in cleaned:
        if word in taken:
            errors.append(_("“%(word)s” is already in the group “%(group)s”: a word belongs to one group only.")
                          % {"word": word, "group": " ".join(taken[word].words)})
    if errors:
        raise ValidationError(errors)
    return cleaned


def save_group(*, words: list[str], enabled: bool = True, group: Synonym | None = None) -> Synonym:
    """Create or update a group after clean_group(); the check and the write in one transaction, with the
    tenant's groups locked so two operators cannot put the same word in two groups at once."""
    with transaction.atomic():
        list(Synonym.objects.select_for_update().order_by("pk").values_list("pk", flat=True))
        cleaned = clean_group(words, exclude_pk=group.pk if group else None)
        group = group or Synonym()
        group.words, group.enabled = cleaned, enabled
        group.save()
    return group


# -- applying them -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hit:
    word: str  # as it occurs in the normalised question
    start: int
    alternatives: tuple[str, ...]  # the group's other words


def enabled_groups() -> list[list[str]]:
    """The current tenant's enabled groups, normalised (one small query; read per search round so an edit
    applies at once)."""
    return [[normalise_word(word) for word in words]
            for words in Synonym.objects.filter(enabled=True).order_by("pk").values_list("words", flat=True)]


def _occurrence(word: str, text: str) -> int:
    if word.isascii():
        found = re.search(r"(?<![0-9a-z])" + re.escape(word) + r"(?![0-9a-z])", text)
        return found.start() if found else -1
    return text.find(word)


def _hits(text: str, groups: list[list[str]]) -> list[_Hit]:
    hits: list[_Hit] = []
    taken: list[range] = []
    for group in groups:
        # the longest member first: 快递公司 before 快递 when both are in the group
        for word in sorted(group, key=len, reverse=True):
            start = _occurrence(word, text)
            span = range(start, start + len(word))
            if start >= 0 and not any(set(span) & set(other) for other in taken):
                hits.append(_Hit(word, start, tuple(w for w in group if w != word)))
                taken.append(span)
                break
    return sorted(hits, key=lambda hit: hit.start)


def variants(question: str, groups: list[list[str]]) -> list[str]:
    """The question, then the question with synonyms in place of its words (fewest substitutions first, at
    most MAX_VARIANTS in all). Without a group word in it: just [question], unchanged."""
    text = unicodedata.normalize("NFKC", question or "").lower()
    hits = _hits(text, groups)[:MAX_GROUPS_PER_QUESTION] if groups else []
    if not hits:
        return [question]
    choices = [(hit.word, *hit.alternatives) for hit in hits]
    combos = sorted(itertools.product(*choices),
                    key=lambda combo: sum(word != hit.word for word, hit in zip(combo, hits, strict=True)))
    out = [question]
    for combo in combos[1:MAX_VARIANTS]:
        pieces, cursor = [], 0
        for word, hit in zip(combo, hits, strict=True):
            pieces += [text[cursor:hit.start], word]
            cursor = hit.start + len(hit.word)
        out.append("".join([*pieces, text[cursor:]]))
    return out
