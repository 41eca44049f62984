"""The knowledge base's REST routes, assembled into the tenant API by config/api_urls.py."""

from kb.api.views import KnowledgeEntryViewSet

# (prefix, viewset, basename) for the tenant API's router.
routes = [
    ("knowledge", KnowledgeEntryViewSet, "knowledge"),
]
urlpatterns = []
