"""The one place that reads the process environment.

Explicitly exported variables win; then `.services/env`, written by
`scripts/services.py` with the URLs of the services it found or started; then
the defaults below, which suit a developer machine.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SERVICES_ENV_FILE = BASE_DIR / ".services" / "env"


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip("'\"")
    return values


_FILE_VALUES = _read_env_file(SERVICES_ENV_FILE)


def get(name: str, default: str | None = None) -> str | None:
    if name in os.environ:
        return os.environ[name]
    return _FILE_VALUES.get(name, default)


def get_bool(name: str, default: bool = False) -> bool:
    value = get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def get_int(name: str, default: int) -> int:
    value = get(name)
    return default if value in (None, "") else int(value)


def get_list(name: str, default: list[str] | None = None, sep: str = ",") -> list[str]:
    value = get(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(sep) if item.strip()]


DATABASE_URL = get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/wecomdesk")
REDIS_URL = get("REDIS_URL", "redis://127.0.0.1:6379/0")
# Dramatiq broker: redis:// (default, same Redis) or amqp:// (RabbitMQ, durable queues).
BROKER_URL = get("BROKER_URL") or REDIS_URL
WECOM_API_BASE = get("WECOM_API_BASE", "https://qyapi.weixin.qq.com")
# Pictures, voice, video and files (inbound downloads, agents' attachments), when stored on local disk.
MEDIA_ROOT = get("MEDIA_ROOT") or str(BASE_DIR / ".media")
