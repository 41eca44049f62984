"""The simulator is a package of its own: importing all of it loads no Django and no platform module."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import wecom_sandbox

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_PACKAGES = ("django", "config", "tenants", "conversations", "tickets", "kb")


@pytest.mark.live  # a fresh interpreter
def test_importing_every_simulator_module_loads_nothing_of_the_platform():
    modules = sorted(m.name for m in pkgutil.walk_packages(wecom_sandbox.__path__, "wecom_sandbox.")
                     if ".tests" not in m.name and m.name != "wecom_sandbox.__main__")
    # A fresh interpreter: this test process has Django loaded already.
    script = (f"import importlib, sys\nfor name in {modules!r}: importlib.import_module(name)\n"
              f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(PLATFORM_PACKAGES)!r}))")
    loaded = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)

    assert "wecom_sandbox.chat" in modules and "wecom_sandbox.crypto" in modules
    assert loaded.stdout.strip() == "[]"
