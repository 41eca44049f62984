"""微信客服 menus (msgmenu): building one within WeCom's limits, rendering it per channel, reading a
click back.

A menu is a head, up to ten click items {id, content} and a tail (docs/WECOM_PROTOCOL.md 4.2).
WeCom refuses a menu over its limits (95008 for more than ten items), and a ledger row it refuses
only dies, so every menu is validated here when it is built and nothing invalid is queued.
The ledger row stores our own compact JSON (`as_json`); `wecom_payload` is what kf/send_msg takes.
The self-built app has no msgmenu: there the same menu goes out as plain text lines (`as_text`),
which is also what the transcript shows.

A click comes back as a pulled text whose `text.menu_id` is the item's id and whose content is the
item's content. Our ids: "kb:<knowledge entry id>" (answer that entry) and "human" (hand off).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from conversations.models import InboundMessage

MSGMENU = "msgmenu"
MAX_ITEMS = 10
ITEM_ID_MAX_BYTES = 64
ITEM_CONTENT_MAX_BYTES = 128
HEAD_TAIL_MAX_BYTES = 1024

HUMAN_ITEM_ID = "human"
HUMAN_ITEM_CONTENT = "转人工客服"
KNOWLEDGE_ITEM_PREFIX = "kb:"
UNSURE_HEAD = "您是想问以下问题吗？"
UNSURE_MAX_QUESTIONS = 3
# "Unsure" retrieval: no entry reached the tenant's threshold, but some reached this share of it.
UNSURE_SCORE_SHARE = 0.5
ELLIPSIS = "…"


class MenuError(ValueError):
    """A menu WeCom would refuse; `problems` says why, one sentence each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class MenuItem:
    id: str
    content: str


@dataclass(frozen=True, kw_only=True)
class Menu:
    head: str
    items: tuple[MenuItem, ...]
    tail: str = ""

    def as_json(self) -> str:
        """What the ledger row stores (OutboundMessage.content of a msgmenu row)."""
        return json.dumps({"head_content": self.head, "list": [{"id": i.id, "content": i.content} for i in self.items],
                           "tail_content": self.tail}, ensure_ascii=False)

    def wecom_payload(self) -> dict:
        """The `msgmenu` object of kf/send_msg and kf/send_msg_on_event (click items only)."""
        payload: dict = {"list": [{"type": "click", "click": {"id": i.id, "content": i.content}} for i in self.items]}
        if self.head:
            payload["head_content"] = self.head
        if self.tail:
            payload["tail_content"] = self.tail
        return payload

    def as_text(self) -> str:
        """The menu as plain lines, for the self-built app and the transcript."""
        lines = [self.head] if self.head else []
        lines += [f"{number}. {item.content}" for number, item in enumerate(self.items, start=1)]
        if self.tail:
            lines.append(self.tail)
        return "\n".join(lines)


@dataclass(frozen=True)
class MenuClick:
    """A customer's click on one of our menu items."""

    menu_id: str

    @property
    def human(self) -> bool:
        return self.menu_id == HUMAN_ITEM_ID

    @property
    def entry_id(self) -> int | None:
        """The knowledge entry a "kb:<id>" item names (None for any other id)."""
        number = self.menu_id.removeprefix(KNOWLEDGE_ITEM_PREFIX) if self.menu_id.startswith(
            KNOWLEDGE_ITEM_PREFIX) else ""
        return int(number) if number.isascii() and number.isdigit() and len(number) < 18 else None


def _bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def menu_problems(*, head: str, items: Sequence[MenuItem], tail: str = "") -> list[str]:
    """Why WeCom would refuse this menu (empty: it would not). Distinct ids are our own rule:
    a click names its item by id, so two items with one id could not be told apart."""
    problems = []
    if not items:
        problems.append("A menu needs at least one item.")
    if len(items) > MAX_ITEMS:
        problems.append(f"At most {MAX_ITEMS} items (WeCom refuses more: 95008); this menu has {len(items)}.")
    for name, text in (("head", head), ("tail", tail)):
        if _bytes(text) > HEAD_TAIL_MAX_BYTES:
            problems.append(f"The {name} is at most {HEAD_TAIL_MAX_BYTES} bytes (UTF-8).")
    seen = set()
    for item in items:
        if not item.id or _bytes(item.id) > ITEM_ID_MAX_BYTES:
            problems.append(f"Item id {item.id!r}: 1 to {ITEM_ID_MAX_BYTES} bytes.")
        if not item.content.strip() or _bytes(item.content) > ITEM_CONTENT_MAX_BYTES:
            problems.append(f"Item {item.id!r}: its text is 1 to {ITEM_CONTENT_MAX_BYTES} bytes (UTF-8).")
        if item.id in seen:
            problems.append(f"Item id {item.id!r} is used twice.")
        seen.add(item.id)
    return problems


