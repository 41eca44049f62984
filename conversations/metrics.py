"""Prometheus metrics of the inbound path (exposed at /metrics by django-prometheus).

The tenant label is bounded by the number of tenants; never label by user or message.
"""

from prometheus_client import Counter

INBOUND_STAGES = Counter(
    "wecomdesk_inbound_stage_total",
    "Stages reached by inbound WeCom messages (received, duplicate, enqueued, pulled, processed, failed)",
    ["tenant", "stage"],
)
CALLBACK_REJECTIONS = Counter(
    "wecomdesk_callback_rejections_total", "WeCom callbacks refused with a 4xx", ["tenant", "reason"]
)
