"""The OpenAPI schema's conventions, applied to every operation of every app (drf-spectacular).

- `ApiAutoSchema` documents the error responses an operation can give, in the shape of config/api_errors.py:
  401 and 403 everywhere (a key or a staff session is required), 404 where the path names an object, 400 where a
  body or query parameters can be wrong (with `errors`), 415 where there is a body, 429 where a view throttles.
- It also names the scope an operation needs (docs/API.md, "Scopes"): in its description and as the extension
  `x-scopes` (OpenAPI's own security scopes are for OAuth only), from the view's `api_scope`.
- `add_tenant_server` gives the schema a `servers` entry: the base URL of the tenant it was fetched from.
  Paths are the tenant's own (`/api/...`); the tenant is either the host (`https://acme.example.com`) or
  the `/t/<slug>` prefix in subfolder mode (`http://localhost:8000/t/acme`), so server + path is a URL that
  works when called.
"""

from __future__ import annotations

import uritemplate
from django.urls import get_script_prefix
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from conversations.scopes import required_scope


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="what went wrong, for a person")
    code = serializers.CharField(help_text="machine code: not_authenticated, permission_denied, not_found, ...")


class ValidationErrorSerializer(ErrorSerializer):
    errors = serializers.DictField(
        child=serializers.JSONField(), required=False,
        help_text="every problem, by field (non_field_errors: the whole object); lists and objects keep their shape")


ERROR_DESCRIPTIONS = {
    "400": "Invalid input (code `invalid`, problems under `errors`; or `parse_error` for a malformed body)",
    "401": "No key, or an unknown or inactive key for this tenant",
    "403": "The key lacks the scope this operation needs, or signed in but not staff of this tenant",
    "404": "No such object in this tenant",
    "415": "The body is not JSON (or a form)",
    "429": "Too many requests; retry after the Retry-After header's seconds",
}


class ApiAutoSchema(AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        family = getattr(self.view, "api_scope", None)
        if operation is not None and family:
            scope = required_scope(family=family, method=method)
            operation["x-scopes"] = [scope]
            needs = f"Scope: `{scope}` (an API key; staff sessions need none)."
            operation["description"] = f"{operation['description']}\n\n{needs}" if operation.get(
                "description") else needs
        return operation

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        has_body = self.method in ("POST", "PUT", "PATCH")
        has_query = any(parameter["in"] == "query" for parameter in self._get_parameters())
        wanted = ["401", "403"]
        if has_body or has_query:
            wanted.append("400")
        if uritemplate.variables(self.path):
            wanted.append("404")
        if has_body:
            wanted.append("415")
        if self.view.get_throttles():
            wanted.append("429")
        for code in sorted(wanted):
            if code not in responses:
                serializer = ValidationErrorSerializer if code == "400" else ErrorSerializer
                responses[code] = self._get_response_for_code(serializer, code, direction=direction)
                responses[code]["description"] = ERROR_DESCRIPTIONS[code]
        return dict(sorted(responses.items()))


def add_tenant_server(result, generator, request, public, **kwargs):
    """POSTPROCESSING_HOOKS: the tenant's base URL as the schema's server (nothing when built without a request)."""
    if request is not None:
        base = request.build_absolute_uri(get_script_prefix()).rstrip("/")
        result["servers"] = [{"url": base, "description": "this tenant"}]
    return result
