"""The reports page of the agent screens (agent/reports/) and its CSV files: supervisors only, since the figures
compare every agent of the tenant; an agent gets 403 (docs/REPORTS.md, "Who sees them")."""

from __future__ import annotations

from datetime import date

from django.http import HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from tickets.operations.charts import Series, line, stacked_bars
from tickets.operations.figures import duration
from tickets.reports.columns import BOT_COLUMNS, HUMAN_COLUMNS
from tickets.reports.figures import Report, report
from tickets.reports.period import PeriodInvalid, parse_period, tenant_zone
from tickets.reports.tables import TABLES, build, write_csv
from tickets.views import agent_required

TICKET_SERIES = [Series("handled", gettext_lazy("handled by an agent"), "#1565c0"),
                 Series("untaken", gettext_lazy("not taken by an agent"), "#9e9e9e")]
BOT_SERIES = [Series("ai_resolved", gettext_lazy("resolved by the AI"), "#2e7d32"),
              Series("transferred", gettext_lazy("transferred to humans"), "#f9a825"),
              Series("open", gettext_lazy("not ended yet"), "#9e9e9e")]
FIRST_RESPONSE_COLOR, CSAT_COLOR = "#37474f", "#ad1457"


def supervisor_required(view):
    """An agent of this tenant (agent_required) who is a supervisor; other agents get 403."""

    @agent_required
    def wrapper(request, *args, **kwargs):
        if not request.agent.is_supervisor:
            return render(request, "agent/reports_forbidden.html", {"agent": request.agent}, status=403)
        return view(request, *args, **kwargs)

    return wrapper


def _period(request):
    return parse_period(first=request.GET.get("from"), last=request.GET.get("to"), zone=tenant_zone())


def _charts(rep: Report, *, weekly: bool) -> dict:
    human = rep.human.weekly if weekly else rep.human.daily
    bot = rep.bot.weekly if weekly else rep.bot.daily
    starts: list[date] = list(human)
    labels = [f"{start:%m-%d}" for start in starts]
    every = max(1, len(starts) // 10)
    period = _("per week (weeks start on Monday)") if weekly else _("per day")
    return {
        "tickets": stacked_bars(
            label=_("Tickets handed off, %(period)s") % {"period": period}, x_labels=labels, every=every,
            values=[{"handled": human[s].handled, "untaken": human[s].tickets - human[s].handled} for s in starts],
            series=TICKET_SERIES),
        "bot": stacked_bars(
            label=_("Conversations the bot took, %(period)s") % {"period": period}, x_labels=labels, every=every,
            values=[{"ai_resolved": bot[s].ai_resolved, "transferred": bot[s].transferred,
                     "open": bot[s].bot_sessions - bot[s].ai_resolved - bot[s].transferred} for s in starts],
            series=BOT_SERIES),
        "first_response": line(
            label=_("Average first response, %(period)s") % {"period": period}, x_labels=labels, every=every,
            values=[human[s].first_response_avg_seconds for s in starts], color=FIRST_RESPONSE_COLOR,
            y_format=duration),
        "csat": line(
            label=_("Satisfied share of the answered surveys, %(period)s") % {"period": period}, x_labels=labels,
            every=every, values=[human[s].satisfied_rate for s in starts], color=CSAT_COLOR,
            y_format=lambda v: f"{v * 100:.0f}%"),
    }


@never_cache
@require_GET
@supervisor_required
def reports_page(request):
    """The reports of a period: per agent, per team, the bot, charts per day and per week."""
    try:
        period = _period(request)
    except PeriodInvalid as exc:
        return render(request, "agent/reports.html", {"agent": request.agent, "error": str(exc)}, status=400)
    rep = report(period)
    context = {
        "agent": request.agent,
        "period": period,
        "time_zone": str(period.zone),
        "computed_at": rep.computed_at.astimezone(period.zone),
        "query": f"from={period.first.isoformat()}&to={period.last.isoformat()}",
        "tables": {name: build(rep, name) for name in ("agents", "teams")},
        "total": [(column, column.text(rep.human.total)) for column in HUMAN_COLUMNS],
        "bot": [(column, column.text(rep.bot.total)) for column in BOT_COLUMNS],
        "exports": TABLES,
        "daily": _charts(rep, weekly=False),
        "weekly": _charts(rep, weekly=True),
        "ticket_series": TICKET_SERIES,
        "bot_series": BOT_SERIES,
    }
    return render(request, "agent/reports.html", context)


@never_cache
@require_GET
@supervisor_required
def reports_csv(request, table: str):
    """One table of the period as a CSV file (agents, teams, days, weeks)."""
    if table not in TABLES:
        return HttpResponse(_("No such table."), status=404, content_type="text/plain; charset=utf-8")
    try:
        period = _period(request)
    except PeriodInvalid as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    built = build(report(period), table)
    response = HttpResponse(write_csv(built.headers, built.rows), content_type="text/csv; charset=utf-8")
    name = f"report-{table}-{period.first.isoformat()}-{period.last.isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
