"""The operators' pages: the tenant admin's index with its health summary and the tenant's operations
page (tenant staff), and the platform admin's page of every active tenant's headline figures
(platform superusers). Hooked into the admins' URLconfs in config/urls.py and config/urls_public.py."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from django.views.decorators.cache import never_cache
from django_tenants.utils import get_public_schema_name, schema_context

from conversations.selectors import NO_OUTCOME
from conversations.vocabulary import Outcome
from tenants.admin import platform_admin
from tenants.models import Tenant
from tenants.services import tenant_urls
from tickets.operations.charts import Series, line, stacked_bars
from tickets.operations.figures import (
    BAD,
    OK,
    WARN,
    Bucket,
    HealthItem,
    duration,
    health,
    take_snapshot,
    traffic,
    worst,
)

# The platform page computes every tenant's figures in the request: bounded, the rest are counted.
PLATFORM_MAX_TENANTS = 100
OUTCOME_SERIES = [
    Series(Outcome.AI.value, gettext_lazy("answered by the AI"), "#2e7d32"),
    Series(Outcome.KNOWLEDGE.value, gettext_lazy("answered from the knowledge base"), "#00897b"),
    Series(Outcome.FALLBACK.value, gettext_lazy("fallback script"), "#f9a825"),
    Series(Outcome.HANDOFF.value, gettext_lazy("handed off to humans"), "#1565c0"),
    Series(Outcome.ROUTED_TO_HUMAN.value, gettext_lazy("routed to the agent who owns the conversation"), "#6a1b9a"),
    Series(Outcome.RATE_LIMITED.value, gettext_lazy("rate-limited"), "#c62828"),
    Series(Outcome.RATING.value, gettext_lazy("a rating of an answer (👍/👎)"), "#8d6e63"),
    Series(Outcome.SURVEY.value, gettext_lazy("an answer to a satisfaction survey"), "#ad1457"),
    Series(NO_OUTCOME, gettext_lazy("no outcome (waiting, failed or not answered)"), "#9e9e9e"),
]
LATENCY_COLOR = "#37474f"
# The shares the platform page shows per tenant (the tenant's own page shows all of them).
PLATFORM_SHARES = [Outcome.AI.value, Outcome.KNOWLEDGE.value, Outcome.FALLBACK.value, Outcome.HANDOFF.value,
                   Outcome.RATE_LIMITED.value]
LEVEL_LABELS = {OK: gettext_lazy("Healthy"), WARN: gettext_lazy("Needs attention"), BAD: gettext_lazy("Action needed")}
BREAKER_LABELS = {"closed": pgettext_lazy("AI circuit breaker", "closed"),
                  "open": pgettext_lazy("AI circuit breaker", "open"),
                  "half-open": pgettext_lazy("AI circuit breaker", "half-open"),
                  "unknown": pgettext_lazy("AI circuit breaker", "unknown")}


def seconds_text(value: float | None) -> str:
    return "–" if value is None else _("%(s)s s") % {"s": f"{value:.1f}" if value < 100 else f"{value:.0f}"}


def share_text(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _age_text(seconds: float | None) -> str:
    return "" if seconds is None else duration(seconds)


def _level(items: list[HealthItem]) -> dict:
    level = worst(items)
    return {"health_level": level, "health_label": LEVEL_LABELS[level]}


def _health_context(items: list[HealthItem]) -> dict:
    return {"health": items, **_level(items)}


@never_cache
def tenant_admin_index(request):
    """The tenant admin's index with the health summary on top (admin.site.admin_view wraps it)."""
    return admin.site.index(request, extra_context=_health_context(health(take_snapshot())))


def _outcome_rows(bucket: Bucket) -> list[dict]:
    return [{"key": s.key, "label": s.label, "color": s.color, "count": bucket.counts[s.key],
             "share": share_text(bucket.share(s.key)) if s.key != NO_OUTCOME else ""} for s in OUTCOME_SERIES]


def _charts(buckets: list[Bucket], *, period: str, x_format: str, every: int) -> dict:
    x_labels = [bucket.start.strftime(x_format) for bucket in buckets]
    return {
        "messages": stacked_bars(label=_("Customer messages by outcome, %(period)s") % {"period": period},
                                 x_labels=x_labels, values=[b.counts for b in buckets], series=OUTCOME_SERIES,
                                 every=every),
        "latency": line(label=_("Pipeline latency p95, %(period)s") % {"period": period}, x_labels=x_labels,
                        values=[b.p95_seconds for b in buckets], color=LATENCY_COLOR, y_format=seconds_text,
                        every=every),
    }


@never_cache
def operations_page(request):
    """The tenant's operations page: health, today's figures, charts of 24 hours and 7 days."""
    now = timezone.now()
    snapshot, flow = take_snapshot(now=now), traffic(now=now)
    today = flow.today
    context = {
        **admin.site.each_context(request),
        **_health_context(health(snapshot)),
        "title": _("Operations"),
        "now": now,
        "time_zone": settings.TIME_ZONE,
        "snapshot": snapshot,
        "breaker_label": BREAKER_LABELS.get(snapshot.breaker, snapshot.breaker),
        "inbound_oldest": _age_text(snapshot.inbound_oldest_seconds),
        "outbound_waiting": snapshot.outbound_pending + snapshot.outbound_retrying,
        "outbound_oldest": _age_text(snapshot.outbound_oldest_seconds),
        "tickets_oldest": _age_text(snapshot.tickets_waiting_oldest_seconds),
        "today": today,
        "today_p95": seconds_text(today.p95_seconds),
        "outcomes": _outcome_rows(today),
        "series": OUTCOME_SERIES,
        "hourly": _charts(flow.hourly, period=_("last 24 hours, per hour"), x_format="%H:00", every=3),
        "daily": _charts(flow.daily, period=_("last 7 days, per day"), x_format="%m-%d", every=1),
    }
    return TemplateResponse(request, "operations/page.html", context)


@never_cache
def platform_operations(request):
    """Every active tenant's headline figures (platform superusers; platform_admin.admin_view wraps it)."""
    if not request.user.is_superuser:
        raise PermissionDenied
    now = timezone.now()
    tenants = Tenant.objects.filter(is_active=True).exclude(schema_name=get_public_schema_name()).order_by(
        "schema_name")
    rows = []
    for tenant in tenants[:PLATFORM_MAX_TENANTS]:
        with schema_context(tenant.schema_name):
            snapshot = take_snapshot(now=now)
            today = traffic(now=now, hourly=False).today
        items = health(snapshot)
        rows.append({"tenant": tenant, "url": tenant_urls(tenant).base + "admin/operations/", "snapshot": snapshot,
                     "today": today, "p95": seconds_text(today.p95_seconds), "health": items, **_level(items),
                     "shares": [share_text(today.share(outcome)) for outcome in PLATFORM_SHARES],
                     "breaker_label": BREAKER_LABELS.get(snapshot.breaker, snapshot.breaker)})
    context = {
        **platform_admin.each_context(request),
        "title": _("Operations of every tenant"),
        "now": now,
        "time_zone": settings.TIME_ZONE,
        "share_labels": [series.label for series in OUTCOME_SERIES if series.key in PLATFORM_SHARES],
        "rows": rows,
        "total": tenants.count(),
    }
    return TemplateResponse(request, "operations/platform.html", context)
