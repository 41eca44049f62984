"""A job's tenant lookup when the database connection dies under it (a PostgreSQL failover): the middleware
reconnects once, and when the database stays away it puts the job back instead of letting the actor run
without its tenant (Dramatiq runs the actor even when a middleware raises)."""

from __future__ import annotations

import dramatiq
import psycopg
import pytest
from django.db import connection
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import SkipMessage
from psycopg import sql
from structlog.contextvars import clear_contextvars

from tenants.dramatiq import SCHEMA_OPTION, TenantMiddleware
from tenants.registry_cache import REGISTRY


@pytest.fixture
def stub_broker():
    broker = StubBroker(middleware=[])
    broker.declare_queue("default")
    yield broker
    clear_contextvars()  # the tenant the middleware bound for the log (LogContextMiddleware clears it in a worker)


def _message() -> dramatiq.Message:
    return dramatiq.Message(queue_name="default", actor_name="probe", args=(), kwargs={},
                            options={SCHEMA_OPTION: "alpha"})


def _admin_sql(sql: str, params=()) -> None:
    """On a connection of its own (Django's pool does not hand it out)."""
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"], port=db["PORT"] or 5432, dbname="postgres", user=db["USER"],
                         password=db["PASSWORD"] or None, autocommit=True) as admin:
        admin.execute(sql, params)


def _terminate_this_connection() -> None:
    _admin_sql("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])


def test_a_connection_killed_under_the_lookup_is_replaced_and_the_job_runs_in_its_tenant(committed_db,
                                                                                        stub_broker):
    REGISTRY.changed()  # alpha is not in this process's copy of the tenants: the lookup asks the database
    connection.ensure_connection()
    _terminate_this_connection()

    TenantMiddleware().before_process_message(stub_broker, _message())

    assert connection.schema_name == "alpha" and connection.tenant.schema_name == "alpha"
    assert stub_broker.queues["default.DQ"].qsize() == 0


def test_a_database_that_stays_away_puts_the_job_back_with_a_delay(committed_db, stub_broker):
    REGISTRY.changed()  # alpha is not in this process's copy of the tenants (tenants/registry_cache.py): looked up
    connection.ensure_connection()
    database = sql.Identifier(connection.settings_dict["NAME"])
    # The database refuses new connections and every one open is cut (the pool's idle ones too).
    _admin_sql(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(database))
    try:
        _admin_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                   [connection.settings_dict["NAME"]])
        with pytest.raises(SkipMessage):
            TenantMiddleware().before_process_message(stub_broker, _message())
    finally:
        _admin_sql(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(database))
        connection.close_pool()  # a fresh pool: the old one may still be backing off its reconnects

    delayed = stub_broker.queues["default.DQ"]
    assert delayed.qsize() == 1
    again = dramatiq.Message.decode(delayed.get())
    assert again.options["retries"] == 1 and again.options[SCHEMA_OPTION] == "alpha"
    assert again.options["eta"] > 0
    assert connection.schema_name != "alpha"  # the actor would not run in the tenant: this delivery is skipped
