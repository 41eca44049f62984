"""The audit log and the API: every successful write through the tenant API is recorded, and the log is
readable at GET /api/audit-log/ (docs/API.md, "Audit log").

`AuditApiWritesMiddleware` is the one central hook, so that no view has to remember to call the audit: a
POST, PUT, PATCH or DELETE under api/ answered with a 2xx gets an entry with the caller ("api-key:<name>",
"user:<username>"), the route ("PATCH /api/fallback-scripts/{pk}/"), the object ("fallbackscript:12") and
the names of the fields sent (never their values: a body may carry secrets). It runs after the view has
committed, in its own short transaction: a failed or refused write is never recorded, and a crash between
the two loses the entry, never the write. The caller and the view come from DRF's response
(`renderer_context`), so they are DRF's own (the key, not Django's anonymous user).
"""

from __future__ import annotations

import structlog
from django.db import DatabaseError, connection
from django_filters import rest_framework as filters
from django_tenants.utils import get_public_schema_name
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import APIException

from conversations.models import AuditLogEntry
from conversations.services.audit import actor_for, record
from tenants.api_filters import DateTimeFilter

log = structlog.get_logger(__name__)

API_PREFIX = "/api/"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# URL keywords that name the object a write is about, most specific first.
OBJECT_KWARGS = ("pk", "id")


class AuditApiWritesMiddleware:
    """Records every successful API write (settings.MIDDLEWARE, after authentication)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (request.method in WRITE_METHODS and 200 <= response.status_code < 300
                and request.path_info.startswith(API_PREFIX)
                and connection.schema_name != get_public_schema_name()):
            try:
                record_api_write(request, response)
            except DatabaseError:
                # The write itself is committed: answering 500 now would make the caller retry it.
                log.exception("audit.api_write_not_recorded", path=request.path_info, method=request.method)
        return response


def record_api_write(request, response) -> None:
    context = getattr(response, "renderer_context", None) or {}
    view, drf_request = context.get("view"), context.get("request")
    kwargs = context.get("kwargs") or (request.resolver_match.kwargs if request.resolver_match else {})
    user = getattr(drf_request, "user", None) or getattr(request, "user", None)
    detail: dict = {"status": response.status_code}
    api_key = getattr(user, "api_key", None)
    if api_key is not None:
        detail["key_prefix"] = api_key.prefix  # names need not be unique; the prefix is the key's public id
    body = _body(drf_request)
    if isinstance(body, dict):
        detail["fields"] = sorted(str(name) for name in body)
    elif isinstance(body, list):
        detail["items"] = len(body)
    record(actor=actor_for(user), action=f"{request.method} {_route(request.path_info, kwargs)}",
           target=_target(view, kwargs, getattr(response, "data", None)), detail=detail)


def _body(drf_request):
    """The parsed body, if it parses: a view that never read it (a DELETE) may have been sent anything."""
    if drf_request is None:
        return None
    try:
        return drf_request.data
    except APIException:
        return None


def _route(path: str, kwargs: dict) -> str:
    """The path with the URL's values as their names: "/api/fallback-scripts/{pk}/" (few distinct actions)."""
    names = {str(value): name for name, value in kwargs.items() if name != "format"}
    return "/".join(f"{{{names[part]}}}" if part in names else part for part in path.split("/"))


def _target(view, kwargs: dict, data) -> str:
    object_id = next((kwargs[name] for name in OBJECT_KWARGS if name in kwargs), None)
    if object_id is None and isinstance(data, dict) and "id" in data:
        object_id = data["id"]  # a create: the new object's id
    if object_id is None:
        return ""
    queryset = getattr(view, "queryset", None)
    kind = (queryset.model._meta.model_name if queryset is not None
            else getattr(view, "basename", None) or type(view).__name__.lower())
    return f"{kind}:{object_id}"


# -- GET /api/audit-log/ ------------------------------------------------------------------------------


class AuditLogEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditLogEntry
        fields = ["id", "at", "actor", "action", "target", "detail", "request_id", "trace_id"]
        read_only_fields = fields


class AuditLogFilter(filters.FilterSet):
    actor = filters.CharFilter(max_length=200, label='who: "api-key:<name>" or "user:<username>"')
    action = filters.CharFilter(max_length=200, label='what: "POST /api/fallback-scripts/", "dead_letters.resend"')
    target = filters.CharFilter(max_length=200, label='the object: "fallbackscript:12"')
    after = DateTimeFilter(field_name="at", lookup_expr="gte", label="at or after (ISO 8601)")
    before = DateTimeFilter(field_name="at", lookup_expr="lt", label="before (ISO 8601)")

    class Meta:
        model = AuditLogEntry
        fields = []


class AuditLogViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The tenant's audit log: every write through the API and the admin's sensitive actions, newest first."""

    api_scope = "settings"
    serializer_class = AuditLogEntrySerializer
    queryset = AuditLogEntry.objects.all()
    filterset_class = AuditLogFilter
    ordering_fields = ["id", "at"]
    ordering = ["-at", "-id"]
