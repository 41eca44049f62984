"""`python -m wecom_sandbox.chat`: finding whom to write to, and one exchange with a replying platform."""

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.etree import ElementTree

import httpx
import pytest

from wecom_sandbox import chat
from wecom_sandbox.chat import ChatSetupError, Receiver, choose_receiver
from wecom_sandbox.client import SandboxClient
from wecom_sandbox.crypto import CallbackCrypto

TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
CORP = "wwchatcorp000001"
AGENT = 1000001
OPEN_KFID = "wkchat0001"


def summary(corp_id, *, apps=(), kf=(), callback=True) -> dict:
    """A corp as GET /sandbox/corps lists it."""
    return {"corp_id": corp_id, "members": [],
            "apps": [{"agent_id": agent_id, "callback": callback} for agent_id in apps],
            "kf_accounts": [{"open_kfid": open_kfid, "name": "", "callback": callback} for open_kfid in kf]}


def test_the_only_receiver_with_a_callback_is_chosen():
    corps = [summary(CORP, apps=[AGENT], kf=[OPEN_KFID]), summary("wwnocallback", apps=[1], kf=["wk"], callback=False)]

    assert choose_receiver(corps, kf=False) == Receiver(CORP, agent_id=AGENT)
    assert choose_receiver(corps, kf=True) == Receiver(CORP, open_kfid=OPEN_KFID)


def test_flags_choose_among_several_and_the_error_names_the_choices():
    corps = [summary(CORP, apps=[AGENT, 1000002]), summary("wwother", apps=[AGENT])]

    with pytest.raises(ChatSetupError, match="3 apps match .*--corp-id and --agent-id"):
        choose_receiver(corps, kf=False)
    with pytest.raises(ChatSetupError, match="2 apps match"):
        choose_receiver(corps, kf=False, agent_id=AGENT)
    assert choose_receiver(corps, kf=False, corp_id=CORP, agent_id=1000002) == Receiver(CORP, agent_id=1000002)
    with pytest.raises(ChatSetupError, match="no 微信客服 account"):
        choose_receiver(corps, kf=True)


def test_seed_file_entries_are_read_like_sandbox_summaries():
    callback = {"url": "http://x/cb", "token": TOKEN, "encoding_aes_key": AES_KEY}
    seed = [{"corp_id": CORP, "apps": [{"agent_id": str(AGENT), "secret": "s", "callback": callback}],
             "kf_accounts": [{"open_kfid": OPEN_KFID, "secret": "k"}], "members": []}]

    assert choose_receiver(seed, kf=False) == Receiver(CORP, agent_id=AGENT)
    with pytest.raises(ChatSetupError):
        choose_receiver(seed, kf=True)  # the kf account has no callback: nobody would hear the customer


class EchoPlatform:
    """A platform stand-in: reads each app callback and answers its sender "pong: <text>" via message/send."""

    def __init__(self, sandbox_url: str):
        self.errors: list[BaseException] = []
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    platform.answer(body)
                except Exception as exc:  # noqa: BLE001 - the sandbox only sees a status; the test re-raises it
                    platform.errors.append(exc)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.sandbox_url = sandbox_url
        self.crypto = CallbackCrypto(TOKEN, AES_KEY, CORP)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cb"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def answer(self, body: bytes) -> None:
        message = ElementTree.fromstring(self.crypto.decrypt(ElementTree.fromstring(body).findtext("Encrypt")))
        if message.findtext("MsgType") != "text":
            return
        with httpx.Client(base_url=self.sandbox_url, timeout=10) as http:
            token = http.get("/cgi-bin/gettoken", params={"corpid": CORP, "corpsecret": "app-secret"}).json()
            sent = http.post("/cgi-bin/message/send", params={"access_token": token["access_token"]}, json={
                "touser": message.findtext("FromUserName"), "msgtype": "text", "agentid": AGENT,
                "text": {"content": f"pong: {message.findtext('Content')}\u200b"}}).json()
        assert sent["errcode"] == 0, sent

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        assert not self.thread.is_alive()
        if self.errors:
            raise self.errors[0]


@pytest.fixture
def platform(sandbox_url):
    with SandboxClient(sandbox_url) as control:
        control.reset()
        echo = EchoPlatform(sandbox_url)
        callback = {"url": echo.url, "token": TOKEN, "encoding_aes_key": AES_KEY}
        control.create_corp(CORP, apps=[{"agent_id": AGENT, "secret": "app-secret", "callback": callback}],
                            kf_accounts=[{"open_kfid": OPEN_KFID, "secret": "kf-secret", "callback": callback}])
        yield echo
        echo.stop()


def run_chat(monkeypatch, capsys, *args: str, typed: str) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(typed))
    code = chat.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_member_chats_with_the_app_found_in_the_running_sandbox(platform, sandbox_url, monkeypatch, capsys):
    code, out, _ = run_chat(monkeypatch, capsys, "--sandbox", sandbox_url, "--user", "zhangsan", "--wait", "10",
                            typed="你好\n\n在吗\n")

    assert code == 0
    assert out.splitlines() == [
        f"You are 'zhangsan' (app member), writing to the app {AGENT} of corp {CORP}. Ctrl-D to quit.",
        "< pong: 你好",
        "< pong: 在吗",
    ]


def test_a_kf_customer_writes_to_the_account_named_in_a_seed_file(platform, sandbox_url, tmp_path, monkeypatch,
                                                                   capsys):
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps([summary(CORP, kf=[OPEN_KFID])]), encoding="utf-8")

    code, out, _ = run_chat(monkeypatch, capsys, "--sandbox", sandbox_url, "--kf", "--seed", str(seed),
                            "--user", "wmcustomer", "--wait", "0.2", typed="请问怎么退货\n")

    assert code == 0 and out.splitlines()[-1] == "(no reply yet)"  # the echo platform answers apps only
    with SandboxClient(sandbox_url) as control:
        (callback,) = control.callbacks()
    with httpx.Client(base_url=sandbox_url, timeout=10) as http:
        token = http.get("/cgi-bin/gettoken", params={"corpid": CORP, "corpsecret": "kf-secret"}).json()
        pulled = http.post("/cgi-bin/kf/sync_msg", params={"access_token": token["access_token"]},
                           json={"open_kfid": OPEN_KFID}).json()
    assert callback["corp_id"] == CORP and callback["delivered"]
    customer_messages = [(m["external_userid"], m["text"]["content"]) for m in pulled["msg_list"]]
    assert customer_messages == [("wmcustomer", "请问怎么退货")]


def test_without_a_sandbox_it_says_how_to_start_one(monkeypatch, capsys):
    code, _, err = run_chat(monkeypatch, capsys, "--sandbox", "http://127.0.0.1:9", typed="")

    assert code == 1 and "No WeCom sandbox at http://127.0.0.1:9" in err and "make run" in err
