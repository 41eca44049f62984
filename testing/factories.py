"""factory_boy factories for the main models of every app: build a row with only what the test is about.

Why one module here and not one per app's tests/: tests of one app build rows of the others (a ticket
needs a conversation, answering needs knowledge and fallback scripts), and tests import nothing from
another app's tests/ package; the apps' own code never imports testing/.

Tenancy: every tenant row is created in the schema the connection is in, so call a factory inside
`schema_context("alpha")` (the root conftest's `tenant_a` / `tenant_b` fixtures make the tenants);
in the public schema the factories refuse with a message saying so.

    with schema_context("alpha"):
        app = WeComAppFactory()                        # Tencent's sample credentials, AgentID 1000002
        kf = WeComAppFactory(kind="kf")                # a 微信客服 account set (OPEN_KFID, KF_SECRET)
        conversation = ConversationFactory(contact__external_id="zhangsan")
        ticket = TicketFactory(conversation=conversation)
        agent = AgentProfileFactory(user__username="alice", max_concurrent=1)

Rows that need a WeCom app and are given none share the schema's default app (`default_app()`):
the official credentials allow one app per CorpID and AgentID. Rows are stored as they are, without
the side effects of the services (no job is enqueued, no trace written): a test of the path itself
goes through the service (`record_callback_message`, `queue_outbound`, `hand_off_to_human`).
"""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from django_tenants.utils import get_public_schema_name
from factory.django import DjangoModelFactory, Password

from conversations.ai.models import AIProvider
from conversations.models import (
    Contact,
    Conversation,
    FallbackScript,
    InboundMessage,
    Message,
    OutboundMessage,
    TraceEvent,
    WeComApp,
)
from conversations.services.apps import create_wecom_app
from kb import services as kb_services
from kb.models import KnowledgeEntry, KnowledgeImport
from testing.vectors import AES_KEY, AGENT_ID, CORP_ID, OPEN_KFID, TOKEN
from tickets.models import AgentProfile, Ticket

# The secrets the WeCom sandbox knows for the official corp (testing.fixtures registers them there).
# Not Tencent's: the sample has no secret. A 微信客服 secret is not the app's (WeCom hands out a token per secret).
APP_SECRET = "app-secret-alpha"
KF_SECRET = "kf-secret-alpha"
AGENT_PASSWORD = "Agent-password-1"


def _in_tenant_schema(model) -> None:
    if connection.schema_name == get_public_schema_name():
        raise RuntimeError(f"{model.__name__} rows live in a tenant schema: create them inside "
                           "schema_context('alpha') (or 'beta'), not in the public schema")


class TenantModelFactory(DjangoModelFactory):
    """A factory whose rows belong to the tenant schema the connection is in."""

    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        _in_tenant_schema(model_class)
        return super()._create(model_class, *args, **kwargs)


# -- conversations ------------------------------------------------------------------------------------


class WeComAppFactory(TenantModelFactory):
    """A connected WeCom app through `create_wecom_app` (validated, secrets encrypted as in production).

    kind="app": a self-built app with AgentID 1000002 and APP_SECRET; kind="kf": 微信客服 with
    [OPEN_KFID] and KF_SECRET. Both use Tencent's sample CorpID, Token and EncodingAESKey.
    """

    class Meta:
        model = WeComApp

    name = factory.LazyAttribute(lambda o: f"{connection.schema_name} {o.kind}")
    kind = WeComApp.Kind.APP
    corp_id = CORP_ID
    agent_id = factory.LazyAttribute(lambda o: AGENT_ID if o.kind == WeComApp.Kind.APP else None)
    open_kfids = factory.LazyAttribute(lambda o: [OPEN_KFID] if o.kind == WeComApp.Kind.KF else [])
    secret = factory.LazyAttribute(lambda o: KF_SECRET if o.kind == WeComApp.Kind.KF else APP_SECRET)
    token = TOKEN
    encoding_aes_key = AES_KEY
    is_enabled = True

    @classmethod
    def _create(cls, model_class, *args, is_enabled: bool = True, servicers_mode: bool = False, **fields):
        _in_tenant_schema(model_class)
        app = create_wecom_app(**fields)
        if not is_enabled or servicers_mode:  # settings the admin changes later, not set at creation
            app.is_enabled, app.servicers_mode = is_enabled, servicers_mode
            app.save(update_fields=["is_enabled", "servicers_mode"])
        return app


def default_app() -> WeComApp:
    """The current schema's self-built app with the official credentials, connected on first use."""
    _in_tenant_schema(WeComApp)
    app = WeComApp.objects.filter(kind=WeComApp.Kind.APP, corp_id=CORP_ID, agent_id=AGENT_ID).first()
    return app or WeComAppFactory()


class ContactFactory(TenantModelFactory):
    class Meta:
        model = Contact

    app = factory.LazyFunction(default_app)
    external_id = factory.Sequence(lambda n: f"customer{n}")
    # A 微信客服 customer is a contact of one of the app's accounts.
    open_kfid = factory.LazyAttribute(lambda o: o.app.open_kfids[0] if o.app.kind == WeComApp.Kind.KF else "")


