"""Who may call the tenant API, and what an API key may do there (docs/API.md, "Scopes").

`IsIntegrationOrStaff`: an API key of this tenant, or a signed-in staff user of this tenant (the schema and
the docs pages use this alone). `HasApiScope` (every API view, REST_FRAMEWORK's default) adds the key's
scopes: each view names its resource family in `api_scope`; safe methods need "<family>:read", the others
"<family>:write". Staff sessions are not limited by scopes. A view without `api_scope` is closed to keys
(conversations/tests/test_api_scopes_guard.py fails for it long before a key meets it); `api_scope = None` says on
purpose that any key of the tenant may call it (the API root).
"""

from django.utils.translation import gettext as _
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from conversations.scopes import FAMILIES, grants, required_scope

UNDECLARED = object()


class IsIntegrationOrStaff(BasePermission):
    """An API key of this tenant, or a signed-in staff user of this tenant."""

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and (getattr(user, "api_key", None) or user.is_staff))


class HasApiScope(IsIntegrationOrStaff):
    """IsIntegrationOrStaff, and for a key the scope the view's family and the method need."""

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        api_key = getattr(request.user, "api_key", None)
        if api_key is None:
            return True  # staff: not limited by scopes
        family = getattr(view, "api_scope", UNDECLARED)
        if family is None:
            return True
        if family is UNDECLARED or family not in FAMILIES:
            raise PermissionDenied(_("This endpoint declares no API scope, so no API key may call it."))
        wanted = required_scope(family=family, method=request.method)
        if not grants(api_key.scopes, wanted):
            raise PermissionDenied(_("This API key lacks the scope %(scope)s.") % {"scope": wanted})
        return True
