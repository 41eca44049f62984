"""URLs of the public schema: the platform admin and the operational endpoints."""

from django.urls import include, path
from django.views.generic import RedirectView

from config.health import healthz, readyz
from tenants.admin import platform_admin

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="platform_admin:index")),
    path("admin/", platform_admin.urls),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("", include("django_prometheus.urls")),  # /metrics
]
