"""`Authorization: Api-Key wd_...`: a tenant's integration key, checked in the tenant's own schema."""

from __future__ import annotations

from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from conversations.services.api_keys import ApiKeyExpired, authenticate_api_key


class IntegrationUser:
    """The request's user for an API key: authenticated, not a person."""

    is_authenticated = True
    is_active = True
    is_staff = False

    def __init__(self, api_key):
        self.api_key = api_key
        self.pk = None

    def __str__(self) -> str:
        return f"api-key:{self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header.startswith(self.keyword + " "):
            return None
        try:
            api_key = authenticate_api_key(header[len(self.keyword) + 1:].strip())
        except ApiKeyExpired as exc:
            expired_at = timezone.localtime(exc.api_key.expires_at).isoformat(timespec="seconds")
            raise exceptions.AuthenticationFailed(
                _("This API key expired at %(expired_at)s; create a new one in the admin.") % {
                    "expired_at": expired_at}) from None
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or inactive API key for this tenant.")
        return IntegrationUser(api_key), api_key

    def authenticate_header(self, request):
        return self.keyword


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Describes the API key in the OpenAPI schema (defining the class registers it)."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Api-Key wd_...`, created in the tenant admin (API keys)."}
