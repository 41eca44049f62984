from rest_framework.permissions import BasePermission


class IsIntegrationOrStaff(BasePermission):
    """An API key of this tenant, or a signed-in staff user of this tenant."""

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and (getattr(user, "api_key", None) or user.is_staff))
