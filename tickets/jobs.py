"""The human side's jobs, enqueued here only (on commit, ids only); tickets/actors.py runs them."""

from __future__ import annotations

from tenants.dramatiq import Job

END_KF_SESSION = Job("tickets.end_kf_session", "outbound")


def enqueue_end_kf_session(*, conversation_id: int, ticket_id: int) -> None:
    """End the conversation's 微信客服 session and send the closing message, after commit."""
    END_KF_SESSION.send_on_commit(conversation_id, ticket_id)
