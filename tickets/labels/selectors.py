"""Reads of labels for the screens and the API: the tenant's labels, and those of given conversations."""

from __future__ import annotations

from collections import defaultdict

from tickets.labels.models import Label


def label_item(label: Label) -> dict:
    return {"id": label.pk, "name": label.name, "color": label.color}


def all_labels() -> list[dict]:
    return [label_item(label) for label in Label.objects.order_by("name")]


def labels_by_conversation(conversation_ids) -> dict[int, list[dict]]:
    """{conversation id: its labels by name} in one query (a conversation without labels: [])."""
    found: dict[int, list[dict]] = defaultdict(list)
    links = (Label.conversations.through.objects.filter(conversation_id__in=list(conversation_ids))
             .select_related("label").order_by("label__name"))
    for link in links:
        found[link.conversation_id].append(label_item(link.label))
    return {conversation_id: found.get(conversation_id, []) for conversation_id in conversation_ids}
