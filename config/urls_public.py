"""URLs of the public schema: the platform admin and the operational endpoints."""

from django.urls import path
from django.views.generic import RedirectView

from config.health import healthz, readyz
from config.metrics import metrics
from tenants.admin import platform_admin
from tickets.operations.views import platform_operations

platform_admin.index_template = "operations/platform_index.html"  # links the operations of every tenant

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="platform_admin:index")),
    # Before platform_admin.urls, whose last pattern catches every path under admin/ (superusers only).
    path("admin/operations/", platform_admin.admin_view(platform_operations), name="platform-operations"),
    path("admin/", platform_admin.urls),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="prometheus-django-metrics"),  # optional bearer token: config/metrics.py
]
