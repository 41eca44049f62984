"""The demo tenant's WeCom connections, wired to the local WeCom sandbox for `make run`."""

from __future__ import annotations

import secrets
import string

from django.db import connection

from config.env import BASE_DIR
from conversations.ai.models import AIProvider
from conversations.models import DeskSettings, FallbackScript, KfCursor, WeComApp, callback_url
from conversations.services.apps import create_wecom_app
from kb.models import KnowledgeEntry, Synonym
from kb.services import create_entry
from kb.synonyms import save_group

SANDBOX_SEED_FILE = BASE_DIR / ".services" / "sandbox-seed.json"
DEMO_CORP_ID = "wwdemo0000000001"
DEMO_AGENT_ID = 1000001
DEMO_OPEN_KFID = "wkdemo000000000001"


def _random(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


DEMO_KNOWLEDGE = [
    ("如何申请退货？", "收到商品 7 天内可在「我的订单」中申请无理由退货，商品需保持完好。",
     ["退货", "售后", "不合适", "不想要", "尺码", "换货"]),
    ("退款多久到账？", "退货签收后 1-3 个工作日内原路退款，银行卡到账可能需要 3-5 个工作日。",
     ["退款", "到账", "钱", "退钱"]),
    ("怎么开发票？", "在订单详情页点击「申请发票」，填写抬头和税号，电子发票 24 小时内发送到邮箱。", ["发票"]),
    ("什么时候发货？", "工作日 16:00 前付款的订单当天发货，其余次日发货。", ["发货", "物流"]),
    ("客服工作时间是几点？", "人工客服每天 9:00-21:00 在线，智能客服 24 小时为您服务。", ["工作时间"]),
]
# Customers say 快递 or 包裹 where the shop's entries say 物流 (issue 12: "我的快递三天了还没到").
DEMO_SYNONYMS = [["物流", "快递", "包裹"], ["退款", "退钱"]]
DEMO_FALLBACKS = [
    ("默认", [], "抱歉，我暂时无法回答这个问题。您可以换个说法，或回复“人工”联系客服。", True),
    ("物流", ["快递", "物流", "到哪"], "物流信息请在「我的订单」中查看；如需帮助请回复“人工”。", False),
]


def ensure_demo_answering(*, model_base_url: str) -> None:
    """The demo tenant answers from a small knowledge base through the sandbox's fake model."""
    if not AIProvider.objects.exists():
        AIProvider.objects.create(base_url=model_base_url, model="sandbox-chat", api_key="demo-model-key")
    if not KnowledgeEntry.objects.exists():
        for question, answer, tags in DEMO_KNOWLEDGE:
            create_entry(question=question, answer=answer, tags=tags)
        # A new demo shows answers asking to be rated (👍/👎 on 微信客服); an operator's later choice stays.
        DeskSettings.objects.filter(pk=DeskSettings.current().pk).update(answer_feedback=True)
    if not Synonym.objects.exists():
        for words in DEMO_SYNONYMS:
            save_group(words=words)
    if not FallbackScript.objects.exists():
        for name, keywords, text, is_default in DEMO_FALLBACKS:
            FallbackScript.objects.create(name=name, keywords=keywords, text=text, is_default=is_default)


def ensure_demo_wecom_apps() -> list[dict]:
    """Create the demo app and 微信客服 account if missing; return the sandbox seed for them."""
    if not WeComApp.objects.filter(corp_id=DEMO_CORP_ID).exists():
        # The app and the 微信客服 account have secrets of their own, as in a real corp.
        common = dict(corp_id=DEMO_CORP_ID, token=_random(24), encoding_aes_key=_random(43))
        create_wecom_app(name="Demo 客服应用", kind="app", agent_id=DEMO_AGENT_ID, secret=_random(32), **common)
        create_wecom_app(name="Demo 微信客服", kind="kf", open_kfids=[DEMO_OPEN_KFID], secret=_random(32), **common)
    # The sandbox starts empty with every `make run`: cursors of its previous life mean nothing.
    KfCursor.objects.filter(app__corp_id=DEMO_CORP_ID).delete()
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
