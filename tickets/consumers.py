"""The agent screens' WebSocket: presence heartbeats in, queue and conversation events out.

Security (issue: WebSocket security): only an active agent of this tenant (profile
read inside the tenant's schema) may connect; a conversation group is joined only
after the same access check as the HTTP screens; every group name carries the
schema; events are built by the server; the socket that caused an event does not
get it back.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django_tenants.utils import schema_context

from conversations.realtime import conversation_group
from tenants.websocket import CLOSE_FORBIDDEN
from tickets import presence, realtime
from tickets.selectors import access_conversation, agent_profile


class AgentConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.schema = self.scope["tenant"].schema_name
        self.profile = await self._profile()
        if self.profile is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.groups_joined = [realtime.queue_group(self.schema), realtime.agent_group(self.schema, self.user_id)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        self.watching: str | None = None
        await self.accept()
        await self._beat()
        await self.send_json({"type": "hello", "socket": self.channel_name, "agent": self.profile.name,
                              "supervisor": self.profile.is_supervisor,
                              "heartbeat_seconds": presence.HEARTBEAT_SECONDS})

    @property
    def user_id(self) -> int:
        return self.profile.user_id

    async def disconnect(self, code):
        if getattr(self, "profile", None) is None:
            return
        for group in [*self.groups_joined, *([self.watching] if self.watching else [])]:
            await self.channel_layer.group_discard(group, self.channel_name)
        await database_sync_to_async(presence.drop)(schema=self.schema, user_id=self.user_id,
                                                    socket=self.channel_name)

    async def receive_json(self, content, **kwargs):
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "heartbeat":
            await self._beat()
        elif kind == "presence" and content.get("status") in ("online", "away"):
            await database_sync_to_async(presence.set_away)(schema=self.schema, user_id=self.user_id,
                                                            away=content["status"] == "away")
            await self.send_json({"type": "presence", "status": content["status"]})
        elif kind == "watch":
            await self._watch(content.get("conversation"))
        else:
            await self.send_json({"type": "error", "message": "unknown message type"})

    async def _watch(self, conversation_id):
        if self.watching:
            await self.channel_layer.group_discard(self.watching, self.channel_name)
            self.watching = None
        conversation = await self._access(conversation_id)
        if conversation is None:  # the same answer for missing and forbidden
            await self.send_json({"type": "error", "message": "conversation not found"})
            return
        self.watching = conversation_group(self.schema, conversation.pk)
        await self.channel_layer.group_add(self.watching, self.channel_name)
        await self.send_json({"type": "watching", "conversation": conversation.pk})

    async def agent_event(self, message):
        if message.get("origin") and message["origin"] == self.channel_name:
            return  # the sender already knows what it did
        await self.send_json(message["event"])

    async def _beat(self):
        await database_sync_to_async(presence.touch)(schema=self.schema, user_id=self.user_id,
                                                     socket=self.channel_name)

    @database_sync_to_async
    def _profile(self):
        with schema_context(self.schema):
            return agent_profile(self.scope.get("user"))

    @database_sync_to_async
    def _access(self, conversation_id):
        with schema_context(self.schema):
            return access_conversation(profile=self.profile, conversation_id=conversation_id)
