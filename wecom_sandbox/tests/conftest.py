"""Fixtures of the simulator's own tests: one in-process sandbox for the session, and its fake model.

No database and no platform code: these tests drive the sandbox over HTTP the way a client would.
"""

from __future__ import annotations

import pytest

from wecom_sandbox.client import SandboxClient, start_sandbox


@pytest.fixture(scope="session")
def sandbox_url():
    server, base_url = start_sandbox()
    yield base_url
    server.stop()


@pytest.fixture
def fake_model(sandbox_url):
    """The sandbox's OpenAI-compatible fake model, reset (no faults, no latency, no recorded calls)."""
    with SandboxClient(sandbox_url) as client:
        client.model_reset()
        yield client
