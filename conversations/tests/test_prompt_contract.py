"""The platform's prompt and the sandbox's fake model agree on the "Prompt contract" (docs/SANDBOX.md).

The sandbox reads prompts with its own parser (it may not import the platform); this is the one place that
renders with the platform's code and reads with the sandbox's, so a format change on either side fails here.
"""

import pytest

from conversations.ai import prompt as platform
from wecom_sandbox.model import answer_for
from wecom_sandbox.prompt_contract import HANDOFF_MARKER, KnowledgeEntry, parse_knowledge

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
