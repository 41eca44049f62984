"""POST bodies for admin change forms, filled from the current row so a test states only what it changes."""

from __future__ import annotations

from django_tenants.utils import schema_context

from conversations.models import DeskSettings

DESK_FIELDS = ("conversation_idle_minutes", "context_turns", "user_rate_limit", "user_rate_window_seconds",
               "tenant_rate_limit", "tenant_rate_window_seconds", "rate_limit_notice", "handoff_message",
               "max_consecutive_fallbacks", "knowledge_top_k", "knowledge_min_score", "welcome_message",
               "closing_message", "non_text_policy", "non_text_reply", "feedback_prompt", "feedback_thanks",
               "inactivity_warn_minutes", "inactivity_warning", "inactivity_close_minutes")
DESK_CHECKBOXES = ("answer_feedback", "mask_sensitive_input", "inactivity_close")  # posted only when ticked


def desk_settings_url(schema: str = "alpha") -> str:
    with schema_context(schema):
        return f"/t/{schema}/admin/conversations/desksettings/{DeskSettings.current().pk}/change/"


def desk_settings_form(schema: str = "alpha", **overrides) -> dict:
    """The desk settings form as the admin shows it now, with `overrides` applied."""
    with schema_context(schema):
        desk = DeskSettings.current()
    data = {name: getattr(desk, name) for name in DESK_FIELDS}
    for field in ("handoff_keywords", "feedback_helpful_keywords", "feedback_unhelpful_keywords"):
        data[field] = "\n".join(getattr(desk, field))
    data.update({field: "on" for field in DESK_CHECKBOXES if getattr(desk, field)})
    data.update(overrides)
    return data
