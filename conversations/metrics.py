"""Prometheus metrics of the inbound path (exposed at /metrics by django-prometheus).

The tenant label is bounded by the number of tenants; never label by user or message.
"""

from prometheus_client import Counter, Gauge, Histogram

INBOUND_STAGES = Counter(
    "wecomdesk_inbound_stage_total",
    "Stages reached by inbound WeCom messages (received, duplicate, enqueued, pulled, processed, failed)",
    ["tenant", "stage"],
)
CALLBACK_REJECTIONS = Counter(
    "wecomdesk_callback_rejections_total", "WeCom callbacks refused with a 4xx", ["tenant", "reason"]
)

OUTCOMES = Counter("wecomdesk_outcomes_total", "Visible outcomes of customer messages", ["tenant", "outcome"])
SENDS = Counter("wecomdesk_outbound_sends_total", "WeCom send attempts by errcode (0 = delivered)",
                ["tenant", "errcode"])
DEAD_LETTERS = Counter("wecomdesk_outbound_dead_total", "Outbound messages that went dead", ["tenant"])
PIPELINE_SECONDS = Histogram("wecomdesk_pipeline_seconds", "Inbound stored to outcome queued", ["tenant"],
                             buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
LLM_SECONDS = Histogram("wecomdesk_llm_seconds", "Model call latency by outcome", ["tenant", "outcome"],
                        buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
BREAKER_OPEN = Gauge("wecomdesk_ai_breaker_open", "1 while the tenant's AI circuit breaker is open", ["tenant"])
