"""`manage.py wecom_chat`: talk to the demo tenant as a WeCom customer, through the WeCom sandbox.

Each line you type is sent by the sandbox as an encrypted callback (a member of the
demo app, or with --kf a WeChat customer of the demo 微信客服 account); replies are
what the sandbox recorded as delivered to you.
"""

from __future__ import annotations

import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from conversations.services.demo import DEMO_AGENT_ID, DEMO_CORP_ID, DEMO_OPEN_KFID
from wecom_sandbox.client import SandboxClient, SandboxError


def _lines():
    """Typed lines (with a prompt) or piped lines, until end of input."""
    if not sys.stdin.isatty():
        yield from sys.stdin
        return
    while True:
        try:
            yield input("> ")
        except (EOFError, KeyboardInterrupt):
            return


class Command(BaseCommand):
    help = "Chat with the demo tenant as a WeCom member (or, with --kf, a 微信客服 customer) via the sandbox."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--user", default="demo_customer", help="your WeCom UserID / external_userid")
        parser.add_argument("--kf", action="store_true", help="write to the 微信客服 account instead of the app")
        parser.add_argument("--sandbox", default=settings.WECOM_API_BASE, help="sandbox base URL")
        parser.add_argument("--wait", type=float, default=15.0, help="seconds to wait for replies")

    def handle(self, *args, user, kf, sandbox, wait, **options):
        client = SandboxClient(sandbox)
        try:
            client.health()
        except (SandboxError, OSError) as exc:
            raise CommandError(f"No WeCom sandbox at {sandbox}: start it with `make run`.") from exc
        self.stdout.write(f"You are {user!r} ({'微信客服 customer' if kf else 'app member'}). Ctrl-D to quit.")
        seen = len(client.deliveries(user=user, delivered=True))
        for line in _lines():
            text = line.strip()
            if not text:
                continue
            if kf:
                client.queue_kf_text(DEMO_CORP_ID, DEMO_OPEN_KFID, user, text)
            else:
                client.send_app_message(DEMO_CORP_ID, DEMO_AGENT_ID, user, content=text)
            seen = self._print_replies(client, user, seen, wait)

    def _print_replies(self, client: SandboxClient, user: str, seen: int, wait: float) -> int:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            replies = client.deliveries(user=user, delivered=True)
            if len(replies) > seen:
                for reply in replies[seen:]:
                    self.stdout.write(self.style.SUCCESS(f"< {reply['content'].rstrip(chr(0x200B))}"))
                return len(replies)
            time.sleep(0.2)
        self.stdout.write("(no reply yet)")
        return seen
