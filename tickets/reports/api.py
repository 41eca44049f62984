"""The reports through the REST API (GET /api/reports/, scope `tickets`, read): the figures of the supervisors'
page under the same keys (WeCom's names where WeCom has the figure), raw (rates 0..1, times in seconds)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from tickets.reports.columns import BOT_COLUMNS, COUNT, HUMAN_COLUMNS, Column, values
from tickets.reports.figures import Named, report
from tickets.reports.period import PeriodInvalid, parse_period, tenant_zone


def _field(column: Column) -> serializers.Field:
    if column.kind == COUNT:
        return serializers.IntegerField(help_text=column.label)
    # Rates are 0..1, times seconds; null when there is nothing to compute them from.
    return serializers.FloatField(allow_null=True, help_text=column.label)


def _serializer(class_name: str, columns: list[Column], **extra) -> type[serializers.Serializer]:
    return type(class_name, (serializers.Serializer,), {**{c.key: _field(c) for c in columns}, **extra})


HumanFiguresSerializer = _serializer("ReportHumanFigures", HUMAN_COLUMNS)
BotFiguresSerializer = _serializer("ReportBotFigures", BOT_COLUMNS)
AgentRowSerializer = _serializer("ReportAgentRow", HUMAN_COLUMNS, user_id=serializers.IntegerField(),
                                 name=serializers.CharField())
TeamRowSerializer = _serializer("ReportTeamRow", HUMAN_COLUMNS,
                                team_id=serializers.IntegerField(allow_null=True, help_text="null: no team"),
                                name=serializers.CharField())


class ReportBucketSerializer(serializers.Serializer):
    start = serializers.DateField(help_text="the local day, or the Monday of the week")
    human = HumanFiguresSerializer()
    bot = BotFiguresSerializer()


class ReportPeriodSerializer(serializers.Serializer):
    start = serializers.DateField(source="first")
    end = serializers.DateField(source="last", help_text="included")
    time_zone = serializers.CharField(source="zone")


class ReportSerializer(serializers.Serializer):
    period = ReportPeriodSerializer()
    agents = AgentRowSerializer(many=True)
    teams = TeamRowSerializer(many=True)
    total = HumanFiguresSerializer()
    bot = BotFiguresSerializer()
    days = ReportBucketSerializer(many=True)
    weeks = ReportBucketSerializer(many=True)


def _named(rows: list[Named], key: str) -> list[dict]:
    return [{key: row.key, "name": row.name, **values(HUMAN_COLUMNS, row.figures)} for row in rows]


def _buckets(human: dict, bot: dict) -> list[dict]:
    return [{"start": start.isoformat(), "human": values(HUMAN_COLUMNS, human[start]),
             "bot": values(BOT_COLUMNS, bot[start])} for start in human]


class ReportView(APIView):
    """Per agent, per team, the bot, per day and per week, for whole local days of the tenant's time zone
    (the business hours'). docs/REPORTS.md defines every figure and its WeCom counterpart."""

    api_scope = "tickets"  # the figures are aggregates of the tickets and agents that scope reads

    @extend_schema(
        parameters=[OpenApiParameter("from", OpenApiTypes.DATE, description="first local day (default: 6 before `to`)"),
                    OpenApiParameter("to", OpenApiTypes.DATE, description="last local day, included (default: today)")],
        responses=ReportSerializer)
    def get(self, request):
        try:
            period = parse_period(first=request.query_params.get("from"), last=request.query_params.get("to"),
                                  zone=tenant_zone())
        except PeriodInvalid as exc:
            raise ValidationError({"period": [str(exc)]}) from exc
        rep = report(period)
        return Response({
            "period": {"start": period.first.isoformat(), "end": period.last.isoformat(),
                       "time_zone": str(period.zone)},
            "agents": _named(rep.human.agents, "user_id"),
            "teams": _named(rep.human.teams, "team_id"),
            "total": values(HUMAN_COLUMNS, rep.human.total),
            "bot": values(BOT_COLUMNS, rep.bot.total),
            "days": _buckets(rep.human.daily, rep.bot.daily),
            "weeks": _buckets(rep.human.weekly, rep.bot.weekly),
        })
