"""Actors of the human side: thin adapters over tickets.services (jobs enqueued by tickets/jobs.py).

Redelivery is harmless: a session already ended is not ended twice (the timeline says so) and the
closing message has one ledger row per ticket.
"""

from __future__ import annotations

from tickets.jobs import END_KF_SESSION
from tickets.services import end_kf_session


@END_KF_SESSION.actor(max_retries=5)
def end_kf_session_job(conversation_id: int, ticket_id: int) -> None:
    end_kf_session(conversation_id=conversation_id, ticket_id=ticket_id)
