"""The chaos suite's own servers, started on this machine from the Debian binaries, each killable on purpose:

- Redis: a master, a replica and three Sentinels (`redis-server --sentinel`) watching them as `chaos`;
- PostgreSQL: a primary and a streaming standby (`initdb`, `pg_basebackup -R`), synchronous, so that a
  commit the primary acknowledged is on the standby too when it is promoted;
- RabbitMQ: a node of its own (its own node name, ports, Mnesia and log directories, config and an empty
  plugin list, so it shares nothing with the machine's node but epmd).

Every server runs as a benchkit.Child (its own process group, output in the run's log directory), so the run's
exit stops them all; their data lives in the run's temporary directory. PostgreSQL refuses to run as root: as
root, its processes drop to the `postgres` user with setpriv (no PAM session, no extra parent process).

Used by bench/chaos.py.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import psycopg
import redis
from benchkit import BenchError, Child

PG_BIN = Path(os.environ.get("CHAOS_PG_BIN", "/usr/lib/postgresql/15/bin"))
RABBITMQ_SBIN = Path(os.environ.get("CHAOS_RABBITMQ_SBIN", "/usr/lib/rabbitmq/bin"))
SENTINEL_MASTER = "chaos"


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no owner
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def require_free(ports: list[int]) -> None:
    busy = [p for p in ports if not port_free(p)]
    if busy:
        raise BenchError(f"ports {busy} are in use (another chaos run, or choose other ports with --port-base)")


def wait_for(predicate, *, timeout: float, what: str, child: Child | None = None, interval: float = 0.1) -> float:
    """Poll `predicate` every `interval` seconds until true; returns the seconds it took. Fails at the deadline or
    when `child` exits."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if child is not None and not child.alive():
            raise BenchError(f"{child.name} exited:\n{child.tail()}")
        if predicate():
            return time.monotonic() - start
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")


def kill_group(child: Child) -> None:
    """SIGKILL the child's whole process group at once (a machine dying, not a shutdown) and reap it."""
    try:
        os.killpg(child.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.proc.wait(10)


# -- Redis: master, replica, three Sentinels ------------------------------------------------------------------


class RedisSentinels:
    """Ports: master `base`, replica `base + 1`; Sentinels `sentinel_base` .. `sentinel_base + 2`."""

    def __init__(self, root: Path, log_dir: Path, children: dict[str, Child], *, base: int, sentinel_base: int):
        self.dir = root / "redis"
        self.dir.mkdir()
        self.log_dir, self.children = log_dir, children
        self.ports = {"redis-a": base, "redis-b": base + 1}
        self.sentinel_ports = [sentinel_base + k for k in range(3)]
        require_free([*self.ports.values(), *self.sentinel_ports])

    def start(self) -> None:
        master = self.ports["redis-a"]
        self._server("redis-a")
        self._server("redis-b", replica_of=master)
        for k, port in enumerate(self.sentinel_ports):
            conf = self.dir / f"sentinel-{k}.conf"
            # down after 1 s without an answer, quorum 2 of 3: a failover within a few seconds of a master's death.
            conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                            f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master} 2\n"
                            f"sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\n"
                            f"sentinel failover-timeout {SENTINEL_MASTER} 10000\n")
            self.children[f"sentinel-{k}"] = Child(f"sentinel-{k}", ["redis-server", str(conf), "--sentinel"],
                                                   dict(os.environ), self.log_dir)
        wait_for(lambda: self.replicas_of(master) >= 1, timeout=30, what="the Redis replica to sync")
        wait_for(lambda: all(self._sentinel_sees(p, master) for p in self.sentinel_ports), timeout=30,
                 what="the three Sentinels to agree on the master")

    def _server(self, name: str, replica_of: int | None = None) -> None:
        args = ["redis-server", "--port", str(self.ports[name]), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--dbfilename", f"{name}.rdb", "--save", "", "--appendonly", "no"]
        if replica_of:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self.children[name] = Child(name, args, dict(os.environ), self.log_dir)
        wait_for(lambda: self._ping(self.ports[name]), timeout=20, what=f"Redis {name}", child=self.children[name])

    @staticmethod
    def _ping(port: int) -> bool:
        try:
            with redis.Redis(port=port, socket_timeout=1) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def replicas_of(self, port: int) -> int:
        try:
            with redis.Redis(port=port, socket_timeout=1) as client:
                info = client.info("replication")
            return sum(1 for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)
                       and v.get("state") == "online")
        except redis.RedisError:
            return 0

    def _sentinel_sees(self, sentinel_port: int, master_port: int) -> bool:
        address = self.master_address(sentinel_port)
        return address is not None and address[1] == master_port

    def master_address(self, sentinel_port: int | None = None) -> tuple[str, int] | None:
        for port in [sentinel_port] if sentinel_port else self.sentinel_ports:
            try:
                with redis.Redis(port=port, socket_timeout=1, decode_responses=True) as client:
                    found = client.execute_command("SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER)
                if found:
                    return found[0], int(found[1])
            except redis.RedisError:
                continue
        return None

    def master_name(self) -> str:
        address = self.master_address()
        if address is None:
            raise BenchError("no Sentinel names a Redis master")
        return next(name for name, port in self.ports.items() if port == address[1])

    @property
    def sentinels(self) -> str:
        """The REDIS_SENTINELS setting: host:port,host:port,..."""
        return ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)

    def master_url(self, db: int = 0) -> str:
        host, port = self.master_address() or ("127.0.0.1", self.ports["redis-a"])
        return f"redis://{host}:{port}/{db}"

    def kill_master(self) -> tuple[str, int]:
        """SIGKILL the current master; returns its (name, port)."""
        name = self.master_name()
        kill_group(self.children[name])
        return name, self.ports[name]

    def failed_over(self, old_port: int) -> bool:
        """Every Sentinel names another master, and that one answers as a master."""
        addresses = [self.master_address(p) for p in self.sentinel_ports]
        if any(a is None or a[1] == old_port for a in addresses):
            return False
        try:
            with redis.Redis(port=addresses[0][1], socket_timeout=1) as client:
                return client.info("replication").get("role") == "master"
        except redis.RedisError:
            return False

    def rejoin(self, name: str) -> None:
        """Start the killed server again, empty; the Sentinels make it a replica of the new master."""
        self._server(name)
        new_master = self.master_address()[1]
        wait_for(lambda: self.replicas_of(new_master) >= 1, timeout=60,
                 what=f"{name} to rejoin as a replica of the new master")


