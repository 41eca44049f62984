"""One round of answering: the oldest pending message of each claimed (locked) contact, settled together.

1. rate limits: the platform and tenant tiers admit the round (or what fits; the rest is
   deferred), the customer tier is counted per message;
2. one transaction records the customer messages in their locked conversations and settles
   what needs no model: rate-limited, owned by a human, asking for a human (`_record_and_route`);
3. no transaction held: follow-ups made standalone (followups.py), knowledge retrieval, then the model
   calls through the breaker (`_decide`);
4. one transaction re-locks the conversations, drops answers a human overtook meanwhile,
   counts fallbacks (N in a row hand off), writes the answers and their ledger rows and
   settles the inbound rows (`_write_answers`);
5. the claiming job delivers the round's ledger rows (`deliver_round`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from django.db import connection, transaction
from django.utils import timezone

from conversations.ai.selectors import get_enabled_ai_provider
from conversations.jobs import enqueue_delivery, enqueue_suggestion
from conversations.metrics import OUTCOMES, PIPELINE_SECONDS
from conversations.models import Contact, Conversation, DeskSettings, InboundMessage, Message, TraceEvent, WeComApp
from conversations.services import sensitive_words
from conversations.services.answer_feedback import (
    RatingRequest,
    asks_for_rating,
    rate_answer,
    rating_items,
    rating_request,
    with_prompt,
)
from conversations.services.answering.decisions import (
    DEFAULT_FALLBACK_TEXT,
    Answer,
    Decision,
    Fallback,
    FallbackChooser,
    Handoff,
)
from conversations.services.answering.followups import looks_like_followup, make_standalone
from conversations.services.answering.model_calls import FollowUp, ModelCall, Question, ask_model
from conversations.services.answering.rerank import Retrieved, rerank
from conversations.services.bulk import save_fields
from conversations.services.conversations import (
    TranscriptLine,
    current_conversations,
    customer_text,
    recent_contexts,
    record_messages,
)
from conversations.services.handoff import hand_off_to_human
from conversations.services.media import MEDIA_MSG_TYPES
from conversations.services.menus import Menu, MenuClick, menu_clicks, unsure_menu
from conversations.services.outbound import Outgoing, deliver_contacts, queue_outbound_many
from conversations.services.rate_limits import admit_shared_tiers, check_customer
from conversations.services.surveys import SURVEY_ITEM_PREFIX, SurveyAnswer, answer_survey, pending_contacts
from conversations.services.tracing import save_trace_events, trace_event
from conversations.vocabulary import HandoffReason, ModelOutcome, Outcome, Stage
from kb.models import KnowledgeEntry
from kb.selectors import KnowledgeMatch, enabled_entries, search_knowledge_many
from kb.stats import count_uses
from tenants.log_context import bound

Author = Message.Author


@dataclass(eq=False)  # identity: turns are dict keys
class Turn:
    """One customer message being answered in a round, with what the round learns about it."""

    inbound: InboundMessage
    contact: Contact
    conversation: Conversation | None = None
    customer_message: Message | None = None
    decision: Decision | None = None
    outcome: Outcome | None = None  # set once the message is settled
    click: MenuClick | None = None  # the message is a click on one of our menus' items
    trace: list[TraceEvent] = field(default_factory=list)

    @property
    def text(self) -> str:
        return customer_text(self.inbound)

    def note(self, stage: Stage, **detail) -> None:
        self.trace.append(trace_event(inbound=self.inbound, stage=stage, **detail))

    def outgoing(self, *, message: Message, author: Message.Author, text: str, menu: Menu | None = None) -> Outgoing:
        """The ledger entry of what this turn says to the customer (one cause per customer message)."""
        return Outgoing(contact=self.contact, conversation=self.conversation, message=message, author=author,
                        text=text, cause=f"inbound:{self.inbound.pk}", trace_id=self.inbound.trace_id, menu=menu)


@dataclass(frozen=True, kw_only=True)
class RoundResult:
    settled: list[Turn]
    retry_after: float | None = None  # set when a shared rate-limit tier deferred some turns


def answer_round(turns: list[Turn], desk: DeskSettings) -> RoundResult:
    """Settle one message of each of these (distinct, locked) contacts.

    What the shared rate-limit tiers do not admit is deferred: it stays pending, to be answered
    first when the job runs again.
    """
    admitted = admit_shared_tiers(desk=desk, wanted=len(turns))
    turns, waiting = turns[:admitted.count], turns[admitted.count:]
    if waiting:
        events = [trace_event(inbound=turn.inbound, stage=Stage.DEFERRED, tier=admitted.tier,
                              retry_in=round(admitted.retry_after, 2)) for turn in waiting]
        save_trace_events(events)
    retry_after = admitted.retry_after if waiting else None
    if not turns:
        return RoundResult(settled=[], retry_after=retry_after)
    verdicts = [check_customer(contact=turn.contact, desk=desk) for turn in turns]
    with transaction.atomic():
        to_decide = _record_and_route(turns, verdicts, desk)
    if to_decide:
        _decide(to_decide, desk)
        with transaction.atomic():
            _write_answers(to_decide, desk)
    return RoundResult(settled=turns, retry_after=retry_after)


def deliver_round(turns: list[Turn]) -> None:
    """Deliver what the round queued, now; contacts whose row must wait get a delayed delivery job."""
    waits = deliver_contacts([turn.contact.pk for turn in turns if turn.outcome != Outcome.ROUTED_TO_HUMAN])
    for contact_id, delay in waits.items():
        enqueue_delivery(contact_id, delay_seconds=delay)


def _record_and_route(turns: list[Turn], verdicts, desk: DeskSettings) -> list[Turn]:
    """Transaction 1: record the customer messages, settle what needs no model; returns the rest."""
    conversations = current_conversations(contacts=[turn.contact for turn in turns], desk=desk)
    recorded = {m.inbound_id: m for m in Message.objects.filter(inbound__in=[t.inbound for t in turns],
                                                                author=Author.CUSTOMER)}
    fresh = [turn for turn in turns if turn.inbound.pk not in recorded]
    sensitive = sensitive_words.matcher()  # once per round: it checks the list's version in Redis
    lines = [_customer_line(turn, conversations[turn.contact.pk], desk, sensitive) for turn in fresh]
    for turn, message in zip(fresh, record_messages(lines), strict=True):
        recorded[turn.inbound.pk] = message
    # Only 微信客服 has menus, so self-built apps' rounds cost no statement here.
    clicks = menu_clicks(inbound_ids=[t.inbound.pk for t in turns if t.contact.app.kind == WeComApp.Kind.KF])
    # Satisfaction surveys (surveys.py): one Redis MGET for the round; the receiver only sees marked contacts.
    surveyed = pending_contacts([turn.contact.pk for turn in turns])
    to_decide, outgoing = [], []
    for turn, verdict in zip(turns, verdicts, strict=True):
        turn.click = clicks.get(turn.inbound.pk)
        turn.conversation = conversations[turn.contact.pk]
        turn.customer_message = recorded[turn.inbound.pk]
        if not verdict.allowed:
            outgoing += _rate_limited(turn, desk, notice=verdict.send_notice)
        elif _may_answer_survey(turn, surveyed) and (answer := _survey_answer(turn)):
            outgoing += _thank_for_survey(turn, answer)
        elif (rating := _rating_of(turn, desk)) and _rated(turn, rating):
            outgoing += _thank_for_rating(turn, desk)
        elif turn.conversation.human_owned:  # the screens watching it got the message from record_messages
            turn.outcome = Outcome.ROUTED_TO_HUMAN
            enqueue_suggestion(turn.inbound.pk)
        elif turn.click is not None and turn.click.human:  # "转人工客服" in one of our menus
            _hand_off(turn, turn.conversation, HandoffReason.CUSTOMER_ASKED, desk, menu_id=turn.click.menu_id)
        elif _asks_for_human(turn.text, desk):
            _hand_off(turn, turn.conversation, HandoffReason.CUSTOMER_ASKED, desk)
        else:
            to_decide.append(turn)
    queue_outbound_many(outgoing)
    _settle([turn for turn in turns if turn.outcome])
    return to_decide


def _customer_line(turn: Turn, conversation: Conversation, desk: DeskSettings,
                   sensitive: sensitive_words.Matcher) -> TranscriptLine:
    """The transcript line of a customer message: its sensitive words flagged (and masked if the tenant wants),
    traced; the inbound row keeps the text as WeCom delivered it."""
    text = turn.text
    words = sensitive.found(text)
    if words:
        turn.note(Stage.SENSITIVE, words=words, side="customer", masked=desk.mask_sensitive_input)
        if desk.mask_sensitive_input:
            text = sensitive.masked(text)
    return TranscriptLine(conversation=conversation, author=Author.CUSTOMER, text=text, inbound=turn.inbound,
                          sensitive_words=words)


def _decide(turns: list[Turn], desk: DeskSettings) -> None:
    """Set turn.decision for each turn (knowledge, the model's answer, a fallback or a handoff) and
    note its trace in order: rewritten, retrieved, llm_call, fallback."""
    provider = get_enabled_ai_provider()
    fallbacks = FallbackChooser()
    sensitive = sensitive_words.matcher()
    clicked = _clicked_entries(turns)
    texts = [turn for turn in turns if turn.inbound.msg_type == "text" and turn not in clicked]
    asking = texts if provider is not None else []
    followups = [turn for turn in texts if looks_like_followup(turn.text)]
    # One statement for both (none in knowledge-only mode unless a message looks like a follow-up).
    contexts = recent_contexts(turns=desk.context_turns,
                               before=[turn.customer_message for turn in texts if turn in asking or turn in followups])
    standalone = _standalone_questions(followups, contexts, provider)
    matches = _retrieve([turn for turn in turns if turn not in clicked], desk, standalone)
    calls: dict[Turn, ModelCall] = {}
    if asking:
        knowledge = _reranked(asking, matches, standalone, provider)
        questions = [Question(text=turn.text, context=contexts[turn.customer_message.pk], knowledge=knowledge[turn],
                              trace_id=turn.inbound.trace_id)
                     for turn in asking]
        calls = dict(zip(asking, ask_model(questions, provider=provider), strict=True))
    for turn in turns:
        if turn in clicked:  # the customer chose this entry in a menu: its answer, as written
            turn.decision = Answer(author=Author.KNOWLEDGE, text=clicked[turn].answer, entry_id=clicked[turn].pk)
        elif turn in calls:
            turn.note(Stage.LLM_CALL, **calls[turn].trace_detail())
            failed = calls[turn].outcome in (ModelOutcome.ERROR, ModelOutcome.BREAKER_OPEN)
            turn.decision = ((failed and _unsure(matches[turn], desk, why=f"model {calls[turn].outcome}"))
                             or _from_model(calls[turn], turn, fallbacks, grounded_in=_grounding(matches[turn], desk)))
        elif turn.inbound.msg_type in MEDIA_MSG_TYPES:
            turn.decision = _non_text(turn, desk, fallbacks)
        elif provider is not None:
            turn.decision = fallbacks.fallback(turn.text, reason="the model cannot read this message type")
        else:
            best = matches[turn][0] if matches[turn] else None
            if best is not None and best.score >= desk.knowledge_min_score:
                turn.decision = Answer(author=Author.KNOWLEDGE, text=best.entry.answer, entry_id=best.entry.pk)
            else:
                turn.decision = (_unsure(matches[turn], desk, why="no knowledge entry above the threshold")
                                 or fallbacks.fallback(turn.text, reason="no knowledge entry above the threshold"))
        turn.decision = _never_sensitive(turn, fallbacks, sensitive)
        if isinstance(turn.decision, Fallback):
            turn.note(Stage.FALLBACK, reason=turn.decision.reason, script=turn.decision.script_id)
    fallbacks.count_uses()


def _never_sensitive(turn: Turn, fallbacks: FallbackChooser, sensitive: sensitive_words.Matcher) -> Decision:
    """The turn's decision, unless its reply contains a sensitive word: then a fallback script (one without
    any, else the built-in text), the words traced. A model can be talked into saying anything; a knowledge
    entry or a script may predate a word added to the list."""
    decision = turn.decision
    if not isinstance(decision, Answer | Fallback) or not (words := sensitive.found(decision.text)):
        return decision
    turn.note(Stage.SENSITIVE, words=words, side="reply", author=decision.author)
    reason = f"sensitive words in the reply: {', '.join(words)}"
    replacement = fallbacks.fallback(turn.text, reason=reason)
    if sensitive.found(replacement.text):
        replacement = Fallback(text=DEFAULT_FALLBACK_TEXT, reason=reason, script_id=None)
    return replacement


def _non_text(turn: Turn, desk: DeskSettings, fallbacks: FallbackChooser) -> Decision:
    """A picture, voice message, video or file: neither the model nor the knowledge base can read it,
    so the tenant's policy decides (DeskSettings.non_text_policy): a human looks at it, or the
    customer gets the tenant's reply (a scripted answer, counted like any fallback)."""
    if desk.non_text_policy == "handoff":
        return Handoff(reason=HandoffReason.NON_TEXT)
    reason = f"{turn.inbound.msg_type} message: the tenant's non-text reply"
    if desk.non_text_reply.strip():
        return Fallback(text=desk.non_text_reply, reason=reason, script_id=None)
    return fallbacks.fallback(turn.text, reason=reason)


