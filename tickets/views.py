"""Agent screens: two pages (queue, conversation) and the JSON actions their JavaScript calls.

Views are thin: resolve the agent, check access through selectors (missing and
forbidden both answer 404), call a service, return JSON. Errors are {"detail": ...}.
"""

from __future__ import annotations

import json
import mimetypes
from functools import wraps
from pathlib import PurePath

from django.contrib.auth.views import redirect_to_login
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from conversations.models import Conversation
from conversations.services.media import attachment_max_bytes
from tickets import presence, services
from tickets.canned.services import send_canned_reply
from tickets.models import AgentProfile
from tickets.selectors import (
    access_conversation,
    access_media,
    agent_profile,
    conversation_detail,
    owned_by,
    waiting_queue,
)
from tickets.teams.models import Team


def agent_required(view):
    """Signed-in active agent of this tenant; pages redirect to login, JSON answers 403."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        profile = agent_profile(request.user)
        if profile is None:
            if request.path_info.startswith("/agent/api/"):
                return JsonResponse({"detail": "Sign in as an agent of this tenant."}, status=403)
            if request.user.is_authenticated:
                return render(request, "agent/not_an_agent.html", status=403)
            return redirect_to_login(request.get_full_path(), reverse("agent-login"))
        request.agent = profile
        return view(request, *args, **kwargs)

    return wrapper


def _conversation_or_404(request, conversation_id):
    conversation = access_conversation(profile=request.agent, conversation_id=conversation_id)
    if conversation is None:
        raise Http404("conversation not found")
    return conversation


def _payload(request) -> dict:
    if request.content_type == "multipart/form-data":  # an attachment (request.FILES): its body stays unread
        return {}
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _origin(request) -> str:
    """The caller's own socket: events of this action are not echoed back to it."""
    return request.headers.get("X-Agent-Socket", "")[:200]


# --- pages ------------------------------------------------------------------------------------------

@require_GET
@agent_required
def queue_page(request):
    return render(request, "agent/queue.html", {"agent": request.agent})


@require_GET
@agent_required
def conversation_page(request, conversation_id: int):
    conversation = _conversation_or_404(request, conversation_id)
    return render(request, "agent/conversation.html", {"agent": request.agent, "conversation": conversation,
                                                       "attachment_max_bytes": attachment_max_bytes()})


