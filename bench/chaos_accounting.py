"""What became of every callback of a chaos run, from the records alone: the desk's database (inbound rows and the
outbound ledger) and the WeCom sandbox's deliveries (what each customer actually received).

Pure functions over plain data, so the bookkeeping is tested without starting a server
(bench/test_chaos_accounting.py). Used by bench/chaos.py.

A callback that WeCom got a 200 for is the desk's responsibility. It ends, exactly one of:

- `answered`: the customer received one delivery that answers it (more than one is a duplicate);
- `refused`: visibly not answered, with the reason an operator sees (over the rate limit, failed permanently, a
  dead letter, a send cancelled because a human took over);
- `lost`: neither; also a 200 for a message that was never stored.

A delivery answers a message when its text starts with the message's tag (the fake model echoes it), or, for
texts without a tag (a fallback script while the model is down), when the ledger row that sent it, found by the
msgid WeCom returned, was caused by the message. A delivery neither way accounts for is an `extra`: the customer
got something the ledger does not know it sent, i.e. a duplicate too. Deliveries WeCom suppressed (its duplicate
check, the same request re-sent) or dropped never reached the customer and answer nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

REFUSED_INBOUND = {"rate_limited": "over the customer's rate limit", "failed": "failed permanently",
                   "unsupported": "type not processed"}
REFUSED_LEDGER = {"dead": "dead letter", "cancelled": "cancelled (a human took over)"}
UNSETTLED_LEDGER = {"pending", "sending", "retrying"}


@dataclass
class Sent:
    """One callback of the run as the sender saw it."""

    tag: str
    msg_id: str  # WeCom's MsgId: the inbound row's natural key is msg:<MsgId>
    contact: str
    scheduled: float  # wall clock of the planned send
    acked: float | None  # wall clock of the 200; None: never acknowledged (every attempt failed)


@dataclass
class Outcome:
    sent: Sent
    kind: str  # answered | refused | lost | unacked (never got a 200: WeCom's problem, not ours)
    deliveries: list[dict] = field(default_factory=list)  # the deliveries answering it, oldest first
    reason: str = ""

    @property
    def duplicates(self) -> int:
        return max(0, len(self.deliveries) - 1)

    @property
    def first_answer(self) -> float | None:
        return self.deliveries[0]["at"] if self.deliveries else None


@dataclass
class Accounting:
    outcomes: list[Outcome]
    extras: list[dict]  # delivered, but answering no message of the run
    dropped: list[dict]  # not delivered: over WeCom's per-member minute limit
    unsettled: int  # ledger rows still pending, sending or retrying, inbound rows still pending

    def by_kind(self) -> Counter:
        return Counter(o.kind for o in self.outcomes)


def tag_of(content: str) -> str:
    return content.split(" ", 1)[0]


def account(sent: list[Sent], inbound: dict[str, dict], ledger: list[dict], deliveries: list[dict]) -> Accounting:
    """`inbound`: MsgId -> {"id", "status"}; `ledger`: rows {"inbound_id", "status", "wecom_msgid", "last_error"};
    `deliveries`: the sandbox's records {"channel", "recipient", "content", "msgid", "at", "delivered",
    "duplicate", "dropped"} (the app channel: our bench app)."""
    by_tag = {s.tag: s for s in sent}
    by_inbound_id = {row["id"]: msg_id for msg_id, row in inbound.items()}
    by_msg_id = {s.msg_id: s for s in sent}
    sent_by_wecom_msgid: dict[str, Sent] = {}
    ledger_by_inbound: dict[int, list[dict]] = {}
    for row in ledger:
        ledger_by_inbound.setdefault(row["inbound_id"], []).append(row)
        msg_id = by_inbound_id.get(row["inbound_id"])
        if row.get("wecom_msgid") and msg_id in by_msg_id:
            sent_by_wecom_msgid[row["wecom_msgid"]] = by_msg_id[msg_id]
    answers: dict[str, list[dict]] = {}
    extras, dropped = [], []
    for d in sorted(deliveries, key=lambda d: d["at"]):
        if d.get("dropped"):
            dropped.append(d)
            continue
        if not d.get("delivered"):
            continue  # suppressed by WeCom's duplicate check: the customer has it once
        owner = by_tag.get(tag_of(d.get("content", ""))) or sent_by_wecom_msgid.get(d.get("msgid", ""))
        if owner is None or owner.contact != d.get("recipient"):
            extras.append(d)
        else:
            answers.setdefault(owner.tag, []).append(d)
    outcomes = []
    for s in sent:
        mine = answers.get(s.tag, [])
        row = inbound.get(s.msg_id)
        if s.acked is None:
            outcomes.append(Outcome(s, "unacked", mine, "never acknowledged"))
        elif mine:
            outcomes.append(Outcome(s, "answered", mine))
        elif row is None:
            outcomes.append(Outcome(s, "lost", [], "acknowledged but not stored"))
        elif row["status"] in REFUSED_INBOUND:
            outcomes.append(Outcome(s, "refused", [], REFUSED_INBOUND[row["status"]]))
        else:
            refused = [r for r in ledger_by_inbound.get(row["id"], []) if r["status"] in REFUSED_LEDGER]
            if refused:
                reason = REFUSED_LEDGER[refused[0]["status"]]
                detail = refused[0].get("last_error") or ""
                outcomes.append(Outcome(s, "refused", [], f"{reason}: {detail}" if detail else reason))
            else:
                outcomes.append(Outcome(s, "lost", [], f"stored ({row['status']}), no answer delivered"))
    unsettled = sum(1 for r in ledger if r["status"] in UNSETTLED_LEDGER)
    unsettled += sum(1 for r in inbound.values() if r["status"] == "pending")
    return Accounting(outcomes, extras, dropped, unsettled)


@dataclass
class Window:
    """A fault's share of the run: the callbacks scheduled from `start` until the next fault's start."""

    name: str
    start: float
    end: float
    injected: float
    recovered: float  # when the fault was undone (process restarted, standby promoted, outage over)
    resumed: float | None = None  # first answer to a message scheduled after the injection
    notes: list[str] = field(default_factory=list)


@dataclass
class Row:
    name: str
    held: float
    acked: int
    unacked: int
    lost: int
    refused: int
    refused_reasons: Counter
    duplicates: int
    acks_over_5s: int
    worst_ack: float
    resume: float | None  # seconds from the injection to the first answer of a message sent after it


def summarise(window: Window, accounting: Accounting, slow_ack: float = 5.0) -> Row:
    """The fault's line of the table: its messages' outcomes, and the extras delivered during it."""
    mine = [o for o in accounting.outcomes if window.start <= o.sent.scheduled < window.end]
    kinds = Counter(o.kind for o in mine)
    acks = [o.sent.acked - o.sent.scheduled for o in mine if o.sent.acked is not None]
    extras = sum(1 for d in accounting.extras if window.start <= d["at"] < window.end)
    return Row(
        name=window.name,
        held=window.recovered - window.injected,
        acked=len(acks),
        unacked=kinds["unacked"],
        lost=kinds["lost"],
        refused=kinds["refused"],
        refused_reasons=Counter(o.reason for o in mine if o.kind == "refused"),
        duplicates=sum(o.duplicates for o in mine) + extras,
        acks_over_5s=sum(1 for a in acks if a > slow_ack),
        worst_ack=max(acks, default=0.0),
        resume=(window.resumed - window.injected) if window.resumed is not None else None,
    )


def first_answer_after(accounting: Accounting, since: float) -> float | None:
    """When the first message scheduled at or after `since` got an answer from the model (tagged), if one did."""
    times = [d["at"] for o in accounting.outcomes if o.sent.scheduled >= since for d in o.deliveries
             if tag_of(d.get("content", "")) == o.sent.tag]
    return min(times, default=None)
