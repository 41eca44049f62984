"""The tenant's REST API under api/: one router assembled from every app's routes, the OpenAPI schema and its
two readers (Swagger UI and Redoc, with drf-spectacular-sidecar's local assets, for signed-in staff).

Each app lists its routes in its own `<app>.api.urls` (`routes` for the router, `urlpatterns` for the rest);
the apps never import each other's API, config wires them all (docs/API.md).
"""

from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import APIRootView, DefaultRouter

from conversations.api import urls as conversations_api
from kb.api import urls as kb_api
from tickets.api import urls as tickets_api

API_APPS = (conversations_api, kb_api, tickets_api)


class ApiRootView(APIRootView):
    api_scope = None  # the list of resources: any key of the tenant (conversations/api/permissions.py)


router = DefaultRouter()
router.APIRootView = ApiRootView
for app in API_APPS:
    for prefix, viewset, basename in app.routes:
        router.register(prefix, viewset, basename=basename)

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(schema=None), name="api-schema"),  # schema=None: not in itself
    # The readers are pages for people: staff of this tenant, sent to the admin's sign-in otherwise. They
    # fetch the schema with the same session.
    path("docs/", admin.site.admin_view(SpectacularSwaggerView.as_view(url_name="api-schema")), name="api-docs"),
    path("redoc/", admin.site.admin_view(SpectacularRedocView.as_view(url_name="api-schema",
                                                                      template_name="api/redoc.html")),
         name="api-redoc"),
    *router.urls,
    *(pattern for app in API_APPS for pattern in app.urlpatterns),
]