# -- PostgreSQL: a primary and a synchronous streaming standby ------------------------------------------------


class PostgresPair:
    """Primary on `base` ("pg-a"), standby on `base + 1` ("pg-b"); trust authentication on loopback only."""

    def __init__(self, root: Path, log_dir: Path, children: dict[str, Child], *, base: int):
        for tool in ("initdb", "postgres", "pg_basebackup", "pg_ctl"):
            if not (PG_BIN / tool).exists():
                raise BenchError(f"{PG_BIN / tool} is missing (Debian: apt-get install postgresql-15; or set "
                                 "CHAOS_PG_BIN to the folder holding initdb, postgres, pg_basebackup, pg_ctl)")
        self.dir = root / "pg"
        self.dir.mkdir()
        self.log_dir, self.children = log_dir, children
        self.ports = {"pg-a": base, "pg-b": base + 1}
        require_free(list(self.ports.values()))
        self.primary = "pg-a"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse root
            user = pwd.getpwnam("postgres")
            self._as_postgres = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
            shutil.chown(self.dir, user.pw_uid, user.pw_gid)

    def _run(self, args: list[str]) -> None:
        result = subprocess.run([*self._as_postgres, *args], capture_output=True, text=True, timeout=300,
                                cwd=self.dir)
        if result.returncode != 0:
            raise BenchError(f"{Path(args[0]).name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")

    def start(self) -> None:
        primary = self.dir / "pg-a"
        self._run([str(PG_BIN / "initdb"), "-D", str(primary), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                   "--locale=C.UTF-8"])
        # A commit waits for the standby (synchronous_standby_names): what the primary acknowledged survives its
        # death. The promoted standby has no standby of its own, so it commits alone.
        self._server("pg-a", ["-c", "synchronous_standby_names=*"])
        self._run([str(PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.ports["pg-a"]), "-U",
                   "postgres", "-D", str(self.dir / "pg-b"), "-R", "-X", "stream"])
        self._server("pg-b", [])
        wait_for(self._streaming, timeout=30, what="the standby to stream from the primary")

    def _server(self, name: str, extra: list[str]) -> None:
        args = [*self._as_postgres, str(PG_BIN / "postgres"), "-D", str(self.dir / name), "-p", str(self.ports[name]),
                "-k", str(self.dir), "-c", "listen_addresses=127.0.0.1", "-c", "wal_level=replica",
                "-c", "max_wal_senders=5", "-c", "hot_standby=on", "-c", "max_connections=200",
                "-c", "application_name=" + name, *extra]
        self.children[name] = Child(name, args, dict(os.environ), self.log_dir)
        wait_for(lambda: self._accepts(name), timeout=60, what=f"PostgreSQL {name}", child=self.children[name])

    def _accepts(self, name: str) -> bool:
        try:
            with psycopg.connect(self.url("postgres", name), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def _streaming(self) -> bool:
        with psycopg.connect(self.url("postgres", "pg-a"), connect_timeout=2) as conn:
            return bool(conn.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' "
                                     "AND sync_state = 'sync'").fetchone()[0])

    def url(self, database: str, only: str | None = None) -> str:
        """The app's DATABASE_URL: both hosts, the primary found by target_session_attrs=read-write
        (config/database_url.py); `only` one server's URL instead."""
        if only:
            return f"postgresql://postgres@127.0.0.1:{self.ports[only]}/{database}"
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports.values())
        return f"postgresql://postgres@{hosts}/{database}?target_session_attrs=read-write"

    def kill_primary(self) -> str:
        """SIGKILL the primary's postmaster and every backend at once (its machine died)."""
        name = self.primary
        kill_group(self.children[name])
        return name

    def promote(self) -> str:
        """`pg_ctl promote` the standby (what an operator or Patroni does); returns its name."""
        standby = next(n for n in self.ports if n != self.primary)
        self._run([str(PG_BIN / "pg_ctl"), "promote", "-w", "-D", str(self.dir / standby)])
        self.primary = standby
        return standby


