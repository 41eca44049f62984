"""The measures that group unanswered questions (conversations.services.question_similarity), on paraphrased
shop questions: similar ones reach the thresholds, unrelated ones (greetings included) do not."""

from __future__ import annotations

from itertools import combinations

from conversations.services.question_similarity import (
    COSINE_THRESHOLD,
    LEXICAL_THRESHOLD,
    cosine,
    lexical_similarity,
    question_shape,
)
from kb.embeddings.local import local_embedder

GROUPS = [
    ["我的快递三天了还没到，怎么回事", "快递怎么还没到", "快递三天还没到", "我的快递一直没到啊",
     "快递到哪了怎么还没到"],
    ["钱什么时候退回来", "退款什么时候到账", "退款多久能到账", "钱多久退回来"],
    ["你们支持花呗分期吗", "可以用花呗分期付款吗", "花呗分期可以吗"],
    ["门店在哪里", "你们线下门店地址在哪", "实体店在哪里"],
    ["怎么修改收货地址", "收货地址填错了能改吗", "下单后能改地址吗"],
    ["发票怎么开", "怎么开发票", "能开增值税专票吗"],
]
LONERS = ["你好", "在吗", "谢谢", "今天天气怎么样", "你们几点下班", "会员积分怎么用", "优惠券怎么领",
          "商品有质量问题怎么办"]


def pairs(groups):
    within = [pair for group in groups for pair in combinations(group, 2)]
    across = [(a, b) for one, other in combinations(groups, 2) for a in one for b in other]
    return within, across


def test_lexical_similarity_joins_most_paraphrases_and_never_unrelated_questions():
    within, across = pairs(GROUPS)
    shapes = {text: question_shape(text) for group in GROUPS for text in group}

    def joined(selected):
        return sum(lexical_similarity(shapes[a], shapes[b]) >= LEXICAL_THRESHOLD for a, b in selected)

    assert (len(within), len(across)) == (28, 182)
    assert joined(within) == 20  # the rest share no word: the embedder's part
    assert joined(across) == 0
    assert lexical_similarity(shapes["快递怎么还没到"], shapes["快递怎么还没到"]) == 1.0


def test_cosine_with_the_built_in_model_joins_paraphrases_and_keeps_greetings_apart():
    model = local_embedder()
    texts = [text for group in GROUPS for text in group] + LONERS
    vectors = dict(zip(texts, model.embed(texts), strict=True))
    within, across = pairs(GROUPS + [[text] for text in LONERS])

    def joined(selected):
        return sum(cosine(vectors[a], vectors[b]) >= COSINE_THRESHOLD for a, b in selected)

    assert (len(within), len(across)) == (28, 378)
    assert joined(within) == 27
    assert joined(across) == 0
