"""`python -m wecom_sandbox`: the sandbox as its own process, seeded from a file, without Django."""

import json
import os
import re
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wecom_sandbox.client import SandboxClient

pytestmark = pytest.mark.live  # each test starts the sandbox as a process of its own

ROOT = Path(__file__).resolve().parents[2]
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CALLBACK = {"url": "http://127.0.0.1:9/cb", "token": "t", "encoding_aes_key": AES_KEY}
SEED = [{"corp_id": "wwseeded0001", "members": [],
         "apps": [{"agent_id": 1000001, "secret": "s1", "callback": CALLBACK}],
         "kf_accounts": [{"open_kfid": "wkseeded0001", "secret": "s2", "name": "客服", "callback": CALLBACK}]}]


def run_sandbox(*args: str) -> subprocess.Popen:
    # Without DJANGO_SETTINGS_MODULE: the sandbox must not need Django to start.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    # Unbuffered bytes: select() on the pipe then tells the truth about what is left to read.
    return subprocess.Popen([sys.executable, "-m", "wecom_sandbox", *args], cwd=ROOT, env=env, bufsize=0,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def read_until(proc: subprocess.Popen, pattern: str, *, timeout: float = 20) -> tuple[re.Match, list[str]]:
    """Lines of stdout up to the first matching `pattern`; fails if the process exits or stays silent."""
    output, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
        chunk = os.read(proc.stdout.fileno(), 4096) if ready else b""
        if not chunk:
            break
        output += chunk
        lines = output.decode().splitlines()
        match = next((m for m in map(re.compile(pattern).search, lines) if m), None)
        if match:
            return match, lines
    stderr = proc.stderr.read().decode() if proc.poll() is not None else ""
    raise AssertionError(f"no {pattern!r} in {output.decode()!r}; stderr: {stderr}")


@pytest.fixture
def stop_afterwards():
    started: list[subprocess.Popen] = []
    yield started.append
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()


def test_serves_the_corps_of_the_seed_file(tmp_path, stop_afterwards):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SEED, ensure_ascii=False), encoding="utf-8")
    proc = run_sandbox("--port", "0", "--seed", str(seed))
    stop_afterwards(proc)

    started, lines = read_until(proc, r"WeCom sandbox on (http://127\.0\.0\.1:\d+)")

    assert lines[0] == "seeded corp wwseeded0001"
    with SandboxClient(started.group(1)) as client:
        assert client.health()["status"] == "ok"
        assert client.corps() == [{
            "corp_id": "wwseeded0001", "members": [],
            "apps": [{"agent_id": 1000001, "callback": True}],
            "kf_accounts": [{"open_kfid": "wkseeded0001", "name": "客服", "callback": True, "servicers": {}}],
        }]


def test_a_bad_seed_file_or_a_taken_port_exits_with_a_reason(tmp_path, stop_afterwards):
    seed = tmp_path / "seed.json"
    seed.write_text('[{"apps": []}]', encoding="utf-8")
    bad_seed = run_sandbox("--port", "0", "--seed", str(seed))
    stop_afterwards(bad_seed)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = run_sandbox("--port", str(taken.getsockname()[1]))
        stop_afterwards(busy)
        busy_exit = busy.wait(20)

    assert bad_seed.wait(20) == 1 and "cannot seed from" in bad_seed.stderr.read().decode()
    assert busy_exit == 1 and "cannot listen on" in busy.stderr.read().decode()
