"""`python -m wecom_sandbox`: serve the WeCom sandbox in the foreground (for `make run`, demos and benchmarks).

No Django and no database: the sandbox is in-memory, and a demo must not depend on a reachable, migrated
database. `--seed` creates corps at start, each the body of POST /sandbox/corps (`manage.py demo` writes
such a file for the demo tenant).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wecom_sandbox import control
from wecom_sandbox.server import create_server


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m wecom_sandbox",
        description="Serve the WeCom sandbox (/cgi-bin/ APIs, the /v1/ fake model, the /sandbox/ control API) "
        "until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument(
        "--seed",
        type=Path,
        help="JSON file with a list of corps, each the body of POST /sandbox/corps, created at start",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        server = create_server(args.host, args.port)
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        for corp in json.loads(args.seed.read_text(encoding="utf-8")) if args.seed else []:
            control.put_corp(server.state, {}, corp)
            print(f"seeded corp {corp['corp_id']}", flush=True)
    except (OSError, ValueError, KeyError, TypeError, control.BadRequest) as exc:
        server.server_close()
        print(f"cannot seed from {args.seed}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    # Flushed: under honcho or a test harness stdout is a pipe, and this line says the sandbox is up.
    print(f"WeCom sandbox on {server.base_url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
