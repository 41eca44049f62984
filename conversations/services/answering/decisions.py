"""What to say to a customer message: an answer (the model's, or a knowledge entry's), a fallback
script, or a handoff to humans. A decision carries its own reasons; the caller writes the trace
events, in the order things happened.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import F

from conversations.models import FallbackScript, Message
from conversations.services.menus import Menu
from conversations.vocabulary import HandoffReason, Outcome

DEFAULT_FALLBACK_TEXT = "抱歉，我暂时无法回答这个问题，请稍后再试，或回复“人工”联系客服。"


@dataclass(frozen=True, kw_only=True)
class Answer:
    """The model's answer (author AI) or a knowledge entry's (author KNOWLEDGE, no provider set up)."""

    author: Message.Author
    text: str
    entry_id: int | None = None  # the knowledge entry it quotes or was grounded in (Message.knowledge_entry)

    @property
    def outcome(self) -> Outcome:
        return Outcome.AI if self.author == Message.Author.AI else Outcome.KNOWLEDGE


@dataclass(frozen=True, kw_only=True)
class Fallback:
    """A fallback script, chosen because `reason`; `script_id` None is the built-in text. With a `menu`
    (unsure retrieval: the likely questions), `text` is the menu's rendering and no script was used."""

    text: str
    reason: str
    script_id: int | None
    menu: Menu | None = None
    author = Message.Author.FALLBACK
    outcome = Outcome.FALLBACK


@dataclass(frozen=True, kw_only=True)
class Handoff:
    reason: HandoffReason
    outcome = Outcome.HANDOFF


Decision = Answer | Fallback | Handoff


class FallbackChooser:
    """The tenant's fallback scripts, read once per round; uses are counted in one UPDATE per script."""

    def __init__(self):
        self._scripts: list[FallbackScript] | None = None
        self._uses: dict[int, int] = {}

    def fallback(self, text: str, *, reason: str) -> Fallback:
        """The first enabled script whose keyword appears in the message, else the default script."""
        if self._scripts is None:
            self._scripts = list(FallbackScript.objects.filter(enabled=True))
        lowered = text.lower()
        chosen = next((s for s in self._scripts if not s.is_default
                       and any(k and k.lower() in lowered for k in s.keywords)), None) \
            or next((s for s in self._scripts if s.is_default), None)
        if chosen is None:
            return Fallback(text=DEFAULT_FALLBACK_TEXT, reason=reason, script_id=None)
        self._uses[chosen.pk] = self._uses.get(chosen.pk, 0) + 1
        return Fallback(text=chosen.text, reason=reason, script_id=chosen.pk)

    def count_uses(self) -> None:
        for pk, uses in self._uses.items():
            FallbackScript.objects.filter(pk=pk).update(used_count=F("used_count") + uses)
        self._uses.clear()
