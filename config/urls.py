"""URLs of a tenant (reached by its hostname or under /t/<slug>/)."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

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
    path("api/", include("config.api_urls")),
    path("wecom/callback/<str:callback_id>/", wecom_callback, name="wecom-callback"),
    path("agent/", include("tickets.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
]

# Django's own errors (no view reached, or a crash) answer JSON under api/ like the API's (config/api_errors.py).
handler400 = "config.api_errors.bad_request"
handler403 = "config.api_errors.permission_denied"
handler404 = "config.api_errors.page_not_found"
handler500 = "config.api_errors.server_error"
