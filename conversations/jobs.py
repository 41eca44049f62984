"""Every job of the message path is enqueued here, and only here.

Jobs carry ids only; the tenant's schema travels in the message options (tenants/dramatiq.py)
and every send happens on commit, so a job never runs before the rows it names exist. A job
lost with the broker is found again by the scheduler's sweepers (conversations/schedule.py).
The actors that run these jobs are in conversations/actors.py.
"""

from __future__ import annotations

from tenants.dramatiq import Job

PROCESS_INBOUND = Job("conversations.process_inbound", "inbound")
ANSWER_BACKLOG = Job("conversations.answer_backlog", "inbound")
DELIVER_OUTBOUND = Job("conversations.deliver_outbound", "outbound")
SUGGEST_REPLY = Job("conversations.suggest_reply", "ai")
PULL_KF = Job("conversations.pull_kf", "kf_sync")
# Its own queue: a slow download must not hold up answering or delivery.
MEDIA_DOWNLOAD = Job("conversations.download_media", "media")
KF_HANDOFF_DELIVERED = Job("conversations.kf_handoff_delivered", "outbound")
# On the media queue with the downloads: reads from WeCom that must not hold up answering or delivery.
REFRESH_PROFILES = Job("conversations.refresh_profiles", "media")
# On the ai queue: grouping may call the tenant's embeddings endpoint.
COLLECT_KNOWLEDGE_GAPS = Job("conversations.collect_knowledge_gaps", "ai")
# With the knowledge base's indexing: background segmentation that must not hold up the message path.
INDEX_MESSAGES = Job("conversations.index_messages", "kb")
# Its own queue: a slow or failing receiver of the tenant's integrator must not hold up the message path.
DELIVER_WEBHOOK = Job("conversations.deliver_webhook", "webhooks")


def enqueue_processing(inbound_id: int) -> None:
    """A stored event: pull (微信客服 signal), act on it (enter_session, ...) or record it."""
    PROCESS_INBOUND.send_on_commit(inbound_id)


def ask_for_answering() -> None:
    """A customer message is stored: one answer_backlog job of the tenant answers it with the others waiting,
    unless one is already on its way (tenants/coalescing.py); the claimer takes the mark before it reads."""
    ANSWER_BACKLOG.ask_on_commit()


def force_answering() -> None:
    """The sweeper found customer messages pending long after their enqueue: the job that was to answer them
    is lost, so publish one whatever the mark says."""
    ANSWER_BACKLOG.force_on_commit()


def answering_mark_taken() -> None:
    """A claimer is about to read the backlog: customer messages stored from now on ask for a job again."""
    ANSWER_BACKLOG.take_mark()


def enqueue_backlog(*, delay_seconds: float) -> None:
    """Answer the tenant's pending messages again later (a shared rate limit deferred them, or the
    claiming job ran out of time)."""
    ANSWER_BACKLOG.send_on_commit(delay_seconds=delay_seconds)


def enqueue_delivery(contact_id: int, *, delay_seconds: float | None = None) -> None:
    """Deliver the contact's waiting ledger rows (after `delay_seconds`, when its next row must wait)."""
    DELIVER_OUTBOUND.send_on_commit(contact_id, delay_seconds=delay_seconds)


def enqueue_suggestion(inbound_id: int) -> None:
    """Draft the AI's suggested reply for the agent who owns the message's conversation."""
    SUGGEST_REPLY.send_on_commit(inbound_id)


def enqueue_kf_pull(*, app_id: int, open_kfid: str) -> None:
    """Pull one 微信客服 account now (operator's action when callbacks were lost)."""
    PULL_KF.send_on_commit(app_id, open_kfid)


def enqueue_media_download(inbound_id: int) -> None:
    """Copy the picture, voice, video or file of a stored inbound message from WeCom into storage."""
    MEDIA_DOWNLOAD.send_on_commit(inbound_id)


def enqueue_profile_refresh(contact_ids: list[int]) -> None:
    """Fetch these contacts' profiles (name, avatar) from WeCom (services/profiles.py)."""
    REFRESH_PROFILES.send_on_commit(list(contact_ids))


def enqueue_kf_handoff_delivered(conversation_id: int) -> None:
    """WeCom servicers mode: the handoff message is out, so the session may now go to WeCom's servicers."""
    KF_HANDOFF_DELIVERED.send_on_commit(conversation_id)


def enqueue_gap_collection() -> None:
    """Group the unanswered questions among the messages processed since the last collection."""
    COLLECT_KNOWLEDGE_GAPS.send_on_commit()


def enqueue_message_indexing() -> None:
    """Add the settled messages after the watermark to the search index (conversations/search/indexing.py)."""
    INDEX_MESSAGES.send_on_commit()


def enqueue_webhook_delivery(delivery_id: int, *, delay_seconds: float | None = None) -> None:
    """POST one event to one endpoint (after `delay_seconds`, when it is a retry)."""
    DELIVER_WEBHOOK.send_on_commit(delivery_id, delay_seconds=delay_seconds)
