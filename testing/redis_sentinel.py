"""A Redis master, one replica and three Sentinels on loopback, as real `redis-server` processes, for the tests
of config/redis_sentinel.py (and bench/chaos.py): start, kill the master, wait for the Sentinels' failover.

The Sentinels decide fast (a master unanswering for DOWN_AFTER_MS is down; quorum 2 of 3), so a failover
takes a few seconds instead of production's 30 s or more. No Django here: the chaos bench uses it as is.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

MASTER_NAME = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
QUORUM = 2
# Our share of ports on a machine that other runs use too: servers from 6400, Sentinels from 26400.
SERVER_PORTS = range(6400, 6500)
SENTINEL_PORTS = range(26400, 26500)


def redis_server_binary() -> str:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise RuntimeError("redis-server not found (apt-get install redis-server)")
    return binary


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(candidates: range, count: int, taken: set[int] = frozenset()) -> list[int]:
    """`count` ports of `candidates` nobody listens on now (first free ones, from a pid-dependent start so
    two runs started at once rarely try the same)."""
    start = os.getpid() % len(candidates)
    ordered = [*candidates[start:], *candidates[:start]]
    ports = [port for port in ordered if port not in taken and _port_is_free(port)][:count]
    if len(ports) < count:
        raise RuntimeError(f"fewer than {count} free ports in {candidates}")
    return ports


@dataclass
class _Server:
    name: str
    port: int
    process: subprocess.Popen
    log: Path


@dataclass
class SentinelCluster:
    """Once `start()`ed: `sentinels` [(host, port)], `env`, `master_port`; `kill_master()`, `wait_for_failover()`."""

    directory: Path
    master_name: str = MASTER_NAME
    servers: dict[str, _Server] = field(default_factory=dict)

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", server.port) for name, server in self.servers.items() if name.startswith("sentinel")]

    @property
    def sentinels_setting(self) -> str:
        """The REDIS_SENTINELS value of this cluster."""
        return ",".join(f"{host}:{port}" for host, port in self.sentinels)

    @property
    def env(self) -> dict[str, str]:
        """Environment of a process whose Redis clients go through these Sentinels."""
        return {"REDIS_SENTINELS": self.sentinels_setting, "REDIS_SENTINEL_MASTER": self.master_name}

    def start(self) -> SentinelCluster:
        self.directory.mkdir(parents=True, exist_ok=True)
        master_port, replica_port = free_ports(SERVER_PORTS, 2)
        self._start("master", master_port, [])
        self._start("replica", replica_port, ["--replicaof", "127.0.0.1", str(master_port)])
        self._wait(lambda: self.client(replica_port).info("replication").get("master_link_status") == "up",
                   "the replica to sync with the master")
        for i, port in enumerate(free_ports(SENTINEL_PORTS, 3)):
            config = self.directory / f"sentinel-{i}.conf"  # Sentinel rewrites its config file: one each
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor {self.master_name} 127.0.0.1 {master_port} {QUORUM}\n"
                f"sentinel down-after-milliseconds {self.master_name} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {self.master_name} {FAILOVER_TIMEOUT_MS}\n"
                f"sentinel parallel-syncs {self.master_name} 1\n")
            self._start(f"sentinel-{i}", port, [], config=config)
        # Ready when every Sentinel knows the replica and the two other Sentinels.
        self._wait(self._sentinels_see_each_other, "the Sentinels to discover the replica and each other")
        return self

    def _start(self, name: str, port: int, args: list[str], config: Path | None = None) -> None:
        log = self.directory / f"{name}.log"
        command = [redis_server_binary()]
        if config is not None:
            command += [str(config), "--sentinel"]
        else:
            command += ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                        "--dir", str(self.directory), "--dbfilename", f"{name}.rdb", *args]
        command += ["--logfile", str(log)]
        process = subprocess.Popen(command, cwd=self.directory, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.servers[name] = _Server(name, port, process, log)
        self._wait(lambda: self._answers(port), f"{name} on port {port}")

    @staticmethod
    def client(port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)

    def _answers(self, port: int) -> bool:
        try:
            return bool(self.client(port).ping())
        except redis.RedisError:
            return False

    def _sentinels_see_each_other(self) -> bool:
        for _, port in self.sentinels:
            master = self.client(port).execute_command("SENTINEL", "MASTER", self.master_name)
            info = dict(zip(master[::2], master[1::2], strict=False))
            if int(info[b"num-slaves"]) < 1 or int(info[b"num-other-sentinels"]) < len(self.sentinels) - 1:
                return False
        return True

    def master_address(self) -> tuple[str, int]:
        """The master as the first Sentinel that answers names it."""
        for _, port in self.sentinels:
            try:
                host, master_port = self.client(port).execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
                return host.decode(), int(master_port)
            except redis.RedisError:
                continue
        raise RuntimeError("no Sentinel answers")

    @property
    def master_port(self) -> int:
        return self.master_address()[1]

    def kill_master(self) -> int:
        """SIGKILL the current master (no shutdown, no save); its port."""
        port = self.master_port
        server = next(server for server in self.servers.values() if server.port == port)
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
        return port

    def wait_for_failover(self, old_port: int, timeout: float = 30) -> int:
        """Wait until every Sentinel names a new master and it answers as a master; its port."""
        def promoted() -> int | None:
            ports = set()
            for _, port in self.sentinels:
                host, master_port = self.client(port).execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
                ports.add(int(master_port))
            if len(ports) != 1 or old_port in ports:
                return None
            (new_port,) = ports
            return new_port if self.client(new_port).info("replication")["role"] == "master" else None

        return self._wait(promoted, "the Sentinels to promote the replica", timeout=timeout)

    def _wait(self, predicate, what: str, timeout: float = 20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = predicate()
            except redis.RedisError:
                value = None
            if value:
                return value
            time.sleep(0.05)
        logs = "\n".join(f"--- {s.name}\n{s.log.read_text(errors='replace')[-1500:]}"
                         for s in self.servers.values() if s.log.exists())
        raise RuntimeError(f"timed out after {timeout}s waiting for {what}\n{logs}")

    def stop(self) -> None:
        for server in self.servers.values():
            if server.process.poll() is None:
                os.killpg(server.process.pid, signal.SIGTERM)
        for server in self.servers.values():
            try:
                server.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait()