def _clicked_entries(turns: list[Turn]) -> dict[Turn, KnowledgeEntry]:
    """Turns that are clicks on a knowledge item of our menus ("kb:<id>"), with the entry, when it is
    an enabled entry of this tenant (the schema sees no other tenant's); other clicks take the normal
    path, the item's text being the customer's question."""
    wanted = {turn: turn.click.entry_id for turn in turns if turn.click is not None and turn.click.entry_id is not None}
    entries = enabled_entries(ids=list(set(wanted.values()))) if wanted else {}
    clicked = {turn: entries[entry_id] for turn, entry_id in wanted.items() if entry_id in entries}
    for turn, entry in clicked.items():
        turn.note(Stage.RETRIEVED, menu_id=turn.click.menu_id, top_entry=entry.pk, hits=1, top_score=None)
    return clicked


def _unsure(matches: list[KnowledgeMatch], desk: DeskSettings, *, why: str) -> Fallback | None:
    """Retrieval was unsure and no model answered: the likely questions as a menu instead of a script
    (docs/ANSWERING.md, "Menus"); None when there are none."""
    menu = unsure_menu(matches=matches, min_score=desk.knowledge_min_score, with_human=desk.handoff_menu_enabled)
    if menu is None:
        return None
    return Fallback(text=menu.as_text(), reason=f"{why}: menu of likely questions", script_id=None, menu=menu)


