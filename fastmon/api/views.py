"""API views: thin, each reads through a selector or calls one service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from django.db.models import Model, QuerySet
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination, CursorPagination, LimitOffsetPagination
from rest_framework.permissions import IsAuthenticatedOrReadOnly
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_csv.renderers import CSVRenderer

from fastmon import overview
from fastmon.api import filters
from fastmon.api.serializers import (
    AlarmSerializer,
    DeadLetterSerializer,
    DeadLetterSummarySerializer,
    FastMonFileSerializer,
    LiveEventSerializer,
    RunSerializer,
    SamplingPolicySerializer,
    SliceSerializer,
    StfFileSerializer,
    SubscriberSerializer,
)
from fastmon.conf import fastmon_settings
from fastmon.inbound.messages import Outcome
from fastmon.ingest.replay import Refused, discard_dead_letter, replay_dead_letter
from fastmon.live.events import events_since
from fastmon.models import (
    Alarm,
    DeadLetter,
    Run,
    SamplingPolicy,
    Slice,
    StfFile,
    Subscriber,
    TfSample,
)
from fastmon.processing.figures import processing_summary
from fastmon.quality.alarms import acknowledge
from fastmon.quality.flags import run_quality
from fastmon.sampling.ledger import save_policy_version
from fastmon.sampling.samples import change_sample
from fastmon.statistics.read import run_statistics
from fastmon.subscribers.service import remove_subscriber, save_subscriber


class ListCSVRenderer(CSVRenderer):
    """``?format=csv``: the rows of a list, paginated or not, with the list's filters."""

    def render(
        self, data: Any, media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        renderer_context = renderer_context or {}
        if data is None:  # 204 No Content and the like: no body at all
            return b""
        if isinstance(data, dict) and "results" in data:
            data = data["results"]
        data = _defused(data)
        view = renderer_context.get("view")
        if not data and view is not None and hasattr(view, "get_serializer"):
            # An empty list still says which columns it has.
            return (",".join(view.get_serializer().fields) + "\r\n").encode()
        return super().render(data, media_type, renderer_context)


def _defused(data: Any) -> Any:
    """Cells a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first)
    get a leading quote (OWASP's CSV injection advice): message fields come from the wire."""
    if isinstance(data, list):
        return [_defused(item) for item in data]
    if isinstance(data, dict):
        return {key: _defused(value) for key, value in data.items()}
    if isinstance(data, str) and data.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + data
    return data


_M = TypeVar("_M", bound=Model)
_Row = TypeVar("_Row")


class NewestFirst(CursorPagination):
    """Large lists: cursor pages, stable under inserts and cheap at any depth. ``?limit=``
    (what the rest of the API takes) sets the page size too."""

    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request: Request) -> int | None:
        if "limit" in request.query_params and "page_size" not in request.query_params:
            try:
                limit = int(request.query_params["limit"])
            except ValueError:
                raise ValidationError("limit must be a whole number") from None
            if limit < 1:
                raise ValidationError("limit must be at least 1")
            return min(limit, self.max_page_size)
        return super().get_page_size(request)


class UnpaginatedUnlessLimit(LimitOffsetPagination):
    """swf-monitor's behaviour: the whole list unless ``?limit=`` is given. A whole list past
    API_MAX_UNPAGINATED rows is refused with a hint rather than sent."""

    max_limit = 10000

    def paginate_queryset(
        self, queryset: QuerySet[_M, _Row] | Sequence[_Row], request: Request, view: Any = None
    ) -> list[_Row] | None:
        if self.get_limit(request) is None:
            maximum = fastmon_settings.API_MAX_UNPAGINATED
            past = queryset[maximum : maximum + 1]
            if past.exists() if isinstance(past, QuerySet) else past:
                raise ValidationError(
                    f"more than {maximum} rows match: add ?limit= (and ?offset=) or filters"
                )
        return super().paginate_queryset(queryset, request, view)


class FastmonAuth(APIView):
    """Auth as swf-monitor: Session and Token (API_AUTHENTICATION_CLASSES), anyone reads,
    writes need a login; for every fastmon view."""

    permission_classes = [IsAuthenticatedOrReadOnly]

    def get_authenticators(self) -> list[Any]:
        return [import_string(path)() for path in fastmon_settings.API_AUTHENTICATION_CLASSES]


