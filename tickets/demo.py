"""The demo tenant's agent login (`manage.py demo`)."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from tickets.models import AgentProfile


def ensure_demo_agent(*, email: str) -> None:
    """The demo admin is also a supervisor on the agent screens."""
    user = get_user_model().objects.get(username=email)
    AgentProfile.objects.get_or_create(user=user, defaults={"role": AgentProfile.Role.SUPERVISOR,
                                                            "display_name": "Demo 客服主管",
                                                            "wecom_userid": "demo_servicer"})
