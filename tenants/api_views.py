"""A view shape the apps' REST APIs share: a tenant's single settings object (`<Model>.current()`), read at the
list route and changed with PATCH `update/` (docs/API.md)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response


class SingletonSettingsViewSet(viewsets.ViewSet):
    """Set `serializer_class` (a ModelSerializer whose model has `current()`) and decorate the subclass with
    `settings_schema(serializer_class)` so the schema names its body."""

    api_scope = "settings"
    serializer_class = None

    def list(self, request):
        return Response(self.serializer_class(self.serializer_class.Meta.model.current()).data)

    @action(detail=False, methods=["patch"], url_path="update")
    def partial(self, request):
        serializer = self.serializer_class(self.serializer_class.Meta.model.current(), data=request.data,
                                           partial=True)
        serializer.is_valid(raise_exception=True)
        serializer.save()
        return Response(serializer.data)


def settings_schema(serializer):
    return extend_schema_view(list=extend_schema(responses=serializer),
                              partial=extend_schema(request=serializer, responses=serializer))
