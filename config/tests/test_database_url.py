"""DATABASE_URL with a host list (config/database_url.py): parsed into libpq's comma-separated hosts and ports,
and a connection with such a list skips a host that does not answer and lands on the read-write server — what
finds a promoted standby after a PostgreSQL failover."""

from __future__ import annotations

import psycopg
from django.conf import settings

from config.database_url import parse


def test_a_host_list_becomes_libpqs_lists_and_its_options_stay():
    config = parse("postgresql://desk:s3cret@pg-a:5432,pg-b:6432,pg-c/wecomdesk?target_session_attrs=read-write")
    assert (config["HOST"], config["PORT"]) == ("pg-a,pg-b,pg-c", "5432,6432,5432")
    assert (config["USER"], config["PASSWORD"], config["NAME"]) == ("desk", "s3cret", "wecomdesk")
    assert config["OPTIONS"] == {"target_session_attrs": "read-write"}


def test_a_single_host_url_is_parsed_as_before():
    config = parse("postgresql://postgres@127.0.0.1:5432/wecomdesk")
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("127.0.0.1", 5432, "wecomdesk")


def test_a_connection_skips_a_host_that_does_not_answer_and_finds_the_read_write_server():
    db = settings.DATABASES["default"]
    url = (f"postgresql://{db['USER']}@127.0.0.1:1,{db['HOST']}:{db['PORT']}/{db['NAME']}"
           "?target_session_attrs=read-write&connect_timeout=3")
    config = parse(url)
    with psycopg.connect(host=config["HOST"], port=config["PORT"], dbname=config["NAME"], user=config["USER"],
                         password=db.get("PASSWORD") or None, **config["OPTIONS"]) as conn:
        assert conn.info.port == int(db["PORT"])
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
