"""What WeCom last said about our right to answer a 微信客服 account set: WeComApp.account_status.

Set from kf_account_auth_change callbacks and from errcode 95011 on a send; reset by the operator
(admin "enable" / "mark active"). Nothing here talks to WeCom: the status only tells the operator
why replies stopped, so they can fix it in the WeCom admin console.
"""

from __future__ import annotations

from conversations.models import AccountStatus, WeComApp

# kf/send_msg refused because the account is served from the WeCom client (微信客服 "接待方式" is
# not the API). Meaning per docs/WECOM_PROTOCOL.md §6.3 (the official wording is UNCONFIRMED).
ACCOUNT_MANAGED_IN_CLIENT = 95011


def set_account_status(*, app_ids, status: AccountStatus, detail: str = "") -> int:
    """Record the status (and why) on these apps; returns how many rows changed."""
    return WeComApp.objects.filter(pk__in=list(app_ids)).update(account_status=status,
                                                                account_status_detail=detail[:300])


def mark_managed_in_client(*, app_id: int, errmsg: str) -> None:
    """A send came back 95011: the operator must switch the account back to API reception."""
    set_account_status(app_ids=[app_id], status=AccountStatus.MANAGED_IN_CLIENT,
                       detail=f"errcode {ACCOUNT_MANAGED_IN_CLIENT}: {errmsg}")
