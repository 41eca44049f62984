"""In-memory world of the WeCom sandbox: corps, credentials, tokens, deliveries, kf queues, faults, clock.

One re-entrant lock guards everything; callers hold `state.lock` for a whole API call so each
call sees and leaves a consistent world. Nothing here sleeps or does I/O.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field

TOKEN_TTL_SECONDS = 7200
CALL_LOG_SIZE = 10_000


@dataclass(frozen=True)
class CallbackTarget:
    """Where and how the sandbox POSTs encrypted callbacks for an app or a kf account."""

    url: str
    token: str
    encoding_aes_key: str


@dataclass
class App:
    agent_id: int
    secret: str
    callback: CallbackTarget | None = None
    # WeCom stopped giving user/get's avatar, gender, mobile and email to self-built apps created after
    # 2022-06-20 (they need OAuth for them); apps older than that still get them.
    created_before_2022_06: bool = False


@dataclass
class KfAccount:
    open_kfid: str
    secret: str
    name: str = ""
    callback: CallbackTarget | None = None
    # The account's servicers (kf/servicer/add) and whether each is receiving ("正在接待"): only
    # they can be given a session (service_state 3).
    servicers: dict[str, bool] = field(default_factory=dict)


@dataclass
class AccessToken:
    value: str
    corp_id: str
    secret: str
    expires_at: float
    revoked: bool = False


@dataclass
class Delivery:
    """One outbound message as a recipient would (or would not) see it."""

    id: int
    corp_id: str
    channel: str  # "app" (message/send) or "kf" (kf/send_msg, kf/send_msg_on_event)
    sender: str  # agent id or open_kfid
    recipient: str  # member userid or external_userid
    msgtype: str
    content: str  # text/markdown content after truncation; "" for other types
    payload: dict
    msgid: str
    at: float
    delivered: bool
    duplicate: bool = False  # suppressed by duplicate check / repeated msgid
    dropped: bool = False  # silently discarded by the per-member minute limit

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class KfSession:
    open_kfid: str
    external_userid: str
    service_state: int = 4  # 4 = ended / not started: nothing may be sent until the customer writes
    servicer_userid: str = ""
    last_customer_message_at: float | None = None
    sends_since_customer_message: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class KfCode:
    """A single-use code for kf/send_msg_on_event (welcome_code or msg_code)."""

    code: str
    open_kfid: str
    external_userid: str
    expires_at: float
    purpose: str


@dataclass
class Media:
    """Bytes held under a media_id: uploaded by our platform (media/upload) or sent by a customer."""

    media_id: str
    corp_id: str
    media_type: str  # image, voice, video, file
    filename: str
    content_type: str
    content: bytes
    created_at: float

    def summary(self) -> dict:
        return {"media_id": self.media_id, "corp_id": self.corp_id, "type": self.media_type,
                "filename": self.filename, "content_type": self.content_type, "size": len(self.content)}


@dataclass
class Fault:
    path: str
    corp_id: str | None
    remaining: int
    errcode: int | None = None
    http_status: int | None = None
    delay: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Corp:
    corp_id: str
    apps: dict[int, App] = field(default_factory=dict)
    kf_accounts: dict[str, KfAccount] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)
    # kf: one ordered queue per corp, cursors are positions in it; "page_break" items end a page.
    kf_queue: list[dict] = field(default_factory=list)
    kf_tokens: dict[str, float] = field(default_factory=dict)
    kf_sessions: dict[tuple[str, str], KfSession] = field(default_factory=dict)
    kf_codes: dict[str, KfCode] = field(default_factory=dict)
    kf_sent_msgids: set[tuple[str, str]] = field(default_factory=set)
    # kf/customer/batchget: the customers' WeChat profiles (nickname, avatar, gender, unionid) as scripted,
    # and when each customer last wrote or entered a session (only those of the last 48 h are answered).
    kf_customers: dict[str, dict] = field(default_factory=dict)
    kf_contacted: dict[str, float] = field(default_factory=dict)
    # user/get: members' profiles as scripted (name, avatar, ...); a member without one is named by userid.
    member_profiles: dict[str, dict] = field(default_factory=dict)
    # message/send bookkeeping.
    member_windows: dict[tuple[int, str], deque] = field(default_factory=lambda: defaultdict(deque))
    duplicate_requests: dict[tuple[int, str], tuple[str, float]] = field(default_factory=dict)

    def credential(self, secret: str) -> tuple[str, int | None] | None:
        """("app", agent_id) or ("kf", None) for a secret of this corp, else None."""
        for app in self.apps.values():
            if app.secret == secret:
                return "app", app.agent_id
        for account in self.kf_accounts.values():
            if account.secret == secret:
                return "kf", None
        return None

    def find_member(self, userid: str) -> str | None:
        """Canonical userid, matching case-insensitively like WeCom; any id when no members are set."""
        if not self.members:
            return userid
        wanted = userid.lower()
        return next((member for member in self.members if member.lower() == wanted), None)

    def session(self, open_kfid: str, external_userid: str) -> KfSession:
        key = (open_kfid, external_userid)
        if key not in self.kf_sessions:
            self.kf_sessions[key] = KfSession(open_kfid, external_userid)
        return self.kf_sessions[key]

    def summary(self) -> dict:
        return {
            "corp_id": self.corp_id,
            "apps": [{"agent_id": a.agent_id, "callback": bool(a.callback)} for a in self.apps.values()],
            "kf_accounts": [
                {"open_kfid": k.open_kfid, "name": k.name, "callback": bool(k.callback),
                 "servicers": dict(k.servicers)}
                for k in self.kf_accounts.values()
            ],
            "members": list(self.members),
        }


class SandboxState:
    """Everything the sandbox knows. Hold `lock` while reading or changing anything."""

    def __init__(self, clock=time.time):
        self.lock = threading.RLock()
        self._clock = clock
        self._offset = 0.0
        # Ids never restart, even across reset(), so a client never sees the same msgid twice.
        self._ids = itertools.count(1)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.corps: dict[str, Corp] = {}
            self.tokens: dict[str, AccessToken] = {}
            self.deliveries: list[Delivery] = []
            self.media: dict[str, Media] = {}  # by media_id (wecom_sandbox/media.py)
            self.faults: list[Fault] = []
            self.rate_limits: dict[tuple[str, str], tuple[int, float]] = {}
            self.rate_windows: dict[tuple[str, str], deque] = defaultdict(deque)
            self.calls: deque[dict] = deque(maxlen=CALL_LOG_SIZE)
            self.callbacks: deque[dict] = deque(maxlen=CALL_LOG_SIZE)

    # -- clock ------------------------------------------------------------------------------------

    def now(self) -> float:
        return self._clock() + self._offset

    def advance(self, seconds: float) -> float:
        """Move sandbox time forward (token expiry, 48 h windows) without sleeping."""
        with self.lock:
            self._offset += seconds
            return self.now()

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}{secrets.token_hex(4)}"

    # -- corps and tokens -------------------------------------------------------------------------

    def put_corp(self, corp: Corp) -> None:
        """Create or replace a corp; the old corp's tokens stop working (40014)."""
        with self.lock:
            self.corps[corp.corp_id] = corp
            for value in [v for v, t in self.tokens.items() if t.corp_id == corp.corp_id]:
                del self.tokens[value]

    def issue_token(self, corp_id: str, secret: str) -> AccessToken:
        """Reuse a live token for (corp, secret), as WeCom documents, else mint a new 7200 s one."""
        with self.lock:
            now = self.now()
            for token in self.tokens.values():
                live = not token.revoked and token.expires_at > now
                if live and token.corp_id == corp_id and token.secret == secret:
                    return token
            token = AccessToken(self.new_id("sbxtok"), corp_id, secret, now + TOKEN_TTL_SECONDS)
            self.tokens[token.value] = token
            return token

    def revoke_tokens(self, corp_id: str | None = None) -> int:
        with self.lock:
            matching = [t for t in self.tokens.values() if corp_id in (None, t.corp_id) and not t.revoked]
            for token in matching:
                token.revoked = True
            return len(matching)

    # -- faults, rate limits, logs ----------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, path: str, corp_id: str | None) -> Fault | None:
        """Consume one use of the first fault for this path; corp-specific faults win over global ones."""
        with self.lock:
            candidates = [f for f in self.faults if f.path == path and f.corp_id in (corp_id, None)]
            if not candidates:
                return None
            fault = next((f for f in candidates if f.corp_id is not None), candidates[0])
            fault.remaining -= 1
            if fault.remaining <= 0:
                self.faults.remove(fault)
            return fault

    def set_rate_limit(self, corp_id: str, path: str, limit: int | None, window: float) -> None:
        with self.lock:
            if limit is None:
                self.rate_limits.pop((corp_id, path), None)
            else:
                self.rate_limits[(corp_id, path)] = (limit, window)
            self.rate_windows.pop((corp_id, path), None)

    def over_rate_limit(self, corp_id: str, path: str) -> bool:
        """Count this call against (corp, api); True when it exceeds the configured limit."""
        with self.lock:
            if (corp_id, path) not in self.rate_limits:
                return False
            limit, window = self.rate_limits[(corp_id, path)]
            calls = self.rate_windows[(corp_id, path)]
            now = self.now()
            while calls and calls[0] <= now - window:
                calls.popleft()
            if len(calls) >= limit:
                return True
            calls.append(now)
            return False

    def log_call(self, **entry) -> None:
        with self.lock:
            self.calls.append({"at": self.now(), **entry})

    def record_delivery(self, **fields) -> Delivery:
        with self.lock:
            delivery = Delivery(id=len(self.deliveries) + 1, at=self.now(), **fields)
            self.deliveries.append(delivery)
            return delivery
