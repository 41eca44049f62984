"""The agent screens' WebSocket: presence heartbeats in, queue and conversation events out; who else views
or types in the watched conversation (collision detection: tickets/viewers.py) both ways.

Security (issue: WebSocket security): only an active agent of this tenant (profile
read inside the tenant's schema) may connect; a conversation group is joined only
after the same access check as the HTTP screens; every group name carries the
schema; events are built by the server; the socket that caused an event does not
get it back.
"""

from __future__ import annotations

import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django_tenants.utils import schema_context

from conversations.realtime import conversation_group
from tenants.websocket import CLOSE_FORBIDDEN
from tickets import presence, realtime, viewers
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
        self.watching_id: int | None = None
        self.typed_at = 0.0
        await self.accept()
        await self._beat()
        await self.send_json({"type": "hello", "socket": self.channel_name, "agent": self.profile.name,
                              "user": self.user_id,
                              "supervisor": self.profile.is_supervisor,
                              "heartbeat_seconds": presence.HEARTBEAT_SECONDS})

    @property
    def user_id(self) -> int:
        return self.profile.user_id

    async def disconnect(self, code):
        if getattr(self, "profile", None) is None:
            return
        await self._stop_watching()
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)
        await database_sync_to_async(presence.drop)(schema=self.schema, user_id=self.user_id,
                                                    socket=self.channel_name)

    async def receive_json(self, content, **kwargs):
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "heartbeat":
            await self._beat()
            if self.watching_id is not None:
                await self._viewing()
        elif kind == "typing":
            await self._typing()
        elif kind == "presence" and content.get("status") in ("online", "away"):
            await database_sync_to_async(presence.set_away)(schema=self.schema, user_id=self.user_id,
                                                            away=content["status"] == "away")
            await self.send_json({"type": "presence", "status": content["status"]})
        elif kind == "watch":
            await self._watch(content.get("conversation"))
        else:
            await self.send_json({"type": "error", "message": "unknown message type"})

    async def _watch(self, conversation_id):
        await self._stop_watching()
        conversation = await self._access(conversation_id)
        if conversation is None:  # the same answer for missing and forbidden
            await self.send_json({"type": "error", "message": "conversation not found"})
            return
        self.watching, self.watching_id = conversation_group(self.schema, conversation.pk), conversation.pk
        await self.channel_layer.group_add(self.watching, self.channel_name)
        await self.send_json({"type": "watching", "conversation": conversation.pk})
        await self._viewing(changed=True)

    async def _stop_watching(self):
        if not self.watching:
            return
        group, conversation_id = self.watching, self.watching_id
        self.watching = self.watching_id = None
        await self.channel_layer.group_discard(group, self.channel_name)
        await database_sync_to_async(viewers.leave)(schema=self.schema, conversation_id=conversation_id,
                                                    socket=self.channel_name)
        await self._tell_viewers(group, conversation_id)

    async def _viewing(self, *, changed: bool = False):
        """Record (or refresh) this socket as a viewer; tell the group when the viewers changed (a join, or
        sockets that stopped heartbeating aged out)."""
        await database_sync_to_async(viewers.join)(schema=self.schema, conversation_id=self.watching_id,
                                                   socket=self.channel_name, user_id=self.user_id,
                                                   name=self.profile.name)
        await self._tell_viewers(self.watching, self.watching_id, only_if_stale=not changed)

    async def _tell_viewers(self, group: str, conversation_id: int, *, only_if_stale: bool = False):
        listed, dropped = await database_sync_to_async(viewers.viewers)(schema=self.schema,
                                                                       conversation_id=conversation_id)
        if only_if_stale and not dropped:
            return
        await self.channel_layer.group_send(group, {"type": "agent.event", "origin": "", "event": {
            "type": "viewers", "conversation": conversation_id, "viewers": listed}})

    async def _typing(self):
        """Passed on to the others watching the conversation (not back to this socket), throttled."""
        now = time.monotonic()
        if self.watching is None or now - self.typed_at < viewers.TYPING_MIN_INTERVAL_SECONDS:
            return
        self.typed_at = now
        await self.channel_layer.group_send(self.watching, {"type": "agent.event", "origin": self.channel_name,
                                                            "event": {"type": "typing",
                                                                      "conversation": self.watching_id,
                                                                      "user": self.user_id,
                                                                      "name": self.profile.name}})

    async def agent_event(self, message):
        if message.get("origin") and message["origin"] == self.channel_name:
            return  # the sender already knows what it did
        event = message["event"]
        await self.send_json(event)
        if (event.get("type") == "state" and self.watching_id is not None
                and event.get("conversation") == self.watching_id
                and await self._access(self.watching_id) is None):
            # Someone else took it and this agent may no longer see it: out of its group and its viewers, so
            # nothing more of it (typing included) reaches this screen.
            await self._stop_watching()

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
