"""The chaos suite's bookkeeping (bench/chaos_accounting.py): what became of each callback, from the desk's rows and
the sandbox's deliveries, and a fault's line of the table. Pure data in, no server started; the suite itself
(bench/chaos.py, `make chaos`) is the live check.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("chaos_accounting", BENCH / "chaos_accounting.py")
acc_mod = importlib.util.module_from_spec(_spec)
sys.modules["chaos_accounting"] = acc_mod  # dataclasses look their module up by name
_spec.loader.exec_module(acc_mod)
Sent, Window, account, summarise, first_answer_after = (acc_mod.Sent, acc_mod.Window, acc_mod.account,
                                                        acc_mod.summarise, acc_mod.first_answer_after)


def sent(tag: str, contact: str = "c1", at: float = 100.0, acked: float | None = 100.2) -> Sent:
    return Sent(tag=tag, msg_id=f"m-{tag}", contact=contact, scheduled=at, acked=acked)


def delivery(content: str, *, to: str = "c1", at: float = 101.0, msgid: str = "", delivered: bool = True,
             duplicate: bool = False, dropped: bool = False) -> dict:
    return {"channel": "app", "recipient": to, "content": content, "msgid": msgid or f"w-{content}-{at}", "at": at,
            "delivered": delivered, "duplicate": duplicate, "dropped": dropped}


def test_each_message_answered_once_by_its_tag():
    msgs = [sent("x1"), sent("x2", contact="c2")]
    inbound = {"m-x1": {"id": 1, "status": "processed"}, "m-x2": {"id": 2, "status": "processed"}}
    result = account(msgs, inbound, [], [delivery("x1 怎么退货"), delivery("x2 你好", to="c2")])
    assert result.by_kind() == {"answered": 2}
    assert [o.duplicates for o in result.outcomes] == [0, 0]
    assert result.extras == []


def test_a_second_delivered_answer_is_a_duplicate_and_a_suppressed_one_is_not():
    msgs = [sent("x1")]
    inbound = {"m-x1": {"id": 1, "status": "processed"}}
    twice = account(msgs, inbound, [], [delivery("x1 a", at=101), delivery("x1 a", at=102)])
    assert twice.outcomes[0].duplicates == 1
    suppressed = account(msgs, inbound, [], [delivery("x1 a", at=101), delivery("x1 a", at=102, delivered=False,
                                                                                    duplicate=True)])
    assert suppressed.outcomes[0].duplicates == 0


def test_an_untagged_fallback_is_matched_through_the_ledgers_msgid_and_an_unknown_one_is_an_extra():
    msgs = [sent("x1"), sent("x2")]
    inbound = {"m-x1": {"id": 1, "status": "processed"}, "m-x2": {"id": 2, "status": "processed"}}
    ledger = [{"inbound_id": 1, "status": "sent", "wecom_msgid": "w-1", "last_error": ""},
              {"inbound_id": 2, "status": "sent", "wecom_msgid": "w-2", "last_error": ""}]
    fallback = "抱歉，服务繁忙，请稍后再试。"
    result = account(msgs, inbound, ledger, [delivery(fallback, msgid="w-1"), delivery(fallback, msgid="w-2"),
                                             delivery(fallback, msgid="w-9", at=103)])
    assert result.by_kind() == {"answered": 2}
    assert [d["msgid"] for d in result.extras] == ["w-9"]
    # ...and the extra counts as a duplicate of the fault during which it was delivered.
    row = summarise(Window("model-outage", 99, 104, 100, 115), result)
    assert row.duplicates == 1


def test_an_answer_to_the_wrong_contact_answers_nothing():
    result = account([sent("x1")], {"m-x1": {"id": 1, "status": "processed"}}, [], [delivery("x1 a", to="c2")])
    assert result.by_kind() == {"lost": 1}
    assert len(result.extras) == 1


@pytest.mark.parametrize(("inbound", "ledger", "kind", "reason"), [
    (None, [], "lost", "acknowledged but not stored"),
    ({"id": 1, "status": "pending"}, [], "lost", "stored (pending), no answer delivered"),
    ({"id": 1, "status": "rate_limited"}, [], "refused", "over the customer's rate limit"),
    ({"id": 1, "status": "processed"}, [{"inbound_id": 1, "status": "dead", "wecom_msgid": "",
                                         "last_error": "errcode -1"}], "refused", "dead letter: errcode -1"),
    ({"id": 1, "status": "processed"}, [{"inbound_id": 1, "status": "retrying", "wecom_msgid": "",
                                         "last_error": ""}], "lost", "stored (processed), no answer delivered"),
])
def test_without_a_delivery_a_message_is_refused_with_a_reason_or_lost(inbound, ledger, kind, reason):
    rows = {"m-x1": inbound} if inbound else {}
    result = account([sent("x1")], rows, ledger, [])
    assert (result.outcomes[0].kind, result.outcomes[0].reason) == (kind, reason)


def test_in_flight_rows_are_unsettled_and_a_dropped_answer_is_reported():
    ledger = [{"inbound_id": 1, "status": "retrying", "wecom_msgid": "", "last_error": ""}]
    result = account([sent("x1"), sent("x2")], {"m-x1": {"id": 1, "status": "processed"},
                                                "m-x2": {"id": 2, "status": "pending"}},
                     ledger, [delivery("x2 a", dropped=True, delivered=False)])
    assert result.unsettled == 2
    assert len(result.dropped) == 1
    assert result.by_kind() == {"lost": 2}


def test_a_never_acknowledged_callback_is_not_the_desks_loss():
    result = account([sent("x1", acked=None)], {}, [], [])
    assert result.by_kind() == {"unacked": 1}


def test_a_faults_row_counts_its_own_window_and_the_time_until_answers_resume():
    msgs = [sent("a", at=100, acked=100.1), sent("b", at=110, acked=117.5), sent("c", at=112, acked=112.1),
            sent("d", at=130, acked=130.1)]
    inbound = {f"m-{t}": {"id": k, "status": "processed"} for k, t in enumerate("abcd")}
    deliveries = [delivery("a q", at=100.5), delivery("b q", at=125.0), delivery("d q", at=131.0)]
    result = account(msgs, inbound, [], deliveries)
    window = Window("worker-kill", start=105, end=129, injected=108, recovered=109)
    window.resumed = first_answer_after(result, window.injected)
    row = summarise(window, result)
    assert (row.acked, row.lost, row.duplicates, row.acks_over_5s) == (2, 1, 0, 1)
    assert row.worst_ack == pytest.approx(7.5)
    assert row.resume == pytest.approx(17.0)  # b, sent after the injection, answered at 125
