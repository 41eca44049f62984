"""The sandbox's reading of the platform's system prompt, per the "Prompt contract" of docs/SANDBOX.md.

The fake model needs the knowledge entries and the handoff marker out of an answer prompt, and the
conversation lines out of a follow-up rewrite prompt (`is_rewrite_prompt`, `parse_transcript`), and the
question and candidates out of a rerank prompt (`is_rerank_prompt`, `parse_rerank`). It reads them by the
documented contract, not by importing the platform's prompt module, so the simulator stays a separate
package; conversations/tests/test_prompt_contract.py checks that what the platform writes is what this reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HANDOFF_MARKER = "[[HANDOFF]]"
QUESTION_PREFIX = "Q: "
ANSWER_PREFIX = "A: "
CONTINUATION_PREFIX = "  "  # the second and later lines of a multi-line question or answer
REWRITE_HEADING = "【追问改写】"  # the first line of a rewrite prompt's system message
CUSTOMER_PREFIX = "客户："
ASSISTANT_PREFIX = "客服："
RERANK_HEADING = "【候选排序】"  # the first line of a rerank prompt's system message
RERANK_QUESTION_PREFIX = "问题："
_CANDIDATE = re.compile(r"\[(\d+)\] (.*)")


@dataclass(frozen=True)
class KnowledgeEntry:
    question: str
    answer: str


@dataclass
class _Draft:
    question: list[str]
    answer: list[str] | None = None  # None until the "A: " line

    def entry(self) -> KnowledgeEntry | None:
        answer = "\n".join(self.answer or []).strip()
        # An entry without an answer carries no knowledge (the contract says readers skip it).
        return KnowledgeEntry("\n".join(self.question).strip(), answer) if answer else None


def parse_knowledge(prompt: str) -> list[KnowledgeEntry]:
    """The knowledge entries of a rendered system prompt, in prompt order (best first).

    The block is found wherever it sits in the prompt: a "Q: " line opens an entry, the next line must
    be its "A: " line, indented lines continue whichever of the two came last, and any other line
    (the blank line between entries, the template's own text, "（无）") closes it.
    """
    entries: list[KnowledgeEntry] = []
    draft: _Draft | None = None

    def close() -> None:
        entry = draft.entry() if draft else None
        if entry:
            entries.append(entry)

    for line in prompt.splitlines():
        if line.startswith(QUESTION_PREFIX):
            close()
            draft = _Draft(question=[line.removeprefix(QUESTION_PREFIX)])
        elif draft and draft.answer is None and line.startswith(ANSWER_PREFIX):
            draft.answer = [line.removeprefix(ANSWER_PREFIX)]
        elif draft and line.startswith(CONTINUATION_PREFIX):
            (draft.question if draft.answer is None else draft.answer).append(line.removeprefix(CONTINUATION_PREFIX))
        else:
            close()
            draft = None
    close()
    return entries


@dataclass(frozen=True)
class TranscriptLine:
    speaker: str  # "customer" or "assistant"
    text: str


def is_rewrite_prompt(system: str) -> bool:
    """Whether a system message asks for a follow-up rewrite rather than an answer."""
    return system.lstrip().startswith(REWRITE_HEADING)


def parse_transcript(text: str) -> list[TranscriptLine]:
    """The conversation lines of a rewrite prompt's user message, oldest first (the last one is the
    customer's message to rewrite): "客户：" / "客服：" open a line, indented lines continue it, anything
    else is not part of the transcript."""
    lines: list[TranscriptLine] = []
    speaker, parts = None, []

    def close() -> None:
        if speaker:
            lines.append(TranscriptLine(speaker, "\n".join(parts).strip()))

    for line in text.splitlines():
        if line.startswith(CUSTOMER_PREFIX) or line.startswith(ASSISTANT_PREFIX):
            close()
            prefix = CUSTOMER_PREFIX if line.startswith(CUSTOMER_PREFIX) else ASSISTANT_PREFIX
            speaker = "customer" if prefix == CUSTOMER_PREFIX else "assistant"
            parts = [line.removeprefix(prefix)]
        elif speaker and line.startswith(CONTINUATION_PREFIX):
            parts.append(line.removeprefix(CONTINUATION_PREFIX))
        else:
            close()
            speaker, parts = None, []
    close()
    return lines


@dataclass(frozen=True)
class RerankRequest:
    question: str
    candidates: list[str]  # in the prompt's numbering: candidates[0] is "[1]"


def is_rerank_prompt(system: str) -> bool:
    """Whether a system message asks to order retrieved candidates."""
    return system.lstrip().startswith(RERANK_HEADING)


def parse_rerank(text: str) -> RerankRequest:
    """The question ("问题：" line) and the candidates ("[n] " lines, numbered from 1) of a rerank prompt's
    user message; other lines are ignored."""
    question, candidates = "", {}
    for line in text.splitlines():
        candidate = _CANDIDATE.fullmatch(line)
        if line.startswith(RERANK_QUESTION_PREFIX):
            question = line.removeprefix(RERANK_QUESTION_PREFIX).strip()
        elif candidate:
            candidates[int(candidate.group(1))] = candidate.group(2).strip()
    return RerankRequest(question, [candidates[n] for n in sorted(candidates)])
