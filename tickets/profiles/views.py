"""The profile panel's JSON: read it (which asks for a WeCom refresh when the cached profile is due: a job,
never a WeCom call on this request) and keep the contact's notes and custom attributes (validated by
conversations/services/contacts.py, as the REST API does)."""

from __future__ import annotations

from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from conversations.realtime import conversation_changed
from conversations.services.contacts import ContactInvalid, update_contact
from conversations.services.profiles import request_profile_refresh
from tickets.profiles.selectors import profile_panel
from tickets.selectors import access_conversation
from tickets.views import _conversation_or_404, _origin, _payload, agent_required


@require_http_methods(["GET", "POST"])
@agent_required
def profile(request, conversation_id: int):
    conversation = _conversation_or_404(request, conversation_id)
    if request.method == "GET":
        request_profile_refresh(contact=conversation.contact)
        return JsonResponse(profile_panel(profile=request.agent, conversation=conversation))
    data = _payload(request)
    notes, attributes = data.get("notes"), data.get("attributes")
    if notes is not None and not isinstance(notes, str):
        return JsonResponse({"detail": _("Notes are text."), "errors": {"notes": [_("Notes are text.")]}},
                            status=400)
    if notes is None and attributes is None:
        return JsonResponse({"detail": _("Nothing to change: send notes or attributes.")}, status=400)
    try:
        update_contact(contact_id=conversation.contact_id, notes=notes, attributes=attributes)
    except ContactInvalid as exc:
        return JsonResponse({"detail": _first_problem(exc.errors), "errors": exc.errors}, status=400)
    conversation_changed(conversation.pk, {"type": "profile"}, origin=_origin(request))
    fresh = access_conversation(profile=request.agent, conversation_id=conversation.pk)
    return JsonResponse(profile_panel(profile=request.agent, conversation=fresh))


def _first_problem(errors: dict) -> str:
    """One line for the banner: the first problem with its attribute's name when it has one."""
    for field, problems in errors.items():
        if isinstance(problems, dict):
            for name, messages in problems.items():
                return f"{name}: {messages[0]}" if name != "non_field_errors" else messages[0]
        if problems:
            return f"{field}: {problems[0]}"
    return _("The change was refused.")