def build_menu(*, head: str, items: Iterable[MenuItem], tail: str = "") -> Menu:
    """A menu WeCom accepts, or MenuError."""
    items = tuple(items)
    if problems := menu_problems(head=head, items=items, tail=tail):
        raise MenuError(problems)
    return Menu(head=head, items=items, tail=tail)


def menu_from_json(content: str) -> Menu:
    """The menu a msgmenu ledger row holds (written by `Menu.as_json`)."""
    data = json.loads(content)
    return Menu(head=data.get("head_content", ""), tail=data.get("tail_content", ""),
                items=tuple(MenuItem(id=item["id"], content=item["content"]) for item in data.get("list", [])))


def items_from_setting(value) -> list[MenuItem]:
    """DeskSettings.welcome_menu ([{"id", "content"}, ...]) as items; anything else is no item,
    and what WeCom would refuse is left to `menu_problems`."""
    if not isinstance(value, list):
        return []
    return [MenuItem(id=str(item.get("id", "")).strip(), content=str(item.get("content", "")).strip())
            for item in value if isinstance(item, dict)]


def human_item() -> MenuItem:
    return MenuItem(id=HUMAN_ITEM_ID, content=HUMAN_ITEM_CONTENT)


def welcome_items(*, items: Sequence[MenuItem], with_human: bool) -> list[MenuItem]:
    """The welcome menu's items: the tenant's, then "转人工客服" when handoff menus are on. A welcome
    without items of its own stays a plain text."""
    if not items:
        return []
    return [*items, human_item()] if with_human and all(i.id != HUMAN_ITEM_ID for i in items) else list(items)


def welcome_menu(*, welcome: str, items: Sequence[MenuItem], with_human: bool) -> Menu | None:
    """The welcome as a menu headed by the welcome text; None when it is a plain text."""
    chosen = welcome_items(items=items, with_human=with_human)
    return build_menu(head=welcome, items=chosen) if chosen else None


def clip(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes, an ellipsis marking a cut (never splitting a character)."""
    text = " ".join(text.split())
    if _bytes(text) <= limit:
        return text
    return text.encode("utf-8")[:limit - _bytes(ELLIPSIS)].decode("utf-8", "ignore") + ELLIPSIS


def unsure_menu(*, matches: Sequence, min_score: float, with_human: bool) -> Menu | None:
    """The likely questions when retrieval is unsure (docs/ANSWERING.md): no match reached `min_score`,
    but some reached half of it; up to three of them, best first, plus "转人工客服". None otherwise."""
    if not matches or matches[0].score >= min_score:
        return None
    likely = [m for m in matches if m.score >= min_score * UNSURE_SCORE_SHARE and m.score > 0]
    items = [MenuItem(id=f"{KNOWLEDGE_ITEM_PREFIX}{m.entry.pk}", content=clip(m.entry.question, ITEM_CONTENT_MAX_BYTES))
             for m in likely[:UNSURE_MAX_QUESTIONS]]
    if not items:
        return None
    return build_menu(head=UNSURE_HEAD, items=[*items, human_item()] if with_human else items)


def menu_clicks(*, inbound_ids: Sequence[int]) -> dict[int, MenuClick]:
    """The menu items these customer texts clicked, by inbound id (微信客服: `text.menu_id` of the pulled
    message, kept in the stored payload). One statement, reading only that key: the answering
    pipeline leaves the payloads themselves unloaded."""
    if not inbound_ids:
        return {}
    found = (InboundMessage.objects.filter(pk__in=inbound_ids, msg_type="text", payload__text__has_key="menu_id")
             .values_list("pk", "payload__text__menu_id"))
    return {pk: MenuClick(menu_id=str(menu_id).strip()) for pk, menu_id in found if str(menu_id or "").strip()}
