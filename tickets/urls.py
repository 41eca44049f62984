from django.contrib.auth import views as auth_views
from django.urls import path

from tickets import views
from tickets.canned.views import canned_replies, delete_reply, edit_reply, my_replies
from tickets.labels.views import add_label, labels, remove_label
from tickets.profiles.views import profile
from tickets.reports.views import reports_csv, reports_page
from tickets.search.views import search_export, search_page

urlpatterns = [
    path("", views.queue_page, name="agent-queue"),
    path("login/", auth_views.LoginView.as_view(template_name="agent/login.html"), name="agent-login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="agent-login"), name="agent-logout"),
    path("c/<int:conversation_id>/", views.conversation_page, name="agent-conversation"),
    path("canned/", my_replies, name="agent-canned"),
    path("canned/<int:reply_id>/", edit_reply, name="agent-canned-edit"),
    path("canned/<int:reply_id>/delete/", delete_reply, name="agent-canned-delete"),
    path("reports/", reports_page, name="agent-reports"),
    path("reports/<str:table>.csv", reports_csv, name="agent-reports-csv"),
    path("search/", search_page, name="agent-search"),
    path("search/export.csv", search_export, name="agent-search-export"),
    path("c/<int:conversation_id>/media/<int:message_id>/", views.media, name="agent-media"),
    path("api/queue/", views.queue_data, name="agent-api-queue"),
    path("api/conversations/<int:conversation_id>/", views.conversation_data, name="agent-api-conversation"),
    path("api/conversations/<int:conversation_id>/claim/", views.claim, name="agent-api-claim"),
    path("api/conversations/<int:conversation_id>/reply/", views.reply, name="agent-api-reply"),
    path("api/conversations/<int:conversation_id>/attach/", views.attach, name="agent-api-attach"),
    path("api/conversations/<int:conversation_id>/hand-back/", views.hand_back, name="agent-api-hand-back"),
    path("api/conversations/<int:conversation_id>/status/", views.set_status, name="agent-api-status"),
    path("api/conversations/<int:conversation_id>/close/", views.close, name="agent-api-close"),
    path("api/conversations/<int:conversation_id>/note/", views.note, name="agent-api-note"),
    path("api/conversations/<int:conversation_id>/reassign/", views.reassign, name="agent-api-reassign"),
    path("api/conversations/<int:conversation_id>/promote/", views.promote, name="agent-api-promote"),
    path("api/conversations/<int:conversation_id>/team/", views.move_team, name="agent-api-team"),
    path("api/conversations/<int:conversation_id>/canned-replies/", canned_replies, name="agent-api-canned-replies"),
    path("api/labels/", labels, name="agent-api-labels"),
    path("api/conversations/<int:conversation_id>/labels/add/", add_label, name="agent-api-label-add"),
    path("api/conversations/<int:conversation_id>/labels/remove/", remove_label, name="agent-api-label-remove"),
    path("api/conversations/<int:conversation_id>/profile/", profile, name="agent-api-profile"),
]
