"""WebSocket consumers of the live staff screens."""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from conversations.realtime import staff_group
from tenants.websocket import CLOSE_FORBIDDEN


class StaffEventsConsumer(AsyncJsonWebsocketConsumer):
    """Events of one tenant for its signed-in staff; the group name carries the schema.

    The user was loaded from the tenant's own session table by
    TenantWebsocketMiddleware, so a session of another tenant is anonymous here.
    """

    async def connect(self):
        user = self.scope.get("user")
        if not (user and user.is_authenticated and user.is_staff and user.is_active):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = staff_group(self.scope["tenant"].schema_name)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "tenant": self.scope["tenant"].schema_name})

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def staff_event(self, message):
        await self.send_json({"type": "event", "event": message["event"]})
