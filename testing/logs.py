"""Log output as production writes it: the project's logging configuration in JSON, captured.

`production_json_logs()` applies the LOGGING that config/settings/production.py builds
(`configure_logging(fmt="json")`, through `apply_logging`, as Django does at start-up), with its one
handler writing into a buffer instead of stderr, and puts the test settings' configuration back
afterwards. What a test reads is therefore exactly what the production handler would have written.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings

from config.logging import apply_logging, configure_logging


@dataclass
class CapturedLogs:
    buffer: io.StringIO

    def text(self) -> str:
        return self.buffer.getvalue()

    def lines(self) -> list[dict]:
        """Every line, parsed: a line that is not one JSON object fails here."""
        return parse_json_lines(self.text())

    def events(self, event: str) -> list[dict]:
        return [line for line in self.lines() if line.get("event") == event]


def parse_json_lines(text: str) -> list[dict]:
    parsed = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise AssertionError(f"log line {number} is not JSON: {line!r}") from exc
        assert isinstance(value, dict), f"log line {number} is not a JSON object: {line!r}"
        parsed.append(value)
    return parsed


@contextmanager
def production_json_logs(*, level: str = "INFO") -> Iterator[CapturedLogs]:
    buffer = io.StringIO()
    config = configure_logging(level=level, fmt="json")
    config["handlers"]["console"]["stream"] = buffer
    apply_logging(config)
    try:
        yield CapturedLogs(buffer)
    finally:
        apply_logging(settings.LOGGING)