def _grounding(matches: list[KnowledgeMatch], desk: DeskSettings) -> int | None:
    """The entry an answer of the model counts as a use of: the best one it was shown, if it reached the
    threshold (the model saw the others too, but this one is what a sure answer rests on)."""
    return matches[0].entry.pk if matches and matches[0].score >= desk.knowledge_min_score else None


def _from_model(call: ModelCall, turn: Turn, fallbacks: FallbackChooser, *, grounded_in: int | None) -> Decision:
    if call.outcome == ModelOutcome.BREAKER_OPEN:
        return fallbacks.fallback(turn.text, reason="circuit breaker open")
    if call.outcome == ModelOutcome.ERROR:
        return fallbacks.fallback(turn.text, reason="model call failed")
    if call.outcome == ModelOutcome.CANNOT_ANSWER:
        return Handoff(reason=HandoffReason.AI_CANNOT_ANSWER)
    return Answer(author=Author.AI, text=call.answer.text, entry_id=grounded_in)


def _standalone_questions(turns: list[Turn], contexts: dict[int, list[dict]], provider) -> dict[Turn, str]:
    """The standalone question retrieval uses for each follow-up the recent turns explain (followups.py),
    traced: the model's rewrite call (if any), then `rewritten`."""
    if not turns:
        return {}
    rewrites = make_standalone([FollowUp(text=turn.text, context=contexts[turn.customer_message.pk],
                                         trace_id=turn.inbound.trace_id) for turn in turns], provider=provider)
    questions = {}
    for turn, rewrite in zip(turns, rewrites, strict=True):
        if rewrite is None:
            continue
        if rewrite.call is not None:
            turn.note(Stage.LLM_CALL, purpose="rewrite", **rewrite.call.trace_detail())
        if rewrite.changed:
            turn.note(Stage.REWRITTEN, **rewrite.trace_detail())
            questions[turn] = rewrite.standalone
    return questions


