"""Query filters of the API's conversation resources: contacts, conversations, a conversation's messages,
inbound messages (django-filter, strict types from tenants/api_filters.py; documented in docs/API.md)."""

from __future__ import annotations

from django import forms
from django.db.models import Q
from django_filters import rest_framework as filters

from conversations.models import Contact, Conversation, InboundMessage, Message, WeComApp
from conversations.search.selectors import with_text
from conversations.search.terms import MAX_QUERY_CHARS, UnsearchableText, parse_search_text
from tenants.api_filters import DateTimeFilter, IntegerFilter

BIGINT = 2**63 - 1


def _id_filter(field_name: str, label: str, **kwargs) -> IntegerFilter:
    return IntegerFilter(field_name=field_name, min_value=1, max_value=BIGINT, label=label, **kwargs)


class Channel(filters.ChoiceFilter):
    """`app` (a self-built app's member) or `kf` (a 微信客服 customer: the contact has an open_kfid)."""

    def __init__(self, *, field_name: str, **kwargs):
        self.open_kfid = field_name
        super().__init__(choices=WeComApp.Kind.choices, method=self.by_channel, **kwargs)

    def by_channel(self, queryset, name, value):
        empty = Q(**{self.open_kfid: ""})
        return queryset.filter(empty) if value == WeComApp.Kind.APP else queryset.exclude(empty)


class SearchTextField(forms.CharField):
    """A message text as the conversation search reads it (conversations/search/terms.py): its words, or an
    error when it has none to search for."""

    def clean(self, value):
        value = super().clean(value)
        if not value:
            return None
        try:
            return parse_search_text(value)
        except UnsearchableText as exc:
            raise forms.ValidationError(str(exc), code="unsearchable") from None


class SearchTextFilter(filters.CharFilter):
    field_class = SearchTextField


class ContactFilter(filters.FilterSet):
    app = _id_filter("app_id", "the WeCom app's id")
    open_kfid = filters.CharFilter(max_length=64, label="the 微信客服 account (open_kfid)")
    channel = Channel(field_name="open_kfid", label="app: a self-built app's member; kf: a 微信客服 customer")
    text = filters.CharFilter(method="with_text", max_length=128, label="part of the display name or external id")
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte", label="first seen at or after")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt", label="first seen before")

    class Meta:
        model = Contact
        fields = []

    def with_text(self, queryset, name, value):
        return queryset.filter(Q(display_name__icontains=value) | Q(external_id__icontains=value))


class ConversationFilter(filters.FilterSet):
    state = filters.ChoiceFilter(choices=Conversation.State.choices)
    channel = Channel(field_name="contact__open_kfid",
                      label="app: with a self-built app's member; kf: with a 微信客服 customer")
    app = _id_filter("contact__app_id", "the WeCom app's id")
    agent = _id_filter("agent_id", "the id of the user (agent) who owns it")
    contact = _id_filter("contact_id", "the contact's id")
    started_after = DateTimeFilter(field_name="started_at", lookup_expr="gte", label="started at or after")
    started_before = DateTimeFilter(field_name="started_at", lookup_expr="lt", label="started before")
    last_message_after = DateTimeFilter(field_name="last_message_at", lookup_expr="gte",
                                        label="last message at or after")
    last_message_before = DateTimeFilter(field_name="last_message_at", lookup_expr="lt", label="last message before")
    text = SearchTextFilter(method="with_text", max_length=MAX_QUERY_CHARS,
                            label="a message of the conversation holds every word of it (the conversation search's "
                                  "match: docs/API.md, \"Searching conversations\")")
    # `labels` is the reverse accessor of the tickets app's Label (conversations imports nothing of tickets).
    label = _id_filter("labels", "a label's id (/api/labels/): the conversations carrying it")

    class Meta:
        model = Conversation
        fields = []

    def with_text(self, queryset, name, value):
        return queryset.filter(with_text(value))


class TranscriptFilter(filters.FilterSet):
    author = filters.ChoiceFilter(choices=Message.Author.choices)
    after = _id_filter("id", "only lines after this message id (to fetch what is new)", lookup_expr="gt")

    class Meta:
        model = Message
        fields = []


class InboundMessageFilter(filters.FilterSet):
    app = _id_filter("app_id", "the WeCom app's id")
    contact = _id_filter("contact", "the contact's id (the messages it sent)", method="from_contact")
    msgtype = filters.CharFilter(field_name="msg_type", max_length=32,
                                 label="WeCom's MsgType (text, image, event, ...)")
    status = filters.ChoiceFilter(choices=InboundMessage.Status.choices)
    received_after = DateTimeFilter(field_name="received_at", lookup_expr="gte", label="received at or after")
    received_before = DateTimeFilter(field_name="received_at", lookup_expr="lt", label="received before")

    class Meta:
        model = InboundMessage
        fields = []

    def from_contact(self, queryset, name, value):
        contact = Contact.objects.filter(pk=value).values("app_id", "external_id", "open_kfid").first()
        if contact is None:
            return queryset.none()
        return queryset.filter(app_id=contact["app_id"], sender=contact["external_id"],
                               open_kfid=contact["open_kfid"])
