"""Dramatiq tenant context: the enqueuing schema travels with every message.

On enqueue, the schema of the current database connection is recorded in the
message options (unless the sender set it explicitly, e.g. for on-commit sends
made after leaving a schema_context). On processing, the worker thread enters
that schema before the actor runs. A message without a schema, for an unknown
or suspended tenant, or for the public schema when the actor does not declare
`public_schema=True`, fails closed: it is rejected to the dead-letter queue and
the actor never runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import dramatiq
import structlog
from django.db import DatabaseError, connection, transaction
from django_tenants.utils import get_public_schema_name
from dramatiq.middleware import SkipMessage
from structlog.contextvars import bind_contextvars

from tenants import coalescing, publishing
from tenants.log_context import enqueue_options
from tenants.telemetry import carry_trace_context

SCHEMA_OPTION = "tenant_schema"
# A job whose tenant cannot be looked up (the database unreachable) is put back with these bounds.
LOOKUP_MAX_RETRIES = 20
LOOKUP_MAX_BACKOFF_MS = 60_000
logger = structlog.get_logger("tenants.dramatiq")


class TenantMiddleware(dramatiq.Middleware):
    @property
    def actor_options(self) -> set[str]:
        return {"public_schema", SCHEMA_OPTION}

    def before_enqueue(self, broker, message, delay):
        if message.options.get(SCHEMA_OPTION):
            return
        message.options[SCHEMA_OPTION] = connection.schema_name

    def before_process_message(self, broker, message):
        schema = message.options.get(SCHEMA_OPTION)
        tenant, reason = self._tenant_reconnecting(broker, message, schema)
        if reason:
            logger.error("dramatiq.tenant_rejected", tenant=schema, reason=reason)
            message.fail()
            raise SkipMessage(reason)
        bind_contextvars(tenant=schema)  # cleared by tenants.log_context.LogContextMiddleware
        if tenant is None:
            connection.set_schema(schema)
        else:  # the real row: code that shows the tenant's name needs no query of its own
            connection.set_tenant(tenant)

    def _tenant_reconnecting(self, broker, message, schema: str | None):
        """`_tenant`, once more on a new connection when the first lookup finds it dead (PostgreSQL failed over,
        docs/CHAOS.md). Dramatiq runs the actor even when a middleware raises, so a lookup that fails again
        must not raise: the job is put back with a delay, as Retries would, and this delivery skipped."""
        try:
            return self._tenant(broker, message, schema)
        except DatabaseError:
            connection.close()
        try:
            return self._tenant(broker, message, schema)
        except DatabaseError as error:
            connection.close()
            retries = message.options.get("retries", 0)
            logger.warning("dramatiq.tenant_lookup_failed", tenant=schema, retries=retries, error=repr(error))
            if retries >= LOOKUP_MAX_RETRIES:
                message.fail()
                raise SkipMessage("tenant lookup failed too often") from error
            delay = min(1000 * 2 ** retries, LOOKUP_MAX_BACKOFF_MS)
            broker.enqueue(message.copy(options={**message.options, "retries": retries + 1}), delay=delay)
            raise SkipMessage("tenant lookup failed: put back") from error

    def _tenant(self, broker, message, schema: str | None):
        """(the active tenant of `schema`, None) or (None, why the message is refused);
        (None, None) for the public schema."""
        # Not at the top: django_dramatiq loads this middleware while the app registry is still empty.
        from tenants.resolution import tenant_for_schema

        if not schema:
            return None, "message carries no tenant schema"
        if schema == get_public_schema_name():
            actor = broker.get_actor(message.actor_name)
            refused = not actor.options.get("public_schema")
            return None, "tenant actor enqueued from public schema" if refused else None
        connection.set_schema_to_public()
        tenant = tenant_for_schema(schema)  # this process's copy while the tenant registry is unchanged
        if tenant is None:
            return None, "unknown tenant schema"
        if not tenant.is_active:
            return None, "tenant suspended"
        return tenant, None

    def after_process_message(self, broker, message, *, result=None, exception=None):
        self._leave_schema()

    def after_skip_message(self, broker, message):
        self._leave_schema()

    @staticmethod
    def _leave_schema():
        connection.set_schema_to_public()


@dataclass(frozen=True)
class Job:
    """A Dramatiq actor known by name and queue.

    Services enqueue a Job without importing the actor that runs it (the actor imports the
    services, so importing it back would be a cycle); the actor is declared from the same Job
    (`@JOB.actor(...)`), so name and queue cannot drift apart. Each app lists its Jobs in its
    `jobs.py`, the one module that enqueues them.
    """

    actor_name: str
    queue_name: str

    def actor(self, **options):
        """Declare the function that runs this job (a `dramatiq.actor` with this name and queue)."""
        return dramatiq.actor(actor_name=self.actor_name, queue_name=self.queue_name, **options)

    def send_on_commit(self, *args, delay_seconds: float | None = None) -> None:
        """Enqueue `actor(*args)` once the current transaction commits (at once outside one).

        The schema is captured now, not when the callback fires: by then the code may have
        left its schema_context (docs/DESIGN_RULES.md: enqueue on commit, ids only).
        """
        self._publish_on_commit(args, delay_seconds=delay_seconds)

    def ask_on_commit(self) -> None:
        """Once the transaction commits, make sure one job of this tenant is on its way: publish one unless
        another is already waiting (tenants/coalescing.py). For jobs without arguments that work a backlog."""
        schema = connection.schema_name
        self._publish_on_commit((), when=lambda: coalescing.ask(schema, self.actor_name))

    def force_on_commit(self) -> None:
        """Publish the tenant's job whatever the mark says (the sweeper: the job it stood for was lost)."""
        schema = connection.schema_name
        self._publish_on_commit((), when=lambda: coalescing.force(schema, self.actor_name))

    def take_mark(self) -> None:
        """The job runs and is about to read its backlog: later work asks for a job of its own."""
        coalescing.take(connection.schema_name, self.actor_name)

    def _publish_on_commit(self, args: tuple, *, delay_seconds: float | None = None, when=None) -> None:
        options = {SCHEMA_OPTION: connection.schema_name, **enqueue_options()}  # and the log's trace_id
        carry_trace_context(options)  # the span that asks for the job is its parent (tenants/telemetry.py)
        message = dramatiq.Message(queue_name=self.queue_name, actor_name=self.actor_name, args=args, kwargs={},
                                   options=options)
        delay = None if delay_seconds is None else max(int(delay_seconds * 1000), 0)
        # robust: a broker outage must not turn a committed write into an error for the caller (a
        # WeCom callback would get a 500 for a stored message); the sweepers re-enqueue whatever
        # was stored but never enqueued.
        # RabbitMQ: through the process's publishing thread and its one connection (tenants/publishing.py).
        def publish():
            if when is None or when():
                publishing.enqueue(message, delay=delay)

        transaction.on_commit(publish, robust=True)
