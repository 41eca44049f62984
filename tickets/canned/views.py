"""The agent screens' JSON read of canned replies: the "/" list of the reply box (tickets/static/tickets/
canned.js). Sending one is the reply action with a `canned` id (tickets/views.py)."""

from __future__ import annotations

from django.http import JsonResponse
from django.views.decorators.http import require_GET

from tickets.canned.services import replies_for
from tickets.views import _conversation_or_404, agent_required


@require_GET
@agent_required
def canned_replies(request, conversation_id: int):
    conversation = _conversation_or_404(request, conversation_id)
    return JsonResponse({"replies": replies_for(profile=request.agent, conversation=conversation)})
