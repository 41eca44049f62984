"""`manage.py wecom_sandbox`: run the WeCom sandbox in the foreground for local demos (no database needed)."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from wecom_sandbox import control
from wecom_sandbox.server import create_server


class Command(BaseCommand):
    help = "Serve the WeCom sandbox (/cgi-bin/ APIs and the /sandbox/ control API) until Ctrl-C."
    # The sandbox is in-memory; do not make a demo depend on a reachable, migrated database.
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8090)
        parser.add_argument(
            "--seed",
            type=Path,
            help="JSON file with a list of corps, each the body of POST /sandbox/corps, created at start",
        )

    def handle(self, *args, host, port, seed, **options):
        try:
            server = create_server(host, port)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc}") from exc
        if seed:
            for corp in json.loads(seed.read_text(encoding="utf-8")):
                control.put_corp(server.state, {}, corp)
                self.stdout.write(f"seeded corp {corp['corp_id']}")
        self.stdout.write(self.style.SUCCESS(f"WeCom sandbox on {server.base_url} (Ctrl-C to stop)"))
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            self.stdout.write("stopping")
        finally:
            server.server_close()
