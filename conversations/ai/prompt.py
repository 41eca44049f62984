"""The system prompt: template placeholders, the knowledge block format, and the handoff marker.

The knowledge block and the handoff marker are a contract with a reader outside the platform: the
WeCom sandbox's fake model reads prompts by the "Prompt contract" of docs/SANDBOX.md with its own
parser, and conversations/tests/test_prompt_contract.py checks that it reads back what is written
here. Changing the format means changing that contract too.

Knowledge block (what `{knowledge}` becomes), one entry per retrieved knowledge entry, best first:

    Q: <question>
    A: <answer>
      <continuation line of a multi-line answer, indented by two spaces>

    Q: <next question>
    A: ...

Entries are separated by a blank line; with no entries the block is the single line `（无）`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

HANDOFF_MARKER = "[[HANDOFF]]"
# Models sometimes add spaces or change case inside the marker; all of these still mean "hand off".
HANDOFF_PATTERN = re.compile(r"\[\[\s*HANDOFF\s*\]\]", re.IGNORECASE)

PLACEHOLDERS = ("tenant_name", "knowledge", "handoff_marker")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
# Anything that looks like a placeholder: used to catch typos such as {knowlege} when saving.
_ANY_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

QUESTION_PREFIX = "Q: "
ANSWER_PREFIX = "A: "
CONTINUATION = "  "
NO_KNOWLEDGE = "（无）"

DEFAULT_SYSTEM_PROMPT = """你是「{tenant_name}」的智能客服助手。
请只根据下面“知识库”中的条目回答客户的问题。每个条目中，以“Q:”开头的一行是问题，以“A:”开头的一行是答案。
- 用客户使用的语言回答，简洁、礼貌；不要编造知识库里没有的信息（价格、政策、链接、承诺等）。
- 如果知识库中没有能回答这个问题的内容，只回复 {handoff_marker} ，不要输出任何其他文字，平台会为客户转接人工客服。
- 问候、致谢等寒暄可以简短回应。

知识库：
{knowledge}
"""


def _field(prefix: str, text: str) -> list[str]:
    lines = (text or "").strip().splitlines() or [""]
    return [prefix + lines[0].strip()] + [CONTINUATION + line.rstrip() for line in lines[1:]]


def format_knowledge(entries: Iterable[Sequence]) -> str:
    """Render (question, answer[, score]) entries in the order given (callers pass best first)."""
    blocks = ["\n".join(_field(QUESTION_PREFIX, entry[0]) + _field(ANSWER_PREFIX, entry[1])) for entry in entries]
    return "\n\n".join(blocks) if blocks else NO_KNOWLEDGE


def render_system_prompt(template: str, *, tenant_name: str, knowledge: Iterable[Sequence]) -> str:
    """Fill the known placeholders in one pass (a knowledge text containing "{knowledge}" stays as is)."""
    values = {
        "tenant_name": tenant_name,
        "knowledge": format_knowledge(knowledge),
        "handoff_marker": HANDOFF_MARKER,
    }
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def template_problems(template: str) -> list[str]:
    """Why a system prompt template cannot be used (empty list when it can)."""
    problems = []
    if "{knowledge}" not in template:
        problems.append("The template must contain {knowledge}, where the retrieved entries go.")
    if "{handoff_marker}" not in template and HANDOFF_MARKER not in template:
        problems.append(
            f"The template must tell the model to reply {{handoff_marker}} (that is, {HANDOFF_MARKER}) "
            "when the knowledge does not answer the question."
        )
    unknown = sorted({name for name in _ANY_PLACEHOLDER.findall(template) if name not in PLACEHOLDERS})
    if unknown:
        known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
        problems.append(f"Unknown placeholder(s): {', '.join('{' + n + '}' for n in unknown)}; known: {known}.")
    return problems


def split_handoff(text: str) -> tuple[str, bool]:
    """(text without the marker, whether the model asked for a handoff). An empty reply is a handoff too."""
    cleaned, count = HANDOFF_PATTERN.subn("", text or "")
    cleaned = cleaned.strip()
    return cleaned, bool(count) or not cleaned
