"""The search page of the agent screens (agent/search/) and its CSV download: the filters of
tickets/search/forms.py over what the signed-in agent may see. A bad filter re-renders the page with the
reason next to the field (400), never an error page."""

from __future__ import annotations

from collections.abc import Callable

from django.core.paginator import Paginator
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from tickets.search.export import TooManyToExport, csv_response, export_ids
from tickets.search.forms import ConversationSearchForm, tenant_time_zone
from tickets.search.selectors import results, search, with_result_relations
from tickets.views import agent_required

PAGE_SIZE = 25


def _page(request, form, *, found=None, page=None, refusal: str = "", status: int = 200):
    zone = tenant_time_zone()
    query = request.GET.copy()
    query.pop("page", None)
    with timezone.override(zone):  # times on the page in the tenant's zone, as the dates were meant
        return render(request, "agent/search.html", {
            "agent": request.agent, "form": form, "results": found, "page": page, "refusal": refusal,
            "query": query.urlencode(), "zone": zone.key}, status=status)


def conversation_link(request) -> Callable[[int], str]:
    """id -> the conversation's absolute address on the agent screens, resolved now (the tenant's path prefix
    is the request's) for the CSV, which is written after the view returned."""
    before, after = request.build_absolute_uri(reverse("agent-conversation", args=[0])).rsplit("/0/", 1)
    return lambda conversation_id: f"{before}/{conversation_id}/{after}"


@require_GET
@agent_required
def search_page(request):
    form = ConversationSearchForm(request.GET)
    if not form.is_valid():
        return _page(request, form, status=400)
    criteria = form.criteria()
    page = Paginator(with_result_relations(search(criteria, profile=request.agent)), PAGE_SIZE).get_page(
        request.GET.get("page"))
    return _page(request, form, found=results(list(page.object_list), criteria), page=page)


@require_GET
@agent_required
def search_export(request):
    form = ConversationSearchForm(request.GET)
    if not form.is_valid():
        return _page(request, form, status=400)
    criteria = form.criteria()
    try:
        ids = export_ids(search(criteria, profile=request.agent))
    except TooManyToExport as exc:
        return _page(request, form, refusal=str(exc), status=400)
    return csv_response(request, ids, criteria, zone=tenant_time_zone(), link=conversation_link(request))
