"""swf-monitor's REST API for its models, with its serializer names (the schema components a
host's /api/schema/ must keep)."""

from rest_framework import routers, serializers, viewsets

from tests.host.models import FastMonFile, Run, StfFile, Subscriber


class RunSerializer(serializers.ModelSerializer):
    class Meta:
        model = Run
        fields = "__all__"


class StfFileSerializer(serializers.ModelSerializer):
    class Meta:
        model = StfFile
        fields = "__all__"


class SubscriberSerializer(serializers.ModelSerializer):
    class Meta:
        model = Subscriber
        fields = "__all__"


class FastMonFileSerializer(serializers.ModelSerializer):
    class Meta:
        model = FastMonFile
        fields = "__all__"


class RunViewSet(viewsets.ModelViewSet):
    queryset = Run.objects.order_by("id")
    serializer_class = RunSerializer


class StfFileViewSet(viewsets.ModelViewSet):
    queryset = StfFile.objects.order_by("id")
    serializer_class = StfFileSerializer


class SubscriberViewSet(viewsets.ModelViewSet):
    queryset = Subscriber.objects.order_by("id")
    serializer_class = SubscriberSerializer


class FastMonFileViewSet(viewsets.ModelViewSet):
    queryset = FastMonFile.objects.order_by("id")
    serializer_class = FastMonFileSerializer


router = routers.DefaultRouter()
router.register("runs", RunViewSet, basename="run")
router.register("stf-files", StfFileViewSet, basename="stffile")
router.register("subscribers", SubscriberViewSet, basename="subscriber")
router.register("fastmon-files", FastMonFileViewSet, basename="fastmonfile")
