"""The pgvector extension in the public schema, when the server has it (kb/vectors.py uses it if present).

Guarded: a server without the package, or a role not allowed to create extensions, migrates on and the
vector search stays exact in-process. scripts/ensure_pgvector.sh installs the package for `make test`.
"""

from django.db import migrations

CREATE_IF_AVAILABLE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS vector SCHEMA public;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pgvector is available but this role cannot create it: vector search stays in-process';
        END;
    END IF;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]

    # Not dropped on the way back: tenants' side tables may still use the type.
    operations = [migrations.RunSQL(CREATE_IF_AVAILABLE, reverse_sql=migrations.RunSQL.noop)]
