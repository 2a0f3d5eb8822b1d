"""swf-monitor's REST API for its models, with its serializer names (``<Model>Serializer``: the
schema components a host's /api/schema/ must keep)."""

from django.db import models
from rest_framework import routers, serializers, viewsets

from tests.host.models import FastMonFile, Run, StfFile, Subscriber


def viewset_of(model: type[models.Model]) -> type[viewsets.ModelViewSet]:
    meta = type("Meta", (), {"model": model, "fields": "__all__"})
    serializer = type(f"{model.__name__}Serializer", (serializers.ModelSerializer,),
                      {"Meta": meta, "__module__": __name__})  # fmt: skip
    return type(f"{model.__name__}ViewSet", (viewsets.ModelViewSet,), {
        "queryset": model.objects.order_by("id"), "serializer_class": serializer,
        "__module__": __name__})  # fmt: skip


router = routers.DefaultRouter()
for prefix, model in [("runs", Run), ("stf-files", StfFile), ("subscribers", Subscriber),
                      ("fastmon-files", FastMonFile)]:  # fmt: skip
    router.register(prefix, viewset_of(model), basename=model.__name__.lower())
