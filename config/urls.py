"""URLs of a tenant (reached by its hostname or under /t/<slug>/)."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from conversations.views import wecom_callback
from tickets.operations.views import operations_page, tenant_admin_index

admin.site.site_header = "WeCom Desk"
admin.site.site_title = "WeCom Desk"
admin.site.index_template = "operations/tenant_index.html"  # the health summary on top

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index")),
    # Before admin.site.urls: its index with the health summary, and the operations page (staff only).
    path("admin/", admin.site.admin_view(tenant_admin_index)),
    path("admin/operations/", admin.site.admin_view(operations_page), name="operations"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/", include("conversations.api.urls")),
    path("wecom/callback/<str:callback_id>/", wecom_callback, name="wecom-callback"),
    path("agent/", include("tickets.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
]
