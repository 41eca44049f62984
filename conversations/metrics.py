"""Prometheus metrics of the message path (docs/OBSERVABILITY.md is the catalogue; names are a contract).

Counters and histograms are recorded where the work happens (web and worker processes; each role's
endpoint serves them through its multiprocess directory). Their `tenant` label is bounded
(tenants/metrics.py: the schema name, `_other` beyond METRICS_MAX_TENANTS); never label by user or
message. The health gauges at the end are computed by the leading scheduler (conversations/schedule.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from conversations.models import InboundMessage, OutboundMessage
from tenants.keys import current_schema
from tenants.metrics import HealthGauge, TenantCounter, TenantHistogram

INBOUND_STAGES = TenantCounter(
    "wecomdesk_inbound_stage_total",
    "Stages reached by inbound WeCom messages (received, duplicate, enqueued, pulled, processed, failed)",
    ["tenant", "stage"],
)
CALLBACK_REJECTIONS = TenantCounter(
    "wecomdesk_callback_rejections_total", "WeCom callbacks refused with a 4xx", ["tenant", "reason"]
)

OUTCOMES = TenantCounter("wecomdesk_outcomes_total", "Visible outcomes of customer messages", ["tenant", "outcome"])
SENDS = TenantCounter("wecomdesk_outbound_sends_total", "WeCom send attempts by errcode (0 = delivered)",
                      ["tenant", "errcode"])
DEAD_LETTERS = TenantCounter("wecomdesk_outbound_dead_total", "Outbound messages that went dead", ["tenant"])
WEBHOOK_ATTEMPTS = TenantCounter("wecomdesk_webhook_attempts_total",
                                 "Webhook delivery attempts by outcome (delivered, retrying, dead)",
                                 ["tenant", "outcome"])
TOKEN_FETCHES = TenantCounter("wecomdesk_wecom_token_fetches_total",
                              "Access-token fetches from WeCom by errcode (0 = ok)", ["tenant", "errcode"])
PIPELINE_SECONDS = TenantHistogram("wecomdesk_pipeline_seconds", "Inbound stored to outcome queued", ["tenant"],
                                   buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
DELIVERY_SECONDS = TenantHistogram("wecomdesk_delivery_seconds", "Inbound stored to its first reply delivered",
                                   ["tenant"], buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300))
LLM_SECONDS = TenantHistogram("wecomdesk_llm_seconds", "Model call latency by outcome", ["tenant", "outcome"],
                              buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))


def observe_first_replies(delivered: Iterable[OutboundMessage]) -> None:
    """`wecomdesk_delivery_seconds` for the rows just delivered that are the first part of the reply to a
    customer message (its cause `inbound:<id>`): from the message stored to WeCom accepting the reply.
    One query for the batch, and none when no such row is among them."""
    first = {row.inbound_id: row for row in delivered
             if row.inbound_id and row.sent_at and row.idempotency_key == f"inbound:{row.inbound_id}:1"}
    if not first:
        return
    received = InboundMessage.objects.filter(pk__in=first).values_list("pk", "received_at")
    schema = current_schema()
    for pk, received_at in received:
        DELIVERY_SECONDS.labels(tenant=schema).observe(max((first[pk].sent_at - received_at).total_seconds(), 0))


# -- health gauges: computed every METRICS_HEALTH_SECONDS by the leading scheduler ----------------------

INBOUND_WAITING = HealthGauge("wecomdesk_inbound_waiting", "Inbound messages stored and not yet processed",
                              ["tenant"])
INBOUND_OLDEST_WAITING = HealthGauge("wecomdesk_inbound_oldest_waiting_seconds",
                                     "Age of the oldest inbound message not yet processed (0 when none)",
                                     ["tenant"], combine=max)
OUTBOUND_ROWS = HealthGauge("wecomdesk_outbound_rows",
                            "Outbound ledger rows by state: pending (queued or being sent), retrying, dead",
                            ["tenant", "state"])
BREAKER_OPEN = HealthGauge("wecomdesk_ai_breaker_open",
                           "1 while the tenant's AI circuit breaker is open or half-open", ["tenant"], combine=max)
