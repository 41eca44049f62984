"""Labels on the agent screens: the tenant's labels (the conversation screen's picker) and putting one on a
conversation or taking it off (answered with the fresh conversation, like every action of tickets/views.py)."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.http import require_GET

from tickets.labels.selectors import all_labels
from tickets.labels.services import label_conversation, unlabel_conversation
from tickets.views import _action, _origin, agent_required


@require_GET
@agent_required
def labels(request):
    return JsonResponse({"labels": all_labels()})


@_action
def add_label(request, conversation, data):
    label_conversation(conversation_id=conversation.pk, label_id=data.get("label"), by=request.agent,
                       origin=_origin(request))


@_action
def remove_label(request, conversation, data):
    unlabel_conversation(conversation_id=conversation.pk, label_id=data.get("label"), by=request.agent,
                         origin=_origin(request))
