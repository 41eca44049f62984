from django.urls import path
from rest_framework.routers import DefaultRouter

from conversations.api.views import DeadLetterViewSet, DeskSettingsViewSet, FallbackScriptViewSet, MessageTraceView
from kb.api.views import KnowledgeEntryViewSet

router = DefaultRouter()
router.register("dead-letters", DeadLetterViewSet, basename="dead-letter")
router.register("fallback-scripts", FallbackScriptViewSet, basename="fallback-script")
router.register("desk-settings", DeskSettingsViewSet, basename="desk-settings")
router.register("knowledge", KnowledgeEntryViewSet, basename="knowledge")
urlpatterns = [
    *router.urls,
    path("messages/<str:id>/trace/", MessageTraceView.as_view(), name="message-trace"),
]
