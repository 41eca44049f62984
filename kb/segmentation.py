"""Chinese-aware segmentation of knowledge entries and customer questions (jieba).

PostgreSQL's parsers cannot split Chinese into words, so we segment here and store the
tokens space-separated; the database then builds a 'simple' tsvector over them.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import jieba

# e-commerce customer-service words that jieba's general (news-trained) dictionary lacks or
# ranks too low: without them jieba cuts "买多少钱包邮" into 钱包/邮 (a wallet), "运费险" into
# 运费/险 and "开专票" into one unknown word, so the customer's words and the entry's words
# never meet in the index. Each word gets a frequency high enough to win such contests.
DOMAIN_WORDS = (
    "退货", "退款", "换货", "售后", "发票", "开票", "专票", "普票", "电子发票", "快递", "物流",
    "包邮", "运费险", "到账", "发货", "改绑", "换绑", "优惠券", "优惠码", "积分", "注销", "货到付款",
    "七天无理由", "价保", "拒收", "签收", "运单号", "人工客服",
)
DOMAIN_WORD_FREQ = 50_000

# Words that carry no topic in a customer question: particles, pronouns, question words,
# modal verbs. They would otherwise dominate the OR query ("我"/"怎么" match everything).
STOP_WORDS = frozenset(
    """
    的 地 得 了 着 过 吗 呢 吧 啊 呀 哦 哈 嘛 么 啦 嗯 哎 喂 诶
    我 你 您 他 她 它 我们 你们 他们 她们 咱们 大家 自己 本人 我要 我想
    请 请问 麻烦 谢谢 你好 您好 亲 在吗 在不在
    怎么 怎么办 怎么样 怎样 如何 什么 为什么 为啥 啥 哪 哪里 哪儿 哪个 哪些 几 多少 多久
    什么样 时候 什么时候 是否 是不是 有没有 能不能 可不可以 会不会 要不要
    是 在 有 没有 不 没 和 与 或 或者 及 以及 跟 同 就 都 也 还 又 再 才 只 很 太 更 最
    能 能否 可以 可 会 要 想 需要 应该 得 让 把 被 给 对 从 到 向 往 于 为 以 由 等 等等
    这 那 这个 那个 这样 那样 这里 那里 这些 那些 一下 一个 一些 有些 还有 然后 但是 可是 所以 因为 如果
    用 上 下 里 中 内 后 前 出来 上去 下来 起来 过来 过去
    a an the is are was were be been am do does did to of in on at for by with from and or not no
    i me my we our you your he she it they them this that what how when where which who why can could
    would should will shall may might must please hi hello thanks there here
    """.split()
)

_TOKEN = re.compile(r"[^\W_]+")  # letters and digits only: safe inside a tsquery
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

_lock = threading.Lock()
_tokenizer: jieba.Tokenizer | None = None


@dataclass(frozen=True)
class Segmented:
    """`terms`: words in order (duplicates kept, they weigh in ranking);
    `chars`: the Han characters of the multi-character terms, for paraphrases that share a
    morpheme but not a word (退货 / 能退吗, 门店 / 店里)."""

    terms: list[str]
    chars: list[str]


def tokenizer() -> jieba.Tokenizer:
    """The process-wide jieba tokenizer, loaded once; thread-safe.

    jieba ships its dictionary in the package; loading builds a prefix dictionary (cached
    in the temp dir by jieba) and never downloads anything.
    """
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:
                logging.getLogger("jieba").setLevel(logging.WARNING)  # no "Building prefix dict" chatter
                jieba.setLogLevel(logging.WARNING)
                instance = jieba.Tokenizer()
                instance.initialize()
                for word in DOMAIN_WORDS:
                    instance.add_word(word, freq=DOMAIN_WORD_FREQ)
                _tokenizer = instance
    return _tokenizer


def _normalise(text: str) -> str:
    # NFKC folds full-width letters and digits (ＶＩＰ１) into ASCII, as customers type both.
    return unicodedata.normalize("NFKC", text or "").lower()


def _keep(token: str) -> bool:
    if token in STOP_WORDS or not _TOKEN.fullmatch(token):
        return False
    # lone Latin letters or digits ("a", "7") match too much to be worth a term
    return not (len(token) == 1 and token.isascii())


def segment(text: str) -> Segmented:
    """Segment text in search mode (long words also yield their sub-words: 增值税 → 增值, 增值税)."""
    terms: list[str] = []
    for piece in tokenizer().cut_for_search(_normalise(text)):
        # jieba keeps runs of Latin letters with inner spaces apart, but a token may still
        # hold several words ("ab-cd"); split on anything that is not a letter or digit.
        for token in _TOKEN.findall(piece):
            if _keep(token):
                terms.append(token)
    return Segmented(terms=terms, chars=han_characters(terms))


def han_characters(terms: Iterable[str]) -> list[str]:
    return [char for term in terms if len(term) > 1 for char in term
            if _HAN.match(char) and char not in STOP_WORDS]


def unique(tokens: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(tokens))