def _reranked(turns: list[Turn], matches: dict[Turn, list[KnowledgeMatch]], standalone: dict[Turn, str],
              provider) -> dict[Turn, list[KnowledgeMatch]]:
    """The knowledge each turn's model call shows, best first: reranked by the model when reranking is on
    (rerank.py), else as retrieved. `matches` keeps the retrieval's order for thresholds and menus."""
    reranked = rerank([Retrieved(question=standalone.get(turn, turn.text), matches=matches[turn],
                                 trace_id=turn.inbound.trace_id) for turn in turns], provider=provider)
    knowledge = {}
    for turn, result in zip(turns, reranked, strict=True):
        if result is not None:
            turn.note(Stage.LLM_CALL, **result.trace_detail())
        knowledge[turn] = result.matches if result is not None else matches[turn]
    return knowledge


def _retrieve(turns: list[Turn], desk: DeskSettings, standalone: dict[Turn, str]) -> dict[Turn, list[KnowledgeMatch]]:
    """The knowledge matches of each turn's text message, or of its standalone form for a follow-up (one
    statement for the round)."""
    started = time.monotonic()
    texts = [turn for turn in turns if turn.inbound.msg_type == "text"]
    found = dict(zip(texts, search_knowledge_many([standalone.get(turn, turn.text) for turn in texts],
                                                  limit=desk.knowledge_top_k), strict=True))
    ms = round((time.monotonic() - started) * 1000, 1)  # the round's, shared by its messages
    for turn, matches in found.items():
        turn.note(Stage.RETRIEVED, hits=len(matches), top_score=round(matches[0].score, 3) if matches else None,
                  top_entry=matches[0].entry.pk if matches else None, ms=ms)
    return {turn: found.get(turn, []) for turn in turns}


