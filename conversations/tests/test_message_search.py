"""The conversation search's core (conversations/search/): what a message is indexed under, the indexing job
(watermark, settling, idempotence, the scheduler's check), the text match through the index and through the
substring fallback for messages not indexed yet, each conversation-side filter, the second tenant, and the REST
API conversation list's `text` filter, which uses the same match."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from conversations.models import Conversation, Message
from conversations.schedule import index_messages_for_search
from conversations.search.indexing import IndexRun, has_unindexed_messages, index_messages, indexed_up_to
from conversations.search.models import MessageSearchEntry
from conversations.search.selectors import ConversationCriteria, search_conversations, shown_messages
from conversations.search.terms import UnsearchableText, index_terms, parse_search_text, snippet
from testing.accounts import api_client
from testing.broker import queued_jobs
from testing.factories import ConversationFactory, MessageFactory, UserFactory, WeComAppFactory

pytestmark = pytest.mark.django_db
LONG_AGO = timezone.now() - timedelta(days=3)


def settled(*messages: Message) -> None:
    """As if written before the settle time (the indexer takes only those)."""
    Message.objects.filter(pk__in=[m.pk for m in messages]).update(created_at=LONG_AGO)


@contextmanager
def indexer_lock_held_elsewhere():
    """The tenant's indexer lock, held by another database session (as a concurrent job would hold it)."""
    params = {key: value for key, value in connection.get_connection_params().items()
              if key in ("dbname", "user", "password", "host", "port")}
    with psycopg.connect(**params, autocommit=True) as other:
        held = other.execute("SELECT pg_try_advisory_lock(hashtext(%s))",
                             [f"{connection.schema_name}:message_index"]).fetchone()[0]
        assert held, "this test's own transaction holds the lock already"
        yield


def conversation_with(text: str, *, at: datetime | None = None, **fields) -> Conversation:
    conversation = ConversationFactory(**fields)
    message = MessageFactory(conversation=conversation, text=text)
    if at is not None:
        Message.objects.filter(pk=message.pk).update(created_at=at)
        Conversation.objects.filter(pk=conversation.pk).update(started_at=at, last_message_at=at)
    return conversation


def found(text: str = "", **criteria) -> list[int]:
    parsed = parse_search_text(text) if text else None
    return list(search_conversations(ConversationCriteria(text=parsed, **criteria)).values_list("pk", flat=True))


# -- words -------------------------------------------------------------------------------------------------------

def test_a_message_is_indexed_under_its_words_and_their_characters_and_queries_and_them():
    terms = index_terms("我想申请退款怎么办").split()
    assert {"申请", "退款", "申", "退", "款"} <= set(terms)
    assert "我" not in terms and "怎么办" not in terms and "请" not in terms  # stop words, as in the knowledge base
    assert parse_search_text("申请退款").words == ("申请", "退款")
    assert parse_search_text("ＶＩＰ Refund").tsquery() == "'vip':* & 'refund':*"  # folded; Latin as prefixes
    assert parse_search_text("退款").tsquery() == "'退款'"  # Chinese words whole
    for common in ("怎么", "我 你", "？！", "  "):
        with pytest.raises(UnsearchableText):
            parse_search_text(common)


def test_a_snippet_marks_every_hit_around_the_first_one():
    text = "您好，" + "这是一段很长的说明。" * 6 + "我想申请退款，退款多久到账？\n谢谢"
    cut = snippet(text, ("退款",), width=40)
    assert cut.parts[0] == ("…", False)
    assert [part for part, hit in cut.parts if hit] == ["退款", "退款"]
    assert cut.text.startswith("…") and "\n" not in cut.text
    start, end = cut.highlights[0]
    assert cut.text[start:end] == "退款"
    assert snippet("会员ＶＩＰ到期", ("vip",)).parts == (("会员", False), ("ＶＩＰ", True), ("到期", False))
    assert snippet("没有命中", ("退款",)).parts == (("没有命中", False),)


# -- the indexing job -----------------------------------------------------------------------------------------------

def test_the_job_indexes_settled_messages_up_to_the_first_recent_one_and_twice_is_once(
        tenant_a, django_capture_on_commit_callbacks):
    with schema_context("alpha"):
        conversation = ConversationFactory()
        first, second = (MessageFactory(conversation=conversation, text=text) for text in ("我要退款", "发票怎么开"))
        recent = MessageFactory(conversation=conversation, text="退款到账了吗")
        later = MessageFactory(conversation=conversation, text="快递到了")
        settled(first, second, later)  # `later` is settled, but after a recent one: it waits for it
        assert has_unindexed_messages()

        run = index_messages(batch=1)  # one message per batch: the loop goes on until the recent one
        assert (run.indexed, run.watermark, run.busy) == (2, second.pk, False)
        entries = {e.message_id: e for e in MessageSearchEntry.objects.filter(conversation=conversation)}
        assert set(entries) == {first.pk, second.pk}
        assert set(entries[first.pk].terms.split()) == {"退款", "退", "款"}
        assert entries[first.pk].created_at == LONG_AGO and entries[first.pk].conversation_id == conversation.pk
        assert not has_unindexed_messages()  # `later` waits for `recent`: a job now would index nothing

        assert index_messages().indexed == 0  # nothing settled after the watermark: nothing written again
        settled(recent)
        run = index_messages()
        assert (run.indexed, run.watermark) == (2, later.pk)
        assert MessageSearchEntry.objects.filter(conversation=conversation).count() == 4
        assert indexed_up_to() == later.pk

        # The scheduler sends the job only when a settled message waits.
        def jobs():
            return len(queued_jobs("kb", actor_name="conversations.index_messages"))
        before = jobs()
        with django_capture_on_commit_callbacks(execute=True):
            index_messages_for_search()
        assert jobs() == before
        settled(MessageFactory(conversation=conversation, text="还有问题"))
        with django_capture_on_commit_callbacks(execute=True):
            index_messages_for_search()
        assert jobs() == before + 1


