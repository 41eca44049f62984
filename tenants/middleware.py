"""HTTP tenant resolution: enters the tenant's schema and URLconf for each request."""

from __future__ import annotations

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.http import HttpResponse, HttpResponseForbidden, HttpResponseNotFound, HttpResponsePermanentRedirect
from django.urls import set_script_prefix, set_urlconf
from django_tenants.utils import get_public_schema_name
from structlog.contextvars import bind_contextvars

from tenants.resolution import resolve_tenant


class TenantMiddleware:
    """Replaces django-tenants' TenantMainMiddleware to add `/t/<slug>/` routing.

    A tenant reached by path prefix behaves as if mounted there: the prefix
    becomes the script prefix, so `reverse()` and the admin produce
    `/t/<slug>/...` links and the URL router sees the rest of the path.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        connection.set_schema_to_public()
        if request.path_info.startswith(settings.TENANT_EXEMPT_PATHS):
            request.tenant = connection.tenant
            bind_contextvars(tenant=connection.schema_name)  # the request's log context (tenants/log_context.py)
            self._use_urlconf(request, settings.PUBLIC_SCHEMA_URLCONF)
            return self.get_response(request)

        try:
            resolution = resolve_tenant(host=request.get_host(), path=request.path_info)
        except (OperationalError, InterfaceError):
            # Not a 500: callers such as WeCom must retry later, and nothing was stored.
            return HttpResponse("Database unavailable.", status=503, content_type="text/plain")
        tenant = resolution.tenant
        if tenant is None:
            return HttpResponseNotFound("Unknown tenant.", content_type="text/plain")
        if not tenant.is_active:
            return HttpResponseForbidden("This tenant is suspended.", content_type="text/plain")
        # Always set the prefix: the script prefix is thread-local and must not leak between requests.
        mount = request.META.get("SCRIPT_NAME", "").rstrip("/")
        if resolution.script_prefix:
            if not resolution.path:  # "/t/acme" -> "/t/acme/"
                return HttpResponsePermanentRedirect(request.get_full_path().replace(
                    resolution.script_prefix, resolution.script_prefix + "/", 1))
            request.path_info = resolution.path
            request.META["SCRIPT_NAME"] = mount + resolution.script_prefix
            request.tenant_path_prefix = request.META["SCRIPT_NAME"]
        set_script_prefix(request.META.get("SCRIPT_NAME", "").rstrip("/") + "/")

        request.tenant = tenant
        connection.set_tenant(tenant)
        bind_contextvars(tenant=tenant.schema_name)  # the request's log context (tenants/log_context.py)
        is_public = tenant.schema_name == get_public_schema_name()
        self._use_urlconf(request, settings.PUBLIC_SCHEMA_URLCONF if is_public else settings.ROOT_URLCONF)
        return self.get_response(request)

    @staticmethod
    def _use_urlconf(request, urlconf: str) -> None:
        request.urlconf = urlconf
        set_urlconf(urlconf)


class TenantCookiePathMiddleware:
    """Scope the session and CSRF cookies of a tenant reached under /t/<slug>/ to that path.

    Several tenants (and the platform admin) can then be signed in side by side on one
    host: the browser sends each tenant only its own cookies. Listed before
    SessionMiddleware so it sees the cookies that middleware sets.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        prefix = getattr(request, "tenant_path_prefix", "")
        if prefix:
            for name in (settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME):
                if name in response.cookies:
                    response.cookies[name]["path"] = prefix + "/"
        return response
