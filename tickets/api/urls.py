"""The human side's REST routes: tickets, agents, and the human-side actions on conversations (the
conversation resources themselves are conversations/api's). config/api_urls.py assembles them with every other
app's; this module imports no other app's API."""

from django.urls import path

from tickets.api.business_hours import BusinessHoursView
from tickets.api.views import AgentViewSet, CloseView, HandBackView, HandOffView, TicketViewSet
from tickets.canned.api import CannedReplyViewSet
from tickets.csat_api import CsatSettingsViewSet
from tickets.labels.api import ConversationLabelsView, ConversationLabelView, LabelViewSet
from tickets.reports.api import ReportView
from tickets.search.api import ConversationSearchExportView, ConversationSearchView

# (prefix, viewset, basename) for the tenant API's router.
routes = [
    ("tickets", TicketViewSet, "ticket"),
    ("agents", AgentViewSet, "agent"),
    ("csat-settings", CsatSettingsViewSet, "csat-settings"),
    ("canned-replies", CannedReplyViewSet, "canned-reply"),
    ("labels", LabelViewSet, "label"),
]
# Explicit paths under conversations/{id}/: a router's conversations/{pk}/ detail route never matches them.
urlpatterns = [
    path("conversations/<int:pk>/hand-off/", HandOffView.as_view(), name="conversation-hand-off"),
    path("conversations/<int:pk>/hand-back/", HandBackView.as_view(), name="conversation-hand-back"),
    path("conversations/<int:pk>/close/", CloseView.as_view(), name="conversation-close"),
    path("conversations/<int:pk>/labels/", ConversationLabelsView.as_view(), name="conversation-labels"),
    path("conversations/<int:pk>/labels/<int:label_id>/", ConversationLabelView.as_view(), name="conversation-label"),
    path("business-hours/", BusinessHoursView.as_view(), name="business-hours"),
    # Not under conversations/: the router's conversations/{pk}/ would take "search" for an id.
    path("search/conversations/", ConversationSearchView.as_view(), name="conversation-search"),
    path("search/conversations/export/", ConversationSearchExportView.as_view(), name="conversation-search-export"),
    path("reports/", ReportView.as_view(), name="reports"),
]
