"""Errors of the REST API: one JSON shape for every failure, from DRF views and from Django under /api/.

    {"detail": "<what went wrong, for a person>", "code": "<machine code>"}
    {"detail": "ids: This field is required.", "code": "invalid", "errors": {"ids": ["This field is required."]}}

`code` is DRF's code of the exception (not_authenticated, authentication_failed, permission_denied, not_found,
method_not_allowed, unsupported_media_type, parse_error, throttled, ...). A validation failure (400) has code
`invalid`, its first problem in `detail`, and every problem under `errors`, keyed by field as DRF reports
them (`non_field_errors` for the object as a whole; lists and nested objects keep their shape, e.g.
{"ids": {"0": ["A valid integer is required."]}}). docs/API.md documents the shape for integrators.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views import defaults
from rest_framework import exceptions
from rest_framework.fields import get_error_detail
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler

API_PREFIX = "/api/"

CODE_BY_STATUS = {400: "invalid", 401: "not_authenticated", 403: "permission_denied", 404: "not_found",
                  405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 415: "unsupported_media_type",
                  429: "throttled", 500: "server_error"}


def error_body(detail: str, code: str, errors=None) -> dict:
    body = {"detail": detail, "code": code}
    if errors is not None:
        body["errors"] = errors
    return body


def api_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: DRF's own handling (headers such as WWW-Authenticate and Retry-After), our body."""
    if isinstance(exc, DjangoValidationError):  # a model's clean() reached from a view: the caller's fault
        exc = exceptions.ValidationError(get_error_detail(exc))
    response = exception_handler(exc, context)
    if response is None:
        return None  # not an API error: a real server error, answered by server_error() below
    if isinstance(exc, exceptions.ValidationError):
        errors = response.data if isinstance(response.data, dict) else {api_settings.NON_FIELD_ERRORS_KEY:
                                                                         response.data}
        response.data = error_body(_first_problem(errors), "invalid", errors)
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        code = getattr(detail, "code", None) or CODE_BY_STATUS.get(response.status_code, "error")
        response.data = error_body(str(detail), code)
    return response


def _first_problem(errors, path: str = "") -> str:
    """'field: message' for the first problem, walking into nested lists and objects."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            where = key if key == api_settings.NON_FIELD_ERRORS_KEY else f"{path}{key}"
            found = _first_problem(value, "" if key == api_settings.NON_FIELD_ERRORS_KEY else f"{where}.")
            if found:
                return found
        return "Invalid input."
    if isinstance(errors, list):
        for value in errors:
            found = _first_problem(value, path)
            if found:
                return found
        return "Invalid input."
    return f"{path[:-1]}: {errors}" if path else str(errors)


# -- Django's own errors under /api/ (no DRF view reached: unknown path, server error) ------------------
# Their messages are DRF's own, so DRF's catalogs translate them (zh-hans by default).


def _is_api(request) -> bool:
    return request.path_info.startswith(API_PREFIX)


def bad_request(request, exception=None):
    if _is_api(request):
        return JsonResponse(error_body(_("Malformed request."), "bad_request"), status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if _is_api(request):
        return JsonResponse(error_body(_("You do not have permission to perform this action."), "permission_denied"),
                            status=403)
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception=None):
    if _is_api(request):
        return JsonResponse(error_body(_("Not found."), "not_found"), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return JsonResponse(error_body(_("A server error occurred."), "server_error"), status=500)
    return defaults.server_error(request)
