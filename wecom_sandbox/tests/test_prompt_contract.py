"""The sandbox's reading of system prompts, on prompts written by hand from docs/SANDBOX.md's "Prompt contract".

conversations/tests/test_prompt_contract.py checks the same parser on prompts the platform renders.
"""

from wecom_sandbox.prompt_contract import KnowledgeEntry, parse_knowledge

PROMPT = "\n".join([
    "你是「Alpha」的智能客服助手。每个条目中，以“Q:”开头的一行是问题。",
    "知识库：",
    "Q: 怎么退货？",
    "A: 七天内可以退。",
    "  ",  # an empty line inside an answer is still indented
    "  请保留包装。",
    "",
    "Q: 多行",
    "  问题",
    "A: 答案",
    "",
    "Q: 没有答案的条目",
    "A: ",
    "",
    "回答要简洁。",
])


def test_reads_entries_with_continuation_lines_wherever_the_block_sits_in_the_prompt():
    assert parse_knowledge(PROMPT) == [
        KnowledgeEntry("怎么退货？", "七天内可以退。\n\n请保留包装。"),
        KnowledgeEntry("多行\n问题", "答案"),
    ]


def test_no_knowledge_reads_as_no_entries():
    assert parse_knowledge("知识库：\n（无）\n") == []


def test_a_question_without_its_answer_line_is_no_entry():
    prompt = "Q: 孤零零的问题\n不是答案\nA: 也不算\nQ: 下一个\nA: 算\n"

    assert parse_knowledge(prompt) == [KnowledgeEntry("下一个", "算")]
