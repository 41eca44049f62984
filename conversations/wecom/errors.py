"""Typed WeCom API errors, classified by what the caller should do about them (docs/WECOM_PROTOCOL.md §6.3)."""

from __future__ import annotations

# The access token is bad or expired: refresh once and retry (40001 from non-gettoken calls too).
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
# Worth retrying later with backoff.
TRANSIENT_ERRCODES = frozenset({-1, 45009, 45033})


class WeComError(Exception):
    """WeCom answered with a non-zero errcode, or could not be reached."""

    transient = False

    def __init__(self, errcode: int | None, errmsg: str, *, path: str = ""):
        super().__init__(f"{path}: errcode={errcode} {errmsg}".strip())
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path


class WeComTransientError(WeComError):
    """System busy, rate-limited, HTTP 5xx or a timeout: retry with backoff."""

    transient = True


class WeComPermanentError(WeComError):
    """A request WeCom will never accept as it is (invalid user, 48 h window over, ...)."""


class WeComTokenError(WeComError):
    """The access token was refused even after one refresh, or gettoken itself failed."""


def error_for(errcode: int, errmsg: str, *, path: str) -> WeComError:
    if errcode in TRANSIENT_ERRCODES:
        return WeComTransientError(errcode, errmsg, path=path)
    if errcode in TOKEN_ERRCODES:
        return WeComTokenError(errcode, errmsg, path=path)
    return WeComPermanentError(errcode, errmsg, path=path)