def _write_answers(turns: list[Turn], desk: DeskSettings) -> None:
    """Transaction 2: the answers, unless a human took the conversation while the model was thinking."""
    locked = {c.pk: c for c in Conversation.objects.select_for_update()
              .filter(pk__in=[turn.conversation.pk for turn in turns]).order_by("pk")}
    answers: list[tuple[Turn, Answer | Fallback]] = []
    fallbacks_before = {pk: conversation.consecutive_fallbacks for pk, conversation in locked.items()}
    for turn in turns:
        conversation = turn.conversation = locked[turn.conversation.pk]
        decision = turn.decision
        if conversation.human_owned:
            suggestion = decision.text[:500] if isinstance(decision, Answer | Fallback) else ""
            turn.note(Stage.SUPPRESSED, reason="a human owns the conversation", suggestion=suggestion)
            turn.outcome = Outcome.ROUTED_TO_HUMAN
            continue
        if isinstance(decision, Fallback):
            conversation.consecutive_fallbacks += 1
            if conversation.consecutive_fallbacks >= desk.max_consecutive_fallbacks:
                decision = Handoff(reason=HandoffReason.REPEATED_FALLBACKS)
        else:
            conversation.consecutive_fallbacks = 0
        if isinstance(decision, Handoff):
            _hand_off(turn, conversation, decision.reason, desk)
        else:
            answers.append((turn, decision))
            turn.outcome = decision.outcome
    # Most answers leave the count at 0: only the conversations whose count moved are written.
    save_fields([c for pk, c in locked.items() if c.consecutive_fallbacks != fallbacks_before[pk]],
                ["consecutive_fallbacks"])
    messages = record_messages([TranscriptLine(conversation=turn.conversation, author=decision.author,
                                               text=decision.text, entry_id=getattr(decision, "entry_id", None))
                                for turn, decision in answers])
    queue_outbound_many([_answer_outgoing(turn, decision, message, desk)
                         for (turn, decision), message in zip(answers, messages, strict=True)])
    count_uses(message.knowledge_entry_id for message in messages if message.knowledge_entry_id is not None)
    _settle(turns)


def _answer_outgoing(turn: Turn, decision: Answer | Fallback, message: Message, desk: DeskSettings) -> Outgoing:
    """The ledger entry of an answer: asking to be rated when the tenant wants ratings (answer_feedback.py)."""
    if isinstance(decision, Fallback):
        return turn.outgoing(message=message, author=decision.author, text=decision.text, menu=decision.menu)
    if not asks_for_rating(author=decision.author, desk=desk):
        return turn.outgoing(message=message, author=decision.author, text=decision.text)
    if turn.contact.app.kind == WeComApp.Kind.KF:
        return replace(turn.outgoing(message=message, author=decision.author, text=decision.text),
                       items=rating_items(message.pk))
    return turn.outgoing(message=message, author=decision.author, text=with_prompt(decision.text, desk))


def _hand_off(turn: Turn, conversation: Conversation, reason: HandoffReason, desk: DeskSettings, **detail) -> None:
    with bound(trace_id=turn.inbound.trace_id):  # the handoff's lines (ticket, offer) belong to this message
        receipt = hand_off_to_human(conversation=conversation, reason=reason, desk=desk, inbound=turn.inbound)
    turn.note(Stage.HANDOFF, reason=reason.value, ticket=receipt.ticket_id, **detail)
    turn.outcome = Outcome.HANDOFF


def _asks_for_human(text: str, desk: DeskSettings) -> bool:
    lowered = text.lower()
    return any(keyword and keyword.lower() in lowered for keyword in desk.handoff_keywords)


