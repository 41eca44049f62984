"""The human side's jobs, enqueued here only (on commit, ids only); tickets/actors.py runs them."""

from __future__ import annotations

from tenants.dramatiq import Job

SYNC_KF_SESSION_STATE = Job("tickets.sync_kf_session_state", "outbound")


def enqueue_kf_session_state(*, conversation_id: int, ticket_id: int, state: int, servicer: str = "") -> None:
    """Move the conversation's 微信客服 session to `state` (service_state/trans) after commit."""
    SYNC_KF_SESSION_STATE.send_on_commit(conversation_id, ticket_id, state, servicer)
