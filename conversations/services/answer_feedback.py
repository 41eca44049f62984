"""Customers rate AI and knowledge answers (docs/ANSWERING.md, "Ratings").

When the tenant turns ratings on (DeskSettings.answer_feedback), each answer asks for one:
- 微信客服: the answer's last part goes out as a msgmenu headed by that part, with two click items,
  "👍 有帮助" and "👎 没帮助", whose ids name the answer ("rate:<message id>:helpful"). No extra message:
  WeCom counts the replies a customer's message allows, and a separate "rate me" would spend one.
- self-built apps (no menus): the tenant's prompt under the answer ("回复“有用”或“没用”"), and a reply that is
  exactly one of the tenant's keywords rates the conversation's latest answer of the last 24 hours.

A rating is stored once per answer (AnswerFeedback; a second click replaces the first) and counted on the
answer's knowledge entry (kb.stats). The rating message itself is not a question: the pipeline settles it
with the outcome `rating` and, while the bot owns the conversation, thanks the customer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from conversations.models import AnswerFeedback, Contact, DeskSettings, InboundMessage, Message, WeComApp
from conversations.services.menus import MenuClick, MenuItem
from kb import stats

RATING_ITEM_PREFIX = "rate:"
HELPFUL, UNHELPFUL = AnswerFeedback.Rating.HELPFUL, AnswerFeedback.Rating.UNHELPFUL
ITEM_CONTENT = {HELPFUL: "👍 有帮助", UNHELPFUL: "👎 没帮助"}
RATED_AUTHORS = (Message.Author.AI, Message.Author.KNOWLEDGE)
# A keyword reply rates an answer this recent at most: "没用" a day later is about something else.
KEYWORD_WINDOW = timedelta(hours=24)
_IGNORED = re.compile(r"[\s。！!？?，,.~～]+")


@dataclass(frozen=True)
class RatingRequest:
    """What a customer message says about an earlier answer: `answer_id` from a menu click, or None for a
    keyword reply (the conversation's latest answer)."""

    rating: str
    answer_id: int | None = None


def asks_for_rating(*, author: Message.Author, desk: DeskSettings) -> bool:
    return desk.answer_feedback and author in RATED_AUTHORS


def rating_items(message_id: int) -> tuple[MenuItem, ...]:
    """The two click items that rate this answer (ids well within WeCom's 64 bytes)."""
    return tuple(MenuItem(id=f"{RATING_ITEM_PREFIX}{message_id}:{rating}", content=ITEM_CONTENT[rating])
                 for rating in (HELPFUL, UNHELPFUL))


def with_prompt(text: str, desk: DeskSettings) -> str:
    """A self-built app's answer with the tenant's rating prompt under it."""
    prompt = desk.feedback_prompt.strip()
    return f"{text}\n\n{prompt}" if prompt else text


def feedback_keyword_problems(*, helpful: list[str], unhelpful: list[str]) -> dict[str, str]:
    """What is wrong with the tenant's rating keywords, by field: a keyword in both lists would rate an
    answer both ways, and one that reads as nothing (only punctuation) would never match."""
    problems = {}
    helpful_said = {_IGNORED.sub("", str(word)).lower() for word in helpful}
    unhelpful_said = {_IGNORED.sub("", str(word)).lower() for word in unhelpful}
    for field, said in (("feedback_helpful_keywords", helpful_said), ("feedback_unhelpful_keywords", unhelpful_said)):
        if "" in said:
            problems[field] = "A keyword needs a letter, a digit or an emoji, not only spaces and punctuation."
    if both := (helpful_said & unhelpful_said) - {""}:
        problems["feedback_unhelpful_keywords"] = f"Also a helpful keyword: {', '.join(sorted(both))}."
    return problems


def rating_request(*, text: str, click: MenuClick | None, kind: str, desk: DeskSettings) -> RatingRequest | None:
    """The rating this customer message gives, or None when it is not one. Clicks on our rating items are
    ratings whatever the setting says now (the menu went out when it was on); keywords only count while
    ratings are on."""
    if click is not None and click.menu_id.startswith(RATING_ITEM_PREFIX):
        number, _, rating = click.menu_id.removeprefix(RATING_ITEM_PREFIX).partition(":")
        if rating in (HELPFUL, UNHELPFUL) and number.isascii() and number.isdigit() and len(number) < 18:
            return RatingRequest(rating=rating, answer_id=int(number))
        return None
    if not desk.answer_feedback or kind == WeComApp.Kind.KF and click is not None:
        return None
    said = _IGNORED.sub("", text).lower()
    if not said:
        return None
    for rating, keywords in ((HELPFUL, desk.feedback_helpful_keywords), (UNHELPFUL, desk.feedback_unhelpful_keywords)):
        if any(said == _IGNORED.sub("", str(keyword)).lower() for keyword in keywords if str(keyword).strip()):
            return RatingRequest(rating=rating)
    return None


def rate_answer(*, contact: Contact, request: RatingRequest, inbound: InboundMessage) -> AnswerFeedback | None:
    """Store the rating of the answer it names (a click) or of the contact's latest answer (a keyword), and
    count it on the answer's knowledge entry; inside the caller's transaction. None when there is no such
    answer of this contact (another contact's id, an answer deleted, nothing answered lately)."""
    answers = Message.objects.filter(conversation__contact=contact, author__in=RATED_AUTHORS)
    if request.answer_id is not None:
        answer = answers.filter(pk=request.answer_id).first()
    else:
        answer = answers.filter(created_at__gte=timezone.now() - KEYWORD_WINDOW).order_by("-id").first()
    if answer is None:
        return None
    feedback = AnswerFeedback.objects.select_for_update().filter(answer=answer).first()
    previous = feedback.rating if feedback is not None else None
    if feedback is None:
        feedback = AnswerFeedback(answer=answer, contact=contact, knowledge_entry_id=answer.knowledge_entry_id)
    feedback.rating, feedback.inbound = request.rating, inbound
    feedback.save()
    if answer.knowledge_entry_id is not None and previous != request.rating:
        stats.count_rating(entry_id=answer.knowledge_entry_id, rating=request.rating, replaces=previous)
    return feedback
