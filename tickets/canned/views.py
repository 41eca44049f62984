"""Canned replies on the agent screens: the JSON "/" list of the reply box (tickets/static/tickets/canned.js;
sending one is the reply action with a `canned` id, tickets/views.py) and the page where an agent manages
their own replies."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tickets.canned.models import CannedReply
from tickets.canned.services import replies_for
from tickets.views import _conversation_or_404, agent_required


@require_GET
@agent_required
def canned_replies(request, conversation_id: int):
    conversation = _conversation_or_404(request, conversation_id)
    return JsonResponse({"replies": replies_for(profile=request.agent, conversation=conversation)})


# --- the agent's own replies: a plain page of forms (agent/canned/) -------------------------------------------

class OwnReplyForm(forms.ModelForm):
    """An agent's own reply; the owner is the signed-in agent, never a form field."""

    class Meta:
        model = CannedReply
        fields = ["shortcode", "title", "text", "attachment", "enabled"]
        widgets = {"text": forms.Textarea(attrs={"rows": 4})}

    def __init__(self, *args, owner, **kwargs):
        super().__init__(*args, **kwargs)
        self.instance.owner = owner

    def validate_unique(self):
        # Django skips constraints on fields the form lacks (owner): one shortcode per agent is checked here.
        try:
            self.instance.validate_constraints()
        except ValidationError as exc:
            self.add_error("shortcode", exc.messages)


def _own_or_404(request, reply_id: int) -> CannedReply:
    reply = CannedReply.objects.filter(pk=reply_id, owner_id=request.agent.user_id).first()
    if reply is None:
        raise Http404("canned reply not found")
    return reply


def _page(request, form, editing=None, status=200):
    mine = CannedReply.objects.filter(owner_id=request.agent.user_id).order_by("shortcode", "id")
    shared = CannedReply.objects.filter(owner__isnull=True, enabled=True).order_by("shortcode", "id")
    return render(request, "agent/canned.html", {"agent": request.agent, "form": form, "editing": editing,
                                                 "mine": mine, "shared": shared}, status=status)


@require_http_methods(["GET", "POST"])
@agent_required
def my_replies(request):
    """The agent's own canned replies (add, edit, delete) and the shared ones, read-only."""
    if request.method == "POST":
        form = OwnReplyForm(request.POST, request.FILES, owner=request.user)
        if form.is_valid():
            form.save()
            messages.success(request, _("Canned reply saved."))
            return redirect("agent-canned")
        return _page(request, form, status=400)
    return _page(request, OwnReplyForm(owner=request.user))


@require_http_methods(["GET", "POST"])
@agent_required
def edit_reply(request, reply_id: int):
    reply = _own_or_404(request, reply_id)
    if request.method == "POST":
        form = OwnReplyForm(request.POST, request.FILES, instance=reply, owner=request.user)
        if form.is_valid():
            form.save()
            messages.success(request, _("Canned reply saved."))
            return redirect("agent-canned")
        return _page(request, form, editing=reply, status=400)
    return _page(request, OwnReplyForm(instance=reply, owner=request.user), editing=reply)


@require_POST
@agent_required
def delete_reply(request, reply_id: int):
    _own_or_404(request, reply_id).delete()
    messages.success(request, _("Canned reply deleted."))
    return redirect("agent-canned")
