"""REST API of the tenant's WeCom apps and 微信客服 account sets: read them (secrets masked: never the secret,
Token or EncodingAESKey, only their last 4 characters), enable or disable one."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from conversations.encryption import mask
from conversations.models import WeComApp
from conversations.selectors_api import wecom_apps
from conversations.services.apps import set_app_enabled


class WeComAppSerializer(serializers.ModelSerializer):
    secret = serializers.SerializerMethodField(help_text="masked: its last 4 characters at most")
    token = serializers.SerializerMethodField(help_text="masked: its last 4 characters at most")
    encoding_aes_key = serializers.SerializerMethodField(help_text="masked: its last 4 characters")

    class Meta:
        model = WeComApp
        fields = ["id", "name", "kind", "corp_id", "agent_id", "open_kfids", "is_enabled", "account_status",
                  "account_status_detail", "servicers_mode", "secret", "token", "encoding_aes_key", "created_at"]
        read_only_fields = fields

    def get_secret(self, app) -> str:
        return mask(app.secret)

    def get_token(self, app) -> str:
        return mask(app.token)

    def get_encoding_aes_key(self, app) -> str:
        return mask(app.encoding_aes_key)


class WeComAppViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The tenant's WeCom connections. A disabled app's callbacks are refused and nothing is sent through it."""

    api_scope = "settings"
    serializer_class = WeComAppSerializer
    ordering_fields = ["id", "name", "created_at"]
    ordering = ["name", "id"]

    def get_queryset(self):
        return wecom_apps()

    @extend_schema(request=None, responses=WeComAppSerializer)
    @action(detail=True, methods=["post"])
    def enable(self, request, pk=None):
        return Response(WeComAppSerializer(set_app_enabled(app_id=self.get_object().pk, enabled=True)).data)

    @extend_schema(request=None, responses=WeComAppSerializer)
    @action(detail=True, methods=["post"])
    def disable(self, request, pk=None):
        return Response(WeComAppSerializer(set_app_enabled(app_id=self.get_object().pk, enabled=False)).data)