def _may_answer_survey(turn: Turn, surveyed: set[int]) -> bool:
    """A marked contact's message, or a click on a survey item (its marker may have gone with Redis)."""
    return turn.contact.pk in surveyed or (turn.click is not None and turn.click.menu_id.startswith(SURVEY_ITEM_PREFIX))


def _survey_answer(turn: Turn) -> SurveyAnswer | None:
    """The survey answer this message gives, stored by the human side, and traced; None: an ordinary message."""
    answer = answer_survey(contact=turn.contact, inbound=turn.inbound, text=turn.text, click=turn.click)
    if answer is not None:
        turn.note(Stage.SURVEYED, ticket=answer.ticket_id, score=answer.score, label=answer.label)
    return answer


def _thank_for_survey(turn: Turn, answer: SurveyAnswer) -> list[Outgoing]:
    """Settle a survey answer; the tenant's thanks (if any) answers it."""
    turn.outcome = Outcome.SURVEY
    if not answer.thanks.strip():
        return []
    line = TranscriptLine(conversation=turn.conversation, author=Author.NOTICE, text=answer.thanks)
    message = record_messages([line])[0]
    return [turn.outgoing(message=message, author=Author.NOTICE, text=answer.thanks)]


def _rating_of(turn: Turn, desk: DeskSettings) -> RatingRequest | None:
    """The rating this message gives; keyword replies in a conversation a human owns are for the human."""
    if turn.click is None and turn.conversation.human_owned:
        return None
    return rating_request(text=turn.text, click=turn.click, kind=turn.contact.app.kind, desk=desk)


def _rated(turn: Turn, rating: RatingRequest) -> bool:
    """Store the rating this message gives (answer_feedback.py) and trace it. False when a keyword reply has
    no answer to rate (it is then answered as a question); a click on a rating item is settled as a rating
    either way: its text is not a question."""
    feedback = rate_answer(contact=turn.contact, request=rating, inbound=turn.inbound)
    if feedback is None:
        turn.note(Stage.RATED, rating=rating.rating, answer=rating.answer_id, stored=False)
        return rating.answer_id is not None
    turn.note(Stage.RATED, rating=feedback.rating, answer=feedback.answer_id, entry=feedback.knowledge_entry_id,
              stored=True)
    return True


def _thank_for_rating(turn: Turn, desk: DeskSettings) -> list[Outgoing]:
    """Settle a rating; the bot thanks the customer unless a human owns the conversation (their screen shows
    the customer's 👍 like any message)."""
    turn.outcome = Outcome.RATING
    thanks = desk.feedback_thanks.strip()
    if not thanks or turn.conversation.human_owned:
        return []
    message = record_messages([TranscriptLine(conversation=turn.conversation, author=Author.NOTICE, text=thanks)])[0]
    return [turn.outgoing(message=message, author=Author.NOTICE, text=thanks)]


def _rate_limited(turn: Turn, desk: DeskSettings, *, notice: bool) -> list[Outgoing]:
    turn.outcome = Outcome.RATE_LIMITED
    turn.note(Stage.RATE_LIMITED, notice=notice)
    if not notice:
        return []
    line = TranscriptLine(conversation=turn.conversation, author=Author.NOTICE, text=desk.rate_limit_notice)
    message = record_messages([line])[0]
    return [turn.outgoing(message=message, author=Author.NOTICE, text=desk.rate_limit_notice)]


def _settle(turns: list[Turn]) -> None:
    """The settled inbound rows: status, their trace events, outcome metrics (one statement each)."""
    if not turns:
        return
    now = timezone.now()
    schema = connection.schema_name
    events, by_status = [], {}
    for turn in turns:
        rate_limited = turn.outcome == Outcome.RATE_LIMITED
        turn.inbound.status = InboundMessage.Status.RATE_LIMITED if rate_limited else InboundMessage.Status.PROCESSED
        turn.inbound.processed_at = now
        by_status.setdefault(turn.inbound.status, []).append(turn.inbound.pk)
        if not rate_limited:
            turn.note(Stage.PROCESSED, outcome=turn.outcome.value)
        events += turn.trace
        OUTCOMES.labels(tenant=schema, outcome=turn.outcome.value).inc()
        PIPELINE_SECONDS.labels(tenant=schema).observe((now - turn.inbound.received_at).total_seconds())
    for status, ids in by_status.items():
        InboundMessage.objects.filter(pk__in=ids).update(status=status, processed_at=now)
    save_trace_events(events)
    for turn in turns:
        turn.trace = []