class FastmonViewSet(viewsets.GenericViewSet, FastmonAuth):
    """Lists filtered, newest first by cursor, and as CSV."""

    filter_backends = [DjangoFilterBackend]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, ListCSVRenderer]
    pagination_class: type[BasePagination] | None = NewestFirst

    def user_name(self) -> str:
        return self.request.user.get_username()


class FastMonFileViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                         mixins.UpdateModelMixin, FastmonViewSet):  # fmt: skip
    """TF samples, as swf-monitor's ``/api/fastmon-files/`` serves them (PATCH: status,
    metadata)."""

    queryset = overview.tf_samples()
    serializer_class = FastMonFileSerializer
    filterset_class = filters.TfSampleFilter
    pagination_class = UnpaginatedUnlessLimit
    lookup_field = "tf_file_id"
    http_method_names = ["get", "patch", "head", "options"]

    def perform_update(self, serializer: serializers.BaseSerializer[TfSample]) -> None:
        assert serializer.instance is not None  # update() gives it the object it updates
        serializer.instance = change_sample(serializer.instance, serializer.validated_data)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The hot read: rows straight from the database, shaped as the serializer would."""
        samples = self.filter_queryset(self.get_queryset())
        # Count and slice on ids alone: the joins the rows need would slow the count.
        page = self.paginate_queryset(samples.values_list("id", flat=True))
        if page is not None:
            rows = overview.tf_sample_rows(self.get_queryset().filter(id__in=page))
            return self.get_paginated_response(FastMonFileSerializer.rows(rows))
        return Response(FastMonFileSerializer.rows(overview.tf_sample_rows(samples)))


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, FastmonViewSet):
    queryset = Run.objects.all()
    serializer_class = RunSerializer
    filterset_class = filters.RunFilter
    lookup_field = "run_number"

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, renderer_classes=[JSONRenderer, BrowsableAPIRenderer])
    def statistics(self, request: Request, run_number: str) -> Response:
        """Samples, achieved fraction, sizes, latency per stage, samples by machine state,
        sequence gaps."""
        return Response(run_statistics(self.get_object()))

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True)
    def quality(self, request: Request, run_number: str) -> Response:
        """The run's overall quality (the worst any check gave any part of it), its quality
        now, and its quality flags over time; ``?format=csv``: the flags."""
        found = run_quality(self.get_object())
        csv = request.accepted_renderer.format == "csv"
        return Response(found["flags"] if csv else found)

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, renderer_classes=[JSONRenderer, BrowsableAPIRenderer])
    def processing(self, request: Request, run_number: str) -> Response:
        """The run's fast processing: slices by status, success rate, processing time per
        slice, retries, workers seen and targeted, latency from STF to result."""
        return Response(processing_summary(self.get_object()))


class AlarmViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, FastmonViewSet):
    """Quality alarms, newest first, with their history (``?active=true``: open ones,
    ``?unacknowledged=true``: those no person has acknowledged yet)."""

    queryset = Alarm.objects.select_related("run")
    serializer_class = AlarmSerializer
    filterset_class = filters.AlarmFilter

    @extend_schema(request=None, responses=AlarmSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str) -> Response:
        """A person has seen the alarm (a login needed): who and when are kept, the first
        acknowledgement stays."""
        alarm = acknowledge(self.get_object().pk, by=self.user_name(), at=timezone.now())
        return Response(AlarmSerializer(alarm).data)


class SliceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, FastmonViewSet):
    """TF slices of the fast-processing stage, from their slice message to their result."""

    queryset = Slice.objects.select_related("run", "sample").order_by("-id")
    serializer_class = SliceSerializer
    filterset_class = filters.SliceFilter
    lookup_field = "tf_filename"
    lookup_value_regex = "[^/]+"


class StfFileViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, FastmonViewSet):
    queryset = StfFile.objects.select_related("run")
    serializer_class = StfFileSerializer
    filterset_class = filters.StfFileFilter
    lookup_field = "stf_filename"
    lookup_value_regex = "[^/]+"


class SamplingPolicyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin,
                            mixins.CreateModelMixin, mixins.UpdateModelMixin,
                            FastmonViewSet):  # fmt: skip
    """Policies and their versions. Creating or changing one stores a new version."""

    queryset = SamplingPolicy.objects.all()
    serializer_class = SamplingPolicySerializer
    filterset_fields = ["name", "namespace", "run_type", "active"]

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        policy = SamplingPolicy(**serializer.validated_data)
        serializer.instance = save_policy_version(policy, created_by=self.user_name())

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        assert serializer.instance is not None  # update() gives it the object it updates
        policy = SamplingPolicy.objects.get(pk=serializer.instance.pk)
        for name, value in serializer.validated_data.items():
            setattr(policy, name, value)
        serializer.instance = save_policy_version(policy, created_by=self.user_name())


class SubscriberViewSet(viewsets.ModelViewSet, FastmonViewSet):
    queryset = Subscriber.objects.all()
    serializer_class = SubscriberSerializer
    filterset_fields = ["name", "active"]

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        subscription = serializer.validated_data["subscription"]
        serializer.instance = save_subscriber(subscription, by=self.user_name())

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        assert serializer.instance is not None  # update() gives it the object it updates
        subscription = serializer.validated_data["subscription"]
        serializer.instance = save_subscriber(
            subscription, by=self.user_name(), subscriber_id=serializer.instance.pk
        )

    def perform_destroy(self, instance: Subscriber) -> None:
        remove_subscriber(instance.name)


class DeadLetterViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, FastmonViewSet):
    """Messages fastmon could not use. Replay ingests one again; discard closes it."""

    queryset = DeadLetter.objects.all()
    serializer_class = DeadLetterSerializer
    filterset_class = filters.DeadLetterFilter

    def get_queryset(self) -> QuerySet[DeadLetter]:
        letters = super().get_queryset()
        return letters.defer("body") if self.action == "list" else letters

    def get_serializer_class(self) -> type[serializers.Serializer]:
        return DeadLetterSummarySerializer if self.action == "list" else DeadLetterSerializer

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: str) -> Response:
        letter = self.get_object()
        try:
            result = replay_dead_letter(letter.pk, by=self.user_name())
        except Refused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        stored = result.outcome is not Outcome.DEAD_LETTERED
        return Response(
            {"outcome": result.outcome, "detail": result.detail},
            status=status.HTTP_200_OK if stored else status.HTTP_422_UNPROCESSABLE_ENTITY,
        )

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post"])
    def discard(self, request: Request, pk: str) -> Response:
        try:
            discard_dead_letter(self.get_object().pk, by=self.user_name())
        except Refused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response({"outcome": DeadLetter.Status.DISCARDED})


class EventViewSet(mixins.ListModelMixin, FastmonViewSet):
    """Live events after ``?since=<sequence>``, in order: what the pages push, for clients
    without websockets. Ask again with the last sequence received."""

    serializer_class = LiveEventSerializer
    pagination_class = None

    @extend_schema(parameters=[
        OpenApiParameter("since", int, description="last sequence number already seen"),
        OpenApiParameter("limit", int, description="at most this many (1000 at most)"),
    ])  # fmt: skip
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().list(request, *args, **kwargs)
        # Where the same events arrive live: the pages' websocket (fastmon-tail follows it).
        response["Link"] = f'<{get_script_prefix()}{fastmon_settings.WEBSOCKET_PATH}>; rel="live"'
        return response

    def get_queryset(self) -> QuerySet:
        try:
            since = int(self.request.query_params.get("since", 0))
            limit = int(self.request.query_params.get("limit", 1000))
        except ValueError:
            raise ValidationError("since and limit must be integers") from None
        if since < 0 or not 1 <= limit <= 1000:
            raise ValidationError("since must be >= 0 and limit between 1 and 1000")
        return events_since(since, limit)


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema of fastmon's API alone (not the whole site's), its server being
    wherever the site mounted fastmon, script prefix included."""

    urlconf = "fastmon.api.urls"

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        namespace = request.resolver_match.namespace if request.resolver_match else ""
        root = reverse(f"{namespace}:api-root" if namespace else "api-root")
        self.custom_settings = {"SERVERS": [{"url": root.rstrip("/")}]}
        return super().get(request, *args, **kwargs)
