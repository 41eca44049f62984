"""TENANT_LIMIT_SET_CALLS: `SET search_path` once per connection use and schema (config/settings/base.py).

Skipping the SET is only safe if the path the wrapper believes in is the path the session has. These tests break
that belief every way it can break (another schema, a rollback, a savepoint's rollback, a pooled connection that
another user left on another path) and check which schema the next query reads.
"""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context


def session_path() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('search_path')")
        return cursor.fetchone()[0]


def sets(queries: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in queries.captured_queries if query["sql"].startswith("SET search_path")]


@pytest.mark.django_db
def test_one_set_per_schema_not_per_query(tenant_a, tenant_b):
    with CaptureQueriesContext(connection) as queries:
        with schema_context("alpha"):
            paths = [session_path() for _ in range(3)]
        with schema_context("beta"):
            paths.append(session_path())

    assert paths == ['alpha, public'] * 3 + ['beta, public']
    # the schema_context's exit to public issues nothing: no query ran there
    assert sets(queries) == ['SET search_path = "alpha","public"', 'SET search_path = "beta","public"']


class Boom(Exception):
    pass


def test_a_rollback_that_undid_the_set_is_followed_by_a_new_one(tenant_a, committed_db):
    connection.close()  # a fresh connection use: the first query of the schema will SET
    with schema_context("alpha"):
        with pytest.raises(Boom), transaction.atomic():
            assert session_path() == 'alpha, public'  # the SET ran inside this transaction
            raise Boom  # ROLLBACK: PostgreSQL undoes the SET

        with CaptureQueriesContext(connection) as queries:
            assert session_path() == 'alpha, public'
        assert len(sets(queries)) == 1


@pytest.mark.django_db
def test_a_savepoint_rollback_that_undid_the_set_is_followed_by_a_new_one(tenant_a):
    # The test runs in a transaction: the inner atomic is a savepoint.
    connection.set_schema("alpha")
    with pytest.raises(Boom), transaction.atomic():
        assert session_path() == 'alpha, public'
        raise Boom  # ROLLBACK TO SAVEPOINT undoes the SET made after the savepoint

    assert session_path() == 'alpha, public'


def test_a_pooled_connection_left_on_another_path_is_set_again(tenant_a, tenant_b, committed_db):
    with schema_context("alpha"):
        assert session_path() == 'alpha, public'
        # Another user of the pooled connection leaves it on beta's path behind the wrapper's back ...
        with connection.cursor() as cursor:
            cursor.execute('SET search_path = "beta", "public"')
        connection.close()  # ... and hands it back to the pool

        # The next use of a pooled connection in alpha reads alpha, whichever connection the pool gives
        assert session_path() == 'alpha, public'
