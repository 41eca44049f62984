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

The follow-up rewrite prompt (`rewrite_messages`) is the second kind, under the same contract: a system
message starting with the line `【追问改写】` (how a reader tells the kind), then one user message, the
conversation as lines, oldest first, the last one the customer's message to make standalone:

    客户：<what the customer said>
    客服：<what we answered, clipped>
      <continuation line, indented by two spaces>
    客户：<the follow-up>

The rerank prompt (`rerank_messages`) is the third: a system message starting with `【候选排序】`, then
one user message, `问题：<the question>` and one `[<number>] <entry question>` line per candidate, from 1;
the model replies with the numbers, best first ("3,1,2"; `parse_ranking`).
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


# -- follow-up rewriting ----------------------------------------------------------------------------

REWRITE_HEADING = "【追问改写】"
CUSTOMER_PREFIX = "客户："
ASSISTANT_PREFIX = "客服："
# Our earlier answers only set the scene; a long one (a whole policy) would cost tokens, not meaning.
REWRITE_ANSWER_CHARS = 200

REWRITE_SYSTEM_PROMPT = REWRITE_HEADING + """
你负责把客户的追问改写成一个可以单独理解的问题，供知识库检索使用。
用户消息是一段对话记录：以“客户：”开头的是客户说的话，以“客服：”开头的是客服的回复，最后一行是客户的最新消息。
- 结合前面的对话，把最新消息改写成一个完整、独立的问题，保留客户的语言和其中的具体信息（商品、订单号、金额、时间等）。
- 如果最新消息本身已经是完整的问题，原样输出。
- 只输出改写后的问题本身：不要回答，不要解释，不要加引号。
"""


def format_transcript(context: Iterable[dict], message: str) -> str:
    """The conversation (context turns {'role': 'user'|'assistant', 'content'}, oldest first) and the new
    message, as the rewrite prompt's lines."""
    lines = []
    for turn in context:
        content = (turn.get("content") or "").strip()
        if not content:
            continue
        if turn.get("role") == "user":
            lines += _field(CUSTOMER_PREFIX, content)
        else:
            clipped = content if len(content) <= REWRITE_ANSWER_CHARS else content[:REWRITE_ANSWER_CHARS] + "…"
            lines += _field(ASSISTANT_PREFIX, clipped)
    return "\n".join(lines + _field(CUSTOMER_PREFIX, message))


def rewrite_messages(*, context: Iterable[dict], message: str) -> list[dict[str, str]]:
    """The chat messages asking the model for the standalone form of `message`."""
    return [{"role": "system", "content": REWRITE_SYSTEM_PROMPT},
            {"role": "user", "content": format_transcript(context, message)}]


# -- reranking ---------------------------------------------------------------------------------------

RERANK_HEADING = "【候选排序】"
RERANK_QUESTION_PREFIX = "问题："
RERANK_CANDIDATE_CHARS = 100  # an entry's question; enough to tell candidates apart

RERANK_SYSTEM_PROMPT = RERANK_HEADING + """
你负责给知识库的检索结果排序。
用户消息的第一行是客户的问题（以“问题：”开头），之后每行是一个候选条目，格式为“[编号] 条目的问题”。
- 按能回答客户问题的程度从高到低，输出全部候选的编号，用英文逗号分隔，例如：3,1,2
- 只输出编号，不要输出其他文字。
"""
_NUMBER = re.compile(r"\d+")


def _one_line(text: str, limit: int | None = None) -> str:
    line = " ".join((text or "").split())
    return line if limit is None or len(line) <= limit else line[:limit] + "…"


def rerank_messages(*, question: str, candidates: Sequence[str]) -> list[dict[str, str]]:
    """The chat messages asking the model to order `candidates` (entries' questions, as retrieved) for
    `question`; candidates are numbered from 1, one line each."""
    lines = [RERANK_QUESTION_PREFIX + _one_line(question)]
    lines += [f"[{number}] {_one_line(text, RERANK_CANDIDATE_CHARS)}" for number, text in enumerate(candidates, 1)]
    return [{"role": "system", "content": RERANK_SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]


def parse_ranking(reply: str, *, count: int) -> list[int] | None:
    """The order a rerank reply gives, as 0-based positions of all `count` candidates: the numbers it
    names (1..count, first mention wins), then the ones it left out in their retrieved order. None when
    it names none (a refusal or prose: the caller keeps the retrieved order)."""
    named = list(dict.fromkeys(int(n) - 1 for n in _NUMBER.findall(reply or "") if 1 <= int(n) <= count))
    if not named:
        return None
    return named + [position for position in range(count) if position not in named]


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
