"""The demo tenant's WeCom connections, wired to the local WeCom sandbox for `make run`."""

from __future__ import annotations

import secrets
import string

from django.db import connection

from config.env import BASE_DIR
from conversations.models import WeComApp, callback_url
from conversations.services.apps import create_wecom_app

SANDBOX_SEED_FILE = BASE_DIR / ".services" / "sandbox-seed.json"
DEMO_CORP_ID = "wwdemo0000000001"
DEMO_AGENT_ID = 1000001
DEMO_OPEN_KFID = "wkdemo000000000001"


def _random(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def ensure_demo_wecom_apps() -> list[dict]:
    """Create the demo app and 微信客服 account if missing; return the sandbox seed for them."""
    if not WeComApp.objects.filter(corp_id=DEMO_CORP_ID).exists():
        # The app and the 微信客服 account have secrets of their own, as in a real corp.
        common = dict(corp_id=DEMO_CORP_ID, token=_random(24), encoding_aes_key=_random(43))
        create_wecom_app(name="Demo 客服应用", kind="app", agent_id=DEMO_AGENT_ID, secret=_random(32), **common)
        create_wecom_app(name="Demo 微信客服", kind="kf", open_kfids=[DEMO_OPEN_KFID], secret=_random(32), **common)
    app = WeComApp.objects.get(corp_id=DEMO_CORP_ID, kind="app")
    kf = WeComApp.objects.get(corp_id=DEMO_CORP_ID, kind="kf")

    def callback(target: WeComApp) -> dict:
        return {"url": callback_url(target, connection.schema_name), "token": target.token,
                "encoding_aes_key": target.encoding_aes_key}

    return [{
        "corp_id": DEMO_CORP_ID,
        "apps": [{"agent_id": DEMO_AGENT_ID, "secret": app.secret, "callback": callback(app)}],
        "kf_accounts": [{"open_kfid": DEMO_OPEN_KFID, "secret": kf.secret, "name": "Demo 客服",
                         "callback": callback(kf)}],
        "members": [],
    }]
