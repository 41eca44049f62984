"""DATABASE_URL -> Django's DATABASES["default"], multi-host URLs included.

PostgreSQL's failover answer is a list of hosts and `target_session_attrs`: libpq (and psycopg) try the hosts in
order and keep the first that accepts, with `read-write` the one that is the primary, so after a standby is
promoted new connections find it without a configuration change:

    postgresql://user:pass@pg-a:5432,pg-b:5432/wecomdesk?target_session_attrs=read-write

dj-database-url does not read host lists, so the list is taken out of the URL, the rest parsed as usual, and the
hosts and ports given to the driver as libpq's comma-separated lists (HOST "pg-a,pg-b", PORT "5432,5432").
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import dj_database_url


def parse(url: str) -> dict:
    parts = urlsplit(url)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    if "," not in hostlist:
        return dj_database_url.parse(url)
    hosts, ports = [], []
    for item in hostlist.split(","):
        host, _, port = item.rpartition(":") if item.count(":") == 1 else (item, "", "")
        hosts.append(host or item)
        ports.append(port or "5432")
    first = f"{userinfo}@{hosts[0]}" if userinfo else hosts[0]
    config = dj_database_url.parse(urlunsplit(parts._replace(netloc=first)))
    config["HOST"] = ",".join(hosts)
    config["PORT"] = ",".join(ports)
    return config
