"""The columns of the reports' tables, named once for the page, the CSV files and the REST API. A column keeps
the name of its counterpart in WeCom's 微信客服 statistics where there is one (session_cnt, reply_rate …), so an
operator can put our figures beside WeCom's; docs/REPORTS.md says where the definitions differ."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tickets.operations.figures import duration

COUNT, RATE, SECONDS = "count", "rate", "seconds"


@dataclass(frozen=True)
class Column:
    key: str  # the API's and the page's name (WeCom's where it has one)
    label: Promise
    value: Callable[[object], int | float | None]
    kind: str  # COUNT, RATE (0..1) or SECONDS

    def raw(self, figures) -> int | float | None:
        """For the API and the CSV files: counts as they are, rates 0..1 to 4 places, seconds to 0.1 s."""
        value = self.value(figures)
        if value is None or self.kind == COUNT:
            return value
        return round(value, 4 if self.kind == RATE else 1)

    def text(self, figures) -> str:
        """For the page: a rate in percent, a time as an operator reads it, "–" when it cannot be computed."""
        value = self.value(figures)
        if value is None:
            return "–"
        if self.kind == RATE:
            return f"{value * 100:.1f}%"
        if self.kind == SECONDS:
            return duration(value)
        return str(value)


HUMAN_COLUMNS = [
    Column("tickets_cnt", gettext_lazy("Tickets"), lambda f: f.tickets, COUNT),
    Column("session_cnt", gettext_lazy("Conversations handled"), lambda f: f.handled, COUNT),
    Column("customer_cnt", gettext_lazy("Customers"), lambda f: f.customers, COUNT),
    Column("reply_rate", gettext_lazy("Reply rate"), lambda f: f.reply_rate, RATE),
    Column("first_reply_average_sec", gettext_lazy("Average first response"),
           lambda f: f.first_response_avg_seconds, SECONDS),
    Column("resolved_cnt", gettext_lazy("Resolved"), lambda f: f.resolved, COUNT),
    Column("resolution_average_sec", gettext_lazy("Average resolution time"),
           lambda f: f.resolution_avg_seconds, SECONDS),
    Column("satisfaction_investgate_cnt", gettext_lazy("Surveys sent"), lambda f: f.surveys_sent, COUNT),
    Column("satisfaction_answered_cnt", gettext_lazy("Surveys answered"), lambda f: f.surveys_answered, COUNT),
    Column("satisfaction_participation_rate", gettext_lazy("Survey participation"),
           lambda f: f.participation_rate, RATE),
    Column("satisfied_rate", gettext_lazy("Satisfied (CSAT)"), lambda f: f.satisfied_rate, RATE),
    Column("middling_rate", gettext_lazy("Middling"), lambda f: f.middling_rate, RATE),
    Column("dissatisfied_rate", gettext_lazy("Dissatisfied"), lambda f: f.dissatisfied_rate, RATE),
]

BOT_COLUMNS = [
    Column("customer_msg_cnt", gettext_lazy("Customer messages"), lambda f: f.customer_messages, COUNT),
    Column("session_cnt", gettext_lazy("Conversations"), lambda f: f.sessions, COUNT),
    Column("customer_cnt", gettext_lazy("Customers"), lambda f: f.customers, COUNT),
    Column("ai_session_reply_cnt", gettext_lazy("Conversations the bot took"), lambda f: f.bot_sessions, COUNT),
    Column("ai_transfer_cnt", gettext_lazy("Transferred to humans"), lambda f: f.transferred, COUNT),
    Column("ai_transfer_rate", gettext_lazy("Transfer rate"), lambda f: f.transfer_rate, RATE),
    Column("ai_resolved_cnt", gettext_lazy("Resolved by the AI"), lambda f: f.ai_resolved, COUNT),
    Column("ai_resolution_rate", gettext_lazy("AI resolution rate"), lambda f: f.ai_resolution_rate, RATE),
    Column("ai_msg_cnt", gettext_lazy("Messages the bot took"), lambda f: f.bot_messages, COUNT),
    Column("ai_knowledge_hit_cnt", gettext_lazy("Knowledge hits"), lambda f: f.knowledge_hits, COUNT),
    Column("ai_knowledge_hit_rate", gettext_lazy("Knowledge hit rate"), lambda f: f.knowledge_hit_rate, RATE),
    Column("fallback_cnt", gettext_lazy("Fallbacks"), lambda f: f.fallbacks, COUNT),
    Column("fallback_rate", gettext_lazy("Fallback rate"), lambda f: f.fallback_rate, RATE),
]


def values(columns: list[Column], figures) -> dict[str, int | float | None]:
    return {column.key: column.raw(figures) for column in columns}


def bot_label(column: Column) -> str:
    """A bot column's header beside the human ones (the day and week tables hold both)."""
    return _("Bot: %(label)s") % {"label": column.label}
