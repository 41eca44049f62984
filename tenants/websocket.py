"""WebSocket tenant resolution and authentication (django-tenants has no Channels support).

The tenant is resolved exactly as for HTTP; unknown or suspended tenants are
refused before the handshake completes. The session and user are loaded inside
the tenant's schema, so a session cookie of one tenant is worthless in another.
"""

from __future__ import annotations

from importlib import import_module
from types import SimpleNamespace

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.models import AnonymousUser
from django.http.cookie import parse_cookie
from django_tenants.utils import schema_context

from tenants.log_context import entry_scope, new_id
from tenants.resolution import resolve_tenant

# Close codes (4000-4999 are free for applications).
CLOSE_UNKNOWN_TENANT = 4404
CLOSE_FORBIDDEN = 4403


@database_sync_to_async
def _resolve(host: str, path: str):
    resolution = resolve_tenant(host=host, path=path)
    if resolution.tenant is None or not resolution.tenant.is_active:
        return None
    return resolution


@database_sync_to_async
def _load_user(schema_name: str, session_key: str | None):
    if not session_key:
        return AnonymousUser()
    engine = import_module(settings.SESSION_ENGINE)
    # The schema does not follow us across threads: set it inside the thread.
    with schema_context(schema_name):
        request = SimpleNamespace(session=engine.SessionStore(session_key))
        return get_user(request)


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


class TenantWebsocketMiddleware:
    """Puts `tenant` and `user` into the scope, or refuses the connection."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        resolution = await _resolve(_header(scope, b"host"), scope["path"])
        if resolution is None:
            # Closing before accept makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": CLOSE_UNKNOWN_TENANT})
            return None
        tenant = resolution.tenant
        cookies = parse_cookie(_header(scope, b"cookie"))
        user = await _load_user(tenant.schema_name, cookies.get(settings.SESSION_COOKIE_NAME))
        scope = dict(
            scope,
            tenant=tenant,
            user=user,
            root_path=scope.get("root_path", "") + resolution.script_prefix,
        )
        # The connection's log context: every line of its consumer, until it closes.
        with entry_scope(tenant=tenant.schema_name, connection_id=new_id(), path=scope["path"],
                         user_id=user.pk if user.is_authenticated else None):
            return await self.inner(scope, receive, send)