# -- RabbitMQ: a node of its own ------------------------------------------------------------------------------


class RabbitNode:
    """A RabbitMQ node `chaos-<port>@localhost` listening on 127.0.0.1:`port`, distribution on `dist_port`."""

    def __init__(self, root: Path, log_dir: Path, children: dict[str, Child], *, port: int, dist_port: int):
        server = RABBITMQ_SBIN / "rabbitmq-server"
        if not server.exists():
            raise BenchError(f"{server} is missing (Debian: apt-get install rabbitmq-server; or set "
                             "CHAOS_RABBITMQ_SBIN)")
        require_free([port, dist_port])
        self.dir = root / "rabbitmq"
        for sub in ("mnesia", "log", "home"):
            (self.dir / sub).mkdir(parents=True)
        self.log_dir, self.children = log_dir, children
        self.port, self.node = port, f"chaos-{port}@localhost"
        (self.dir / "rabbitmq-env.conf").write_text("")  # not the machine's (it names the machine's node)
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{port}\n")
        (self.dir / "enabled_plugins").write_text("[].\n")  # no management listener on the machine's port
        self.env = dict(os.environ)
        self.env.update(
            HOME=str(self.dir / "home"),  # its own Erlang cookie, for the server and rabbitmqctl alike
            RABBITMQ_NODENAME=self.node, RABBITMQ_NODE_IP_ADDRESS="127.0.0.1", RABBITMQ_NODE_PORT=str(port),
            RABBITMQ_DIST_PORT=str(dist_port), RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.dir / "log"), RABBITMQ_CONF_ENV_FILE=str(self.dir / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            RABBITMQ_PID_FILE=str(self.dir / "pid"), ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        self.starts = 0

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self) -> float:
        """Start (or start again, same Mnesia: durable queues and persistent messages survive); returns seconds."""
        self.starts += 1
        started = time.monotonic()
        child = Child(f"rabbitmq-{self.starts}", [str(RABBITMQ_SBIN / "rabbitmq-server")], self.env, self.log_dir)
        self.children["rabbitmq"] = child
        # await_startup fails at once while the node has not registered with epmd yet: ask until it answers.
        wait_for(lambda: self._ctl(["await_startup", "--timeout", "30"], timeout=40, child=child, check=False),
                 timeout=90, what="RabbitMQ to start", child=child)
        return time.monotonic() - started

    def stop(self) -> None:
        """A clean stop (what `systemctl restart` does first): the node closes its connections and exits."""
        child = self.children["rabbitmq"]
        self._ctl(["stop"], timeout=60, child=None)
        child.proc.wait(30)
        child.stop()

    def _ctl(self, args: list[str], *, timeout: float, child: Child | None, check: bool = True) -> bool:
        result = subprocess.run([str(RABBITMQ_SBIN / "rabbitmqctl"), "-n", self.node, *args], env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0 and not check:
            return False
        if result.returncode != 0:
            tail = child.tail() if child is not None else ""
            raise BenchError(f"rabbitmqctl {args[0]} failed:\n{result.stdout[-1500:]}\n{result.stderr[-1500:]}\n"
                             f"{tail}")
        return True