class ConversationFactory(TenantModelFactory):
    class Meta:
        model = Conversation

    contact = factory.SubFactory(ContactFactory)
    state = Conversation.State.BOT


class MessageFactory(TenantModelFactory):
    """A line of a transcript (the services write them with `record_message`)."""

    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    author = Message.Author.CUSTOMER
    text = factory.Sequence(lambda n: f"消息 {n}")


class InboundMessageFactory(TenantModelFactory):
    """A stored text callback; a pending one looks just enqueued (enqueued_at now, enqueue_count 1)."""

    class Meta:
        model = InboundMessage

    class Params:
        msg_id = factory.Sequence(lambda n: 10**15 + n)

    app = factory.LazyFunction(default_app)
    natural_key = factory.LazyAttribute(lambda o: f"msg:{o.msg_id}")
    source = InboundMessage.Source.CALLBACK
    msg_type = "text"
    sender = "zhangsan"
    content = factory.Sequence(lambda n: f"问题 {n}")
    payload = factory.LazyAttribute(lambda o: {"ToUserName": o.app.corp_id, "FromUserName": o.sender,
                                               "MsgType": o.msg_type, "Content": o.content, "MsgId": str(o.msg_id)})
    status = InboundMessage.Status.PENDING
    enqueued_at = factory.LazyAttribute(
        lambda o: timezone.now() if o.status == InboundMessage.Status.PENDING else None)
    enqueue_count = factory.LazyAttribute(lambda o: 1 if o.status == InboundMessage.Status.PENDING else 0)


class TraceEventFactory(TenantModelFactory):
    class Meta:
        model = TraceEvent

    inbound = factory.SubFactory(InboundMessageFactory)
    trace_id = factory.LazyAttribute(lambda o: o.inbound.trace_id)
    stage = "received"
    detail = factory.LazyFunction(dict)


class OutboundMessageFactory(TenantModelFactory):
    """A row of the outbound ledger, pending by default (the services create them with `queue_outbound`)."""

    class Meta:
        model = OutboundMessage

    contact = factory.SubFactory(ContactFactory)
    conversation = None
    idempotency_key = factory.Sequence(lambda n: f"test:{n}:1")
    author = Message.Author.AI
    content = factory.Sequence(lambda n: f"回答 {n}")
    status = OutboundMessage.Status.PENDING


class FallbackScriptFactory(TenantModelFactory):
    class Meta:
        model = FallbackScript

    name = factory.Sequence(lambda n: f"话术 {n}")
    keywords = factory.LazyFunction(list)
    text = "抱歉，请稍后再试。"
    is_default = False
    enabled = True


class AIProviderFactory(TenantModelFactory):
    """The tenant's one AI provider; point `base_url` at the sandbox's fake model (`sandbox.model_base_url`)."""

    class Meta:
        model = AIProvider

    base_url = "https://llm.example.test/v1"
    model = "sandbox-chat"
    api_key = ""
    timeout_seconds = 5


# -- tickets ------------------------------------------------------------------------------------------


class UserFactory(DjangoModelFactory):
    """A staff user of the schema the connection is in (tenant staff, or platform users in public)."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"agent{n}@example.test")
    password = Password(AGENT_PASSWORD)
    is_staff = True


class AgentProfileFactory(TenantModelFactory):
    """An agent (with its staff user); `user__username=...` names it, `role=AgentProfile.Role.SUPERVISOR`."""

    class Meta:
        model = AgentProfile

    user = factory.SubFactory(UserFactory)
    role = AgentProfile.Role.AGENT
    display_name = factory.LazyAttribute(lambda o: o.user.username)
    max_concurrent = 5


class TicketFactory(TenantModelFactory):
    """A ticket of a conversation waiting for a human (the handoff creates them in production)."""

    class Meta:
        model = Ticket

    conversation = factory.SubFactory(ConversationFactory, state=Conversation.State.WAITING_HUMAN)
    reason = Ticket.Reason.CUSTOMER_ASKED
    status = Ticket.Status.OPEN


# -- kb -----------------------------------------------------------------------------------------------


class KnowledgeEntryFactory(factory.Factory):
    """Entries are created through kb.services, which fills the search tokens."""

    class Meta:
        model = KnowledgeEntry

    question = factory.Sequence(lambda n: f"示例问题 {n}")
    answer = "示例答案"
    tags = factory.LazyFunction(list)
    enabled = True

    @classmethod
    def _create(cls, model_class, **fields):
        _in_tenant_schema(model_class)
        return kb_services.create_entry(**fields)


class KnowledgeImportFactory(TenantModelFactory):
    """A file import waiting for the worker (the admin's upload creates them through kb.services.import_file)."""

    class Meta:
        model = KnowledgeImport

    filename = factory.Sequence(lambda n: f"faq-{n}.csv")
    file_format = "csv"
    content = b"question,answer\n"
    total_rows = 0
