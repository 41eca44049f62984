"""The tenant's business hours through the REST API (GET, PATCH; scope `settings`): the same fields and the same
validation as the admin page (tickets.business_hours_services.update_business_hours), and whether the desk is
open now."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from tickets.business_hours_models import BusinessHours
from tickets.business_hours_services import EDITABLE, opening_status, update_business_hours

DAY_HELP = 'Open intervals of the weekday in the time zone, "09:00-12:00, 13:30-18:00" ("" closed; ends up to 24:00)'


class BusinessHoursSerializer(serializers.ModelSerializer):
    holidays = serializers.ListField(child=serializers.DateField(), required=False, max_length=1000,
                                     help_text="dates closed all day")
    extra_workdays = serializers.ListField(child=serializers.DateField(), required=False, max_length=1000,
                                           help_text="dates worked although the week says closed (调休), with the "
                                                     "hours of extra_workday_hours_of (0 Monday ... 6 Sunday)")
    open_now = serializers.SerializerMethodField(help_text="open at the time of the request")
    next_opening = serializers.SerializerMethodField(
        help_text="the time of the request when open; else the next opening; null: never opens again")

    class Meta:
        model = BusinessHours
        fields = [*EDITABLE, "open_now", "next_opening"]
        extra_kwargs = {day: {"help_text": DAY_HELP} for day in
                        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}

    def get_open_now(self, hours) -> bool:
        return opening_status(now=self.context["now"], hours=hours).open

    def get_next_opening(self, hours) -> datetime | None:
        return opening_status(now=self.context["now"], hours=hours).next_opening


class BusinessHoursView(APIView):
    """When the tenant's humans work: outside these hours a handed-off customer gets the off-hours message,
    nobody is offered the conversation until the opening, and the SLAs count business time only."""

    api_scope = "settings"

    @extend_schema(responses=BusinessHoursSerializer)
    def get(self, request):
        return Response(BusinessHoursSerializer(BusinessHours.current(), context={"now": timezone.now()}).data)

    @extend_schema(request=BusinessHoursSerializer, responses=BusinessHoursSerializer)
    def patch(self, request):
        serializer = BusinessHoursSerializer(BusinessHours.current(), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        try:
            hours = update_business_hours(changes=serializer.validated_data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        return Response(BusinessHoursSerializer(hours, context={"now": timezone.now()}).data)
