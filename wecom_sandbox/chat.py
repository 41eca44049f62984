"""`python -m wecom_sandbox.chat`: talk to a tenant as a WeCom customer, through a running WeCom sandbox.

Each line you type is sent by the sandbox as an encrypted callback (from a member of an app, or with
--kf from a WeChat customer of a 微信客服 account); replies are what the sandbox recorded as delivered
to you. Whom you write to is found, not configured: the corps the running sandbox was seeded with
(`make run` seeds it with the demo tenant's app and account), or with --seed the corps of a seed
file such as the one `manage.py demo` writes; --corp-id, --agent-id and --open-kfid choose when
there is more than one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from wecom_sandbox.client import SandboxClient, SandboxError

DEFAULT_SANDBOX = os.environ.get("WECOM_API_BASE", "http://127.0.0.1:8090")
# Written by `manage.py demo` in the repository this package sits in.
DEMO_SEED_FILE = Path(__file__).resolve().parent.parent / ".services" / "sandbox-seed.json"
# The platform may append this (invisible in WeChat) so WeCom's duplicate check lets a repeated answer through.
ZERO_WIDTH_SPACE = "\u200b"
POLL_INTERVAL = 0.2


class ChatSetupError(Exception):
    """Nothing (or more than one thing) to chat with; the message says which flag to use."""


@dataclass(frozen=True)
class Receiver:
    """What the customer writes to: an app (agent_id) or a 微信客服 account (open_kfid) of a corp."""

    corp_id: str
    agent_id: int | None = None
    open_kfid: str | None = None

    def describe(self) -> str:
        target = f"app {self.agent_id}" if self.open_kfid is None else f"微信客服 account {self.open_kfid}"
        return f"{target} of corp {self.corp_id}"


def candidates(corps: list[dict], *, kf: bool) -> list[Receiver]:
    """Receivers with a callback configured (without one, nobody hears the customer).

    `corps` are sandbox summaries (GET /sandbox/corps) or seed-file entries: both list "apps" with
    "agent_id" and "kf_accounts" with "open_kfid", each with a "callback" that is truthy when set.
    """
    found = []
    for corp in corps:
        if kf:
            found += [Receiver(corp["corp_id"], open_kfid=account["open_kfid"])
                      for account in corp.get("kf_accounts") or [] if account.get("callback")]
        else:
            found += [Receiver(corp["corp_id"], agent_id=int(app["agent_id"]))
                      for app in corp.get("apps") or [] if app.get("callback")]
    return found


def choose_receiver(
    corps: list[dict],
    *,
    kf: bool,
    corp_id: str | None = None,
    agent_id: int | None = None,
    open_kfid: str | None = None,
) -> Receiver:
    """The one receiver matching the flags; ChatSetupError naming the choices when none or several match."""
    found = [
        receiver
        for receiver in candidates(corps, kf=kf)
        if corp_id in (None, receiver.corp_id)
        and agent_id in (None, receiver.agent_id)
        and open_kfid in (None, receiver.open_kfid)
    ]
    if len(found) == 1:
        return found[0]
    kind = "微信客服 account" if kf else "app"
    if not found:
        raise ChatSetupError(f"no {kind} with a callback matches; is the sandbox seeded (`make run` does)?")
    flags = "--corp-id and --open-kfid" if kf else "--corp-id and --agent-id"
    choices = "; ".join(receiver.describe() for receiver in found)
    raise ChatSetupError(f"{len(found)} {kind}s match ({choices}): choose one with {flags}")


def typed_lines() -> Iterator[str]:
    """Typed lines (with a prompt) or piped lines, until end of input."""
    if not sys.stdin.isatty():
        yield from sys.stdin
        return
    while True:
        try:
            yield input("> ")
        except (EOFError, KeyboardInterrupt):
            return


def print_new_replies(client: SandboxClient, user: str, seen: int, wait: float) -> int:
    """Print what `user` received beyond the first `seen` deliveries, waiting up to `wait` s for any."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        replies = client.deliveries(user=user, delivered=True)
        if len(replies) > seen:
            for reply in replies[seen:]:
                print(f"< {reply['content'].rstrip(ZERO_WIDTH_SPACE)}", flush=True)
            return len(replies)
        time.sleep(POLL_INTERVAL)
    print("(no reply yet)", flush=True)
    return seen


def send(client: SandboxClient, receiver: Receiver, user: str, text: str) -> None:
    if receiver.open_kfid is not None:
        client.queue_kf_text(receiver.corp_id, receiver.open_kfid, user, text)
    else:
        client.send_app_message(receiver.corp_id, receiver.agent_id, user, content=text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m wecom_sandbox.chat",
        description="Chat with a tenant as a WeCom member (or, with --kf, a 微信客服 customer) via the sandbox.",
    )
    parser.add_argument("--user", default="demo_customer", help="your WeCom UserID / external_userid")
    parser.add_argument("--kf", action="store_true", help="write to a 微信客服 account instead of an app")
    parser.add_argument("--sandbox", default=DEFAULT_SANDBOX, help="sandbox base URL (default: %(default)s)")
    parser.add_argument("--wait", type=float, default=15.0, help="seconds to wait for replies")
    parser.add_argument(
        "--seed",
        type=Path,
        nargs="?",
        const=DEMO_SEED_FILE,
        help=f"find the receiver in this seed file instead of asking the sandbox (alone: {DEMO_SEED_FILE})",
    )
    parser.add_argument("--corp-id", help="the corp to write to, when there are several")
    parser.add_argument("--agent-id", type=int, help="the app to write to, when its corp has several")
    parser.add_argument("--open-kfid", help="the 微信客服 account to write to (with --kf), when there are several")
    return parser.parse_args(argv)


def find_receiver(client: SandboxClient, args: argparse.Namespace) -> Receiver:
    corps = json.loads(args.seed.read_text(encoding="utf-8")) if args.seed else client.corps()
    return choose_receiver(corps, kf=args.kf, corp_id=args.corp_id, agent_id=args.agent_id, open_kfid=args.open_kfid)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with SandboxClient(args.sandbox) as client:
        try:
            client.health()
            receiver = find_receiver(client, args)
        except (SandboxError, httpx.HTTPError) as exc:
            print(f"No WeCom sandbox at {args.sandbox} ({exc}): start it with `make run`.", file=sys.stderr)
            return 1
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"Cannot read the seed file {args.seed}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        except ChatSetupError as exc:
            print(f"Nobody to chat with: {exc}", file=sys.stderr)
            return 1
        role = "微信客服 customer" if args.kf else "app member"
        print(f"You are {args.user!r} ({role}), writing to the {receiver.describe()}. Ctrl-D to quit.", flush=True)
        seen = len(client.deliveries(user=args.user, delivered=True))
        for line in typed_lines():
            text = line.strip()
            if text:
                send(client, receiver, args.user, text)
                seen = print_new_replies(client, args.user, seen, args.wait)
    return 0

if __name__ == "__main__":
    sys.exit(main())