@require_GET
@agent_required
def media(request, conversation_id: int, message_id: int):
    """A picture, voice, video or file of a message on a conversation screen the agent may see.
    Pictures show inline; everything else downloads. The file never runs as a page of ours (CSP sandbox)."""
    found = access_media(profile=request.agent, conversation_id=conversation_id, message_id=message_id)
    if found is None:
        raise Http404("media not found")
    file, content_type = found
    inline = content_type in INLINE_IMAGE_TYPES
    name = PurePath(file.name).name
    response = FileResponse(file.open("rb"), as_attachment=not inline, filename=name,
                            content_type=content_type or mimetypes.guess_type(name)[0] or "application/octet-stream")
    response["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'"
    response["Cache-Control"] = "private, max-age=3600"
    return response


# Shown inline on the screen: raster images only (an SVG could carry scripts; it is not a WeCom image type).
INLINE_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/bmp", "image/webp"})


# --- JSON reads ---------------------------------------------------------------------------------------

@require_GET
@agent_required
def queue_data(request):
    profiles = list(AgentProfile.objects.filter(is_active=True).select_related("user"))
    states = presence.statuses(schema=request.tenant.schema_name, user_ids=[p.user_id for p in profiles])
    return JsonResponse({
        "waiting": waiting_queue(),
        "mine": owned_by(request.agent.user_id),
        "agents": [{"id": p.user_id, "name": p.name, "presence": states[p.user_id], "role": p.role}
                   for p in profiles] if request.agent.is_supervisor else [],
        "me": {"id": request.agent.user_id, "name": request.agent.name, "supervisor": request.agent.is_supervisor,
               "presence": states.get(request.agent.user_id, "offline"),
               "teams": list(request.agent.teams.values_list("pk", flat=True))},
        # For the queue's team filter (and a supervisor's move to another team).
        "teams": [{"id": team.pk, "name": team.name} for team in Team.objects.all()],
    })


@require_GET
@agent_required
def conversation_data(request, conversation_id: int):
    return JsonResponse(conversation_detail(_conversation_or_404(request, conversation_id)))


# --- JSON actions ---------------------------------------------------------------------------------------

def _action(handler):
    """POST, agent, access-checked conversation; ActionRefused becomes 409 with the reason."""

    @require_POST
    @agent_required
    @wraps(handler)
    def view(request, conversation_id: int):
        conversation = _conversation_or_404(request, conversation_id)
        try:
            handler(request, conversation, _payload(request))
        except services.ActionRefused as exc:
            return JsonResponse({"detail": str(exc)}, status=409)
        fresh = access_conversation(profile=request.agent, conversation_id=conversation.pk)
        return JsonResponse(conversation_detail(fresh) if fresh else {"id": conversation.pk, "gone": True})

    return view


@require_POST
@agent_required
def claim(request, conversation_id: int):
    """Like the other actions, except that losing a race answers 409 with the winner, not 404: once a
    colleague owns the conversation the access check alone would hide it."""
    taken = (Conversation.objects.filter(pk=conversation_id, state=Conversation.State.HUMAN)
             .exclude(agent_id=request.agent.user_id).select_related("agent").first())
    if taken is not None and taken.agent_id:
        return JsonResponse({"detail": _("Already taken by %(agent)s.") % {"agent": taken.agent.get_username()}},
                            status=409)
    return _claim(request, conversation_id)


@_action
def _claim(request, conversation, data):
    services.claim_conversation(conversation_id=conversation.pk, profile=request.agent, origin=_origin(request))


@_action
def reply(request, conversation, data):
    if data.get("canned"):  # a canned reply picked with "/": its attachment goes with the text
        send_canned_reply(conversation_id=conversation.pk, profile=request.agent, reply_id=data["canned"],
                          text=str(data.get("text", "")), origin=_origin(request))
        return
    services.reply_as_agent(conversation_id=conversation.pk, profile=request.agent, text=str(data.get("text", "")),
                            origin=_origin(request))


@_action
def attach(request, conversation, data):
    upload = request.FILES.get("file")
    if upload is None:
        raise services.ActionRefused(_("Choose a picture or file to send."))
    services.send_attachment_as_agent(conversation_id=conversation.pk, profile=request.agent, file=upload,
                                      origin=_origin(request))


@_action
def hand_back(request, conversation, data):
    services.hand_back_to_ai(conversation_id=conversation.pk, profile=request.agent, origin=_origin(request))


@_action
def set_status(request, conversation, data):
    services.set_ticket_status(conversation_id=conversation.pk, profile=request.agent,
                               to=str(data.get("status", "")), origin=_origin(request))


@_action
def close(request, conversation, data):
    services.close_conversation(conversation_id=conversation.pk, profile=request.agent, origin=_origin(request))


@_action
def note(request, conversation, data):
    services.add_note(conversation_id=conversation.pk, profile=request.agent, text=str(data.get("text", "")),
                      origin=_origin(request))


@_action
def reassign(request, conversation, data):
    target = AgentProfile.objects.filter(user_id=data.get("agent"), is_active=True).first()
    if target is None:
        raise services.ActionRefused(_("No such agent."))
    services.reassign_conversation(conversation_id=conversation.pk, to=target, by=request.agent,
                                   origin=_origin(request))


@_action
def move_team(request, conversation, data):
    """A supervisor moves the ticket to another team's queue ({"team": id}, or null for no team)."""
    team_id = data.get("team")
    team = None
    if team_id is not None:
        team = Team.objects.filter(pk=team_id).first() if type(team_id) is int and 0 < team_id < 2**63 else None
        if team is None:
            raise services.ActionRefused(_("No such team."))
    services.move_ticket_to_team(conversation_id=conversation.pk, team=team, by=request.agent,
                                 origin=_origin(request))


@_action
def promote(request, conversation, data):
    services.promote_to_knowledge(conversation_id=conversation.pk, profile=request.agent,
                                  question=str(data.get("question", "")), answer=str(data.get("answer", "")))
