"""The platform's prompts (answer, follow-up rewrite, rerank) and the sandbox's fake model agree on the "Prompt
contract" (docs/SANDBOX.md).

The sandbox reads prompts with its own parser (it may not import the platform); this is the one place that
renders with the platform's code and reads with the sandbox's, so a format change on either side fails here.
"""

import pytest

from conversations.ai import prompt as platform
from wecom_sandbox.model import answer_for
from wecom_sandbox.prompt_contract import (
    HANDOFF_MARKER,
    KnowledgeEntry,
    RerankRequest,
    TranscriptLine,
    is_rerank_prompt,
    is_rewrite_prompt,
    parse_knowledge,
    parse_rerank,
    parse_transcript,
)

MULTI_LINE = [
    ("怎么退货？", "七天内可以退。\n\n请保留包装。", 0.9),  # a blank line inside an answer
    ("多行\n问题", "答案第一行\n  缩进的第二行", 0.5),  # a multi-line question; an answer line with its own indent
    ("Q: 像前缀的问题", "A: 像前缀的答案", 0.1),
]


def prompt_with(knowledge) -> str:
    return platform.render_system_prompt(platform.DEFAULT_SYSTEM_PROMPT, tenant_name="Alpha Ltd", knowledge=knowledge)


@pytest.mark.parametrize(
    "knowledge",
    [[("如何开发票？", "在订单详情页申请。", 1.0)], MULTI_LINE, []],
    ids=["one entry", "multi-line entries", "no entries"],
)
def test_the_sandbox_reads_back_exactly_the_entries_the_platform_renders(knowledge):
    prompt = prompt_with(knowledge)

    assert parse_knowledge(prompt) == [KnowledgeEntry(question, answer) for question, answer, _ in knowledge]
    if not knowledge:
        assert platform.NO_KNOWLEDGE in prompt.splitlines()


def test_an_entry_without_an_answer_is_skipped_by_the_reader():
    knowledge = [("空答案", "", 0.9), ("有答案", "是的。", 0.5)]

    assert platform.format_knowledge(knowledge).startswith("Q: 空答案\nA: \n\nQ: 有答案")
    assert parse_knowledge(prompt_with(knowledge)) == [KnowledgeEntry("有答案", "是的。")]


def test_the_fake_model_answers_from_the_first_entry_or_hands_off_with_the_platform_marker():
    def reply(knowledge) -> str:
        return answer_for([{"role": "system", "content": prompt_with(knowledge)},
                           {"role": "user", "content": "火星有几个月亮？"}])

    assert HANDOFF_MARKER == platform.HANDOFF_MARKER
    assert platform.split_handoff(reply([])) == ("", True)
    assert platform.split_handoff(reply(MULTI_LINE)) == ("根据资料：七天内可以退。\n\n请保留包装。", False)


# -- the follow-up rewrite prompt ----------------------------------------------------------------------

CONVERSATION = [
    {"role": "user", "content": "怎么退货？"},
    {"role": "assistant", "content": "七天内可以退。\n\n请保留包装。"},  # multi-line, with a blank line
    {"role": "assistant", "content": "   "},  # an empty turn is left out
    {"role": "user", "content": "客服：像前缀的话"},
]


def test_the_sandbox_reads_back_the_conversation_of_a_rewrite_prompt():
    system, user = platform.rewrite_messages(context=CONVERSATION, message="那运费呢？")

    assert (system["role"], user["role"]) == ("system", "user")
    assert is_rewrite_prompt(system["content"]) and not is_rewrite_prompt(prompt_with(MULTI_LINE))
    assert parse_transcript(user["content"]) == [
        TranscriptLine("customer", "怎么退货？"),
        TranscriptLine("assistant", "七天内可以退。\n\n请保留包装。"),
        TranscriptLine("customer", "客服：像前缀的话"),
        TranscriptLine("customer", "那运费呢？"),
    ]


def test_long_answers_are_clipped_in_the_rewrite_prompt_but_customer_lines_are_not():
    long_answer, long_question = "很" * 500, "问" * 500
    _, user = platform.rewrite_messages(context=[{"role": "user", "content": long_question},
                                                 {"role": "assistant", "content": long_answer}], message="那呢")

    assert parse_transcript(user["content"]) == [
        TranscriptLine("customer", long_question),
        TranscriptLine("assistant", "很" * platform.REWRITE_ANSWER_CHARS + "…"),
        TranscriptLine("customer", "那呢"),
    ]


def test_the_fake_model_rewrites_from_the_platforms_rewrite_prompt():
    def rewrite(context, message) -> str:
        return answer_for(platform.rewrite_messages(context=context, message=message))

    assert rewrite(CONVERSATION[:2], "那运费呢？") == "退货的运费？"
    assert rewrite([{"role": "user", "content": "请问如何申请退货"}], "那么多久到账呢") == "申请退货的多久到账？"
    assert rewrite([], "那运费呢？") == "那运费呢？"  # nothing earlier: the message as it is


# -- the rerank prompt ---------------------------------------------------------------------------------


def test_the_sandbox_reads_back_the_question_and_candidates_of_a_rerank_prompt():
    candidates = ["怎么退货？", "多行\n问题", "[2] 像编号的问题", "长" * 300]
    system, user = platform.rerank_messages(question="退货\n运费", candidates=candidates)

    assert is_rerank_prompt(system["content"]) and not is_rewrite_prompt(system["content"])
    assert parse_rerank(user["content"]) == RerankRequest(
        "退货 运费", ["怎么退货？", "多行 问题", "[2] 像编号的问题", "长" * platform.RERANK_CANDIDATE_CHARS + "…"])


def test_the_fake_models_ranking_is_read_by_the_platform():
    messages = platform.rerank_messages(question="退货运费", candidates=["怎么开发票", "运费怎么算", "退货的运费谁出"])

    reply = answer_for(messages)
    assert reply == "3,2,1"
    assert platform.parse_ranking(reply, count=3) == [2, 1, 0]
