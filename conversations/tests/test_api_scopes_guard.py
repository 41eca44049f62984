"""The guard of the scope contract: every view of the tenant API (config.api_urls, every app's routes) names a
known resource family in `api_scope` and checks it with HasApiScope, so no endpoint is open to every key
or closed to all of them by accident. A new endpoint without `api_scope` fails here by name."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver
from rest_framework.settings import api_settings

from config import api_urls
from conversations.api.permissions import HasApiScope
from conversations.scopes import FAMILIES
from testing.accounts import api_client

# Views that are not resources: the schema and its two readers (a key or staff, no scope), the API root.
NOT_RESOURCES = {"api-schema", "api-docs", "api-redoc", "api-root"}


def _patterns(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def _view_class(callback):
    return getattr(callback, "cls", None) or getattr(callback, "view_class", None)


def test_every_api_view_declares_a_known_scope():
    resources = [(route, pattern) for route, pattern in _patterns(api_urls.urlpatterns)
                 if pattern.name not in NOT_RESOURCES]
    assert len(resources) >= 8  # the walk found the routers' and the apps' patterns
    problems = []
    for route, pattern in resources:
        view = _view_class(pattern.callback)
        if view is None:
            problems.append(f"{route}: not a DRF view")
            continue
        family = getattr(view, "api_scope", "<missing>")
        if family not in FAMILIES:
            problems.append(f"{route} ({view.__module__}.{view.__name__}): api_scope = {family!r}")
        permissions = view.permission_classes
        if not any(issubclass(permission, HasApiScope) for permission in permissions):
            problems.append(f"{route} ({view.__name__}): permission_classes without HasApiScope: {permissions}")
    assert problems == [], "\n".join(problems)


def test_the_api_root_is_open_to_any_key_on_purpose():
    (root,) = {_view_class(pattern.callback) for _, pattern in _patterns(api_urls.urlpatterns)
               if pattern.name == "api-root"}
    assert root.api_scope is None


def test_scopes_are_enforced_by_default():
    assert api_settings.DEFAULT_PERMISSION_CLASSES == [HasApiScope]


@pytest.mark.django_db
def test_the_schema_names_each_operations_scope(api_keys):
    schema = api_client(api_keys["alpha"]).get("/t/alpha/api/schema/", {"format": "json"}).json()
    operations = [(path, method, operation) for path, item in schema["paths"].items()
                  for method, operation in item.items() if method in {"get", "post", "put", "patch", "delete"}]
    assert len(operations) >= 10
    for path, method, operation in operations:
        (scope,) = operation["x-scopes"]
        family, access = scope.split(":")
        assert family in FAMILIES and access == ("read" if method == "get" else "write"), (path, method, scope)
        assert f"Scope: `{scope}`" in operation["description"], (path, method)
        assert "429" in operation["responses"], (path, method)  # every view throttles
    audit_log = schema["paths"]["/api/audit-log/"]["get"]
    assert audit_log["x-scopes"] == ["settings:read"]
