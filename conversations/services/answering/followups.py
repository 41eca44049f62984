"""Follow-up questions: a message that leans on earlier turns ("那运费呢？" after "怎么退货？") is made
standalone before retrieval, so the knowledge base is searched for what the customer means.

1. `looks_like_followup(text)`: the cheap test on the message alone: short, not small talk, and either a
   follow-up marker (a leading 那/还有/what about, a trailing 呢, a pointing word such as 这个/它) with at
   most as many topic words as markers, or no topic word at all but a question (多少钱, 要多久). Most
   messages stop here, so they cost nothing, not even their context;
2. `earlier_topic(context)`: the retrieval words of the customer's earlier question in the recent turns
   (walking back through earlier follow-ups to the question they lean on); none (a first message, or
   only small talk before) means no rewrite;
3. `make_standalone(followups, provider=...)`: the tenant's model rewrites them (the rewrite prompt of
   conversations/ai/prompt.py, through the breaker, so metrics and the `llm_call` trace apply) when a
   provider is enabled and its breaker closed; otherwise, or when the model fails, times out or says
   nothing, the rule (`rule_standalone`): the earlier topic's words then the message's own
   ("那运费呢？" after "怎么退货" → "退货 运费").

Only retrieval uses the standalone question; the model's answer prompt keeps the real message and its
context. The caller traces each rewrite (`rewritten`: original, standalone, by model or rule).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from conversations.services.answering.model_calls import FollowUp, ModelCall, model_usable, rewrite_followups
from conversations.vocabulary import ModelOutcome
from kb.segmentation import segment, unique

# A follow-up is a few words; a longer message carries its own topic (and rewriting it would dilute it).
MAX_FOLLOWUP_CHARS = 20
MAX_STANDALONE_CHARS = 200  # a model rambling instead of rewriting is cut, not trusted with an essay

LEADING_MARKERS = ("那么", "那如果", "那要是", "那", "还有", "另外", "然后", "再问一下",
                   "and", "what about", "how about", "what if")
POINTING_WORDS = ("这个", "那个", "这款", "那款", "这件", "那件", "这种", "那种", "这些", "那些", "它们", "它",
                  "其他", "其它", "别的")
POINTING_WORDS_EN = frozenset({"it", "this", "that", "they", "them", "those", "these"})
QUESTION_SIGNS = ("多少", "几", "怎么", "啥", "什么", "哪", "多久", "多长", "吗", "么", "?", "？",
                  "how", "what", "when", "where", "which")
SMALL_TALK = frozenset({
    "你好", "您好", "嗨", "哈喽", "在吗", "在不在", "有人吗", "谢谢", "多谢", "感谢", "谢谢你", "谢了", "好的", "好",
    "好吧", "行", "可以", "嗯", "嗯嗯", "哦", "收到", "知道了", "明白了", "明白", "懂了", "没问题", "再见", "拜拜",
    "早上好", "晚上好", "hi", "hello", "hey", "thanks", "thankyou", "ok", "okay", "bye", "好的谢谢",
})
# Words that segmentation keeps but that name no topic retrieval could use.
NOT_TOPICS = frozenset({"钱", "好", "about", "if", "one", "else", "谁", "出", "回事", "怎么回事", *POINTING_WORDS})

_PUNCTUATION = re.compile(r"[\s!！?？。.,，~～…、:：;；'\"“”‘’()（）]+")
_TRAILING_PARTICLES = re.compile(r"[呀啊哈吖呢哦喔啦了吧你您]+$")
_LATIN_WORD = re.compile(r"[a-z]+")
_QUOTES = "\"'“”‘’「」『』"


class RewrittenBy(StrEnum):
    MODEL = "model"
    RULE = "rule"


@dataclass(frozen=True, kw_only=True)
class Rewrite:
    """The standalone form of a follow-up; `call` is the model's rewrite call when there was one (traced
    even when it failed and the rule stood in)."""

    original: str
    standalone: str
    by: RewrittenBy
    call: ModelCall | None = None

    @property
    def changed(self) -> bool:
        return self.standalone.strip() != self.original.strip()

    def trace_detail(self) -> dict:
        return {"original": self.original, "standalone": self.standalone, "by": self.by.value}


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").lower().strip()


def _leading_marker(compact: str, spaced: str) -> str | None:
    """The follow-up marker the message opens with (Chinese on the compact text, English on words)."""
    for marker in LEADING_MARKERS:
        if marker.isascii():
            if spaced == marker or spaced.startswith(marker + " "):
                return marker
        elif compact.startswith(marker) and not any(compact.startswith(w) for w in POINTING_WORDS):
            return marker
    return None


def _is_small_talk(compact: str) -> bool:
    for marker in LEADING_MARKERS:  # "那好吧", "那谢谢了"
        if not marker.isascii() and compact.startswith(marker) and compact != marker:
            compact = compact.removeprefix(marker)
            break
    return compact in SMALL_TALK or _TRAILING_PARTICLES.sub("", compact) in SMALL_TALK


def _spaced_and_compact(text: str) -> tuple[str, str]:
    spaced = " ".join(_PUNCTUATION.sub(" ", _normalise(text)).split())
    return spaced, spaced.replace(" ", "")


def retrieval_words(text: str) -> list[str]:
    """The words of `text` that retrieval can use (segmented as the knowledge base is, topic-less words out).
    A leading Chinese marker is cut first: jieba would glue 那 to the next word (那能退吗 → 那能)."""
    spaced, compact = _spaced_and_compact(text)
    marker = _leading_marker(compact, spaced)
    if marker and not marker.isascii():
        text = compact.removeprefix(marker)
    return [word for word in unique(segment(text).terms) if word not in NOT_TOPICS]


def topic_words(text: str) -> list[str]:
    """retrieval_words() without the sub-words segmentation adds (今天天气 counts once, not as 今天 天气 ...)."""
    words = retrieval_words(text)
    return [word for word in words if not any(word != other and word in other for other in words)]


def looks_like_followup(text: str) -> bool:
    """Whether the message, on its own, reads like a follow-up that needs the earlier turns (step 1)."""
    spaced, compact = _spaced_and_compact(text)
    if not compact or len(compact) > MAX_FOLLOWUP_CHARS or _is_small_talk(compact):
        return False
    markers = sum([
        _leading_marker(compact, spaced) is not None,
        compact.endswith("呢"),
        any(word in compact for word in POINTING_WORDS) or bool(POINTING_WORDS_EN & set(_LATIN_WORD.findall(spaced))),
    ])
    topics = len(topic_words(text))
    if markers:
        return topics <= markers
    return topics == 0 and any(sign in _normalise(text) for sign in QUESTION_SIGNS)


def earlier_topic(context: list[dict]) -> list[str]:
    """The retrieval words of the customer's earlier question (step 2), oldest first: the latest customer
    turn with topic words, and, when that one is itself a follow-up, the question it leans on too."""
    words: list[str] = []
    for turn in reversed(context):
        if turn.get("role") != "user":
            continue
        content = turn.get("content") or ""
        found = retrieval_words(content)
        if not found:
            continue
        words = found + words
        if not looks_like_followup(content):
            break
    return unique(words)


def rule_standalone(text: str, topic: list[str]) -> str:
    """The rule's standalone question: the earlier topic's words, then the message's own (or, when it has
    none, the message itself: "多少钱" after "怎么退货" → "退货 多少钱")."""
    own = retrieval_words(text)
    if own:
        return " ".join(unique([*topic, *own]))
    return " ".join([*topic, _PUNCTUATION.sub(" ", text).strip()]).strip()


def _from_model(call: ModelCall) -> str:
    """The model's rewrite as a query: its first line, without quotes or an echoed "客户：" prefix; "" if
    it gave none (failed, refused, or answered with nothing)."""
    if call.outcome != ModelOutcome.OK or call.answer is None:
        return ""
    line = next((line.strip() for line in call.answer.text.splitlines() if line.strip()), "")
    line = line.removeprefix("客户：").removeprefix("客户:").strip().strip(_QUOTES).strip()
    return line[:MAX_STANDALONE_CHARS]


def make_standalone(followups: list[FollowUp], *, provider) -> list[Rewrite | None]:
    """The standalone form of each likely follow-up (step 3), in order; None where the recent turns hold
    no earlier question to lean on (nothing to rewrite from)."""
    topics = [earlier_topic(followup.context) for followup in followups]
    rewritable = [i for i, topic in enumerate(topics) if topic]
    calls: dict[int, ModelCall] = {}
    if provider is not None and rewritable and model_usable():
        asked = rewrite_followups([followups[i] for i in rewritable], provider=provider)
        calls = dict(zip(rewritable, asked, strict=True))
    rewrites: list[Rewrite | None] = []
    for i, followup in enumerate(followups):
        if not topics[i]:
            rewrites.append(None)
            continue
        call = calls.get(i)
        by_model = _from_model(call) if call is not None else ""
        if by_model:
            rewrites.append(Rewrite(original=followup.text, standalone=by_model, by=RewrittenBy.MODEL, call=call))
        else:
            rewrites.append(Rewrite(original=followup.text, standalone=rule_standalone(followup.text, topics[i]),
                                    by=RewrittenBy.RULE, call=call))
    return rewrites