def test_a_second_indexer_at_the_same_moment_writes_nothing(tenant_a):
    with schema_context("alpha"):
        message = MessageFactory(text="我要退款")
        settled(message)
        with indexer_lock_held_elsewhere():  # another run of this tenant's job
            run = index_messages()
            assert run == IndexRun(indexed=0, watermark=0, busy=True)
            assert not MessageSearchEntry.objects.exists()


# -- the match --------------------------------------------------------------------------------------------------

@pytest.fixture
def alpha_and_beta(tenant_a, tenant_b):
    """alpha: an indexed 退款 conversation, a 退款 one not indexed yet, an unrelated one; beta: a 退款 one."""
    with schema_context("beta"):
        beta = conversation_with("我想申请退款", at=LONG_AGO)
        index_messages()
    with schema_context("alpha"):
        indexed = conversation_with("我想申请退款怎么办", at=LONG_AGO)
        index_messages()
        recent = conversation_with("退款到账了吗")  # after the watermark: found by substring
        other = conversation_with("发票怎么开", at=LONG_AGO)
        index_messages()
        assert indexed_up_to() > 0 and not MessageSearchEntry.objects.filter(conversation=recent).exists()
    return indexed, recent, other, beta


def test_chinese_words_match_through_the_index_and_the_fallback_newest_first(alpha_and_beta):
    indexed, recent, other, beta = alpha_and_beta
    with schema_context("alpha"):
        assert found("退款") == [recent.pk, indexed.pk]
        assert found("申请 退款") == [indexed.pk]  # every word, in one message
        assert found("退款 发票") == []
        assert found("款") == [recent.pk, indexed.pk]  # one character: the index's characters, the substring
        assert found("发票") == [other.pk]
        assert beta.pk not in found("退款")  # and no alpha row in beta's search:
    with schema_context("beta"):
        assert found("退款") == [beta.pk]


def test_the_shown_message_is_the_latest_match_or_the_latest_line(alpha_and_beta):
    indexed, recent, _other, _beta = alpha_and_beta
    with schema_context("alpha"):
        MessageFactory(conversation=indexed, text="好的，谢谢")
        text = ConversationCriteria(text=parse_search_text("退款"))
        shown = shown_messages([indexed.pk, recent.pk], text)
        assert {pk: m.text for pk, m in shown.items()} == {indexed.pk: "我想申请退款怎么办", recent.pk: "退款到账了吗"}
        latest = shown_messages([indexed.pk], ConversationCriteria())
        assert latest[indexed.pk].text == "好的，谢谢"
        assert shown_messages([], text) == {}


def test_each_filter_narrows_the_conversations(tenant_a):
    with schema_context("alpha"):
        agent = UserFactory(username="search-agent@alpha.test")
        kf_app = WeComAppFactory(kind="kf")
        day = datetime(2026, 5, 1, 12, tzinfo=UTC)
        mine = conversation_with("退款", at=day, agent=agent, state=Conversation.State.HUMAN,
                                 contact__display_name="李先生", contact__external_id="wm-li")
        kf = conversation_with("退款", at=day + timedelta(days=10), contact__app=kf_app, contact__open_kfid="wk1",
                               contact__external_id="wm-kf", state=Conversation.State.CLOSED)
        index_messages()
        assert found() == [kf.pk, mine.pk, *found()[2:]]  # everything, newest first
        assert found("退款", customer="李") == [mine.pk]
        assert found("退款", customer="WM-KF") == [kf.pk]  # the id too, any case
        assert found("退款", agent_id=agent.pk) == [mine.pk]
        assert found("退款", state="closed") == [kf.pk]
        assert found("退款", channel="kf") == [kf.pk]
        assert found("退款", channel="app") == [mine.pk]
        assert found("退款", app_id=kf_app.pk) == [kf.pk]
        assert found("退款", active_from=day - timedelta(hours=1), active_until=day + timedelta(hours=1)) == [mine.pk]
        assert found("退款", active_from=day + timedelta(days=1)) == [kf.pk]
        # With a text, the matching message itself must be in the period, not only the conversation.
        MessageFactory(conversation=mine, text="发票")
        Conversation.objects.filter(pk=mine.pk).update(last_message_at=day + timedelta(days=20))
        assert mine.pk in found(active_from=day + timedelta(days=19))
        assert found("退款", active_from=day + timedelta(days=19)) == []


def test_the_api_conversation_list_uses_the_same_match(alpha_and_beta, api_keys):
    indexed, recent, _other, beta = alpha_and_beta
    alpha = api_client(api_keys["alpha"])
    listing = alpha.get("/t/alpha/api/conversations/", {"text": "退款"})
    assert [row["id"] for row in listing.json()["results"]] == [recent.pk, indexed.pk]
    assert [row["id"] for row in alpha.get("/t/alpha/api/conversations/", {"text": "申请 退款"}).json()["results"]] \
        == [indexed.pk]
    refused = alpha.get("/t/alpha/api/conversations/", {"text": "怎么"})
    assert refused.status_code == 400
    assert list(refused.json()["errors"]) == ["text"]
    assert "退款" in refused.json()["detail"]
    beta_listing = api_client(api_keys["beta"]).get("/t/beta/api/conversations/", {"text": "退款"})
    assert [row["id"] for row in beta_listing.json()["results"]] == [beta.pk]
